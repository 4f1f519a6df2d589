// Delta sync on sessions, piece by piece: the refresh and want frames, the
// record digest, the sender's baseline (link::SessionLink), the acceptor's
// side (link::SessionResponder), and what a refresh does to the store and
// the engine. The whole protocol runs in mesh_sim: delta_sync_sim_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.hpp"
#include "fake_effects.hpp"
#include "link/session_link.hpp"
#include "link/session_responder.hpp"
#include "store/record_digest.hpp"
#include "store/store.hpp"
#include "wire/session_frames.hpp"

namespace alfred {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;
using test::mac_of;
using test::route_of;

const TimePoint T0 = TimePoint{} + 1000s;

Record rec(int source, std::uint8_t type, std::string_view data, std::uint8_t version = 0) {
  Record r;
  r.source = mac_of(source);
  r.type = type;
  r.version = version;
  r.data.assign(data.begin(), data.end());
  return r;
}

// ------------------------------------------------------------------ wire

TEST(DeltaWire, RefreshAndWantRoundTrip) {
  std::vector<wire::RefreshEntry> entries = {{{64, mac_of(1)}, 0x0102030405060708ull},
                                             {{65, mac_of(2)}, ~0ull}};
  auto f = wire::encode_refresh(entries);
  EXPECT_EQ(f.size(), wire::kTlvSize + 2 * wire::kRefreshEntrySize);
  std::string error;
  auto d = wire::decode_session(f, error);
  ASSERT_TRUE(d) << error;
  EXPECT_EQ(d->type, wire::SessionType::Refresh);
  ASSERT_EQ(d->refresh.size(), 2u);
  EXPECT_EQ(d->refresh[0].key, entries[0].key);
  EXPECT_EQ(d->refresh[0].digest, entries[0].digest);
  EXPECT_EQ(d->refresh[1].digest, ~0ull);

  std::vector<wire::RecordKey> keys = {{64, mac_of(1)}, {200, mac_of(9)}};
  auto w = wire::encode_want(keys);
  d = wire::decode_session(w, error);
  ASSERT_TRUE(d) << error;
  EXPECT_EQ(d->type, wire::SessionType::Want);
  EXPECT_EQ(d->want, keys);
}

TEST(DeltaWire, ListsOfTornOrNoEntriesAreRefused) {
  std::string error;
  auto f = wire::encode_refresh(std::vector<wire::RefreshEntry>{{{64, mac_of(1)}, 1}});
  Bytes cut(f.begin(), f.end() - 1);
  cut[3] = static_cast<std::uint8_t>(cut.size() - wire::kTlvSize);  // a consistent header, a torn entry
  EXPECT_FALSE(wire::decode_session(cut, error));
  EXPECT_NE(error.find("refresh"), std::string::npos) << error;
  EXPECT_FALSE(wire::decode_session(wire::encode_refresh({}), error));
  EXPECT_FALSE(wire::decode_session(wire::encode_want({}), error));
  Bytes want = wire::encode_want(std::vector<wire::RecordKey>{{1, mac_of(1)}});
  want.push_back(0);
  want[3] = static_cast<std::uint8_t>(want.size() - wire::kTlvSize);
  EXPECT_FALSE(wire::decode_session(want, error));
}

TEST(DeltaWire, ALongListIsCutToOnePacket) {
  std::vector<wire::RefreshEntry> many(wire::kMaxRefreshEntries + 10);
  auto f = wire::encode_refresh(many);
  EXPECT_LE(f.size(), wire::kMaxPacket);
  std::string error;
  auto d = wire::decode_session(f, error);
  ASSERT_TRUE(d) << error;
  EXPECT_EQ(d->refresh.size(), wire::kMaxRefreshEntries);
}

TEST(DeltaWire, HelloCarriesTheDeltaFlagAndAnOlderHelloHasNone) {
  wire::SessionHello h;
  h.delta = true;
  h.primary = true;
  std::string error;
  auto d = wire::decode_session(wire::encode(h), error);
  ASSERT_TRUE(d) << error;
  EXPECT_TRUE(d->hello.delta);
  EXPECT_TRUE(d->hello.primary);
  h.delta = false;  // as our daemons before delta sync sent it
  d = wire::decode_session(wire::encode(h), error);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->hello.delta);
}

