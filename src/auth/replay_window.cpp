#include "auth/replay_window.hpp"

#include <algorithm>

namespace alfred::auth {
namespace {

using Bitmap = std::array<std::uint64_t, ReplayWindow::kWindow / 64>;

// Bit i moves to bit i + n (what was highest - i is now newest - (i + n));
// what passes the top falls out of the window.
void shift_up(Bitmap& bits, std::uint64_t n) {
  if (n >= ReplayWindow::kWindow) {
    bits.fill(0);
    return;
  }
  const std::size_t words = n / 64, rest = n % 64;
  for (std::size_t i = bits.size(); i-- > 0;) {
    std::uint64_t v = i >= words ? bits[i - words] << rest : 0;
    if (rest && i >= words + 1) v |= bits[i - words - 1] >> (64 - rest);
    bits[i] = v;
  }
}

bool test(const Bitmap& bits, std::uint64_t i) { return (bits[i / 64] >> (i % 64)) & 1; }
void set(Bitmap& bits, std::uint64_t i) { bits[i / 64] |= std::uint64_t{1} << (i % 64); }

}  // namespace

ReplayWindow::Verdict ReplayWindow::admit(const Sender& sender, std::uint64_t counter) {
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
    State fresh{counter, {}, tick_};
    set(fresh.seen, 0);
    senders_.emplace(sender, fresh);
    return Verdict::Fresh;
  }
  State& s = it->second;
  if (counter > s.highest) {
    shift_up(s.seen, counter - s.highest);
    set(s.seen, 0);
    s.highest = counter;
    s.heard = tick_;
    return Verdict::Fresh;
  }
  std::uint64_t behind = s.highest - counter;
  if (behind >= kWindow) return Verdict::TooOld;
  if (test(s.seen, behind)) return Verdict::Replayed;
  set(s.seen, behind);
  s.heard = tick_;
  return Verdict::Fresh;
}

}  // namespace alfred::auth
