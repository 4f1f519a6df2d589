#pragma once
// The data store: one record per (source MAC, data type).
//
// Records are bounded in count and in the memory they really take (payload,
// record, shared-pointer block, map and index nodes). Sender addresses are
// not authenticated: anyone on the link can send under as many as it likes.
// So when a bound is hit, room is taken by tiers, not by weight alone:
//   - newcomers (senders first heard less than Limits::settle ago) give way
//     first: the heaviest loses its record heard longest ago, the one heard
//     first latest among equals;
//   - a newcomer takes room only from a newcomer at least as heavy as it
//     will be, so a flood from many forged addresses churns among itself;
//   - a settled sender takes room only from newcomers, never from another
//     settled one: by weight alone, light forged senders that once settled
//     would evict the heaviest honest sender (the primary that syncs us the
//     mesh) first;
//   - local data takes room from newcomers, then from the heaviest settled
//     sender; it is never evicted itself, and once only it is left a new
//     local record is refused.
// So what the store held before a flood stays, refreshes always go through,
// and while the store is full of settled senders, growth is refused.
#include <array>
#include <chrono>
#include <bitset>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "store/record.hpp"

namespace alfred {

struct StoreLimits {
  // A 1,000-node mesh with a handful of types each is about 5,000 records
  // and 3 MB; both bounds leave several times that. The byte bound also
  // holds a 30 MB data set of large records (the benchmark's TCP stream),
  // which the transaction table is sized for too.
  std::size_t max_records = 32768;
  std::size_t max_bytes = 40u << 20;
  // How long a sender must have held records here before a newcomer can no
  // longer take its room: several sync periods, so honest primaries and
  // secondaries are settled long before an attack, while a flood's forged
  // senders, evicted among themselves, rarely live that long.
  std::chrono::seconds settle{60};
  // A copy its source sent us less than this long ago is not overwritten by
  // a copy another primary syncs us (nor re-filed under it by a refresh):
  // the source's own word is the freshest there is. Without it two primaries
  // can trade a stale copy for ever. A secondary that moved from primary A
  // to B leaves A a first-hand copy that A syncs every period; at B the
  // secondary's push and A's sync arrive in turn between two of B's ticks,
  // so at each tick B holds A's stale copy, synced, which it doesn't sync
  // on, and A never gets the fresh one until first_hand_hold demotes its
  // copy (CI at 18e71d9, test_cross_arch, -p 1: 10 s and not converged).
  // About two of the source's periods: past that our copy may be the stale
  // one, and the other primary's word is taken again. Zero: no guard.
  Duration first_hand_guard{std::chrono::seconds(20)};
};

class Store {
 public:
  static constexpr std::chrono::seconds kRecordTimeout{600};
  using Limits = StoreLimits;

  Store() = default;
  explicit Store(Limits limits) : limits_(limits) {}

  // Memory a record with `size` bytes of payload takes in the store.
  static std::size_t record_cost(std::size_t size);
  // What a sender's entry in the eviction indexes takes.
  static std::size_t sender_cost();

  // What an update did; `changed` is true when the record is new or its
  // payload differs (a new version alone is stored silently), which is what
  // triggers events and -c.
  struct Update {
    bool applied = false;
    bool changed = false;
    bool refused = false;  // a limit was hit and nothing could be evicted
  };

  // Data set by a client of this node. Always wins.
  Update set_local(Record rec, TimePoint now);
  // Data received from `sender`; never overwrites Local data, nor a
  // first-hand copy within Limits::first_hand_guard by a synced one. A
  // record whose source is the sender itself is first-hand, anything else
  // is synced.
  Update apply_remote(Record rec, const Mac& sender, TimePoint now);

  // A delta-sync refresh from `sender` names a record it holds by its
  // digest. Kept: we hold the same, and it counts as received again from
  // `sender` now (apply_remote of the same record, without its bytes).
  // Otherwise the sender should send it: we hold none (Missing) or another
  // (Differs); or it must not (Local: ours always wins; FirstHand: its
  // source sent us ours within Limits::first_hand_guard and `sender` is not
  // the source; Refused: no room). Kept from a sender that is not the
  // source leaves such a guarded first-hand copy as it is.
  enum class Refresh { Kept, Missing, Differs, Local, FirstHand, Refused };
  Refresh refresh(std::uint8_t type, const Mac& source, std::uint64_t digest, const Mac& sender,
                  TimePoint now);

  // Records of at most `max_level` (Local < FirstHand < Synced), optionally of
  // one type, ordered by type then source.
  Snapshot snapshot(Source max_level, std::optional<std::uint8_t> type = std::nullopt) const;

