#pragma once
// Shared pieces of the libFuzzer targets: an input cursor, invariant checks,
// a codec round-trip oracle and Effects/TqSource doubles that check what the
// engine asks for (and drain every PushEncoder, so encoding is fuzzed too).
// Not a fuzz target itself (the build globs fuzz/*_fuzz.cpp).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "engine/effects.hpp"
#include "engine/engine.hpp"
#include "wire/packet.hpp"
#include "wire/push_encoder.hpp"

// An invariant violation: print it and abort, which libFuzzer records as a crash.
#define FUZZ_CHECK(cond)                                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "FUZZ INVARIANT VIOLATED: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace alfred::fuzz {

// ALFRED_FUZZ_VERBOSE=1 prints the engine's log and effects (for reproducers).
inline bool verbose() {
  static const bool v = std::getenv("ALFRED_FUZZ_VERBOSE") != nullptr;
  return v;
}
#define FUZZ_TRACE(...)                            \
  do {                                             \
    if (::alfred::fuzz::verbose()) std::fprintf(stderr, __VA_ARGS__); \
  } while (0)

// Reads the fuzzer's bytes front to back; past the end everything is zero.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  std::size_t left() const { return size_ - pos_; }
  std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint16_t u16() {
    std::uint16_t hi = u8();
    return static_cast<std::uint16_t>((hi << 8) | u8());
  }
  // Up to `n` bytes (fewer at the end of the input).
  std::span<const std::uint8_t> bytes(std::size_t n) {
    n = std::min(n, left());
    std::span<const std::uint8_t> out(data_ + pos_, n);
    pos_ += n;
    return out;
  }
  std::span<const std::uint8_t> rest() { return bytes(left()); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

inline bool same_records(const std::vector<wire::RecordView>& a,
                         const std::vector<wire::RecordView>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].source != b[i].source || a[i].type != b[i].type || a[i].version != b[i].version)
      return false;
    if (!std::equal(a[i].data.begin(), a[i].data.end(), b[i].data.begin(), b[i].data.end()))
      return false;
  }
  return true;
}

inline bool same_status(const wire::ServerStatus& a, const wire::ServerStatus& b) {
  if (a.has_mode != b.has_mode || a.has_bat_iface != b.has_bat_iface) return false;
  if (a.has_mode && a.mode != b.mode) return false;
  if (a.has_bat_iface && a.bat_iface != b.bat_iface) return false;
  if (a.interfaces.size() != b.interfaces.size()) return false;
  for (std::size_t i = 0; i < a.interfaces.size(); ++i)
    if (a.interfaces[i].name != b.interfaces[i].name ||
        a.interfaces[i].active != b.interfaces[i].active)
      return false;
  return true;
}

// Field-by-field equality of two decoded packets.
inline bool same_packet(const wire::Packet& x, const wire::Packet& y) {
  using namespace wire;
  if (x.index() != y.index()) return false;
  if (auto* a = std::get_if<PushData>(&x)) {
    auto* b = std::get_if<PushData>(&y);
    return a->tx_id == b->tx_id && a->seqno == b->seqno && same_records(a->records, b->records);
  }
  if (auto* a = std::get_if<Request>(&x)) {
    auto* b = std::get_if<Request>(&y);
    return a->requested_type == b->requested_type && a->tx_id == b->tx_id;
  }
  if (auto* a = std::get_if<TxEnd>(&x)) {
    auto* b = std::get_if<TxEnd>(&y);
    return a->tx_id == b->tx_id && a->seqno == b->seqno;
  }
  if (auto* a = std::get_if<StatusError>(&x)) {
    auto* b = std::get_if<StatusError>(&y);
    return a->tx_id == b->tx_id && a->code_raw == b->code_raw;
  }
  if (auto* a = std::get_if<ModeSwitch>(&x)) return a->mode == std::get<ModeSwitch>(y).mode;
  if (auto* a = std::get_if<ChangeInterface>(&x))
    return a->interfaces == std::get<ChangeInterface>(y).interfaces;
  if (auto* a = std::get_if<ChangeBatIface>(&x))
    return a->bat_iface == std::get<ChangeBatIface>(y).bat_iface;
  if (auto* a = std::get_if<ServerStatus>(&x)) return same_status(*a, std::get<ServerStatus>(y));
  if (auto* a = std::get_if<EventNotify>(&x)) {
    auto* b = std::get_if<EventNotify>(&y);
    return a->type == b->type && a->source == b->source;
  }
  return true;  // AnnouncePrimary, EventRegister: no fields
}

