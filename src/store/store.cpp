#include "store/store.hpp"

#include "store/record_digest.hpp"

#include <algorithm>

namespace alfred {

namespace {
// glibc: an allocation of n bytes takes a chunk of n + 8 rounded up to 16,
// never less than 32.
constexpr std::size_t malloc_chunk(std::size_t n) {
  return std::max<std::size_t>(32, (n + 8 + 15) & ~std::size_t{15});
}
constexpr std::size_t kNodeHeader = 32;  // a red-black tree node's colour and links
}  // namespace

std::size_t Store::sender_cost() {
  // Its node in senders_ (with the empty age index), in its tier and, while
  // it is a newcomer, in arrivals_ (counted always, so the cost is fixed).
  return malloc_chunk(kNodeHeader + sizeof(Mac) + sizeof(SenderUsage)) +
         malloc_chunk(kNodeHeader + sizeof(Weight)) +
         malloc_chunk(kNodeHeader + sizeof(std::pair<TimePoint, Mac>));
}

std::size_t Store::record_cost(std::size_t size) {
  // make_shared: the record and its control block in one allocation; the
  // payload; the entry's map node; its node in the sender's age index.
  return malloc_chunk(sizeof(Record) + 16) + (size ? malloc_chunk(size) : 0) +
         malloc_chunk(kNodeHeader + sizeof(Key) + sizeof(Entry)) +
         malloc_chunk(kNodeHeader + sizeof(std::pair<TimePoint, Key>));
}

bool Store::settled(const Mac& sender, TimePoint now) const {
  auto it = senders_.find(sender);
  return it != senders_.end() && (it->second.settled || now - it->second.since >= limits_.settle);
}

void Store::index_add(const Key& key, const Entry& e, TimePoint now) {
  std::size_t cost = record_cost(e.record->data.size());
  memory_ += cost;
  payload_bytes_ += e.record->data.size();
  type_bytes_[key.first] += e.record->data.size() + 10;
  ++type_records_[key.first];
  if (e.source == Source::Local) return;
  auto [it, fresh] = senders_.try_emplace(e.sender);
  auto& u = it->second;
  if (fresh) {
    memory_ += sender_cost();
    u.memory = sender_cost();
    u.since = now;
    arrivals_.insert({now, e.sender});
  } else {
    tier_of(u).erase(weight(u, e.sender));
  }
  u.memory += cost;
  u.by_age.insert({e.last_seen, key});
  tier_of(u).insert(weight(u, e.sender));
}

void Store::index_remove(const Key& key, const Entry& e, bool keep_sender) {
  std::size_t cost = record_cost(e.record->data.size());
  memory_ -= cost;
  payload_bytes_ -= e.record->data.size();
  type_bytes_[key.first] -= e.record->data.size() + 10;
  --type_records_[key.first];
  if (e.source == Source::Local) return;
  auto it = senders_.find(e.sender);
  if (it == senders_.end()) return;
  auto& u = it->second;
  tier_of(u).erase(weight(u, e.sender));
  u.memory -= cost;
  u.by_age.erase({e.last_seen, key});
  tier_of(u).insert(weight(u, e.sender));
  if (!keep_sender) drop_if_empty(e.sender);
}

void Store::drop_if_empty(const Mac& sender) {
  auto it = senders_.find(sender);
  if (it == senders_.end() || !it->second.by_age.empty()) return;
  auto& u = it->second;
  tier_of(u).erase(weight(u, sender));
  if (!u.settled) arrivals_.erase({u.since, sender});
  memory_ -= sender_cost();
  senders_.erase(it);
}

void Store::settle_senders(TimePoint now) {
  while (!arrivals_.empty() && now - arrivals_.begin()->first >= limits_.settle) {
    Mac m = arrivals_.begin()->second;
    arrivals_.erase(arrivals_.begin());
    auto& u = senders_.at(m);
    newcomers_.erase(weight(u, m));
    u.settled = true;
    settled_.insert(weight(u, m));
  }
}

void Store::erase(std::map<Key, Entry>::iterator it) {
  index_remove(it->first, it->second);
  entries_.erase(it);
}

const Mac* Store::heaviest_in(const Weights& tier, const Mac* except) const {
  // At most two steps: only the sender being updated can be excluded or be
  // without records (while one of its records is re-filed).
  for (auto h = tier.rbegin(); h != tier.rend(); ++h) {
    const Mac& m = std::get<Mac>(*h);
    if (except && m == *except) continue;
    if (senders_.at(m).by_age.empty()) continue;
    return &m;
  }
  return nullptr;
}

bool Store::make_room(std::size_t cost, const Mac* sender, bool new_entry, TimePoint now) {
  auto over = [&] {
    return memory_ + cost > limits_.max_bytes ||
           (new_entry && entries_.size() + 1 > limits_.max_records);
  };
  if (!over()) return true;
  settle_senders(now);
  const SenderUsage* self = nullptr;
  if (sender)
    if (auto it = senders_.find(*sender); it != senders_.end()) self = &it->second;
  // A sender not seen yet is a newcomer too, unless senders settle at once.
  bool newcomer = sender && (self ? !self->settled : limits_.settle > std::chrono::seconds{0});
  while (over()) {
    std::size_t own = self ? self->memory : 0;
    const Mac* victim = heaviest_in(newcomers_, sender);
    // A newcomer takes room only from a newcomer at least as heavy as it
    // will be; a settled sender from any newcomer; local data from any
    // newcomer, then from the heaviest settled sender.
    if (victim && newcomer && senders_.at(*victim).memory < own + cost) return false;
    if (!victim && !sender) victim = heaviest_in(settled_, nullptr);
    // Nothing may go: local data is bounded too.
    if (!victim) return false;
    Key key = senders_.at(*victim).by_age.begin()->second;
    ++evicted_;
    erase(entries_.find(key));
  }
  return true;
}

Store::Update Store::put(Record rec, Source source, const Mac& sender, TimePoint now) {
  Key key{rec.type, rec.source};
  auto it = entries_.find(key);
  Update u;
  const Mac* remote = source == Source::Local ? nullptr : &sender;
  // A sender not seen before costs its index entries too.
  auto extra = [&] { return remote && !senders_.count(sender) ? sender_cost() : 0; };
  if (it == entries_.end()) {
    if (!make_room(record_cost(rec.data.size()) + extra(), remote, true, now)) {
      u.refused = true;
      return u;
    }
    u.applied = true;
    u.changed = true;
    Entry e{std::make_shared<const Record>(std::move(rec)), source, now, sender};
    index_add(key, e, now);
    entries_.emplace(key, std::move(e));
    return u;
  }
  Entry& e = it->second;
  std::size_t old_cost = record_cost(e.record->data.size());
  std::size_t new_cost = record_cost(rec.data.size());
  bool same = e.record->data == rec.data && e.record->version == rec.version;
  // Re-file the entry under its new sender and time; a payload that grows
  // needs room like a new record would (its old cost is already released).
  // The sender keeps its entry meanwhile, so a refresh does not make it a
  // newcomer again.
  // The old sender keeps its entry too until the update succeeded, so a
  // refused one leaves it as it was (settled or not).
  Mac old_sender = e.sender;
  bool old_remote = e.source != Source::Local;
  index_remove(key, e, /*keep_sender=*/old_remote);
  // Room is needed for what it takes more than before: a bigger payload, or
  // the entry of a sender not seen yet.
  std::size_t need = (same ? old_cost : new_cost) + extra();
  if (need > old_cost && !make_room(need, remote, false, now)) {
    index_add(key, e, now);
    u.refused = true;
    return u;
  }
  u.applied = true;
  e.last_seen = now;
  e.source = source;
  e.sender = sender;
  if (!same) {
    // Only a new payload counts as a change (events, -c), as upstream has
    // it; a new version alone is stored silently.
    u.changed = e.record->data != rec.data;
    e.record = std::make_shared<const Record>(std::move(rec));
  }
  index_add(key, e, now);
  if (old_remote && !(remote && old_sender == sender)) drop_if_empty(old_sender);
  return u;
}

Store::Update Store::set_local(Record rec, TimePoint now) {
  rec.digest = record_digest(rec);
  return put(std::move(rec), Source::Local, Mac{}, now);
}

Store::Update Store::apply_remote(Record rec, const Mac& sender, TimePoint now) {
  auto it = entries_.find(Key{rec.type, rec.source});
  if (it != entries_.end() && it->second.source == Source::Local) return {};
  Source s = rec.source == sender ? Source::FirstHand : Source::Synced;
  if (s == Source::Synced && it != entries_.end() && guarded(it->second, now)) return {};
  rec.digest = record_digest(rec);
  return put(std::move(rec), s, sender, now);
}

bool Store::guarded(const Entry& e, TimePoint now) const {
  // last_seen of a first-hand entry is when its source last sent it.
  return e.source == Source::FirstHand && now - e.last_seen < limits_.first_hand_guard;
}

Store::Refresh Store::refresh(std::uint8_t type, const Mac& source, std::uint64_t digest,
                              const Mac& sender, TimePoint now) {
  auto it = entries_.find(Key{type, source});
  if (it == entries_.end()) return Refresh::Missing;
  Entry& e = it->second;
  if (e.source == Source::Local) return Refresh::Local;
  if (source != sender && guarded(e, now))
    return e.record->digest == digest ? Refresh::Kept : Refresh::FirstHand;
  if (e.record->digest != digest) return Refresh::Differs;
  // As if the record had come again from `sender`: re-filed under it and
  // now, first-hand when the sender is its source. A sender that holds
  // nothing here yet needs its index entry; without room it is refused like
  // the push it stands for.
  Source s = source == sender ? Source::FirstHand : Source::Synced;
  Mac old_sender = e.sender;
  index_remove(it->first, e, /*keep_sender=*/true);
  // (Its own cost was released with its index entries, as put() does.)
  if (!senders_.count(sender) &&
      !make_room(record_cost(e.record->data.size()) + sender_cost(), &sender, false, now)) {
    index_add(it->first, e, now);
    return Refresh::Refused;
  }
  e.last_seen = now;
  e.source = s;
  e.sender = sender;
  index_add(it->first, e, now);
  if (old_sender != sender) drop_if_empty(old_sender);
  return Refresh::Kept;
}

Snapshot Store::snapshot(Source max_level, std::optional<std::uint8_t> type) const {
  Snapshot out;
  auto begin = entries_.begin();
  auto end = entries_.end();
  if (type) {
    begin = entries_.lower_bound(Key{*type, Mac{}});
    end = *type == 255 ? entries_.end() : entries_.lower_bound(Key{std::uint8_t(*type + 1), Mac{}});
  }
  for (auto it = begin; it != end; ++it)
    if (it->second.source <= max_level) out.push_back(it->second.record);
  return out;
}

Snapshot Store::snapshot_of(const std::vector<std::pair<std::uint8_t, Mac>>& keys,
                            Source max_level) const {
  Snapshot out;
  for (const auto& k : keys) {
    auto it = entries_.find(k);
    if (it != entries_.end() && it->second.source <= max_level) out.push_back(it->second.record);
  }
  return out;
}

std::bitset<256> Store::expire(TimePoint now) {
  std::bitset<256> types;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now - it->second.last_seen >= kRecordTimeout) {
      types.set(it->first.first);
      auto gone = it++;
      erase(gone);
    } else {
      ++it;
    }
  }
  return types;
}

std::size_t Store::demote_first_hand(TimePoint now, Duration hold) {
  // last_seen of a first-hand entry is its last first-hand update: a synced
  // one would have made it synced.
  std::size_t n = 0;
  for (auto& [key, e] : entries_)
    if (e.source == Source::FirstHand && now - e.last_seen >= hold) {
      e.source = Source::Synced;
      ++n;
    }
  return n;
}

const Record* Store::find(const Mac& source, std::uint8_t type) const {
  auto it = entries_.find(Key{type, source});
  return it == entries_.end() ? nullptr : it->second.record.get();
}

RecordPtr Store::get(const Mac& source, std::uint8_t type) const {
  auto it = entries_.find(Key{type, source});
  return it == entries_.end() ? nullptr : it->second.record;
}

std::optional<Source> Store::source_of(const Mac& source, std::uint8_t type) const {
  auto it = entries_.find(Key{type, source});
  if (it == entries_.end()) return std::nullopt;
  return it->second.source;
}

}  // namespace alfred
