#include "wire/session_frames.hpp"

#include <algorithm>

namespace alfred::wire {
namespace {

// "AlfS": tells a hello from anything that merely has its type byte.
constexpr std::uint8_t kMagic[4] = {'A', 'l', 'f', 'S'};
constexpr std::uint8_t kFlagAnswer = 0x01;
constexpr std::uint8_t kFlagPrimary = 0x02;
constexpr std::uint8_t kFlagDelta = 0x04;
constexpr std::uint8_t kFlagPacked = 0x08;

std::vector<std::uint8_t> frame(SessionType t, std::initializer_list<std::uint8_t> body) {
  // Sized once and filled by index: gcc 12 warns (-Warray-bounds, a false
  // positive) on inserting the list after the header.
  std::vector<std::uint8_t> out(kTlvSize + body.size());
  out[0] = static_cast<std::uint8_t>(t);
  out[1] = kVersion;
  out[2] = static_cast<std::uint8_t>(body.size() >> 8);
  out[3] = static_cast<std::uint8_t>(body.size() & 0xff);
  std::size_t i = kTlvSize;
  for (std::uint8_t b : body) out[i++] = b;
  return out;
}

std::uint8_t hi(std::uint16_t v) { return static_cast<std::uint8_t>(v >> 8); }
std::uint8_t lo(std::uint16_t v) { return static_cast<std::uint8_t>(v & 0xff); }
std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

std::vector<std::uint8_t> list_frame(SessionType t, std::size_t body) {
  std::vector<std::uint8_t> out;
  out.reserve(kTlvSize + body);
  out.push_back(static_cast<std::uint8_t>(t));
  out.push_back(kVersion);
  out.push_back(static_cast<std::uint8_t>(body >> 8));
  out.push_back(static_cast<std::uint8_t>(body & 0xff));
  return out;
}

void put_key(std::vector<std::uint8_t>& out, const RecordKey& k) {
  out.push_back(k.type);
  out.insert(out.end(), k.source.begin(), k.source.end());
}

RecordKey get_key(const std::uint8_t* p) {
  RecordKey k;
  k.type = p[0];
  std::copy(p + 1, p + 7, k.source.begin());
  return k;
}

// A refresh or a want: whole entries of `size` bytes, at least one.
template <typename T, typename Read>
bool decode_list(std::span<const std::uint8_t> body, std::size_t size, const char* what, std::vector<T>& out,
                 std::string& error, Read read) {
  if (body.empty() || body.size() % size != 0) {
    error = std::string("session ") + what + " of " + std::to_string(body.size()) + " bytes";
    return false;
  }
  out.reserve(body.size() / size);
  for (std::size_t i = 0; i < body.size(); i += size) out.push_back(read(body.data() + i));
  return true;
}

}  // namespace

std::vector<std::uint8_t> encode(const SessionHello& h) {
  return frame(SessionType::Hello,
               {kMagic[0], kMagic[1], kMagic[2], kMagic[3], h.version,
                static_cast<std::uint8_t>((h.answer ? kFlagAnswer : 0) | (h.primary ? kFlagPrimary : 0) |
                                          (h.delta ? kFlagDelta : 0) | (h.packed ? kFlagPacked : 0)),
                hi(h.keepalive_seconds),
                lo(h.keepalive_seconds)});
}

std::vector<std::uint8_t> encode(const SessionAck& a) {
  return frame(SessionType::Ack, {hi(a.tx_id), lo(a.tx_id), hi(a.packets), lo(a.packets)});
}

std::vector<std::uint8_t> encode(const SessionKeepalive&) { return frame(SessionType::Keepalive, {}); }

std::vector<std::uint8_t> encode_refresh(std::span<const RefreshEntry> entries) {
  if (entries.size() > kMaxRefreshEntries) entries = entries.first(kMaxRefreshEntries);
  auto out = list_frame(SessionType::Refresh, entries.size() * kRefreshEntrySize);
  for (const auto& e : entries) {
    put_key(out, e.key);
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<std::uint8_t>(e.digest >> shift));
  }
  return out;
}

std::vector<std::uint8_t> encode_want(std::span<const RecordKey> keys) {
  constexpr std::size_t max = kMaxTlvLength / kWantEntrySize;
  if (keys.size() > max) keys = keys.first(max);
  auto out = list_frame(SessionType::Want, keys.size() * kWantEntrySize);
  for (const auto& k : keys) put_key(out, k);
  return out;
}

std::optional<SessionFrame> decode_session(std::span<const std::uint8_t> bytes, std::string& error) {
  TlvHeader h;
  if (!read_tlv_header(bytes, h)) {
    error = "session frame shorter than its header";
    return std::nullopt;
  }
  if (!is_session_type(h.type)) {
    error = "not a session frame (type " + std::to_string(h.type) + ")";
    return std::nullopt;
  }
  if (h.version != kVersion) {
    error = "session frame of version " + std::to_string(h.version);
    return std::nullopt;
  }
  if (kTlvSize + h.length > session_frame_limit(h.type) || bytes.size() < kTlvSize + h.length) {
    error = "session frame of " + std::to_string(h.length) + " bytes, of " +
            std::to_string(bytes.size() - kTlvSize) + " received";
    return std::nullopt;
  }
  auto body = bytes.subspan(kTlvSize, h.length);
  SessionFrame f;
  f.type = static_cast<SessionType>(h.type);
  switch (f.type) {
    case SessionType::Hello:
      if (body.size() < 8 || !std::equal(kMagic, kMagic + 4, body.begin())) {
        error = "session hello without its magic";
        return std::nullopt;
      }
      f.hello.version = body[4];
      if (f.hello.version == 0) {
        error = "session hello of version 0";
        return std::nullopt;
      }
      f.hello.answer = (body[5] & kFlagAnswer) != 0;
      f.hello.primary = (body[5] & kFlagPrimary) != 0;
      f.hello.delta = (body[5] & kFlagDelta) != 0;
      f.hello.packed = (body[5] & kFlagPacked) != 0;
      f.hello.keepalive_seconds = be16(body.data() + 6);
      return f;
    case SessionType::Ack:
      if (body.size() < 4) {
        error = "session ack of " + std::to_string(body.size()) + " bytes";
        return std::nullopt;
      }
      f.ack.tx_id = be16(body.data());
      f.ack.packets = be16(body.data() + 2);
      return f;
    case SessionType::Keepalive:
      return f;
    case SessionType::Refresh:
      if (!decode_list(body, kRefreshEntrySize, "refresh", f.refresh, error, [](const std::uint8_t* p) {
            RefreshEntry e;
            e.key = get_key(p);
            for (std::size_t b = 7; b < kRefreshEntrySize; ++b) e.digest = e.digest << 8 | p[b];
            return e;
          }))
        return std::nullopt;
      return f;
    case SessionType::Want:
      if (!decode_list(body, kWantEntrySize, "want", f.want, error, get_key)) return std::nullopt;
      return f;
    case SessionType::Packed:
      if (body.empty()) {
        error = "empty packed frame";
        return std::nullopt;
      }
      f.packed = body;
      return f;
  }
  error = "unknown session frame";
  return std::nullopt;
}

}  // namespace alfred::wire
