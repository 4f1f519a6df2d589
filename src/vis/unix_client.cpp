#include "vis/unix_client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "wire/packet.hpp"

namespace alfred::tools {

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

bool Connection::open(const std::string& path) {
  fd_ = ::socket(AF_LOCAL, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    std::perror("can't create unix socket");
    return false;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_LOCAL;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    errno = err;
    std::perror("can't connect to unix socket");
    return false;
  }
  return true;
}

bool Connection::write_all(std::span<const std::uint8_t> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::size_t Connection::read_full(std::uint8_t* buf, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    ssize_t r = ::read(fd_, buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    done += static_cast<std::size_t>(r);
  }
  return done;
}

std::vector<std::uint8_t> push_packet(std::uint16_t tx_id, std::uint8_t type,
                                      std::uint8_t version, std::span<const std::uint8_t> data) {
  std::vector<std::uint8_t> out;
  wire::encode_push_header(out, tx_id, 0);
  wire::append_record(out, Mac{}, type, version, data);
  wire::finish_tlv(out, 0);
  return out;
}

std::vector<std::uint8_t> request_packet(std::uint8_t type) {
  static std::mt19937 rng{std::random_device{}()};
  return wire::encode(wire::Request{type, static_cast<std::uint16_t>(rng())});
}

bool publish(const std::string& unix_path, std::span<const std::uint8_t> packet) {
  Connection c;
  if (!c.open(unix_path)) return false;
  return c.write_all(packet);
}

AnswerReader::AnswerReader(Source source)
    : source_(std::move(source)), buf_(std::make_unique<std::array<std::uint8_t, kBufferSize>>()) {}

std::optional<FirstRecord> AnswerReader::next() {
  std::uint8_t* b = buf_->data();
  if (source_(b, wire::kTlvSize) < wire::kTlvSize) return std::nullopt;
  if (b[0] != static_cast<std::uint8_t>(wire::Type::PushData)) return std::nullopt;
  const std::size_t length = static_cast<std::size_t>(b[2]) << 8 | b[3];
  if (length > kBufferSize - wire::kTlvSize) return std::nullopt;
  if (length < wire::kTxMgmtSize + wire::kDataHeaderSize) return std::nullopt;
  if (source_(b + wire::kTlvSize, length) < length) return std::nullopt;
  const std::uint8_t* rec = b + wire::kPushHeaderSize;
  FirstRecord r;
  std::memcpy(r.source.data(), rec, 6);
  r.type = rec[6];
  r.version = rec[7];
  r.length = static_cast<std::uint16_t>(rec[8] << 8 | rec[9]);
  r.data = rec + wire::kDataHeaderSize;
  r.avail = kBufferSize - wire::kPushHeaderSize - wire::kDataHeaderSize;
  return r;
}

}  // namespace alfred::tools
