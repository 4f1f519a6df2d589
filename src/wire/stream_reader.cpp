#include "wire/stream_reader.hpp"

#include <algorithm>

#include "wire/session_frames.hpp"

namespace alfred::wire {

bool StreamReader::check_header() {
  TlvHeader h;
  read_tlv_header(pending_, h);
  if (h.version != kVersion) {
    error_ = "stream packet with unsupported version " + std::to_string(h.version);
    return false;
  }
  if (h.type > kMaxType && !is_session_type(h.type)) {
    error_ = "stream packet of unknown type " + std::to_string(h.type);
    return false;
  }
  // Session frames other than the record lists are a few bytes; one
  // announcing more is refused before anything of it is buffered.
  if (is_session_type(h.type) && kTlvSize + h.length > session_frame_limit(h.type)) {
    error_ = "session frame announces " + std::to_string(h.length) + " bytes";
    return false;
  }
  if (h.length > kMaxTlvLength) {
    error_ = "stream packet announces " + std::to_string(h.length) + " bytes, more than " +
             std::to_string(kMaxTlvLength);
    return false;
  }
  // Not reserved: a header alone must not buy 64 KB of heap. The buffer
  // grows with what arrives.
  need_ = kTlvSize + h.length;
  return true;
}

bool StreamReader::feed(std::span<const std::uint8_t> bytes, const Sink& sink) {
  if (failed_) return false;
  while (!bytes.empty()) {
    std::size_t take = std::min(bytes.size(), need_ - pending_.size());
    pending_.insert(pending_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    if (pending_.size() < need_) break;
    if (need_ == kTlvSize) {
      if (!check_header()) {
        failed_ = true;
        pending_.clear();
        return false;
      }
      if (need_ > kTlvSize) continue;  // the body follows
    }
    sink(pending_);
    pending_.clear();
    if (pending_.capacity() > kKeepCapacity) std::vector<std::uint8_t>().swap(pending_);
    need_ = kTlvSize;
  }
  return true;
}

}  // namespace alfred::wire
