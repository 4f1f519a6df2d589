// Incoming transactions: creation, packet collection within limits,
// completion and timeouts.
#include "engine/transactions.hpp"
#include "wire/packet.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <vector>

namespace alfred {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Table = TransactionTable;
using Add = TransactionTable::AddResult;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr Mac kPeerA{0x02, 0, 0, 0, 0, 0x0a};
constexpr Mac kPeerB{0x02, 0, 0, 0, 0, 0x0b};

TimePoint at(int s) { return TimePoint{} + seconds(s); }

constexpr std::size_t kTx = Table::kTransactionCost;
std::size_t cost(std::size_t n) { return Table::packet_cost(n); }
constexpr std::size_t kRoomy = 1u << 20;

Table::Limits limits(std::size_t transactions, std::size_t bytes) {
  Table::Limits l;
  l.max_transactions = transactions;
  l.max_bytes = bytes;
  return l;
}

// ---- create / find -------------------------------------------------------------------

TEST(Transactions, CreateAndFind) {
  Table t;
  EXPECT_EQ(t.find({kPeerA, 1}), nullptr);
  Table::Transaction* tx = t.create({kPeerA, 1}, at(5));
  ASSERT_NE(tx, nullptr);
  EXPECT_EQ(t.find({kPeerA, 1}), tx);
  EXPECT_EQ(tx->last_rx, at(5));
  EXPECT_TRUE(tx->packets.empty());
  EXPECT_FALSE(tx->expected.has_value());
  EXPECT_EQ(tx->bytes, 0u);
  EXPECT_EQ(t.size(), 1u);
}

TEST(Transactions, KeyIsPeerAndId) {
  Table t;
  auto* a1 = t.create({kPeerA, 1}, at(0));
  auto* a2 = t.create({kPeerA, 2}, at(0));
  auto* b1 = t.create({kPeerB, 1}, at(0));
  ASSERT_NE(a1, nullptr);
  ASSERT_NE(a2, nullptr);
  ASSERT_NE(b1, nullptr);
  EXPECT_NE(a1, a2);
  EXPECT_NE(a1, b1);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.find({kPeerB, 2}), nullptr);
}

TEST(Transactions, DuplicateCreateRefused) {
  Table t;
  auto* tx = t.create({kPeerA, 7}, at(0));
  ASSERT_NE(tx, nullptr);
  ASSERT_EQ(t.add_packet(*tx, 0, Bytes(10), at(1)), Add::Added);
  EXPECT_EQ(t.create({kPeerA, 7}, at(2)), nullptr);
  // The existing transaction is untouched.
  EXPECT_EQ(t.find({kPeerA, 7}), tx);
  EXPECT_EQ(tx->packets.size(), 1u);
  EXPECT_EQ(tx->last_rx, at(1));
  EXPECT_EQ(t.size(), 1u);
}

TEST(Transactions, MaxTransactionsRespected) {
  Table t(limits(2, kRoomy));
  EXPECT_NE(t.create({kPeerA, 1}, at(0)), nullptr);
  EXPECT_NE(t.create({kPeerA, 2}, at(1)), nullptr);
  // The table is full and A itself holds the most: A gets no more.
  EXPECT_EQ(t.create({kPeerA, 3}, at(2)), nullptr);
  EXPECT_EQ(t.size(), 2u);
  // Another peer gets room: A's oldest transaction is dropped for it.
  EXPECT_NE(t.create({kPeerB, 1}, at(3)), nullptr);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.find({kPeerA, 1}), nullptr);
  EXPECT_NE(t.find({kPeerA, 2}), nullptr);
  EXPECT_EQ(t.evicted(), 1u);
  // Taking one makes room again.
  t.take({kPeerA, 2});
  EXPECT_NE(t.create({kPeerA, 3}, at(4)), nullptr);
  EXPECT_EQ(t.size(), 2u);
}

TEST(Transactions, PerPeerCapLeavesRoomForOthers) {
  Table::Limits l = limits(100, kRoomy);
  l.max_per_peer = 3;
  Table t(l);
  for (std::uint16_t id = 0; id < 3; ++id) EXPECT_NE(t.create({kPeerA, id}, at(0)), nullptr);
  EXPECT_EQ(t.create({kPeerA, 3}, at(0)), nullptr);
  EXPECT_EQ(t.count_of(kPeerA), 3u);
  EXPECT_NE(t.create({kPeerB, 0}, at(0)), nullptr);
  t.take({kPeerA, 0});
  EXPECT_EQ(t.count_of(kPeerA), 2u);
  EXPECT_NE(t.create({kPeerA, 3}, at(0)), nullptr);
}

