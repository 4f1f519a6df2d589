// Datagrams and everything else the engine reacts to, against one engine per
// input on a virtual clock.
//
// Input layout:
//   byte 0      configuration flags (see below); with bit 7 set the input is
//               for the heap-growth mode instead, whose layout heap_mode.hpp gives
//   bytes 1-6   base MAC of the peers (peer k = base with k added to the last byte)
//   then a list of operations, each starting with an opcode byte c:
//     op = c & 7, arg = (c >> 3) & 3, the clock first advances by kAdvance[c >> 5]
//     op 0-3  datagram from peer `op`: u16 length + bytes; arg picks the route
//             (0 first interface, 1 second interface, 2 a TCP stream, 3 unknown iface)
//     op 4    sync tick
//     op 5    arg 0 timer; 1 jump to next_deadline() and timer; 2/3 first interface down/up
//     op 6    arg 0 client request (u8 type, u16 id); 1 answer the oldest forwarded
//             request with a synthesized transaction; 2 replay the last transaction the
//             engine sent back to it as coming from peer 0; 3 replay it from the same
//             peer over a stream
//     op 7    arg 0 raw unix-socket message (u16 length + bytes); 1 synthesized set-data
//             of any size; 2 modeswitch (u8); 3 server status + change bat iface
// Every datagram also goes through the codec oracle (decode/encode/decode),
// every transaction the engine makes is drained, checked packet by packet and
// delivered to a fresh primary that must end up with exactly its records.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "fuzz_support.hpp"
#include "heap_mode.hpp"

using namespace alfred;
using namespace alfred::fuzz;
using namespace std::chrono_literals;

namespace {

constexpr Duration kAdvance[8] = {0s, 1ms, 200ms, 1s, 4s, 10s, 61s, 601s};
// The largest record data a unix-socket push can carry: the framer accepts any
// TLV, so the body may be 0xffff bytes. ALFRED_FUZZ_CAP_SET_DATA=1 caps it at
// kMaxRecordData instead (what upstream's unix socket accepts), to fuzz past
// that known issue (see fuzz/README.md).
constexpr std::size_t kIpcMaxData = 0xffff - wire::kTxMgmtSize - wire::kDataHeaderSize;

enum Flags : std::uint8_t {
  kPrimary = 1 << 0,
  kUpdateCommand = 1 << 1,
  kSmallLimits = 1 << 2,
  kTqFails = 1 << 3,
  kBatNone = 1 << 4,
  kTwoIfaces = 1 << 5,   // primary only, as the daemon refuses it for a secondary
  kIfacesNone = 1 << 6,  // "-i none"
  // 1 << 7: heap_mode::kHeapModeFlag
};

const Mac kOwn{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01};

// What TransactionLimits::max_bytes is compared with: the payload buffered,
// or, in a table that charges the memory it really takes (memory(),
// packet_cost()), that.
template <class Table>
std::size_t buffer_used(const Table& t) {
  if constexpr (requires { t.memory(); }) return t.memory();
  else return t.bytes();
}
template <class Table>
std::size_t buffer_charge(const Table&, std::size_t packet) {
  if constexpr (requires { Table::packet_cost(packet); }) return Table::packet_cost(packet);
  else return packet;
}

struct Pending {
  ClientId client;
  Route to;
  wire::Request request;
  std::size_t datagrams_at;  // raw datagrams fed before it was forwarded
};

struct Harness {
  CheckingEffects fx;
  FuzzTq tq;
  TransactionLimits limits;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<IpcContext> ipc;
  Mac base{};
  TimePoint now = TimePoint{} + 1000h;
  std::uint16_t next_id = 0;
  std::size_t datagrams = 0;
  std::vector<Pending> pending;  // forwarded client requests, oldest first
  // The engine's interface names, refreshed after a change-interface message
  // (the only thing that changes them), instead of a status() per datagram.
  std::vector<std::string> ifaces;
  StoreWatch store_watch;

