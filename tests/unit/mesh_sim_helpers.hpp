#pragma once
// What the simulator's tests share: building and settling a mesh, reading
// stores, and distributions of times. In namespace alfred::sim.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <cstdio>
#include <string>
#include <vector>

#include "mesh_sim.hpp"

namespace alfred::sim {

using namespace std::chrono_literals;

// The sanitizer build (Debug, ASan+UBSan: some 30 times slower here) runs
// these tests too, with fewer seeds: runs(release, sanitized).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif
constexpr int runs(int release, int sanitized) { return kSanitized ? sanitized : release; }
constexpr std::uint32_t seeds(int release, int sanitized) { return static_cast<std::uint32_t>(runs(release, sanitized)); }

inline wire::PushData one_record(std::uint8_t type, const std::vector<std::uint8_t>& data, Mac source = Mac{}) {
  wire::PushData p;
  p.records.push_back(wire::RecordView{source, type, 0, data});
  return p;
}

inline std::size_t records_of(SimNode& n, std::uint8_t type) {
  return n.engine().store().snapshot(Source::Synced, type).size();
}

struct Mesh {
  std::vector<SimNode*> primaries, secondaries;
  std::vector<SimNode*> all() const {
    auto v = primaries;
    v.insert(v.end(), secondaries.begin(), secondaries.end());
    return v;
  }
};

inline Mesh build(Sim& sim, int primaries, int secondaries, NodeOptions o = {}) {
  Mesh m;
  for (int i = 0; i < primaries; ++i) m.primaries.push_back(&sim.add(wire::Mode::Primary, o));
  for (int i = 0; i < secondaries; ++i) m.secondaries.push_back(&sim.add(wire::Mode::Secondary, o));
  return m;
}

inline bool up(SimNode& from, SimNode& to) {
  auto* s = from.session(to.addr());
  return s && s->state() == link::SessionState::Up;
}

inline bool best_is(SimNode& s, SimNode& p) {
  auto b = s.engine().best_server();
  return b && b->mac == p.mac();
}

// Every secondary has a primary and a session to it, every primary a
// session to every other.
inline bool settled(const Mesh& m) {
  for (auto* s : m.secondaries) {
    auto best = s->engine().best_server();
    if (!best) return false;
    auto* p = s->session(best->addr);
    if (!p || p->state() != link::SessionState::Up) return false;
  }
  for (auto* p : m.primaries)
    for (auto* q : m.primaries)
      if (p != q && !up(*p, *q)) return false;
  return true;
}

// Settled for good: on top of settled(), every secondary knows every
// primary and has ticked since it heard the last one (it picks its best at
// its tick: with bat_iface "none" every TQ is 255 and it keeps the first in
// MAC order, so one that adopted another on its first announcement moves
// over once), and it still holds.
inline bool settle(Sim& sim, const Mesh& m, Duration limit = 60s) {
  TimePoint end = sim.now() + limit;
  auto all_known = [&] {
    for (auto* s : m.secondaries)
      if (s->engine().servers().size() != m.primaries.size()) return false;
    return true;
  };
  while (sim.now() < end) {
    if (!sim.run_until([&] { return settled(m) && all_known(); }, end - sim.now(), 200ms)) return false;
    sim.run_for(sim.period() + 100ms);
    if (settled(m) && all_known()) return true;
  }
  return false;
}

struct Distribution {
  std::vector<double> ms;
  void add(Duration d) { ms.push_back(static_cast<double>(ms_of(d))); }
  double quantile(double q) {
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    auto k = static_cast<std::size_t>(q * static_cast<double>(ms.size() - 1) + 0.5);
    return ms[std::min(k, ms.size() - 1)];
  }
  double max() { return ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end()); }
  std::string str() {
    auto i = [](double v) { return std::to_string(static_cast<long long>(v)); };
    return "n=" + std::to_string(ms.size()) + " p50=" + i(quantile(0.5)) + " p90=" + i(quantile(0.9)) +
           " p99=" + i(quantile(0.99)) + " max=" + i(max()) + " (ms)";
  }
};

using Contents = std::map<std::pair<std::uint8_t, Mac>, std::vector<std::uint8_t>>;

inline Contents contents(SimNode& n) {
  Contents c;
  if (!n.running()) return c;
  for (const auto& r : n.engine().store().snapshot(Source::Synced)) c[{r->type, r->source}] = r->data;
  return c;
}

// What every primary must hold from live sources: each running node's own
// records, as it holds them.
inline Contents live(const Mesh& m) {
  Contents c;
  for (auto* n : m.all()) {
    if (!n->running()) continue;
    for (const auto& r : n->engine().store().snapshot(Source::Local)) c[{r->type, r->source}] = r->data;
  }
  return c;
}

// Every primary holds every live record as its source has it; anything else
// it holds is a record whose source no longer has it (it restarted), left
// to expire as full sync leaves it.
inline bool primaries_hold(const Mesh& m, std::string* why = nullptr) {
  Contents want = live(m);
  for (auto* p : m.primaries) {
    if (!p->running()) continue;
    Contents got = contents(*p);
    for (const auto& [k, v] : want) {
      auto it = got.find(k);
      if (it == got.end() || it->second != v) {
        if (why)
          *why = "node " + std::to_string(p->id()) + (it == got.end() ? " lacks " : " holds another ") +
                 "type " + std::to_string(k.first) + " of " + to_string(k.second);
        return false;
      }
    }
  }
  return true;
}

inline std::vector<std::uint8_t> value(int v, std::size_t size) {
  std::vector<std::uint8_t> d(size, static_cast<std::uint8_t>(v));
  d[0] = static_cast<std::uint8_t>(v >> 8);
  d[1] = static_cast<std::uint8_t>(v);
  return d;
}
inline int value16(SimNode& n, const Mac& source, std::uint8_t type) {
  auto r = n.engine().store().get(source, type);
  return r && r->data.size() >= 2 ? (r->data[0] << 8 | r->data[1]) : -1;
}

}  // namespace alfred::sim
