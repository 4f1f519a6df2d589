// The alfred packet codec: round trips, exact wire bytes, rejection of what
// is malformed (truncations, lying TLV lengths, bad versions and types) and
// upstream's leniency inside push data (records before a bad one are kept).
#include "wire/packet.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "wire/mac.hpp"

namespace alfred::wire {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr Mac kMacA{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
constexpr Mac kMacB{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};

// ---- field-by-field comparison of decoded packets ---------------------------

void expect_same(const PushData& a, const PushData& b) {
  EXPECT_EQ(a.tx_id, b.tx_id);
  EXPECT_EQ(a.seqno, b.seqno);
  ASSERT_EQ(a.records.size(), b.records.size());
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    SCOPED_TRACE("record " + std::to_string(i));
    EXPECT_EQ(a.records[i].source, b.records[i].source);
    EXPECT_EQ(a.records[i].type, b.records[i].type);
    EXPECT_EQ(a.records[i].version, b.records[i].version);
    EXPECT_EQ(Bytes(a.records[i].data.begin(), a.records[i].data.end()),
              Bytes(b.records[i].data.begin(), b.records[i].data.end()));
  }
}
void expect_same(const AnnouncePrimary&, const AnnouncePrimary&) {}
void expect_same(const Request& a, const Request& b) {
  EXPECT_EQ(a.requested_type, b.requested_type);
  EXPECT_EQ(a.tx_id, b.tx_id);
}
void expect_same(const TxEnd& a, const TxEnd& b) {
  EXPECT_EQ(a.tx_id, b.tx_id);
  EXPECT_EQ(a.seqno, b.seqno);
}
void expect_same(const StatusError& a, const StatusError& b) {
  EXPECT_EQ(a.tx_id, b.tx_id);
  EXPECT_EQ(a.code_raw, b.code_raw);
}
void expect_same(const ModeSwitch& a, const ModeSwitch& b) { EXPECT_EQ(a.mode, b.mode); }
void expect_same(const ChangeInterface& a, const ChangeInterface& b) {
  EXPECT_EQ(a.interfaces, b.interfaces);
}
void expect_same(const ChangeBatIface& a, const ChangeBatIface& b) {
  EXPECT_EQ(a.bat_iface, b.bat_iface);
}
void expect_same(const ServerStatus& a, const ServerStatus& b) {
  EXPECT_EQ(a.has_mode, b.has_mode);
  EXPECT_EQ(a.mode, b.mode);
  ASSERT_EQ(a.interfaces.size(), b.interfaces.size());
  for (std::size_t i = 0; i < a.interfaces.size(); ++i) {
    EXPECT_EQ(a.interfaces[i].name, b.interfaces[i].name);
    EXPECT_EQ(a.interfaces[i].active, b.interfaces[i].active);
  }
  EXPECT_EQ(a.has_bat_iface, b.has_bat_iface);
  EXPECT_EQ(a.bat_iface, b.bat_iface);
}
void expect_same(const EventRegister&, const EventRegister&) {}
void expect_same(const EventNotify& a, const EventNotify& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.source, b.source);
}

void expect_same_packet(const Packet& got, const Packet& want) {
  ASSERT_EQ(got.index(), want.index()) << "decoded the wrong packet type";
  std::visit(
      [&](const auto& w) {
        using T = std::decay_t<decltype(w)>;
        expect_same(std::get<T>(got), w);
      },
      want);
}

// Decodes and insists on success.
Packet decode_ok(const Bytes& bytes) {
  DecodeResult r = decode(bytes);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.error.empty());
  return r.packet;
}

void expect_rejected(const Bytes& bytes, const std::string& what) {
  DecodeResult r = decode(bytes);
  EXPECT_FALSE(r.ok) << what;
  EXPECT_FALSE(r.error.empty()) << what;
}

// ---- a sample of every packet type ------------------------------------------

const Bytes kPayload1{'a', 'b'};
const Bytes kPayload2{0x01, 0x02, 0x03};

PushData sample_push() {
  PushData p;
  p.tx_id = 0x1234;
  p.seqno = 0x0002;
  p.records.push_back({kMacA, 64, 1, kPayload1});
  p.records.push_back({kMacB, 65, 0, kPayload2});
  return p;
}

ServerStatus sample_status_reply() {
  ServerStatus s;
  s.has_mode = true;
  s.mode = static_cast<std::uint8_t>(Mode::Primary);
  s.interfaces.push_back({"eth0", true});
  s.interfaces.push_back({"wlan0", false});
  s.has_bat_iface = true;
  s.bat_iface = "bat0";
  return s;
}

std::vector<Packet> all_samples() {
  return {
      sample_push(),
      PushData{0xffff, 0, {}},  // no records at all
      AnnouncePrimary{},
      Request{64, 0xbeef},
      TxEnd{0x1234, 5},
      StatusError{7, {0x16, 0x00}},
      ModeSwitch{static_cast<std::uint8_t>(Mode::Primary)},
      ChangeInterface{"eth0,wlan0,mesh-vpn"},
      ChangeBatIface{"bat0"},
      ServerStatus{},  // the request form: no items
      sample_status_reply(),
      EventRegister{},
      EventNotify{200, kMacA},
  };
}

