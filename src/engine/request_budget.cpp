#include "engine/request_budget.hpp"

#include <algorithm>

namespace alfred {

void RequestBudget::expire(TimePoint now) {
  auto full_after = std::chrono::duration_cast<Duration>(limits_.refill * limits_.burst);
  while (!by_age_.empty() && now - by_age_.begin()->first >= full_after) forget_idlest();
}

RequestBudget::Verdict RequestBudget::admit(const std::string& iface, const Mac& source,
                                            std::size_t bytes, bool known, TimePoint now) {
  expire(now);  // amortised: each source is forgotten once
  SourceKey key{iface, source};
  auto it = buckets_.find(key);
  if (it != buckets_.end()) {
    double refill = std::chrono::duration<double>(now - it->second.updated) /
                    std::chrono::duration<double>(limits_.refill);
    it->second.tokens = std::min(limits_.burst, it->second.tokens + std::max(0.0, refill));
    touch(it, now);
    if (it->second.tokens < 1) {
      ++refused_;
      return Verdict::SourceLimited;
    }
  }
  Window& w = known ? known_ : strangers_;
  if (now - w.start >= std::chrono::seconds(1)) w = Window{now, 0, 0};
  // A known source's answer is let through even when it alone is over the
  // byte budget, or a type larger than the budget could never be asked for.
  if (w.replies >= limits_.replies_per_second ||
      ((w.replies > 0 || !known) && w.bytes + bytes > limits_.bytes_per_second)) {
    ++refused_;
    return Verdict::GlobalLimited;
  }
  // A source gets a bucket only once it is answered: an unknown source's
  // bucket would be full, so a refusal by the window decides nothing a bucket
  // could remember. Buckets are then made at most at the windows' rate (128
  // a second) and not one per spoofed address of a flood, whose requests cost
  // 7 bytes each on the wire and a bucket ~170 bytes of heap.
  if (it == buckets_.end()) {
    if (buckets_.size() >= limits_.max_sources) forget_idlest();
    it = buckets_.emplace(key, Bucket{limits_.burst, now}).first;
    by_age_.insert({now, key});
  }
  it->second.tokens -= 1;
  ++w.replies;
  w.bytes += bytes;
  return Verdict::Answer;
}

void RequestBudget::touch(std::map<SourceKey, Bucket>::iterator it, TimePoint now) {
  by_age_.erase({it->second.updated, it->first});
  it->second.updated = now;
  by_age_.insert({now, it->first});
}

void RequestBudget::forget_idlest() {
  if (by_age_.empty()) return;
  auto oldest = by_age_.begin();
  buckets_.erase(oldest->second);
  by_age_.erase(oldest);
}

}  // namespace alfred
