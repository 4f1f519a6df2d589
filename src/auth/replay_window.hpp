#pragma once
// Replay protection for sealed datagrams (issue 11). Every sender numbers
// what it seals with a counter that only grows (it starts from its clock, so
// a restart does not reuse numbers); a receiver takes each number once per
// sender, and nothing kWindow or more below the highest it has taken, so
// datagrams reordered on the link still count and a captured one played
// back does not.
//
// Only datagrams that authenticated are committed: a forged counter must not
// move a sender's window. So only key holders create entries; their number
// is capped all the same (kMaxSenders, least recently heard goes, and is
// taken on trust again when next heard).
//
// What this cannot see: a datagram captured before the receiver (re)started
// and played back before the sender is heard again. Streams have no such
// gap (their handshake takes fresh nonces from both sides).
#include <array>
#include <cstdint>
#include <map>

namespace alfred::auth {

class ReplayWindow {
 public:
  // Counters are per sender, not per receiver: between two datagrams to us
  // a primary may send a burst to many others (a sync to every peer), and
  // our unicast and group sockets are drained one after the other, so what
  // we take can lag the newest by that burst. 1,024 covers it, at 128 bytes
  // of bitmap per sender (about 200 with the rest of its entry: 0.8 MB at
  // the cap, for key holders only).
  static constexpr std::uint64_t kWindow = 1024;
  static constexpr std::size_t kMaxSenders = 4096;
  // Who sent it, as the caller tells senders apart (its source address).
  using Sender = std::array<std::uint8_t, 16>;

  enum class Verdict { Fresh, Replayed, TooOld };

  explicit ReplayWindow(std::size_t max_senders = kMaxSenders) : max_senders_(max_senders) {}

  // Fresh: taken, and remembered. Otherwise nothing changes.
  Verdict admit(const Sender& sender, std::uint64_t counter);
  std::size_t senders() const { return senders_.size(); }

 private:
  struct State {
    std::uint64_t highest = 0;
    std::array<std::uint64_t, kWindow / 64> seen{};  // bit i: highest - i taken
    std::uint64_t heard = 0; // admit() calls, for the least recently heard
  };
  std::size_t max_senders_;
  std::uint64_t tick_ = 0;
  std::map<Sender, State> senders_;
};

}  // namespace alfred::auth
