#pragma once
// Per-packet diagnostics under a flood: a line per dropped packet would cost
// more than the packet (and fill a router's log), so each kind of drop is
// logged at most once per interval, the next line saying how many were left
// out. Fed the clock like the rest of the core.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "store/record.hpp"

namespace alfred {

class LogLimiter {
 public:
  explicit LogLimiter(Duration interval = std::chrono::seconds(1)) : interval_(interval) {}

  // Whether an event of `kind` is logged now: nullopt to stay silent, else
  // the text to append to its line (how many were left out before it).
  // Callers build the line only when it is logged.
  std::optional<std::string> admit(std::string_view kind, TimePoint now) {
    auto it = kinds_.find(kind);
    if (it == kinds_.end()) it = kinds_.emplace(std::string(kind), Kind{}).first;
    Kind& k = it->second;
    if (k.logged && now < k.next) {
      ++k.suppressed;
      return std::nullopt;
    }
    std::string suffix;
    if (k.suppressed) suffix = " (" + std::to_string(k.suppressed) + " more like it before)";
    k.logged = true;
    k.suppressed = 0;
    k.next = now + interval_;
    return suffix;
  }

  // Events of `kind` left out since its last logged line.
  std::uint64_t suppressed(std::string_view kind) const {
    auto it = kinds_.find(kind);
    return it == kinds_.end() ? 0 : it->second.suppressed;
  }

 private:
  struct Kind {
    bool logged = false;
    TimePoint next{};
    std::uint64_t suppressed = 0;
  };
  Duration interval_;
  std::map<std::string, Kind, std::less<>> kinds_;  // a fixed set of literals
};

}  // namespace alfred