// ---- round trips --------------------------------------------------------------

TEST(WirePacketRoundTrip, EveryTypeDecodesToTheSameFields) {
  for (const Packet& p : all_samples()) {
    SCOPED_TRACE("packet variant " + std::to_string(p.index()));
    Bytes bytes = encode(p);
    ASSERT_GE(bytes.size(), kTlvSize);
    EXPECT_EQ(bytes[0], p.index()) << "variant order matches wire type";
    EXPECT_EQ(bytes[1], kVersion);
    EXPECT_EQ(std::size_t(bytes[2] << 8 | bytes[3]), bytes.size() - kTlvSize);
    expect_same_packet(decode_ok(bytes), p);
    // Decoding and encoding again is byte-identical.
    EXPECT_EQ(encode(decode_ok(bytes)), bytes);
  }
}

TEST(WirePacketRoundTrip, AllElevenTypesAreCovered) {
  std::vector<bool> seen(kMaxType + 1, false);
  for (const Packet& p : all_samples()) seen[encode(p)[0]] = true;
  for (std::size_t t = 0; t <= kMaxType; ++t) EXPECT_TRUE(seen[t]) << "type " << t;
}

TEST(WirePacketRoundTrip, ExtremeFieldValues) {
  expect_same_packet(decode_ok(encode(Request{255, 0xffff})), Request{255, 0xffff});
  expect_same_packet(decode_ok(encode(Request{0, 0})), Request{0, 0});
  expect_same_packet(decode_ok(encode(TxEnd{0xffff, 0xffff})), TxEnd{0xffff, 0xffff});
  expect_same_packet(decode_ok(encode(StatusError{0xffff, {0xff, 0xfe}})),
                     StatusError{0xffff, {0xff, 0xfe}});
  expect_same_packet(decode_ok(encode(ModeSwitch{0})), ModeSwitch{0});
  expect_same_packet(decode_ok(encode(EventNotify{0, Mac{}})), EventNotify{0, Mac{}});
}

TEST(WirePacketRoundTrip, PushWithMaximalRecord) {
  Bytes big(kMaxRecordData, 0x5a);
  PushData p{1, 0, {{kMacA, 255, 255, big}}};
  Bytes bytes = encode(p);
  EXPECT_EQ(bytes.size(), kMaxPacket);
  expect_same_packet(decode_ok(bytes), p);
}

TEST(WirePacketRoundTrip, PushWithEmptyRecordData) {
  PushData p{1, 0, {{kMacA, 64, 0, {}}, {kMacB, 64, 0, {}}}};
  Bytes bytes = encode(p);
  EXPECT_EQ(bytes.size(), kPushHeaderSize + 2 * kDataHeaderSize);
  expect_same_packet(decode_ok(bytes), p);
}

TEST(WirePacketRoundTrip, RecordViewsPointIntoTheDecodedBuffer) {
  Bytes bytes = encode(sample_push());
  auto push = std::get<PushData>(decode_ok(bytes));
  ASSERT_EQ(push.records.size(), 2u);
  EXPECT_EQ(push.records[0].data.data(), bytes.data() + kPushHeaderSize + kDataHeaderSize);
}

// ---- exact bytes --------------------------------------------------------------

TEST(WirePacketBytes, PushDataWithTwoRecords) {
  const Bytes want{
      0x00, 0x00, 0x00, 0x1d,              // push data, v0, 29 bytes follow
      0x12, 0x34, 0x00, 0x02,              // tx id, seqno
      0x02, 0x11, 0x22, 0x33, 0x44, 0x55,  // record 1 source
      0x40, 0x01, 0x00, 0x02,              // type 64, version 1, 2 bytes
      'a',  'b',                           //
      0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,  // record 2 source
      0x41, 0x00, 0x00, 0x03,              // type 65, version 0, 3 bytes
      0x01, 0x02, 0x03,
  };
  EXPECT_EQ(encode(sample_push()), want);
  expect_same_packet(decode_ok(want), sample_push());
}

TEST(WirePacketBytes, Request) {
  const Bytes want{0x02, 0x00, 0x00, 0x03, 0x40, 0xbe, 0xef};
  EXPECT_EQ(encode(Request{64, 0xbeef}), want);
  expect_same_packet(decode_ok(want), Request{64, 0xbeef});
}

TEST(WirePacketBytes, TxEnd) {
  const Bytes want{0x03, 0x00, 0x00, 0x04, 0x12, 0x34, 0x00, 0x05};
  EXPECT_EQ(encode(TxEnd{0x1234, 5}), want);
  expect_same_packet(decode_ok(want), TxEnd{0x1234, 5});
}