TEST(Transactions, WaitingClientsAreNeverEvicted) {
  Table t(limits(2, kRoomy));
  t.create({kPeerA, 1}, at(0))->client = 7;
  t.create({kPeerA, 2}, at(1))->client = 8;
  EXPECT_EQ(t.create({kPeerB, 1}, at(2)), nullptr);
  EXPECT_NE(t.find({kPeerA, 1}), nullptr);
  EXPECT_NE(t.find({kPeerA, 2}), nullptr);
}

// ---- packets and limits --------------------------------------------------------------

TEST(Transactions, AddDuplicateAndOverLimit) {
  // Room for the transaction and packets of 60 and 40 bytes, no more.
  Table t(limits(10, kTx + cost(60) + cost(40)));
  auto* tx = t.create({kPeerA, 1}, at(0));
  ASSERT_NE(tx, nullptr);
  EXPECT_EQ(t.add_packet(*tx, 0, Bytes(60, 0xaa), at(0)), Add::Added);
  EXPECT_EQ(t.bytes(), 60u);
  EXPECT_EQ(t.memory(), kTx + cost(60));
  // Same seqno again: duplicate, first copy kept, nothing counted.
  EXPECT_EQ(t.add_packet(*tx, 0, Bytes(5, 0xbb), at(0)), Add::Duplicate);
  EXPECT_EQ(tx->packets.at(0), Bytes(60, 0xaa));
  EXPECT_EQ(t.bytes(), 60u);
  // A packet that costs more than what is left does not fit.
  ASSERT_GT(cost(100), cost(40));
  EXPECT_EQ(t.add_packet(*tx, 1, Bytes(100), at(0)), Add::OverLimit);
  EXPECT_EQ(tx->packets.count(1), 0u);
  EXPECT_EQ(t.bytes(), 60u);
  // Exactly what is left fits.
  EXPECT_EQ(t.add_packet(*tx, 1, Bytes(40), at(0)), Add::Added);
  EXPECT_EQ(t.bytes(), 100u);
  EXPECT_EQ(tx->bytes, 100u);
  EXPECT_EQ(t.memory(), t.limits().max_bytes);
  EXPECT_EQ(t.add_packet(*tx, 2, Bytes(1), at(0)), Add::OverLimit);
  // A duplicate is reported as such even when the table is full.
  EXPECT_EQ(t.add_packet(*tx, 1, Bytes(1), at(0)), Add::Duplicate);
  // Even an empty packet costs its node.
  EXPECT_EQ(t.add_packet(*tx, 3, Bytes{}, at(0)), Add::OverLimit);
  EXPECT_EQ(tx->packets.size(), 2u);
}

// Real memory, not payload: an 8-byte empty push costs over 100 bytes of
// heap (its map node and its allocation). Counting payload let one peer's
// 33 MB of empty pushes take 460 MB of RSS. With 32-bit pointers (armhf,
// mipsel) the node and glibc's chunks are smaller: 56 bytes in all, measured
// with mallinfo2 under qemu-arm, against 112 on amd64 and s390x.
TEST(Transactions, EmptyPacketsAreChargedTheirOverhead) {
  constexpr std::size_t kEmptyPush = sizeof(void*) == 8 ? 100 : 56;
  EXPECT_GE(cost(8), kEmptyPush);
  EXPECT_GE(cost(0), 64u);
  EXPECT_GE(cost(65535), 65535u + 64u);
  Table t(limits(4096, 1u << 20));
  std::size_t added = 0;
  for (std::uint16_t id = 0; id < 64; ++id) {
    auto* tx = t.create({kPeerA, id}, at(0));
    if (!tx) break;
    for (std::uint32_t s = 0; s < 65535; ++s) {
      auto r = t.add_packet(*tx, static_cast<std::uint16_t>(s), Bytes(8), at(0));
      if (r != Add::Added) break;
      ++added;
    }
  }
  EXPECT_LE(t.memory(), 1u << 20);
  EXPECT_LE(added * kEmptyPush, std::size_t(1) << 20);
}