// DecodeResult::ignored_bytes where the codec reports it, else 0 (a codec
// that rejects such packets instead).
template <class Result>
std::size_t ignored_bytes_of(const Result& r) {
  if constexpr (requires { r.ignored_bytes; }) return r.ignored_bytes;
  else return 0;
}

// decode() on arbitrary bytes, with the codec oracle: a packet that decodes
// re-encodes to bytes that decode to the same fields and re-encode to the
// same bytes; push data, whose encoding is lossless, re-encodes to exactly
// the bytes it came from (less a tail the decoder reports as ignored).
// Returns the first decode's result.
inline wire::DecodeResult decode_checked(std::span<const std::uint8_t> bytes) {
  auto d = wire::decode(bytes);
  if (!d.ok) {
    FUZZ_CHECK(!d.error.empty());
    return d;
  }
  wire::TlvHeader h;
  FUZZ_CHECK(wire::read_tlv_header(bytes, h));
  FUZZ_CHECK(h.version == wire::kVersion && h.type <= wire::kMaxType);
  FUZZ_CHECK(bytes.size() >= wire::kTlvSize + h.length);
  FUZZ_CHECK(d.packet.index() == h.type);  // the variant follows the Type numbering
  auto enc = wire::encode(d.packet);
  FUZZ_CHECK(enc.size() >= wire::kTlvSize);
  wire::TlvHeader h2;
  wire::read_tlv_header(enc, h2);
  FUZZ_CHECK(h2.type == h.type && h2.version == wire::kVersion);
  FUZZ_CHECK(enc.size() == wire::kTlvSize + h2.length);
  auto d2 = wire::decode(enc);
  FUZZ_CHECK(d2.ok);
  FUZZ_CHECK(same_packet(d.packet, d2.packet));
  FUZZ_CHECK(wire::encode(d2.packet) == enc);
  if (std::holds_alternative<wire::PushData>(d.packet)) {
    // Push data re-encodes to the bytes it came from, less the tail a lenient
    // decoder ignored (DecodeResult::ignored_bytes, where the codec has it):
    // a cut record header, or a record running past the TLV and all after it.
    const std::size_t ignored = ignored_bytes_of(d);
    FUZZ_CHECK(ignored <= h.length - wire::kTxMgmtSize);
    const std::size_t kept = wire::kTlvSize + h.length - ignored;
    FUZZ_CHECK(enc.size() == kept);
    if (ignored == 0) {
      FUZZ_CHECK(std::equal(enc.begin(), enc.end(), bytes.begin()));
    } else {
      FUZZ_CHECK(enc[0] == bytes[0] && enc[1] == bytes[1]);
      FUZZ_CHECK(std::equal(enc.begin() + wire::kTlvSize, enc.end(),
                            bytes.begin() + wire::kTlvSize));
      // What was ignored does not start with a whole record.
      auto tail = bytes.subspan(kept, ignored);
      if (tail.size() >= wire::kDataHeaderSize)
        FUZZ_CHECK((std::size_t{tail[8]} << 8 | tail[9]) > tail.size() - wire::kDataHeaderSize);
    }
  }
  return d;
}

// Store bookkeeping: one record per (type, source), payload_bytes() is the sum
// of what is stored, snapshots are ordered by type then source.
inline void check_store(const Store& store) {
  auto all = store.snapshot(Source::Synced);
  FUZZ_CHECK(all.size() == store.size());
  std::size_t payload = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    FUZZ_CHECK(all[i] != nullptr);
    payload += all[i]->data.size();
    if (i > 0) {
      auto prev = std::make_pair(all[i - 1]->type, all[i - 1]->source);
      auto cur = std::make_pair(all[i]->type, all[i]->source);
      FUZZ_CHECK(prev < cur);
    }
    FUZZ_CHECK(store.find(all[i]->source, all[i]->type) == all[i].get());
    // push_encoder.cpp: "the store never holds one [a record too large for any
    // packet] (set and receive paths cap the size)".
    FUZZ_CHECK(all[i]->data.size() <= wire::kMaxRecordData);
  }
  FUZZ_CHECK(payload == store.payload_bytes());
  FUZZ_CHECK(store.snapshot(Source::Local).size() <= store.snapshot(Source::FirstHand).size());
}

