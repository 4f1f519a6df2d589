// The protocol engine against recorded effects and a virtual clock.
#include "engine/engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>

#include "fake_effects.hpp"

namespace alfred {
namespace {

using namespace std::chrono_literals;
using test::addr_of;
using test::mac_of;
using test::route_of;

const TimePoint T0 = TimePoint{} + 1000s;

std::vector<std::uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

wire::PushData client_push(std::uint8_t type, std::string_view data, Mac source = Mac{},
                           std::uint8_t version = 0) {
  static std::vector<std::vector<std::uint8_t>> keep;  // views must outlive the call
  keep.push_back(bytes(data));
  wire::PushData p;
  p.records.push_back(wire::RecordView{source, type, version, keep.back()});
  return p;
}

std::vector<std::uint8_t> push_packet(std::uint16_t id, std::uint16_t seqno,
                                      std::vector<Record> records) {
  std::vector<std::uint8_t> out;
  wire::encode_push_header(out, id, seqno);
  for (auto& r : records) wire::append_record(out, r.source, r.type, r.version, r.data);
  wire::finish_tlv(out, 0);
  return out;
}

struct EngineFixture : ::testing::Test {
  test::FakeEffects fx;
  test::FakeTq tq;
  std::uint16_t next_id = 100;
  std::unique_ptr<Engine> engine;
  Mac own = mac_of(1);