TEST(Transactions, PacketsPerTransactionAreCapped) {
  Table::Limits l = limits(10, 64u << 20);
  l.max_packets_per_transaction = 100;
  Table t(l);
  auto* tx = t.create({kPeerA, 1}, at(0));
  for (std::uint16_t s = 0; s < 100; ++s) EXPECT_EQ(t.add_packet(*tx, s, Bytes(4), at(0)), Add::Added);
  EXPECT_EQ(t.add_packet(*tx, 100, Bytes(4), at(0)), Add::TooManyPackets);
  EXPECT_EQ(t.add_packet(*tx, 5, Bytes(4), at(0)), Add::Duplicate);
  EXPECT_EQ(tx->packets.size(), 100u);
}

TEST(Transactions, ByteLimitMakesRoomFromTheHeaviestOtherPeer) {
  Table t(limits(10, 2 * kTx + cost(70) + cost(30)));
  auto* a = t.create({kPeerA, 1}, at(0));
  auto* b = t.create({kPeerB, 1}, at(0));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(t.add_packet(*a, 0, Bytes(70), at(0)), Add::Added);
  EXPECT_EQ(t.add_packet(*b, 0, Bytes(30), at(0)), Add::Added);
  EXPECT_EQ(t.memory(), t.limits().max_bytes);
  // B needs room; A holds more, so A's transaction goes.
  EXPECT_EQ(t.add_packet(*b, 1, Bytes(31), at(0)), Add::Added);
  EXPECT_EQ(t.find({kPeerA, 1}), nullptr);
  EXPECT_EQ(b->bytes, 61u);
  EXPECT_EQ(t.bytes(), 61u);
  EXPECT_EQ(t.memory(), kTx + cost(30) + cost(31));
  // Now B is the heaviest: nothing is taken from others for it.
  auto* a2 = t.create({kPeerA, 2}, at(0));
  ASSERT_NE(a2, nullptr);
  ASSERT_GT(t.memory() + cost(1), t.limits().max_bytes);
  EXPECT_EQ(t.add_packet(*b, 2, Bytes(1), at(0)), Add::OverLimit);
  EXPECT_NE(t.find({kPeerA, 2}), nullptr);
}

// Streams have no end of life. A forger under many MACs, each holding less
// than an honest sync, kept its transactions alive with one new small
// packet every 9 s, and the honest sync was refused for good.
TEST(Transactions, ATricklersOverdueTransactionsGiveWayToAnHonestSync) {
  constexpr int kForgers = 16;
  const std::size_t forger = kTx + 4 * cost(0);  // four empty pushes each
  const std::size_t honest_first = kTx + cost(300);
  ASSERT_LT(forger, honest_first);
  Table t(limits(100, kForgers * forger + honest_first));
  auto mac = [](int f) { return Mac{0x02, 0xee, 0, 0, 0, static_cast<std::uint8_t>(f)}; };
  for (int f = 0; f < kForgers; ++f) ASSERT_NE(t.create({mac(f), 1}, at(0), TimePoint::max()), nullptr);
  for (int step = 0; step < 4; ++step)
    for (int f = 0; f < kForgers; ++f)
      ASSERT_EQ(t.add_packet(*t.find({mac(f), 1}), static_cast<std::uint16_t>(step), Bytes(),
                             at(9 * step)),
                Add::Added);
  EXPECT_TRUE(t.expired(at(35)).empty()) << "every forger's transaction is alive";
  // At 35 s an honest peer's sync needs more than the table has left, and
  // it holds more than any forger: the heaviest rule alone refuses it.
  auto* honest = t.create({kPeerA, 7}, at(35), TimePoint::max());
  ASSERT_NE(honest, nullptr);
  ASSERT_EQ(t.add_packet(*honest, 0, Bytes(300), at(35)), Add::Added);
  EXPECT_EQ(t.memory(), t.limits().max_bytes);
  for (std::uint16_t seq = 1; seq < 4; ++seq)
    EXPECT_EQ(t.add_packet(*honest, seq, Bytes(400), at(35)), Add::Added) << seq;
  EXPECT_EQ(honest->bytes, 300u + 3 * 400u);
  EXPECT_GE(t.evicted_overdue(), 2u);
  EXPECT_LE(t.memory(), t.limits().max_bytes);
}

