#pragma once
// How many network requests a primary answers. A request is 7 bytes from a
// source that UDP cannot authenticate, and its answer is the whole store of a
// type, so unlimited answers make the daemon an amplifier and let anyone fill
// the link's send queue. Each source (interface and MAC) has a token bucket;
// all answers together have a budget of replies and record bytes per second.
// Sources are spoofable, so the global budget is what holds; known sources
// (nodes whose data we hold: our secondaries and other primaries) have a
// budget of their own, so strangers spending theirs do not shut them out.
#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "engine/route.hpp"
#include "store/record.hpp"

namespace alfred {

struct RequestBudgetLimits {
  // Per source: a burst of this many, then one more every `refill`. A
  // secondary forwards every `alfred -r` of its clients (scripts, batadv-vis,
  // alfred-json), and a request it gets no answer to fails its client after
  // 10 s, so the rate is set well above what polling clients ask for.
  double burst = 32;
  std::chrono::milliseconds refill{50};
  // All strangers together, per second, and all known sources together:
  // answers and their record bytes.
  std::size_t replies_per_second = 64;
  std::size_t bytes_per_second = 16u << 20;
  // Sources tracked; past it the bucket idle longest is forgotten (a full
  // bucket and a forgotten one answer the same).
  std::size_t max_sources = 4096;
};

class RequestBudget {
 public:
  using Limits = RequestBudgetLimits;
  enum class Verdict { Answer, SourceLimited, GlobalLimited };

  RequestBudget() = default;
  explicit RequestBudget(Limits limits) : limits_(limits) {}

  // Takes a token for a request from `source` whose answer holds `bytes` of
  // records; the verdict says whether to answer it.
  Verdict admit(const std::string& iface, const Mac& source, std::size_t bytes, bool known,
               TimePoint now);

  // Forgets sources whose buckets have refilled (idle for burst x refill):
  // a full bucket and a forgotten one answer the same, so what a flood of
  // requests from many sources leaves behind goes once it stops.
  void expire(TimePoint now);

  std::size_t sources() const { return buckets_.size(); }
  std::uint64_t refused() const { return refused_; }

 private:
  using SourceKey = std::pair<std::string, Mac>;
  struct Bucket {
    double tokens = 0;
    TimePoint updated{};
  };
  void forget_idlest();
  void touch(std::map<SourceKey, Bucket>::iterator it, TimePoint now);

  Limits limits_;
  std::map<SourceKey, Bucket> buckets_;
  std::set<std::pair<TimePoint, SourceKey>> by_age_;  // least recently used first
  struct Window {
    TimePoint start{};
    std::size_t replies = 0;
    std::size_t bytes = 0;
  };
  Window strangers_, known_;
  std::uint64_t refused_ = 0;
};

}  // namespace alfred
