// wire::StreamReader against arbitrary TCP byte streams cut at arbitrary points.
//
// Input layout:
//   byte 0         n = number of chunk-size bytes (taken modulo 32)
//   bytes 1..n     chunk sizes, used in turn (byte b < 0xf0: b bytes, else (b - 0xef) * 4 KiB;
//                  0 feeds an empty span)
//   the rest       the stream
// Checked: every packet handed out is a whole TLV (4 + its length bytes, at
// most kMaxPacket, a known type and version) and goes through decode() and the
// codec oracle (a session frame: at most kMaxSessionFrame bytes, through
// decode_session()); buffered() never exceeds kMaxPacket; after feed() returned
// false it keeps returning false and hands out nothing. The same bytes fed in
// one go and a straightforward reference parser give the same packets and
// fail (or not) at the same point.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "wire/session_frames.hpp"
#include "wire/stream_reader.hpp"

using namespace alfred;
using namespace alfred::fuzz;

namespace {

using Packets = std::vector<std::vector<std::uint8_t>>;

struct Outcome {
  Packets packets;
  bool failed = false;
  std::size_t buffered = 0;  // partial packet left at the end
};

void check_packet(std::span<const std::uint8_t> p) {
  FUZZ_CHECK(p.size() >= wire::kTlvSize);
  FUZZ_CHECK(p.size() <= wire::kMaxPacket);
  wire::TlvHeader h;
  FUZZ_CHECK(wire::read_tlv_header(p, h));
  FUZZ_CHECK(p.size() == wire::kTlvSize + h.length);
  FUZZ_CHECK(h.version == wire::kVersion);
  if (wire::is_session_type(h.type)) {
    FUZZ_CHECK(p.size() <= wire::session_frame_limit(h.type));
    std::string error;
    auto f = wire::decode_session(p, error);
    FUZZ_CHECK(f || !error.empty());
    if (f && f->type == wire::SessionType::Ack)
      FUZZ_CHECK(wire::decode_session(wire::encode(f->ack), error)->ack.tx_id == f->ack.tx_id);
    // A record list decodes to as many entries as its body holds, and
    // encodes back to the same bytes.
    if (f && f->type == wire::SessionType::Refresh) {
      FUZZ_CHECK(f->refresh.size() * wire::kRefreshEntrySize == h.length);
      auto again = wire::encode_refresh(f->refresh);
      FUZZ_CHECK(std::equal(again.begin(), again.end(), p.begin(), p.end()));
    }
    if (f && f->type == wire::SessionType::Want) {
      FUZZ_CHECK(f->want.size() * wire::kWantEntrySize == h.length);
      auto again = wire::encode_want(f->want);
      FUZZ_CHECK(std::equal(again.begin(), again.end(), p.begin(), p.end()));
    }
    return;
  }
  FUZZ_CHECK(h.type <= wire::kMaxType);
  decode_checked(p);
}

// What the stream must turn into, written as plainly as possible.
Outcome reference(std::span<const std::uint8_t> s) {
  Outcome o;
  std::size_t pos = 0;
  while (s.size() - pos >= wire::kTlvSize) {
    std::uint8_t type = s[pos], version = s[pos + 1];
    std::size_t len = static_cast<std::size_t>(s[pos + 2]) << 8 | s[pos + 3];
    bool session = wire::is_session_type(type);
    if (version != wire::kVersion || (type > wire::kMaxType && !session) ||
        len > wire::kMaxTlvLength || (session && wire::kTlvSize + len > wire::session_frame_limit(type))) {
      o.failed = true;
      return o;
    }
    if (s.size() - pos < wire::kTlvSize + len) break;
    o.packets.emplace_back(s.begin() + pos, s.begin() + pos + wire::kTlvSize + len);
    pos += wire::kTlvSize + len;
  }
  o.buffered = s.size() - pos;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  std::size_t n = in.u8() % 32;
  std::vector<std::size_t> sizes;
  bool any_nonzero = false;
  for (auto b : in.bytes(n)) {
    std::size_t s = b < 0xf0 ? b : (b - 0xefu) * 4096;
    sizes.push_back(s);
    any_nonzero |= s != 0;
  }
  if (!any_nonzero) sizes = {1u << 20};  // no usable split: one chunk
  auto stream = in.rest();

  // Chunked.
  Outcome chunked;
  {
    wire::StreamReader r;
    bool ok = true;
    std::size_t pos = 0, i = 0;
    auto sink = [&](std::span<const std::uint8_t> p) {
      FUZZ_CHECK(ok);  // nothing after a failure
      check_packet(p);
      chunked.packets.emplace_back(p.begin(), p.end());
    };
    do {
      std::size_t len = std::min(sizes[i++ % sizes.size()], stream.size() - pos);
      bool res = r.feed(stream.subspan(pos, len), sink);
      pos += len;
      if (!ok) FUZZ_CHECK(!res);  // stays failed
      if (!res) {
        FUZZ_CHECK(!r.error().empty());
        FUZZ_CHECK(!r.mid_packet());
      }
      ok = ok && res;
      FUZZ_CHECK(r.buffered() <= wire::kMaxPacket);
      FUZZ_CHECK(r.mid_packet() == (r.buffered() > 0));
    } while (pos < stream.size());
    // More bytes, even a perfectly good packet, change nothing after a failure.
    if (!ok) {
      auto good = wire::encode(wire::AnnouncePrimary{});
      FUZZ_CHECK(!r.feed(good, sink));
      FUZZ_CHECK(!r.feed({}, sink));
    } else {
      FUZZ_CHECK(r.error().empty());
    }
    chunked.failed = !ok;
    chunked.buffered = r.buffered();
  }

  // In one go.
  Outcome whole;
  {
    wire::StreamReader r;
    bool res = r.feed(stream, [&](std::span<const std::uint8_t> p) {
      check_packet(p);
      whole.packets.emplace_back(p.begin(), p.end());
    });
    whole.failed = !res;
    whole.buffered = r.buffered();
  }

  Outcome ref = reference(stream);
  FUZZ_CHECK(chunked.failed == whole.failed);
  FUZZ_CHECK(chunked.failed == ref.failed);
  FUZZ_CHECK(chunked.packets == whole.packets);
  FUZZ_CHECK(chunked.packets == ref.packets);
  if (!ref.failed) {
    FUZZ_CHECK(chunked.buffered == ref.buffered);
    FUZZ_CHECK(whole.buffered == ref.buffered);
  } else {
    FUZZ_CHECK(chunked.buffered == 0 && whole.buffered == 0);
  }
  return 0;
}
