// The replay window of sealed datagrams: each counter once per sender,
// reordering within the window, nothing older.
#include "auth/replay_window.hpp"

#include <gtest/gtest.h>

#include <set>

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
  EXPECT_EQ(w.admit(sender(1), 5000), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 5010), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 5005), V::Fresh);  // late, not seen
  EXPECT_EQ(w.admit(sender(1), 5005), V::Replayed);
  EXPECT_EQ(w.admit(sender(1), 5000), V::Replayed);
  EXPECT_EQ(w.admit(sender(1), 5010 - ReplayWindow::kWindow + 1), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 5010 - ReplayWindow::kWindow), V::TooOld);
  EXPECT_EQ(w.admit(sender(1), 0), V::TooOld);
}

TEST(ReplayWindow, AJumpForgetsWhatFellOutOfTheWindow) {
  ReplayWindow w;
  EXPECT_EQ(w.admit(sender(1), 10), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 11), V::Fresh);
  constexpr std::uint64_t top = 10 + 5 * ReplayWindow::kWindow;
  EXPECT_EQ(w.admit(sender(1), top), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 11), V::TooOld);
  EXPECT_EQ(w.admit(sender(1), top - (ReplayWindow::kWindow - 1)), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), top - (ReplayWindow::kWindow - 1)), V::Replayed);
  // The top of the counter space.
  EXPECT_EQ(w.admit(sender(1), ~std::uint64_t{0}), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), ~std::uint64_t{0}), V::Replayed);
  EXPECT_EQ(w.admit(sender(1), ~std::uint64_t{0} - 1), V::Fresh);
}

TEST(ReplayWindow, ShiftsAcrossWordsKeepEveryTakenCounter) {
  // Counters taken here and there, then the newest moved up by steps that
  // are and are not multiples of 64: each taken counter stays Replayed
  // while in the window, each untaken one is Fresh once, and what fell out
  // is TooOld. Against a plain set of what was taken.
  ReplayWindow w;
  std::set<std::uint64_t> taken;
  std::uint64_t highest = 100'000;
  ASSERT_EQ(w.admit(sender(1), highest), V::Fresh);
  taken.insert(highest);
  for (std::uint64_t step : {1u, 63u, 64u, 65u, 127u, 128u, 500u, 1000u, 3u}) {
    for (std::uint64_t back : {1u, 2u, 63u, 64u, 65u, 200u, 700u, 1023u})
      if (back < ReplayWindow::kWindow && !taken.count(highest - back) && (back % 3 == 0 || back == 1)) {
        ASSERT_EQ(w.admit(sender(1), highest - back), V::Fresh) << back;
        taken.insert(highest - back);
      }
    highest += step;
    ASSERT_EQ(w.admit(sender(1), highest), V::Fresh);
    taken.insert(highest);
    for (std::uint64_t c = highest - 1500; c <= highest; ++c) {
      V want = c + ReplayWindow::kWindow <= highest ? V::TooOld : taken.count(c) ? V::Replayed : V::Fresh;
      ReplayWindow probe = w;  // admitting a fresh one would change what is taken
      ASSERT_EQ(probe.admit(sender(1), c), want) << "counter " << c << " with the newest " << highest;
    }
  }
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
  EXPECT_EQ(w.admit(sender(1), 5000), V::Fresh);
  EXPECT_EQ(w.admit(sender(1), 5000 - ReplayWindow::kWindow), V::TooOld);
  EXPECT_EQ(w.admit(sender(1), 5000), V::Replayed);
  EXPECT_EQ(w.admit(sender(1), 4999), V::Fresh);
}

}  // namespace
}  // namespace alfred::auth