  void make(wire::Mode mode, std::vector<std::string> ifaces = {"mesh0"}, std::string bat = "none",
            bool cmd = false, TransactionLimits limits = {}, Duration prompt = {}) {
    EngineConfig c;
    c.prompt_sync_delay = prompt;
    c.mode = mode;
    c.interfaces = ifaces;
    c.bat_iface = bat;
    c.update_command = cmd;
    c.limits = limits;
    engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
    for (auto& i : ifaces) engine->interface_up(i, own, addr_of(own));
  }
  void packet(int from, const std::vector<std::uint8_t>& p, TimePoint now = T0) {
    engine->on_packet(route_of(from), p, now);
  }
  void announce(int from, TimePoint now = T0) { packet(from, wire::encode(wire::AnnouncePrimary{}), now); }
  void txend(int from, std::uint16_t id, std::uint16_t count, TimePoint now = T0) {
    packet(from, wire::encode(wire::TxEnd{id, count}), now);
  }
  // The records in the periodic syncs recorded so far, to `to` if given.
  std::vector<Record> synced_records(std::optional<Mac> to = std::nullopt) {
    std::vector<Record> out;
    for (auto& push : fx.pushes) {
      if (push.kind != PushKind::Sync || (to && push.to.mac != *to)) continue;
      for (auto& pk : push.packets) {
        auto d = wire::decode(pk);
        if (auto* p = std::get_if<wire::PushData>(&d.packet))
          for (auto& r : p->records) out.push_back({r.source, r.type, r.version, {r.data.begin(), r.data.end()}});
      }
    }
    return out;
  }
  std::string data_of(const Mac& m, std::uint8_t type) {
    const Record* r = engine->store().find(m, type);
    return r ? std::string(r->data.begin(), r->data.end()) : "<none>";
  }
};

TEST_F(EngineFixture, PrimaryAppliesTransactionOnlyWhenComplete) {
  make(wire::Mode::Primary);
  packet(2, push_packet(7, 0, {{mac_of(2), 64, 0, bytes("a")}}));
  packet(2, push_packet(7, 1, {{mac_of(3), 64, 0, bytes("b")}}));
  EXPECT_EQ(engine->store().size(), 0u);
  txend(2, 7, 2);
  EXPECT_EQ(data_of(mac_of(2), 64), "a");
  EXPECT_EQ(data_of(mac_of(3), 64), "b");
  EXPECT_EQ(engine->store().source_of(mac_of(2), 64), Source::FirstHand);
  EXPECT_EQ(engine->store().source_of(mac_of(3), 64), Source::Synced);
  EXPECT_EQ(engine->transactions().size(), 0u);
  ASSERT_EQ(fx.events.size(), 2u);
}

TEST_F(EngineFixture, TxEndBeforeDataAndDuplicates) {
  make(wire::Mode::Primary);
  txend(2, 9, 2);
  auto p0 = push_packet(9, 0, {{mac_of(2), 64, 0, bytes("x")}});
  packet(2, p0);
  packet(2, p0);  // duplicated frame: still one of two
  EXPECT_EQ(engine->store().size(), 0u);
  packet(2, push_packet(9, 1, {{mac_of(2), 65, 0, bytes("y")}}));
  EXPECT_EQ(engine->store().size(), 2u);
}

TEST_F(EngineFixture, ZeroPacketTxEndForUnknownTransactionIgnored) {
  make(wire::Mode::Primary);
  txend(2, 11, 0);
  EXPECT_EQ(engine->transactions().size(), 0u);
}

TEST_F(EngineFixture, IncompleteTransactionDroppedAfterTimeout) {
  make(wire::Mode::Primary);
  packet(2, push_packet(5, 0, {{mac_of(2), 64, 0, bytes("x")}}));
  txend(2, 5, 2);
  ASSERT_EQ(engine->transactions().size(), 1u);
  ASSERT_EQ(engine->next_deadline(), T0 + 10s);
  engine->on_timer(T0 + 9s);
  EXPECT_EQ(engine->transactions().size(), 1u);
  engine->on_timer(T0 + 10s);
  EXPECT_EQ(engine->transactions().size(), 0u);
  // The missing packet arriving late starts a new, incomplete transaction.
  packet(2, push_packet(5, 1, {{mac_of(2), 65, 0, bytes("y")}}), T0 + 11s);
  EXPECT_EQ(engine->store().size(), 0u);
}

TEST_F(EngineFixture, AForgerCannotHoldADatagramTransactionOpen) {
  // Repeats (the same packet, the same txend) every 9 s keep nothing alive:
  // the transaction goes 10 s after it opened, and the next repeat opens a
  // new one. A new packet every 9 s does keep it, up to the datagram
  // lifetime.
  make(wire::Mode::Primary);
  auto p0 = push_packet(5, 0, {{mac_of(2), 64, 0, bytes("x")}});
  packet(2, p0);
  txend(2, 5, 100);
  packet(2, p0, T0 + 9s);
  txend(2, 5, 100, T0 + 9s);
  EXPECT_EQ(engine->transactions().next_deadline(), T0 + 10s);
  engine->on_timer(T0 + 10s);
  EXPECT_EQ(engine->transactions().size(), 0u);
  // New packets at 9, 18 and 27 s: gone at 30 s, 3 s after the last.
  const TimePoint t = T0 + 100s;
  packet(2, push_packet(6, 0, {{mac_of(2), 64, 0, bytes("x")}}), t);
  for (std::uint16_t i = 1; i <= 3; ++i) {
    auto now = t + std::chrono::seconds(9 * i);
    engine->on_timer(now);
    ASSERT_EQ(engine->transactions().size(), 1u) << i;
    packet(2, push_packet(6, i, {{mac_of(2), 64, 0, bytes("x")}}), now);
  }
  EXPECT_EQ(engine->transactions().next_deadline(), t + 30s);
  engine->on_timer(t + 30s);
  EXPECT_EQ(engine->transactions().size(), 0u);
}

TEST_F(EngineFixture, SecondaryDropsUnsolicitedPush) {
  make(wire::Mode::Secondary);
  packet(2, push_packet(5, 0, {{mac_of(2), 64, 0, bytes("x")}}));
  txend(2, 5, 1);
  EXPECT_EQ(engine->store().size(), 0u);
  EXPECT_EQ(engine->transactions().size(), 0u);
}

TEST_F(EngineFixture, LocalDataNeverOverwrittenFromNetwork) {
  make(wire::Mode::Primary);
  ASSERT_TRUE(engine->ipc_set_data(client_push(64, "mine"), T0));
  packet(2, push_packet(1, 0, {{own, 64, 0, bytes("theirs")}}));
  txend(2, 1, 1);
  EXPECT_EQ(data_of(own, 64), "mine");
  EXPECT_EQ(engine->store().source_of(own, 64), Source::Local);
}

TEST_F(EngineFixture, SetDataSourceRules) {
  make(wire::Mode::Secondary);
  // Zero source: filled with the interface MAC.
  ASSERT_TRUE(engine->ipc_set_data(client_push(64, "a"), T0));
  EXPECT_EQ(data_of(own, 64), "a");
  // A secondary accepts only its own MAC as an explicit source.
  EXPECT_FALSE(engine->ipc_set_data(client_push(64, "b", mac_of(9)), T0));
  EXPECT_TRUE(engine->ipc_set_data(client_push(65, "c", own), T0));
  // A multicast source is not valid and is replaced.
  EXPECT_TRUE(engine->ipc_set_data(client_push(66, "d", Mac{1, 2, 3, 4, 5, 6}), T0));
  EXPECT_EQ(data_of(own, 66), "d");
  // No record at all is refused.
  EXPECT_FALSE(engine->ipc_set_data(wire::PushData{}, T0));
}

TEST_F(EngineFixture, RecordTooLargeForAPacketRefused) {
  make(wire::Mode::Primary);
  EXPECT_FALSE(engine->ipc_set_data(client_push(64, std::string(wire::kMaxRecordData + 1, 'x')), T0));
  EXPECT_TRUE(engine->ipc_set_data(client_push(64, std::string(wire::kMaxRecordData, 'x')), T0));
  engine->on_packet(route_of(9), wire::encode(wire::Request{64, 1}), T0);
  ASSERT_EQ(fx.pushes.size(), 1u);
  EXPECT_EQ(fx.pushes[0].packets.size(), 2u);  // the maximal record and the txend
}

TEST_F(EngineFixture, PrimaryMayHoldDataForOtherSources) {
  make(wire::Mode::Primary);
  EXPECT_TRUE(engine->ipc_set_data(client_push(64, "b", mac_of(9)), T0));
  EXPECT_EQ(data_of(mac_of(9), 64), "b");
}

TEST_F(EngineFixture, InterfacesDisabledNeedPrimaryAndExplicitSource) {
  EngineConfig c;
  c.mode = wire::Mode::Secondary;
  c.interfaces_disabled = true;
  c.bat_iface = "none";
  Engine e(c, fx, tq, [] { return std::uint16_t{1}; });
  EXPECT_FALSE(e.ipc_set_data(client_push(64, "x", mac_of(4)), T0));
  ASSERT_TRUE(e.ipc_modeswitch({1}));
  EXPECT_FALSE(e.ipc_set_data(client_push(64, "x"), T0));
  EXPECT_TRUE(e.ipc_set_data(client_push(64, "x", mac_of(4)), T0));
}

TEST_F(EngineFixture, SetDataWithoutActiveInterfaceRefused) {
  make(wire::Mode::Primary);
  engine->interface_down("mesh0");
  EXPECT_FALSE(engine->ipc_set_data(client_push(64, "a"), T0));
}

TEST_F(EngineFixture, EventsOnlyWhenPayloadChanges) {
  make(wire::Mode::Primary);
  engine->ipc_set_data(client_push(64, "a"), T0);
  engine->ipc_set_data(client_push(64, "a"), T0 + 1s);
  engine->ipc_set_data(client_push(64, "a", {}, 3), T0 + 2s);  // new version only
  engine->ipc_set_data(client_push(64, "b"), T0 + 3s);
  ASSERT_EQ(fx.events.size(), 2u);
  EXPECT_EQ(fx.events[0], std::make_pair(std::uint8_t{64}, own));
}

TEST_F(EngineFixture, SecondaryPushesLocalDataToBestPrimary) {
  make(wire::Mode::Secondary);
  engine->ipc_set_data(client_push(64, "local"), T0);
  // The first primary heard is adopted at once and gets the data then, not
  // at the next tick; a second one changes nothing until the tick.
  announce(2);
  ASSERT_TRUE(engine->best_server());
  EXPECT_EQ(engine->best_server()->mac, mac_of(2));
  ASSERT_EQ(fx.pushes.size(), 1u);
  EXPECT_EQ(fx.pushes[0].to.mac, mac_of(2));
  EXPECT_EQ(fx.pushes[0].kind, PushKind::Prompt);
  EXPECT_EQ(fx.pushes[0].packets.size(), 2u);  // data + txend
  announce(3);
  EXPECT_EQ(fx.pushes.size(), 1u);
  engine->on_sync_tick(T0 + 1s);
  ASSERT_EQ(fx.pushes.size(), 2u);
  ASSERT_TRUE(engine->best_server());
  EXPECT_EQ(fx.pushes[1].to.mac, engine->best_server()->mac);
}

// A client asking right after the first announcement is served by the
// adopted primary, not from the secondary's empty store.
TEST_F(EngineFixture, SecondaryForwardsRequestsAsSoonAsItHearsAPrimary) {
  make(wire::Mode::Secondary);
  announce(2, T0);
  engine->ipc_request(ClientId{7}, wire::Request{64, 9}, T0 + 10ms);
  ASSERT_EQ(fx.requests.size(), 1u);
  EXPECT_EQ(fx.requests[0].first.mac, mac_of(2));
}

// Many announcements, forged or not, adopt one primary and push once.
TEST_F(EngineFixture, SecondaryAdoptsOnlyWithoutAPrimary) {
  make(wire::Mode::Secondary);
  engine->ipc_set_data(client_push(64, "local"), T0);
  for (int s = 2; s < 200; ++s) announce(s, T0 + 1ms);
  EXPECT_EQ(fx.pushes.size(), 1u);
  EXPECT_EQ(engine->best_server()->mac, mac_of(2));
}

// Sessions are formed ahead of their traffic: a secondary's to the primary
// it adopts (and to its best one, every period), even with nothing to push;
// a primary's to each primary it newly hears, within the welcome count.
TEST_F(EngineFixture, SessionsAreKeptToOurPrimaryAndToNewPrimaries) {
  make(wire::Mode::Secondary, {"mesh0"}, "bat0");
  announce(2);
  ASSERT_EQ(fx.kept.size(), 1u);
  EXPECT_EQ(fx.kept[0].mac, mac_of(2));
  EXPECT_TRUE(fx.pushes.empty());  // nothing of its own yet
  for (int s = 3; s < 50; ++s) announce(s, T0 + 1ms);
  EXPECT_EQ(fx.kept.size(), 1u);  // only the adopted one
  tq.values = {{mac_of(2), 10}, {mac_of(3), 200}};
  fx.kept.clear();
  engine->on_sync_tick(T0 + 1s);
  ASSERT_EQ(fx.kept.size(), 1u);
  EXPECT_EQ(fx.kept[0].mac, mac_of(3));  // the best one, said every period
  engine->on_sync_tick(T0 + 2s);
  EXPECT_EQ(fx.kept.size(), 2u);

  fx.kept.clear();
  make(wire::Mode::Primary);  // with an empty store
  for (int s = 2; s < 40; ++s) announce(s, T0 + 1ms);
  EXPECT_EQ(fx.kept.size(), static_cast<std::size_t>(Engine::kWelcomesPerPeriod));
  EXPECT_TRUE(fx.pushes.empty());
  announce(2, T0 + 2ms);  // known: nothing more
  EXPECT_EQ(fx.kept.size(), static_cast<std::size_t>(Engine::kWelcomesPerPeriod));
}

TEST_F(EngineFixture, PrimaryAnnouncesAsSoonAsAnInterfaceIsUp) {
  make(wire::Mode::Primary, {"mesh0", "mesh1"});
  ASSERT_EQ(fx.sent.size(), 2u);
  for (const auto& s : fx.sent) {
    EXPECT_TRUE(s.to.addr.multicast);
    EXPECT_EQ(s.packet, wire::encode(wire::AnnouncePrimary{}));
  }
  EXPECT_EQ(fx.sent[0].to.iface, "mesh0");
  EXPECT_EQ(fx.sent[1].to.iface, "mesh1");
  // A secondary switched to primary announces at once too; not again when
  // it already is one.
  fx.sent.clear();
  make(wire::Mode::Secondary);
  EXPECT_TRUE(fx.sent.empty());
  EXPECT_TRUE(engine->ipc_modeswitch(wire::ModeSwitch{static_cast<std::uint8_t>(wire::Mode::Primary)}));
  EXPECT_EQ(fx.sent.size(), 1u);
  EXPECT_TRUE(engine->ipc_modeswitch(wire::ModeSwitch{static_cast<std::uint8_t>(wire::Mode::Primary)}));
  EXPECT_EQ(fx.sent.size(), 1u);
}

TEST_F(EngineFixture, SecondaryChoosesHighestTq) {
  make(wire::Mode::Secondary, {"mesh0"}, "bat0");
  announce(2);
  announce(3);
  announce(4);
  tq.values = {{mac_of(2), 100}, {mac_of(3), 200}, {mac_of(4), 150}};
  engine->on_sync_tick(T0 + 1s);
  ASSERT_TRUE(engine->best_server());
  EXPECT_EQ(engine->best_server()->mac, mac_of(3));
  EXPECT_GE(tq.calls, 1);
  // A failed query still leaves a primary to talk to.
  tq.ok = false;
  tq.values.clear();
  engine->on_sync_tick(T0 + 2s);
  EXPECT_TRUE(engine->best_server());
}

TEST_F(EngineFixture, SecondarySendsNothingWithoutLocalData) {
  make(wire::Mode::Secondary);
  announce(2);
  engine->on_sync_tick(T0 + 1s);
  EXPECT_TRUE(fx.pushes.empty());
}

TEST_F(EngineFixture, PrimaryAnnouncesAndSyncsFirstHandOnly) {
  make(wire::Mode::Primary);
  engine->ipc_set_data(client_push(64, "local"), T0);
  // First-hand from a secondary 5, synced data about 6 relayed by primary 3.
  packet(5, push_packet(1, 0, {{mac_of(5), 64, 0, bytes("fh")}}));
  txend(5, 1, 1);
  packet(3, push_packet(2, 0, {{mac_of(6), 64, 0, bytes("synced")}}));
  txend(3, 2, 1);
  announce(3);
  // A new primary gets our first-hand data at once, then every period.
  ASSERT_EQ(fx.pushes.size(), 1u);
  EXPECT_EQ(fx.pushes[0].kind, PushKind::Prompt);
  EXPECT_EQ(fx.pushes[0].to.mac, mac_of(3));
  fx.pushes.clear();
  engine->on_sync_tick(T0 + 1s);
  ASSERT_FALSE(fx.sent.empty());
  EXPECT_TRUE(fx.sent[0].to.addr.multicast);
  EXPECT_EQ(fx.sent[0].packet, wire::encode(wire::AnnouncePrimary{}));
  ASSERT_EQ(fx.pushes.size(), 1u);
  EXPECT_EQ(fx.pushes[0].to.mac, mac_of(3));
  auto d = wire::decode(fx.pushes[0].packets[0]);
  auto& p = std::get<wire::PushData>(d.packet);
  std::vector<Mac> sources;
  for (auto& r : p.records) sources.push_back(r.source);
  EXPECT_EQ(sources, (std::vector<Mac>{own, mac_of(5)}));
}

// A secondary that moved to another primary (its first choice, then the best
// at its next tick; or after an outage) leaves its record here as first-hand.
// Synced as ours every period it would overwrite the fresh copy the new
// primary holds, and the new primary, holding only our stale copy (synced),
// would never send the fresh one back: the mesh would hold the old record
// until ours expired. Past the hold it is synced no more, and the fresh copy
// the other primary syncs replaces it.
TEST_F(EngineFixture, APrimaryStopsSyncingARecordItsSecondaryNoLongerSendsIt) {
  make(wire::Mode::Primary);
  announce(3);
  packet(5, push_packet(1, 0, {{mac_of(5), 64, 0, bytes("old")}}));
  txend(5, 1, 1);
  auto synced_sources = [&] {
    std::vector<Mac> sources;
    for (auto& r : synced_records()) sources.push_back(r.source);
    return sources;
  };
  // The secondary keeps pushing for a while, then moves on.
  for (int t = 10; t <= 20; t += 10) {
    packet(5, push_packet(static_cast<std::uint16_t>(t), 0, {{mac_of(5), 64, 0, bytes("old")}}), T0 + 1s * t);
    txend(5, static_cast<std::uint16_t>(t), 1, T0 + 1s * t);
  }
  for (int t = 1; t <= 61; t += 10) {
    announce(3, T0 + 1s * t);
    fx.pushes.clear();
    engine->on_sync_tick(T0 + 1s * t + 500ms);
    if (t <= 41)  // within the default 30 s hold of its last push, at 20 s
      EXPECT_EQ(synced_sources(), (std::vector<Mac>{mac_of(5)})) << "tick at " << t;
    else
      EXPECT_TRUE(synced_sources().empty()) << "tick at " << t;
  }
  EXPECT_EQ(std::count(fx.logs.begin(), fx.logs.end(),
                       "1 first-hand record(s) not refreshed by their source for 30 s: no longer synced as ours"),
            1);
  // The other primary's fresh copy replaces the stale one.
  packet(3, push_packet(70, 0, {{mac_of(5), 64, 0, bytes("new")}}), T0 + 65s);
  txend(3, 70, 1, T0 + 65s);
  EXPECT_EQ(data_of(mac_of(5), 64), "new");
}

// CI at 18e71d9: a secondary that moved to us from primary 3 left it a
// first-hand copy, which 3 syncs us every period. The secondary pushes its
// update to us just after our tick and 3's sync lands just after that, so
// every tick found 3's stale copy here (synced, not ours to sync) and 3 never
// got the update until its copy was demoted, 30 s later. The source's own
// word now holds against synced copies for a while (StoreLimits).
TEST_F(EngineFixture, AStaleCopyFromAnotherPrimaryDoesNotDisplaceTheSourcesOwn) {
  make(wire::Mode::Primary);
  std::uint16_t id = 1;
  for (int period = 0; period < 5; ++period) {
    TimePoint t = T0 + 1s * period;
    announce(3, t);
    packet(5, push_packet(id, 0, {{mac_of(5), 64, 0, bytes("update")}}), t + 838ms);
    txend(5, id, 1, t + 838ms);
    ++id;
    packet(3, push_packet(id, 0, {{mac_of(3), 64, 0, bytes("B's own")}, {mac_of(5), 64, 0, bytes("stale")}}),
           t + 851ms);
    txend(3, id, 1, t + 851ms);
    ++id;
    EXPECT_EQ(data_of(mac_of(5), 64), "update") << "period " << period;
    fx.pushes.clear();
    engine->on_sync_tick(t + 1837ms);
    std::vector<std::string> to_3;
    for (auto& r : synced_records(mac_of(3)))
      if (r.source == mac_of(5)) to_3.emplace_back(r.data.begin(), r.data.end());
    EXPECT_EQ(to_3, (std::vector<std::string>{"update"})) << "tick of period " << period;
  }
  // Once the source has not sent it for the guard (20 s here), the other
  // primary's copy is taken again: ours may be the stale one then.
  packet(3, push_packet(id, 0, {{mac_of(5), 64, 0, bytes("moved on")}}), T0 + 25s);
  txend(3, id, 1, T0 + 25s);
  EXPECT_EQ(data_of(mac_of(5), 64), "moved on");
}

// A restarted primary learns the others only as they announce or re-form
// their sessions; what reached it first-hand meanwhile goes to each as it is
// heard. A flood of new addresses gets a few such pushes a period.
TEST_F(EngineFixture, NewPrimariesGetOurFirstHandDataAtOnceAFewAPeriod) {
  make(wire::Mode::Primary);
  engine->ipc_set_data(client_push(64, "local"), T0);
  for (int s = 2; s < 40; ++s) announce(s, T0 + 1ms);
  EXPECT_EQ(fx.pushes.size(), static_cast<std::size_t>(Engine::kWelcomesPerPeriod));
  for (const auto& p : fx.pushes) EXPECT_EQ(p.kind, PushKind::Prompt);
  fx.pushes.clear();
  announce(2, T0 + 2ms);  // known: nothing more
  EXPECT_TRUE(fx.pushes.empty());
  engine->on_sync_tick(T0 + 1s);
  fx.pushes.clear();
  announce(41, T0 + 1100ms);  // the next period's first newcomer
  ASSERT_EQ(fx.pushes.size(), 1u);
  EXPECT_EQ(fx.pushes[0].to.mac, mac_of(41));
}

TEST_F(EngineFixture, PrimaryForwardsFreshFirstHandChangesPromptly) {
  make(wire::Mode::Primary, {"mesh0"}, "none", false, {}, 100ms);
  announce(3);  // another primary
  engine->ipc_set_data(client_push(64, "old"), T0);
  engine->on_sync_tick(T0 + 1s);  // full sync carries everything so far
  fx.pushes.clear();
  // A secondary's own record arrives, and a relayed one (not first-hand).
  packet(5, push_packet(1, 0, {{mac_of(5), 64, 0, bytes("fresh")}}), T0 + 1200ms);
  txend(5, 1, 1, T0 + 1200ms);
  packet(4, push_packet(2, 0, {{mac_of(6), 64, 0, bytes("relayed")}}), T0 + 1200ms);
  txend(4, 2, 1, T0 + 1200ms);
  ASSERT_EQ(engine->next_deadline(), T0 + 1300ms);
  engine->on_timer(T0 + 1250ms);
  EXPECT_TRUE(fx.pushes.empty());
  engine->on_timer(T0 + 1300ms);
  ASSERT_EQ(fx.pushes.size(), 1u);
  EXPECT_EQ(fx.pushes[0].to.mac, mac_of(3));
  EXPECT_EQ(fx.pushes[0].kind, PushKind::Prompt);
  auto decoded = wire::decode(fx.pushes[0].packets[0]);
  auto& p = std::get<wire::PushData>(decoded.packet);
  ASSERT_EQ(p.records.size(), 1u);  // only the fresh first-hand record
  EXPECT_EQ(p.records[0].source, mac_of(5));
  // Unchanged data does not trigger another one.
  packet(5, push_packet(3, 0, {{mac_of(5), 64, 0, bytes("fresh")}}), T0 + 1400ms);
  txend(5, 3, 1, T0 + 1400ms);
  EXPECT_FALSE(engine->next_deadline());
}

// A secondary's own sets reach its primary within the prompt delay, not a
// period later; a burst of them becomes one transaction of what changed.
TEST_F(EngineFixture, SecondaryPushesItsSetsPromptlyAndCoalesced) {
  make(wire::Mode::Secondary, {"mesh0"}, "none", false, {}, 100ms);
  announce(3);
  EXPECT_TRUE(fx.pushes.empty()) << "nothing to hand over yet";
  for (int k = 0; k < 1000; ++k) {
    std::string value = "v";
    value += std::to_string(k);  // not "v" + ...: gcc 12 -O3's -Wrestrict false positive
    engine->ipc_set_data(client_push(static_cast<std::uint8_t>(64 + k % 4), value),
                         T0 + std::chrono::microseconds(k * 90));
  }
  ASSERT_EQ(engine->next_deadline(), T0 + 100ms);
  engine->on_timer(T0 + 100ms);
  ASSERT_EQ(fx.pushes.size(), 1u);
  EXPECT_EQ(fx.pushes[0].to.mac, mac_of(3));
  EXPECT_EQ(fx.pushes[0].kind, PushKind::Prompt) << "what changed: by TCP where it can";
  auto d = wire::decode(fx.pushes[0].packets[0]);
  auto& p = std::get<wire::PushData>(d.packet);
  ASSERT_EQ(p.records.size(), 4u);  // the four records, latest values
  EXPECT_EQ(std::string(p.records[3].data.begin(), p.records[3].data.end()), "v999");
  // Later sets start a new round; the tick carries all and cancels a pending one.
  engine->ipc_set_data(client_push(64, "again"), T0 + 200ms);
  EXPECT_EQ(engine->next_deadline(), T0 + 300ms);
  engine->on_sync_tick(T0 + 250ms);
  ASSERT_EQ(fx.pushes.size(), 2u);
  EXPECT_EQ(fx.pushes[1].kind, PushKind::Sync);
  EXPECT_FALSE(engine->next_deadline());
  // Data a secondary gets in answers is not pushed back.
  engine->ipc_request(ClientId{1}, wire::Request{70, 5}, T0 + 300ms);
  packet(3, push_packet(5, 0, {{mac_of(3), 70, 0, bytes("theirs")}}), T0 + 310ms);
  txend(3, 5, 1, T0 + 310ms);
  EXPECT_FALSE(engine->next_deadline());
}

TEST_F(EngineFixture, RequestAnsweredFromStoreWithTxEnd) {
  make(wire::Mode::Primary);
  engine->ipc_set_data(client_push(70, "x"), T0);
  packet(9, wire::encode(wire::Request{70, 0x1234}));
  ASSERT_EQ(fx.pushes.size(), 1u);
  EXPECT_EQ(fx.pushes[0].kind, PushKind::Reply);
  ASSERT_EQ(fx.pushes[0].packets.size(), 2u);
  auto end = wire::decode(fx.pushes[0].packets[1]);
  EXPECT_EQ(std::get<wire::TxEnd>(end.packet).tx_id, 0x1234);
  EXPECT_EQ(std::get<wire::TxEnd>(end.packet).seqno, 1);
  // An empty answer still closes the transaction.
  packet(9, wire::encode(wire::Request{71, 0x99}));
  ASSERT_EQ(fx.pushes.size(), 2u);
  ASSERT_EQ(fx.pushes[1].packets.size(), 1u);
  EXPECT_EQ(std::get<wire::TxEnd>(wire::decode(fx.pushes[1].packets[0]).packet).seqno, 0);
}

TEST_F(EngineFixture, ClientRequestOnPrimaryAnsweredLocally) {
  make(wire::Mode::Primary);
  engine->ipc_set_data(client_push(64, "x"), T0);
  engine->ipc_request(77, wire::Request{64, 5}, T0);
  ASSERT_EQ(fx.replies.size(), 1u);
  EXPECT_FALSE(fx.replies[0].error);
  EXPECT_EQ(fx.replies[0].records.size(), 1u);
  EXPECT_TRUE(fx.requests.empty());
}

TEST_F(EngineFixture, SecondaryForwardsRequestAndAnswersWhenComplete) {
  make(wire::Mode::Secondary);
  announce(2);
  engine->on_sync_tick(T0 + 1s);
  engine->ipc_request(42, wire::Request{64, 0x0505}, T0 + 2s);
  ASSERT_EQ(fx.requests.size(), 1u);
  EXPECT_EQ(fx.requests[0].first.mac, mac_of(2));
  EXPECT_TRUE(fx.replies.empty());
  packet(2, push_packet(0x0505, 0, {{mac_of(7), 64, 0, bytes("remote")}}), T0 + 2s);
  txend(2, 0x0505, 1, T0 + 2s);
  ASSERT_EQ(fx.replies.size(), 1u);
  EXPECT_EQ(fx.replies[0].client, 42u);
  ASSERT_EQ(fx.replies[0].records.size(), 1u);
  EXPECT_EQ(fx.replies[0].records[0]->source, mac_of(7));
}

TEST_F(EngineFixture, ForwardedRequestTimesOutWithErrorAtTenSeconds) {
  make(wire::Mode::Secondary);
  announce(2);
  engine->on_sync_tick(T0 + 1s);
  engine->ipc_request(42, wire::Request{64, 3}, T0 + 2s);
  ASSERT_EQ(engine->next_deadline(), T0 + 12s);
  engine->on_timer(T0 + 11s);
  EXPECT_TRUE(fx.replies.empty());
  engine->on_timer(T0 + 12s);
  ASSERT_EQ(fx.replies.size(), 1u);
  EXPECT_TRUE(fx.replies[0].error);
  EXPECT_EQ(fx.replies[0].tx_id, 3);
}

TEST_F(EngineFixture, RequestWithZeroRecordsCompletesOnTxEnd) {
  make(wire::Mode::Secondary);
  announce(2);
  engine->on_sync_tick(T0 + 1s);
  engine->ipc_request(1, wire::Request{99, 8}, T0 + 1s);
  txend(2, 8, 0, T0 + 1s);
  ASSERT_EQ(fx.replies.size(), 1u);
  EXPECT_FALSE(fx.replies[0].error);
}

TEST_F(EngineFixture, ServersForgottenAfterSixtySeconds) {
  make(wire::Mode::Secondary);
  announce(2);
  engine->on_sync_tick(T0 + 1s);
  ASSERT_TRUE(engine->best_server());
  engine->on_sync_tick(T0 + 59s);
  EXPECT_TRUE(engine->best_server());
  engine->on_sync_tick(T0 + 60s);
  EXPECT_FALSE(engine->best_server());
  EXPECT_TRUE(engine->servers().empty());
}

TEST_F(EngineFixture, RecordsExpireAfterSixHundredSecondsAndRunCommand) {
  make(wire::Mode::Primary, {"mesh0"}, "none", true);
  packet(2, push_packet(1, 0, {{mac_of(2), 80, 0, bytes("x")}}));
  txend(2, 1, 1);
  engine->on_sync_tick(T0 + 1s);
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_TRUE(fx.commands[0][80]);
  EXPECT_EQ(fx.commands[0].count(), 1u);
  engine->on_sync_tick(T0 + 599s);
  EXPECT_EQ(engine->store().size(), 1u);
  EXPECT_EQ(fx.commands.size(), 1u);  // nothing changed in between
  engine->on_sync_tick(T0 + 600s);
  EXPECT_EQ(engine->store().size(), 0u);
  ASSERT_EQ(fx.commands.size(), 2u);
  EXPECT_TRUE(fx.commands[1][80]);
}

TEST_F(EngineFixture, ModeSwitchRules) {
  make(wire::Mode::Primary, {"a", "b"});
  EXPECT_FALSE(engine->ipc_modeswitch({0}));  // secondary needs exactly one interface
  EXPECT_EQ(engine->mode(), wire::Mode::Primary);
  EXPECT_FALSE(engine->ipc_modeswitch({7}));
  ASSERT_TRUE(engine->ipc_change_interface("a"));
  EXPECT_TRUE(engine->ipc_modeswitch({0}));
  EXPECT_EQ(engine->mode(), wire::Mode::Secondary);
  EXPECT_TRUE(engine->ipc_modeswitch({1}));
  EXPECT_EQ(engine->mode(), wire::Mode::Primary);
}

TEST_F(EngineFixture, ChangeInterfaceRulesAndStatus) {
  make(wire::Mode::Secondary);
  EXPECT_FALSE(engine->ipc_change_interface("a,b"));
  EXPECT_TRUE(fx.reconfigured.empty());
  ASSERT_TRUE(engine->ipc_modeswitch({1}));
  ASSERT_TRUE(engine->ipc_change_interface("a,b,a"));
  ASSERT_EQ(fx.reconfigured.size(), 1u);
  EXPECT_EQ(fx.reconfigured[0], (std::vector<std::string>{"a", "b"}));
  engine->interface_up("b", own, addr_of(own));
  engine->ipc_change_bat_iface("bat7");
  auto st = engine->status();
  EXPECT_EQ(st.mode, 1);
  ASSERT_EQ(st.interfaces.size(), 2u);
  EXPECT_FALSE(st.interfaces[0].active);
  EXPECT_TRUE(st.interfaces[1].active);
  EXPECT_EQ(st.bat_iface, "bat7");
  ASSERT_TRUE(engine->ipc_change_interface("none"));
  EXPECT_TRUE(engine->status().interfaces.empty());
}

TEST_F(EngineFixture, MalformedPacketsLoggedAndDropped) {
  make(wire::Mode::Primary);
  std::vector<std::uint8_t> junk{0, 0, 0xff, 0xff, 1, 2};
  packet(2, junk, T0);
  packet(2, {}, T0 + 1s);
  packet(2, {42, 0, 0, 0}, T0 + 2s);
  packet(2, wire::encode(wire::ModeSwitch{1}), T0 + 3s);  // unix-only message on the network
  EXPECT_EQ(engine->store().size(), 0u);
  EXPECT_EQ(engine->mode(), wire::Mode::Primary);
  EXPECT_GE(fx.logs.size(), 4u);
}

// Under a flood each kind of drop is logged once a second, with a count.
TEST_F(EngineFixture, DropLogsAreRateLimited) {
  make(wire::Mode::Primary);
  for (int i = 0; i < 1000; ++i) packet(2, {42, 0, 0, 0}, T0 + std::chrono::milliseconds(i));
  EXPECT_EQ(fx.logs.size(), 1u);
  packet(2, {42, 0, 0, 0}, T0 + 1000ms);
  ASSERT_EQ(fx.logs.size(), 2u);
  EXPECT_NE(fx.logs[1].find("999 more like it"), std::string::npos) << fx.logs[1];
}

TEST_F(EngineFixture, TransactionLimitsBoundMemory) {
  TransactionLimits limits;
  limits.max_transactions = 3;
  limits.max_bytes = 4000;
  make(wire::Mode::Primary, {"mesh0"}, "none", false, limits);
  for (std::uint16_t id = 0; id < 10; ++id)
    packet(2, push_packet(id, 0, {{mac_of(2), 64, 0, std::vector<std::uint8_t>(100, 'x')}}));
  EXPECT_EQ(engine->transactions().size(), 3u);
  packet(3, push_packet(1, 0, {{mac_of(3), 64, 0, std::vector<std::uint8_t>(900, 'x')}}));
  EXPECT_LE(engine->transactions().memory(), 4000u);
}

// Finding 2 of the hostile-peer review: one peer's empty pushes under 64 ids
// and every seqno stay within the table's memory bound.
TEST_F(EngineFixture, EmptyPushFloodStaysWithinTheMemoryBound) {
  TransactionLimits limits;
  limits.max_bytes = 2u << 20;
  make(wire::Mode::Primary, {"mesh0"}, "none", false, limits);
  for (std::uint16_t id = 0; id < 64; ++id)
    for (std::uint32_t s = 0; s < 4096; ++s)
      packet(2, push_packet(id, static_cast<std::uint16_t>(s), {}));
  EXPECT_LE(engine->transactions().memory(), 2u << 20);
  // An honest peer still gets its transaction through.
  packet(3, push_packet(9, 0, {{mac_of(3), 64, 0, bytes("honest")}}));
  txend(3, 9, 1);
  EXPECT_EQ(data_of(mac_of(3), 64), "honest");
}

TEST_F(EngineFixture, SecondaryDoesNotAnswerNetworkRequests) {
  make(wire::Mode::Secondary);
  engine->ipc_set_data(client_push(70, "x"), T0);
  packet(9, wire::encode(wire::Request{70, 0x1234}));
  EXPECT_TRUE(fx.pushes.empty());
}

TEST_F(EngineFixture, RequestsAreRateLimitedPerSourceAndInTotal) {
  EngineConfig c;
  c.mode = wire::Mode::Primary;
  c.interfaces = {"mesh0"};
  c.bat_iface = "none";
  c.requests.burst = 3;
  c.requests.refill = std::chrono::milliseconds(1000);
  c.requests.replies_per_second = 5;
  engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
  engine->interface_up("mesh0", own, addr_of(own));
  engine->ipc_set_data(client_push(70, "x"), T0);
  for (int i = 0; i < 10; ++i) packet(9, wire::encode(wire::Request{70, 1}), T0);
  EXPECT_EQ(fx.pushes.size(), 3u) << "burst of 3 from one source";
  packet(9, wire::encode(wire::Request{70, 1}), T0 + 1000ms);
  EXPECT_EQ(fx.pushes.size(), 4u) << "one token back after the refill time";
  // Many sources within that second: the global budget of 5 holds.
  for (int src = 10; src < 30; ++src) packet(src, wire::encode(wire::Request{70, 1}), T0 + 1500ms);
  EXPECT_EQ(fx.pushes.size(), 8u);
  // The next second has a new budget.
  for (int src = 10; src < 30; ++src) packet(src, wire::encode(wire::Request{70, 1}), T0 + 2000ms);
  EXPECT_EQ(fx.pushes.size(), 13u);
  EXPECT_GT(engine->request_budget().refused(), 0u);
}

TEST_F(EngineFixture, PrimaryTableIsBoundedAndKeepsActivePrimaries) {
  EngineConfig c;
  c.mode = wire::Mode::Primary;
  c.interfaces = {"mesh0"};
  c.bat_iface = "none";
  c.max_servers_per_interface = 4;
  engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
  engine->interface_up("mesh0", own, addr_of(own));
  for (int s = 2; s < 6; ++s) announce(s, T0);
  ASSERT_EQ(engine->servers().size(), 4u);
  // A flood of new addresses does not displace primaries heard recently.
  for (int s = 10; s < 200; ++s) announce(s, T0 + 1s);
  EXPECT_EQ(engine->servers().size(), 4u);
  for (const auto& r : engine->servers()) EXPECT_LT(r.mac[5], 6);
  // One that went quiet for long gives way to a new one.
  for (int s = 2; s < 5; ++s) announce(s, T0 + 30s);
  announce(50, T0 + 30s);
  ASSERT_EQ(engine->servers().size(), 4u);
  bool has50 = false, has5 = false;
  for (const auto& r : engine->servers()) {
    has50 |= r.mac == mac_of(50);
    has5 |= r.mac == mac_of(5);
  }
  EXPECT_TRUE(has50);
  EXPECT_FALSE(has5);
}


// Forged addresses that keep announcing fill the table; a primary batman-adv
// knows is in the mesh still gets in, in place of an unknown one, once the
// table was found full and batman-adv was asked (at the next tick).
TEST_F(EngineFixture, RealPrimariesGetPastForgedOnesInAFullTable) {
  EngineConfig c;
  c.mode = wire::Mode::Secondary;
  c.interfaces = {"mesh0"};
  c.bat_iface = "bat0";
  c.max_servers_per_interface = 4;
  engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
  engine->interface_up("mesh0", own, addr_of(own));
  tq.mesh = {mac_of(60), mac_of(61), mac_of(62)};
  tq.values = {{mac_of(60), 200}, {mac_of(61), 150}};
  auto has = [&](int n) {
    for (const auto& r : engine->servers())
      if (r.mac == mac_of(n)) return true;
    return false;
  };
  for (int s = 10; s < 14; ++s) announce(s, T0);
  // Not asked while the table has room.
  engine->on_sync_tick(T0 + 1s);
  EXPECT_EQ(tq.mesh_calls, 0);
  for (int round = 0; round < 3; ++round)
    for (int s = 10; s < 14; ++s) announce(s, T0 + std::chrono::seconds(2 + round));
  announce(60, T0 + 5s);
  EXPECT_FALSE(has(60)) << "nothing known about it yet";
  engine->on_sync_tick(T0 + 10s);
  EXPECT_EQ(tq.mesh_calls, 1);
  for (int s = 10; s < 14; ++s) announce(s, T0 + 11s);
  announce(60, T0 + 12s);
  announce(61, T0 + 12s);
  EXPECT_TRUE(has(60));
  EXPECT_TRUE(has(61));
  EXPECT_EQ(engine->servers().size(), 4u);
  EXPECT_FALSE(has(10));
  EXPECT_FALSE(has(11));
  // Forged ones cannot push the real ones out again, and the secondary
  // picks the best real one.
  for (int s = 100; s < 200; ++s) announce(s, T0 + 13s);
  EXPECT_TRUE(has(60));
  EXPECT_TRUE(has(61));
  engine->on_sync_tick(T0 + 20s);
  ASSERT_TRUE(engine->best_server());
  EXPECT_EQ(engine->best_server()->mac, mac_of(60));
  // The table no longer full of newcomers: batman-adv is not asked again.
  engine->on_sync_tick(T0 + 30s);
  EXPECT_EQ(tq.mesh_calls, 2);
  engine->on_sync_tick(T0 + 40s);
  EXPECT_EQ(tq.mesh_calls, 2);
}

// The transport at its outbound cap (forged primaries that take the
// sessions we open) asks what batman-adv knows, so that a real primary can
// take a forged one's connection: the engine learns it at the next tick,
// and forgets it at a tick with no such call since the last.
TEST_F(EngineFixture, CrowdedTransportLearnsTheMeshAtTheNextTick) {
  EngineConfig c;
  c.mode = wire::Mode::Primary;
  c.interfaces = {"mesh0"};
  c.bat_iface = "bat0";
  engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
  engine->interface_up("mesh0", own, addr_of(own));
  tq.mesh = {mac_of(60)};
  announce(60, T0);
  announce(10, T0);
  engine->on_sync_tick(T0 + 1s);
  EXPECT_EQ(tq.mesh_calls, 0) << "nothing crowded: batman-adv not asked";
  EXPECT_FALSE(engine->in_mesh(mac_of(60)));
  engine->crowded();
  EXPECT_FALSE(engine->in_mesh(mac_of(60))) << "learnt at the tick, not at once";
  engine->on_sync_tick(T0 + 11s);
  EXPECT_EQ(tq.mesh_calls, 1);
  EXPECT_TRUE(engine->in_mesh(mac_of(60)));
  EXPECT_FALSE(engine->in_mesh(mac_of(10)));
  engine->crowded();
  engine->on_sync_tick(T0 + 21s);
  EXPECT_EQ(tq.mesh_calls, 2);
  EXPECT_TRUE(engine->in_mesh(mac_of(60)));
  engine->on_sync_tick(T0 + 31s);
  EXPECT_FALSE(engine->in_mesh(mac_of(60))) << "no longer crowded: the list is dropped";
}

// With a sync budget too small for every primary, those in the mesh are
// synced every period; the others take turns, least recently synced first.
TEST_F(EngineFixture, SyncBudgetServesMeshPrimariesFirstThenTheLeastRecentlySynced) {
  EngineConfig c;
  c.mode = wire::Mode::Primary;
  c.interfaces = {"mesh0"};
  c.bat_iface = "bat0";
  c.max_servers_per_interface = 8;
  engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
  engine->interface_up("mesh0", own, addr_of(own));
  engine->ipc_set_data(client_push(64, std::string(1000, 'x')), T0);
  std::size_t size = wire::PushEncoder::encoded_size(engine->store().snapshot(Source::FirstHand),
                                                     false, wire::kMaxPacket);
  c.sync_budget_bytes = 4 * size;
  engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
  engine->interface_up("mesh0", own, addr_of(own));
  engine->ipc_set_data(client_push(64, std::string(1000, 'x')), T0);
  tq.mesh = {mac_of(20), mac_of(21)};
  for (int s = 2; s < 10; ++s) announce(s, T0);  // full: 8 unknown primaries
  // Full: 2, silent for 30 s, gives way to 20; the table was seen full.
  announce(20, T0 + 30s);
  std::map<Mac, int> synced;
  for (int tick = 0; tick < 7; ++tick) {
    TimePoint t = T0 + std::chrono::seconds(30 + tick);
    for (int s = 3; s < 10; ++s) announce(s, t);
    announce(20, t);
    announce(21, t);
    fx.pushes.clear();
    engine->on_sync_tick(t);
    if (tick == 0) continue;  // learnt the mesh addresses at this tick
    EXPECT_EQ(fx.pushes.size(), 4u);
    std::set<Mac> got;
    for (const auto& p : fx.pushes) {
      got.insert(p.to.mac);
      ++synced[p.to.mac];
    }
    EXPECT_TRUE(got.count(mac_of(20)) && got.count(mac_of(21))) << "tick " << tick;
  }
  // The six unknown ones left share two places a period: each got 2 of 6.
  for (int s = 4; s < 10; ++s) EXPECT_EQ(synced[mac_of(s)], 2) << s;
}

// The review's two ways to starve honest primaries under a sync budget: new
// forged addresses every period (they used to go first), and prompt syncs
// (they used to stamp everyone alike, freezing the order).
TEST_F(EngineFixture, SyncBudgetCannotBeJumpedByNewAddressesOrFrozenByPromptSyncs) {
  EngineConfig c;
  c.mode = wire::Mode::Primary;
  c.interfaces = {"mesh0"};
  c.bat_iface = "none";
  c.prompt_sync_delay = 100ms;
  auto build = [&](std::size_t budget_syncs_x2) {
    engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
    engine->interface_up("mesh0", own, addr_of(own));
    engine->ipc_set_data(client_push(64, std::string(1000, 'x')), T0);
    std::size_t size = wire::PushEncoder::encoded_size(engine->store().snapshot(Source::FirstHand),
                                                       false, wire::kMaxPacket);
    c.sync_budget_bytes = budget_syncs_x2 * size / 2;
    engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
    engine->interface_up("mesh0", own, addr_of(own));
    engine->ipc_set_data(client_push(64, std::string(1000, 'x')), T0);
  };
  // (a) a budget of 2 syncs, 4 honest primaries, 2 new forged ones a period:
  // without batman-adv all wait their turn in one queue, the new ones at its
  // end; with it, the budget falling short makes the engine ask which
  // primaries are in the mesh, and those go first.
  std::map<Mac, int> full;
  auto flood = [&] {
    full.clear();
    for (int tick = 0; tick < 30; ++tick) {
      TimePoint t = T0 + std::chrono::seconds(10 * tick);
      for (int s = 2; s < 6; ++s) announce(s, t);
      announce(1000 + 2 * tick, t);
      announce(1001 + 2 * tick, t);
      fx.pushes.clear();
      engine->on_sync_tick(t + 1s);
      for (const auto& p : fx.pushes) ++full[p.to.mac];
    }
  };
  build(4);
  flood();
  for (int s = 2; s < 6; ++s) EXPECT_GE(full[mac_of(s)], 4) << s;
  c.bat_iface = "bat0";
  tq.mesh = {mac_of(2), mac_of(3), mac_of(4), mac_of(5)};
  build(4);
  flood();
  for (int s = 2; s < 6; ++s) EXPECT_GE(full[mac_of(s)], 14) << s;
  c.bat_iface = "none";
  // (b) a budget of 2.5 syncs, 6 primaries, a first-hand change each period.
  build(5);
  full.clear();
  for (int s = 2; s < 8; ++s) announce(s, T0);
  for (int tick = 0; tick < 30; ++tick) {
    TimePoint t = T0 + std::chrono::seconds(10 * tick);
    for (int s = 2; s < 8; ++s) announce(s, t);
    fx.pushes.clear();
    engine->on_sync_tick(t + 1s);
    for (const auto& p : fx.pushes) ++full[p.to.mac];
    std::string v = "change ";
    v += std::to_string(tick);
    engine->ipc_set_data(client_push(65, v), t + 2s);
    engine->on_timer(t + 2s + 100ms);
  }
  for (int s = 2; s < 8; ++s) EXPECT_GE(full[mac_of(s)], 8) << s;
}

// Announcements are unauthenticated: when the known primaries would take more
// than the period's sync budget, they take turns, and every one is reached
// within a few periods.
TEST_F(EngineFixture, SyncBudgetRotatesThroughThePrimaries) {
  EngineConfig c;
  c.mode = wire::Mode::Primary;
  c.interfaces = {"mesh0"};
  c.bat_iface = "none";
  engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
  engine->interface_up("mesh0", own, addr_of(own));
  engine->ipc_set_data(client_push(64, std::string(1000, 'x')), T0);
  std::size_t size = wire::PushEncoder::encoded_size(engine->store().snapshot(Source::FirstHand),
                                                     false, wire::kMaxPacket);
  c.sync_budget_bytes = 3 * size;
  engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
  engine->interface_up("mesh0", own, addr_of(own));
  engine->ipc_set_data(client_push(64, std::string(1000, 'x')), T0);
  for (int s = 2; s < 12; ++s) announce(s, T0);
  std::map<Mac, int> synced;
  for (int tick = 0; tick < 4; ++tick) {
    fx.pushes.clear();
    engine->on_sync_tick(T0 + std::chrono::seconds(tick + 1));
    EXPECT_EQ(fx.pushes.size(), 3u);
    for (const auto& p : fx.pushes) ++synced[p.to.mac];
  }
  EXPECT_EQ(synced.size(), 10u) << "all 10 primaries within 4 periods";
  // Under the budget every primary gets every sync, as before.
  c.sync_budget_bytes = 100 * size;
  engine = std::make_unique<Engine>(c, fx, tq, [this] { return next_id++; });
  engine->interface_up("mesh0", own, addr_of(own));
  engine->ipc_set_data(client_push(64, std::string(1000, 'x')), T0);
  for (int s = 2; s < 12; ++s) announce(s, T0);
  fx.pushes.clear();
  engine->on_sync_tick(T0 + 1s);
  EXPECT_EQ(fx.pushes.size(), 10u);
}


// What a flood of requests from many sources leaves in the budget goes once
// the buckets have refilled (the datagram fuzzer's heap mode found 46 KB of
// buckets kept after everything else had expired).
TEST(RequestBudgetExpiry, IdleSourcesAreForgottenOnceTheirBucketsRefilled) {
  RequestBudget b;
  for (int s = 0; s < 50; ++s) b.admit("mesh0", mac_of(s), 0, false, T0);
  EXPECT_EQ(b.sources(), 50u);
  b.expire(T0 + 1s);
  EXPECT_EQ(b.sources(), 50u) << "not yet refilled: still limiting";
  b.admit("mesh0", mac_of(1), 0, false, T0 + 1s);
  b.expire(T0 + 2s);
  EXPECT_EQ(b.sources(), 1u) << "only the one used at 1 s is left";
  b.expire(T0 + 4s);
  EXPECT_EQ(b.sources(), 0u);
  // A source that spent its burst is still limited until it refilled.
  for (int k = 0; k < 40; ++k) b.admit("mesh0", mac_of(7), 0, true, T0 + 10s);
  b.expire(T0 + 10s + 100ms);
  EXPECT_EQ(b.admit("mesh0", mac_of(7), 0, true, T0 + 10s + 100ms), RequestBudget::Verdict::Answer);
  EXPECT_EQ(b.admit("mesh0", mac_of(7), 0, true, T0 + 10s + 100ms),
            RequestBudget::Verdict::Answer);
  EXPECT_EQ(b.admit("mesh0", mac_of(7), 0, true, T0 + 10s + 100ms),
            RequestBudget::Verdict::SourceLimited);
}

// A flood of requests from spoofed addresses leaves a bucket only for those
// it answered: the datagram fuzzer's heap mode found 825 sources (7-byte
// requests, each leaving a ~170-byte bucket though refused by the window).
TEST(RequestBudgetExpiry, RefusedSourcesLeaveNoBucket) {
  RequestBudget b;
  const std::size_t per_second = RequestBudgetLimits{}.replies_per_second;
  std::size_t answered = 0;
  for (int s = 0; s < 2000; ++s)
    answered += b.admit("mesh0", mac_of(s), 0, false, T0) == RequestBudget::Verdict::Answer;
  EXPECT_EQ(answered, per_second);
  EXPECT_EQ(b.sources(), per_second);
  // Known sources have a window of their own, and the same rule.
  for (int s = 2000; s < 4000; ++s) b.admit("mesh0", mac_of(s), 0, true, T0);
  EXPECT_EQ(b.sources(), 2 * per_second);
  // A flood that goes on is held to the windows' rate, and what it was
  // answered goes 1.6 s after its last request.
  for (int sec = 1; sec <= 20; ++sec)
    for (int s = 0; s < 500; ++s)
      b.admit("mesh0", mac_of(10000 + sec * 500 + s), 0, false, T0 + std::chrono::seconds(sec));
  EXPECT_LE(b.sources(), 2 * per_second);
  // A source once answered and then limited keeps its bucket (it is still
  // limiting it).
  for (int k = 0; k < 40; ++k) b.admit("mesh0", mac_of(1), 0, true, T0 + 30s);
  EXPECT_EQ(b.admit("mesh0", mac_of(1), 0, true, T0 + 30s), RequestBudget::Verdict::SourceLimited);
}

// Strangers spending the reply budget do not shut out nodes whose data we
// hold (our secondaries, other primaries).
TEST_F(EngineFixture, KnownSourcesKeepABudgetOfTheirOwn) {
  make(wire::Mode::Primary);
  engine->ipc_set_data(client_push(70, "x"), T0);
  packet(5, push_packet(1, 0, {{mac_of(5), 64, 0, bytes("mine")}}), T0);
  txend(5, 1, 1, T0);
  ASSERT_EQ(data_of(mac_of(5), 64), "mine");
  for (int src = 100; src < 400; ++src) packet(src, wire::encode(wire::Request{70, 1}), T0 + 10ms);
  std::size_t strangers = fx.pushes.size();
  EXPECT_EQ(strangers, RequestBudgetLimits{}.replies_per_second);
  packet(5, wire::encode(wire::Request{70, 2}), T0 + 20ms);
  EXPECT_EQ(fx.pushes.size(), strangers + 1);
}


// Answers held by slow readers keep their snapshots alive; what they hold
// together is capped and counted down when the transport lets them go.
TEST(EngineAnswers, MemoryOfAnswersInFlightIsCapped) {
  struct Holding : test::FakeEffects {
    std::vector<wire::PushEncoder> held;
    void send_push(const Route&, wire::PushEncoder tx, PushKind) override {
      held.push_back(std::move(tx));
    }
  } fx;
  test::FakeTq tq;
  EngineConfig c;
  c.mode = wire::Mode::Primary;
  c.interfaces = {"mesh0"};
  c.bat_iface = "none";
  c.max_answer_bytes = 10000;
  Engine engine(c, fx, tq, [] { return std::uint16_t(1); });
  Mac own = mac_of(1);
  engine.interface_up("mesh0", own, addr_of(own));
  engine.ipc_set_data(client_push(70, std::string(3000, 'x')), T0);
  for (int src = 10; src < 20; ++src)
    engine.on_packet(route_of(src), wire::encode(wire::Request{70, 1}), T0);
  EXPECT_EQ(fx.held.size(), 3u) << "three answers of ~3 KB fit 10 KB";
  EXPECT_GT(engine.answers_in_flight_bytes(), 9000u);
  fx.held.clear();
  EXPECT_EQ(engine.answers_in_flight_bytes(), 0u);
  engine.on_packet(route_of(30), wire::encode(wire::Request{70, 1}), T0);
  EXPECT_EQ(fx.held.size(), 1u);
}

}  // namespace
}  // namespace alfred