TEST(Transactions, OnlyTransactionsBegunLongAgoAreOverdue) {
  Table t(limits(10, 2 * kTx + cost(100) + cost(100)));
  auto* a = t.create({kPeerA, 1}, at(0), TimePoint::max());
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(t.add_packet(*a, 0, Bytes(100), at(0)), Add::Added);
  auto* b = t.create({kPeerB, 1}, at(5), TimePoint::max());
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(t.add_packet(*b, 0, Bytes(100), at(5)), Add::Added);
  // At 29 s A is not overdue and not heavier than B: B is refused.
  EXPECT_EQ(t.add_packet(*b, 1, Bytes(100), at(29)), Add::OverLimit);
  EXPECT_EQ(t.evicted_overdue(), 0u);
  // At 30 s A is overdue, and gives way; B's own never does for B.
  EXPECT_EQ(t.add_packet(*b, 1, Bytes(100), at(30)), Add::Added);
  EXPECT_EQ(t.find({kPeerA, 1}), nullptr);
  EXPECT_EQ(t.evicted_overdue(), 1u);
  // B is overdue at 60 s, but it is what asks: it fills the table, then is refused.
  std::uint16_t seq = 2;
  while (t.add_packet(*b, seq, Bytes(100), at(60)) == Add::Added) ++seq;
  EXPECT_EQ(seq, 4);
  EXPECT_NE(t.find({kPeerB, 1}), nullptr);
  EXPECT_EQ(t.evicted_overdue(), 1u);
}

TEST(Transactions, TakeReleasesBytes) {
  Table t(limits(10, 2 * kTx + cost(30) + cost(20) + cost(50)));
  auto* a = t.create({kPeerA, 1}, at(0));
  auto* b = t.create({kPeerB, 1}, at(0));
  t.add_packet(*a, 0, Bytes(30, 1), at(0));
  t.add_packet(*a, 1, Bytes(20, 2), at(0));
  t.add_packet(*b, 0, Bytes(50, 3), at(0));
  ASSERT_EQ(t.bytes(), 100u);
  ASSERT_EQ(t.memory(), t.limits().max_bytes);

  Table::Transaction taken = t.take({kPeerA, 1});
  EXPECT_EQ(taken.bytes, 50u);
  ASSERT_EQ(taken.packets.size(), 2u);
  EXPECT_EQ(taken.packets.at(0), Bytes(30, 1));
  EXPECT_EQ(taken.packets.at(1), Bytes(20, 2));
  EXPECT_EQ(t.bytes(), 50u);
  EXPECT_EQ(t.memory(), kTx + cost(50));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.find({kPeerA, 1}), nullptr);

  // The freed memory can be used again.
  EXPECT_EQ(t.add_packet(*t.find({kPeerB, 1}), 1, Bytes(50), at(0)), Add::Added);
  EXPECT_EQ(t.bytes(), 100u);
}

TEST(Transactions, TakeOfAnUnknownKeyChangesNothing) {
  Table t;
  auto* tx = t.create({kPeerA, 1}, at(0));
  t.add_packet(*tx, 0, Bytes(10), at(0));
  Table::Transaction none = t.take({kPeerA, 2});
  EXPECT_TRUE(none.packets.empty());
  EXPECT_EQ(none.bytes, 0u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.bytes(), 10u);
}

TEST(Transactions, PacketsAreKeptBySeqno) {
  Table t;
  auto* tx = t.create({kPeerA, 1}, at(0));
  for (std::uint16_t s : {2, 0, 1}) t.add_packet(*tx, s, Bytes{static_cast<std::uint8_t>(s)}, at(0));
  std::vector<std::uint16_t> order;
  for (const auto& [seqno, packet] : tx->packets) {
    order.push_back(seqno);
    EXPECT_EQ(packet, Bytes{static_cast<std::uint8_t>(seqno)});
  }
  EXPECT_EQ(order, (std::vector<std::uint16_t>{0, 1, 2}));
}

// ---- completion ----------------------------------------------------------------------

