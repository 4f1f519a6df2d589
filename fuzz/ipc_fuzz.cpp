// The unix-socket path: ipc::MessageFramer cuts each client's message out of
// what it reads, then the daemon's dispatch (Daemon::on_ipc) runs it against
// an engine with one interface up.
//
// Input layout:
//   byte 0   configuration: bit 0 primary, bit 1 bat iface "none", bit 2 one peer
//            announced as primary (so a secondary forwards requests)
//   then one client after another: a byte c giving the read size
//   (c < 0xf0: c + 1 bytes, else (c - 0xef) * 4 KiB), then the client's bytes,
//   read in chunks of that size until the framer has a message (the rest of the
//   last chunk is what the framer must ignore); a client that hangs up before
//   its message is complete is dropped, as the daemon does.
// Checked: the framer holds at most one TLV, the message is exactly the TLV at
// the start of what the client sent and never changes once complete; all
// operations keep their invariants (see dispatch_ipc); encode(status())
// decodes back; every client that sent a request gets exactly one answer.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.hpp"
#include "ipc/message_framer.hpp"

using namespace alfred;
using namespace alfred::fuzz;
using namespace std::chrono_literals;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  std::uint8_t flags = in.u8();

  CheckingEffects fx;
  FuzzTq tq;
  EngineConfig c;
  c.mode = flags & 1 ? wire::Mode::Primary : wire::Mode::Secondary;
  c.interfaces = {"mesh0"};
  c.bat_iface = flags & 2 ? "none" : "bat0";
  std::uint16_t next_id = 1;
  Engine engine(c, fx, tq, [&] { return next_id++; });
  const Mac own{0x02, 0, 0x5e, 0, 0, 1};
  engine.interface_up("mesh0", own, link_local_of(own));
  TimePoint now = TimePoint{} + 1000h;
  if (flags & 4) {
    const Mac server{0x02, 0, 0x5e, 0, 0, 0x10};
    engine.on_packet(Route{"mesh0", link_local_of(server), server, 0},
                     wire::encode(wire::AnnouncePrimary{}), now);
    engine.on_sync_tick(now);  // picks the best server
  }
  IpcContext ctx{engine, fx, Mac{0x02, 0, 0x5e, 0, 1, 0}, 1, std::nullopt};
  StoreWatch store_watch;

  while (!in.empty()) {
    std::uint8_t cs = in.u8();
    std::size_t chunk = cs < 0xf0 ? cs + 1u : (cs - 0xefu) * 4096;
    ipc::MessageFramer framer;
    std::vector<std::uint8_t> sent;  // everything this client wrote
    bool complete = false;
    std::vector<std::uint8_t> message;
    while (!in.empty()) {
      auto bytes = in.bytes(chunk);
      sent.insert(sent.end(), bytes.begin(), bytes.end());
      bool done = framer.feed(bytes);
      FUZZ_CHECK(done == framer.complete());
      FUZZ_CHECK(framer.buffered() <= wire::kTlvSize + 0xffff);
      FUZZ_CHECK(framer.buffered() <= sent.size());
      FUZZ_CHECK(std::equal(framer.message().begin(), framer.message().end(), sent.begin()));
      if (done) {
        complete = true;
        message.assign(framer.message().begin(), framer.message().end());
        break;
      }
    }
    if (!complete) {
      // The client hung up early: at most one TLV of it was held.
      wire::TlvHeader h;
      if (wire::read_tlv_header(sent, h)) FUZZ_CHECK(sent.size() < wire::kTlvSize + h.length);
      FUZZ_CHECK(framer.buffered() == sent.size());
      break;
    }
    // Exactly the TLV at the start of what was sent.
    wire::TlvHeader h;
    FUZZ_CHECK(wire::read_tlv_header(message, h));
    FUZZ_CHECK(message.size() == wire::kTlvSize + h.length);
    // Anything after it is ignored.
    FUZZ_CHECK(framer.feed(std::vector<std::uint8_t>{1, 2, 3}));
    FUZZ_CHECK(framer.message().size() == message.size());
    FUZZ_CHECK(std::equal(message.begin(), message.end(), framer.message().begin()));

    now += 1s;
    dispatch_ipc(ctx, message, now);
    check_transactions(engine, c.limits);
    store_watch.check(engine.store(), fx.events);  // a second answer fails in fx at once
  }
  store_watch.check(engine.store(), fx.events, true);

  check_status_roundtrip(engine);
  // Forwarded requests time out: afterwards every client has its answer.
  now += TransactionTable::kTimeout + 1s;
  engine.on_timer(now);
  FUZZ_CHECK(engine.transactions().size() == 0);
  check_clients_answered(fx);
  return 0;
}
