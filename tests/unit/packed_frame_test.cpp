// Compression on sessions: the packed frame (wire/packed_frame.hpp), its
// negotiation in the hellos, the opener that packs (link::SessionLink) and
// the acceptor that unpacks (link::SessionResponder), and the bounds that
// make a decompression bomb cost a closed session, not memory or CPU. The
// whole of it in a mesh: packed_sim_test.cpp.
#include <gtest/gtest.h>
#include <zlib.h>

#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "link/session_link.hpp"
#include "link/session_responder.hpp"
#include "store/store.hpp"
#include "wire/packed_frame.hpp"
#include "wire/push_encoder.hpp"
#include "wire/session_frames.hpp"

namespace alfred {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

const TimePoint T0 = TimePoint{} + 1000s;

Mac mac(int i) { return Mac{0x02, 0, 0, 0, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)}; }

// Node data as gluon's respondd/alfred-announce publish it, about 600 bytes.
std::string node_json(int i) {
  std::string s = "{\"node_id\":\"0200000000" + std::to_string(10 + i % 90) + "\",\"hostname\":\"ffxx-node-" +
                  std::to_string(i) +
                  "\",\"network\":{\"mac\":\"02:00:00:00:00:" + std::to_string(10 + i % 90) +
                  "\",\"addresses\":[\"fe80::ff:fe00:" + std::to_string(i) + "\",\"2001:db8::" +
                  std::to_string(i) + "\"],\"mesh\":{\"bat0\":{\"interfaces\":{\"wireless\":[\"02:00:00:00:01:" +
                  std::to_string(i % 100) + "\"],\"tunnel\":[\"02:00:00:00:02:" + std::to_string(i % 100) +
                  "\"]}}}},\"software\":{\"autoupdater\":{\"enabled\":true,\"branch\":\"stable\"},"
                  "\"batman-adv\":{\"version\":\"2023.0\",\"compat\":15},\"firmware\":{\"base\":\"gluon-v2023.1\","
                  "\"release\":\"2023.1.2+exp\"}},\"hardware\":{\"model\":\"TP-Link TL-WR841N/ND v9\","
                  "\"nproc\":1},\"location\":{\"latitude\":53." +
                  std::to_string(1000 + i) + ",\"longitude\":10." + std::to_string(2000 + i) +
                  "},\"owner\":{\"contact\":\"node" + std::to_string(i) +
                  "@example.org\"},\"system\":{\"site_code\":\"ffxx\",\"domain_code\":\"dom1\"}}";
  return s;
}

std::string gzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::shared_ptr<const Snapshot> snapshot(const std::vector<std::string>& data) {
  Store s;
  for (std::size_t i = 0; i < data.size(); ++i) {
    Record r;
    r.source = mac(static_cast<int>(i) + 1);
    r.type = 158;
    r.data.assign(data[i].begin(), data[i].end());
    s.set_local(r, T0);
  }
  return std::make_shared<const Snapshot>(s.snapshot(Source::Local));
}

Bytes first_packet(const std::vector<std::string>& data) {
  auto enc = wire::PushEncoder::shared(snapshot(data), 7, false);
  Bytes out;
  EXPECT_TRUE(enc.next(out));
  return out;
}

std::vector<std::string> nodes(int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(node_json(i));
  return v;
}

Bytes body_of(const Bytes& frame) { return Bytes(frame.begin() + wire::kTlvSize, frame.end()); }

Bytes deflated(const Bytes& in) {
  Bytes out(compressBound(static_cast<uLong>(in.size())));
  uLongf n = static_cast<uLongf>(out.size());
  EXPECT_EQ(compress2(out.data(), &n, in.data(), static_cast<uLong>(in.size()), 9), Z_OK);
  out.resize(n);
  return out;
}

// ------------------------------------------------------------------ the frame