// check_store takes three snapshots of the whole store, which for a store of
// thousands of records after every operation was most of an input's time.
// StoreWatch runs it only when the store may have changed since: its size,
// its payload bytes or the number of change events differ (a new record, a
// changed one, an expired or evicted one all move one of them).
struct StoreWatch {
  std::size_t size = SIZE_MAX, payload = 0, events = 0;
  void check(const Store& store, std::size_t events_now, bool force = false) {
    if (!force && store.size() == size && store.payload_bytes() == payload && events_now == events)
      return;
    check_store(store);
    size = store.size();
    payload = store.payload_bytes();
    events = events_now;
  }
};

struct NullEffects : Effects {
  void send_packet(const Route&, std::vector<std::uint8_t>) override {}
  void send_push(const Route&, wire::PushEncoder, PushKind) override {}
  void forward_request(const Route&, const wire::Request&) override {}
  void reply_records(ClientId, Snapshot, std::uint16_t) override {}
  void reply_error(ClientId, std::uint16_t) override {}
  void event(std::uint8_t, const Mac&) override {}
  void run_update_command(const std::bitset<256>&) override {}
  void reconfigure_interfaces(const std::vector<std::string>&) override {}
  void log(std::string_view) override {}
};

// TQ derived from the MAC, so the best-server choice depends on the input.
struct FuzzTq : TqSource {
  bool ok = true;
  std::map<Mac, std::uint8_t> tq(const std::string&, const std::vector<Mac>& servers,
                                 bool& ok_out) override {
    ok_out = ok;
    std::map<Mac, std::uint8_t> out;
    if (!ok) return out;
    for (const auto& m : servers) out[m] = static_cast<std::uint8_t>(m[5] * 37 + m[4]);
    return out;
  }
  // What the harness says batman-adv's translation table holds.
  std::set<Mac> mesh;
  std::set<Mac> mesh_addresses(const std::string&, bool& ok_out) override {
    ok_out = ok;
    return ok ? mesh : std::set<Mac>{};
  }
};

inline PeerAddress link_local_of(const Mac& m) {
  PeerAddress a;
  auto ll = wire::mac_to_link_local(m);
  std::copy(ll.begin(), ll.end(), a.ip.begin());
  return a;
}

// Drains one transaction and checks every packet it makes; returns them.
// Also runs restarted() alongside and requires the same bytes.
// `expected_records`: how many records must come out (by default all of them:
// the store never holds a record too large for a packet, so none is skipped).
inline std::vector<std::vector<std::uint8_t>> drain_checked(
    wire::PushEncoder& tx, std::size_t* records_out = nullptr,
    std::optional<std::size_t> expected_records = std::nullopt,
    std::size_t max_packet = wire::kMaxPacket) {
  const std::size_t expected_total = tx.total_size();
  const std::size_t record_count = expected_records.value_or(tx.record_count());
  const std::uint16_t id = tx.tx_id();
  wire::PushEncoder again = tx.restarted();
  std::vector<std::vector<std::uint8_t>> packets;
  std::vector<std::uint8_t> pkt, pkt2;
  std::size_t total = 0, records = 0;
  std::uint16_t pushes = 0;
  bool txend = false;
  while (tx.next(pkt)) {
    FUZZ_CHECK(!txend);  // nothing after the txend
    FUZZ_CHECK(again.next(pkt2) && pkt2 == pkt);
    FUZZ_CHECK(pkt.size() <= max_packet && pkt.size() <= wire::kMaxPacket);
    auto d = decode_checked(pkt);
    FUZZ_CHECK(d.ok);
    wire::TlvHeader h;
    wire::read_tlv_header(pkt, h);
    FUZZ_CHECK(pkt.size() == wire::kTlvSize + h.length);
    if (auto* p = std::get_if<wire::PushData>(&d.packet)) {
      FUZZ_CHECK(p->tx_id == id);
      FUZZ_CHECK(p->seqno == pushes);
      FUZZ_CHECK(!p->records.empty());
      records += p->records.size();
      ++pushes;
      FUZZ_CHECK(tx.packets_sent() == pushes);
    } else {
      auto* e = std::get_if<wire::TxEnd>(&d.packet);
      FUZZ_CHECK(e != nullptr);
      FUZZ_CHECK(e->tx_id == id && e->seqno == pushes);
      txend = true;
    }
    total += pkt.size();
    packets.push_back(pkt);
  }
  FUZZ_CHECK(!again.next(pkt2));
  FUZZ_CHECK(!tx.next(pkt));  // done stays done
  FUZZ_CHECK(pushes == 0 || txend);
  FUZZ_CHECK(total == expected_total);
  FUZZ_CHECK(records == record_count);
  if (records_out) *records_out = records;
  return packets;
}