TEST(WirePacketBytes, StatusErrorKeepsCodeBytesAsIs) {
  const Bytes want{0x04, 0x00, 0x00, 0x04, 0x00, 0x07, 0x16, 0x00};
  EXPECT_EQ(encode(StatusError{7, {0x16, 0x00}}), want);
  expect_same_packet(decode_ok(want), StatusError{7, {0x16, 0x00}});
}

TEST(WirePacketBytes, ServerStatusReply) {
  const Bytes want{
      0x08, 0x00, 0x00, 0x43,                          // server status, 67 bytes follow
      0x00, 0x00, 0x00, 0x01, 0x01,                    // op mode: primary
      0x01, 0x00, 0x00, 0x11,                          // net iface, 17 bytes
      'e',  't',  'h',  '0',  0,    0,    0,    0,     //
      0,    0,    0,    0,    0,    0,    0,    0,     //
      0x01,                                            // active
      0x01, 0x00, 0x00, 0x11,                          // net iface, 17 bytes
      'w',  'l',  'a',  'n',  '0',  0,    0,    0,     //
      0,    0,    0,    0,    0,    0,    0,    0,     //
      0x00,                                            // inactive
      0x02, 0x00, 0x00, 0x10,                          // bat iface, 16 bytes
      'b',  'a',  't',  '0',  0,    0,    0,    0,     //
      0,    0,    0,    0,    0,    0,    0,    0,
  };
  EXPECT_EQ(encode(sample_status_reply()), want);
  expect_same_packet(decode_ok(want), sample_status_reply());
}

TEST(WirePacketBytes, ServerStatusRequestIsAnEmptyTlv) {
  EXPECT_EQ(encode(ServerStatus{}), (Bytes{0x08, 0x00, 0x00, 0x00}));
}

