// A whole mesh of daemons' cores in one process on a virtual clock
// (mesh_sim.hpp): engines, the real link::SessionLink and SessionResponder
// wired as the daemon's TCP transport wires them, over the simulated network
// of sim_tcp.hpp (frame loss per IPv6 fragment and per TCP segment, TCP's
// connect and retransmission timing, partitions, resets, restarts). Issue 8's
// rules are checked here in virtual time: coalescing, resend after a broken
// session, a session dying mid-transaction, best-primary changes, and the
// 3 + 30 mesh at 5 % and 10 % loss.
// The distributions are printed and recorded as test properties.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "mesh_sim.hpp"
#include "mesh_sim_helpers.hpp"

namespace alfred::sim {
namespace {

using namespace std::chrono_literals;

// ------------------------------------------------------------------ UDP, as upstream

TEST(MeshSim, ThreePrimariesThirtySecondariesConvergeWithinThreePeriods) {
  Sim sim({.loss = 0.0, .period = 1s, .seed = 1});
  NodeOptions udp;
  udp.tcp = false;
  udp.prompt = Duration::zero();  // period-bound, as upstream
  auto m = build(sim, 3, 30, udp);
  sim.run_for(2s);  // announcements heard, primaries chosen
  std::vector<std::uint8_t> payload(200, 'x');
  for (auto* n : m.all()) ASSERT_TRUE(n->set(one_record(64, payload)));
  sim.run_for(3s);
  for (auto* p : m.primaries) EXPECT_EQ(records_of(*p, 64), 33u) << "primary " << p->id();
  // A secondary's client sees everything through its primary.
  SimNode& s = *m.secondaries[7];
  s.request(5, wire::Request{64, 4242});
  sim.run_for(1s);
  ASSERT_TRUE(s.answers.count(5));
  EXPECT_EQ(s.answers[5].size(), 33u);
  for (auto* n : m.all()) EXPECT_EQ(n->connections(), 0u) << "no TCP without -t";
}

// 300 KB in 30 records of 10 KB on one primary, synced to another.
double fraction_after(double loss, bool tcp, Duration within, std::uint32_t seed) {
  Sim sim({.loss = loss, .period = 10s, .seed = seed});
  NodeOptions o;
  o.tcp = tcp;
  o.prompt = Duration::zero();  // only the periodic full sync carries it
  SimNode& a = sim.add(wire::Mode::Primary, o);
  SimNode& b = sim.add(wire::Mode::Primary, o);
  sim.run_for(10s);  // both have announced
  for (int i = 0; i < 30; ++i) {
    // Distinct sources so that each record is its own entry.
    std::vector<std::uint8_t> payload(10000, static_cast<std::uint8_t>(i));
    EXPECT_TRUE(a.set(one_record(64, payload, mac_of(100 + i))));
  }
  sim.run_for(within);
  return static_cast<double>(records_of(b, 64)) / 30.0;
}

TEST(MeshSim, LossyLinkTcpConvergesWithinOnePeriodUdpDoesNot) {
  for (std::uint32_t seed = 1; seed <= 5; ++seed) {
    EXPECT_EQ(fraction_after(0.10, true, 10s + 2s, seed), 1.0) << "seed " << seed;
    // Over UDP every 64 KiB datagram is ~54 fragments: at 10% frame loss
    // almost none survive. Recorded, and it must not be better than TCP.
    double udp = fraction_after(0.10, false, 30s, seed);
    EXPECT_LT(udp, 1.0) << "seed " << seed;
    RecordProperty("udp_fraction_seed" + std::to_string(seed), std::to_string(udp));
  }
}

TEST(MeshSim, CleanLinkUdpConvergesToo) { EXPECT_EQ(fraction_after(0.0, false, 10s + 2s, 3), 1.0); }

// ------------------------------------------------------------------ sessions (-t)

// Issue 8, coalescing: 1,000 sets of 10 records on a secondary within one
// second cross the sessions as a handful of transactions (one per 100 ms of
// prompt delay, plus a periodic sync or two), and every primary ends with the
// last value of every record.
TEST(MeshSim, ThousandSetsInASecondCrossTheSessionsAsAFewTransactions) {
  Distribution lat, count;
  for (std::uint32_t seed = 1; seed <= seeds(10, 3); ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Sim sim({.loss = 0.05, .period = 10s, .seed = seed});
    auto m = build(sim, 3, 3);
    ASSERT_TRUE(settle(sim, m));
    SimNode& s = *m.secondaries[0];
    SimNode* home = sim.node_at(s.engine().best_server()->addr);
    ASSERT_NE(home, nullptr);
    std::map<int, std::uint64_t> acked0;  // per primary: transactions acknowledged from its source
    for (auto* p : m.primaries) acked0[p->id()] = p->stats.acked_from[(p == home ? s : *home).mac()];
    auto pushes0 = s.stats.session_pushes;
    std::uint64_t udp0 = 0, copies0 = 0;
    for (auto* n : m.all()) {
      udp0 += n->stats.udp_pushes;
      copies0 += n->udp_copies();
    }

    constexpr int kSets = 1000, kTypes = 10;
    for (int i = 0; i < kSets; ++i) {
      ASSERT_TRUE(s.set(one_record(static_cast<std::uint8_t>(64 + i % kTypes), value(i, 100))));
      sim.run_for(1ms);
    }
    TimePoint last = sim.now();
    auto final_everywhere = [&] {
      for (auto* p : m.primaries)
        for (int t = 0; t < kTypes; ++t)
          if (value16(*p, s.mac(), static_cast<std::uint8_t>(64 + t)) != kSets - kTypes + t) return false;
      return true;
    };
    ASSERT_TRUE(sim.run_until(final_everywhere, 5s)) << "last values not on every primary within 5 s";
    Duration took = sim.now() - last;
    // Two hops (secondary to its primary, that one to the others), each a
    // few 100 ms of coalescing and acknowledgements; a segment lost three
    // times in a row costs 1.4 s of RTOs on a hop.
    EXPECT_LE(took, 3s) << ms_of(took) << " ms after the last set";
    lat.add(took);
    // A period later nothing older has overwritten them.
    sim.run_for(10s);
    EXPECT_TRUE(final_everywhere());

    std::uint64_t handed = s.stats.session_pushes - pushes0;
    EXPECT_GE(handed, 5u);
    EXPECT_LE(handed, 20u) << "transactions the secondary handed to its session";
    for (auto* p : m.primaries) {
      std::uint64_t n = p->stats.acked_from[(p == home ? s : *home).mac()] - acked0[p->id()];
      EXPECT_GE(n, 1u) << "primary " << p->id();
      EXPECT_LE(n, 20u) << "primary " << p->id() << ": transactions completed on its session";
    }
    // Nothing fell back to UDP: the only datagrams are the copies of
    // transactions not acknowledged within udp_copy_after.
    std::uint64_t udp = 0, copies = 0;
    for (auto* n : m.all()) {
      udp += n->stats.udp_pushes;
      copies += n->udp_copies();
    }
    EXPECT_EQ(udp - udp0, copies - copies0) << "transactions by UDP other than copies";
    count.ms.push_back(static_cast<double>(handed));
  }
  RecordProperty("coalesce_latency", lat.str());
  std::printf("coalescing: last values everywhere after the last set: %s; transactions handed to the session: %s\n",
              lat.str().c_str(), count.str().c_str());
}

// Issue 8, resend after a broken session: the secondary's session breaks
// (both ends see the reset, and the pair is cut off for `outage`) after `k`
// packets of a 3-packet transaction reached the primary (k = 4: the txend
// too, the acknowledgement lost). The transaction is sent again from its
// first packet on the next session; at no instant does the primary hold
// part of it.
struct BreakOutcome {
  bool broken = false, arrived = false;
  Duration after_outage{};  // from the outage's end until the resend completed on the primary
  bool before_tick = false;  // before the secondary's next periodic sync
  std::uint64_t resent = 0, acks = 0, completions = 0;
  std::size_t left_in_table = 0;
  bool never_half = true;
};

BreakOutcome break_mid_transaction(std::uint32_t seed, double loss, int k, Duration outage) {
  BreakOutcome out;
  Sim sim({.loss = loss, .period = 10s, .seed = seed});
  auto m = build(sim, 1, 1);
  SimNode& p = *m.primaries[0];
  SimNode& s = *m.secondaries[0];
  EXPECT_TRUE(settle(sim, m));
  constexpr int kRecords = 8;  // 8 x 20 KB: 3 packets (3 + 3 + 2 records) and the txend
  auto gen_at = [&](SimNode& n, int gen) {
    int c = 0;
    for (int t = 0; t < kRecords; ++t) c += value16(n, s.mac(), static_cast<std::uint8_t>(64 + t)) == gen;
    return c;
  };
  for (int t = 0; t < kRecords; ++t) s.set(one_record(static_cast<std::uint8_t>(64 + t), value(1, 20000)));
  EXPECT_TRUE(sim.run_until([&] { return gen_at(p, 1) == kRecords; }, 10s));
  // Just after the secondary's tick, once its full sync is acknowledged: only
  // the prompt push carries the change until the next tick.
  sim.run_until(s.next_tick() + 10ms);
  TimePoint next_tick = s.next_tick();
  EXPECT_TRUE(sim.run_until([&] { return s.session(p.addr()) && s.session(p.addr())->queued() == 0; }, 5s));
  int seen = 0;
  TimePoint outage_end{};
  sim.on_packet = [&](SimNode& at, const Mac& from, std::span<const std::uint8_t> packet, bool tcp) {
    if (&at != &p) return;
    int g = gen_at(p, 2);
    if (g != 0 && g != kRecords) out.never_half = false;
    if (from != s.mac() || !tcp) return;
    bool txend = packet[0] == static_cast<std::uint8_t>(wire::Type::StatusTxEnd);
    if (txend && p.engine().just_completed(s.mac(), be16(packet.data() + 4))) ++out.completions;
    if (out.broken || (packet[0] != 0 && !txend)) return;
    if (++seen == k) {
      // From inside the delivery: the next packet may be due at this very instant.
      out.broken = true;
      sim.reset_connections(s.id(), p.id());
      if (outage > Duration::zero()) sim.partition(s.id(), p.id(), outage);
      outage_end = sim.now() + outage;
    }
  };
  auto acks0 = p.stats.acks;
  for (int t = 0; t < kRecords; ++t) s.set(one_record(static_cast<std::uint8_t>(64 + t), value(2, 20000)));
  // Done: complete on the primary from the session formed after the break
  // (with k = 4 it was complete before the break: then the resend's
  // completion is the second).
  auto resent_done = [&] { return out.broken && out.completions == (k == 4 ? 2u : 1u); };
  out.arrived = sim.run_until(resent_done, 30s, 1ms) && gen_at(p, 2) == kRecords;
  out.after_outage = sim.now() - outage_end;
  out.before_tick = sim.now() < next_tick;
  if (auto* l = s.session(p.addr())) out.resent = l->resent();
  // Its acknowledgement reaches the secondary, which then holds nothing.
  EXPECT_TRUE(sim.run_until([&] { return s.session(p.addr())->queued() == 0; }, 5s));
  sim.run_for(1s);
  out.acks = p.stats.acks - acks0;
  out.left_in_table = p.engine().transactions().count_of(s.mac());
  sim.on_packet = nullptr;
  return out;
}

void expect_resent_whole(const BreakOutcome& r, int k) {
  EXPECT_TRUE(r.broken);
  EXPECT_TRUE(r.arrived);
  EXPECT_TRUE(r.never_half) << "part of the transaction was visible on the primary";
  EXPECT_TRUE(r.before_tick) << "arrived only with the next period";
  EXPECT_GE(r.resent, 1u) << "sent again from its first packet on the new session";
  EXPECT_EQ(r.acks, 1u) << "acknowledged once, on the new session";
  // With k = 4 the first (unacknowledged) completion and the resend's apply
  // the same records twice, which changes nothing.
  EXPECT_EQ(r.completions, k == 4 ? 2u : 1u);
  EXPECT_EQ(r.left_in_table, 0u) << "the cut transaction's packets were completed by the resend";
}

// Without loss the time after an outage is the SYN schedule's: Linux sends
// the reconnect's SYNs 0, 1 and 3 s into the attempt, so a link that comes
// back just after one waits up to 2 s for the next (then a round trip and
// the transfer). Outages of 0 to 6 s in 250 ms steps, at several phases.
TEST(MeshSim, TransactionCutByABrokenSessionIsResentOnTheNextOne) {
  Distribution d;
  for (int o = 0; o <= 6000; o += runs(250, 1000)) {
    for (int k = 1; k <= 4; ++k) {
      std::uint32_t seed = static_cast<std::uint32_t>(o + k);
      SCOPED_TRACE("outage " + std::to_string(o) + " ms, k " + std::to_string(k));
      auto r = break_mid_transaction(seed, 0.0, k, std::chrono::milliseconds(o));
      expect_resent_whole(r, k);
      // 2 s of SYN gap and the reconnect's round trips. (With outages in
      // 100 ms steps the worst measured was 2006 ms, for 1.4 s.)
      EXPECT_LE(r.after_outage, 2s + 100ms) << ms_of(r.after_outage) << " ms after the outage ended";
      d.add(r.after_outage);
    }
  }
  RecordProperty("resend_no_loss", d.str());
  std::printf("resend after a break, no loss, from the outage's end: %s\n", d.str().c_str());
}

// At 5 % loss a lost SYN, SYN-ACK or segment adds its retransmission time:
// the bound is then the period (the resend must beat the next full sync).
TEST(MeshSim, TransactionCutByABrokenSessionIsResentAtFivePercentLoss) {
  Distribution d;
  int within2 = 0, runs = 0;
  for (int k = 1; k <= 4; ++k) {
    for (std::uint32_t seed = 1; seed <= seeds(10, 3); ++seed) {
      SCOPED_TRACE("k " + std::to_string(k) + ", seed " + std::to_string(seed));
      auto r = break_mid_transaction(seed, 0.05, k, 3s);
      expect_resent_whole(r, k);
      d.add(r.after_outage);
      within2 += r.after_outage <= 2s;
      ++runs;
    }
  }
  RecordProperty("resend_5pct_3s_outage", d.str());
  std::printf("resend after a 3 s outage, 5%% loss, from its end: %s; within 2 s: %d of %d\n", d.str().c_str(),
              within2, runs);
}

// Issue 8: a session that dies mid-transaction never leaves a half-applied
// transaction. A primary's 64 records of 6 KB (7 packets and the txend) go
// to another primary; the connection is reset after k of its packets arrived
// (k = 8: after the txend, before the acknowledgement), and the resend is
// reset again part-way. After every packet the receiver takes, it holds
// either none of the transaction's new records or all of them; in the end,
// all, before the next period.
struct HalfOutcome {
  bool all = false, half = false, before_tick = false;
  int kills = 0, checks = 0;
  Duration took{};
  std::size_t left_in_table = 0;
  int final_count = 0;
};

HalfOutcome half_applied_run(double loss, int k, std::uint32_t seed) {
  constexpr int kRecords = 64;  // 10 to a packet
  HalfOutcome out;
  Sim sim({.loss = loss, .period = 10s, .seed = seed});
  auto m = build(sim, 2, 0);
  SimNode& a = *m.primaries[0];
  SimNode& b = *m.primaries[1];
  EXPECT_TRUE(settle(sim, m));
  auto gen_at = [&](int gen) {
    int c = 0;
    for (int i = 0; i < kRecords; ++i) c += value16(b, mac_of(1000 + i), 64) == gen;
    return c;
  };
  for (int i = 0; i < kRecords; ++i) a.set(one_record(64, value(1, 6000), mac_of(1000 + i)));
  EXPECT_TRUE(sim.run_until([&] { return gen_at(1) == kRecords; }, 10s));
  sim.run_until(a.next_tick() + 10ms);
  TimePoint next_tick = a.next_tick();
  EXPECT_TRUE(sim.run_until([&] { return a.session(b.addr())->queued() == 0; }, 5s));

  int seen = 0;
  std::vector<int> kill_at{k, k % 7 + 1};  // the first send, then its resend
  sim.on_packet = [&](SimNode& at, const Mac& from, std::span<const std::uint8_t> packet, bool tcp) {
    if (&at != &b) return;
    ++out.checks;
    int g = gen_at(2);
    if (g != 0 && g != kRecords) out.half = true;
    if (from != a.mac() || !tcp || out.kills >= 2) return;
    if (packet[0] != 0 && packet[0] != static_cast<std::uint8_t>(wire::Type::StatusTxEnd)) return;
    if (++seen == kill_at[static_cast<std::size_t>(out.kills)]) {
      sim.reset_connections(a.id(), b.id());
      ++out.kills;
      seen = 0;
    }
  };
  TimePoint set_at = sim.now();
  for (int i = 0; i < kRecords; ++i) a.set(one_record(64, value(2, 6000), mac_of(1000 + i)));
  // All there, and nothing left to resend (with k = 8 the data was there
  // before the first kill).
  out.all = sim.run_until([&] { return gen_at(2) == kRecords && a.session(b.addr())->queued() == 0; }, 9s, 10ms);
  out.took = sim.now() - set_at;
  out.before_tick = sim.now() < next_tick;
  // Past the receiver's transaction timeout: what the cut sends left in its
  // table expires without a trace.
  sim.run_for(12s);
  out.final_count = gen_at(2);
  out.left_in_table = b.engine().transactions().count_of(a.mac());
  sim.on_packet = nullptr;
  return out;
}

TEST(MeshSim, SessionDyingMidTransactionNeverLeavesItHalfApplied) {
  Distribution d;
  for (double loss : {0.0, 0.05}) {
    for (int k = 1; k <= 8; ++k) {
      for (std::uint32_t seed = 1; seed <= seeds(3, 1); ++seed) {
        SCOPED_TRACE("loss " + std::to_string(loss) + ", k " + std::to_string(k) + ", seed " + std::to_string(seed));
        auto r = half_applied_run(loss, k, seed * 100 + static_cast<std::uint32_t>(k));
        EXPECT_FALSE(r.half) << "a half-applied transaction was visible";
        EXPECT_TRUE(r.all);
        EXPECT_EQ(r.kills, 2);
        EXPECT_TRUE(r.before_tick) << "only the next period's full sync delivered it";
        EXPECT_EQ(r.final_count, 64);
        EXPECT_EQ(r.left_in_table, 0u);
        EXPECT_GT(r.checks, 8);
        d.add(r.took);
      }
    }
  }
  RecordProperty("half_applied_took", d.str());
  std::printf("two resets mid-transaction, from the set until all there: %s\n", d.str().c_str());
}

// Issue 8, best-primary change: a secondary whose best primary changes (its
// TQ) hands its data to the new one at the tick that picks it, not a period
// later. The two primaries are cut off from each other, so the new one can
// only have the data from the secondary itself.
TEST(MeshSim, BestPrimaryChangeByTqDeliversAtOnce) {
  Distribution d;
  int within = 0, runs = 0;
  for (double loss : {0.0, 0.05}) {
    for (std::uint32_t seed = 1; seed <= seeds(30, 8); ++seed) {
      SCOPED_TRACE("loss " + std::to_string(loss) + ", seed " + std::to_string(seed));
      Sim sim({.loss = loss, .period = 10s, .seed = seed});
      SimNode& p1 = sim.add(wire::Mode::Primary);
      SimNode& p2 = sim.add(wire::Mode::Primary);
      NodeOptions o;
      o.bat_iface = "bat0";
      SimNode& s = sim.add(wire::Mode::Secondary, o);
      s.tq().values = {{p1.mac(), 200}, {p2.mac(), 100}};
      ASSERT_TRUE(sim.run_until([&] { return best_is(s, p1) && s.engine().servers().size() == 2 && up(s, p1); }, 60s));
      s.set(one_record(64, value(1, 800)));
      ASSERT_TRUE(sim.run_until([&] { return value16(p2, s.mac(), 64) == 1; }, 5s));
      sim.partition(p1.id(), p2.id(), 100s);
      s.set(one_record(64, value(2, 800)));
      ASSERT_TRUE(sim.run_until([&] { return value16(p1, s.mac(), 64) == 2; }, 5s));
      // TQ changes at a random moment of the secondary's period.
      sim.run_for(std::chrono::duration_cast<Duration>(10s * std::uniform_real_distribution<>(0, 1)(sim.rng())));
      s.tq().values = {{p1.mac(), 50}, {p2.mac(), 250}};
      TimePoint tick = s.next_tick();
      sim.run_until(tick - 1ms);
      EXPECT_EQ(value16(p2, s.mac(), 64), 1) << "before the tick that picks it, p2 has the old value";
      sim.run_until(tick);
      ASSERT_TRUE(best_is(s, p2));
      ASSERT_TRUE(sim.run_until([&] { return value16(p2, s.mac(), 64) == 2; }, 10s, 1ms));
      Duration took = sim.now() - tick;
      if (loss == 0.0) {
        EXPECT_LE(took, 100ms) << ms_of(took) << " ms after the tick that chose p2";
      } else {
        d.add(took);
        within += took <= 1s;
        ++runs;
        // A new session: a lost SYN or SYN-ACK costs Linux's 1 s (2 s for a
        // second) before the push can go.
        EXPECT_LE(took, 3s + 500ms) << ms_of(took) << " ms after the tick that chose p2";
      }
    }
  }
  RecordProperty("best_change_tq_5pct", d.str());
  std::printf("best primary change (TQ), 5%% loss, from the tick that picks it: %s; within 1 s: %d of %d\n",
              d.str().c_str(), within, runs);
}

// Issue 8, best-primary change when the old primary goes away: once the
// secondary drops it (Engine::kServerTimeout after its last announcement)
// and picks the other, that one must get the secondary's data at once,
// including what was set while the old one was unreachable.
//
// Found here: a secondary's tick pushed to its best *before* expire()
// dropped a primary that timed out; when that was the best, the new best
// got nothing until the next tick (10.0 s after the switch at period 10 s).
// Engine::on_sync_tick now expires servers first.
TEST(MeshSim, BestPrimaryGoneDeliversToTheNextAtOnce) {
  Distribution d;
  for (std::uint32_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Sim sim({.loss = 0.0, .period = 10s, .seed = seed});
    SimNode& p1 = sim.add(wire::Mode::Primary);
    SimNode& p2 = sim.add(wire::Mode::Primary);
    NodeOptions o;
    o.bat_iface = "bat0";
    SimNode& s = sim.add(wire::Mode::Secondary, o);
    s.tq().values = {{p1.mac(), 200}, {p2.mac(), 100}};
    ASSERT_TRUE(sim.run_until([&] { return best_is(s, p1) && s.engine().servers().size() == 2 && up(s, p1); }, 60s));
    sim.partition(p1.id(), 0, 1000s);  // p1 is gone for everyone
    sim.run_for(2s);
    s.set(one_record(64, value(7, 800)));  // set while its primary is gone
    TimePoint switched{};
    ASSERT_TRUE(sim.run_until(
        [&] {
          if (best_is(s, p2)) switched = sim.now();
          return switched != TimePoint{};
        },
        120s, 1ms));
    ASSERT_TRUE(sim.run_until([&] { return value16(p2, s.mac(), 64) == 7; }, 20s, 1ms));
    Duration took = sim.now() - switched;
    d.add(took);
    EXPECT_LE(took, 1s) << ms_of(took) << " ms after the secondary switched to p2";
  }
  std::printf("best primary gone, from the switch: %s\n", d.str().c_str());
}

// The same bug at the engine, without the simulator: the tick that expires
// the best primary leaves the new best without a push.
TEST(MeshSim, EngineTickThatExpiresTheBestPushesToTheNewBest) {
  test::FakeEffects fx;
  test::FakeTq tq;
  EngineConfig c;
  c.interfaces = {"mesh0"};
  c.bat_iface = "bat0";
  std::uint16_t id = 1;
  Engine e(c, fx, tq, [&] { return id++; });
  e.interface_up("mesh0", mac_of(9), addr_of(mac_of(9)));
  TimePoint t0 = TimePoint{} + 1000s;
  tq.values = {{mac_of(1), 200}, {mac_of(2), 100}};
  e.on_packet(test::route_of(1), wire::encode(wire::AnnouncePrimary{}), t0);
  ASSERT_TRUE(e.ipc_set_data(one_record(64, value(1, 100)), t0));
  // p2 keeps announcing, p1 falls silent after t0.
  for (int k = 1; k <= 7; ++k) {
    TimePoint t = t0 + k * 10s;
    e.on_packet(test::route_of(2), wire::encode(wire::AnnouncePrimary{}), t - 1s);
    fx.pushes.clear();
    fx.kept.clear();
    e.on_sync_tick(t);
    if (e.best_server() && e.best_server()->mac == mac_of(2)) {
      // This tick dropped p1 and chose p2: p2 must get our data now.
      bool pushed = false, kept = false;
      for (auto& p : fx.pushes) pushed |= p.to.mac == mac_of(2);
      for (auto& r : fx.kept) kept |= r.mac == mac_of(2);
      EXPECT_TRUE(pushed) << "no push to the new best at the tick that chose it (" << k << "0 s)";
      EXPECT_TRUE(kept) << "no keep_session for the new best at the tick that chose it";
      return;
    }
  }
  FAIL() << "p1 never timed out";
}

// Issue 8's scenario: 3 primaries + 30 secondaries, -t, period 10 s; once
// the mesh has settled (sessions up, every secondary at its final primary),
// every node sets one 800 B record at once. Time until every primary holds
// all 33, and until a client on every secondary reads them all.
struct ScaleRun {
  bool settled = false;
  Duration primaries{}, read{};
  std::uint64_t events = 0;
};

struct ScaleOptions {
  std::optional<Duration> prompt;           // the daemon's if not set
  NetModel net{};
  std::optional<Duration> set_after_start;  // else once settled
  bool udp_copies = true;
};

ScaleRun scale_run(double loss, std::uint32_t seed, const ScaleOptions& so = {}) {
  ScaleRun out;
  Sim sim({.loss = loss, .period = 10s, .seed = seed, .net = so.net});
  NodeOptions o;
  o.prompt = so.prompt;
  o.udp_copies = so.udp_copies;
  auto m = build(sim, 3, 30, o);
  if (so.set_after_start) {
    // As the bench does: a fixed time after start, settled or not.
    sim.run_for(*so.set_after_start);
    out.settled = true;
  } else {
    out.settled = settle(sim, m, 90s);
  }
  std::vector<std::uint8_t> payload(800, 'x');
  for (auto* n : m.all()) n->set(one_record(64, payload));
  TimePoint set_at = sim.now();
  auto converged = [&] {
    for (auto* p : m.primaries)
      if (records_of(*p, 64) != 33u) return false;
    return true;
  };
  sim.run_until(converged, 60s, 5ms);
  out.primaries = sim.now() - set_at;
  for (auto* s : m.secondaries) s->request(ClientId{7}, wire::Request{64, static_cast<std::uint16_t>(s->id())});
  auto all_read = [&] {
    for (auto* s : m.secondaries)
      if (!s->answers.count(ClientId{7}) || s->answers[ClientId{7}].size() != 33u) return false;
    return true;
  };
  sim.run_until(all_read, 10s, 5ms);
  out.read = sim.now() - set_at;
  out.events = sim.loop().executed();
  return out;
}

struct ScaleSummary {
  Distribution primaries, read;
  int within = 0, seeds = 0, unsettled = 0;
  std::string missed, unsettled_seeds;
};

ScaleSummary scale_summary(double loss, Duration bound, int seeds, const char* name, const ScaleOptions& so = {}) {
  ScaleSummary out;
  out.seeds = seeds;
  for (int seed = 1; seed <= seeds; ++seed) {
    auto r = scale_run(loss, static_cast<std::uint32_t>(seed), so);
    if (!r.settled) {
      ++out.unsettled;
      out.unsettled_seeds += " " + std::to_string(seed);
    }
    out.primaries.add(r.primaries);
    out.read.add(r.read);
    if (r.primaries <= bound) ++out.within;
    else out.missed += " " + std::to_string(seed) + " (" + std::to_string(ms_of(r.primaries)) + " ms)";
  }
  ::testing::Test::RecordProperty(std::string(name) + "_primaries", out.primaries.str());
  ::testing::Test::RecordProperty(std::string(name) + "_secondaries_read", out.read.str());
  std::printf("%s: all primaries hold all 33: %s; within %lld ms: %d of %d; not settled in 90 s: %d%s\n", name,
              out.primaries.str().c_str(), ms_of(bound), out.within, seeds, out.unsettled,
              out.unsettled_seeds.c_str());
  std::printf("%s: every secondary's client reads all 33: %s\n", name, out.read.str().c_str());
  if (!out.missed.empty()) std::printf("%s: missed:%s\n", name, out.missed.c_str());
  return out;
}

constexpr int kScaleSeeds = runs(200, 10);

// Issue 8's bound, in every seed: every primary holds all 33 records
// within 2 s at 5 % loss, within 3 s at 10 %.
void scale_check(double loss, Duration bound, const char* name) {
  auto r = scale_summary(loss, bound, kScaleSeeds, name);
  EXPECT_EQ(r.unsettled, 0) << "not settled:" << r.unsettled_seeds;
  EXPECT_EQ(r.within, r.seeds) << "missed:" << r.missed;
}

TEST(MeshSim, ThreePlusThirtyAtFivePercentLossPrimariesHoldAllWithinTwoSeconds) {
  scale_check(0.05, 2s, "loss5");
}

TEST(MeshSim, ThreePlusThirtyAtTenPercentLossPrimariesHoldAllWithinThreeSeconds) {
  scale_check(0.10, 3s, "loss10");
}

// The bench's run of the same mesh: the records are set 12.5 s after start,
// whether or not every session is up (a secondary that lost its final
// primary's first announcement is still handshaking with it then).
TEST(MeshSim, ThreePlusThirtyAtFivePercentLossSetAtStartUpWithinTwoSeconds) {
  ScaleOptions so;
  so.set_after_start = 12500ms;
  auto r = scale_summary(0.05, 2s, kScaleSeeds, "startup-loss5", so);
  EXPECT_EQ(r.within, r.seeds) << "missed:" << r.missed;
}

// What the bound owes to TCP_THIN_LINEAR_TIMEOUTS on our streams and to the
// UDP copies of small transactions (SessionLimits::udp_copy_after): with
// neither, a segment lost three to five times in a row doubles its RTO each
// time (measured when written, 10 % loss: 199 of 200 within 3 s, max 3.41 s;
// seed 157: a txend lost four times, 3.0 s of RTOs). Each alone holds the
// bound; the daemon has both. TCP is modelled without fast retransmit
// (sim_tcp.hpp), so a first loss costs 200 ms where Linux with SACK/RACK may
// take one RTT; repeated losses of one segment are timer-driven in both.
TEST(MeshSim, WithoutLinearTimeoutsOrCopiesTheBoundIsMissed) {
  ScaleOptions neither_so, copies_so, linear_so;
  neither_so.net.thin_linear_timeouts = copies_so.net.thin_linear_timeouts = false;
  neither_so.udp_copies = linear_so.udp_copies = false;
  auto neither = scale_summary(0.10, 3s, kScaleSeeds, "loss10-backoff-nocopies", neither_so);
  auto copies = scale_summary(0.10, 3s, kScaleSeeds, "loss10-backoff-copies", copies_so);
  auto linear = scale_summary(0.10, 3s, kScaleSeeds, "loss10-linear-nocopies", linear_so);
  EXPECT_EQ(copies.within, copies.seeds) << "missed:" << copies.missed;
  EXPECT_EQ(linear.within, linear.seeds) << "missed:" << linear.missed;
  if (!kSanitized) {  // the sanitized build runs 10 seeds, too few for a miss
    EXPECT_LT(neither.within, neither.seeds);
    EXPECT_LT(copies.primaries.max(), neither.primaries.max());
    EXPECT_LT(linear.primaries.max(), neither.primaries.max());
  }
}

TEST(MeshSim, PeriodBoundDeliveryMissesTheBound) {
  // Without prompt pushes a record waits for its node's period: the bound
  // above is the sessions' and the prompt pushes' doing.
  ScaleOptions so;
  so.prompt = Duration::zero();
  int within = 0, n = runs(10, 3);
  for (int seed = 1; seed <= n; ++seed) within += scale_run(0.05, static_cast<std::uint32_t>(seed), so).primaries <= 2s;
  EXPECT_LT(within, n);
}

// Sessions between primaries are formed ahead of their first change (the
// welcome's keep_session). When that first connect fails (here: the pair is
// cut off for its 4 s), the session must still be formed once they can
// reach each other again, before anything changes.
//
// Found here: a primary said keep_session for another primary only in
// welcome(), once; after a failed first connect nothing re-formed the
// session until there was first-hand data to sync, so the first change paid
// a handshake. In the 3 + 30 runs 1 of 200 meshes at 5 % loss and 11 of 200
// at 10 % did not settle (90 s) for this alone. A primary's tick now says it
// for every known primary.
TEST(MeshSim, PrimaryReformsASessionWhoseFirstConnectFailed) {
  Sim sim({.loss = 0.0, .period = 10s, .seed = 5});
  SimNode& a = sim.add(wire::Mode::Primary);
  SimNode& b = sim.add(wire::Mode::Primary);  // its first announcement is on the way to a
  // The connect a's welcome of b starts times out.
  sim.partition(a.id(), b.id(), 4500ms);
  sim.run_for(5s);
  ASSERT_EQ(a.engine().servers().size(), 1u);
  ASSERT_EQ(a.session(b.addr()), nullptr) << "a gave up on the session (no data to send)";
  ASSERT_GE(a.stats.connect_timeouts, 1u);
  // From now on they hear each other; a keeps syncing nothing to b.
  EXPECT_TRUE(sim.run_until([&] { return up(a, b); }, 30s))
      << "no session from a primary to another it hears every period";
}

// The same at the engine: a primary says keep_session for the primaries it
// knows at every tick, not only when it first hears them.
TEST(MeshSim, EnginePrimaryKeepsSessionsToKnownPrimariesEveryPeriod) {
  test::FakeEffects fx;
  test::FakeTq tq;
  EngineConfig c;
  c.mode = wire::Mode::Primary;
  c.interfaces = {"mesh0"};
  c.bat_iface = "none";
  std::uint16_t id = 1;
  Engine e(c, fx, tq, [&] { return id++; });
  e.interface_up("mesh0", mac_of(9), addr_of(mac_of(9)));
  TimePoint t0 = TimePoint{} + 1000s;
  e.on_packet(test::route_of(1), wire::encode(wire::AnnouncePrimary{}), t0);
  ASSERT_EQ(fx.kept.size(), 1u);  // the welcome
  fx.kept.clear();
  e.on_packet(test::route_of(1), wire::encode(wire::AnnouncePrimary{}), t0 + 9s);
  e.on_sync_tick(t0 + 10s);
  bool kept = false;
  for (auto& r : fx.kept) kept |= r.mac == mac_of(1);
  EXPECT_TRUE(kept) << "a known primary's session is not kept at the tick";
}

// A primary that restarts (empty) and its peer: the peer's session re-forms
// at once (Closed, then refused while the daemon is down, then up), and the
// restarted one learns the peer from that session's hello.
Duration restart_run(std::uint32_t seed, bool& reformed) {
  Sim sim({.loss = 0.05, .period = 10s, .seed = seed});
  auto m = build(sim, 2, 0);
  SimNode& a = *m.primaries[0];
  SimNode& b = *m.primaries[1];
  EXPECT_TRUE(settle(sim, m));
  for (int i = 0; i < 20; ++i) a.set(one_record(64, value(i, 3000), mac_of(500 + i)));
  EXPECT_TRUE(sim.run_until([&] { return records_of(b, 64) == 20; }, 5s));
  sim.restart(b.id(), 1s);
  sim.run_for(1s);
  EXPECT_TRUE(b.running());
  EXPECT_EQ(records_of(b, 64), 0u);
  TimePoint started = sim.now();
  reformed = sim.run_until([&] { return up(a, b) && b.engine().servers().size() == 1; }, 5s, 1ms);
  EXPECT_TRUE(sim.run_until([&] { return records_of(b, 64) == 20; }, 30s, 1ms));
  return sim.now() - started;
}

TEST(MeshSim, RestartedPrimaryGetsItsPeersDataByTheirNextSync) {
  Distribution d;
  for (std::uint32_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    bool reformed = false;
    Duration took = restart_run(seed, reformed);
    EXPECT_TRUE(reformed) << "the session re-formed and the restarted primary knows its peer";
    EXPECT_LE(took, 10s + 2s) << ms_of(took) << " ms after the restart";
    d.add(took);
  }
  std::printf("restarted primary, from its start until it holds its peer's data: %s\n", d.str().c_str());
}

// engine.hpp (kWelcomesPerPeriod): "A primary hands a newly heard primary
// its first-hand data at once (a restarted one would otherwise miss what
// changed until our next period)". Found here: a primary restarted within
// Engine::kServerTimeout (60 s) is still in its peers' tables, was not newly
// heard and got no welcome, so it had its peers' data only at their next
// periodic sync (p50 6.5 s, max 9.0 s at period 10 s). A known primary that
// opens a session (its hello comes to the engine as an announcement on a
// stream) is now welcomed too.
TEST(MeshSim, RestartedPrimaryGetsItsPeersDataAtOnce) {
  for (std::uint32_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    bool reformed = false;
    Duration took = restart_run(seed, reformed);
    EXPECT_LE(took, 2s) << ms_of(took) << " ms after the restart";
  }
}

// CI at 2c9979d failed test_sessions_survive_a_primary_restart_and_a_link_outage
// (2 + 3 nodes, -b none, 5 % loss): after a primary's restart and a
// secondary's 20 s outage, that secondary's change reached the restarted
// primary only 19.9 s after the link's return, never the other one, and the
// mesh did not converge in two more periods. Two causes, both found in the
// logs of the same test here:
//  - the secondary's connects to its primary timed out during the outage,
//    and it took the primary for UDP-only for 300 s;
//  - the other primary still held the secondary's record first-hand (the
//    secondary had pushed to it first, then moved on), synced that stale
//    copy as its own every period over the fresh one, and never got the
//    fresh one back: the restarted primary held it only synced.
// Checked in every seed: the change reaches both primaries within a period
// of the link's return, the whole mesh converges, stays converged for a
// minute, and no node takes a peer for UDP-only.
struct OutageRun {
  Duration to_primaries{};
  bool reached = false, converged = false, stayed = false, marked = false;
  bool moved = false;  // the cut-off secondary was with the second primary at the sets
};

OutageRun restart_and_outage_run(std::uint32_t seed) {
  OutageRun out;
  Sim sim({.loss = 0.05, .period = 10s, .seed = seed});
  auto m = build(sim, 2, 3);
  // Sets while a secondary may still be with the primary it heard first: it
  // moves to the first in MAC order at its tick, and the restart comes before
  // that primary's next sync could have corrected the other's first-hand
  // copy (as in CI).
  EXPECT_TRUE(sim.run_until([&] { return settled(m); }, 60s));
  auto all = m.all();
  std::map<Mac, int> expected;
  for (auto* n : all) {
    expected[n->mac()] = n->id();
    n->set(one_record(64, value(n->id(), 800)));
  }
  auto holds = [&](SimNode& n, const Mac& src) { return value16(n, src, 64) == expected.at(src); };
  // A secondary holds its own records only; its clients' reads are answered
  // by its primary.
  auto converged = [&] {
    for (auto* n : m.primaries)
      for (auto& [src, v] : expected)
        if (!holds(*n, src)) return false;
    return true;
  };
  EXPECT_TRUE(sim.run_until(converged, 30s));
  sim.run_for(1s);
  SimNode& victim = *m.primaries[0];
  SimNode* moving = nullptr;
  for (auto* sn : m.secondaries)
    if (best_is(*sn, *m.primaries[1])) moving = sn;
  out.moved = moving != nullptr;
  SimNode& cut = moving ? *moving : *m.secondaries[1];
  SimNode& peer = &cut == m.secondaries[2] ? *m.secondaries[0] : *m.secondaries[2];
  sim.restart(victim.id(), 1s);
  sim.run_for(1s + 500ms);
  sim.partition(cut.id(), 0, 20s);
  sim.run_for(2s);
  expected[cut.mac()] = 100 + cut.id();
  cut.set(one_record(64, value(100 + cut.id(), 800)));
  expected[peer.mac()] = 100 + peer.id();
  peer.set(one_record(64, value(100 + peer.id(), 800)));
  sim.run_for(18s);
  TimePoint back = sim.now();
  out.reached = sim.run_until([&] {
    return holds(*m.primaries[0], cut.mac()) && holds(*m.primaries[1], cut.mac());
  }, 30s);
  out.to_primaries = sim.now() - back;
  out.converged = sim.run_until(converged, back + 20s - sim.now());
  out.stayed = out.converged;
  for (int i = 0; i < 60 && out.stayed; ++i) {
    sim.run_for(1s);
    out.stayed = converged();
  }
  for (auto* n : all)
    for (auto* q : all)
      if (n != q && n->udp_only(q->addr())) out.marked = true;
  return out;
}

TEST(MeshSim, AfterARestartAndAnOutageTheMeshConvergesAndStays) {
  Distribution d;
  int moved = 0;
  for (std::uint32_t seed = 1; seed <= seeds(40, 4); ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto r = restart_and_outage_run(seed);
    moved += r.moved;
    EXPECT_TRUE(r.reached);
    EXPECT_LE(r.to_primaries, 10s + 2s) << ms_of(r.to_primaries) << " ms after the link's return";
    EXPECT_TRUE(r.converged) << "within 20 s of the link's return";
    EXPECT_TRUE(r.stayed) << "for a minute after";
    EXPECT_FALSE(r.marked) << "a node took one of ours for UDP-only";
    d.add(r.to_primaries);
  }
  std::printf("outage of 20 s after a primary's restart: the change made during it on both primaries, "
              "after the link's return: %s; %d runs with the secondary moving primaries\n",
              d.str().c_str(), moved);
}

// A primary whose TCP never answers (a firewall; or an address that only
// announces): each pair of timed-out connects marks it UDP-only, 30 s first,
// then twice as long each time, up to 300 s. So its connects take an
// outbound slot a few times an hour, not at every period; the data still
// reaches it by UDP.
TEST(MeshSim, APrimaryThatNeverAnswersTcpIsTriedLessAndLessOften) {
  Sim sim({.loss = 0.0, .period = 10s, .seed = 5});
  SimNode& a = sim.add(wire::Mode::Primary);
  NodeOptions o;
  o.software = Software::Firewalled;
  SimNode& b = sim.add(wire::Mode::Primary, o);
  sim.run_for(5s);
  a.set(one_record(64, value(7, 3000), mac_of(500)));
  ASSERT_TRUE(sim.run_until([&] { return records_of(b, 64) == 1; }, 15s));
  std::vector<std::uint64_t> per_10min;
  for (int i = 0; i < 6; ++i) {
    auto before = a.stats.connect_timeouts;
    sim.run_for(600s);
    per_10min.push_back(a.stats.connect_timeouts - before);
    a.set(one_record(64, value(10 + i, 3000), mac_of(500)));  // still delivered
    ASSERT_TRUE(sim.run_until([&] { return value16(b, mac_of(500), 64) == 10 + i; }, 15s)) << i;
  }
  std::string s;
  for (auto n : per_10min) s += std::to_string(n) + " ";
  std::printf("connects timed out per 10 minutes to a primary that drops TCP: %s\n", s.c_str());
  // Marks of 30, 60, 120, 240 s, then 300 s: about 2 connects per 5 min.
  EXPECT_LE(per_10min.back(), 6u) << s;
  EXPECT_LE(per_10min.back(), per_10min.front()) << s;
  EXPECT_GE(per_10min.back(), 2u) << s << "(it is still tried now and then)";
}

// Known limitation (issue 8's note), not asserted here: the link-down test
// (Connection::check, TCP_INFO) runs only on the opener's connection. After
// an outage of 7 s or more, an answer the acceptor wrote just before it sits
// in TCP's retransmission backoff (0.2 ... 6.4 s) past the engine's 10 s
// transaction timeout, and the client gets an error. The same test on the
// acceptor's side alone does not help in this model: its close queues the
// FIN behind the stuck answer.

// A peer of the 2016 framing closes the connection on our hello; it is then
// served one connection per transaction, and gets the data. Debian's alfred
// refuses TCP: the data goes by UDP and the peer is marked UDP-only.
TEST(MeshSim, PeersWithoutSessionsStillGetTheData) {
  for (Software sw : {Software::Legacy2016, Software::Debian}) {
    SCOPED_TRACE(sw == Software::Debian ? "debian" : "2016 framing");
    Sim sim({.loss = 0.0, .period = 10s, .seed = 3});
    SimNode& a = sim.add(wire::Mode::Primary);
    NodeOptions o;
    o.software = sw;
    SimNode& b = sim.add(wire::Mode::Primary, o);
    sim.run_for(5s);
    for (int i = 0; i < 10; ++i) a.set(one_record(64, value(i, 3000), mac_of(500 + i)));
    ASSERT_TRUE(sim.run_until([&] { return records_of(b, 64) == 10; }, 2s));
    if (sw == Software::Legacy2016) {
      EXPECT_TRUE(a.legacy(b.addr()));
      EXPECT_GE(a.stats.legacy_pushes, 1u);
      EXPECT_EQ(a.session(b.addr()), nullptr);
    } else {
      EXPECT_TRUE(a.udp_only(b.addr()));
      EXPECT_GE(a.stats.udp_pushes, 1u);
    }
    // A change later: the same way, at once.
    auto legacy0 = a.stats.legacy_pushes;
    a.set(one_record(64, value(99, 3000), mac_of(500)));
    ASSERT_TRUE(sim.run_until([&] { return value16(b, mac_of(500), 64) == 99; }, 1s));
    if (sw == Software::Legacy2016) {
      EXPECT_EQ(a.stats.legacy_pushes, legacy0 + 1);
    }
    // The 2016 peer's connections end with their transaction.
    sim.run_for(1s);
    if (sw == Software::Legacy2016) {
      EXPECT_EQ(b.connections(), 0u);
    }
  }
}

}  // namespace
}  // namespace alfred::sim
