#pragma once
// The frames our daemons add on a TCP stream to make it a session: a hello
// that both sides send (the opener first, the acceptor in answer), an
// acknowledgement of each complete transaction, and a keepalive. They travel
// only on TCP and only between peers that both sent a hello: a 2016-framing
// peer closes the stream on the first one (an unknown type), and upstream's
// UDP parser never sees them.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "wire/packet.hpp"

namespace alfred::wire {

// Far above upstream's types (0-10), so that a new upstream type does not
// collide with them.
enum class SessionType : std::uint8_t { Hello = 0xc8, Ack = 0xc9, Keepalive = 0xca };
constexpr bool is_session_type(std::uint8_t t) { return t >= 0xc8 && t <= 0xca; }
// A session frame is small; a longer one is refused before it is buffered.
constexpr std::size_t kMaxSessionFrame = 64;
constexpr std::uint8_t kSessionVersion = 1;

struct SessionHello {
  std::uint8_t version = kSessionVersion;
  bool answer = false;                 // the acceptor's hello, in reply to the opener's
  // The sender is a primary. A primary that restarted learns the other
  // primaries from their sessions re-forming, not a period later from
  // their announcements.
  bool primary = false;
  std::uint16_t keepalive_seconds = 0;  // how often the sender sends one when idle
};
struct SessionAck {
  std::uint16_t tx_id = 0;
  std::uint16_t packets = 0;  // push packets the transaction had (its txend's seqno)
};
struct SessionKeepalive {};

struct SessionFrame {
  SessionType type = SessionType::Keepalive;
  SessionHello hello;
  SessionAck ack;
};

std::vector<std::uint8_t> encode(const SessionHello& h);
std::vector<std::uint8_t> encode(const SessionAck& a);
std::vector<std::uint8_t> encode(const SessionKeepalive&);

// Decodes one whole session frame (TLV header included); nullopt and a reason
// when it is not one. Bytes past the fields a frame needs are ignored, so a
// later version can add fields.
std::optional<SessionFrame> decode_session(std::span<const std::uint8_t> bytes, std::string& error);

}  // namespace alfred::wire
