#pragma once
// The daemon's unix socket as batadv-vis and alfred-gpsd use it (both
// programs share this file): connect, publish one record of a reserved type,
// request a type and walk the answer the way upstream's two programs do, so
// that what they print matches byte for byte.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "wire/mac.hpp"

namespace alfred::tools {

// A connected unix-socket client. open() prints upstream's messages on failure.
class Connection {
 public:
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();
  bool open(const std::string& path);
  bool write_all(std::span<const std::uint8_t> bytes);
  // Reads exactly n bytes unless the stream ends first; returns bytes read.
  std::size_t read_full(std::uint8_t* buf, std::size_t n);
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// A push packet with one record from source 00:00:00:00:00:00 (the daemon
// fills in its own address), seqno 0: what upstream's programs publish.
std::vector<std::uint8_t> push_packet(std::uint16_t tx_id, std::uint8_t type,
                                      std::uint8_t version, std::span<const std::uint8_t> data);

// A request for `type` with a random transaction id.
std::vector<std::uint8_t> request_packet(std::uint8_t type);

// Connects, writes `packet`, closes. false (after a message) if that failed.
bool publish(const std::string& unix_path, std::span<const std::uint8_t> packet);

// The first record of one push packet of an answer. `data` points into the
// reader's buffer and stays valid until the next call to next(); `avail`
// bytes from it are readable (more than `length` when the packet is shorter
// than the record claims: the rest is what earlier packets left there).
struct FirstRecord {
  Mac source{};
  std::uint8_t type = 0;
  std::uint8_t version = 0;
  std::uint16_t length = 0;
  const std::uint8_t* data = nullptr;
  std::size_t avail = 0;
};

// Walks an answer as upstream's batadv-vis and alfred-gpsd do: every packet is
// read into the same 64 KiB buffer at offset 0 (bytes past a shorter packet
// keep what a longer one left), only its first record is looked at, and the
// answer ends at the end of the stream, at a packet that is not push data, or
// at one whose length is below a push header with one record header or above
// the buffer.
class AnswerReader {
 public:
  // Reads up to n bytes, fewer only at the end of the stream.
  using Source = std::function<std::size_t(std::uint8_t*, std::size_t)>;
  explicit AnswerReader(Source source);
  std::optional<FirstRecord> next();

 private:
  static constexpr std::size_t kBufferSize = 65536;
  Source source_;
  std::unique_ptr<std::array<std::uint8_t, kBufferSize>> buf_;
};

}  // namespace alfred::tools
