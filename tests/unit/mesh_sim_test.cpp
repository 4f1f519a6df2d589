// A whole mesh of engines in one process on a virtual clock. Datagrams are
// lost per IPv6 fragment at a given frame loss rate; "TCP" transactions are
// delivered whole. This is the sans-I/O core doing what the daemons do,
// without sockets, so convergence rules can be checked in milliseconds.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <random>

#include "engine/engine.hpp"
#include "fake_effects.hpp"

namespace alfred {
namespace {

using namespace std::chrono_literals;
using test::addr_of;
using test::mac_of;

class Sim;

class SimNode : public Effects {
 public:
  SimNode(Sim& sim, int id, wire::Mode mode);
  Engine& engine() { return *engine_; }
  int id() const { return id_; }
  Mac mac() const { return mac_of(id_); }

  void send_packet(const Route& to, std::vector<std::uint8_t> packet) override;
  void send_push(const Route& to, wire::PushEncoder tx, PushKind kind) override;
  void forward_request(const Route& to, const wire::Request& r) override;
  void reply_records(ClientId c, Snapshot records, std::uint16_t) override { answers[c] = std::move(records); }
  void reply_error(ClientId c, std::uint16_t) override { errors.push_back(c); }
  void event(std::uint8_t, const Mac&) override {}
  void run_update_command(const std::bitset<256>&) override {}
  void reconfigure_interfaces(const std::vector<std::string>&) override {}
  void log(std::string_view) override {}

  std::map<ClientId, Snapshot> answers;
  std::vector<ClientId> errors;

 private:
  Sim& sim_;
  int id_;
  test::FakeTq tq_;
  std::uint16_t next_id_;
  std::unique_ptr<Engine> engine_;
};

class Sim {
 public:
  Sim(double frame_loss, bool tcp, Duration period = 1s, std::uint32_t seed = 1,
      Duration prompt = Duration::zero())
      : loss_(frame_loss), tcp_(tcp), period_(period), prompt_(prompt), rng_(seed) {}

  SimNode& add(wire::Mode mode) {
    nodes_.push_back(std::make_unique<SimNode>(*this, static_cast<int>(nodes_.size()) + 1, mode));
    SimNode* n = nodes_.back().get();
    // Each daemon starts at its own phase of the period.
    Duration phase = std::chrono::duration_cast<Duration>(period_ * std::uniform_real_distribution<>(0, 1)(rng_));
    schedule_tick(n, now_ + phase);
    return *n;
  }

  TimePoint now() const { return now_; }
  bool tcp() const { return tcp_; }
  Duration prompt() const { return prompt_; }
  // Runs a node's engine timer when it asks for one, as the daemon does.
  void arm(SimNode* n) {
    auto d = n->engine().next_deadline();
    if (!d) return;
    events_.emplace(std::max(*d, now_), [this, n] {
      n->engine().on_timer(now_);
      arm(n);
    });
  }

  // A datagram of `size` bytes crosses the link unless one of its fragments is lost.
  bool survives(std::size_t size) {
    std::size_t frags = (size + 8 + 1231) / 1232;
    for (std::size_t i = 0; i < frags; ++i)
      if (std::uniform_real_distribution<>(0, 1)(rng_) < loss_) return false;
    return true;
  }

  void deliver(int from, const Route& to, std::vector<std::uint8_t> packet, bool reliable) {
    if (!reliable && !survives(packet.size())) return;
    auto at = now_ + 2ms;
    for (auto& n : nodes_) {
      if (n->id() == from) continue;
      if (!to.addr.multicast && n->mac() != to.mac) continue;
      SimNode* target = n.get();
      // A packet that came on a stream is answered on it, as the daemon does.
      Route back{"mesh0", addr_of(mac_of(from)), mac_of(from), reliable ? to.stream : 0};
      auto copy = packet;
      events_.emplace(at, [target, back, copy, this] {
        target->engine().on_packet(back, copy, now_);
        arm(target);
      });
    }
  }

