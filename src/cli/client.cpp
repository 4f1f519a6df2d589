#include "cli/client.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "wire/packet.hpp"

namespace alfred::cli {
namespace {

class Connection {
 public:
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool open(const std::string& path) {
    fd_ = ::socket(AF_LOCAL, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      std::perror("can't create unix socket");
      return false;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_LOCAL;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
      std::perror("can't connect to unix socket");
      ::close(fd_);
      fd_ = -1;
      return false;
    }
    return true;
  }
  bool write_all(const std::vector<std::uint8_t>& bytes, const char* who) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::fprintf(stderr, "%s: only wrote %zu of %zu bytes: %s\n", who, done, bytes.size(),
                     std::strerror(errno));
        return false;
      }
      done += static_cast<std::size_t>(n);
    }
    return true;
  }
  // Reads exactly n bytes unless the stream ends first; returns bytes read.
  std::size_t read_full(std::uint8_t* buf, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      ssize_t r = ::read(fd_, buf + done, n - done);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      done += static_cast<std::size_t>(r);
    }
    return done;
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

std::uint16_t random_id() {
  static std::mt19937 rng{std::random_device{}()};
  return static_cast<std::uint16_t>(rng());
}

void print_record(const wire::RecordView& r, bool verbose) {
  std::string line = "{ \"" + to_string(r.source) + "\", \"";
  for (std::uint8_t c : r.data) {
    if (c == '"') {
      line += "\\\"";
    } else if (c == '\\') {
      line += "\\\\";
    } else if (!std::isprint(c)) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      line += hex;
    } else {
      line += static_cast<char>(c);
    }
  }
  line += "\"";
  if (verbose) line += ", " + std::to_string(r.version);
  line += " },\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
}

int request_data(const Options& o) {
  Connection c;
  if (!c.open(o.unix_path)) return -1;
  wire::Request req{static_cast<std::uint8_t>(o.client_arg), random_id()};
  c.write_all(wire::encode(req), "alfred_client_request_data");
  std::vector<std::uint8_t> buf(wire::kMaxPacket + 16);
  for (;;) {
    std::size_t n = c.read_full(buf.data(), wire::kTlvSize);
    if (n < wire::kTlvSize) break;
    wire::TlvHeader h;
    wire::read_tlv_header(buf, h);
    if (h.type == static_cast<std::uint8_t>(wire::Type::StatusError)) {
      if (c.read_full(buf.data() + wire::kTlvSize, wire::kTxMgmtSize) < wire::kTxMgmtSize)
        return -1;
      // The daemon writes the code in host byte order (upstream does too).
      std::uint16_t code;
      std::memcpy(&code, buf.data() + wire::kTlvSize + 2, 2);
      std::fprintf(stderr, "Request failed with %d\n", code);
      return code;
    }
    if (h.type != static_cast<std::uint8_t>(wire::Type::PushData)) break;
    if (h.length > wire::kMaxTlvLength) break;
    if (c.read_full(buf.data() + wire::kTlvSize, h.length) < h.length) break;
    auto d = wire::decode(std::span<const std::uint8_t>(buf.data(), wire::kTlvSize + h.length));
    auto* push = std::get_if<wire::PushData>(&d.packet);
    if (!d.ok || !push) break;
    for (const auto& r : push->records) print_record(r, o.verbose);
  }
  std::fflush(stdout);
  return 0;
}

int set_data(const Options& o) {
  Connection c;
  if (!c.open(o.unix_path)) return -1;
  std::vector<std::uint8_t> data;
  data.reserve(4096);
  std::uint8_t chunk[4096];
  // Like upstream, input beyond what one packet can carry is cut off.
  while (data.size() < wire::kMaxRecordData) {
    std::size_t want = std::min(sizeof chunk, wire::kMaxRecordData - data.size());
    std::size_t n = std::fread(chunk, 1, want, stdin);
    data.insert(data.end(), chunk, chunk + n);
    if (n < want) break;
  }
  std::vector<std::uint8_t> out;
  wire::encode_push_header(out, random_id(), 0);
  wire::append_record(out, Mac{}, static_cast<std::uint8_t>(o.client_arg),
                      static_cast<std::uint8_t>(o.client_version), data);
  wire::finish_tlv(out, 0);
  c.write_all(out, "alfred_client_set_data");
  return 0;
}

int modeswitch(const Options& o) {
  Connection c;
  if (!c.open(o.unix_path)) return -1;
  c.write_all(wire::encode(wire::ModeSwitch{static_cast<std::uint8_t>(o.mode)}),
              "alfred_client_modeswitch");
  return 0;
}

bool interface_exists(const std::string& name) {
  if (name.size() > IFNAMSIZ) {
    std::fprintf(stderr, "check_interface: interface name list too long, not changing\n");
    return false;
  }
  if (::if_nametoindex(name.c_str()) == 0) {
    std::fprintf(stderr, "check_interface: can't find interface, not changing\n");
    return false;
  }
  return true;
}

int change_interface(const Options& o) {
  Connection c;
  if (!c.open(o.unix_path)) return -1;
  const std::string& list = *o.net_iface;
  if (list.size() > wire::kIfaceListSize) {
    std::fprintf(stderr,
                 "alfred_client_change_interface: interface name list too long, not changing\n");
    return 0;
  }
  std::size_t pos = 0;
  while (pos < list.size()) {
    std::size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string name = list.substr(pos, comma - pos);
    if (!name.empty() && !interface_exists(name)) return 0;
    pos = comma + 1;
  }
  c.write_all(wire::encode(wire::ChangeInterface{list}), "alfred_client_change_interface");
  return 0;
}

