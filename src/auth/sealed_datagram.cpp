#include "auth/sealed_datagram.hpp"

#include <sodium.h>

#include <cstring>

namespace alfred::auth {

static_assert(kSealedNonce == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(kSealedTag == crypto_aead_xchacha20poly1305_ietf_ABYTES);
static_assert(kKeyBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);

Destination ipv4_destination(std::span<const std::uint8_t, 4> addr) {
  Destination d{};
  d[10] = 0xff;
  d[11] = 0xff;
  std::memcpy(d.data() + 12, addr.data(), 4);
  return d;
}

namespace {

// What the tag covers besides the packet: the header as sent, and the
// destination, which is not sent.
using AssociatedData = std::array<std::uint8_t, kSealedHeader + sizeof(Destination)>;

AssociatedData associated(const std::uint8_t* header, const Destination& to) {
  AssociatedData ad;
  std::memcpy(ad.data(), header, kSealedHeader);
  std::memcpy(ad.data() + kSealedHeader, to.data(), to.size());
  return ad;
}

}  // namespace

std::vector<std::uint8_t> seal(const Keyring& ring, std::uint64_t counter, const Mac& sender,
                               const Destination& to, std::span<const std::uint8_t> packet) {
  if (packet.size() > kMaxSealable) return {};
  std::vector<std::uint8_t> out(kSealedOverhead + packet.size());
  const auto& entry = ring.sending();
  std::size_t rest = out.size() - 4;
  out[0] = kSealedType;
  out[1] = kSealedVersion;
  out[2] = static_cast<std::uint8_t>(rest >> 8);
  out[3] = static_cast<std::uint8_t>(rest);
  std::memcpy(out.data() + 4, entry.key.id().data(), kKeyIdBytes);
  std::memcpy(out.data() + 8, sender.data(), 6);
  for (int i = 0; i < 8; ++i) out[14 + i] = static_cast<std::uint8_t>(counter >> (56 - 8 * i));
  std::uint8_t* nonce = out.data() + kSealedHeader;
  randombytes_buf(nonce, kSealedNonce);
  unsigned long long written = 0;
  auto ad = associated(out.data(), to);
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + kSealedHeader + kSealedNonce, &written,
                                             packet.data(), packet.size(), ad.data(), ad.size(),
                                             nullptr, nonce,
                                             entry.datagram.material());
  return out;
}

bool looks_sealed(std::span<const std::uint8_t> datagram) {
  return datagram.size() >= 2 && datagram[0] == kSealedType && datagram[1] == kSealedVersion;
}

std::string_view to_string(OpenError e) {
  switch (e) {
    case OpenError::Truncated: return "shorter than a sealed datagram's header, nonce and tag";
    case OpenError::NotSealed: return "not a sealed datagram";
    case OpenError::BadLength: return "its length field does not match its size";
    case OpenError::MacMismatch: return "MAC mismatch (sealed by another node than its sender)";
    case OpenError::UnknownKey: return "no key matched";
    case OpenError::BadTag: return "bad tag (forged, changed, or sealed for another destination)";
  }
  return "?";
}

std::optional<Opened> open(const Keyring& ring, std::span<const std::uint8_t> datagram,
                           const Mac& from, const Destination& to, OpenError& why) {
  auto fail = [&](OpenError e) {
    why = e;
    return std::nullopt;
  };
  if (!looks_sealed(datagram)) return fail(OpenError::NotSealed);
  if (datagram.size() < kSealedOverhead) return fail(OpenError::Truncated);
  std::size_t rest = (std::size_t{datagram[2]} << 8) | datagram[3];
  if (rest != datagram.size() - 4) return fail(OpenError::BadLength);
  if (std::memcmp(datagram.data() + 8, from.data(), 6) != 0) return fail(OpenError::MacMismatch);
  Opened o;
  std::memcpy(o.key.data(), datagram.data() + 4, kKeyIdBytes);
  const Keyring::Entry* entry = ring.find(o.key);
  if (!entry) return fail(OpenError::UnknownKey);
  for (int i = 0; i < 8; ++i) o.counter = (o.counter << 8) | datagram[14 + i];
  const std::uint8_t* nonce = datagram.data() + kSealedHeader;
  const std::uint8_t* sealed = nonce + kSealedNonce;
  std::size_t sealed_len = datagram.size() - kSealedHeader - kSealedNonce;
  o.packet.resize(sealed_len - kSealedTag);
  unsigned long long got = 0;
  auto ad = associated(datagram.data(), to);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(o.packet.data(), &got, nullptr, sealed, sealed_len,
                                                 ad.data(), ad.size(), nonce,
                                                 entry->datagram.material()) != 0)
    return fail(OpenError::BadTag);
  return o;
}

}  // namespace alfred::auth
