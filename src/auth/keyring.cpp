#include "auth/keyring.hpp"


namespace alfred::auth {

Keyring::Keyring(std::vector<Key> keys) {
  entries_.reserve(keys.size());
  for (auto& k : keys) {
    Key datagram = k.derive(static_cast<std::uint64_t>(Purpose::Datagram));
    Key stream = k.derive(static_cast<std::uint64_t>(Purpose::Stream));
    entries_.push_back(Entry{std::move(k), std::move(datagram), std::move(stream)});
  }
}

const Keyring::Entry* Keyring::find(const KeyId& id) const {
  // Two keys of a file may share an id (4 bytes of 32): the first wins, and
  // a datagram sealed with the other fails its tag. Rare enough at 16 keys.
  for (const auto& e : entries_)
    if (e.key.id() == id) return &e;
  return nullptr;
}

}  // namespace alfred::auth