// End-to-end oracle: a fresh primary that receives a whole transaction from
// `peer` must end up holding exactly the records it carried.
inline void deliver_to_fresh_primary(const std::vector<std::vector<std::uint8_t>>& packets,
                                     const Mac& peer) {
  NullEffects fx;
  FuzzTq tq;
  EngineConfig c;
  c.mode = wire::Mode::Primary;
  c.interfaces = {"mesh0"};
  c.bat_iface = "none";
  Engine e(c, fx, tq, [] { return std::uint16_t{1}; });
  const Mac own{0x02, 0xfe, 0, 0, 0, 1};
  e.interface_up("mesh0", own, link_local_of(own));
  const TimePoint t = TimePoint{} + std::chrono::hours(1);
  Route from{"mesh0", link_local_of(peer), peer, 0};
  std::size_t expected = 0;
  for (const auto& p : packets) {
    auto d = wire::decode(p);
    if (auto* push = std::get_if<wire::PushData>(&d.packet)) expected += push->records.size();
    e.on_packet(from, p, t);
  }
  FUZZ_CHECK(e.transactions().size() == 0);
  FUZZ_CHECK(e.transactions().bytes() == 0);
  FUZZ_CHECK(e.store().size() == expected);
  for (const auto& p : packets) {
    auto d = wire::decode(p);
    if (auto* push = std::get_if<wire::PushData>(&d.packet))
      for (const auto& r : push->records) {
        const Record* got = e.store().find(r.source, r.type);
        FUZZ_CHECK(got != nullptr && got->version == r.version);
        FUZZ_CHECK(std::equal(got->data.begin(), got->data.end(), r.data.begin(), r.data.end()));
      }
  }
  check_store(e.store());
}

// The engine's outside world for the fuzz targets. Every transaction is
// drained and checked; client replies are counted so the target can require
// exactly one per client (a second one fails at once).
struct CheckingEffects : Effects {
  std::map<ClientId, int> replies;
  std::map<ClientId, std::uint8_t> requested_type;  // filled in by the target
  std::vector<std::vector<std::uint8_t>> last_push;  // packets of the latest transaction
  std::vector<std::pair<Route, wire::Request>> forwarded;
  std::optional<std::vector<std::string>> reconfigured;
  std::size_t pushes = 0;
  bool end_to_end = true;

  void send_packet(const Route&, std::vector<std::uint8_t> packet) override {
    FUZZ_CHECK(packet.size() <= wire::kMaxPacket);
    auto d = decode_checked(packet);
    FUZZ_CHECK(d.ok);
    FUZZ_CHECK(std::holds_alternative<wire::AnnouncePrimary>(d.packet) ||
               std::holds_alternative<wire::TxEnd>(d.packet) ||
               std::holds_alternative<wire::Request>(d.packet));
  }
  // Bytes of transactions drained so far; past the budget further ones are
  // only counted, so an input of many syncs of big records stays fast (each
  // drained byte is encoded twice, decoded and re-encoded by the codec
  // oracle, then delivered to a fresh primary). 4 MiB is 64 full packets.
  std::size_t drained_bytes = 0;
  std::size_t drain_budget = 4u << 20;
  std::size_t events = 0;  // event() calls: the store changed

