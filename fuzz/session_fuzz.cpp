// The session state machines (link::SessionLink, the opener's side, and
// link::SessionResponder, the acceptor's) under arbitrary peers and events.
//
// Input: a script of one-byte opcodes, each with the bytes it needs:
//   0 send(tx id, n records, full?)   1 request            2 connected
//   3 peer packet (u8 length + bytes, through the stream reader's framing)
//   4 closed(cause)                   5 time passes (u16 ms)
//   6 drain what the link writes      7 responder frame (u8 length + bytes)
//   8 responder: transaction completed  9 responder drain / timer
//  10 the peer answers our hello, offering delta sync
//  11 the peer wants some of the records of the last full sync
//  12 the responder's engine wants what the last refresh named
//  13 responder: a packed frame of arbitrary bytes (u8 length + bytes)
//  14 responder: a packed frame of arbitrary bytes deflated (u16 length + bytes)
// Checked: the link's queue never exceeds its limits, whatever the peer says
// or how often sessions break; every transaction handed to it is written,
// acknowledged, superseded, dropped with a log line, or handed to UDP or the
// 2016 path, never lost silently while it is still queued; the responder's
// queue stays bounded, with one want at most; delta sync's baseline never
// holds a record that was not sent (full syncs and the pushes between them
// join it once acknowledged); a packed frame inflates to one push-data
// packet within its bounds or is refused with a reason; the link packs only
// push data, for a peer that offered it; nothing crashes or leaks (ASan,
// UBSan, leaks).
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "link/session_link.hpp"
#include "link/session_responder.hpp"
#include "wire/packed_frame.hpp"
#include "wire/session_frames.hpp"

using namespace alfred;
using namespace alfred::fuzz;

