#pragma once
// The alfred protocol state machine: primary/secondary roles, transactions,
// the store and the unix-socket operations. It is fed decoded input, a clock
// and addresses, and acts only through Effects, so it runs the same in the
// daemon and in a simulated mesh.
#include <bitset>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/effects.hpp"
#include "engine/log_limiter.hpp"
#include "engine/recent_completions.hpp"
#include "engine/refresh_outcome.hpp"
#include "engine/request_budget.hpp"
#include "engine/transactions.hpp"
#include "store/store.hpp"
#include "wire/packet.hpp"
#include "wire/session_frames.hpp"

namespace alfred {

struct EngineConfig {
  wire::Mode mode = wire::Mode::Secondary;
  std::vector<std::string> interfaces;  // empty with "-i none"
  bool interfaces_disabled = false;     // "-i none"
  std::string bat_iface = "bat0";       // "none" disables TQ based selection
  bool update_command = false;          // collect changed types for -c
  // A primary forwards records that changed first-hand (from its own clients
  // or its secondaries) to the other primaries this long after the change,
  // instead of at its next period. Zero: only at the period, as upstream.
  Duration prompt_sync_delay{};
  // A first-hand record not sent to us by its source for this long is no
  // longer ours to sync (Store::demote_first_hand): a secondary pushes every
  // period, so this is several of its periods with a lost push or two.
  Duration first_hand_hold{std::chrono::seconds(30)};
  TransactionTable::Limits limits{};
  RequestBudget::Limits requests{};
  // Primaries known per interface. Each gets a full sync every period, so
  // the table is what an announcement (4 spoofable bytes) can make us send.
  // Deployed meshes run a few primaries (gateways, servers); data reaches a
  // primary only from primaries that know it, so the cap is set far above
  // that. When full, a new one takes the place of the one heard longest ago,
  // if that was more than kServerStale ago.
  std::size_t max_servers_per_interface = 256;
  // Bytes of periodic full syncs to other primaries per period; 0: no limit.
  // Past it the primaries take turns (see sync_primaries).
  std::size_t sync_budget_bytes = 0;
  // Memory all answers to network requests still being sent may hold (their
  // snapshots and the records in them); past it requests are dropped.
  std::size_t max_answer_bytes = 32u << 20;
  Store::Limits store{};
};

// "a,b,a" -> {"a", "b"}: the order kept, empty names and repeats dropped.
std::vector<std::string> parse_interface_list(const std::string& list);

class Engine {
 public:
  static constexpr std::chrono::seconds kServerTimeout{60};
  static constexpr std::chrono::seconds kServerStale{25};
  // The translation table of a large mesh has a few thousand entries; more
  // than this are not kept.
  static constexpr std::size_t kMaxMeshAddresses = 65536;
  // A primary hands a newly heard primary its first-hand data at once (a
  // restarted one would otherwise miss what changed until our next period);
  // at most this many a period, so a flood of announcements costs little.
  static constexpr int kWelcomesPerPeriod = 8;

  Engine(EngineConfig config, Effects& effects, TqSource& tq,
         std::function<std::uint16_t()> random_id);

  // --- interfaces, as the transport opens and loses them
  void interface_up(const std::string& name, const Mac& mac, const PeerAddress& own);
  void interface_down(const std::string& name);

  // --- network input: a datagram or a packet cut from a stream. `from.mac`
  // has been resolved by the transport (EUI-64 or neighbour table).
  void on_packet(const Route& from, std::span<const std::uint8_t> bytes, TimePoint now);

  // --- a delta-sync refresh that came on an inbound session from
  // `from.mac` (wire/session_frames.hpp): the records we hold as it does are
  // kept alive as if it had sent them again. Returns the keys it should send
  // after all (we hold none or another version), in the order it named them.
  // Only a primary takes refreshes (only primaries are sent data).
  RefreshOutcome on_refresh(const Route& from, std::span<const wire::RefreshEntry> entries,
                            TimePoint now);
  std::uint64_t refreshed_records() const { return refreshed_; }

  // --- unix-socket operations; false means "refused" (the client is closed).
  bool ipc_set_data(const wire::PushData& push, TimePoint now);
  void ipc_request(ClientId client, const wire::Request& request, TimePoint now);
  bool ipc_modeswitch(const wire::ModeSwitch& m);
  bool ipc_change_interface(const std::string& interfaces);
  void ipc_change_bat_iface(const std::string& bat_iface);
  wire::ServerStatus status() const;

  // --- time
  void on_sync_tick(TimePoint now);
  void on_timer(TimePoint now);  // transaction timeouts
  std::optional<TimePoint> next_deadline() const;