  void send_push(const Route& to, wire::PushEncoder tx, PushKind kind) override {
    if (drained_bytes > drain_budget) {
      ++pushes;
      return;
    }
    drained_bytes += tx.total_size();
    std::size_t records = 0;
    auto packets = drain_checked(tx, &records);
    // A reply always ends with a txend; a sync is only made for records.
    FUZZ_CHECK(!packets.empty());
    if (kind != PushKind::Reply) FUZZ_CHECK(records > 0);
    ++pushes;
    FUZZ_TRACE("send_push %s to %s: %zu packets, %zu records\n",
               kind == PushKind::Sync ? "sync" : kind == PushKind::Prompt ? "prompt" : "reply",
               to_string(to.mac).c_str(),
               packets.size(), records);
    Mac peer = to.mac;
    if (!is_valid_unicast(peer)) peer = Mac{0x02, 0xee, 0, 0, 0, 2};
    if (end_to_end) deliver_to_fresh_primary(packets, peer);
    last_push = std::move(packets);
  }
  void forward_request(const Route& to, const wire::Request& r) override {
    FUZZ_CHECK(!to.iface.empty());
    FUZZ_TRACE("forward_request type %u id %u to %s\n", r.requested_type, r.tx_id,
               to_string(to.mac).c_str());
    forwarded.push_back({to, r});
  }
  void reply_records(ClientId c, Snapshot records, std::uint16_t id) override {
    FUZZ_TRACE("reply_records client %llu id %u: %zu records\n",
               static_cast<unsigned long long>(c), id, records.size());
    FUZZ_CHECK(++replies[c] == 1);  // never two answers
    auto it = requested_type.find(c);
    for (const auto& r : records) {
      FUZZ_CHECK(r != nullptr);
      if (it != requested_type.end()) FUZZ_CHECK(r->type == it->second);
    }
  }
  void reply_error(ClientId c, std::uint16_t id) override {
    FUZZ_TRACE("reply_error client %llu id %u\n", static_cast<unsigned long long>(c), id);
    FUZZ_CHECK(++replies[c] == 1);  // never two answers
  }
  void event(std::uint8_t type, const Mac& source) override {
    ++events;
    FUZZ_TRACE("event type %u from %s\n", type, to_string(source).c_str());
  }
  void run_update_command(const std::bitset<256>& types) override {
    FUZZ_TRACE("update command, %zu types\n", types.count());
    FUZZ_CHECK(types.any());
  }
  void reconfigure_interfaces(const std::vector<std::string>& names) override {
    std::set<std::string> unique(names.begin(), names.end());
    FUZZ_CHECK(unique.size() == names.size());
    for (const auto& n : names) FUZZ_CHECK(!n.empty() && n.find(',') == std::string::npos);
    reconfigured = names;
  }
  void log(std::string_view m) override {
    FUZZ_TRACE("engine: %.*s\n", static_cast<int>(m.size()), m.data());
  }
};

// Transaction table limits hold whatever arrives.
inline void check_transactions(const Engine& e, const TransactionLimits& limits) {
  FUZZ_CHECK(e.transactions().size() <= limits.max_transactions);
  FUZZ_CHECK(e.transactions().bytes() <= limits.max_bytes);
  if (e.transactions().size() == 0) FUZZ_CHECK(e.transactions().bytes() == 0);
}

// What the daemon does once the engine asked for new interfaces: open them
// (here all succeed) and tell the engine.
inline void apply_reconfigure(Engine& e, CheckingEffects& fx, const Mac& base) {
  if (!fx.reconfigured) return;
  auto names = std::move(*fx.reconfigured);
  fx.reconfigured.reset();
  std::uint8_t n = 0;
  for (const auto& name : names) {
    Mac m = base;
    m[5] = static_cast<std::uint8_t>(m[5] + n++);
    e.interface_up(name, m, link_local_of(m));
  }
}

// Names as a server-status reply carries them (IFNAMSIZ field, NUL-terminated).
inline std::string status_name(const std::string& n) {
  return n.substr(0, std::min(n.size(), wire::kIfNameSize - 1));
}

// encode(status()) must decode back to the same facts (names cut to IFNAMSIZ-1).
inline void check_status_roundtrip(const Engine& e) {
  wire::ServerStatus st = e.status();
  auto enc = wire::encode(st);
  FUZZ_CHECK(enc.size() <= wire::kMaxPacket);
  auto d = decode_checked(enc);
  FUZZ_CHECK(d.ok);
  auto* back = std::get_if<wire::ServerStatus>(&d.packet);
  FUZZ_CHECK(back != nullptr);
  FUZZ_CHECK(back->has_mode && back->mode == static_cast<std::uint8_t>(e.mode()));
  FUZZ_CHECK(back->has_bat_iface && back->bat_iface == status_name(e.bat_iface()));
  FUZZ_CHECK(back->interfaces.size() == st.interfaces.size());
  for (std::size_t i = 0; i < st.interfaces.size(); ++i) {
    FUZZ_CHECK(back->interfaces[i].name == status_name(st.interfaces[i].name));
    FUZZ_CHECK(back->interfaces[i].active == st.interfaces[i].active);
  }
}