TEST(PackedFrame, NodeDataDeflatesAndComesBackAsItWas) {
  Bytes packet = first_packet(nodes(40));
  ASSERT_GT(packet.size(), 20000u);
  Bytes frame;
  ASSERT_EQ(wire::pack(packet, frame), wire::PackResult::Packed);
  EXPECT_EQ(frame[0], static_cast<std::uint8_t>(wire::SessionType::Packed));
  EXPECT_EQ(frame.size(), wire::kTlvSize + (frame[2] << 8 | frame[3]));
  EXPECT_LT(frame.size() * 4, packet.size()) << "JSON node data deflates 4x and more";
  Bytes back;
  std::string error;
  ASSERT_TRUE(wire::unpack(body_of(frame), back, error)) << error;
  EXPECT_EQ(back, packet);
}

TEST(PackedFrame, WhatDoesNotPayOffGoesAsItIs) {
  Bytes frame = {1, 2, 3};
  // One short record: not worth a deflate.
  EXPECT_EQ(wire::pack(first_packet({"{\"a\":1}"}), frame), wire::PackResult::TooSmall);
  // Random bytes do not deflate.
  std::mt19937 rng(5);
  std::string noise(3000, '\0'), more(3000, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  for (auto& c : more) c = static_cast<char>(rng());
  EXPECT_EQ(wire::pack(first_packet({noise, more}), frame), wire::PackResult::NoGain);
  // Only push data is packed.
  Bytes txend = {2, 0, 0, 4, 0, 7, 0, 1};
  EXPECT_EQ(wire::pack(txend, frame), wire::PackResult::NotPushData);
  EXPECT_EQ(frame, (Bytes{1, 2, 3})) << "left as it was";
}

TEST(PackedFrame, GzippedNodeDataIsNotDeflatedAgain) {
  std::vector<std::string> data;
  for (int i = 0; i < 20; ++i) data.push_back(gzip(node_json(i)));
  ASSERT_EQ(static_cast<std::uint8_t>(data[0][0]), 0x1f);
  Bytes packet = first_packet(data);
  EXPECT_TRUE(wire::mostly_precompressed(packet));
  Bytes frame;
  EXPECT_EQ(wire::pack(packet, frame), wire::PackResult::Precompressed);
  // A packet mostly of plain JSON with one gzipped record is packed.
  auto mixed = nodes(20);
  mixed[3] = gzip(mixed[3]);
  packet = first_packet(mixed);
  EXPECT_FALSE(wire::mostly_precompressed(packet));
  EXPECT_EQ(wire::pack(packet, frame), wire::PackResult::Packed);
}

TEST(PackedFrame, ADecompressionBombInflatesNoFurtherThanOnePacket) {
  // 10 MB of zeros in 10 KB: deflate's best ratio.
  Bytes zeros(10 * 1000 * 1000, 0);
  Bytes bomb = deflated(zeros);
  ASSERT_LT(bomb.size(), wire::kMaxTlvLength);
  Bytes out;
  std::string error;
  EXPECT_FALSE(wire::unpack(bomb, out, error));
  EXPECT_NE(error.find("inflates past 65527 bytes"), std::string::npos) << error;
  EXPECT_TRUE(out.empty());
  EXPECT_LE(out.capacity(), wire::kMaxPacket) << "never more than one packet of memory";
}

TEST(PackedFrame, ASmallFrameCannotCostAWholePacket) {
  // A valid push-data packet of 60 KB of zeros deflates to about 100 bytes:
  // past kMaxPackRatio, so the opener sends it as is and the acceptor takes
  // no such frame.
  Bytes packet = first_packet({std::string(60000, '\0')});
  Bytes frame;
  EXPECT_EQ(wire::pack(packet, frame), wire::PackResult::TooDense);
  Bytes small = deflated(packet);
  ASSERT_LT(small.size() * wire::kMaxPackRatio, packet.size());
  Bytes out;
  std::string error;
  EXPECT_FALSE(wire::unpack(small, out, error));
  EXPECT_NE(error.find("inflates past " + std::to_string(small.size() * wire::kMaxPackRatio)),
            std::string::npos)
      << error;
}

TEST(PackedFrame, GarbageTrailingBytesAndOtherPacketsAreRefused) {
  Bytes packet = first_packet(nodes(10));
  Bytes good = deflated(packet);
  Bytes out;
  std::string error;
  ASSERT_TRUE(wire::unpack(good, out, error)) << error;

  EXPECT_FALSE(wire::unpack(Bytes{1, 2, 3, 4, 5, 6, 7, 8}, out, error));
  EXPECT_NE(error.find("does not inflate"), std::string::npos) << error;

  Bytes trailing = good;
  trailing.push_back(0);
  EXPECT_FALSE(wire::unpack(trailing, out, error));
  EXPECT_NE(error.find("1 bytes after"), std::string::npos) << error;

  Bytes torn(good.begin(), good.end() - 3);
  EXPECT_FALSE(wire::unpack(torn, out, error));

  Bytes flipped = good;
  flipped[flipped.size() / 2] ^= 0x40;  // the checksum or the stream breaks
  EXPECT_FALSE(wire::unpack(flipped, out, error));

  // Whole packets only, and only push data: a txend, a session frame, a
  // push whose TLV length is not what it inflated to.
  for (Bytes inner : {Bytes{2, 0, 0, 4, 0, 7, 0, 1}, wire::encode(wire::SessionKeepalive{}),
                      Bytes(packet.begin(), packet.end() - 1)}) {
    EXPECT_FALSE(wire::unpack(deflated(inner), out, error));
    EXPECT_NE(error.find("one whole push-data packet"), std::string::npos) << error;
  }
  EXPECT_FALSE(wire::unpack(Bytes{}, out, error));
}

TEST(PackedFrame, TheHelloCarriesTheFlagAndAnOlderHelloHasNone) {
  wire::SessionHello h;
  h.packed = true;
  std::string error;
  auto d = wire::decode_session(wire::encode(h), error);
  ASSERT_TRUE(d) << error;
  EXPECT_TRUE(d->hello.packed);
  EXPECT_FALSE(d->hello.delta);
  h.packed = false;
  d = wire::decode_session(wire::encode(h), error);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->hello.packed);
  // Its frame type passes the stream reader's check with a packet's worth.
  EXPECT_TRUE(wire::is_session_type(0xcd));
  EXPECT_EQ(wire::session_frame_limit(0xcd), wire::kMaxPacket);
}