namespace {

struct Events : link::SessionEvents {
  int opens = 0, closes = 0;
  std::size_t handed_over = 0;
  void open_connection() override { ++opens; }
  void close_connection(std::string_view) override { ++closes; }
  void wake() override {}
  void push_by_udp(wire::PushEncoder) override { ++handed_over; }
  void push_by_legacy(wire::PushEncoder) override { ++handed_over; }
  void request_by_udp(const wire::Request&) override {}
  void request_by_legacy(const wire::Request&) override {}
  void learned(bool) override {}
  void log(std::string_view l) override { FUZZ_CHECK(!l.empty()); }
};

wire::PushEncoder make_tx(std::uint16_t id, std::size_t records) {
  Snapshot snap;
  for (std::size_t i = 0; i < records; ++i) {
    auto r = std::make_shared<Record>();
    r->source = Mac{0x02, 0, 0, 0, 0, static_cast<std::uint8_t>(i + 1)};
    r->type = 64;
    // Hex digits at random: about 2x with deflate, so packing engages.
    r->data.resize(1 + (i * 997) % 3000);
    std::uint32_t x = static_cast<std::uint32_t>(i) * 2654435761u + 1;
    for (auto& b : r->data) {
      x = x * 1103515245u + 12345u;
      b = static_cast<std::uint8_t>("0123456789abcdef"[x >> 28]);
    }
    snap.push_back(r);
  }
  return wire::PushEncoder(std::move(snap), id, false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  link::SessionLimits limits;
  limits.max_queued = 4;
  limits.max_requests = 3;
  Events ev;
  link::SessionLink link(ev, limits, 7);
  link::SessionResponder responder(limits);
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  bool responder_first = true;
  std::vector<std::uint8_t> out;
  std::vector<wire::RefreshEntry> refreshed;
  // Every transaction's records are sources 1..n of type 64, so the union
  // of all that was sent is the largest transaction (full or not).
  std::size_t last_full = 0, largest_sent = 0;
  int steps = 0;
  while (in.left() > 0 && ++steps < 4000) {
    const int op = in.u8() % 15;
    switch (op) {
      case 0: {
        std::uint16_t id = in.u16();
        std::size_t n = in.u8() % 40;
        bool full = in.u8() & 1;
        if (full) last_full = n;
        largest_sent = std::max(largest_sent, n);
        link.send(make_tx(id, n), full, now);
        break;
      }
      case 1: {
        wire::Request r;
        r.requested_type = in.u8();
        r.tx_id = in.u16();
        link.request(r, now);
        break;
      }
      case 2:
        link.connected(now);
        break;
      case 3: {
        auto b = in.bytes(in.u8());
        std::string error;
        if (b.size() >= wire::kTlvSize) {
          if (!link.on_packet(b, now, error)) {
            FUZZ_CHECK(!error.empty());
            link.closed(link::CloseCause::Failed, "bad session: " + error, now);
          }
        }
        break;
      }
      case 4:
        link.closed(static_cast<link::CloseCause>(in.u8() % 4), "closed", now);
        break;
      case 5:
        now += std::chrono::milliseconds(in.u16());
        link.on_timer(now);
        if (auto d = link.deadline()) FUZZ_CHECK(*d >= now - std::chrono::hours(2));
        break;
      case 6: {
        int packets = 0;
        while (packets < 10000 && link.next_packet(out, now)) {
          FUZZ_CHECK(out.size() >= wire::kTlvSize && out.size() <= wire::kMaxPacket);
          if (out[0] == static_cast<std::uint8_t>(wire::SessionType::Packed)) {
            FUZZ_CHECK(link.packed());
            std::vector<std::uint8_t> inner;
            std::string error;
            FUZZ_CHECK(wire::unpack(std::span<const std::uint8_t>(out).subspan(wire::kTlvSize), inner, error));
            FUZZ_CHECK(inner[0] == static_cast<std::uint8_t>(wire::Type::PushData));
          }
          ++packets;
        }
        break;
      }
      case 7: {
        auto b = in.bytes(in.u8());
        std::string error;
        if (b.size() >= wire::kTlvSize && wire::is_session_type(b[0])) {
          if (!responder.on_frame(b, responder_first, now, error)) FUZZ_CHECK(!error.empty());
          else refreshed = responder.take_refresh();
        }
        responder_first = false;
        break;
      }
      case 8:
        responder.completed(in.u16(), in.u16());
        break;
      case 9:
        while (responder.next_frame(out, now)) FUZZ_CHECK(out.size() <= wire::session_frame_limit(out[0]));
        now += std::chrono::milliseconds(in.u8() * 200);
        responder.on_timer(now);
        break;
      case 10: {
        wire::SessionHello h;
        h.answer = true;
        h.delta = true;
        h.packed = true;
        std::string error;
        if (!link.on_packet(wire::encode(h), now, error)) link.closed(link::CloseCause::Failed, error, now);
        break;
      }
      case 11: {
        std::vector<wire::RecordKey> keys;
        std::size_t n = in.u8() % 50;
        for (std::size_t i = 0; i < n; ++i)
          keys.push_back({64, Mac{0x02, 0, 0, 0, 0, static_cast<std::uint8_t>(in.u8() % (last_full + 2))}});
        std::string error;
        if (!link.on_packet(wire::encode_want(keys), now, error)) {
          FUZZ_CHECK(!error.empty());
          link.closed(link::CloseCause::Failed, "bad session: " + error, now);
        }
        break;
      }
      case 13:
      case 14: {
        std::vector<std::uint8_t> body;
        if (op == 13) {
          auto b = in.bytes(in.u8());
          body.assign(b.begin(), b.end());
        } else {
          auto raw = in.bytes(in.u16());
          uLongf n = compressBound(static_cast<uLong>(raw.size()));
          body.resize(n);
          if (compress2(body.data(), &n, raw.data(), static_cast<uLong>(raw.size()), 1) != Z_OK) break;
          body.resize(n);
        }
        if (body.empty() || body.size() > wire::kMaxTlvLength) break;
        std::vector<std::uint8_t> frame = {0xcd, 0, static_cast<std::uint8_t>(body.size() >> 8),
                                           static_cast<std::uint8_t>(body.size() & 0xff)};
        frame.insert(frame.end(), body.begin(), body.end());
        std::string error;
        bool was_packed = responder.packed();
        if (!responder.on_frame(frame, responder_first, now, error)) {
          FUZZ_CHECK(!error.empty());
          FUZZ_CHECK(responder.take_unpacked().empty());
        } else {
          FUZZ_CHECK(was_packed);
          auto inner = responder.take_unpacked();
          FUZZ_CHECK(inner.size() >= wire::kPushHeaderSize);
          FUZZ_CHECK(inner.size() <= std::min(wire::kMaxPacket, body.size() * wire::kMaxPackRatio));
          FUZZ_CHECK(inner[0] == static_cast<std::uint8_t>(wire::Type::PushData));
          FUZZ_CHECK(inner.size() == wire::kTlvSize + (inner[2] << 8 | inner[3]));
        }
        responder_first = false;
        break;
      }
      case 12: {
        std::vector<wire::RecordKey> keys;
        for (const auto& e : refreshed) keys.push_back(e.key);
        responder.wanted(keys);
        break;
      }
    }
    FUZZ_CHECK(link.baseline_size() <= largest_sent);
    FUZZ_CHECK(link.queued() <= limits.max_queued);
    FUZZ_CHECK(link.requests_pending() <= limits.max_requests);
    FUZZ_CHECK(link.awaiting_ack() <= link.queued());
    if (link.state() == link::SessionState::Idle) FUZZ_CHECK(link.queued() == 0 || ev.opens > 0);
  }
  return 0;
}