  // The named records, where present and of at most `max_level`.
  Snapshot snapshot_of(const std::vector<std::pair<std::uint8_t, Mac>>& keys,
                       Source max_level) const;

  // Drops records not refreshed for kRecordTimeout; returns their types.
  std::bitset<256> expire(TimePoint now);

  // First-hand records whose source has not sent them to us for `hold` count
  // as synced from now on; returns how many. A secondary pushes to one
  // primary only, every period: once it has moved to another primary, the
  // copy it left here is stale, and a primary syncs its first-hand records
  // to every other one, whose fresher copy it would overwrite each period
  // until ours expired (600 s), while theirs, synced, never came back to
  // correct ours.
  std::size_t demote_first_hand(TimePoint now, Duration hold);

  std::size_t size() const { return entries_.size(); }
  std::size_t payload_bytes() const { return payload_bytes_; }
  std::size_t memory() const { return memory_; }  // what the byte bound counts
  std::size_t type_bytes(std::uint8_t type) const { return type_bytes_[type]; }
  std::size_t type_records(std::uint8_t type) const { return type_records_[type]; }
  std::uint64_t evicted() const { return evicted_; }
  std::size_t senders() const { return senders_.size(); }
  // Whether `sender` has held records here for Limits::settle (as of the last
  // update that needed room or `now`, whichever is later).
  bool settled(const Mac& sender, TimePoint now) const;
  // Whether records we hold came from `sender` (a node that syncs with us).
  bool has_sender(const Mac& sender) const { return senders_.count(sender) != 0; }
  const Limits& limits() const { return limits_; }
  const Record* find(const Mac& source, std::uint8_t type) const;
  RecordPtr get(const Mac& source, std::uint8_t type) const;  // shared, or nullptr
  std::optional<Source> source_of(const Mac& source, std::uint8_t type) const;

 private:
  using Key = std::pair<std::uint8_t, Mac>;
  struct Entry {
    RecordPtr record;
    Source source = Source::Synced;
    TimePoint last_seen;
    Mac sender{};  // who sent it (remote records only)
  };
  struct SenderUsage {
    std::size_t memory = 0;
    TimePoint since;       // when it was first heard (while it held records)
    bool settled = false;  // moved to settled_ by settle_senders()
    std::set<std::pair<TimePoint, Key>> by_age;  // its records, heard longest ago first
  };
  // Senders by memory, heaviest last; among equals the one first heard
  // latest last (settled senders all have `since` zero here).
  using Weight = std::tuple<std::size_t, TimePoint, Mac>;
  using Weights = std::set<Weight>;

  Update put(Record rec, Source source, const Mac& sender, TimePoint now);
  // A first-hand copy its source sent less than Limits::first_hand_guard ago.
  bool guarded(const Entry& e, TimePoint now) const;
  // Makes room for `cost` more bytes (and, if `new_entry`, one more record)
  // from `sender` (nullptr: local). False when nothing may be evicted for it.
  bool make_room(std::size_t cost, const Mac* sender, bool new_entry, TimePoint now);
  // The heaviest sender of `tier` other than `except`, if it holds records.
  const Mac* heaviest_in(const Weights& tier, const Mac* except) const;
  // Moves newcomers first heard at least Limits::settle before `now` to the
  // settled tier; each sender moves once, so this is amortised O(log n).
  void settle_senders(TimePoint now);
  Weights& tier_of(const SenderUsage& u) { return u.settled ? settled_ : newcomers_; }
  static Weight weight(const SenderUsage& u, const Mac& m) {
    return {u.memory, u.settled ? TimePoint{} : u.since, m};
  }
  void erase(std::map<Key, Entry>::iterator it);
  // The remote-record indexes, kept in step with entries_. A sender left
  // without records is dropped unless `keep_sender` (a record being re-filed
  // under the same sender, which must not start over as a newcomer).
  void index_add(const Key& key, const Entry& e, TimePoint now);
  void index_remove(const Key& key, const Entry& e, bool keep_sender = false);
  void drop_if_empty(const Mac& sender);

  Limits limits_;
  std::map<Key, Entry> entries_;
  std::map<Mac, SenderUsage> senders_;
  Weights newcomers_;  // senders first heard less than Limits::settle ago
  Weights settled_;
  std::set<std::pair<TimePoint, Mac>> arrivals_;  // newcomers, first heard first
  std::array<std::size_t, 256> type_bytes_{};  // payload + record headers
  std::array<std::size_t, 256> type_records_{};
  std::size_t payload_bytes_ = 0;
  std::size_t memory_ = 0;
  std::uint64_t evicted_ = 0;
};

}  // namespace alfred
