#pragma once
// Cuts the one message a unix-socket client sends out of what has arrived so
// far. A client writes a single TLV; it may arrive in pieces, and anything
// after it is ignored, as upstream does. At most one message is buffered.
#include <cstdint>
#include <span>
#include <vector>

#include "wire/packet.hpp"

namespace alfred::ipc {

class MessageFramer {
 public:
  // Adds bytes; true once the message is complete (then message() holds it
  // and further bytes are ignored).
  bool feed(std::span<const std::uint8_t> bytes);
  bool complete() const { return complete_; }
  std::span<const std::uint8_t> message() const { return buf_; }
  std::size_t buffered() const { return buf_.size(); }

 private:
  std::vector<std::uint8_t> buf_;
  bool complete_ = false;
};

}  // namespace alfred::ipc
