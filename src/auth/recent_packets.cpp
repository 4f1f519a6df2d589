#include "auth/recent_packets.hpp"

#include <sodium.h>

#include <algorithm>

namespace alfred::auth {

RecentPackets::Digest RecentPackets::digest(std::span<const std::uint8_t> packet) {
  Digest d;
  crypto_generichash(d.data(), d.size(), packet.data(), packet.size(), nullptr, 0);
  return d;
}

void RecentPackets::remember(const Sender& sender, const Digest& d, std::uint64_t now_us) {
  ++tick_;
  auto it = by_sender_.find(sender);
  if (it == by_sender_.end()) {
    if (by_sender_.size() >= max_senders_ && !by_sender_.empty()) {
      // O(senders) only when a new key holder shows up at the cap.
      auto oldest = std::min_element(by_sender_.begin(), by_sender_.end(),
                                     [](const auto& a, const auto& b) { return a.second.last < b.second.last; });
      by_sender_.erase(oldest);
    }
    it = by_sender_.emplace(sender, Entry{}).first;
  }
  Entry& e = it->second;
  e.digests[e.next] = d;
  e.at[e.next] = now_us;
  e.next = (e.next + 1) % kPerSender;
  e.filled = std::min(e.filled + 1, kPerSender);
  e.last = tick_;
}

bool RecentPackets::seen(const Sender& sender, std::span<const std::uint8_t> packet, std::uint64_t now_us,
                         std::uint64_t window_us) const {
  auto it = by_sender_.find(sender);
  if (it == by_sender_.end()) return false;
  const Entry& e = it->second;
  const Digest d = digest(packet);
  for (std::size_t i = 0; i < e.filled; ++i)
    if (e.digests[i] == d && now_us >= e.at[i] && now_us - e.at[i] < window_us) return true;
  return false;
}

}  // namespace alfred::auth
