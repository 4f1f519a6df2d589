#pragma once
// Incoming transactions: push packets collected per (peer MAC, transaction id)
// until the txend says how many there are and all of them are here. Nothing
// is applied before that, so a transaction cut short leaves no trace.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "engine/route.hpp"
#include "store/record.hpp"

namespace alfred {

struct TransactionLimits {
  std::size_t max_transactions = 4096;
  // All buffered packets together. Large enough for a 30 MB data set in one
  // transaction, small enough that a flood of lying pushes stays bounded.
  std::size_t max_bytes = 32u << 20;
};

class TransactionTable {
 public:
  static constexpr std::chrono::seconds kTimeout{10};
  using Limits = TransactionLimits;

  struct Key {
    Mac peer{};
    std::uint16_t id = 0;
    auto operator<=>(const Key&) const = default;
  };

  struct Transaction {
    std::map<std::uint16_t, std::vector<std::uint8_t>> packets;  // by seqno
    std::optional<std::uint16_t> expected;                       // from the txend
    TimePoint last_rx{};
    std::optional<ClientId> client;  // a unix client waiting for this reply
    std::uint8_t requested_type = 0;
    std::size_t bytes = 0;

    // Exactly the packets 0..n-1 that the txend announced. Counting alone (as
    // upstream does) would take a stray seqno for a missing one.
    bool complete() const {
      if (!expected || packets.size() != *expected) return false;
      return packets.empty() || packets.rbegin()->first == *expected - 1;
    }
  };

  TransactionTable() = default;
  explicit TransactionTable(Limits limits) : limits_(limits) {}

  Transaction* find(const Key& key);
  // nullptr when the key exists already or a limit is reached.
  Transaction* create(const Key& key, TimePoint now);

  enum class AddResult { Added, Duplicate, OverLimit };
  AddResult add_packet(Transaction& tx, std::uint16_t seqno, std::vector<std::uint8_t> packet,
                       TimePoint now);

  // Removes and returns a transaction (completed or abandoned).
  Transaction take(const Key& key);

  // Keys of transactions silent for kTimeout.
  std::vector<Key> expired(TimePoint now) const;
  std::optional<TimePoint> next_deadline() const;

  std::size_t size() const { return table_.size(); }
  std::size_t bytes() const { return bytes_; }

 private:
  Limits limits_;
  std::map<Key, Transaction> table_;
  std::size_t bytes_ = 0;
};

}  // namespace alfred
