#include "wire/packed_frame.hpp"

#include <zlib.h>

#include <algorithm>

#include "wire/packet.hpp"
#include "wire/session_frames.hpp"

namespace alfred::wire {
namespace {

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

bool is_push_data(std::span<const std::uint8_t> packet) {
  TlvHeader h;
  return read_tlv_header(packet, h) && h.type == static_cast<std::uint8_t>(Type::PushData) &&
         h.version == kVersion && packet.size() == kTlvSize + h.length && packet.size() >= kPushHeaderSize;
}

bool starts_compressed(const std::uint8_t* d, std::size_t n) {
  if (n < 4) return false;
  if (d[0] == 0x1f && d[1] == 0x8b) return true;                                    // gzip
  if (d[0] == 0x28 && d[1] == 0xb5 && d[2] == 0x2f && d[3] == 0xfd) return true;    // zstd
  if (n >= 6 && d[0] == 0xfd && d[1] == '7' && d[2] == 'z' && d[3] == 'X' && d[4] == 'Z')
    return true;                                                                     // xz
  // zlib: deflate, a window of at most 32 KiB, and the header's check bits
  // (text never starts so: 0x78 is 'x', and the next byte is not printable
  // ASCII for the usual levels).
  return (d[0] & 0x0f) == 8 && (d[0] >> 4) <= 7 && (d[0] << 8 | d[1]) % 31 == 0 &&
         (d[1] == 0x01 || d[1] == 0x5e || d[1] == 0x9c || d[1] == 0xda);
}

}  // namespace

std::string_view to_string(PackResult r) {
  switch (r) {
    case PackResult::Packed: return "packed";
    case PackResult::TooSmall: return "too small";
    case PackResult::Precompressed: return "compressed already";
    case PackResult::NoGain: return "no gain";
    case PackResult::TooDense: return "too dense";
    case PackResult::NotPushData: return "not push data";
  }
  return "?";
}

bool mostly_precompressed(std::span<const std::uint8_t> packet) {
  std::size_t total = 0, compressed = 0;
  std::size_t pos = kPushHeaderSize;
  while (pos + kDataHeaderSize <= packet.size()) {
    std::size_t len = be16(packet.data() + pos + 8);
    std::size_t data = pos + kDataHeaderSize;
    if (data + len > packet.size()) break;
    total += len;
    if (starts_compressed(packet.data() + data, len)) compressed += len;
    pos = data + len;
  }
  return total > 0 && compressed * 2 > total;
}

PackResult pack(std::span<const std::uint8_t> packet, std::vector<std::uint8_t>& out) {
  if (!is_push_data(packet)) return PackResult::NotPushData;
  if (packet.size() < kMinPackable) return PackResult::TooSmall;
  if (mostly_precompressed(packet)) return PackResult::Precompressed;
  uLong src = static_cast<uLong>(packet.size());
  std::vector<std::uint8_t> frame(kTlvSize + compressBound(src));
  uLongf n = static_cast<uLongf>(frame.size() - kTlvSize);
  // Per call, not kept: deflate's state is about 256 KiB, which a router
  // should not hold between the few packets a delta sync sends.
  if (compress2(frame.data() + kTlvSize, &n, packet.data(), src, Z_DEFAULT_COMPRESSION) != Z_OK)
    return PackResult::NoGain;
  if (n * kMaxPackRatio < packet.size()) return PackResult::TooDense;
  if (kTlvSize + n > packet.size() - packet.size() / 8) return PackResult::NoGain;
  frame.resize(kTlvSize + n);
  frame[0] = static_cast<std::uint8_t>(SessionType::Packed);
  frame[1] = kVersion;
  frame[2] = static_cast<std::uint8_t>(n >> 8);
  frame[3] = static_cast<std::uint8_t>(n & 0xff);
  out = std::move(frame);
  return PackResult::Packed;
}

bool unpack(std::span<const std::uint8_t> body, std::vector<std::uint8_t>& packet, std::string& error) {
  if (body.empty() || body.size() > kMaxTlvLength) {
    error = "packed frame of " + std::to_string(body.size()) + " bytes";
    return false;
  }
  std::size_t limit = std::min(kMaxPacket, body.size() * kMaxPackRatio);
  packet.resize(limit);
  uLongf n = static_cast<uLongf>(limit);
  uLong used = static_cast<uLong>(body.size());
  int rc = uncompress2(packet.data(), &n, body.data(), &used);
  if (rc == Z_BUF_ERROR) {
    packet.clear();
    error = "packed frame of " + std::to_string(body.size()) + " bytes inflates past " +
            std::to_string(limit) + " bytes";
    return false;
  }
  if (rc != Z_OK) {
    packet.clear();
    error = "packed frame does not inflate (zlib error " + std::to_string(rc) + ")";
    return false;
  }
  if (used != body.size()) {
    packet.clear();
    error = "packed frame has " + std::to_string(body.size() - used) + " bytes after its deflate stream";
    return false;
  }
  packet.resize(n);
  if (!is_push_data(packet)) {
    packet.clear();
    error = "packed frame does not hold one whole push-data packet";
    return false;
  }
  return true;
}

}  // namespace alfred::wire