TEST(WirePacketBytes, EventNotify) {
  const Bytes want{0x0a, 0x00, 0x00, 0x07, 0xc8, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  EXPECT_EQ(encode(EventNotify{200, kMacA}), want);
  expect_same_packet(decode_ok(want), EventNotify{200, kMacA});
}

TEST(WirePacketBytes, EmptyTlvTypes) {
  EXPECT_EQ(encode(AnnouncePrimary{}), (Bytes{0x01, 0x00, 0x00, 0x00}));
  EXPECT_EQ(encode(EventRegister{}), (Bytes{0x09, 0x00, 0x00, 0x00}));
  EXPECT_EQ(encode(ModeSwitch{1}), (Bytes{0x05, 0x00, 0x00, 0x01, 0x01}));
}

TEST(WirePacketBytes, FixedNameFieldsHaveFixedLengths) {
  Bytes ci = encode(ChangeInterface{"eth0"});
  ASSERT_EQ(ci.size(), kTlvSize + 256);
  EXPECT_EQ(Bytes(ci.begin(), ci.begin() + 8), (Bytes{0x06, 0x00, 0x01, 0x00, 'e', 't', 'h', '0'}));
  for (std::size_t i = 8; i < ci.size(); ++i) EXPECT_EQ(ci[i], 0) << i;

  Bytes cb = encode(ChangeBatIface{"bat0"});
  const Bytes want{0x07, 0x00, 0x00, 0x10, 'b', 'a', 't', '0', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(cb, want);
}

// ---- truncation -----------------------------------------------------------------

TEST(WirePacketTruncation, EveryShorterPrefixIsRejected) {
  for (const Packet& p : all_samples()) {
    Bytes full = encode(p);
    for (std::size_t n = 0; n < full.size(); ++n) {
      Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
      expect_rejected(prefix, "type " + std::to_string(full[0]) + " cut to " + std::to_string(n) +
                                  " of " + std::to_string(full.size()) + " bytes");
    }
  }
}

TEST(WirePacketTruncation, MaximalPushCutByOneByte) {
  Bytes full = encode(PushData{1, 0, {{kMacA, 64, 0, Bytes(kMaxRecordData, 1)}}});
  full.pop_back();
  expect_rejected(full, "maximal push missing its last byte");
}

// ---- length lies ------------------------------------------------------------------

TEST(WirePacketLengthLies, TlvLengthLargerThanBytesPresent) {
  expect_rejected({0x03, 0x00, 0x00, 0x05, 0, 1, 0, 2}, "txend announcing 5, 4 present");
  expect_rejected({0x01, 0x00, 0x00, 0x01}, "announce announcing 1, none present");
  expect_rejected({0x00, 0x00, 0xff, 0xff, 0, 1, 0, 0}, "push announcing 65535");
  expect_rejected({0x09, 0x00, 0x80, 0x00}, "event register announcing 32768");
}

// ---- push data: records before the first one that does not fit are kept ------------
//
// Upstream (recv.c, 2023.0 and 2026 alike; unix_sock.c takes the first record
// the same way) reads records while a whole record header is left and stops
// at the first record whose data would run past the TLV. Nothing is rejected:
// the records before it count, the rest is ignored.

// Decodes a push and insists on success; returns the records and what was ignored.
PushData decode_push_ok(const Bytes& bytes, std::size_t want_ignored) {
  DecodeResult r = decode(bytes);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.ignored_bytes, want_ignored);
  EXPECT_TRUE(std::holds_alternative<PushData>(r.packet));
  return std::get<PushData>(r.packet);
}

Bytes from_hex(const std::string& hex) {
  Bytes b;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    b.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return b;
}

TEST(WirePacketLenientPush, IssueReproTwoStrayBytesAfterTheRecord) {
  // One record of type 64, "abc", then 2 bytes that are no record.
  const Bytes bytes = from_hex("0000001312340000000000000000400000036162630000");
  auto push = decode_push_ok(bytes, 2);  // its records point into `bytes`
  EXPECT_EQ(push.tx_id, 0x1234);
  ASSERT_EQ(push.records.size(), 1u);
  EXPECT_EQ(push.records[0].type, 64);
  EXPECT_EQ(Bytes(push.records[0].data.begin(), push.records[0].data.end()),
            (Bytes{'a', 'b', 'c'}));
}

TEST(WirePacketLenientPush, IssueReproRecordLengthShorterThanItsData) {
  // The record says 1 byte: "a" is its data; "bc\xaa\xbb" is too short for a header.
  const Bytes bytes = from_hex("000000131234000000000000000040000001616263aabb");
  auto push = decode_push_ok(bytes, 4);
  ASSERT_EQ(push.records.size(), 1u);
  EXPECT_EQ(Bytes(push.records[0].data.begin(), push.records[0].data.end()), Bytes{'a'});
}

TEST(WirePacketLenientPush, WellFormedPushesIgnoreNothing) {
  EXPECT_EQ(decode_push_ok(encode(sample_push()), 0).records.size(), 2u);
  EXPECT_EQ(decode_push_ok(encode(PushData{1, 0, {}}), 0).records.size(), 0u);
  // Bytes after the TLV are no part of the push and are not counted.
  Bytes more = encode(sample_push());
  more.insert(more.end(), 7, 0xee);
  EXPECT_EQ(decode_push_ok(more, 0).records.size(), 2u);
  // Other types never report ignored bytes.
  for (const Packet& p : all_samples()) EXPECT_EQ(decode(encode(p)).ignored_bytes, 0u);
}

TEST(WirePacketLenientPush, LastRecordRunningPastTheTlvIsDropped) {
  Bytes bytes = encode(sample_push());
  // Second record announces 4 data bytes, only 3 are inside the TLV.
  bytes[bytes.size() - 3 - 1] = 0x04;
  auto push = decode_push_ok(bytes, kDataHeaderSize + kPayload2.size());
  ASSERT_EQ(push.records.size(), 1u);
  EXPECT_EQ(push.records[0].source, kMacA);
  EXPECT_EQ(Bytes(push.records[0].data.begin(), push.records[0].data.end()), kPayload1);
  // Bytes after the TLV are never borrowed as record data.
  bytes.push_back(0x04);
  EXPECT_EQ(decode_push_ok(bytes, kDataHeaderSize + kPayload2.size()).records.size(), 1u);
}

TEST(WirePacketLenientPush, BadFirstRecordLeavesAnEmptyPush) {
  Bytes first = encode(sample_push());
  first[kPushHeaderSize + 8] = 0xff;  // first record: 0xff02 bytes
  auto push = decode_push_ok(first, first.size() - kPushHeaderSize);
  EXPECT_EQ(push.tx_id, 0x1234);
  EXPECT_EQ(push.seqno, 2);
  EXPECT_TRUE(push.records.empty());
}

TEST(WirePacketLenientPush, RecordsAfterABadOneAreNotRead) {
  // good, bad (length past the TLV), good: only the first counts, even though
  // the bytes after the bad header would parse as a record by themselves.
  Bytes bytes;
  encode_push_header(bytes, 9, 0);
  append_record(bytes, kMacA, 64, 0, kPayload1);
  std::size_t bad = bytes.size();
  append_record(bytes, kMacB, 65, 0, kPayload2);
  append_record(bytes, kMacB, 66, 0, kPayload2);
  bytes[bad + 8] = 0x7f;
  finish_tlv(bytes, 0);
  auto push = decode_push_ok(bytes, bytes.size() - bad);
  ASSERT_EQ(push.records.size(), 1u);
  EXPECT_EQ(push.records[0].type, 64);
}

TEST(WirePacketLenientPush, CutRecordHeaders) {
  // TLV consistent, but after the tx header only 5 of a 10-byte record header.
  Bytes five{0x00, 0x00, 0x00, 0x09, 0x00, 0x01, 0x00, 0x00, 0x02, 0x11, 0x22, 0x33, 0x44};
  EXPECT_TRUE(decode_push_ok(five, 5).records.empty());
  // A complete record followed by a single stray byte inside the TLV.
  Bytes one = encode(PushData{1, 0, {{kMacA, 64, 0, kPayload1}}});
  one.push_back(0x02);
  finish_tlv(one, 0);
  EXPECT_EQ(decode_push_ok(one, 1).records.size(), 1u);
  // Nine bytes of a record header (one short).
  Bytes nine = encode(PushData{1, 0, {}});
  for (int i = 0; i < 9; ++i) nine.push_back(0);
  finish_tlv(nine, 0);
  EXPECT_TRUE(decode_push_ok(nine, 9).records.empty());
}

TEST(WirePacketLenientPush, TrailingZeroLengthRecordIsARecord) {
  // Exactly one record header with length 0 at the end: upstream's loop
  // (`while (len >= sizeof(*data))`, the same in 2023.0 and 2026) takes it.
  Bytes bytes = encode(PushData{1, 0, {{kMacA, 64, 0, kPayload1}}});
  append_record(bytes, kMacB, 70, 3, {});
  finish_tlv(bytes, 0);
  auto push = decode_push_ok(bytes, 0);
  ASSERT_EQ(push.records.size(), 2u);
  EXPECT_EQ(push.records[1].type, 70);
  EXPECT_EQ(push.records[1].version, 3);
  EXPECT_TRUE(push.records[1].data.empty());
}

TEST(WirePacketLenientPush, EveryCutOfTheLastRecordKeepsTheOthers) {
  // Cutting the TLV anywhere inside the second record keeps the first one.
  Bytes full = encode(sample_push());
  const std::size_t second = kPushHeaderSize + kDataHeaderSize + kPayload1.size();
  for (std::size_t n = second; n < full.size(); ++n) {
    SCOPED_TRACE("cut to " + std::to_string(n) + " of " + std::to_string(full.size()));
    Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    finish_tlv(cut, 0);
    auto push = decode_push_ok(cut, n - second);
    ASSERT_EQ(push.records.size(), 1u);
    EXPECT_EQ(push.records[0].source, kMacA);
  }
}

TEST(WirePacketLenientPush, ReencodingLeavesTheIgnoredBytesOut) {
  Bytes bytes = from_hex("0000001312340000000000000000400000036162630000");
  DecodeResult r = decode(bytes);
  ASSERT_TRUE(r.ok);
  Bytes enc = encode(r.packet);
  ASSERT_EQ(enc.size() + r.ignored_bytes, bytes.size());
  Bytes trimmed(bytes.begin(), bytes.end() - static_cast<std::ptrdiff_t>(r.ignored_bytes));
  finish_tlv(trimmed, 0);
  EXPECT_EQ(enc, trimmed);
}

TEST(WirePacketLengthLies, PushShorterThanTxHeader) {
  for (std::uint8_t len = 0; len < kTxMgmtSize; ++len) {
    Bytes bytes{0x00, 0x00, 0x00, len, 0, 0, 0, 0};
    expect_rejected(bytes, "push with a " + std::to_string(len) + "-byte body");
  }
}

// ---- versions and types ----------------------------------------------------------

TEST(WirePacketHeader, WrongVersionRejectedForEveryType) {
  for (const Packet& p : all_samples()) {
    Bytes bytes = encode(p);
    for (int v : {1, 2, 0x80, 0xff}) {
      bytes[1] = static_cast<std::uint8_t>(v);
      expect_rejected(bytes, "type " + std::to_string(bytes[0]) + " version " + std::to_string(v));
    }
  }
}

TEST(WirePacketHeader, UnknownTypesRejected) {
  for (int t = kMaxType + 1; t <= 255; ++t) {
    const auto type = static_cast<std::uint8_t>(t);
    expect_rejected({type, 0x00, 0x00, 0x00}, "empty packet of type " + std::to_string(t));
    expect_rejected({type, 0x00, 0x00, 0x04, 0, 1, 0, 2},
                    "4-byte packet of type " + std::to_string(t));
  }
}

TEST(WirePacketHeader, ReadTlvHeader) {
  TlvHeader h;
  EXPECT_FALSE(read_tlv_header(Bytes{0x00, 0x00, 0x00}, h));
  ASSERT_TRUE(read_tlv_header(Bytes{0x07, 0x03, 0xab, 0xcd, 0xee}, h));
  EXPECT_EQ(h.type, 7);
  EXPECT_EQ(h.version, 3);
  EXPECT_EQ(h.length, 0xabcd);
}

TEST(WirePacketHeader, TypeNames) {
  for (unsigned t = 0; t <= kMaxType; ++t) EXPECT_NE(type_name(std::uint8_t(t)), "unknown") << t;
  EXPECT_EQ(type_name(0), "push data");
  EXPECT_EQ(type_name(10), "event notify");
  EXPECT_EQ(type_name(11), "unknown");
  EXPECT_EQ(type_name(255), "unknown");
}

// ---- trailing bytes ------------------------------------------------------------------

TEST(WirePacketTrailing, BytesAfterTheTlvAreIgnored) {
  for (const Packet& p : all_samples()) {
    Bytes bytes = encode(p);
    for (std::uint8_t b : {0x00, 0xff, 0x03}) bytes.push_back(b);
    SCOPED_TRACE("type " + std::to_string(bytes[0]) + " with 3 trailing bytes");
    expect_same_packet(decode_ok(bytes), p);
  }
}

TEST(WirePacketTrailing, TrailingBytesAreNotReadAsRecords) {
  Bytes bytes = encode(sample_push());
  // A full extra record after the TLV: must not show up.
  append_record(bytes, kMacA, 99, 0, kPayload2);
  auto push = std::get<PushData>(decode_ok(bytes));
  EXPECT_EQ(push.records.size(), 2u);
}

// ---- fixed-size bodies too short ----------------------------------------------------

// A packet of `type` whose TLV declares `len` bytes, with those bytes present,
// followed by `trailing` more bytes outside the TLV.
Bytes short_body(std::uint8_t type, std::uint16_t len, std::size_t trailing) {
  Bytes b{type, 0, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)};
  b.insert(b.end(), len + trailing, 'x');
  return b;
}

