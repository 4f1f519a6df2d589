#pragma once
// A sealed datagram (issue 11): one alfred packet, encrypted and
// authenticated with XChaCha20-Poly1305 (libsodium) under a mesh key's
// datagram subkey.
//
//   0  type 0xa5      1  version 0x41    2-3  length of the rest (BE)
//   4-7   id of the key that sealed it
//   8-15  the sender's counter (BE), for the receiver's replay window
//   16-39 nonce (random: many senders share a key, so counters can't be)
//   40-   the packet, encrypted, then the 16-byte tag
//
// Bytes 0-15 are authenticated as well. The TLV form keeps the length check
// of every alfred parser valid, and the version is not alfred's 0: Debian's
// and upstream's alfred, and ours without a key, drop it instead of reading
// it as a packet.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "auth/keyring.hpp"

namespace alfred::auth {

constexpr std::uint8_t kSealedType = 0xa5;
constexpr std::uint8_t kSealedVersion = 0x41;
constexpr std::size_t kSealedHeader = 16;
constexpr std::size_t kSealedNonce = 24;
constexpr std::size_t kSealedTag = 16;
constexpr std::size_t kSealedOverhead = kSealedHeader + kSealedNonce + kSealedTag;
constexpr std::size_t kMaxSealed = 65535;

// The packet sealed under `ring.sending()`; empty if it would not fit one
// datagram (kMaxSealed).
std::vector<std::uint8_t> seal(const Keyring& ring, std::uint64_t counter,
                               std::span<const std::uint8_t> packet);

// Has the form of a sealed datagram (type and version): worth opening, and
// not to be read as a plain packet.
bool looks_sealed(std::span<const std::uint8_t> datagram);

enum class OpenError { Truncated, NotSealed, BadLength, UnknownKey, BadTag };
std::string_view to_string(OpenError e);

struct Opened {
  std::vector<std::uint8_t> packet;
  std::uint64_t counter = 0;
  KeyId key{};
};

// Checks the form, then finds the key by its id, then the tag: what fails
// before the tag costs no crypto at all.
std::optional<Opened> open(const Keyring& ring, std::span<const std::uint8_t> datagram,
                           OpenError& why);

}  // namespace alfred::auth
