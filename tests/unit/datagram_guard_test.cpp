// The daemon's datagram guard: what it seals, its peers open once; replays,
// other nodes' datagrams played back, other keys and (when enforcing) plain
// packets are refused and counted; transition mode takes plain packets.
#include "auth/datagram_guard.hpp"

#include <gtest/gtest.h>

#include <string>

#include "auth/key_file.hpp"
#include "wire/packet.hpp"

namespace alfred::auth {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::shared_ptr<const Keyring> ring(const std::string& text) {
  std::string error;
  auto keys = parse_key_file(text, error);
  EXPECT_TRUE(keys) << error;
  return std::make_shared<const Keyring>(std::move(*keys));
}

const std::string kOld = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
const std::string kNew = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n";
const Mac kA{2, 0, 0, 0, 0, 0xa};
const Mac kB{2, 0, 0, 0, 0, 0xb};
const Destination kToB{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 0xb};
const Destination kToC{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 0xc};

Bytes announcement() { return wire::encode(wire::AnnouncePrimary{}); }

// A clock in microseconds that moves a little at every read.
std::uint64_t next_us() {
  static std::uint64_t t = 1'700'000'000'000'000;
  return t += 10;
}

std::size_t refused(const DatagramGuard& g, Refusal r) {
  return g.stats().refused[static_cast<std::size_t>(r)];
}

TEST(DatagramGuard, WhatOneSealsTheOtherOpensOnce) {
  DatagramGuard a(ring(kOld), AuthMode::Enforce);
  DatagramGuard b(ring(kOld), AuthMode::Enforce);
  auto d1 = a.seal(kA, kToB, announcement(), next_us());
  auto d2 = a.seal(kA, kToB, announcement(), next_us());
  Bytes out;
  Refusal why{};
  ASSERT_TRUE(b.open(d1, kA, kToB, out, why)) << to_string(why);
  EXPECT_EQ(out, announcement());
  ASSERT_TRUE(b.open(d2, kA, kToB, out, why)) << "the counter went on";
  EXPECT_FALSE(b.open(d1, kA, kToB, out, why)) << "played back";
  EXPECT_EQ(why, Refusal::Replay);
  EXPECT_FALSE(b.open(d2, kB, kToB, out, why)) << "played back from another node";
  EXPECT_EQ(why, Refusal::MacMismatch);
  EXPECT_EQ(b.stats().opened, 2u);
  EXPECT_EQ(refused(b, Refusal::Replay), 1u);
  EXPECT_EQ(refused(b, Refusal::MacMismatch), 1u);
  EXPECT_EQ(a.stats().sealed, 2u);
}

TEST(DatagramGuard, OneSealedForAnotherNodeIsRefusedThoughItsCounterIsNewThere) {
  // A's datagram to B, played back to C from A's own address: C has not
  // seen that counter, so only the destination under the tag refuses it.
  DatagramGuard a(ring(kOld), AuthMode::Enforce);
  DatagramGuard c(ring(kOld), AuthMode::Enforce);
  auto to_b = a.seal(kA, kToB, announcement(), next_us());
  Bytes out;
  Refusal why{};
  EXPECT_FALSE(c.open(to_b, kA, kToC, out, why));
  EXPECT_EQ(why, Refusal::BadTag);
  EXPECT_EQ(refused(c, Refusal::BadTag), 1u);
  // What A sends C itself is taken, before and after it in counter order.
  ASSERT_TRUE(c.open(a.seal(kA, kToC, announcement(), next_us()), kA, kToC, out, why)) << to_string(why);
  EXPECT_EQ(c.stats().opened, 1u);
}

TEST(DatagramGuard, EnforceRefusesPlainPacketsAndTransitionTakesThem) {
  DatagramGuard enforce(ring(kOld), AuthMode::Enforce);
  DatagramGuard transition(ring(kOld), AuthMode::Transition);
  Bytes out;
  Refusal why{};
  EXPECT_FALSE(enforce.open(announcement(), kA, kToB, out, why));
  EXPECT_EQ(why, Refusal::Unsealed);
  ASSERT_TRUE(transition.open(announcement(), kA, kToB, out, why));
  EXPECT_EQ(out, announcement());
  EXPECT_EQ(transition.stats().plain_taken, 1u);
  // A sealed datagram that fails is refused in transition mode too: a key
  // holder's forgery is not let in as plain.
  DatagramGuard other(ring(kNew), AuthMode::Enforce);
  EXPECT_FALSE(transition.open(other.seal(kA, kToB, announcement(), next_us()), kA, kToB, out, why));
  EXPECT_EQ(why, Refusal::NoKey);
}

TEST(DatagramGuard, InTransitionThePlainCopyOfASealedPacketIsNotTakenTwice) {
  // A (transition) sends each packet sealed, then plain. B (transition)
  // takes the sealed one and refuses its plain copy; a plain packet of A's
  // that is not such a copy, the same packet after kPlainCopyWindow, and
  // C's (who never sealed) are taken.
  DatagramGuard a(ring(kOld), AuthMode::Transition);
  DatagramGuard b(ring(kOld), AuthMode::Transition);
  const Mac kC{2, 0, 0, 0, 0, 0xc};
  const std::uint64_t t0 = 5'000'000'000;
  Bytes out;
  Refusal why{};
  ASSERT_TRUE(b.open(a.seal(kA, kToB, announcement(), next_us()), kA, kToB, out, why, t0)) << to_string(why);
  EXPECT_FALSE(b.open(announcement(), kA, kToB, out, why, t0 + 50));
  EXPECT_EQ(why, Refusal::PlainCopy);
  EXPECT_EQ(refused(b, Refusal::PlainCopy), 1u);
  Bytes other = wire::encode(wire::TxEnd{9, 1});
  ASSERT_TRUE(b.open(other, kA, kToB, out, why, t0 + 60)) << "not a copy of what A sealed";
  ASSERT_TRUE(b.open(announcement(), kC, kToB, out, why, t0 + 100)) << to_string(why);
  ASSERT_TRUE(b.open(announcement(), kA, kToB, out, why, t0 + DatagramGuard::kPlainCopyWindow)) << to_string(why);
  EXPECT_EQ(b.stats().plain_taken, 3u);
  EXPECT_EQ(to_string(Refusal::PlainCopy), "plain copy");
  // Enforce mode keeps no digests: nothing to compare a plain packet with.
  DatagramGuard e(ring(kOld), AuthMode::Enforce);
  ASSERT_TRUE(e.open(a.seal(kA, kToB, announcement(), next_us()), kA, kToB, out, why, t0)) << to_string(why);
  EXPECT_FALSE(e.open(announcement(), kA, kToB, out, why, t0 + 50));
  EXPECT_EQ(why, Refusal::Unsealed);
}

TEST(DatagramGuard, ARotatedRingSealsWithItsNewFirstKey) {
  DatagramGuard a(ring(kOld), AuthMode::Enforce);
  DatagramGuard b(ring(kNew + kOld), AuthMode::Enforce);
  DatagramGuard c(ring(kNew), AuthMode::Enforce);
  Bytes out;
  Refusal why{};
  auto old_sealed = a.seal(kA, kToB, announcement(), next_us());
  ASSERT_TRUE(b.open(old_sealed, kA, kToB, out, why));
  EXPECT_FALSE(c.open(old_sealed, kA, kToB, out, why));
  EXPECT_EQ(why, Refusal::NoKey);
  a.set_keyring(ring(kNew + kOld));
  ASSERT_TRUE(c.open(a.seal(kA, kToB, announcement(), next_us()), kA, kToB, out, why)) << to_string(why);
}

TEST(DatagramGuard, ForgeriesCostNoWindowEntry) {
  DatagramGuard b(ring(kOld), AuthMode::Enforce);
  DatagramGuard forger(ring(kNew), AuthMode::Enforce);
  Bytes out;
  Refusal why{};
  for (int i = 0; i < 100; ++i) {
    Mac m{2, 0, 0, 0, 1, static_cast<std::uint8_t>(i)};
    auto d = forger.seal(m, kToB, announcement(), next_us());
    // The honest key's id on it: only the tag can tell.
    auto honest_id = b.keyring().sending().key.id();
    std::copy(honest_id.begin(), honest_id.end(), d.begin() + 4);
    EXPECT_FALSE(b.open(d, m, kToB, out, why));
    EXPECT_EQ(why, Refusal::BadTag);
  }
  EXPECT_EQ(refused(b, Refusal::BadTag), 100u);
  EXPECT_EQ(b.stats().opened, 0u);
}

TEST(DatagramGuard, TheCounterFollowsTheClockAndNeverGoesBack) {
  DatagramGuard b(ring(kOld), AuthMode::Enforce);
  Bytes out;
  Refusal why{};
  {
    DatagramGuard a(ring(kOld), AuthMode::Enforce);
    ASSERT_TRUE(b.open(a.seal(kA, kToB, announcement(), 500'000'000), kA, kToB, out, why));
    // The clock stands still or goes back: the counter still grows, by one,
    // so a datagram reordered behind the next one is still taken.
    auto d1 = a.seal(kA, kToB, announcement(), 500'000'000);
    auto d2 = a.seal(kA, kToB, announcement(), 400'000'000);
    ASSERT_TRUE(b.open(d2, kA, kToB, out, why));
    ASSERT_TRUE(b.open(d1, kA, kToB, out, why)) << to_string(why);
    EXPECT_FALSE(b.open(d1, kA, kToB, out, why));
    EXPECT_EQ(why, Refusal::Replay);
  }
  // Restarted with its clock set back by more than the window: refused as
  // stale (not as a replay: an operator can tell the two apart), until its
  // clock passes what it sent before; then it follows the clock again.
  DatagramGuard restarted(ring(kOld), AuthMode::Enforce);
  EXPECT_FALSE(b.open(restarted.seal(kA, kToB, announcement(), 100'000'000), kA, kToB, out, why));
  EXPECT_EQ(why, Refusal::Stale);
  EXPECT_EQ(refused(b, Refusal::Stale), 1u);
  ASSERT_TRUE(b.open(restarted.seal(kA, kToB, announcement(), 600'000'000), kA, kToB, out, why)) << to_string(why);
}

TEST(DatagramGuard, APacketTooLargeToSealIsNotSent) {
  DatagramGuard a(ring(kOld), AuthMode::Enforce);
  EXPECT_EQ(a.seal(kA, kToB, Bytes(kMaxSealable, 1), next_us()).size(), kMaxSealed);
  EXPECT_TRUE(a.seal(kA, kToB, Bytes(kMaxSealable + 1, 1), next_us()).empty());
  EXPECT_EQ(a.stats().sealed, 1u);
}

}  // namespace
}  // namespace alfred::auth
