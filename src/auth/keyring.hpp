#pragma once
// The keys a node holds (from its key file): the first seals what it sends,
// any of them opens what it receives. Each key's purpose subkeys are derived
// once, here, so sealing and opening only look them up.
#include <vector>

#include "auth/key.hpp"

namespace alfred::auth {

enum class Purpose : std::uint64_t { Datagram = 1, Stream = 2 };

class Keyring {
 public:
  struct Entry {
    Key key;
    Key datagram;
    Key stream;
  };
  // `keys` non-empty (load_key_file refuses an empty file).
  explicit Keyring(std::vector<Key> keys);

  const Entry& sending() const { return entries_.front(); }
  // The key whose id this is, or null: unknown ids cost a lookup, no crypto.
  const Entry* find(const KeyId& id) const;
  std::size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
};

}  // namespace alfred::auth
