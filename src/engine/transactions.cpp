#include "engine/transactions.hpp"

namespace alfred {

TransactionTable::Transaction* TransactionTable::find(const Key& key) {
  auto it = table_.find(key);
  return it == table_.end() ? nullptr : &it->second;
}

TransactionTable::Transaction* TransactionTable::create(const Key& key, TimePoint now) {
  if (table_.count(key)) return nullptr;
  if (count_of(key.peer) >= limits_.max_per_peer) return nullptr;
  if (table_.size() >= limits_.max_transactions && !evict_heaviest(key.peer, false)) return nullptr;
  auto& tx = table_[key];
  tx.peer = key.peer;
  tx.last_rx = now;
  ++usage_[key.peer].count;
  return &tx;
}

TransactionTable::AddResult TransactionTable::add_packet(Transaction& tx, std::uint16_t seqno,
                                                         std::vector<std::uint8_t> packet,
                                                         TimePoint now) {
  tx.last_rx = now;
  if (tx.packets.count(seqno)) return AddResult::Duplicate;
  while (bytes_ + packet.size() > limits_.max_bytes)
    if (!evict_heaviest(tx.peer, true)) return AddResult::OverLimit;
  bytes_ += packet.size();
  tx.bytes += packet.size();
  usage_[tx.peer].bytes += packet.size();
  tx.packets.emplace(seqno, std::move(packet));
  return AddResult::Added;
}

std::size_t TransactionTable::count_of(const Mac& peer) const {
  auto it = usage_.find(peer);
  return it == usage_.end() ? 0 : it->second.count;
}

bool TransactionTable::evict_heaviest(const Mac& asking, bool by_bytes) {
  auto metric = [by_bytes](const Usage& u) { return by_bytes ? u.bytes : u.count; };
  std::size_t own = 0;
  if (auto it = usage_.find(asking); it != usage_.end()) own = metric(it->second);
  const Mac* heaviest = nullptr;
  std::size_t most = own;
  for (const auto& [peer, u] : usage_)
    if (peer != asking && metric(u) > most) {
      most = metric(u);
      heaviest = &peer;
    }
  if (!heaviest) return false;
  auto victim = table_.end();
  for (auto it = table_.begin(); it != table_.end(); ++it)
    if (it->first.peer == *heaviest && !it->second.client &&
        (victim == table_.end() || it->second.last_rx < victim->second.last_rx))
      victim = it;
  if (victim == table_.end()) return false;
  erase(victim);
  ++evicted_;
  return true;
}

void TransactionTable::erase(std::map<Key, Transaction>::iterator it) {
  auto u = usage_.find(it->first.peer);
  if (u != usage_.end()) {
    u->second.bytes -= it->second.bytes;
    if (--u->second.count == 0) usage_.erase(u);
  }
  bytes_ -= it->second.bytes;
  table_.erase(it);
}

TransactionTable::Transaction TransactionTable::take(const Key& key) {
  auto it = table_.find(key);
  if (it == table_.end()) return {};
  Transaction tx = std::move(it->second);
  it->second.bytes = tx.bytes;  // erase() settles the accounting from here
  erase(it);
  return tx;
}

std::vector<TransactionTable::Key> TransactionTable::expired(TimePoint now) const {
  std::vector<Key> out;
  for (const auto& [key, tx] : table_)
    if (now - tx.last_rx >= kTimeout) out.push_back(key);
  return out;
}

std::optional<TimePoint> TransactionTable::next_deadline() const {
  std::optional<TimePoint> best;
  for (const auto& [key, tx] : table_) {
    TimePoint d = tx.last_rx + kTimeout;
    if (!best || d < *best) best = d;
  }
  return best;
}

}  // namespace alfred