TEST(Transactions, CompleteNeedsTheTxendCount) {
  Table t;
  auto* tx = t.create({kPeerA, 1}, at(0));
  t.add_packet(*tx, 0, Bytes(4), at(0));
  t.add_packet(*tx, 1, Bytes(4), at(0));
  EXPECT_FALSE(tx->complete()) << "no txend yet";
  tx->expected = 3;
  EXPECT_FALSE(tx->complete()) << "one packet missing";
  t.add_packet(*tx, 2, Bytes(4), at(0));
  EXPECT_TRUE(tx->complete());
}

TEST(Transactions, TxendBeforePackets) {
  Table t;
  auto* tx = t.create({kPeerA, 1}, at(0));
  tx->expected = 2;
  EXPECT_FALSE(tx->complete());
  t.add_packet(*tx, 1, Bytes(4), at(0));
  EXPECT_FALSE(tx->complete());
  t.add_packet(*tx, 0, Bytes(4), at(0));
  EXPECT_TRUE(tx->complete());
}

TEST(Transactions, EmptyTransactionCompleteOnTxendZero) {
  Table t;
  auto* tx = t.create({kPeerA, 1}, at(0));
  EXPECT_FALSE(tx->complete());
  tx->expected = 0;
  EXPECT_TRUE(tx->complete());
}

TEST(Transactions, MorePacketsThanAnnouncedIsNotComplete) {
  Table t;
  auto* tx = t.create({kPeerA, 1}, at(0));
  for (std::uint16_t s = 0; s < 3; ++s) t.add_packet(*tx, s, Bytes(4), at(0));
  tx->expected = 2;
  EXPECT_FALSE(tx->complete());
}

// The txend announces n packets, numbered 0..n-1. Packets with other seqnos
// must not stand in for missing ones.
TEST(Transactions, SeqnoOutsideTheAnnouncedRangeDoesNotComplete) {
  Table t;
  auto* tx = t.create({kPeerA, 1}, at(0));
  t.add_packet(*tx, 0, Bytes(4), at(0));
  t.add_packet(*tx, 5, Bytes(4), at(0));
  tx->expected = 2;
  EXPECT_FALSE(tx->complete()) << "packet 1 is missing; packet 5 is not part of a 2-packet "
                                  "transaction";
}

// ---- timeouts --------------------------------------------------------------------------

TEST(Transactions, ExpiredAtExactlyTenSeconds) {
  Table t;
  t.create({kPeerA, 1}, at(100));
  EXPECT_TRUE(t.expired(at(109)).empty());
  EXPECT_TRUE(t.expired(at(110) - milliseconds(1)).empty());
  auto keys = t.expired(at(110));
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0], (Table::Key{kPeerA, 1}));
  EXPECT_EQ(t.size(), 1u) << "expired() only reports";
}

TEST(Transactions, PacketsRefreshTheTimer) {
  Table t;
  auto* tx = t.create({kPeerA, 1}, at(0));
  EXPECT_EQ(t.add_packet(*tx, 0, Bytes(4), at(8)), Add::Added);
  EXPECT_EQ(tx->last_rx, at(8));
  EXPECT_TRUE(t.expired(at(10)).empty());
  EXPECT_TRUE(t.expired(at(17)).empty());
  EXPECT_EQ(t.expired(at(18)).size(), 1u);
  // A duplicate adds nothing, and so keeps nothing alive: a forger would
  // hold the transaction with one tiny packet every few seconds.
  EXPECT_EQ(t.add_packet(*tx, 0, Bytes(4), at(15)), Add::Duplicate);
  EXPECT_EQ(tx->last_rx, at(8));
  EXPECT_EQ(t.expired(at(18)).size(), 1u);
}

