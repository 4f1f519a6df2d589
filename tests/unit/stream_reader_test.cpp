// Framing of alfred packets on a TCP stream: any split of the byte stream
// yields the same packets, and bad headers stop the stream before their
// bodies are buffered.
#include "wire/stream_reader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "wire/packet.hpp"
#include "wire/session_frames.hpp"

namespace alfred::wire {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr Mac kMacA{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
constexpr Mac kMacB{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};

Bytes push_packet(std::uint16_t seqno, std::size_t data_size, std::uint8_t fill) {
  Bytes data(data_size, fill);
  return encode(PushData{7, seqno, {{kMacA, 64, 0, data}, {kMacB, 65, 1, Bytes{1, 2, 3}}}});
}

// Several different packets, small and large, including empty TLVs.
std::vector<Bytes> sample_packets() {
  ServerStatus status;
  status.has_mode = true;
  status.mode = 1;
  status.interfaces.push_back({"eth0", true});
  status.has_bat_iface = true;
  status.bat_iface = "bat0";
  return {
      push_packet(0, 20, 0xa5),
      encode(AnnouncePrimary{}),
      encode(Request{64, 0x1234}),
      encode(PushData{7, 1, {}}),
      encode(TxEnd{0x1234, 2}),
      encode(status),
      encode(EventRegister{}),
      encode(ChangeInterface{"eth0,wlan0"}),
      push_packet(1, 1500, 0x3c),
      encode(EventNotify{64, kMacB}),
      encode(ModeSwitch{0}),
  };
}

Bytes concat(const std::vector<Bytes>& packets) {
  Bytes out;
  for (const auto& p : packets) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A reader plus everything its sink received.
struct Collector {
  StreamReader reader;
  std::vector<Bytes> packets;
  std::size_t max_buffered = 0;

  bool feed(std::span<const std::uint8_t> bytes) {
    return reader.feed(bytes, [this](std::span<const std::uint8_t> p) {
      packets.emplace_back(p.begin(), p.end());
      max_buffered = std::max(max_buffered, reader.buffered());
    });
  }
  bool feed(const Bytes& bytes) { return feed(std::span<const std::uint8_t>(bytes)); }
};

Bytes header(std::uint8_t type, std::uint8_t version, std::uint16_t length) {
  return {type, version, static_cast<std::uint8_t>(length >> 8),
          static_cast<std::uint8_t>(length & 0xff)};
}

// ---- splitting ---------------------------------------------------------------------

TEST(StreamReaderSplit, WholeStreamInOneFeed) {
  const auto want = sample_packets();
  Collector c;
  EXPECT_TRUE(c.feed(concat(want)));
  EXPECT_EQ(c.packets, want);
  EXPECT_FALSE(c.reader.mid_packet());
  EXPECT_EQ(c.reader.buffered(), 0u);
  EXPECT_TRUE(c.reader.error().empty());
}

TEST(StreamReaderSplit, ByteByByte) {
  const auto want = sample_packets();
  const Bytes stream = concat(want);
  Collector c;
  for (std::size_t i = 0; i < stream.size(); ++i)
    ASSERT_TRUE(c.feed(std::span<const std::uint8_t>(stream).subspan(i, 1))) << "byte " << i;
  EXPECT_EQ(c.packets, want);
  EXPECT_FALSE(c.reader.mid_packet());
}

TEST(StreamReaderSplit, EverySplitPoint) {
  const auto want = sample_packets();
  const Bytes stream = concat(want);
  const std::span<const std::uint8_t> all(stream);
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    Collector c;
    ASSERT_TRUE(c.feed(all.first(i))) << "split at " << i;
    ASSERT_TRUE(c.feed(all.subspan(i))) << "split at " << i;
    ASSERT_EQ(c.packets, want) << "split at " << i;
    ASSERT_FALSE(c.reader.mid_packet()) << "split at " << i;
  }
}

TEST(StreamReaderSplit, PacketsDecodeAfterFraming) {
  const auto want = sample_packets();
  Collector c;
  ASSERT_TRUE(c.feed(concat(want)));
  ASSERT_EQ(c.packets.size(), want.size());
  for (const auto& p : c.packets) {
    DecodeResult r = decode(p);
    EXPECT_TRUE(r.ok) << r.error;
  }
}

TEST(StreamReaderSplit, ManyPacketsInOneFeed) {
  std::vector<Bytes> want;
  for (int i = 0; i < 1000; ++i) {
    want.push_back(encode(TxEnd{static_cast<std::uint16_t>(i), static_cast<std::uint16_t>(i * 3)}));
    want.push_back(encode(AnnouncePrimary{}));
    want.push_back(push_packet(static_cast<std::uint16_t>(i), static_cast<std::size_t>(i % 50),
                               static_cast<std::uint8_t>(i)));
  }
  Collector c;
  EXPECT_TRUE(c.feed(concat(want)));
  EXPECT_EQ(c.packets, want);
}

TEST(StreamReaderSplit, EmptyFeedIsHarmless) {
  Collector c;
  EXPECT_TRUE(c.feed(Bytes{}));
  EXPECT_FALSE(c.reader.mid_packet());
  EXPECT_TRUE(c.packets.empty());
}

// ---- lying lengths ---------------------------------------------------------------

TEST(StreamReaderErrors, LengthAboveMaximumIsRefused) {
  for (std::uint16_t len : {std::uint16_t(kMaxTlvLength + 1), std::uint16_t(0xffff)}) {
    SCOPED_TRACE("length " + std::to_string(len));
    Collector c;
    Bytes bytes = header(0, 0, len);
    bytes.resize(bytes.size() + 100, 0);  // some body bytes in the same feed
    EXPECT_FALSE(c.feed(bytes));
    EXPECT_FALSE(c.reader.error().empty());
    EXPECT_EQ(c.reader.buffered(), 0u);
    EXPECT_FALSE(c.reader.mid_packet());
    // The stream stays dead, whatever follows.
    EXPECT_FALSE(c.feed(encode(AnnouncePrimary{})));
    EXPECT_FALSE(c.feed(Bytes{}));
    EXPECT_FALSE(c.feed(encode(TxEnd{1, 1})));
    EXPECT_TRUE(c.packets.empty());
    EXPECT_EQ(c.reader.buffered(), 0u);
  }
}

TEST(StreamReaderErrors, MaximumLengthIsAccepted) {
  Collector c;
  EXPECT_TRUE(c.feed(header(0, 0, static_cast<std::uint16_t>(kMaxTlvLength))));
  EXPECT_TRUE(c.reader.mid_packet());
  EXPECT_EQ(c.reader.buffered(), kTlvSize);
  // A header announcing the most buys no more heap than its bytes.
  EXPECT_LE(c.reader.held(), 64u);
  EXPECT_TRUE(c.feed(Bytes(kMaxTlvLength, 0)));
  ASSERT_EQ(c.packets.size(), 1u);
  EXPECT_EQ(c.packets[0].size(), kMaxPacket);
  EXPECT_FALSE(c.reader.mid_packet());
  // And the largest packet, once delivered, leaves no 64 KB buffer behind.
  EXPECT_LE(c.reader.held(), StreamReader::kKeepCapacity);
}

TEST(StreamReaderErrors, PacketsBeforeABadHeaderAreDelivered) {
  Bytes stream = encode(TxEnd{1, 2});
  Bytes bad = header(2, 0, 0xfffa);  // above kMaxTlvLength
  stream.insert(stream.end(), bad.begin(), bad.end());
  Bytes after = encode(AnnouncePrimary{});
  stream.insert(stream.end(), after.begin(), after.end());
  Collector c;
  EXPECT_FALSE(c.feed(stream));
  ASSERT_EQ(c.packets.size(), 1u);
  EXPECT_EQ(c.packets[0], encode(TxEnd{1, 2}));
}

// ---- bad headers --------------------------------------------------------------------

TEST(StreamReaderErrors, WrongVersionBeforeBody) {
  for (std::uint8_t version : {1, 2, 0xff}) {
    SCOPED_TRACE("version " + std::to_string(version));
    Collector c;
    Bytes bytes = concat({header(3, version, 4), {0, 1, 0, 2}});
    EXPECT_FALSE(c.feed(bytes));
    EXPECT_NE(c.reader.error().find("version"), std::string::npos) << c.reader.error();
    EXPECT_EQ(c.reader.buffered(), 0u);
    EXPECT_TRUE(c.packets.empty());
    EXPECT_FALSE(c.feed(encode(AnnouncePrimary{})));
  }
}

TEST(StreamReaderErrors, UnknownTypeBeforeBody) {
  for (int type = kMaxType + 1; type <= 255; ++type) {
    // A delta-sync refresh or want lists records, a packed frame holds a
    // deflated packet (see RecordListsAndPackedFramesMayBeLong).
    if (session_frame_limit(static_cast<std::uint8_t>(type)) > kMaxSessionFrame) continue;
    SCOPED_TRACE("type " + std::to_string(type));
    Collector c;
    // A header promising a body that never comes: refused on the header alone.
    EXPECT_FALSE(c.feed(header(static_cast<std::uint8_t>(type), 0, 1000)));
    EXPECT_FALSE(c.reader.error().empty());
    EXPECT_EQ(c.reader.buffered(), 0u);
    EXPECT_FALSE(c.reader.mid_packet());
    EXPECT_TRUE(c.packets.empty());
  }
}

TEST(StreamReaderErrors, RecordListsAndPackedFramesMayBeLongOtherSessionFramesNot) {
  for (std::uint8_t type : {std::uint8_t(0xcb), std::uint8_t(0xcc), std::uint8_t(0xcd)}) {
    Collector c;
    Bytes p = header(type, 0, 1000);
    p.resize(p.size() + 1000, 0);
    EXPECT_TRUE(c.feed(p)) << c.reader.error();
    ASSERT_EQ(c.packets.size(), 1u);
    EXPECT_EQ(c.packets[0].size(), 1004u);
  }
  Collector c;
  EXPECT_FALSE(c.feed(header(0xca, 0, 61)));  // a keepalive of 65 bytes
  EXPECT_NE(c.reader.error().find("session frame"), std::string::npos);
}

TEST(StreamReaderErrors, HeaderArrivingByteByByteIsCheckedWhenComplete) {
  const Bytes bad = header(0x47, 0x45, 0x5420);  // "GET " — someone speaking HTTP
  Collector c;
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(c.feed(std::span<const std::uint8_t>(bad).subspan(i, 1)));
    EXPECT_EQ(c.reader.buffered(), i + 1);
  }
  EXPECT_FALSE(c.feed(std::span<const std::uint8_t>(bad).subspan(3, 1)));
  EXPECT_FALSE(c.reader.error().empty());
  EXPECT_EQ(c.reader.buffered(), 0u);
}

TEST(StreamReaderErrors, ValidTypesAndLengthsPassTheHeaderCheck) {
  for (int type = 0; type <= kMaxType; ++type) {
    Collector c;
    EXPECT_TRUE(c.feed(header(static_cast<std::uint8_t>(type), 0, 10))) << c.reader.error();
    EXPECT_TRUE(c.reader.mid_packet());
  }
}

// ---- partial packets and buffering ------------------------------------------------

TEST(StreamReaderPartial, EndsMidHeader) {
  Collector c;
  Bytes bytes = encode(TxEnd{1, 1});
  bytes.push_back(0x03);
  bytes.push_back(0x00);
  EXPECT_TRUE(c.feed(bytes));
  EXPECT_EQ(c.packets.size(), 1u);
  EXPECT_TRUE(c.reader.mid_packet());
  EXPECT_EQ(c.reader.buffered(), 2u);
}

TEST(StreamReaderPartial, EndsMidBody) {
  const Bytes full = push_packet(0, 300, 0x11);
  for (std::size_t cut : {std::size_t(4), std::size_t(5), std::size_t(100), full.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    Collector c;
    EXPECT_TRUE(c.feed(std::span<const std::uint8_t>(full).first(cut)));
    EXPECT_TRUE(c.packets.empty());
    EXPECT_TRUE(c.reader.mid_packet());
    EXPECT_EQ(c.reader.buffered(), cut);
    // The rest completes it.
    EXPECT_TRUE(c.feed(std::span<const std::uint8_t>(full).subspan(cut)));
    ASSERT_EQ(c.packets.size(), 1u);
    EXPECT_EQ(c.packets[0], full);
    EXPECT_FALSE(c.reader.mid_packet());
    EXPECT_EQ(c.reader.buffered(), 0u);
  }
}

TEST(StreamReaderPartial, BufferNeverExceedsOnePacketForAMegabyte) {
  std::vector<Bytes> want;
  std::size_t total = 0;
  for (std::uint16_t i = 0; total < (1u << 20); ++i) {
    // Alternate maximal packets with small and medium ones.
    std::size_t data = i % 3 == 0 ? kMaxRecordData - kDataHeaderSize - 3 : (i % 3 == 1 ? 7 : 9000);
    want.push_back(push_packet(i, data, static_cast<std::uint8_t>(i)));
    total += want.back().size();
  }
  ASSERT_EQ(want[0].size(), kMaxPacket) << "the first packet is as large as allowed";

  Bytes stream = concat(want);
  // Leave the last packet incomplete.
  const Bytes tail(want.back());
  const auto missing = static_cast<std::ptrdiff_t>(tail.size() / 2);
  stream.erase(stream.end() - missing, stream.end());

  Collector c;
  EXPECT_TRUE(c.feed(stream));
  EXPECT_EQ(c.packets.size(), want.size() - 1);
  EXPECT_TRUE(std::equal(c.packets.begin(), c.packets.end(), want.begin()));
  EXPECT_LE(c.max_buffered, kMaxPacket);
  EXPECT_GT(c.max_buffered, 0u);
  EXPECT_LE(c.reader.buffered(), kMaxPacket);
  EXPECT_EQ(c.reader.buffered(), tail.size() - tail.size() / 2);
  EXPECT_TRUE(c.reader.mid_packet());
}

}  // namespace
}  // namespace alfred::wire