namespace alfred {
namespace {

// When a better primary appears, the secondary's data goes to it at the
// tick that chooses it, not a period later.
TEST_F(EngineFixture, BestPrimaryChangeSendsLocalDataToTheNewOneAtOnce) {
  make(wire::Mode::Secondary, {"mesh0"}, "bat0");
  engine->ipc_set_data(client_push(64, "local"), T0);
  tq.values = {{mac_of(2), 200}, {mac_of(3), 100}};
  announce(2);
  announce(3);
  engine->on_sync_tick(T0 + 1s);
  ASSERT_EQ(engine->best_server()->mac, mac_of(2));
  std::size_t before = fx.pushes.size();
  tq.values = {{mac_of(2), 50}, {mac_of(3), 250}};
  announce(2, T0 + 2s);
  announce(3, T0 + 2s);
  engine->on_sync_tick(T0 + 2s);
  ASSERT_EQ(engine->best_server()->mac, mac_of(3));
  ASSERT_EQ(fx.pushes.size(), before + 1);
  EXPECT_EQ(fx.pushes.back().to.mac, mac_of(3));
  EXPECT_EQ(fx.pushes.back().packets.size(), 2u);  // the record + txend
}

// A session that breaks mid-transaction leaves no half-applied transaction:
// nothing of it is applied until it is whole, and the sender's resend on the
// next session (same id, from its first packet) applies it exactly once.
TEST_F(EngineFixture, ASessionThatDiesMidTransactionAppliesNothingUntilTheResend) {
  make(wire::Mode::Primary);
  Route first = route_of(2);
  first.stream = 5;
  auto p0 = push_packet(21, 0, {{mac_of(2), 64, 0, bytes("a")}});
  auto p1 = push_packet(21, 1, {{mac_of(2), 65, 0, bytes("b")}});
  engine->on_packet(first, p0, T0);
  // ... the connection breaks here: no second packet, no txend.
  EXPECT_EQ(engine->store().size(), 0u);
  EXPECT_TRUE(engine->transactions().contains({mac_of(2), 21}));
  Route second = route_of(2);
  second.stream = 6;
  engine->on_packet(second, p0, T0 + 300ms);
  engine->on_packet(second, p1, T0 + 300ms);
  EXPECT_EQ(engine->store().size(), 0u);
  engine->on_packet(second, wire::encode(wire::TxEnd{21, 2}), T0 + 300ms);
  EXPECT_EQ(data_of(mac_of(2), 64), "a");
  EXPECT_EQ(data_of(mac_of(2), 65), "b");
  EXPECT_FALSE(engine->transactions().contains({mac_of(2), 21}));
  EXPECT_EQ(fx.events.size(), 2u);  // each record changed once
}

}  // namespace
}  // namespace alfred

