#include "auth/replay_window.hpp"

#include <algorithm>

namespace alfred::auth {

ReplayWindow::Verdict ReplayWindow::admit(const Sender& sender, std::uint64_t counter, std::uint64_t now_us) {
  ++tick_;
  auto it = senders_.find(sender);
  if (it == senders_.end()) {
    if (senders_.size() >= max_senders_ && !senders_.empty()) {
      // O(senders) only when a new key holder shows up at the cap.
      auto oldest = std::min_element(senders_.begin(), senders_.end(), [](const auto& a, const auto& b) {
        return a.second.heard < b.second.heard;
      });
      senders_.erase(oldest);
    }
    senders_.emplace(sender, State{counter, 1, tick_, now_us});
    return Verdict::Fresh;
  }
  State& s = it->second;
  if (counter > s.highest) {
    std::uint64_t shift = counter - s.highest;
    s.seen = shift >= kWindow ? 0 : s.seen << shift;
    s.seen |= 1;
    s.highest = counter;
    s.heard = tick_;
    s.fresh_us = now_us;
    return Verdict::Fresh;
  }
  std::uint64_t behind = s.highest - counter;
  if (behind >= kWindow) return Verdict::TooOld;
  std::uint64_t bit = std::uint64_t{1} << behind;
  if (s.seen & bit) return Verdict::Replayed;
  s.seen |= bit;
  s.heard = tick_;
  s.fresh_us = now_us;
  return Verdict::Fresh;
}

std::optional<std::uint64_t> ReplayWindow::last_fresh(const Sender& sender) const {
  auto it = senders_.find(sender);
  if (it == senders_.end()) return std::nullopt;
  return it->second.fresh_us;
}

}  // namespace alfred::auth
