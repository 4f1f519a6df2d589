#pragma once
// Incoming transactions: push packets collected per (peer MAC, transaction id)
// until the txend says how many there are and all of them are here. Nothing
// is applied before that, so a transaction cut short leaves no trace.
//
// Every bound is kept in memory the table really holds, not payload bytes: a
// flood of 8-byte empty pushes costs ~14 times its wire size in map nodes and
// allocations, so counting payload alone let one peer grow the heap to
// hundreds of MB. Deadlines and eviction candidates live in ordered indexes,
// so a packet costs O(log n) however full the table is.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "engine/route.hpp"
#include "store/record.hpp"

namespace alfred {

struct TransactionLimits {
  std::size_t max_transactions = 4096;
  // One peer rarely has more than a sync and an answer in flight; a cap per
  // peer keeps a flooding neighbour from taking the table from the others.
  std::size_t max_per_peer = 64;
  // Memory of all buffered packets together, overhead included (see
  // TransactionTable::packet_cost). Large enough for a 30 MB data set in one
  // transaction, small enough that a flood of lying pushes stays bounded.
  std::size_t max_bytes = 32u << 20;
  // Our encoder and upstream's fill packets up to 64 KiB, so a 30 MB data
  // set is about 500 packets; thousands more only come from a flood.
  std::size_t max_packets_per_transaction = 8192;
};

class TransactionTable {
 public:
  static constexpr std::chrono::seconds kTimeout{10};
  // A transaction by datagrams ends this long after it began, complete or
  // not: every sender sends its packets in one burst, so only a forger
  // spreads them out, adding one every few seconds to hold its buffer for
  // good. Streams need no such bound (their packets come from a connected
  // peer, one transaction after the other, as fast as the link allows).
  static constexpr std::chrono::seconds kDatagramLifetime{30};
  // When memory is short, a transaction begun this long ago gives way to
  // anyone's newcomer, before the heaviest peer's rule is asked. Streams
  // have no end of life, so without this a forger adding one small packet
  // (a packed frame inflates 32x) to each of many transactions every few
  // seconds, under many MACs each lighter than an honest sync, held the
  // whole buffer and had that sync refused. Honest transactions are done
  // in seconds; one that is slower only gives way under such pressure.
  static constexpr std::chrono::seconds kOverdueAfter{30};
  using Limits = TransactionLimits;

  struct Key {
    Mac peer{};
    std::uint16_t id = 0;
    auto operator<=>(const Key&) const = default;
  };

  struct Transaction {
    Mac peer{};
    std::uint16_t id = 0;
    std::map<std::uint16_t, std::vector<std::uint8_t>> packets;  // by seqno
    std::optional<std::uint16_t> expected;                       // from the txend
    // Read-only outside the table: touch() keeps the deadline index in step.
    TimePoint started{};
    TimePoint last_rx{};
    TimePoint deadline{};     // last_rx + kTimeout, or end_of_life if sooner
    TimePoint end_of_life = TimePoint::max();
    std::optional<ClientId> client;  // a unix client waiting for this reply
    std::uint8_t requested_type = 0;
    std::size_t bytes = 0;   // payload of the packets
    std::size_t memory = 0;  // what the table charges for it (packets, nodes)

    // Exactly the packets 0..n-1 that the txend announced. Counting alone (as
    // upstream does) would take a stray seqno for a missing one.
    bool complete() const {
      if (!expected || packets.size() != *expected) return false;
      return packets.empty() || packets.rbegin()->first == *expected - 1;
    }
  };

  // Heap a buffered packet of `size` bytes really takes: its map node and
  // its vector's allocation, each with malloc's header and rounding.
  static std::size_t packet_cost(std::size_t size);
  // The same for a transaction without packets: its node, its deadline
  // entry and, for a peer's first, the peer's usage entries.
  static constexpr std::size_t kTransactionCost = 448;

  TransactionTable() = default;
  explicit TransactionTable(Limits limits) : limits_(limits) {}

  Transaction* find(const Key& key);
  bool contains(const Key& key) const;
  // nullptr when the key exists already or a limit is reached. When the
  // table is full, the oldest transaction of the peer holding the most is
  // dropped to make room, unless that is the asking peer itself; when
  // memory is short, one begun kOverdueAfter ago goes first. It expires
  // kTimeout after the last packet that added to it, and at `end_of_life`
  // whatever comes.
  Transaction* create(const Key& key, TimePoint now, TimePoint end_of_life = TimePoint::max());

  enum class AddResult { Added, Duplicate, OverLimit, TooManyPackets };
  AddResult add_packet(Transaction& tx, std::uint16_t seqno, std::vector<std::uint8_t> packet,
                       TimePoint now);
  // Something new arrived for the transaction (a packet it lacked, its
  // first txend): it stays alive, up to its end of life. Repeats do not
  // count: they would let a forger hold a transaction with one tiny packet
  // every few seconds.
  void touch(Transaction& tx, TimePoint now);

  // Removes and returns a transaction (completed or abandoned).
  Transaction take(const Key& key);

  // Keys of transactions past their deadline, soonest first.
  std::vector<Key> expired(TimePoint now) const;
  std::optional<TimePoint> next_deadline() const;

  std::size_t size() const { return table_.size(); }
  std::size_t bytes() const { return bytes_; }    // payload buffered
  std::size_t memory() const { return memory_; }  // what the limit counts
  std::size_t evicted() const { return evicted_; }
  std::size_t evicted_overdue() const { return evicted_overdue_; }
  std::size_t count_of(const Mac& peer) const;
  const Limits& limits() const { return limits_; }

 private:
  struct Usage {
    std::size_t count = 0;
    std::size_t memory = 0;
  };
  // Drops the oldest transaction (without a waiting client) of the peer
  // that holds the most transactions (by_memory: the most memory), if that
  // peer is not `asking` and holds more than it. False if none qualifies.
  bool evict_heaviest(const Mac& asking, bool by_memory);
  // Drops the transaction begun longest ago, if that is kOverdueAfter
  // before `now` (one with a waiting client is passed over).
  bool evict_overdue(TimePoint now, const Transaction* keep);
  // Makes room for `cost` more bytes of memory for `asking`, never by
  // dropping `keep` (the transaction the bytes are for).
  bool make_room(const Mac& asking, std::size_t cost, TimePoint now,
                 const Transaction* keep = nullptr);
  void erase(std::map<Key, Transaction>::iterator it);
  static TimePoint deadline_after(TimePoint now, TimePoint end_of_life);
  // Moves a peer's entry in the heaviest-first indexes after a change.
  void set_usage(const Mac& peer, Usage u);

  Limits limits_;
  std::map<Key, Transaction> table_;
  std::map<Mac, Usage> usage_;
  std::set<std::pair<TimePoint, Key>> deadlines_;           // by deadline
  std::set<std::pair<TimePoint, Key>> by_start_;            // oldest first
  std::set<std::pair<std::size_t, Mac>> by_count_, by_memory_;  // heaviest last
  std::size_t bytes_ = 0;
  std::size_t memory_ = 0;
  std::size_t evicted_ = 0;
  std::size_t evicted_overdue_ = 0;
};

}  // namespace alfred