// The unix-socket dispatch of Daemon::on_ipc (src/net/daemon.cpp), with
// checks on what each operation did. `message` is what MessageFramer cut.
struct IpcContext {
  Engine& engine;
  CheckingEffects& fx;
  Mac iface_base;  // MACs given to interfaces the engine asks for
  ClientId next_client = 1;
  // The status last put through check_status_roundtrip: the same one again
  // needs no second encode/decode (inputs ask for it hundreds of times).
  std::optional<wire::ServerStatus> checked_status;
};

// `oracle`: run the codec oracle on the message (for fuzzed bytes; a message
// the harness encoded itself needs only decoding).
inline void dispatch_ipc(IpcContext& ctx, std::span<const std::uint8_t> message, TimePoint now,
                         bool oracle = true) {
  Engine& e = ctx.engine;
  auto d = oracle ? decode_checked(message) : wire::decode(message);
  if (!d.ok) return;  // the daemon logs and closes the client
  if (auto* push = std::get_if<wire::PushData>(&d.packet)) {
    bool accepted = e.ipc_set_data(*push, now);
    if (accepted) {
      FUZZ_CHECK(!push->records.empty());
      const auto& rv = push->records.front();
      if (is_valid_unicast(rv.source)) {
        const Record* r = e.store().find(rv.source, rv.type);
        FUZZ_CHECK(r != nullptr && r->version == rv.version);
        FUZZ_CHECK(std::equal(r->data.begin(), r->data.end(), rv.data.begin(), rv.data.end()));
        FUZZ_CHECK(e.store().source_of(rv.source, rv.type) == Source::Local);
      }
    }
  } else if (auto* req = std::get_if<wire::Request>(&d.packet)) {
    wire::TlvHeader h;
    wire::read_tlv_header(message, h);
    if (h.length != 3) return;
    ClientId c = ctx.next_client++;
    ctx.fx.requested_type[c] = req->requested_type;
    ctx.fx.replies[c];  // known client, no reply yet
    e.ipc_request(c, *req, now);
    FUZZ_CHECK(ctx.fx.replies[c] <= 1);
  } else if (auto* ms = std::get_if<wire::ModeSwitch>(&d.packet)) {
    auto before = e.mode();
    bool ok = e.ipc_modeswitch(*ms);
    if (ms->mode > 1) FUZZ_CHECK(!ok);
    FUZZ_CHECK(ok ? static_cast<std::uint8_t>(e.mode()) == ms->mode : e.mode() == before);
  } else if (auto* ci = std::get_if<wire::ChangeInterface>(&d.packet)) {
    auto before = e.status().interfaces.size();
    bool ok = e.ipc_change_interface(ci->interfaces);
    if (!ok) {
      FUZZ_CHECK(e.mode() == wire::Mode::Secondary);
      FUZZ_CHECK(ci->interfaces.find(',') != std::string::npos);
      FUZZ_CHECK(e.status().interfaces.size() == before);
      FUZZ_CHECK(!ctx.fx.reconfigured);
    } else {
      FUZZ_CHECK(ctx.fx.reconfigured.has_value());
      auto names = *ctx.fx.reconfigured;
      apply_reconfigure(e, ctx.fx, ctx.iface_base);
      auto st = e.status();
      FUZZ_CHECK(st.interfaces.size() == names.size());
      for (std::size_t i = 0; i < names.size(); ++i) {
        FUZZ_CHECK(st.interfaces[i].name == names[i]);
        FUZZ_CHECK(st.interfaces[i].active);
      }
      if (ci->interfaces == "none") FUZZ_CHECK(names.empty());
    }
  } else if (auto* cb = std::get_if<wire::ChangeBatIface>(&d.packet)) {
    e.ipc_change_bat_iface(cb->bat_iface);
    FUZZ_CHECK(e.bat_iface() == cb->bat_iface);
  } else if (std::holds_alternative<wire::ServerStatus>(d.packet)) {
    auto st = e.status();
    if (!ctx.checked_status || !same_status(*ctx.checked_status, st)) {
      check_status_roundtrip(e);
      ctx.checked_status = std::move(st);
    }
  } else if (std::holds_alternative<wire::EventRegister>(d.packet)) {
    // the daemon turns the client into an event listener; nothing in the engine
  }
}

// Every client that asked got exactly one answer; call after all
// transactions had time to finish or time out.
inline void check_clients_answered(const CheckingEffects& fx) {
  for (const auto& [client, n] : fx.replies) {
    FUZZ_CHECK(fx.requested_type.count(client) == 1);
    FUZZ_CHECK(n == 1);
  }
}

}  // namespace alfred::fuzz