TEST(RecordDigest, TellsVersionsApartAndIsFixed) {
  Record a = rec(1, 64, "hello");
  EXPECT_EQ(record_digest(a), record_digest(rec(1, 64, "hello")));
  EXPECT_NE(record_digest(a), record_digest(rec(1, 64, "hellp")));
  EXPECT_NE(record_digest(a), record_digest(rec(1, 64, "hello", 1)));
  EXPECT_NE(record_digest(a), record_digest(rec(1, 65, "hello")));
  EXPECT_NE(record_digest(a), record_digest(rec(2, 64, "hello")));
  // The same on every build and CPU: both ends of a session compare it.
  EXPECT_EQ(record_digest(rec(1, 64, "")), 0xcc4bf1e97593d916ull) << std::hex << record_digest(rec(1, 64, ""));
}

// ------------------------------------------------------------------ store

TEST(StoreRefresh, KeepsAMatchingRecordAliveAsIfSentAgain) {
  Store s;
  s.apply_remote(rec(5, 64, "x"), mac_of(9), T0);  // synced from primary 9
  std::uint64_t d = s.find(mac_of(5), 64)->digest;
  EXPECT_EQ(d, record_digest(rec(5, 64, "x")));
  // From its source, it is first-hand now.
  EXPECT_EQ(s.refresh(64, mac_of(5), d, mac_of(5), T0 + 500s), Store::Refresh::Kept);
  EXPECT_EQ(s.source_of(mac_of(5), 64), Source::FirstHand);
  EXPECT_FALSE(s.has_sender(mac_of(9)));
  s.expire(T0 + 700s);
  EXPECT_NE(s.find(mac_of(5), 64), nullptr) << "refreshed at +500 s, it lives until +1100 s";
  s.expire(T0 + 1100s);
  EXPECT_EQ(s.find(mac_of(5), 64), nullptr);
}

TEST(StoreRefresh, NamesWhatItCannotKeep) {
  Store s;
  s.apply_remote(rec(5, 64, "x"), mac_of(9), T0);
  s.set_local(rec(0, 65, "mine"), T0);
  EXPECT_EQ(s.refresh(64, mac_of(6), 1, mac_of(9), T0), Store::Refresh::Missing);
  auto local = s.find(mac_of(0), 65);
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(s.refresh(65, mac_of(0), local->digest, mac_of(9), T0), Store::Refresh::Local);
  EXPECT_EQ(s.source_of(mac_of(0), 65), Source::Local);
  // A peer that lies about a digest keeps nothing alive with it.
  EXPECT_EQ(s.refresh(64, mac_of(5), 12345, mac_of(9), T0 + 599s), Store::Refresh::Differs);
  s.expire(T0 + 600s);
  EXPECT_EQ(s.find(mac_of(5), 64), nullptr);
}

TEST(StoreRefresh, ANewSenderNeedsRoomLikeItsPushWould) {
  for (bool room : {true, false}) {
    SCOPED_TRACE(room ? "room for a second sender" : "room for one sender");
    Store::Limits l;
    l.max_bytes = Store::record_cost(1) + (room ? 2 : 1) * Store::sender_cost();
    l.settle = 0s;
    Store s(l);
    ASSERT_TRUE(s.apply_remote(rec(5, 64, "x"), mac_of(9), T0).applied);
    std::uint64_t d = s.find(mac_of(5), 64)->digest;
    // The same sender: no room needed.
    EXPECT_EQ(s.refresh(64, mac_of(5), d, mac_of(9), T0 + 1s), Store::Refresh::Kept);
    // Another sender takes the record over, as its push of the same would,
    // if there is room for its entry; else it stays as it was.
    EXPECT_EQ(s.refresh(64, mac_of(5), d, mac_of(7), T0 + 2s),
              room ? Store::Refresh::Kept : Store::Refresh::Refused);
    EXPECT_EQ(s.has_sender(mac_of(7)), room);
    EXPECT_EQ(s.has_sender(mac_of(9)), !room);
    EXPECT_EQ(s.memory(), Store::record_cost(1) + Store::sender_cost());
    EXPECT_NE(s.find(mac_of(5), 64), nullptr);
  }
}

