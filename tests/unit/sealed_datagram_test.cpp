// Sealed datagrams: what one key seals, a ring holding it opens; anything
// changed, any other key, any cut fails, and plain alfred parsers drop it.
#include "auth/sealed_datagram.hpp"

#include <gtest/gtest.h>

#include <string>

#include "auth/key_file.hpp"
#include "wire/packet.hpp"

namespace alfred::auth {
namespace {

using Bytes = std::vector<std::uint8_t>;

Keyring ring(const std::string& text) {
  std::string error;
  auto keys = parse_key_file(text, error);
  EXPECT_TRUE(keys) << error;
  return Keyring(std::move(*keys));
}

const std::string kOld = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
const std::string kNew = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n";
const std::string kOther = "5555555555555555555555555555555555555555555555555555555555555555\n";

const Mac kA{2, 0, 0, 0, 0, 0xa};
const Mac kB{2, 0, 0, 0, 0, 0xb};
// Where a datagram went: B's link-local address, C's, the group.
const Destination kToB{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 0xb};
const Destination kToC{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 0xc};
const Destination kToAll{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

Bytes announcement() { return wire::encode(wire::AnnouncePrimary{}); }

Bytes push() {
  static const Bytes data(300, 'x');
  wire::PushData p;
  p.tx_id = 7;
  wire::RecordView r;
  r.source = Mac{2, 0, 0, 0, 0, 1};
  r.type = 64;
  r.data = data;
  p.records.push_back(r);
  return wire::encode(p);
}

TEST(SealedDatagram, OpensWhatTheSameKeySealedWithItsCounterAndKeyId) {
  auto sender = ring(kOld);
  auto pkt = push();
  auto d = seal(sender, 0x0102030405060708, kA, kToB, pkt);
  ASSERT_EQ(d.size(), pkt.size() + kSealedOverhead);
  EXPECT_TRUE(looks_sealed(d));
  OpenError why{};
  auto o = open(ring(kOld), d, kA, kToB, why);
  ASSERT_TRUE(o) << to_string(why);
  EXPECT_EQ(o->packet, pkt);
  EXPECT_EQ(o->counter, 0x0102030405060708u);
  EXPECT_EQ(o->key, sender.sending().key.id());
  // Random nonces: the same packet never seals to the same bytes.
  EXPECT_NE(seal(sender, 1, kA, kToB, pkt), seal(sender, 1, kA, kToB, pkt));
}

TEST(SealedDatagram, ARingWithTheKeyAnywhereOpensIt) {
  // Rotation: a node that moved to the new key still takes the old one's.
  auto d = seal(ring(kOld), 5, kA, kToB, announcement());
  OpenError why{};
  EXPECT_TRUE(open(ring(kNew + kOld), d, kA, kToB, why)) << to_string(why);
  EXPECT_FALSE(open(ring(kNew), d, kA, kToB, why));
  EXPECT_EQ(why, OpenError::UnknownKey);
}

TEST(SealedDatagram, EveryChangedByteFails) {
  auto r = ring(kOld);
  auto d = seal(r, 9, kA, kToB, announcement());
  for (std::size_t i = 0; i < d.size(); ++i) {
    auto bad = d;
    bad[i] ^= 0x01;
    OpenError why{};
    EXPECT_FALSE(open(r, bad, kA, kToB, why)) << "byte " << i;
    OpenError want = i < 2    ? OpenError::NotSealed
                     : i < 4  ? OpenError::BadLength
                     : i < 8  ? OpenError::UnknownKey
                     : i < 14 ? OpenError::MacMismatch
                              : OpenError::BadTag;
    EXPECT_EQ(why, want) << "byte " << i << ": " << to_string(why);
  }
}

TEST(SealedDatagram, PlayedBackFromAnotherNodeItIsRefusedBeforeAnyCrypto) {
  auto r = ring(kOld);
  auto d = seal(r, 1, kA, kToB, push());
  OpenError why{};
  EXPECT_FALSE(open(r, d, kB, kToB, why));
  EXPECT_EQ(why, OpenError::MacMismatch);
  // Its MAC rewritten to the replayer's: the tag covers it.
  std::copy(kB.begin(), kB.end(), d.begin() + 8);
  EXPECT_FALSE(open(r, d, kB, kToB, why));
  EXPECT_EQ(why, OpenError::BadTag);
}

TEST(SealedDatagram, SentToOneNodeItOpensOnlyAtThatAddress) {
  // What A sealed for B, played back to C (who may not have seen its
  // counter yet), or sent on as if for the group, fails its tag there.
  auto r = ring(kOld);
  auto d = seal(r, 1, kA, kToB, push());
  OpenError why{};
  EXPECT_TRUE(open(r, d, kA, kToB, why)) << to_string(why);
  EXPECT_FALSE(open(r, d, kA, kToC, why));
  EXPECT_EQ(why, OpenError::BadTag);
  EXPECT_FALSE(open(r, d, kA, kToAll, why));
  EXPECT_EQ(why, OpenError::BadTag);
  // And one for the group opens as the group's only.
  auto g = seal(r, 2, kA, kToAll, announcement());
  EXPECT_TRUE(open(r, g, kA, kToAll, why)) << to_string(why);
  EXPECT_FALSE(open(r, g, kA, kToB, why));
  // IPv4 destinations are mapped, so an IPv4 one never matches an IPv6 one.
  std::array<std::uint8_t, 4> v4{10, 0, 0, 2};
  auto to4 = ipv4_destination(v4);
  EXPECT_EQ(to4, (Destination{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2}));
  auto d4 = seal(r, 3, kA, to4, push());
  EXPECT_TRUE(open(r, d4, kA, to4, why)) << to_string(why);
  std::array<std::uint8_t, 4> other4{10, 0, 0, 3};
  EXPECT_FALSE(open(r, d4, kA, ipv4_destination(other4), why));
}

TEST(SealedDatagram, AForgedOneWithTheRightKeyIdButAnotherKeyFailsItsTag) {
  auto honest = ring(kOld);
  auto forged = seal(ring(kOther), 1, kA, kToB, push());
  // Give it the honest key's id: only the tag can tell.
  std::copy(honest.sending().key.id().begin(), honest.sending().key.id().end(), forged.begin() + 4);
  OpenError why{};
  EXPECT_FALSE(open(honest, forged, kA, kToB, why));
  EXPECT_EQ(why, OpenError::BadTag);
}

TEST(SealedDatagram, CutOrPaddedOnesFailBeforeAnyCrypto) {
  auto r = ring(kOld);
  auto d = seal(r, 1, kA, kToB, push());
  OpenError why{};
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{2}, kSealedOverhead - 1,
                        d.size() - 1}) {
    EXPECT_FALSE(open(r, std::span<const std::uint8_t>(d.data(), n), kA, kToB, why)) << n;
  }
  EXPECT_FALSE(open(r, std::span<const std::uint8_t>(d.data(), kSealedOverhead - 1), kA, kToB, why));
  EXPECT_EQ(why, OpenError::Truncated);
  auto longer = d;
  longer.push_back(0);
  EXPECT_FALSE(open(r, longer, kA, kToB, why));
  EXPECT_EQ(why, OpenError::BadLength);
  EXPECT_FALSE(open(r, push(), kA, kToB, why));
  EXPECT_EQ(why, OpenError::NotSealed);
}

TEST(SealedDatagram, AnEmptyPacketSealsAndTheLargestThatFitsToo) {
  auto r = ring(kOld);
  OpenError why{};
  auto d = seal(r, 1, kA, kToB, {});
  ASSERT_EQ(d.size(), kSealedOverhead);
  auto o = open(r, d, kA, kToB, why);
  ASSERT_TRUE(o) << to_string(why);
  EXPECT_TRUE(o->packet.empty());
  static_assert(kMaxSealed == 65507, "the largest UDP payload over IPv4");
  Bytes big(kMaxSealable, 0x42);
  d = seal(r, 2, kA, kToB, big);
  ASSERT_EQ(d.size(), kMaxSealed);
  ASSERT_TRUE(open(r, d, kA, kToB, why)) << to_string(why);
  big.push_back(0);
  EXPECT_TRUE(seal(r, 3, kA, kToB, big).empty());
}

TEST(SealedDatagram, APlainAlfredParserDropsIt) {
  // What Debian's and upstream's alfred, and ours without a key, do with it:
  // a version that is not alfred's.
  auto d = seal(ring(kOld), 1, kA, kToB, push());
  auto res = wire::decode(d);
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.error.find("version"), std::string::npos) << res.error;
  wire::TlvHeader h;
  ASSERT_TRUE(wire::read_tlv_header(d, h));
  EXPECT_EQ(h.length + 4u, d.size());
}

}  // namespace
}  // namespace alfred::auth