  // --- introspection
  wire::Mode mode() const { return mode_; }
  const Store& store() const { return store_; }
  const TransactionTable& transactions() const { return transactions_; }
  const RequestBudget& request_budget() const { return requests_; }
  std::size_t answers_in_flight_bytes() const { return *answers_live_; }
  // The last packet fed in completed (and applied) transaction `id` of
  // `peer`, or was the txend of one a copy of it completed a moment ago.
  bool just_completed(const Mac& peer, std::uint16_t id) const {
    return last_completed_ && last_completed_->peer == peer && last_completed_->id == id;
  }
  std::optional<Route> best_server() const;
  std::vector<Route> servers() const;
  const std::string& bat_iface() const { return bat_iface_; }

  // Whether batman-adv knows `m` as an originator, as of the last tick that
  // was crowded (a full primary table, a short sync budget, or the
  // transport's outbound cap); false otherwise and with -b none.
  bool in_mesh(const Mac& m) const { return mesh_addresses_.count(m) != 0; }
  // The transport is at its outbound cap: ask batman-adv at the next tick.
  void crowded() { crowded_ = true; }

 private:
  struct Server {
    PeerAddress addr;
    TimePoint last_seen;
    TimePoint last_full_sync{};  // our last periodic sync to it, or when it was admitted
    std::uint8_t tq = 0;
  };
  struct Iface {
    std::string name;
    bool active = false;
    Mac mac{};
    PeerAddress own;
    std::map<Mac, Server> servers;
    std::set<std::pair<TimePoint, Mac>> heard;  // servers by last_seen
  };

  Iface* find_iface(const std::string& name);
  const Iface* first_active() const;
  void handle_push(const Route& from, const wire::PushData& push,
                   std::span<const std::uint8_t> bytes, TimePoint now);
  // When a transaction opened by a packet from `from` ends, complete or not
  // (TransactionTable::kDatagramLifetime for datagrams).
  static TimePoint end_of_life(const Route& from, TimePoint now);
  void handle_txend(const Route& from, const wire::TxEnd& end, TimePoint now);
  void handle_announce(const Route& from, TimePoint now);
  void handle_request(const Route& from, const wire::Request& req, TimePoint now);
  void finish_if_complete(const TransactionTable::Key& key, const Route& from);
  void apply(const Mac& sender, const std::vector<std::uint8_t>& packet, TimePoint now);
  void finish_client(ClientId client, std::uint8_t type, std::uint16_t id);
  void announce(const Iface& i);
  // A secondary's push of its own records (the tick's, an adoption's, a
  // prompt one); nothing when there are none.
  void push_local(const Route& to, Snapshot records, PushKind kind);
  void welcome(const Route& to);
  void update_tq();
  // While a primary table was full in the last period: what batman-adv knows
  // is in the mesh, so that real primaries get in past forged ones.
  void refresh_mesh_addresses(TimePoint now);
  void choose_best_server();
  void expire(TimePoint now);
  void expire_servers(TimePoint now);
  void note_changed(std::uint8_t type);
  void note_first_hand_change(std::uint8_t type, const Mac& source, TimePoint now);
  // periodic: the full sync of a tick, which the sync budget applies to.
  void sync_primaries(std::shared_ptr<const Snapshot> snap, bool periodic, TimePoint now);
  // A per-packet diagnostic, at most one line a second of each kind; the
  // line is only built when it is logged.
  template <class Line>
  void log_limited(std::string_view kind, TimePoint now, Line&& line) {
    if (auto suffix = drop_log_.admit(kind, now)) fx_.log(line() + *suffix);
  }

  wire::Mode mode_;
  bool interfaces_disabled_;
  std::string bat_iface_;
  bool update_command_;
  Effects& fx_;
  TqSource& tq_;
  std::function<std::uint16_t()> random_id_;
  std::vector<Iface> ifaces_;
  std::optional<std::pair<std::string, Mac>> best_;  // interface, server MAC
  Store store_;
  TransactionTable transactions_;
  RequestBudget requests_;
  LogLimiter drop_log_;
  std::size_t max_servers_;
  // This period a new primary found its table full, or the sync budget did
  // not reach every primary.
  bool crowded_ = false;
  std::set<Mac> mesh_addresses_;  // batman-adv's translation table, when last asked
  std::size_t sync_budget_;
  std::size_t sync_spent_ = 0;  // bytes of syncs since the last tick
  int welcomes_left_ = kWelcomesPerPeriod;
  std::optional<TransactionTable::Key> last_completed_;
  RecentCompletions recent_;
  // The first-hand snapshot welcomes share until something first-hand
  // changes: one snapshot, not one per newcomer.
  std::shared_ptr<const Snapshot> welcome_snap_;
  std::size_t max_answer_bytes_;
  // Bytes held by answers in flight; their snapshots' deleters count down.
  std::shared_ptr<std::size_t> answers_live_ = std::make_shared<std::size_t>(0);
  std::bitset<256> changed_types_;
  Duration prompt_delay_;
  Duration first_hand_hold_;
  std::set<std::pair<std::uint8_t, Mac>> prompt_keys_;  // changed since the last sync
  std::optional<TimePoint> prompt_at_;
  std::uint64_t refreshed_ = 0;
};

}  // namespace alfred