// ------------------------------------------------------------------ engine

struct EngineRefresh : ::testing::Test {
  test::FakeEffects fx;
  test::FakeTq tq;
  std::unique_ptr<Engine> engine;
  void make(wire::Mode mode) {
    EngineConfig c;
    c.mode = mode;
    c.interfaces = {"mesh0"};
    c.bat_iface = "none";
    std::uint16_t id = 100;
    engine = std::make_unique<Engine>(c, fx, tq, [id]() mutable { return id++; });
    engine->interface_up("mesh0", mac_of(1), test::addr_of(mac_of(1)));
  }
};

TEST_F(EngineRefresh, APrimaryKeepsWhatItHoldsAndWantsTheRest) {
  make(wire::Mode::Primary);
  std::vector<std::uint8_t> a = {'a'};
  wire::PushData p;
  p.records.push_back(wire::RecordView{Mac{}, 65, 0, a});
  ASSERT_TRUE(engine->ipc_set_data(p, T0));  // local: never refreshed from outside
  // Secondary 3's record, pushed to us.
  Bytes push;
  wire::encode_push_header(push, 9, 0);
  wire::append_record(push, mac_of(3), 64, 0, a);
  wire::finish_tlv(push, 0);
  engine->on_packet(route_of(3), push, T0);
  engine->on_packet(route_of(3), wire::encode(wire::TxEnd{9, 1}), T0);
  const Record* held = engine->store().find(mac_of(3), 64);
  ASSERT_NE(held, nullptr);
  const Record* local = engine->store().find(mac_of(1), 65);
  ASSERT_NE(local, nullptr);
  std::vector<wire::RefreshEntry> entries = {
      {{64, mac_of(3)}, held->digest},   // held as it says: kept alive
      {{65, mac_of(1)}, local->digest},  // ours: nothing to do
      {{64, mac_of(4)}, 77},             // not held: wanted
  };
  auto out = engine->on_refresh(route_of(3), entries, T0 + 590s);
  EXPECT_EQ(out.kept, 1u);
  EXPECT_EQ(out.want, (std::vector<wire::RecordKey>{{64, mac_of(4)}}));
  EXPECT_EQ(engine->refreshed_records(), 1u);
  engine->on_sync_tick(T0 + 610s);  // expires what was not refreshed
  EXPECT_NE(engine->store().find(mac_of(3), 64), nullptr);
  EXPECT_EQ(engine->store().source_of(mac_of(3), 64), Source::FirstHand);
}

TEST_F(EngineRefresh, ASecondaryTakesNoRefresh) {
  make(wire::Mode::Secondary);
  std::vector<wire::RefreshEntry> entries = {{{64, mac_of(3)}, 77}};
  auto out = engine->on_refresh(route_of(3), entries, T0);
  EXPECT_EQ(out.kept, 0u);
  EXPECT_TRUE(out.want.empty());
}

// ------------------------------------------------------------------ the sender

struct Recorder : link::SessionEvents {
  std::vector<std::uint16_t> udp;
  std::vector<std::string> lines;
  void open_connection() override {}
  void close_connection(std::string_view) override {}
  void wake() override {}
  void push_by_udp(wire::PushEncoder tx) override { udp.push_back(tx.tx_id()); }
  void push_by_legacy(wire::PushEncoder) override {}
  void request_by_udp(const wire::Request&) override {}
  void request_by_legacy(const wire::Request&) override {}
  void learned(bool) override {}
  void log(std::string_view l) override { lines.emplace_back(l); }
};