int change_bat_iface(const Options& o) {
  Connection c;
  if (!c.open(o.unix_path)) return -1;
  if (o.mesh_iface.size() > wire::kIfNameSize) {
    std::fprintf(stderr,
                 "alfred_client_change_bat_iface: batman-adv interface name list too long, not "
                 "changing\n");
    return 0;
  }
  c.write_all(wire::encode(wire::ChangeBatIface{o.mesh_iface}), "alfred_client_change_bat_iface");
  return 0;
}

int server_status(const Options& o) {
  Connection c;
  if (!c.open(o.unix_path)) return -1;
  c.write_all(wire::encode(wire::ServerStatus{}), "alfred_client_server_status");
  std::vector<std::uint8_t> buf(wire::kMaxPacket);
  // Upstream takes the reply from a single read; the daemon writes it at once.
  ssize_t len = ::read(c.fd(), buf.data(), buf.size());
  if (len <= 0) {
    std::perror("read from unix socket failed");
    return 0;
  }
  wire::TlvHeader h;
  if (!wire::read_tlv_header(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(len)),
                             h) ||
      h.type != static_cast<std::uint8_t>(wire::Type::ServerStatus))
    return 0;
  // Print item by item in wire order, stopping at the first malformed one.
  std::size_t pos = wire::kTlvSize;
  std::size_t end = wire::kTlvSize + std::min<std::size_t>(h.length, static_cast<std::size_t>(len) - wire::kTlvSize);
  while (end - pos >= wire::kTlvSize) {
    wire::TlvHeader item;
    wire::read_tlv_header(std::span<const std::uint8_t>(buf.data() + pos, end - pos), item);
    if (item.version != wire::kVersion) break;
    std::size_t size = wire::kTlvSize + item.length;
    if (end - pos < size) break;
    const std::uint8_t* v = buf.data() + pos + wire::kTlvSize;
    switch (item.type) {
      case static_cast<std::uint8_t>(wire::StatusItem::OpMode):
        if (item.length != 1) break;
        if (v[0] == static_cast<std::uint8_t>(wire::Mode::Secondary))
          std::printf("- mode: secondary\n");
        else if (v[0] == static_cast<std::uint8_t>(wire::Mode::Primary))
          std::printf("- mode: primary\n");
        else
          std::printf("- mode: unknown\n");
        break;
      case static_cast<std::uint8_t>(wire::StatusItem::NetIface): {
        if (item.length != wire::kIfNameSize + 1) break;
        std::string name(reinterpret_cast<const char*>(v), strnlen(reinterpret_cast<const char*>(v), wire::kIfNameSize - 1));
        std::printf("- interface: %s\n", name.c_str());
        std::printf("\t- status: %s\n", v[wire::kIfNameSize] == 1 ? "active" : "inactive");
        break;
      }
      case static_cast<std::uint8_t>(wire::StatusItem::BatIface): {
        if (item.length != wire::kIfNameSize) break;
        std::string name(reinterpret_cast<const char*>(v), strnlen(reinterpret_cast<const char*>(v), wire::kIfNameSize - 1));
        std::printf("- batman-adv interface: %s\n", name.c_str());
        break;
      }
      default:
        break;
    }
    pos += size;
  }
  return 0;
}

int event_monitor(const Options& o) {
  Connection c;
  if (!c.open(o.unix_path)) return -1;
  if (!c.write_all(wire::encode(wire::EventRegister{}), "alfred_client_event_monitor")) return 0;
  constexpr std::size_t kNotifySize = wire::kTlvSize + 7;
  std::uint8_t buf[kNotifySize];
  for (;;) {
    ssize_t n = ::read(c.fd(), buf, sizeof buf);
    if (n == 0) {
      std::fprintf(stdout, "Server closed the connection\n");
      return 0;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("read from unix socket failed");
      return 0;
    }
    if (static_cast<std::size_t>(n) < kNotifySize) {
      // A stream may split a notification; finish it before judging.
      std::size_t more = c.read_full(buf + n, kNotifySize - static_cast<std::size_t>(n));
      n += static_cast<ssize_t>(more);
      if (static_cast<std::size_t>(n) != kNotifySize) {
        std::fprintf(stderr, "notify read bytes: %zd (expected: %zu)\n", n, kNotifySize);
        return 0;
      }
    }
    if (buf[1] != wire::kVersion) continue;
    if (buf[0] != static_cast<std::uint8_t>(wire::Type::EventNotify)) continue;
    std::fprintf(stdout, "Event: type = %hhu, source = %02x:%02x:%02x:%02x:%02x:%02x\n", buf[4],
                 buf[5], buf[6], buf[7], buf[8], buf[9], buf[10]);
    std::fflush(stdout);
  }
}

}  // namespace

int run_client(const Options& o) {
  switch (o.client) {
    case ClientMode::Request:
      return request_data(o);
    case ClientMode::SetData:
      return set_data(o);
    case ClientMode::ModeSwitch:
      return modeswitch(o);
    case ClientMode::ChangeInterface:
      return change_interface(o);
    case ClientMode::ChangeBatIface:
      return change_bat_iface(o);
    case ClientMode::ServerStatus:
      return server_status(o);
    case ClientMode::EventMonitor:
      return event_monitor(o);
    case ClientMode::None:
      break;
  }
  return 0;
}

}  // namespace alfred::cli
