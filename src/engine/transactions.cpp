#include "engine/transactions.hpp"

namespace alfred {

TransactionTable::Transaction* TransactionTable::find(const Key& key) {
  auto it = table_.find(key);
  return it == table_.end() ? nullptr : &it->second;
}

TransactionTable::Transaction* TransactionTable::create(const Key& key, TimePoint now) {
  if (table_.size() >= limits_.max_transactions) return nullptr;
  auto [it, inserted] = table_.try_emplace(key);
  if (!inserted) return nullptr;
  it->second.last_rx = now;
  return &it->second;
}

TransactionTable::AddResult TransactionTable::add_packet(Transaction& tx, std::uint16_t seqno,
                                                         std::vector<std::uint8_t> packet,
                                                         TimePoint now) {
  tx.last_rx = now;
  if (tx.packets.count(seqno)) return AddResult::Duplicate;
  if (bytes_ + packet.size() > limits_.max_bytes) return AddResult::OverLimit;
  bytes_ += packet.size();
  tx.bytes += packet.size();
  tx.packets.emplace(seqno, std::move(packet));
  return AddResult::Added;
}

TransactionTable::Transaction TransactionTable::take(const Key& key) {
  auto it = table_.find(key);
  if (it == table_.end()) return {};
  Transaction tx = std::move(it->second);
  table_.erase(it);
  bytes_ -= tx.bytes;
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
