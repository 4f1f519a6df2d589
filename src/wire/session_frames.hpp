#pragma once
// The frames our daemons add on a TCP stream to make it a session: a hello
// that both sides send (the opener first, the acceptor in answer), an
// acknowledgement of each complete transaction, and a keepalive. With delta
// sync (both hellos carry its flag) two more: the opener's refresh, which
// names the records the acceptor already holds from it unchanged (each with
// its digest) and keeps them alive instead of sending them again, and the
// acceptor's want, the records of a refresh it does not hold so. With
// compression (both hellos carry its flag) the opener may send a push-data
// packet deflated, as a packed frame (wire/packed_frame.hpp). They travel
// only on TCP and only between peers that both sent a hello: a 2016-framing
// peer closes the stream on the first one (an unknown type), and upstream's
// UDP parser never sees them.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "wire/mac.hpp"
#include "wire/packet.hpp"

namespace alfred::wire {

// Far above upstream's types (0-10), so that a new upstream type does not
// collide with them.
enum class SessionType : std::uint8_t {
  Hello = 0xc8,
  Ack = 0xc9,
  Keepalive = 0xca,
  Refresh = 0xcb,
  Want = 0xcc,
  Packed = 0xcd,
};
constexpr bool is_session_type(std::uint8_t t) { return t >= 0xc8 && t <= 0xcd; }
// A hello, ack or keepalive is small; a longer one is refused before it is
// buffered.
constexpr std::size_t kMaxSessionFrame = 64;
// A refresh or a want lists records, up to a whole TLV packet of them; a
// packed frame holds a packet's worth of deflated bytes.
constexpr bool is_record_list_type(std::uint8_t t) { return t == 0xcb || t == 0xcc; }
constexpr std::size_t session_frame_limit(std::uint8_t t) {
  return is_record_list_type(t) || t == 0xcd ? kMaxPacket : kMaxSessionFrame;
}
// On the wire: type, source MAC, then (refresh only) the 64-bit digest.
constexpr std::size_t kRefreshEntrySize = 1 + 6 + 8;
constexpr std::size_t kWantEntrySize = 1 + 6;
constexpr std::size_t kMaxRefreshEntries = kMaxTlvLength / kRefreshEntrySize;
constexpr std::uint8_t kSessionVersion = 1;

struct SessionHello {
  std::uint8_t version = kSessionVersion;
  bool answer = false;                 // the acceptor's hello, in reply to the opener's
  // The sender is a primary. A primary that restarted learns the other
  // primaries from their sessions re-forming, not a period later from
  // their announcements.
  bool primary = false;
  std::uint16_t keepalive_seconds = 0;  // how often the sender sends one when idle
  // The sender takes part in delta sync: the opener sends refreshes, the
  // acceptor answers them. Both must say so.
  bool delta = false;
  // The sender takes packed frames (deflated push data). The opener packs
  // only if the acceptor says so too.
  bool packed = false;
};
struct SessionAck {
  std::uint16_t tx_id = 0;
  std::uint16_t packets = 0;  // push packets the transaction had (its txend's seqno)
};
struct SessionKeepalive {};
struct RecordKey {
  std::uint8_t type = 0;
  Mac source{};
  friend auto operator<=>(const RecordKey&, const RecordKey&) = default;
};
struct RefreshEntry {
  RecordKey key;
  std::uint64_t digest = 0;  // record_digest() of the record the opener holds
};

struct SessionFrame {
  SessionType type = SessionType::Keepalive;
  SessionHello hello;
  SessionAck ack;
  std::vector<RefreshEntry> refresh;  // Refresh
  std::vector<RecordKey> want;        // Want
  // Packed: the deflated packet, inflated by wire::unpack (not here).
  std::span<const std::uint8_t> packed;
};

std::vector<std::uint8_t> encode(const SessionHello& h);
std::vector<std::uint8_t> encode(const SessionAck& a);
std::vector<std::uint8_t> encode(const SessionKeepalive&);
// At most kMaxRefreshEntries entries (the caller splits longer lists).
std::vector<std::uint8_t> encode_refresh(std::span<const RefreshEntry> entries);
std::vector<std::uint8_t> encode_want(std::span<const RecordKey> keys);

// Decodes one whole session frame (TLV header included); nullopt and a reason
// when it is not one. Bytes past the fields a frame needs are ignored, so a
// later version can add fields.
std::optional<SessionFrame> decode_session(std::span<const std::uint8_t> bytes, std::string& error);

}  // namespace alfred::wire