  Mac peer(unsigned k) const {
    Mac m = base;
    m[5] = static_cast<std::uint8_t>(m[5] + k);
    return m;
  }

  bool knows_iface(const std::string& name) const {
    return std::find(ifaces.begin(), ifaces.end(), name) != ifaces.end();
  }

  const std::string& iface(unsigned i) const {
    static const std::string fallback = "mesh0";
    if (ifaces.empty()) return fallback;
    return ifaces[std::min<std::size_t>(i, ifaces.size() - 1)];
  }

  void refresh_ifaces() {
    ifaces.clear();
    for (auto& i : engine->status().interfaces) ifaces.push_back(std::move(i.name));
  }

  // `fuzzed`: raw bytes from the input (codec oracle), else a message the
  // harness encoded. Only a change-interface message changes the interfaces.
  void ipc_message(std::span<const std::uint8_t> msg, bool fuzzed = false) {
    dispatch_ipc(*ipc, msg, now, fuzzed);
    if (!msg.empty() && msg[0] == static_cast<std::uint8_t>(wire::Type::ChangeInterface))
      refresh_ifaces();
  }

  void setup(std::uint8_t flags, Input& in) {
    for (auto& b : base) b = in.u8();
    next_id = static_cast<std::uint16_t>(base[0] << 8 | base[1]);
    EngineConfig c;
    c.mode = flags & kPrimary ? wire::Mode::Primary : wire::Mode::Secondary;
    c.update_command = flags & kUpdateCommand;
    if (flags & kSmallLimits) {
      c.limits = TransactionLimits{4, 2048};
      c.max_servers_per_interface = 2;  // so that four peers fill the table
    }
    tq.mesh = {peer(0), peer(2)};  // "in the mesh" for a full primary table
    limits = c.limits;
    tq.ok = !(flags & kTqFails);
    c.bat_iface = flags & kBatNone ? "none" : "bat0";
    if (flags & kIfacesNone) {
      c.interfaces_disabled = true;
    } else {
      c.interfaces = {"mesh0"};
      if ((flags & kTwoIfaces) && (flags & kPrimary)) c.interfaces.push_back("mesh1");
    }
    engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
    for (std::size_t i = 0; i < c.interfaces.size(); ++i) {
      Mac m = kOwn;
      m[5] = static_cast<std::uint8_t>(m[5] + i);
      engine->interface_up(c.interfaces[i], m, link_local_of(m));
    }
    ipc = std::make_unique<IpcContext>(
        IpcContext{*engine, fx, Mac{0x02, 0, 0x5e, 0, 1, 0}, 1, std::nullopt});
    refresh_ifaces();
  }

  void datagram(unsigned k, unsigned how, std::span<const std::uint8_t> bytes) {
    Mac m = peer(k);
    Route r{iface(how == 1 ? 1 : 0), link_local_of(m), m, 0};
    if (how == 2) r.stream = 1 + k;
    if (how == 3) r.iface = "bogus0";
    decode_checked(bytes);
    ++datagrams;
    engine->on_packet(r, bytes, now);
  }

  void client_request(Input& in) {
    wire::Request req;
    req.requested_type = in.u8();
    req.tx_id = in.u16();
    auto msg = wire::encode(req);
    std::size_t forwarded = fx.forwarded.size();
    ClientId c = ipc->next_client;
    ipc_message(msg);
    if (fx.forwarded.size() > forwarded) {
      FUZZ_CHECK(fx.replies[c] == 0);
      pending.push_back({c, fx.forwarded.back().first, req, datagrams});
    } else {
      FUZZ_CHECK(fx.replies[c] == 1);
    }
  }

