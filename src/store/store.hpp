#pragma once
// The data store: one record per (source MAC, data type).
#include <bitset>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "store/record.hpp"

namespace alfred {

class Store {
 public:
  static constexpr std::chrono::seconds kRecordTimeout{600};

  // What an update did; `changed` is true when the record is new or its
  // payload differs (a new version alone is stored silently), which is what
  // triggers events and -c.
  struct Update {
    bool applied = false;
    bool changed = false;
  };

  // Data set by a client of this node. Always wins.
  Update set_local(Record rec, TimePoint now);
  // Data received from `sender`; never overwrites Local data. A record whose
  // source is the sender itself is first-hand, anything else is synced.
  Update apply_remote(Record rec, const Mac& sender, TimePoint now);

  // Records of at most `max_level` (Local < FirstHand < Synced), optionally of
  // one type, ordered by type then source.
  Snapshot snapshot(Source max_level, std::optional<std::uint8_t> type = std::nullopt) const;

  // The named records, where present and of at most `max_level`.
  Snapshot snapshot_of(const std::vector<std::pair<std::uint8_t, Mac>>& keys,
                       Source max_level) const;

  // Drops records not refreshed for kRecordTimeout; returns their types.
  std::bitset<256> expire(TimePoint now);

  std::size_t size() const { return entries_.size(); }
  std::size_t payload_bytes() const { return payload_bytes_; }
  const Record* find(const Mac& source, std::uint8_t type) const;
  std::optional<Source> source_of(const Mac& source, std::uint8_t type) const;

 private:
  struct Entry {
    RecordPtr record;
    Source source = Source::Synced;
    TimePoint last_seen;
  };
  using Key = std::pair<std::uint8_t, Mac>;

  Update put(Record rec, Source source, TimePoint now);

  std::map<Key, Entry> entries_;
  std::size_t payload_bytes_ = 0;
};

}  // namespace alfred
