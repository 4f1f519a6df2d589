#include "engine/transactions.hpp"

#include <algorithm>

namespace alfred {

namespace {
// glibc: an allocation of n bytes takes a chunk of n + 8 rounded up to 16,
// never less than 32.
constexpr std::size_t malloc_chunk(std::size_t n) {
  return std::max<std::size_t>(32, (n + 8 + 15) & ~std::size_t{15});
}
// A std::map node: the red-black header (colour and three pointers), the key
// and the mapped vector's three pointers.
constexpr std::size_t kPacketNode = 32 + 8 + sizeof(std::vector<std::uint8_t>);
}  // namespace

TimePoint TransactionTable::deadline_after(TimePoint now, TimePoint end_of_life) {
  return end_of_life - now <= kTimeout ? end_of_life : now + kTimeout;
}

std::size_t TransactionTable::packet_cost(std::size_t size) {
  return malloc_chunk(kPacketNode) + (size ? malloc_chunk(size) : 0);
}

TransactionTable::Transaction* TransactionTable::find(const Key& key) {
  auto it = table_.find(key);
  return it == table_.end() ? nullptr : &it->second;
}

bool TransactionTable::contains(const Key& key) const { return table_.count(key) != 0; }

TransactionTable::Transaction* TransactionTable::create(const Key& key, TimePoint now,
                                                       TimePoint end_of_life) {
  if (table_.count(key)) return nullptr;
  if (count_of(key.peer) >= limits_.max_per_peer) return nullptr;
  if (table_.size() >= limits_.max_transactions && !evict_heaviest(key.peer, false)) return nullptr;
  if (!make_room(key.peer, kTransactionCost, now)) return nullptr;
  auto& tx = table_[key];
  tx.peer = key.peer;
  tx.id = key.id;
  tx.started = now;
  by_start_.insert({now, key});
  tx.last_rx = now;
  tx.end_of_life = end_of_life;
  tx.deadline = deadline_after(now, end_of_life);
  tx.memory = kTransactionCost;
  memory_ += kTransactionCost;
  deadlines_.insert({tx.deadline, key});
  Usage u = usage_[key.peer];
  ++u.count;
  u.memory += kTransactionCost;
  set_usage(key.peer, u);
  return &tx;
}

void TransactionTable::touch(Transaction& tx, TimePoint now) {
  if (tx.last_rx == now) return;
  tx.last_rx = now;
  TimePoint next = deadline_after(now, tx.end_of_life);
  if (next == tx.deadline) return;
  Key key{tx.peer, tx.id};
  deadlines_.erase({tx.deadline, key});
  deadlines_.insert({next, key});
  tx.deadline = next;
}

TransactionTable::AddResult TransactionTable::add_packet(Transaction& tx, std::uint16_t seqno,
                                                         std::vector<std::uint8_t> packet,
                                                         TimePoint now) {
  if (tx.packets.count(seqno)) return AddResult::Duplicate;
  if (tx.packets.size() >= limits_.max_packets_per_transaction) return AddResult::TooManyPackets;
  std::size_t cost = packet_cost(packet.size());
  // Room made may not take `tx` itself: it is the asking peer's, and an
  // overdue one is passed over while it is what asks.
  if (!make_room(tx.peer, cost, now, &tx)) return AddResult::OverLimit;
  bytes_ += packet.size();
  memory_ += cost;
  tx.bytes += packet.size();
  tx.memory += cost;
  Usage u = usage_[tx.peer];
  u.memory += cost;
  set_usage(tx.peer, u);
  tx.packets.emplace(seqno, std::move(packet));
  touch(tx, now);
  return AddResult::Added;
}

std::size_t TransactionTable::count_of(const Mac& peer) const {
  auto it = usage_.find(peer);
  return it == usage_.end() ? 0 : it->second.count;
}

void TransactionTable::set_usage(const Mac& peer, Usage u) {
  auto it = usage_.find(peer);
  if (it != usage_.end()) {
    by_count_.erase({it->second.count, peer});
    by_memory_.erase({it->second.memory, peer});
  }
  if (u.count == 0) {
    if (it != usage_.end()) usage_.erase(it);
    return;
  }
  usage_[peer] = u;
  by_count_.insert({u.count, peer});
  by_memory_.insert({u.memory, peer});
}

bool TransactionTable::evict_heaviest(const Mac& asking, bool by_memory) {
  const auto& index = by_memory ? by_memory_ : by_count_;
  std::size_t own = 0;
  if (auto it = usage_.find(asking); it != usage_.end())
    own = by_memory ? it->second.memory : it->second.count;
  // The heaviest peers other than the asking one, heaviest first; a peer
  // whose transactions all have waiting clients is passed over.
  for (auto h = index.rbegin(); h != index.rend() && h->first > own; ++h) {
    const Mac& heaviest = h->second;
    if (heaviest == asking) continue;
    // A peer's transactions are adjacent in the table (keyed by peer, then
    // id), and there are at most max_per_peer of them.
    auto victim = table_.end();
    for (auto it = table_.lower_bound(Key{heaviest, 0});
         it != table_.end() && it->first.peer == heaviest; ++it)
      if (!it->second.client &&
          (victim == table_.end() || it->second.last_rx < victim->second.last_rx))
        victim = it;
    if (victim == table_.end()) continue;
    erase(victim);
    ++evicted_;
    return true;
  }
  return false;
}

bool TransactionTable::make_room(const Mac& asking, std::size_t cost, TimePoint now,
                                 const Transaction* keep) {
  while (memory_ + cost > limits_.max_bytes)
    if (!evict_overdue(now, keep) && !evict_heaviest(asking, true)) return false;
  return true;
}

bool TransactionTable::evict_overdue(TimePoint now, const Transaction* keep) {
  for (const auto& [started, key] : by_start_) {
    if (now - started < kOverdueAfter) return false;
    auto it = table_.find(key);
    if (it == table_.end() || it->second.client || &it->second == keep) continue;
    erase(it);
    ++evicted_;
    ++evicted_overdue_;
    return true;
  }
  return false;
}

void TransactionTable::erase(std::map<Key, Transaction>::iterator it) {
  const Key key = it->first;
  if (auto u = usage_.find(key.peer); u != usage_.end()) {
    Usage next = u->second;
    next.memory -= it->second.memory;
    --next.count;
    set_usage(key.peer, next);
  }
  deadlines_.erase({it->second.deadline, key});
  by_start_.erase({it->second.started, key});
  bytes_ -= it->second.bytes;
  memory_ -= it->second.memory;
  table_.erase(it);
}

TransactionTable::Transaction TransactionTable::take(const Key& key) {
  auto it = table_.find(key);
  if (it == table_.end()) return {};
  Transaction tx = std::move(it->second);
  // erase() settles the accounting from what is left in the node.
  it->second.bytes = tx.bytes;
  it->second.memory = tx.memory;
  it->second.deadline = tx.deadline;
  it->second.started = tx.started;
  erase(it);
  return tx;
}

std::vector<TransactionTable::Key> TransactionTable::expired(TimePoint now) const {
  std::vector<Key> out;
  for (const auto& [deadline, key] : deadlines_) {
    if (now < deadline) break;
    out.push_back(key);
  }
  return out;
}

std::optional<TimePoint> TransactionTable::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

}  // namespace alfred
