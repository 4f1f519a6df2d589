// Session compression (wire/packed_frame.hpp) in the in-process mesh: JSON
// node data of about 3 KB a node, as Freifunk communities publish it, with
// and without packing in the same mesh and schedule. What goes on the link,
// how fast every primary holds everything, and that both end with the same
// stores. Figures are printed; the pieces are in packed_frame_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "mesh_sim.hpp"
#include "mesh_sim_helpers.hpp"

namespace alfred::sim {
namespace {

using namespace std::chrono_literals;

// About 2 KB of nodeinfo-like JSON, different per node and per version.
std::vector<std::uint8_t> node_json(int node, int version) {
  std::string s = "{\"nodeinfo\":{\"node_id\":\"02000000" + std::to_string(1000 + node) +
                  "\",\"hostname\":\"ffxx-" + std::to_string(node) + "-v" + std::to_string(version) +
                  "\",\"software\":{\"firmware\":{\"base\":\"gluon-v2023.1\",\"release\":\"2023.1.2\"},"
                  "\"batman-adv\":{\"version\":\"2023.0\"}},\"hardware\":{\"model\":\"TP-Link TL-WR841N\"}},"
                  "\"statistics\":{\"uptime\":" +
                  std::to_string(100000 + node * 37 + version) + ",\"loadavg\":0." + std::to_string(node % 97) +
                  ",\"clients\":{\"total\":" + std::to_string(node % 13) + "}},\"neighbours\":{";
  for (int i = 0; i < 24; ++i)
    s += "\"02:00:00:00:" + std::to_string(10 + (node + i) % 90) + ":" + std::to_string(10 + i) +
         "\":{\"tq\":" + std::to_string(100 + (node * 7 + i * 13 + version) % 155) + ",\"lastseen\":" +
         std::to_string((node + i) % 9) + ".2" + std::to_string(i % 10) + ",\"ifname\":\"mesh0\"},";
  s += "\"end\":true}}";
  return {s.begin(), s.end()};
}

struct Run {
  std::uint64_t bytes = 0;  // everything on the links, from the sets to two periods after all held
  Duration took{};
  bool converged = false;
  std::uint64_t packed = 0, pack_in = 0, pack_out = 0;
  Contents held;  // the first primary's store at the end
};

// 3 primaries + 30 secondaries, settled; every node sets its JSON record
// (sessions are up, so they go promptly and as full syncs after); then one
// in three changes it, twice.
Run json_mesh(bool packed, bool delta, std::uint32_t seed) {
  Sim sim({.loss = 0.02, .period = 10s, .seed = seed});
  NodeOptions o;
  o.packed = packed;
  o.delta = delta;
  auto m = build(sim, 3, 30, o);
  EXPECT_TRUE(settle(sim, m, 90s));
  Run r;
  auto before = sim.traffic().total();
  TimePoint start = sim.now();
  for (auto* n : m.all()) n->set(one_record(158, node_json(n->id(), 0)));
  r.converged = sim.run_until([&] { return primaries_hold(m); }, 30s, 5ms);
  for (int round = 1; round <= 2; ++round) {
    sim.run_for(sim.period());
    for (auto* n : m.all())
      if (n->id() % 3 == round % 3) n->set(one_record(158, node_json(n->id(), round)));
    r.converged = r.converged && sim.run_until([&] { return primaries_hold(m); }, 30s, 5ms);
  }
  r.took = sim.now() - start;
  sim.run_for(2 * sim.period());
  r.bytes = sim.traffic().total() - before;
  for (auto* n : m.all()) {
    auto s = n->pack_stats();
    r.packed += s.packed;
    r.pack_in += s.bytes_in;
    r.pack_out += s.bytes_out;
  }
  std::string why;
  EXPECT_TRUE(primaries_hold(m, &why)) << why;
  r.held = contents(*m.primaries[0]);
  return r;
}

TEST(PackedSim, JsonNodeDataTakesLessOfTheLinkAndEndsTheSame) {
  for (bool delta : {false, true}) {
    auto plain = json_mesh(false, delta, 3);
    auto packed = json_mesh(true, delta, 3);
    std::printf("33 nodes, 2 KB of JSON each, set then changed twice, 2%% loss, %s: %llu bytes as is, %llu "
                "packed (%.0f%%; %llu frames, %.1fx); all held after %.1f s and %.1f s\n",
                delta ? "delta sync" : "full sync", static_cast<unsigned long long>(plain.bytes),
                static_cast<unsigned long long>(packed.bytes), 100.0 * packed.bytes / plain.bytes,
                static_cast<unsigned long long>(packed.packed),
                packed.pack_out ? static_cast<double>(packed.pack_in) / packed.pack_out : 0.0,
                std::chrono::duration<double>(plain.took).count(), std::chrono::duration<double>(packed.took).count());
    EXPECT_TRUE(plain.converged);
    EXPECT_TRUE(packed.converged);
    EXPECT_EQ(plain.packed, 0u);
    EXPECT_GT(packed.packed, 0u);
    EXPECT_LT(packed.bytes, plain.bytes * 2 / 3);
    EXPECT_EQ(packed.held, plain.held) << "the same stores either way";
    EXPECT_LE(packed.took, plain.took + 1s) << "no slower (within a second of loss's luck)";
  }
}

}  // namespace
}  // namespace alfred::sim