  // The server's answer to a forwarded request, made with a PushEncoder over
  // synthesized records, possibly damaged on the way.
  void answer(Input& in) {
    if (pending.empty()) return;
    Pending p = pending.front();
    pending.erase(pending.begin());
    std::uint8_t shape = in.u8();
    std::size_t max_packet = shape & 0x80 ? 64 + in.u16() % 2048 : wire::kMaxPacket;
    Snapshot records;
    unsigned n = in.u8() % 6;
    std::size_t fitting = 0;
    for (unsigned i = 0; i < n; ++i) {
      auto rec = std::make_shared<Record>();
      std::uint8_t t = in.u8();
      rec->type = t & 1 ? p.request.requested_type : t;
      rec->source = peer(4 + i);
      rec->version = in.u8();
      std::size_t size = in.u16() % (wire::kMaxRecordData + 1);
      if (fx.drained_bytes > fx.drain_budget) size %= 256;  // keep slow inputs bounded
      rec->data.assign(size, static_cast<std::uint8_t>(t ^ i));
      if (wire::kPushHeaderSize + wire::kDataHeaderSize + size <= max_packet) ++fitting;
      records.push_back(std::move(rec));
    }
    // A snapshot comes from the store: one record per (type, source).
    std::sort(records.begin(), records.end(), [](const RecordPtr& a, const RecordPtr& b) {
      return std::make_pair(a->type, a->source) < std::make_pair(b->type, b->source);
    });
    auto expected_size = wire::PushEncoder::encoded_size(records, true, max_packet);
    wire::PushEncoder tx(records, p.request.tx_id, true, max_packet);
    FUZZ_CHECK(tx.total_size() == expected_size);
    auto packets = drain_checked(tx, nullptr, fitting, max_packet);
    fx.drained_bytes += expected_size;

    bool intact = true;
    if ((shape & 1) && !packets.empty()) {  // lose one
      packets.erase(packets.begin() + in.u8() % packets.size());
      intact = false;
    }
    if ((shape & 2) && !packets.empty()) {  // duplicate one
      auto copy = packets[in.u8() % packets.size()];
      packets.push_back(copy);
    }
    if (shape & 4) std::reverse(packets.begin(), packets.end());
    Route from = p.to;
    if (shape & 8) {
      from.mac = peer(3);
      intact = intact && from.mac == p.to.mac;
    }
    const bool dirty = !intact || (shape & 2);
    // The transaction table may refuse it (limits), which is no fault.
    std::size_t push_charge = 0;
    for (const auto& pkt : packets)
      if (!pkt.empty() && pkt[0] == static_cast<std::uint8_t>(wire::Type::PushData))
        push_charge += buffer_charge(engine->transactions(), pkt.size());
    const bool fits = buffer_used(engine->transactions()) + push_charge <= limits.max_bytes;
    bool waiting = fx.replies[p.client] == 0;
    bool clean = datagrams == p.datagrams_at;
    // The answer comes back on the interface the request went out on. If a
    // change-interface message removed it meanwhile, the engine drops
    // everything from it (on_packet: unknown interface) and the request is
    // left to time out; the daemon has closed that socket anyway.
    const bool reachable = knows_iface(from.iface);
    FUZZ_TRACE("answer client %llu: %zu packets, intact %d, waiting %d, clean %d, reachable %d\n",
               static_cast<unsigned long long>(p.client), packets.size(), intact, waiting, clean,
               reachable);
    for (const auto& pkt : packets) engine->on_packet(from, pkt, now);
    // A damaged answer may leave packets in other transactions: count it as
    // fuzzed traffic, so later answers are not held to the strict oracle.
    if (dirty) ++datagrams;
    // Untouched by fuzzed datagrams, an intact answer completes the request.
    if (intact && waiting && clean && fits && reachable) {
      FUZZ_CHECK(fx.replies[p.client] == 1);
      for (const auto& r : records) {
        if (wire::kPushHeaderSize + wire::kDataHeaderSize + r->data.size() > max_packet) continue;
        const Record* got = engine->store().find(r->source, r->type);
        FUZZ_CHECK(got != nullptr);
        if (engine->store().source_of(r->source, r->type) != Source::Local)
          FUZZ_CHECK(got->data == r->data && got->version == r->version);
      }
    }
  }

