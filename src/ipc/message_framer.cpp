#include "ipc/message_framer.hpp"

#include <algorithm>

namespace alfred::ipc {

bool MessageFramer::feed(std::span<const std::uint8_t> bytes) {
  if (complete_) return true;
  // Take the header first, then exactly the body it announces.
  if (buf_.size() < wire::kTlvSize) {
    std::size_t take = std::min(bytes.size(), wire::kTlvSize - buf_.size());
    buf_.insert(buf_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    if (buf_.size() < wire::kTlvSize) return false;
  }
  wire::TlvHeader h;
  wire::read_tlv_header(buf_, h);
  std::size_t need = wire::kTlvSize + h.length;
  std::size_t take = std::min(bytes.size(), need - buf_.size());
  buf_.insert(buf_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
  complete_ = buf_.size() == need;
  return complete_;
}

}  // namespace alfred::ipc