// A store's snapshot: records ordered by type, then source, digests filled in.
std::shared_ptr<const Snapshot> snapshot(const std::vector<std::pair<int, std::string>>& records) {
  Store s;
  for (auto& [src, data] : records) s.set_local(rec(src, 64, data), T0);
  return std::make_shared<const Snapshot>(s.snapshot(Source::Local));
}

struct Sent {
  std::vector<std::uint16_t> txends;
  std::vector<std::vector<std::uint8_t>> pushed;  // the sources' last MAC bytes, per transaction
  std::vector<wire::SessionFrame> frames;
};

struct DeltaLinkTest : ::testing::Test {
  Recorder ev;
  TimePoint now = T0;
  link::SessionLimits limits;
  std::unique_ptr<link::SessionLink> link;
  std::uint16_t next_id = 1;

  void up(bool peer_delta = true) {
    link = std::make_unique<link::SessionLink>(ev, limits, 7);
    link->keep_open(now);
    link->connected(now, true);
    auto hello = drain();
    ASSERT_EQ(hello.frames.size(), 1u);
    EXPECT_TRUE(hello.frames[0].hello.delta) << "we offer it";
    wire::SessionHello answer;
    answer.answer = true;
    answer.delta = peer_delta;
    feed(wire::encode(answer));
    ASSERT_EQ(link->state(), link::SessionState::Up);
    EXPECT_EQ(link->delta(), peer_delta);
  }
  void feed(const Bytes& b) {
    std::string error;
    ASSERT_TRUE(link->on_packet(b, now, error)) << error;
  }
  void sync(const std::shared_ptr<const Snapshot>& snap) {
    link->send(wire::PushEncoder::shared(snap, next_id++, false), true, now);
  }
  Sent drain() {
    Sent s;
    Bytes b;
    std::vector<std::uint8_t> current;
    while (link->next_packet(b, now)) {
      if (wire::is_session_type(b[0])) {
        std::string error;
        auto f = wire::decode_session(b, error);
        EXPECT_TRUE(f) << error;
        if (f) s.frames.push_back(*f);
      } else if (b[0] == static_cast<std::uint8_t>(wire::Type::PushData)) {
        auto d = wire::decode(b);
        for (auto& r : std::get<wire::PushData>(d.packet).records) current.push_back(r.source[5]);
      } else if (b[0] == static_cast<std::uint8_t>(wire::Type::StatusTxEnd)) {
        s.txends.push_back(static_cast<std::uint16_t>(b[4] << 8 | b[5]));
        s.pushed.push_back(current);
        current.clear();
      }
    }
    return s;
  }
  void ack_all(const Sent& s) {
    for (auto id : s.txends) feed(wire::encode(wire::SessionAck{id, 1}));
  }
  static std::size_t refreshed(const Sent& s) {
    std::size_t n = 0;
    for (auto& f : s.frames)
      if (f.type == wire::SessionType::Refresh) n += f.refresh.size();
    return n;
  }
};

