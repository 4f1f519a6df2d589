#pragma once
// Test doubles for the engine's outside world: every effect is recorded.
#include <bitset>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/effects.hpp"

namespace alfred::test {

inline Mac mac_of(int n) { return Mac{0x02, 0, 0, 0, static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)}; }

inline PeerAddress addr_of(const Mac& m) {
  PeerAddress a;
  auto ll = wire::mac_to_link_local(m);
  std::copy(ll.begin(), ll.end(), a.ip.begin());
  return a;
}

inline Route route_of(int n, const std::string& iface = "mesh0") {
  return Route{iface, addr_of(mac_of(n)), mac_of(n), 0};
}

struct FakeEffects : Effects {
  struct Sent {
    Route to;
    std::vector<std::uint8_t> packet;
  };
  struct Push {
    Route to;
    PushKind kind;
    std::vector<std::vector<std::uint8_t>> packets;  // the encoded transaction
  };
  struct Reply {
    ClientId client;
    Snapshot records;
    std::uint16_t tx_id;
    bool error;
  };
  std::vector<Sent> sent;
  std::vector<Push> pushes;
  std::vector<std::pair<Route, wire::Request>> requests;
  std::vector<Reply> replies;
  std::vector<std::pair<std::uint8_t, Mac>> events;
  std::vector<std::bitset<256>> commands;
  std::vector<std::vector<std::string>> reconfigured;
  std::vector<std::string> logs;
  std::vector<Route> kept;  // keep_session

  void send_packet(const Route& to, std::vector<std::uint8_t> packet) override {
    sent.push_back({to, std::move(packet)});
  }
  void send_push(const Route& to, wire::PushEncoder tx, PushKind kind) override {
    Push p{to, kind, {}};
    std::vector<std::uint8_t> pkt;
    while (tx.next(pkt)) p.packets.push_back(pkt);
    pushes.push_back(std::move(p));
  }
  void forward_request(const Route& to, const wire::Request& r) override { requests.push_back({to, r}); }
  void keep_session(const Route& to) override { kept.push_back(to); }
  void reply_records(ClientId c, Snapshot records, std::uint16_t id) override {
    replies.push_back({c, std::move(records), id, false});
  }
  void reply_error(ClientId c, std::uint16_t id) override { replies.push_back({c, {}, id, true}); }
  void event(std::uint8_t type, const Mac& source) override { events.push_back({type, source}); }
  void run_update_command(const std::bitset<256>& t) override { commands.push_back(t); }
  void reconfigure_interfaces(const std::vector<std::string>& n) override { reconfigured.push_back(n); }
  void log(std::string_view m) override { logs.emplace_back(m); }
};

struct FakeTq : TqSource {
  std::map<Mac, std::uint8_t> values;
  bool ok = true;
  int calls = 0;
  std::map<Mac, std::uint8_t> tq(const std::string&, const std::vector<Mac>&, bool& ok_out) override {
    ++calls;
    ok_out = ok;
    return values;
  }
  std::set<Mac> mesh;  // what batman-adv's translation table holds
  int mesh_calls = 0;
  std::set<Mac> mesh_addresses(const std::string&, bool& ok_out) override {
    ++mesh_calls;
    ok_out = ok;
    return mesh;
  }
};

}  // namespace alfred::test