  void run_until(TimePoint t) {
    while (!events_.empty() && events_.begin()->first <= t) {
      auto it = events_.begin();
      now_ = it->first;
      auto fn = std::move(it->second);
      events_.erase(it);
      fn();
    }
    now_ = t;
  }

  std::vector<std::unique_ptr<SimNode>>& nodes() { return nodes_; }

 private:
  void schedule_tick(SimNode* n, TimePoint at) {
    events_.emplace(at, [this, n, at] {
      n->engine().on_sync_tick(now_);
      n->engine().on_timer(now_);
      schedule_tick(n, at + period_);
    });
  }

  double loss_;
  bool tcp_;
  Duration period_;
  Duration prompt_;
  std::mt19937 rng_;
  TimePoint now_ = TimePoint{} + 1000s;
  std::multimap<TimePoint, std::function<void()>> events_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
};

SimNode::SimNode(Sim& sim, int id, wire::Mode mode) : sim_(sim), id_(id), next_id_(static_cast<std::uint16_t>(id * 1000)) {
  EngineConfig c;
  c.mode = mode;
  c.interfaces = {"mesh0"};
  c.bat_iface = "none";
  c.prompt_sync_delay = sim.prompt();
  engine_ = std::make_unique<Engine>(c, *this, tq_, [this] { return next_id_++; });
  engine_->interface_up("mesh0", mac(), addr_of(mac()));
}

void SimNode::send_packet(const Route& to, std::vector<std::uint8_t> packet) {
  sim_.deliver(id_, to, std::move(packet), false);
}

void SimNode::send_push(const Route& to, wire::PushEncoder tx, PushKind kind) {
  // As the daemon does: replies on the stream they were asked on, changes by
  // TCP, periodic syncs by TCP only where they would fragment.
  bool reliable = sim_.tcp() && (kind == PushKind::Reply    ? to.stream != 0
                                 : kind == PushKind::Prompt ? true
                                                            : tx.total_size() > wire::kUnfragmentedPayload);
  std::vector<std::uint8_t> p;
  while (tx.next(p)) sim_.deliver(id_, to, p, reliable);
}

void SimNode::forward_request(const Route& to, const wire::Request& r) {
  // With TCP the request travels on a stream and the answer comes back on it.
  Route via = to;
  via.stream = sim_.tcp() ? 1 : 0;
  sim_.deliver(id_, via, wire::encode(r), sim_.tcp());
}

wire::PushData one_record(std::uint8_t type, const std::vector<std::uint8_t>& data) {
  wire::PushData p;
  p.records.push_back(wire::RecordView{Mac{}, type, 0, data});
  return p;
}

std::size_t records_of(SimNode& n, std::uint8_t type) {
  return n.engine().store().snapshot(Source::Synced, type).size();
}

TEST(MeshSim, ThreePrimariesThirtySecondariesConvergeWithinThreePeriods) {
  Sim sim(0.0, false);
  for (int i = 0; i < 3; ++i) sim.add(wire::Mode::Primary);
  for (int i = 0; i < 30; ++i) sim.add(wire::Mode::Secondary);
  sim.run_until(sim.now() + 2s);  // announcements heard, primaries chosen
  std::vector<std::uint8_t> payload(200, 'x');
  for (auto& n : sim.nodes()) ASSERT_TRUE(n->engine().ipc_set_data(one_record(64, payload), sim.now()));
  sim.run_until(sim.now() + 3s);
  for (int p = 0; p < 3; ++p) EXPECT_EQ(records_of(*sim.nodes()[p], 64), 33u) << "primary " << p;
  // A secondary's client sees everything through its primary.
  SimNode& s = *sim.nodes()[10];
  s.engine().ipc_request(5, wire::Request{64, 4242}, sim.now());
  sim.run_until(sim.now() + 1s);
  ASSERT_TRUE(s.answers.count(5));
  EXPECT_EQ(s.answers[5].size(), 33u);
}

// 300 KB in 30 records of 10 KB on one primary, synced to another.
double fraction_after(double loss, bool tcp, Duration within, std::uint32_t seed) {
  Sim sim(loss, tcp, 10s, seed);
  SimNode& a = sim.add(wire::Mode::Primary);
  SimNode& b = sim.add(wire::Mode::Primary);
  sim.run_until(sim.now() + 10s);  // both have announced
  for (int i = 0; i < 30; ++i) {
    // Distinct sources so that each record is its own entry.
    std::vector<std::uint8_t> payload(10000, static_cast<std::uint8_t>(i));
    wire::PushData p;
    p.records.push_back(wire::RecordView{mac_of(100 + i), 64, 0, payload});
    EXPECT_TRUE(a.engine().ipc_set_data(p, sim.now()));
  }
  sim.run_until(sim.now() + within);
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

// Issue 8's scenario: 3 primaries + 30 secondaries, one 800 B record each,
// 5% frame loss, default period 10 s, -t. With change-triggered delivery
// (prompt pushes by TCP) every primary holds every record, and every
// secondary's client reads them all, within 2 s of the last set, in every
// seed; period-bound delivery (no prompt pushes) cannot meet that bound.
struct Convergence {
  int seeds_within = 0;
  Duration worst{};
};
Convergence three_plus_thirty(Duration prompt, Duration bound, int seeds) {
  Convergence out;
  for (int seed = 1; seed <= seeds; ++seed) {
    Sim sim(0.05, true, 10s, static_cast<std::uint32_t>(seed), prompt);
    for (int i = 0; i < 3; ++i) sim.add(wire::Mode::Primary);
    for (int i = 0; i < 30; ++i) sim.add(wire::Mode::Secondary);
    // Long enough for every primary to have heard the others (announcements
    // are datagrams too) and every secondary a primary.
    sim.run_until(sim.now() + 60s);
    std::vector<std::uint8_t> payload(800, 'x');
    for (auto& n : sim.nodes()) {
      n->engine().ipc_set_data(one_record(64, payload), sim.now());
      sim.arm(n.get());
    }
    TimePoint set_at = sim.now();
    auto converged = [&] {
      for (int p = 0; p < 3; ++p)
        if (records_of(*sim.nodes()[p], 64) != 33u) return false;
      return true;
    };
    while (!converged() && sim.now() - set_at < 60s) sim.run_until(sim.now() + 10ms);
    Duration took = sim.now() - set_at;
    // What a client on each secondary reads then.
    bool all_read = true;
    for (std::size_t k = 3; k < sim.nodes().size(); ++k) {
      SimNode& s = *sim.nodes()[k];
      s.engine().ipc_request(ClientId{7}, wire::Request{64, static_cast<std::uint16_t>(k)}, sim.now());
    }
    sim.run_until(sim.now() + 100ms);
    for (std::size_t k = 3; k < sim.nodes().size(); ++k) {
      SimNode& s = *sim.nodes()[k];
      all_read &= s.answers.count(ClientId{7}) && s.answers[ClientId{7}].size() == 33u;
    }
    took += 100ms;
    if (all_read && took <= bound) ++out.seeds_within;
    out.worst = std::max(out.worst, took);
  }
  return out;
}

TEST(MeshSim, ChangesReachEveryNodeWithinTwoSecondsAtFivePercentLoss) {
  auto prompt = three_plus_thirty(100ms, 2s, 20);
  EXPECT_EQ(prompt.seeds_within, 20)
      << "worst " << std::chrono::duration_cast<std::chrono::milliseconds>(prompt.worst).count() << " ms";
  RecordProperty("prompt_worst_ms",
                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(prompt.worst).count()));
  auto periodic = three_plus_thirty(Duration::zero(), 2s, 20);
  EXPECT_LT(periodic.seeds_within, 20) << "period-bound delivery must not meet the bound";
}

TEST(MeshSim, CleanLinkUdpConvergesToo) {
  EXPECT_EQ(fraction_after(0.0, false, 10s + 2s, 3), 1.0);
}

}  // namespace
}  // namespace alfred
