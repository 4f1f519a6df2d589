// The replay window of sealed datagrams: each counter once per sender,
// reordering within the window, nothing older.
#include "auth/replay_window.hpp"

#include <gtest/gtest.h>

namespace alfred::auth {
namespace {

using V = ReplayWindow::Verdict;

ReplayWindow::Sender sender(std::uint8_t n) { return ReplayWindow::Sender{0xfe, 0x80, n}; }

TEST(ReplayWindow, TakesEachCounterOnce) {
  ReplayWindow w;
  EXPECT_EQ(w.admit(sender(1), 1000), V::Fresh);  // a new sender is taken on trust
  EXPECT_EQ(w.admit(sender(1), 1000), V::Replayed);
  EXPECT_EQ(w.admit(sender(1), 1001), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 1001), V::Replayed);
  EXPECT_EQ(w.admit(sender(1), 1000), V::Replayed);
  // Another sender's numbers are its own.
  EXPECT_EQ(w.admit(sender(2), 1000), V::Fresh);
  EXPECT_EQ(w.senders(), 2u);
}

TEST(ReplayWindow, TakesReorderedCountersWithinTheWindowOnly) {
  ReplayWindow w;
  EXPECT_EQ(w.admit(sender(1), 500), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 510), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 505), V::Fresh);  // late, not seen
  EXPECT_EQ(w.admit(sender(1), 505), V::Replayed);
  EXPECT_EQ(w.admit(sender(1), 500), V::Replayed);
  EXPECT_EQ(w.admit(sender(1), 510 - ReplayWindow::kWindow + 1), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 510 - ReplayWindow::kWindow), V::TooOld);
  EXPECT_EQ(w.admit(sender(1), 0), V::TooOld);
}

TEST(ReplayWindow, AJumpForgetsWhatFellOutOfTheWindow) {
  ReplayWindow w;
  EXPECT_EQ(w.admit(sender(1), 10), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 11), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 10 + 1000), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 11), V::TooOld);
  EXPECT_EQ(w.admit(sender(1), 1010 - 63), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 1010 - 63), V::Replayed);
  // The top of the counter space.
  EXPECT_EQ(w.admit(sender(1), ~std::uint64_t{0}), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), ~std::uint64_t{0}), V::Replayed);
  EXPECT_EQ(w.admit(sender(1), ~std::uint64_t{0} - 1), V::Fresh);
}

TEST(ReplayWindow, KeepsAtMostItsCapOfSendersDroppingTheLeastRecentlyHeard) {
  ReplayWindow w(2);
  EXPECT_EQ(w.admit(sender(1), 100), V::Fresh);
  EXPECT_EQ(w.admit(sender(2), 100), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 101), V::Fresh);  // 2 is now the least recent
  EXPECT_EQ(w.admit(sender(3), 100), V::Fresh);
  EXPECT_EQ(w.senders(), 2u);
  EXPECT_EQ(w.admit(sender(1), 101), V::Replayed);  // 1 kept its window
  EXPECT_EQ(w.admit(sender(2), 100), V::Fresh);     // 2 was forgotten: on trust again
  EXPECT_EQ(w.senders(), 2u);
}

TEST(ReplayWindow, ARefusedCounterChangesNothing) {
  ReplayWindow w;
  EXPECT_EQ(w.admit(sender(1), 200), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 100), V::TooOld);
  EXPECT_EQ(w.admit(sender(1), 200), V::Replayed);
  EXPECT_EQ(w.admit(sender(1), 199), V::Fresh);
}

}  // namespace
}  // namespace alfred::auth