  void replay(unsigned k, bool stream) {
    Mac m = peer(k);
    Route r{iface(0), link_local_of(m), m, stream ? ConnectionId{7} : 0};
    auto packets = fx.last_push;  // the engine may send a new one meanwhile
    ++datagrams;
    for (const auto& pkt : packets) engine->on_packet(r, pkt, now);
  }

  // A unix-socket set-data of fuzzer-chosen size, through the same dispatch.
  void set_data(Input& in) {
    std::uint8_t type = in.u8();
    std::uint8_t version = in.u8();
    static const std::size_t max_data =
        std::getenv("ALFRED_FUZZ_CAP_SET_DATA") ? wire::kMaxRecordData : kIpcMaxData;
    std::size_t size = std::min<std::size_t>(in.u16(), max_data);
    std::uint8_t who = in.u8();
    Mac source{};
    if (who & 1) source = peer(who >> 1 & 7);
    std::vector<std::uint8_t> data(size, static_cast<std::uint8_t>(who ^ type));
    std::vector<std::uint8_t> msg;
    wire::encode_push_header(msg, 0, 0);
    wire::append_record(msg, source, type, version, data);
    wire::finish_tlv(msg, 0);
    ipc_message(msg);
  }

  // After every operation. A second answer to a client fails in the effects
  // at once; the store is checked when it may have changed (StoreWatch).
  void check(bool final = false) {
    check_transactions(*engine, limits);
    if (auto best = engine->best_server()) {  // the chosen primary is a known one
      bool known = false;
      for (const auto& r : engine->servers()) known |= r.iface == best->iface && r.mac == best->mac;
      FUZZ_CHECK(known);
    }
    store_watch.check(engine->store(), fx.events, final);
  }

  void timer() {
    engine->on_timer(now);
    if (auto d = engine->next_deadline()) FUZZ_CHECK(*d > now);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 0 && (data[0] & heap_mode::kHeapModeFlag)) return heap_mode::run(data, size);
  Input in(data, size);
  Harness h;
  std::uint8_t flags = in.u8();
  h.setup(flags, in);

  while (!in.empty()) {
    std::uint8_t c = in.u8();
    unsigned op = c & 7, arg = (c >> 3) & 3;
    h.now += kAdvance[c >> 5];
    switch (op) {
      case 0:
      case 1:
      case 2:
      case 3: {
        std::size_t len = in.u16();
        h.datagram(op, arg, in.bytes(len));
        break;
      }
      case 4:
        h.engine->on_sync_tick(h.now);
        if (auto d = h.engine->next_deadline()) FUZZ_CHECK(*d > h.now);
        break;
      case 5:
        if (arg == 0) {
          h.timer();
        } else if (arg == 1) {
          if (auto d = h.engine->next_deadline()) h.now = std::max(h.now, *d);
          h.timer();
        } else if (arg == 2) {
          h.engine->interface_down(h.iface(0));
        } else {
          h.engine->interface_up(h.iface(0), kOwn, link_local_of(kOwn));
        }
        break;
      case 6:
        if (arg == 0) h.client_request(in);
        else if (arg == 1) h.answer(in);
        else h.replay(arg == 2 ? 0 : 1, arg == 3);
        break;
      case 7:
        if (arg == 0) {
          std::size_t len = in.u16();
          h.ipc_message(in.bytes(len), true);
        } else if (arg == 1) {
          h.set_data(in);
        } else if (arg == 2) {
          h.ipc_message(wire::encode(wire::ModeSwitch{in.u8()}));
        } else {
          h.ipc_message(wire::encode(wire::ServerStatus{}));
          std::string bat(in.u8() % 20, 'b');
          h.ipc_message(wire::encode(wire::ChangeBatIface{bat}));
        }
        break;
    }
    h.check();
  }

  // Let every transaction finish or time out: each client then has its answer.
  h.now += TransactionTable::kTimeout + 1s;
  h.timer();
  FUZZ_CHECK(h.engine->transactions().size() == 0);
  FUZZ_CHECK(h.engine->transactions().bytes() == 0);
  check_clients_answered(h.fx);
  h.check(true);
  return 0;
}