// ------------------------------------------------------------------ both ends

struct Quiet : link::SessionEvents {
  std::vector<std::string> lines;
  void open_connection() override {}
  void close_connection(std::string_view) override {}
  void wake() override {}
  void push_by_udp(wire::PushEncoder) override {}
  void push_by_legacy(wire::PushEncoder) override {}
  void request_by_udp(const wire::Request&) override {}
  void request_by_legacy(const wire::Request&) override {}
  void learned(bool) override {}
  void log(std::string_view l) override { lines.emplace_back(l); }
};

// An opener and an acceptor joined back to back, as a stream joins them.
struct PackedSession : ::testing::Test {
  Quiet ev;
  link::SessionLimits opener_limits, acceptor_limits;
  std::unique_ptr<link::SessionLink> link;
  std::unique_ptr<link::SessionResponder> responder;
  std::vector<Bytes> delivered;  // what the acceptor's engine got, as it came or unpacked
  std::size_t wire_bytes = 0, packed_frames = 0;
  std::string error;

  void up() {
    link = std::make_unique<link::SessionLink>(ev, opener_limits, 3);
    responder = std::make_unique<link::SessionResponder>(acceptor_limits);
    link->keep_open(T0);
    link->connected(T0, true);
    to_acceptor();
    Bytes b;
    while (responder->next_frame(b, T0)) ASSERT_TRUE(link->on_packet(b, T0, error)) << error;
    ASSERT_EQ(link->state(), link::SessionState::Up);
  }
  void to_acceptor() {
    Bytes b;
    bool first = true;
    while (link->next_packet(b, T0)) {
      wire_bytes += b.size();
      if (wire::is_session_type(b[0])) {
        ASSERT_TRUE(responder->on_frame(b, first, T0, error)) << error;
        if (b[0] == static_cast<std::uint8_t>(wire::SessionType::Packed)) {
          ++packed_frames;
          delivered.push_back(responder->take_unpacked());
        }
      } else {
        delivered.push_back(b);
      }
      first = false;
    }
  }
  void push(const std::vector<std::string>& data) {
    link->send(wire::PushEncoder::shared(snapshot(data), 9, false), false, T0);
    to_acceptor();
  }
};

