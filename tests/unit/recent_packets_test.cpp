// Transition mode's duplicate check: the last packets opened from each
// sender, by digest, for a short while; bounded per sender and in senders.
#include "auth/recent_packets.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace alfred::auth {
namespace {

RecentPackets::Sender sender(std::uint8_t n) { return RecentPackets::Sender{0xfe, 0x80, n}; }

std::vector<std::uint8_t> packet(std::uint8_t n) { return std::vector<std::uint8_t>(40, n); }
RecentPackets::Digest of(std::uint8_t n) { return RecentPackets::digest(packet(n)); }

TEST(RecentPackets, RemembersWhatASenderSealedForTheWindowOnly) {
  RecentPackets r;
  r.remember(sender(1), of(1), 1000);
  EXPECT_TRUE(r.seen(sender(1), packet(1), 1000, 500));
  EXPECT_TRUE(r.seen(sender(1), packet(1), 1499, 500));
  EXPECT_FALSE(r.seen(sender(1), packet(1), 1500, 500)) << "the window is over";
  EXPECT_FALSE(r.seen(sender(1), packet(2), 1000, 500)) << "another packet";
  EXPECT_FALSE(r.seen(sender(2), packet(1), 1000, 500)) << "another sender";
  EXPECT_FALSE(r.seen(sender(1), packet(1), 999, 500)) << "a clock before it (never negative)";
  EXPECT_NE(of(1), of(2));
}

TEST(RecentPackets, KeepsTheLastFewOfEachSender) {
  RecentPackets r;
  for (std::uint8_t n = 1; n <= RecentPackets::kPerSender + 1; ++n) r.remember(sender(1), of(n), 10 * n);
  EXPECT_FALSE(r.seen(sender(1), packet(1), 100, 1000)) << "the oldest made room";
  for (std::uint8_t n = 2; n <= RecentPackets::kPerSender + 1; ++n) EXPECT_TRUE(r.seen(sender(1), packet(n), 100, 1000));
}

TEST(RecentPackets, KeepsAtMostItsCapOfSendersDroppingTheLeastRecent) {
  RecentPackets r(2);
  r.remember(sender(1), of(1), 1);
  r.remember(sender(2), of(2), 2);
  r.remember(sender(1), of(3), 3);  // 2 is now the least recent
  r.remember(sender(3), of(4), 4);
  EXPECT_EQ(r.senders(), 2u);
  EXPECT_TRUE(r.seen(sender(1), packet(1), 5, 100));
  EXPECT_FALSE(r.seen(sender(2), packet(2), 5, 100));
  EXPECT_TRUE(r.seen(sender(3), packet(4), 5, 100));
}

}  // namespace
}  // namespace alfred::auth
