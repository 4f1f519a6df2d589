#pragma once
// The digest a delta-sync refresh names a record by (wire/session_frames.hpp).
// Both ends compute it from the record's bytes, so it must be the same on
// every build and CPU (std::hash is neither): 64-bit FNV-1a over the type,
// source, version, length and payload. It is no defence against a forger,
// who can send any record anyway; it only has to tell versions apart, and at
// 64 bits two versions of one record collide about once in 10^19 changes.
#include <cstdint>

#include "store/record.hpp"

namespace alfred {

std::uint64_t record_digest(const Record& r);

// The digest the store computed when it took the record in, or computed now
// for a record made elsewhere.
inline std::uint64_t digest_of(const Record& r) { return r.digest ? r.digest : record_digest(r); }

}  // namespace alfred