TEST_F(PackedSession, BothOfferingItPushDataGoesPackedAndArrivesAsItWas) {
  up();
  EXPECT_TRUE(link->packed());
  EXPECT_TRUE(responder->packed());
  auto data = nodes(120);  // about 3 packets of JSON
  push(data);
  EXPECT_GE(packed_frames, 2u);
  // What the engine got: the same packets as an unpacking-free session would.
  auto enc = wire::PushEncoder::shared(snapshot(data), 9, false);
  std::vector<Bytes> plain;
  Bytes b;
  while (enc.next(b)) plain.push_back(b);
  EXPECT_EQ(delivered, plain);
  const auto& st = link->pack_stats();
  EXPECT_EQ(st.packed, packed_frames);
  EXPECT_LT(st.bytes_out * 4, st.bytes_in);
  std::size_t plain_bytes = 0;
  for (auto& p : plain) plain_bytes += p.size();
  EXPECT_LT(wire_bytes * 3, plain_bytes) << "hello and txend included";
}

TEST_F(PackedSession, AnAcceptorWithoutItGetsEverythingAsItIs) {
  acceptor_limits.packed = false;  // as our daemons before compression answer
  up();
  EXPECT_FALSE(link->packed());
  push(nodes(60));
  EXPECT_EQ(packed_frames, 0u);
  EXPECT_EQ(link->pack_stats().packed, 0u);
  EXPECT_FALSE(delivered.empty());
}

TEST_F(PackedSession, AnOpenerWithoutItIsNotAnsweredWithIt) {
  opener_limits.packed = false;
  up();
  EXPECT_FALSE(link->packed());
  EXPECT_FALSE(responder->packed());
  push(nodes(60));
  EXPECT_EQ(packed_frames, 0u);
}

TEST(PackedResponder, APackedFrameWithoutNegotiationOrABombClosesTheSession) {
  link::SessionLimits limits;
  std::string error;
  Bytes frame;
  ASSERT_EQ(wire::pack(first_packet(nodes(30)), frame), wire::PackResult::Packed);
  {
    link::SessionResponder r(limits);
    wire::SessionHello h;  // an opener that did not offer it
    ASSERT_TRUE(r.on_frame(wire::encode(h), true, T0, error)) << error;
    EXPECT_FALSE(r.on_frame(frame, false, T0, error));
    EXPECT_NE(error.find("without compression"), std::string::npos) << error;
  }
  {
    link::SessionResponder r(limits);
    wire::SessionHello h;
    h.packed = true;
    ASSERT_TRUE(r.on_frame(wire::encode(h), true, T0, error)) << error;
    ASSERT_TRUE(r.on_frame(frame, false, T0, error)) << error;
    EXPECT_FALSE(r.take_unpacked().empty());
    Bytes bomb = deflated(Bytes(10 * 1000 * 1000, 0));
    Bytes bomb_frame = {0xcd, 0, static_cast<std::uint8_t>(bomb.size() >> 8),
                        static_cast<std::uint8_t>(bomb.size() & 0xff)};
    bomb_frame.insert(bomb_frame.end(), bomb.begin(), bomb.end());
    EXPECT_FALSE(r.on_frame(bomb_frame, false, T0, error));
    EXPECT_NE(error.find("inflates past"), std::string::npos) << error;
    EXPECT_TRUE(r.take_unpacked().empty());
  }
}

TEST(PackedLink, APackedFrameFromTheAcceptorBreaksTheSession) {
  Quiet ev;
  link::SessionLink l(ev, link::SessionLimits{}, 1);
  l.keep_open(T0);
  l.connected(T0, true);
  Bytes b;
  while (l.next_packet(b, T0)) {
  }
  wire::SessionHello answer;
  answer.answer = true;
  answer.packed = true;
  std::string error;
  ASSERT_TRUE(l.on_packet(wire::encode(answer), T0, error)) << error;
  Bytes frame;
  ASSERT_EQ(wire::pack(first_packet(nodes(30)), frame), wire::PackResult::Packed);
  EXPECT_FALSE(l.on_packet(frame, T0, error));
  EXPECT_NE(error.find("from the acceptor"), std::string::npos) << error;
}

}  // namespace
}  // namespace alfred
