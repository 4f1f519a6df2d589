#pragma once
// What a delta-sync refresh did at the receiver (Engine::on_refresh): how
// many records it kept alive, and the ones the sender should send after all.
#include <cstddef>
#include <vector>

#include "wire/session_frames.hpp"

namespace alfred {

struct RefreshOutcome {
  std::size_t kept = 0;
  std::vector<wire::RecordKey> want;
};

}  // namespace alfred