namespace alfred {
namespace {

// Only a transaction the engine applied is reported complete (what a session
// acknowledges), never one it refused.
TEST_F(EngineFixture, JustCompletedOnlyForAppliedTransactions) {
  TransactionLimits small;
  small.max_per_peer = 1;
  make(wire::Mode::Primary, {"mesh0"}, "none", false, small);
  packet(2, push_packet(1, 0, {{mac_of(2), 64, 0, bytes("a")}}));  // 1 stays open
  packet(2, push_packet(2, 0, {{mac_of(2), 65, 0, bytes("b")}}));  // refused: limit
  txend(2, 2, 1);
  EXPECT_FALSE(engine->just_completed(mac_of(2), 2));
  EXPECT_EQ(data_of(mac_of(2), 65), "<none>");
  txend(2, 1, 1);
  EXPECT_TRUE(engine->just_completed(mac_of(2), 1));
  EXPECT_EQ(data_of(mac_of(2), 64), "a");
  announce(3);
  EXPECT_FALSE(engine->just_completed(mac_of(2), 1));
}

// A session's sender copies a late small transaction by UDP (same id): the
// txend of whichever copy comes second still counts as completed, so the
// session acknowledges it, and opens no transaction waiting for packets
// already applied. Only for a few seconds: then a txend alone is as before.
TEST_F(EngineFixture, TheSecondCopysTxendConfirmsWithoutOpeningATransaction) {
  make(wire::Mode::Primary);
  packet(2, push_packet(7, 0, {{mac_of(2), 64, 0, bytes("a")}}));  // the session's data
  packet(2, push_packet(7, 0, {{mac_of(2), 64, 0, bytes("a")}}));  // the copy's: a duplicate
  txend(2, 7, 1);                                                  // the copy's txend
  EXPECT_TRUE(engine->just_completed(mac_of(2), 7));
  EXPECT_EQ(data_of(mac_of(2), 64), "a");
  announce(3);
  txend(2, 7, 1, T0 + 1s);  // the session's txend, retransmitted
  EXPECT_TRUE(engine->just_completed(mac_of(2), 7));
  EXPECT_FALSE(engine->transactions().contains({mac_of(2), 7}));
  txend(2, 8, 1, T0 + 1s);  // never completed: as before, it waits for its data
  EXPECT_FALSE(engine->just_completed(mac_of(2), 8));
  EXPECT_TRUE(engine->transactions().contains({mac_of(2), 8}));
  txend(2, 7, 2, T0 + 1s);  // not the transaction that completed (it had 1 packet)
  EXPECT_FALSE(engine->just_completed(mac_of(2), 7));
  txend(2, 7, 1, T0 + RecentCompletions::kWindow + 1s);
  EXPECT_FALSE(engine->just_completed(mac_of(2), 7));
}

// The late copy of a transaction comes after a newer one that the session
// delivered meanwhile: it is not applied again (that would put the older
// value back). A new transaction that reuses the id is.
TEST_F(EngineFixture, ALateCopyDoesNotPutAnOlderValueBack) {
  make(wire::Mode::Primary);
  auto first = push_packet(7, 0, {{mac_of(2), 64, 0, bytes("old")}});
  packet(2, first);
  txend(2, 7, 1);
  packet(2, push_packet(9, 0, {{mac_of(2), 64, 0, bytes("new")}}), T0 + 100ms);
  txend(2, 9, 1, T0 + 100ms);
  ASSERT_EQ(data_of(mac_of(2), 64), "new");
  fx.events.clear();
  packet(2, first, T0 + 300ms);  // the copy of 7
  EXPECT_FALSE(engine->transactions().contains({mac_of(2), 7}));
  txend(2, 7, 1, T0 + 300ms);
  EXPECT_TRUE(engine->just_completed(mac_of(2), 7));  // confirmed, not applied
  EXPECT_EQ(data_of(mac_of(2), 64), "new");
  EXPECT_TRUE(fx.events.empty());
  packet(2, push_packet(7, 0, {{mac_of(2), 64, 0, bytes("newer")}}), T0 + 400ms);
  txend(2, 7, 1, T0 + 400ms);
  EXPECT_EQ(data_of(mac_of(2), 64), "newer");
}

TEST(RecentCompletions, HoldsAFixedNumberOfEntriesForAFewSeconds) {
  RecentCompletions r;
  TimePoint t{};
  for (std::size_t i = 0; i < 3 * RecentCompletions::kCapacity; ++i)
    r.add({mac_of(static_cast<int>(i % 200)), static_cast<std::uint16_t>(i)}, {t, 1, 0});
  EXPECT_EQ(r.size(), RecentCompletions::kCapacity);
  EXPECT_FALSE(r.find({mac_of(0), 0}, t));  // the oldest went first
  std::size_t last = 3 * RecentCompletions::kCapacity - 1;
  EXPECT_TRUE(r.find({mac_of(static_cast<int>(last % 200)), static_cast<std::uint16_t>(last)}, t));
  r.add({mac_of(1), 1}, {t + 2s, 1, 0});
  r.forget(t + RecentCompletions::kWindow);
  EXPECT_EQ(r.size(), 1u);
  EXPECT_TRUE(r.find({mac_of(1), 1}, t + RecentCompletions::kWindow));
}

}  // namespace
}  // namespace alfred