TEST_F(DeltaLinkTest, AfterAnAcknowledgedFullSyncOnlyChangesGoAndTheRestIsRefreshed) {
  up();
  auto first = snapshot({{2, "a"}, {3, "b"}, {4, "c"}});
  sync(first);
  auto s1 = drain();
  ASSERT_EQ(s1.txends.size(), 1u);
  EXPECT_EQ(s1.pushed[0], (std::vector<std::uint8_t>{2, 3, 4})) << "the first full sync goes whole";
  EXPECT_EQ(refreshed(s1), 0u);
  ack_all(s1);
  EXPECT_TRUE(link->has_baseline());

  sync(first);  // nothing changed
  auto s2 = drain();
  EXPECT_TRUE(s2.txends.empty());
  EXPECT_EQ(refreshed(s2), 3u);

  auto second = snapshot({{2, "a"}, {3, "B"}, {4, "c"}, {5, "new"}});
  sync(second);
  auto s3 = drain();
  ASSERT_EQ(s3.txends.size(), 1u);
  EXPECT_EQ(s3.pushed[0], (std::vector<std::uint8_t>{3, 5}));
  EXPECT_EQ(refreshed(s3), 2u);
  ack_all(s3);
  EXPECT_EQ(link->baseline_size(), 4u);

  // A record we no longer send leaves the baseline (and expires there).
  sync(snapshot({{2, "a"}, {3, "B"}, {5, "new"}}));
  auto s4 = drain();
  EXPECT_TRUE(s4.txends.empty());
  EXPECT_EQ(refreshed(s4), 3u);
  EXPECT_EQ(link->baseline_size(), 3u);
  EXPECT_EQ(link->delta_stats().syncs, 3u);
}

TEST_F(DeltaLinkTest, UntilAFullSyncIsAcknowledgedEveryFullSyncGoesWhole) {
  up();
  auto snap = snapshot({{2, "a"}, {3, "b"}});
  sync(snap);
  drain();  // not acknowledged
  sync(snap);
  auto s = drain();
  ASSERT_EQ(s.txends.size(), 1u);
  EXPECT_EQ(s.pushed[0].size(), 2u);
  EXPECT_FALSE(link->has_baseline());
}

TEST_F(DeltaLinkTest, APeerWithoutDeltaGetsEveryFullSyncWhole) {
  up(/*peer_delta=*/false);
  auto snap = snapshot({{2, "a"}, {3, "b"}});
  for (int i = 0; i < 3; ++i) {
    sync(snap);
    auto s = drain();
    ASSERT_EQ(s.txends.size(), 1u);
    EXPECT_EQ(s.pushed[0].size(), 2u);
    EXPECT_EQ(refreshed(s), 0u);
    ack_all(s);
  }
}

TEST_F(DeltaLinkTest, PromptPushesJoinTheBaselineWhenAcknowledged) {
  up();
  sync(snapshot({{2, "a"}, {3, "b"}}));
  ack_all(drain());
  // A prompt push of 3's new value, acknowledged: the next sync refreshes it.
  link->send(wire::PushEncoder::shared(snapshot({{3, "B"}}), 50, false), false, now);
  ack_all(drain());
  sync(snapshot({{2, "a"}, {3, "B"}}));
  auto s = drain();
  EXPECT_TRUE(s.txends.empty());
  EXPECT_EQ(refreshed(s), 2u);
  // One not acknowledged (the peer's engine refused it) goes again.
  link->send(wire::PushEncoder::shared(snapshot({{2, "A"}}), 51, false), false, now);
  drain();
  sync(snapshot({{2, "A"}, {3, "B"}}));
  auto s2 = drain();
  ASSERT_EQ(s2.txends.size(), 1u);
  EXPECT_EQ(s2.pushed[0], std::vector<std::uint8_t>{2});
}

TEST_F(DeltaLinkTest, AWantGetsItsRecordsFromTheLastFullSync) {
  up();
  auto snap = snapshot({{2, "a"}, {3, "b"}, {4, "c"}});
  sync(snap);
  ack_all(drain());
  sync(snap);
  auto r = drain();
  EXPECT_EQ(refreshed(r), 3u);
  // The peer lost 3 (evicted, or replaced by another primary's copy), and
  // asks for one we never sent.
  feed(wire::encode_want(std::vector<wire::RecordKey>{{64, mac_of(3)}, {64, mac_of(9)}}));
  auto s = drain();
  ASSERT_EQ(s.txends.size(), 1u);
  EXPECT_EQ(s.pushed[0], std::vector<std::uint8_t>{3});
  EXPECT_EQ(link->baseline_size(), 2u) << "3 is no longer taken to be there";
  EXPECT_EQ(link->delta_stats().wanted, 1u);
  // Until that is acknowledged, the next sync sends 3 again.
  sync(snap);
  auto s2 = drain();
  ASSERT_EQ(s2.txends.size(), 1u);
  EXPECT_EQ(s2.pushed[0], std::vector<std::uint8_t>{3});
}