TEST(WirePacketShortBody, FixedSizeTypesRejectEveryShorterBody) {
  struct Fixed {
    Type type;
    std::size_t size;
  };
  const Fixed fixed[] = {
      {Type::Request, 3},        {Type::StatusTxEnd, 4},      {Type::StatusError, 4},
      {Type::ModeSwitch, 1},     {Type::ChangeInterface, 256}, {Type::ChangeBatIface, 16},
      {Type::EventNotify, 7},
  };
  for (const auto& f : fixed) {
    const auto t = static_cast<std::uint8_t>(f.type);
    for (std::size_t len = 0; len < f.size; ++len) {
      const auto l = static_cast<std::uint16_t>(len);
      expect_rejected(short_body(t, l, 0), "type " + std::to_string(t) + " body " +
                                               std::to_string(len) + " < " +
                                               std::to_string(f.size));
      // Bytes beyond the TLV do not make up for a short body.
      expect_rejected(short_body(t, l, f.size), "type " + std::to_string(t) + " body " +
                                                    std::to_string(len) + " plus trailing");
    }
    EXPECT_TRUE(decode(short_body(t, static_cast<std::uint16_t>(f.size), 0)).ok)
        << "type " << int(t) << " with exactly its size";
  }
}

// ---- server status sub-TLVs --------------------------------------------------------

