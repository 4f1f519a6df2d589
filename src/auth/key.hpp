#pragma once
// One mesh key (issue 11): 32 bytes that every node of an authenticated
// mesh holds. Key material never leaves this type except into libsodium
// calls; it is wiped when the key is dropped or moved from.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace alfred::auth {

constexpr std::size_t kKeyBytes = 32;
// What identifies a key on the wire: derived from it, so a datagram says
// which key sealed it (the receiver tries that one only) without telling an
// eavesdropper anything about the key itself.
constexpr std::size_t kKeyIdBytes = 4;
using KeyId = std::array<std::uint8_t, kKeyIdBytes>;

class Key {
 public:
  explicit Key(std::span<const std::uint8_t, kKeyBytes> bytes);
  Key(const Key& other);
  Key& operator=(const Key& other);
  Key(Key&& other) noexcept;
  Key& operator=(Key&& other) noexcept;
  ~Key();

  const KeyId& id() const { return id_; }
  // The subkey for one purpose (1: datagrams, 2: stream handshakes), so
  // that no two uses ever share a key.
  Key derive(std::uint64_t purpose) const;
  // For libsodium's calls only.
  const std::uint8_t* material() const { return bytes_.data(); }
  // Constant time.
  bool operator==(const Key& other) const;

 private:
  void wipe();
  std::array<std::uint8_t, kKeyBytes> bytes_{};
  KeyId id_{};
};

// libsodium's init, once; false if the library can't be used (no entropy).
bool crypto_ready();

}  // namespace alfred::auth