TEST_F(DeltaLinkTest, AWantThatAnswersNoRefreshBreaksTheSession) {
  up();
  std::string error;
  EXPECT_FALSE(link->on_packet(wire::encode_want(std::vector<wire::RecordKey>{{64, mac_of(3)}}), now, error));
  EXPECT_NE(error.find("want"), std::string::npos);
  // One want per refresh frame: a second one is refused too.
  up();
  auto snap = snapshot({{2, "a"}});
  sync(snap);
  ack_all(drain());
  sync(snap);
  drain();
  feed(wire::encode_want(std::vector<wire::RecordKey>{{64, mac_of(2)}}));
  EXPECT_FALSE(link->on_packet(wire::encode_want(std::vector<wire::RecordKey>{{64, mac_of(2)}}), now, error));
  // A refresh comes only from the opener.
  up();
  EXPECT_FALSE(link->on_packet(wire::encode_refresh(std::vector<wire::RefreshEntry>{{{64, mac_of(2)}, 1}}), now, error));
}

// A peer that wanted the whole store in each of its wants (one per refresh
// frame) had it sent again per frame: a store of n records in n/4369 frames
// cost n^2/4369 records sent per period, and as many baseline passes.
TEST_F(DeltaLinkTest, AWantCanNameOnlyWhatTheRefreshesLeftToWant) {
  up();
  const int n = static_cast<int>(wire::kMaxRefreshEntries) + 10;  // two refresh frames
  std::vector<std::pair<int, std::string>> records;
  std::vector<wire::RecordKey> all;
  for (int i = 1; i <= n; ++i) {
    records.push_back({i, "x"});
    all.push_back({64, mac_of(i)});
  }
  auto snap = snapshot(records);
  sync(snap);
  ack_all(drain());
  sync(snap);
  auto r = drain();
  ASSERT_EQ(refreshed(r), static_cast<std::size_t>(n));
  std::vector<wire::RecordKey> first(all.begin(), all.begin() + static_cast<long>(wire::kMaxRefreshEntries));
  std::vector<wire::RecordKey> rest(all.begin() + static_cast<long>(wire::kMaxRefreshEntries), all.end());
  feed(wire::encode_want(first));
  auto s = drain();
  EXPECT_EQ(link->delta_stats().wanted, wire::kMaxRefreshEntries);
  EXPECT_EQ(link->baseline_size(), rest.size());
  // The second want names the first frame's records again: refused.
  std::string error;
  EXPECT_FALSE(link->on_packet(wire::encode_want(first), now, error));
  EXPECT_NE(error.find("past the 10"), std::string::npos) << error;
  // An honest second want (what is left) would have been taken.
  up();
  sync(snap);
  ack_all(drain());
  sync(snap);
  drain();
  feed(wire::encode_want(first));
  feed(wire::encode_want(rest));
  EXPECT_EQ(link->baseline_size(), 0u);
  EXPECT_EQ(link->delta_stats().wanted, static_cast<std::uint64_t>(n));
}

TEST_F(DeltaLinkTest, ANewSessionStartsWithoutABaseline) {
  up();
  auto snap = snapshot({{2, "a"}, {3, "b"}});
  sync(snap);
  ack_all(drain());
  EXPECT_TRUE(link->has_baseline());
  link->closed(link::CloseCause::Closed, "peer restarted", now);
  EXPECT_FALSE(link->has_baseline());
  EXPECT_FALSE(link->delta());
  now += 10s;
  link->on_timer(now);
  ASSERT_EQ(link->state(), link::SessionState::Connecting);
  link->connected(now, true);
  drain();
  wire::SessionHello answer;
  answer.answer = true;
  answer.delta = true;
  feed(wire::encode(answer));
  sync(snap);
  auto s = drain();
  ASSERT_EQ(s.txends.size(), 1u);
  EXPECT_EQ(s.pushed[0].size(), 2u) << "a restarted peer gets everything again";
}

