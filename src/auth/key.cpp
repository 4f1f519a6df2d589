#include "auth/key.hpp"

#include <sodium.h>

#include <cstring>

namespace alfred::auth {

namespace {
// Contexts of libsodium's key derivation: 8 bytes each.
constexpr char kIdContext[] = "alfredid";
constexpr char kSubkeyContext[] = "alfredsk";
}  // namespace

bool crypto_ready() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

Key::Key(std::span<const std::uint8_t, kKeyBytes> bytes) {
  crypto_ready();
  std::memcpy(bytes_.data(), bytes.data(), kKeyBytes);
  std::array<std::uint8_t, crypto_kdf_BYTES_MIN> id{};
  crypto_kdf_derive_from_key(id.data(), id.size(), 0, kIdContext, bytes_.data());
  std::memcpy(id_.data(), id.data(), kKeyIdBytes);
  sodium_memzero(id.data(), id.size());
}

Key::Key(const Key& other) : bytes_(other.bytes_), id_(other.id_) {}

Key& Key::operator=(const Key& other) {
  if (this != &other) {
    bytes_ = other.bytes_;
    id_ = other.id_;
  }
  return *this;
}

Key::Key(Key&& other) noexcept : bytes_(other.bytes_), id_(other.id_) { other.wipe(); }

Key& Key::operator=(Key&& other) noexcept {
  if (this != &other) {
    bytes_ = other.bytes_;
    id_ = other.id_;
    other.wipe();
  }
  return *this;
}

Key::~Key() { wipe(); }

void Key::wipe() {
  sodium_memzero(bytes_.data(), bytes_.size());
  sodium_memzero(id_.data(), id_.size());
}

Key Key::derive(std::uint64_t purpose) const {
  std::array<std::uint8_t, kKeyBytes> out{};
  crypto_kdf_derive_from_key(out.data(), out.size(), purpose, kSubkeyContext, bytes_.data());
  Key sub{std::span<const std::uint8_t, kKeyBytes>(out)};
  sodium_memzero(out.data(), out.size());
  return sub;
}

bool Key::operator==(const Key& other) const {
  return sodium_memcmp(bytes_.data(), other.bytes_.data(), kKeyBytes) == 0;
}

}  // namespace alfred::auth