Bytes status_with(const Bytes& items) {
  Bytes b = encode(ServerStatus{});
  for (std::uint8_t byte : items) b.push_back(byte);
  finish_tlv(b, 0);
  return b;
}

Bytes item(std::uint8_t type, std::uint8_t version, std::uint16_t len, std::size_t present) {
  Bytes b{type, version, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)};
  b.insert(b.end(), present, 'a');
  return b;
}

TEST(WirePacketServerStatus, ItemHeaderCut) {
  for (std::size_t n = 1; n < kTlvSize; ++n)
    expect_rejected(status_with(Bytes(n, 0)), "item header of " + std::to_string(n) + " bytes");
  // A good item followed by a cut one.
  Bytes items = item(0, 0, 1, 1);
  items.push_back(0x02);
  items.push_back(0x00);
  expect_rejected(status_with(items), "good mode item, then 2 bytes");
}

TEST(WirePacketServerStatus, ItemWithWrongVersion) {
  expect_rejected(status_with(item(0, 1, 1, 1)), "mode item version 1");
  expect_rejected(status_with(item(1, 0xff, 17, 17)), "iface item version 255");
}

TEST(WirePacketServerStatus, ItemLongerThanTheBody) {
  expect_rejected(status_with(item(0, 0, 1, 0)), "mode item without its byte");
  expect_rejected(status_with(item(1, 0, 17, 16)), "iface item one byte short");
  expect_rejected(status_with(item(2, 0, 16, 10)), "bat item cut");
  expect_rejected(status_with(item(7, 0, 0xffff, 3)), "unknown item with a huge length");
}

TEST(WirePacketServerStatus, KnownItemsOfWrongSize) {
  expect_rejected(status_with(item(0, 0, 0, 0)), "mode item of 0 bytes");
  expect_rejected(status_with(item(0, 0, 2, 2)), "mode item of 2 bytes");
  expect_rejected(status_with(item(1, 0, 16, 16)), "iface item of 16 bytes");
  expect_rejected(status_with(item(1, 0, 18, 18)), "iface item of 18 bytes");
  expect_rejected(status_with(item(2, 0, 15, 15)), "bat item of 15 bytes");
  expect_rejected(status_with(item(2, 0, 17, 17)), "bat item of 17 bytes");
}

TEST(WirePacketServerStatus, UnknownItemsAreSkipped) {
  Bytes items = item(9, 0, 5, 5);
  Bytes mode = item(0, 0, 1, 0);
  mode.push_back(0x01);
  items.insert(items.end(), mode.begin(), mode.end());
  Bytes empty_unknown = item(200, 0, 0, 0);
  items.insert(items.end(), empty_unknown.begin(), empty_unknown.end());
  auto st = std::get<ServerStatus>(decode_ok(status_with(items)));
  EXPECT_TRUE(st.has_mode);
  EXPECT_EQ(st.mode, 1);
  EXPECT_TRUE(st.interfaces.empty());
  EXPECT_FALSE(st.has_bat_iface);
}