TEST_F(DeltaLinkTest, RefreshesThatWereNotWrittenAreReplacedNotPiledUp) {
  up();
  Store st;
  for (int i = 0; i < 6000; ++i) st.set_local(rec(i + 2, 64, "x"), T0);
  auto snap = std::make_shared<const Snapshot>(st.snapshot(Source::Local));
  sync(snap);
  ack_all(drain());
  // A peer that stops reading: refreshes are queued period after period.
  for (int i = 0; i < 50; ++i) sync(snap);
  auto s = drain();
  EXPECT_EQ(refreshed(s), 6000u) << "only the last delta's refreshes (two frames) are left";
  EXPECT_EQ(s.frames.size(), 2u);
}

// ------------------------------------------------------------------ the acceptor

Bytes opener_hello(bool delta) {
  wire::SessionHello h;
  h.delta = delta;
  return wire::encode(h);
}

TEST(DeltaResponder, AnswersTheDeltaFlagAndTakesRefreshesOnlyThen) {
  link::SessionLimits limits;
  std::string error;
  {
    link::SessionResponder r(limits);
    ASSERT_TRUE(r.on_frame(opener_hello(true), true, T0, error)) << error;
    EXPECT_TRUE(r.delta());
    Bytes out;
    ASSERT_TRUE(r.next_frame(out, T0));
    auto answer = wire::decode_session(out, error);
    ASSERT_TRUE(answer);
    EXPECT_TRUE(answer->hello.delta);
    auto f = wire::encode_refresh(std::vector<wire::RefreshEntry>{{{64, mac_of(2)}, 5}});
    ASSERT_TRUE(r.on_frame(f, false, T0, error)) << error;
    auto entries = r.take_refresh();
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].digest, 5u);
    EXPECT_TRUE(r.take_refresh().empty());
    EXPECT_FALSE(r.on_frame(wire::encode_want(std::vector<wire::RecordKey>{{64, mac_of(2)}}), false, T0, error));
  }
  {
    link::SessionResponder r(limits);
    ASSERT_TRUE(r.on_frame(opener_hello(false), true, T0, error));
    EXPECT_FALSE(r.delta());
    auto f = wire::encode_refresh(std::vector<wire::RefreshEntry>{{{64, mac_of(2)}, 5}});
    EXPECT_FALSE(r.on_frame(f, false, T0, error));
    EXPECT_NE(error.find("without delta"), std::string::npos) << error;
  }
  {
    limits.delta = false;  // a daemon with delta sync off answers without it
    link::SessionResponder r(limits);
    ASSERT_TRUE(r.on_frame(opener_hello(true), true, T0, error));
    EXPECT_FALSE(r.delta());
  }
}

TEST(DeltaResponder, AtMostOneWantWaitsToBeWritten) {
  link::SessionResponder r(link::SessionLimits{});
  std::string error;
  ASSERT_TRUE(r.on_frame(opener_hello(true), true, T0, error));
  Bytes out;
  ASSERT_TRUE(r.next_frame(out, T0));  // the answer
  std::vector<wire::RecordKey> keys(4000, wire::RecordKey{64, mac_of(2)});
  for (int i = 0; i < 100; ++i) r.wanted(keys);  // an opener that never reads
  EXPECT_EQ(r.dropped_wants(), 99u);
  std::size_t frames = 0;
  while (r.next_frame(out, T0)) ++frames;
  EXPECT_EQ(frames, 1u);
  r.wanted({});  // nothing wanted: nothing sent
  EXPECT_FALSE(r.next_frame(out, T0));
}

}  // namespace
}  // namespace alfred
