#pragma once
// Transition mode's duplicate check (issue 11): a node in transition sends
// every packet twice, sealed and then plain, so that nodes without a key
// hear it too. A keyed node takes the sealed copy; the plain one that
// repeats it is refused, so nothing is applied or answered twice. What is
// compared is the packet itself (a digest of it), not the sender alone: a
// plain packet that is not a copy of what its sender just sealed is taken
// as transition mode takes any plain packet, so neither a stale ARP entry
// nor a played-back capture can make a node deaf to an unkeyed neighbour.
//
// Bounded: kPerSender digests per sender, kMaxSenders senders (the least
// recently remembered goes); only packets that opened are remembered, so
// only key holders create entries.
#include <array>
#include <cstdint>
#include <map>
#include <span>

#include "auth/replay_window.hpp"

namespace alfred::auth {

class RecentPackets {
 public:
  static constexpr std::size_t kPerSender = 4;
  static constexpr std::size_t kMaxSenders = 4096;
  using Sender = ReplayWindow::Sender;  // senders told apart as the window does
  using Digest = std::array<std::uint8_t, 16>;

  explicit RecentPackets(std::size_t max_senders = kMaxSenders) : max_senders_(max_senders) {}

  // BLAKE2b (libsodium), 16 bytes.
  static Digest digest(std::span<const std::uint8_t> packet);

  // `sender` sealed a packet with this digest, opened at `now_us`.
  void remember(const Sender& sender, const Digest& d, std::uint64_t now_us);
  // Whether one of the last kPerSender packets opened from `sender` was
  // `packet` and was opened less than `window_us` before `now_us`. Hashed
  // only when the sender has any: plain traffic of unkeyed nodes costs a
  // lookup, not a digest.
  bool seen(const Sender& sender, std::span<const std::uint8_t> packet, std::uint64_t now_us,
            std::uint64_t window_us) const;
  std::size_t senders() const { return by_sender_.size(); }

 private:
  struct Entry {
    std::array<Digest, kPerSender> digests{};
    std::array<std::uint64_t, kPerSender> at{};
    std::size_t filled = 0, next = 0;
    std::uint64_t last = 0;  // remember() calls, for the least recently remembered
  };
  std::size_t max_senders_;
  std::uint64_t tick_ = 0;
  std::map<Sender, Entry> by_sender_;
};

}  // namespace alfred::auth
