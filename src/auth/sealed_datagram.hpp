#pragma once
// A sealed datagram (issue 11): one alfred packet, encrypted and
// authenticated with XChaCha20-Poly1305 (libsodium) under a mesh key's
// datagram subkey.
//
//   0  type 0xa5      1  version 0x41    2-3  length of the rest (BE)
//   4-7   id of the key that sealed it
//   8-13  the sender's MAC (the one its link-local address or ARP gives)
//   14-21 the sender's counter (BE), for the receiver's replay window
//   22-45 nonce (random: many senders share a key, so counters can't be)
//   46-   the packet, encrypted, then the 16-byte tag
//
// Bytes 0-21 are authenticated as well, and so is the address the datagram
// was sent to (its Destination), which is not sent: the receiver puts in the
// address the datagram reached it at. The MAC binds a datagram to the node
// that sealed it: played back from another address, it is refused before
// any crypto, and the replay window is kept per sealed MAC. The destination
// binds it to the node (or group) it was sent to: a datagram unicast to one
// node, played back to another (or to the group), fails its tag there, even
// where that node has not seen its counter yet. A group datagram played
// back to the group is the same destination everywhere: the counter window
// is what refuses it. The TLV
// form keeps the length check of every alfred parser valid, and the
// version is not alfred's 0: Debian's
// and upstream's alfred, and ours without a key, drop it instead of reading
// it as a packet.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "auth/keyring.hpp"
#include "wire/mac.hpp"

namespace alfred::auth {

constexpr std::uint8_t kSealedType = 0xa5;
constexpr std::uint8_t kSealedVersion = 0x41;
constexpr std::size_t kSealedHeader = 22;
constexpr std::size_t kSealedNonce = 24;
constexpr std::size_t kSealedTag = 16;
constexpr std::size_t kSealedOverhead = kSealedHeader + kSealedNonce + kSealedTag;
// The largest UDP payload over IPv4 (65535 less the IP and UDP headers);
// IPv6 allows 20 bytes more. A sealed datagram must fit either.
constexpr std::size_t kMaxSealed = 65507;

// The address a datagram was sent to, as the IP header has it: the IPv6
// address (a node's own, or ff02::1), or the IPv4 one mapped (::ffff:a.b.c.d).
using Destination = std::array<std::uint8_t, 16>;
Destination ipv4_destination(std::span<const std::uint8_t, 4> addr);

// The packet sealed under `ring.sending()` for `to`; empty if it would not
// fit one datagram (kMaxSealed).
std::vector<std::uint8_t> seal(const Keyring& ring, std::uint64_t counter, const Mac& sender,
                               const Destination& to, std::span<const std::uint8_t> packet);
// The largest packet that still fits one sealed datagram.
constexpr std::size_t kMaxSealable = kMaxSealed - kSealedOverhead;

// Has the form of a sealed datagram (type and version): worth opening, and
// not to be read as a plain packet.
bool looks_sealed(std::span<const std::uint8_t> datagram);

enum class OpenError { Truncated, NotSealed, BadLength, MacMismatch, UnknownKey, BadTag };
std::string_view to_string(OpenError e);

struct Opened {
  std::vector<std::uint8_t> packet;
  std::uint64_t counter = 0;
  KeyId key{};
};

// Checks the form, then that it was sealed by `from` (the MAC of the
// address it came from), then finds the key by its id, then the tag, over
// the header and `to` (the address it reached us at): what fails before the
// tag costs no crypto at all. A datagram sealed for another destination
// fails as BadTag.
std::optional<Opened> open(const Keyring& ring, std::span<const std::uint8_t> datagram,
                           const Mac& from, const Destination& to, OpenError& why);

}  // namespace alfred::auth
