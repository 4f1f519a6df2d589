#include "store/store.hpp"

namespace alfred {

Store::Update Store::put(Record rec, Source source, TimePoint now) {
  Key key{rec.type, rec.source};
  auto it = entries_.find(key);
  Update u;
  u.applied = true;
  if (it == entries_.end()) {
    u.changed = true;
    payload_bytes_ += rec.data.size();
    entries_.emplace(key, Entry{std::make_shared<const Record>(std::move(rec)), source, now});
    return u;
  }
  Entry& e = it->second;
  e.last_seen = now;
  e.source = source;
  if (e.record->data == rec.data && e.record->version == rec.version) return u;
  // Only a new payload counts as a change (events, -c), as upstream has it; a
  // new version alone is stored silently.
  u.changed = e.record->data != rec.data;
  payload_bytes_ = payload_bytes_ - e.record->data.size() + rec.data.size();
  e.record = std::make_shared<const Record>(std::move(rec));
  return u;
}

Store::Update Store::set_local(Record rec, TimePoint now) {
  return put(std::move(rec), Source::Local, now);
}

Store::Update Store::apply_remote(Record rec, const Mac& sender, TimePoint now) {
  auto it = entries_.find(Key{rec.type, rec.source});
  if (it != entries_.end() && it->second.source == Source::Local) return {};
  Source s = rec.source == sender ? Source::FirstHand : Source::Synced;
  return put(std::move(rec), s, now);
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
      payload_bytes_ -= it->second.record->data.size();
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  return types;
}

const Record* Store::find(const Mac& source, std::uint8_t type) const {
  auto it = entries_.find(Key{type, source});
  return it == entries_.end() ? nullptr : it->second.record.get();
}

std::optional<Source> Store::source_of(const Mac& source, std::uint8_t type) const {
  auto it = entries_.find(Key{type, source});
  if (it == entries_.end()) return std::nullopt;
  return it->second.source;
}

}  // namespace alfred