TEST(WirePacketServerStatus, ItemsAfterTheTlvAreIgnored) {
  Bytes bytes = encode(ServerStatus{});
  Bytes bat = item(2, 0, 16, 16);
  bytes.insert(bytes.end(), bat.begin(), bat.end());
  auto st = std::get<ServerStatus>(decode_ok(bytes));
  EXPECT_FALSE(st.has_bat_iface);
}

TEST(WirePacketServerStatus, ManyInterfacesKeepTheirOrder) {
  ServerStatus s;
  for (int i = 0; i < 40; ++i) s.interfaces.push_back({"if" + std::to_string(i), i % 3 == 0});
  expect_same_packet(decode_ok(encode(s)), s);
}

// ---- name fields -------------------------------------------------------------------

std::string name_of(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('a' + i % 26));
  return s;
}

TEST(WirePacketNames, BatIfaceTruncatedTo15AndTerminated) {
  for (std::size_t n : {15u, 16u, 20u}) {
    SCOPED_TRACE(std::to_string(n) + " chars");
    Bytes bytes = encode(ChangeBatIface{name_of(n)});
    ASSERT_EQ(bytes.size(), kTlvSize + kIfNameSize);
    EXPECT_EQ(bytes.back(), 0) << "last byte of the field is NUL";
    EXPECT_EQ(std::get<ChangeBatIface>(decode_ok(bytes)).bat_iface, name_of(15));
  }
}

TEST(WirePacketNames, ChangeInterfaceKeepsShortNamesWhole) {
  for (std::size_t n : {15u, 16u, 20u}) {
    Bytes bytes = encode(ChangeInterface{name_of(n)});
    ASSERT_EQ(bytes.size(), kTlvSize + kIfaceListSize);
    EXPECT_EQ(std::get<ChangeInterface>(decode_ok(bytes)).interfaces, name_of(n));
  }
}

TEST(WirePacketNames, ChangeInterfaceListTruncatedTo255AndTerminated) {
  for (std::size_t n : {255u, 256u, 300u}) {
    SCOPED_TRACE(std::to_string(n) + " chars");
    Bytes bytes = encode(ChangeInterface{name_of(n)});
    ASSERT_EQ(bytes.size(), kTlvSize + kIfaceListSize);
    EXPECT_EQ(bytes.back(), 0);
    EXPECT_EQ(std::get<ChangeInterface>(decode_ok(bytes)).interfaces, name_of(255));
  }
}

TEST(WirePacketNames, ServerStatusNamesTruncatedTo15AndTerminated) {
  for (std::size_t n : {15u, 16u, 20u}) {
    SCOPED_TRACE(std::to_string(n) + " chars");
    ServerStatus s;
    s.interfaces.push_back({name_of(n), true});
    s.has_bat_iface = true;
    s.bat_iface = name_of(n);
    Bytes bytes = encode(s);
    ASSERT_EQ(bytes.size(), kTlvSize + (kTlvSize + 17) + (kTlvSize + 16));
    EXPECT_EQ(bytes[kTlvSize + kTlvSize + 15], 0) << "iface name field ends in NUL";
    EXPECT_EQ(bytes[kTlvSize + kTlvSize + 16], 1) << "active flag after the name";
    EXPECT_EQ(bytes.back(), 0) << "bat name field ends in NUL";
    auto st = std::get<ServerStatus>(decode_ok(bytes));
    ASSERT_EQ(st.interfaces.size(), 1u);
    EXPECT_EQ(st.interfaces[0].name, name_of(15));
    EXPECT_TRUE(st.interfaces[0].active);
    EXPECT_EQ(st.bat_iface, name_of(15));
  }
}

TEST(WirePacketNames, UnterminatedFieldsFromTheWireAreCut) {
  // A peer that fills all 16 bytes without a NUL: the last byte is dropped,
  // as upstream forces it to NUL.
  Bytes bat{0x07, 0x00, 0x00, 0x10};
  for (char c : name_of(16)) bat.push_back(static_cast<std::uint8_t>(c));
  EXPECT_EQ(std::get<ChangeBatIface>(decode_ok(bat)).bat_iface, name_of(15));

  Bytes ci{0x06, 0x00, 0x01, 0x00};
  ci.insert(ci.end(), 256, 'z');
  EXPECT_EQ(std::get<ChangeInterface>(decode_ok(ci)).interfaces, std::string(255, 'z'));

  // A NUL in the middle ends the name; what follows is padding.
  Bytes mid{0x07, 0x00, 0x00, 0x10, 'b', 'a', 't', 0, 'x', 'y', 'z', 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(std::get<ChangeBatIface>(decode_ok(mid)).bat_iface, "bat");
}

// ---- EUI-64 link-local helpers -------------------------------------------------------

TEST(WireEui64, MacToLinkLocal) {
  const Mac mac{0x00, 0x11, 0x22, 0x33, 0x44, 0x55};
  const Ipv6Bytes want{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55};
  EXPECT_EQ(mac_to_link_local(mac), want);
  // The universal/local bit is flipped, not set.
  const Ipv6Bytes local = mac_to_link_local(kMacA);
  EXPECT_EQ(local[8], 0x00);
}

TEST(WireEui64, RoundTrip) {
  for (const Mac& mac : {Mac{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}, kMacA, kMacB,
                         Mac{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff}, Mac{0, 0, 0, 0, 0, 1}}) {
    SCOPED_TRACE(to_string(mac));
    Ipv6Bytes a = mac_to_link_local(mac);
    EXPECT_TRUE(is_eui64_link_local(a));
    auto back = link_local_to_mac(a);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, mac);
  }
}

