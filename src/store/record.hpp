#pragma once
// A stored fact. Records are immutable once made and shared by pointer, so a
// snapshot taken for a sync or a reply stays consistent while writers replace
// entries in the store, and nobody copies the payload to send it.
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "wire/mac.hpp"

namespace alfred {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

// How a record reached us, from most to least trusted. A sync sends records up
// to a level: a secondary pushes only Local ones, a primary Local and FirstHand.
enum class Source : std::uint8_t { Local = 0, FirstHand = 1, Synced = 2 };

struct Record {
  Mac source{};
  std::uint8_t type = 0;
  std::uint8_t version = 0;
  std::vector<std::uint8_t> data;
  // record_digest() of the above, filled in by the store when it takes the
  // record in (0: not computed); delta sync compares records by it.
  std::uint64_t digest = 0;
};

using RecordPtr = std::shared_ptr<const Record>;
// An ordered list of records frozen at one moment.
using Snapshot = std::vector<RecordPtr>;

}  // namespace alfred