TEST(Transactions, ADatagramTransactionEndsAtItsEndOfLifeWhateverArrives) {
  Table t;
  auto* tx = t.create({kPeerA, 1}, at(0), at(30));
  ASSERT_NE(tx, nullptr);
  // A new packet every 9 s: each would reset the 10 s timeout.
  for (std::uint16_t i = 0; i < 3; ++i) {
    EXPECT_EQ(t.add_packet(*tx, i, Bytes(4), at(9 * (i + 1))), Add::Added);
    EXPECT_EQ(t.next_deadline(), std::min(at(9 * (i + 1) + 10), at(30))) << i;
  }
  // The last came at 27 s: its timeout would be 37 s, the end of life is 30.
  EXPECT_EQ(t.next_deadline(), at(30));
  EXPECT_TRUE(t.expired(at(30) - milliseconds(1)).empty());
  EXPECT_EQ(t.expired(at(30)), (std::vector<Table::Key>{{kPeerA, 1}}));
  // Without an end of life (a stream's), the same packets keep it going.
  Table s;
  auto* st = s.create({kPeerA, 1}, at(0));
  for (std::uint16_t i = 0; i < 3; ++i) EXPECT_EQ(s.add_packet(*st, i, Bytes(4), at(9 * (i + 1))), Add::Added);
  EXPECT_EQ(s.next_deadline(), at(37));
}

TEST(Transactions, ExpiredListsOnlyStaleOnes) {
  Table t;
  t.create({kPeerA, 1}, at(0));
  t.create({kPeerA, 2}, at(5));
  t.create({kPeerB, 1}, at(1));
  auto keys = t.expired(at(11));
  EXPECT_EQ(keys, (std::vector<Table::Key>{{kPeerA, 1}, {kPeerB, 1}}));
}

TEST(Transactions, NextDeadlineIsTheEarliest) {
  Table t;
  EXPECT_FALSE(t.next_deadline().has_value());
  t.create({kPeerA, 1}, at(7));
  t.create({kPeerA, 2}, at(3));
  t.create({kPeerB, 1}, at(5));
  EXPECT_EQ(t.next_deadline(), at(13));
  // Refreshing the oldest moves the deadline to the next one.
  t.add_packet(*t.find({kPeerA, 2}), 0, Bytes(1), at(20));
  EXPECT_EQ(t.next_deadline(), at(15));
  t.take({kPeerB, 1});
  EXPECT_EQ(t.next_deadline(), at(17));
  t.take({kPeerA, 1});
  t.take({kPeerA, 2});
  EXPECT_FALSE(t.next_deadline().has_value());
}

// The deadline index follows every refresh and removal; expiry and the next
// deadline never walk the table.
TEST(Transactions, DeadlineIndexFollowsTouchTakeAndEviction) {
  Table t(limits(3, kRoomy));
  t.create({kPeerA, 1}, at(0));
  t.create({kPeerA, 2}, at(1));
  t.create({kPeerB, 1}, at(2));
  t.touch(*t.find({kPeerA, 1}), at(5));
  EXPECT_EQ(t.next_deadline(), at(11));
  EXPECT_EQ(t.expired(at(11)), (std::vector<Table::Key>{{kPeerA, 2}}));
  EXPECT_EQ(t.expired(at(15)), (std::vector<Table::Key>{{kPeerA, 2}, {kPeerB, 1}, {kPeerA, 1}}));
  // A third peer evicts A's oldest (A holds the most).
  constexpr Mac kPeerC{0x02, 0, 0, 0, 0, 0x0c};
  ASSERT_NE(t.create({kPeerC, 1}, at(6)), nullptr);
  EXPECT_EQ(t.find({kPeerA, 2}), nullptr);
  EXPECT_EQ(t.next_deadline(), at(12));
  EXPECT_EQ(t.expired(at(16)), (std::vector<Table::Key>{{kPeerB, 1}, {kPeerA, 1}, {kPeerC, 1}}));
  t.take({kPeerB, 1});
  t.take({kPeerA, 1});
  EXPECT_EQ(t.next_deadline(), at(16));
  EXPECT_EQ(t.count_of(kPeerA), 0u);
}

TEST(Transactions, DefaultLimits) {
  Table::Limits l;
  EXPECT_EQ(l.max_transactions, 4096u);
  // Room for a 30 MB data set in one transaction, yet a flood of lying
  // pushes keeps the daemon well under its 64 MB RSS bound.
  EXPECT_GE(l.max_bytes, std::size_t(30) * 1000 * 1000 + 2 * wire::kMaxPacket);
  EXPECT_LE(l.max_bytes, std::size_t(32) << 20);
  EXPECT_GE(l.max_packets_per_transaction, 30u * 1000 * 1000 / wire::kMaxPacket + 1);
  EXPECT_EQ(Table::kTimeout, seconds(10));
}

}  // namespace
}  // namespace alfred
