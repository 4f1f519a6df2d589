#pragma once
// Transactions completed a moment ago, by (peer MAC, transaction id).
//
// A session's sender also sends a small transaction by UDP when its
// acknowledgement is late (link/session_link.hpp, udp_copy_after). Both
// copies carry the same id and share the transaction table, so the first to
// complete is applied, and the packets of the other can come after it:
// - its txend must still be acknowledged on the session (or the sender
//   waits 30 s for it), and must not open a transaction that waits for
//   packets already taken;
// - its push data must not be applied again: it may come after a newer
//   transaction the session delivered meanwhile, and would put older
//   values back.
// Only a packet that matches what completed counts (the same number of
// packets; for a one-packet transaction, the same bytes), so a peer that
// reuses an id for a new transaction within the window loses nothing.
// Entries go after a few seconds and never exceed a fixed number: memory
// does not grow with traffic.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <span>
#include <string_view>
#include <utility>

#include "engine/transactions.hpp"

namespace alfred {

class RecentCompletions {
 public:
  using Key = TransactionTable::Key;
  static constexpr std::size_t kCapacity = 1024;
  static constexpr std::chrono::seconds kWindow{5};

  struct Entry {
    TimePoint at{};
    std::uint16_t packets = 0;
    std::uint64_t digest = 0;  // of its only packet, when it had one
  };

  static std::uint64_t digest(std::span<const std::uint8_t> packet) {
    return std::hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(packet.data()), packet.size()));
  }

  void add(const Key& k, const Entry& e) {
    forget(e.at);
    if (order_.size() >= kCapacity) pop();
    at_[k] = e;
    order_.emplace_back(k, e.at);
  }

  const Entry* find(const Key& k, TimePoint now) const {
    auto it = at_.find(k);
    return it != at_.end() && now - it->second.at < kWindow ? &it->second : nullptr;
  }

  // The txend of a transaction that completed with `packets` packets.
  bool completed_txend(const Key& k, std::uint16_t packets, TimePoint now) const {
    const Entry* e = find(k, now);
    return e && e->packets == packets;
  }

  // Push data that is the only packet of a transaction that completed.
  bool completed_packet(const Key& k, std::uint16_t seqno, std::span<const std::uint8_t> packet,
                        TimePoint now) const {
    const Entry* e = find(k, now);
    return e && e->packets == 1 && seqno == 0 && e->digest == digest(packet);
  }

  void forget(TimePoint now) {
    while (!order_.empty() && now - order_.front().second >= kWindow) pop();
  }

  std::size_t size() const { return at_.size(); }

 private:
  // The oldest entry; its key stays if it was completed again since.
  void pop() {
    auto [k, t] = order_.front();
    order_.pop_front();
    auto it = at_.find(k);
    if (it != at_.end() && it->second.at == t) at_.erase(it);
  }

  std::map<Key, Entry> at_;
  std::deque<std::pair<Key, TimePoint>> order_;  // oldest first
};

}  // namespace alfred
