// Packing a snapshot into push packets and a txend.
#include "wire/push_encoder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "wire/packet.hpp"

namespace alfred::wire {
namespace {

using Bytes = std::vector<std::uint8_t>;

RecordPtr make_record(std::uint32_t n, std::size_t size) {
  auto r = std::make_shared<Record>();
  r->source = Mac{0x02, 0, 0, static_cast<std::uint8_t>(n >> 16), static_cast<std::uint8_t>(n >> 8),
                  static_cast<std::uint8_t>(n)};
  r->type = static_cast<std::uint8_t>(64 + n % 100);
  r->version = static_cast<std::uint8_t>(n % 7);
  r->data.resize(size);
  for (std::size_t i = 0; i < size; ++i) r->data[i] = static_cast<std::uint8_t>(n * 31 + i);
  return r;
}

// Everything one transaction produced, checked for the invariants every
// transaction must satisfy.
struct Transaction {
  std::vector<Bytes> pushes;
  bool has_txend = false;
  TxEnd txend;
  std::size_t total_bytes = 0;
  Snapshot decoded;  // every record, in the order the packets carry them
};

Transaction run(PushEncoder& enc, std::size_t max_packet) {
  Transaction t;
  Bytes out{0xde, 0xad};  // next() must replace, not append
  while (enc.next(out)) {
    if (t.pushes.size() > 0xffff) {
      ADD_FAILURE() << "more push packets than seqnos";
      break;
    }
    EXPECT_FALSE(t.has_txend) << "nothing may follow the txend";
    EXPECT_LE(out.size(), max_packet);
    t.total_bytes += out.size();
    DecodeResult r = decode(out);
    EXPECT_TRUE(r.ok) << r.error;
    if (!r.ok) break;
    if (auto* push = std::get_if<PushData>(&r.packet)) {
      EXPECT_EQ(push->tx_id, enc.tx_id());
      EXPECT_EQ(push->seqno, t.pushes.size()) << "seqnos count up from 0";
      if (push->records.empty()) {
        ADD_FAILURE() << "empty push packet " << push->seqno << ": the encoder makes no progress";
        break;
      }
      for (const auto& v : push->records) {
        auto rec = std::make_shared<Record>();
        rec->source = v.source;
        rec->type = v.type;
        rec->version = v.version;
        rec->data.assign(v.data.begin(), v.data.end());
        t.decoded.push_back(rec);
      }
      t.pushes.push_back(out);
    } else if (auto* end = std::get_if<TxEnd>(&r.packet)) {
      EXPECT_EQ(end->tx_id, enc.tx_id());
      t.has_txend = true;
      t.txend = *end;
    } else {
      ADD_FAILURE() << "unexpected packet type " << int(out[0]);
    }
  }
  EXPECT_TRUE(out.empty()) << "a finished encoder leaves no stale packet";
  EXPECT_FALSE(enc.next(out)) << "done stays done";
  return t;
}

void expect_same_records(const Snapshot& got, const Snapshot& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("record " + std::to_string(i));
    EXPECT_EQ(got[i]->source, want[i]->source);
    EXPECT_EQ(got[i]->type, want[i]->type);
    EXPECT_EQ(got[i]->version, want[i]->version);
    EXPECT_EQ(got[i]->data, want[i]->data);
  }
}

// Runs a snapshot through an encoder and checks everything the encoder promises.
Transaction encode_all(const Snapshot& snap, std::size_t max_packet, const Snapshot& expected) {
  const std::size_t predicted = PushEncoder::encoded_size(snap, true, max_packet);
  PushEncoder enc(snap, 0x4242, true, max_packet);
  EXPECT_EQ(enc.record_count(), snap.size());
  Transaction t = run(enc, max_packet);
  EXPECT_TRUE(t.has_txend);
  EXPECT_EQ(t.txend.seqno, t.pushes.size()) << "txend counts the push packets";
  EXPECT_EQ(enc.packets_sent(), t.pushes.size());
  EXPECT_EQ(predicted, t.total_bytes) << "encoded_size matches what was sent";
  expect_same_records(t.decoded, expected);
  // Greedy packing: the first record of each packet would not have fitted
  // into the one before.
  for (std::size_t i = 0; i + 1 < t.pushes.size(); ++i) {
    auto next = std::get<PushData>(decode(t.pushes[i + 1]).packet);
    EXPECT_GT(t.pushes[i].size() + kDataHeaderSize + next.records[0].data.size(), max_packet)
        << "packet " << i << " had room for the next record";
  }
  return t;
}

TEST(PushEncoderEmpty, NoTxendWhenNotRequired) {
  PushEncoder enc({}, 9, false);
  Bytes out;
  EXPECT_FALSE(enc.next(out));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(enc.packets_sent(), 0u);
  EXPECT_EQ(PushEncoder::encoded_size({}, false), 0u);
}

TEST(PushEncoderEmpty, LoneTxendWhenRequired) {
  PushEncoder enc({}, 9, true);
  Bytes out;
  ASSERT_TRUE(enc.next(out));
  EXPECT_EQ(out, encode(TxEnd{9, 0}));
  EXPECT_FALSE(enc.next(out));
  EXPECT_EQ(PushEncoder::encoded_size({}, true), kTlvSize + kTxMgmtSize);
}

TEST(PushEncoderPacking, FewSmallRecordsShareOnePacket) {
  Snapshot snap;
  for (std::uint32_t i = 0; i < 5; ++i) snap.push_back(make_record(i, 10 + i));
  Transaction t = encode_all(snap, kMaxPacket, snap);
  EXPECT_EQ(t.pushes.size(), 1u);
  EXPECT_EQ(t.txend.seqno, 1u);
}

TEST(PushEncoderPacking, TxendOnlyWhenRequiredButPushesAlwaysEndWithOne) {
  Snapshot snap{make_record(1, 10)};
  PushEncoder enc(snap, 3, false);
  Transaction t = run(enc, kMaxPacket);
  EXPECT_EQ(t.pushes.size(), 1u);
  EXPECT_TRUE(t.has_txend) << "a non-empty transaction is always closed";
  EXPECT_EQ(t.txend.seqno, 1u);
  EXPECT_EQ(PushEncoder::encoded_size(snap, false), t.total_bytes);
}

TEST(PushEncoderPacking, ManyTenKilobyteRecords) {
  Snapshot snap;
  for (std::uint32_t i = 0; i < 100; ++i) snap.push_back(make_record(i, 10000 + i * 7));
  Transaction t = encode_all(snap, kMaxPacket, snap);
  EXPECT_GE(t.pushes.size(), 16u);  // at most six 10 KB records per 64 KB packet
  EXPECT_LE(t.pushes.size(), 17u);
}

TEST(PushEncoderPacking, MaximalRecordsFillAPacketEach) {
  Snapshot snap;
  for (std::uint32_t i = 0; i < 3; ++i) snap.push_back(make_record(i, kMaxRecordData));
  Transaction t = encode_all(snap, kMaxPacket, snap);
  ASSERT_EQ(t.pushes.size(), 3u);
  for (const auto& p : t.pushes) EXPECT_EQ(p.size(), kMaxPacket);
}

TEST(PushEncoderPacking, MaximalRecordsMixedWithSmallOnes) {
  Snapshot snap;
  for (std::uint32_t i = 0; i < 30; ++i) {
    std::size_t size = i % 5 == 0 ? kMaxRecordData : (i % 5 == 1 ? 0 : 10000 + i);
    snap.push_back(make_record(i, size));
  }
  encode_all(snap, kMaxPacket, snap);
}

TEST(PushEncoderPacking, RecordsThatFillThePacketExactly) {
  // Two records that together make exactly kMaxPacket, then one byte more.
  const std::size_t half = (kMaxPacket - kPushHeaderSize) / 2 - kDataHeaderSize;
  Snapshot exact{make_record(1, half), make_record(2, kMaxPacket - kPushHeaderSize -
                                                         2 * kDataHeaderSize - half)};
  Transaction t = encode_all(exact, kMaxPacket, exact);
  ASSERT_EQ(t.pushes.size(), 1u);
  EXPECT_EQ(t.pushes[0].size(), kMaxPacket);

  Snapshot over{make_record(1, half), make_record(2, kMaxPacket - kPushHeaderSize -
                                                        2 * kDataHeaderSize - half + 1)};
  EXPECT_EQ(encode_all(over, kMaxPacket, over).pushes.size(), 2u);
}

TEST(PushEncoderPacking, SmallMaxPacket) {
  constexpr std::size_t kMax = 1232;
  Snapshot snap;
  for (std::uint32_t i = 0; i < 200; ++i) snap.push_back(make_record(i, (i * 37) % 600));
  Transaction t = encode_all(snap, kMax, snap);
  EXPECT_GT(t.pushes.size(), 1u);
  // A record exactly filling a 1232-byte packet fits.
  Snapshot full{make_record(1, kMax - kPushHeaderSize - kDataHeaderSize)};
  Transaction f = encode_all(full, kMax, full);
  ASSERT_EQ(f.pushes.size(), 1u);
  EXPECT_EQ(f.pushes[0].size(), kMax);
}

TEST(PushEncoderSkipping, RecordTooLargeForMaxPacketIsSkipped) {
  constexpr std::size_t kMax = 1232;
  const std::size_t too_big = kMax - kPushHeaderSize - kDataHeaderSize + 1;
  Snapshot snap{make_record(1, 100), make_record(2, too_big), make_record(3, 200),
                make_record(4, 60000), make_record(5, 50)};
  Snapshot sent{snap[0], snap[2], snap[4]};
  Transaction t = encode_all(snap, kMax, sent);
  EXPECT_EQ(t.pushes.size(), 1u);
}

TEST(PushEncoderSkipping, SkippedRecordsBetweenPackets) {
  constexpr std::size_t kMax = 1232;
  Snapshot snap{make_record(1, 1000), make_record(2, 5000), make_record(3, 1000),
                make_record(4, 5000)};
  Transaction t = encode_all(snap, kMax, Snapshot{snap[0], snap[2]});
  EXPECT_EQ(t.pushes.size(), 2u);
}

TEST(PushEncoderSkipping, OnlyOversizedRecordsIsAnEmptyTransaction) {
  constexpr std::size_t kMax = 1232;
  Snapshot snap{make_record(1, 2000), make_record(2, 3000)};

  PushEncoder quiet(snap, 1, false, kMax);
  Bytes out;
  EXPECT_FALSE(quiet.next(out));
  EXPECT_EQ(PushEncoder::encoded_size(snap, false, kMax), 0u);

  PushEncoder closed(snap, 1, true, kMax);
  ASSERT_TRUE(closed.next(out));
  EXPECT_EQ(out, encode(TxEnd{1, 0}));
  EXPECT_FALSE(closed.next(out));
  EXPECT_EQ(PushEncoder::encoded_size(snap, true, kMax), kTlvSize + kTxMgmtSize);
}

TEST(PushEncoderSharing, EncoderKeepsRecordsAlive) {
  Snapshot snap{make_record(1, 10)};
  std::weak_ptr<const Record> weak = snap[0];
  PushEncoder enc(snap, 1, true);
  snap.clear();
  EXPECT_FALSE(weak.expired());
  Transaction t = run(enc, kMaxPacket);
  EXPECT_EQ(t.decoded.size(), 1u);
}

}  // namespace
}  // namespace alfred::wire