TEST(WireEui64, NotLinkLocalEui64) {
  const Ipv6Bytes base = mac_to_link_local(kMacA);
  auto with = [&](std::size_t i, std::uint8_t v) {
    Ipv6Bytes a = base;
    a[i] = v;
    return a;
  };
  EXPECT_FALSE(is_eui64_link_local(with(0, 0x20)));  // 2001::…
  EXPECT_FALSE(is_eui64_link_local(with(1, 0x81)));  // fe81::…
  for (std::size_t i = 2; i < 8; ++i) EXPECT_FALSE(is_eui64_link_local(with(i, 1))) << i;
  EXPECT_FALSE(is_eui64_link_local(with(11, 0xfe)));  // no ff:fe in the middle
  EXPECT_FALSE(is_eui64_link_local(with(12, 0xff)));
  const Ipv6Bytes fe80_1{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  EXPECT_FALSE(is_eui64_link_local(fe80_1));
  EXPECT_FALSE(link_local_to_mac(fe80_1).has_value());
  EXPECT_FALSE(link_local_to_mac(with(3, 1)).has_value());
  EXPECT_FALSE(link_local_to_mac(Ipv6Bytes{}).has_value());
}

TEST(WireEui64, MulticastAndZeroMacsRejected) {
  for (const Mac& mac : {Mac{}, Mac{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01},
                         Mac{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}, Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}) {
    SCOPED_TRACE(to_string(mac));
    Ipv6Bytes a = mac_to_link_local(mac);
    EXPECT_TRUE(is_eui64_link_local(a)) << "the address itself is well-formed";
    EXPECT_FALSE(link_local_to_mac(a).has_value());
  }
}

// ---- MAC helpers -------------------------------------------------------------------

TEST(WireMac, ParseValid) {
  EXPECT_EQ(parse_mac("02:11:22:33:44:55"), kMacA);
  EXPECT_EQ(parse_mac("02:AA:bb:Cc:dD:EE"), kMacB);
  EXPECT_EQ(parse_mac("00:00:00:00:00:00"), Mac{});
  EXPECT_EQ(parse_mac("ff:ff:ff:ff:ff:ff"), (Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
}

TEST(WireMac, ParseInvalid) {
  for (const char* text : {"", "02:11:22:33:44", "02:11:22:33:44:5", "02:11:22:33:44:555",
                           "02:11:22:33:44:55:", "02-11-22-33-44-55", "02:11:22:33:44.55",
                           "0g:11:22:33:44:55", "02:11:22:33:44:5x", " 2:11:22:33:44:55",
                           "02:11:22:33:44:55 ", "021122334455", "02::11:22:33:44:5",
                           "+2:11:22:33:44:55"}) {
    EXPECT_FALSE(parse_mac(text).has_value()) << '"' << text << '"';
  }
}

TEST(WireMac, ToStringIsLowerCaseAndPadded) {
  EXPECT_EQ(to_string(kMacB), "02:aa:bb:cc:dd:ee");
  EXPECT_EQ(to_string(Mac{0, 1, 2, 3, 4, 0x0f}), "00:01:02:03:04:0f");
  EXPECT_EQ(to_string(Mac{}), "00:00:00:00:00:00");
}

TEST(WireMac, ParseAndPrintRoundTrip) {
  for (const Mac& mac : {kMacA, kMacB, Mac{}, Mac{0xff, 0xfe, 0x80, 0x7f, 0x01, 0x10}})
    EXPECT_EQ(parse_mac(to_string(mac)), mac);
}

TEST(WireMac, ValidUnicast) {
  EXPECT_TRUE(is_valid_unicast(kMacA));
  EXPECT_TRUE(is_valid_unicast(Mac{0, 0, 0, 0, 0, 1}));
  EXPECT_TRUE(is_valid_unicast(Mac{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff}));
  EXPECT_FALSE(is_valid_unicast(Mac{}));
  EXPECT_FALSE(is_valid_unicast(Mac{0x01, 0, 0, 0, 0, 0}));
  EXPECT_FALSE(is_valid_unicast(Mac{0x33, 0x33, 0, 0, 0, 1}));
  EXPECT_FALSE(is_valid_unicast(Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
}

}  // namespace
}  // namespace alfred::wire
