#pragma once
// Splits a TCP byte stream into alfred packets. A stream carries ordinary
// packets back to back, so the TLV header is the only framing. The header is
// checked as soon as it is complete, so a lying length or a foreign protocol
// is refused before its body is buffered; at most one packet is held.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "wire/packet.hpp"

namespace alfred::wire {

class StreamReader {
 public:
  using Sink = std::function<void(std::span<const std::uint8_t> packet)>;

  // Returns false once the stream is unusable; error() says why. Every
  // complete packet is handed to `sink`, header included, in order.
  bool feed(std::span<const std::uint8_t> bytes, const Sink& sink);

  // True while part of a packet has arrived but not all of it.
  bool mid_packet() const { return !pending_.empty(); }
  const std::string& error() const { return error_; }
  std::size_t buffered() const { return pending_.size(); }
  // Heap the reader holds between packets: after a large packet it lets
  // the buffer go, so hundreds of idle connections don't each keep 64 KB.
  std::size_t held() const { return pending_.capacity(); }
  static constexpr std::size_t kKeepCapacity = 16384;

 private:
  bool check_header();

  std::vector<std::uint8_t> pending_;
  std::size_t need_ = kTlvSize;  // bytes that make the packet in `pending_` complete
  bool failed_ = false;
  std::string error_;
};

}  // namespace alfred::wire
