#pragma once
// The in-process mesh simulator: whole daemons' protocol cores in one
// process on a virtual clock, talking through the simulated network of
// sim_tcp.hpp (frame loss, partitions, TCP's retransmission timing).
//
// Each SimNode is what net::Daemon and net::TcpTransport make of the sans-I/O
// core, with the sockets replaced and nothing else changed:
// - the Effects are Daemon's (send_push, forward_request, keep_session: with
//   -t everything for a peer goes on its session unless the peer is UDP-only
//   or speaks the 2016 framing; then one connection per transaction for what
//   would fragment and for changes, else datagrams);
// - the transport is TcpTransport's: one link::SessionLink per peer we send
//   to (Peer), a Connection per TCP connection (Conn below, the same
//   branches as tcp_transport.cpp's: which packets go to the engine, the
//   primary's hello taken as its announcement, an acknowledgement only when
//   Engine::just_completed after a txend on a session, replies on the
//   stream they were asked on, one-transaction pushes and requests, the
//   UDP fallbacks and the UDP-only / 2016-framing marks);
// - the timers: the engine's (Daemon::arm_tx_timer), the period, and the
//   transport's 250 ms sweep (connect timeouts, link-down detection, session
//   timers, responder keepalives and dead peers, idle connections). The sweep
//   runs on each node's own 250 ms grid, but only at the grid points where
//   something is due (and every second while a session holds transactions,
//   for SessionLink's pruning), so a quiet mesh costs no events.
// The link-down test (TCP_INFO: the first unacknowledged segment
// retransmitted 4 times and nothing acknowledged for 5 s) is answered from
// the simulated connection's retransmission schedule (Sim::link_down).
// What is left out: IPv4/ARP, several interfaces, the UDP send queues'
// priorities and limits, partial-packet and stalled-reader timeouts (packets
// arrive whole and writes complete at once), the StreamReader (packets are
// handed over whole; our encoder's are well formed), the log limiters and
// the bounds on the UDP-only / 2016-framing marks. A close always sends a
// FIN (a kernel resets instead when unread data is left); a connection
// refused after the handshake (the acceptor's limits) is reset.
//
// Determinism: everything random (loss, the nodes' start phases, session
// backoff seeds, transaction ids) comes from the Sim's one generator, seeded
// from SimConfig::seed. ALFRED_SIM_TRACE=1 prints every node's log lines
// with the virtual time.
#include <algorithm>
#include <bitset>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.hpp"
#include "fake_effects.hpp"
#include "link/session_link.hpp"
#include "link/session_responder.hpp"
#include "net/tcp_transport.hpp"
#include "sim_tcp.hpp"
#include "wire/session_frames.hpp"

namespace alfred::sim {

using test::addr_of;
using test::mac_of;

// The arrival of what TCP gave up on.
inline constexpr TimePoint kNever = TimePoint{} + std::chrono::hours(24 * 365 * 100);

inline std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
inline long long ms_of(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

// Ours: this daemon. Debian: upstream alfred, UDP only, no TCP listener (a
// connect is reset). Legacy2016: a peer of the 2016 proposal's framing: it
// listens, takes one transaction per connection and closes the connection
// on a session hello (an unknown type); it sends by UDP itself.
// Firewalled: upstream alfred behind a firewall that drops TCP (a connect
// to it times out), as an address that only announces looks.
enum class Software { Ours, Debian, Legacy2016, Firewalled };

struct NodeOptions {
  wire::Mode mode = wire::Mode::Secondary;
  Software software = Software::Ours;
  bool tcp = true;                 // the daemon's -t (ours only)
  std::string bat_iface = "none";  // else TQ comes from the node's FakeTq
  std::optional<Duration> prompt;  // EngineConfig::prompt_sync_delay, if not the daemon's
  bool udp_copies = true;          // SessionLimits::udp_copy_max_bytes as the daemon's, else 0
  bool delta = true;               // SessionLimits::delta
  bool packed = true;              // SessionLimits::packed
};

struct SimConfig {
  double loss = 0.0;  // frame loss rate (NetModel::loss)
  Duration period = 10s;
  std::uint32_t seed = 1;
  NetModel net{};
};

// What the daemon derives from its command line (daemon.cpp's
// engine_config and tcp_limits).
inline EngineConfig daemon_engine_config(const NodeOptions& o, Duration period) {
  EngineConfig c;
  c.mode = o.mode;
  c.interfaces = {"mesh0"};
  c.bat_iface = o.bat_iface;
  c.prompt_sync_delay = o.prompt ? *o.prompt : std::min<Duration>(period / 4, std::chrono::milliseconds(100));
  c.first_hand_hold = std::max<Duration>(3 * period, std::chrono::seconds(30));
  c.store.first_hand_guard = std::clamp<Duration>(2 * period, std::chrono::seconds(1), c.first_hand_hold);
  double seconds = std::max(std::chrono::duration<double>(period).count(), 0.0);
  c.sync_budget_bytes = std::max<std::size_t>(16u << 20, static_cast<std::size_t>(seconds * (4u << 20)));
  return c;
}
inline net::TcpLimits daemon_tcp_limits(Duration period) {
  net::TcpLimits l;
  l.session.idle_close = std::max<Duration>(std::chrono::seconds(120), 3 * period);
  return l;
}

struct NodeStats {
  std::uint64_t udp_pushes = 0;       // transactions sent as datagrams
  std::uint64_t legacy_pushes = 0;    // transactions on a connection of their own
  std::uint64_t session_pushes = 0;   // transactions handed to a session
  std::uint64_t acks = 0;             // transactions completed on inbound sessions, acknowledged
  std::uint64_t refreshed = 0;        // records kept alive by delta-sync refreshes
  std::uint64_t unpacked = 0;         // packed frames taken (compression)
  std::uint64_t wanted = 0;           // records asked for again after a refresh
  std::map<Mac, std::uint64_t> acked_from;
  std::uint64_t sessions_up = 0, sessions_down = 0;
  std::uint64_t connects = 0, refused = 0, connect_timeouts = 0, link_down = 0;
};

class Sim;

class SimNode final : public Effects {
 public:
  SimNode(Sim& sim, int id, NodeOptions options);
  SimNode(const SimNode&) = delete;
  SimNode& operator=(const SimNode&) = delete;

  // --- Effects, as net::Daemon implements them
  void send_packet(const Route& to, std::vector<std::uint8_t> packet) override;
  void send_push(const Route& to, wire::PushEncoder tx, PushKind kind) override;
  void forward_request(const Route& to, const wire::Request& request) override;
  void keep_session(const Route& to) override;
  void reply_records(ClientId c, Snapshot records, std::uint16_t) override { answers[c] = std::move(records); }
  void reply_error(ClientId c, std::uint16_t) override { errors.push_back(c); }
  void event(std::uint8_t, const Mac&) override {}
  void run_update_command(const std::bitset<256>&) override {}
  void reconfigure_interfaces(const std::vector<std::string>&) override {}
  void log(std::string_view m) override { trace(m); }

  int id() const { return id_; }
  Mac mac() const { return mac_of(id_); }
  PeerAddress addr() const { return addr_of(mac()); }
  Route route() const { return Route{"mesh0", addr(), mac(), 0}; }
  const NodeOptions& options() const { return opts_; }
  bool running() const { return running_; }
  // When this incarnation's next periodic tick is due.
  TimePoint next_tick() const { return next_tick_; }
  bool listening() const {
    return running_ && opts_.software != Software::Debian && opts_.software != Software::Firewalled;
  }
  bool drops_tcp() const { return opts_.software == Software::Firewalled; }
  Engine& engine() { return *engine_; }
  test::FakeTq& tq() { return tq_; }
  NodeStats stats;
  std::map<ClientId, Snapshot> answers;
  std::vector<ClientId> errors;

  // Unix-socket operations, as Daemon::on_ipc does them.
  bool set(const wire::PushData& push);
  void request(ClientId client, const wire::Request& r);

  // The session to a peer, if there is one (introspection for tests).
  const link::SessionLink* session(const PeerAddress& to) const;
  // UDP copies sent by the session links this node holds now.
  std::uint64_t udp_copies() const;
  // Delta sync as the session links this node holds now did it.
  link::SessionLink::DeltaStats delta_stats() const;
  link::SessionLink::PackStats pack_stats() const;
  std::size_t connections() const { return conns_.size(); }
  bool udp_only(const PeerAddress& peer) const;
  bool legacy(const PeerAddress& peer) const;

  // --- driven by Sim
  void start(bool first);
  void stop();  // the daemon is gone: no callbacks, its sockets closed by Sim
  void tick();
  void udp_in(const Route& from, std::vector<std::uint8_t> packet);
  bool tcp_accept(ConnectionId id, const SimNode& from);
  void tcp_connected(ConnectionId id, bool retried);
  void tcp_refused(ConnectionId id);
  void tcp_packet(ConnectionId id, std::vector<std::uint8_t> packet);
  void tcp_eof(ConnectionId id);
  void tcp_reset(ConnectionId id);
  // After anything that may have changed a deadline: re-arm the engine's
  // timer and the transport's sweep.
  void after();

  bool tracing() const;
  void trace(std::string_view line) const;

 private:
  class Conn;
  struct Peer;
  friend class Sim;

  TimePoint now() const;
  void deliver(const Route& from, std::span<const std::uint8_t> packet);
  void udp_push(const Route& to, wire::PushEncoder tx);

  // --- TcpTransport
  std::shared_ptr<Conn> find_conn(ConnectionId id) const;
  std::shared_ptr<Conn> open(const Route& to, int kind);
  void forget(ConnectionId id) { conns_.erase(id); }
  void tcp_push(const Route& to, wire::PushEncoder tx);
  void tcp_request(const Route& to, const wire::Request& request);
  bool push_busy(const PeerAddress& peer) const;
  Peer* session_peer(const PeerAddress& peer, ConnectionId conn);
  Peer& session_for(const Route& to);
  void open_session(Peer& p);
  void session_ended(const PeerAddress& peer, ConnectionId conn, link::CloseCause cause, const std::string& why);
  void mark_legacy(const PeerAddress& peer);
  void peer_answered(const PeerAddress& peer) {
    silent_.erase(peer);
  }
  void peer_failed(const PeerAddress& peer, const std::string& why, bool timed_out);
  std::size_t count(const PeerAddress* peer) const;
  bool evict_unused();
  bool reply(ConnectionId conn, wire::PushEncoder tx);
  void sweep();
  std::optional<TimePoint> sweep_due() const;
  void arm_engine();
  void arm_sweep();

  Sim& sim_;
  int id_;
  NodeOptions opts_;
  net::TcpLimits limits_;
  test::FakeTq tq_;
  std::unique_ptr<Engine> engine_;
  bool running_ = false;
  std::uint64_t epoch_ = 0;  // a restart makes the old incarnation's events void
  Duration sweep_phase_{};
  std::optional<TimePoint> engine_at_, sweep_at_;
  TimePoint last_sweep_{}, next_tick_{};
  std::uint64_t engine_gen_ = 0, sweep_gen_ = 0;
  std::map<ConnectionId, std::shared_ptr<Conn>> conns_;
  std::map<PeerAddress, std::unique_ptr<Peer>> peers_;
  std::map<PeerAddress, TimePoint> udp_only_until_, legacy_until_;
  std::map<PeerAddress, net::Silence> silent_;
};

class Sim {
 public:
  explicit Sim(SimConfig c) : config_(c), net_(with_loss(c), c.seed) {}
  Sim(const Sim&) = delete;
  Sim& operator=(const Sim&) = delete;

  SimNode& add(wire::Mode mode, NodeOptions o = {}) {
    o.mode = mode;
    int id = static_cast<int>(nodes_.size()) + 1;
    nodes_.push_back(std::make_unique<SimNode>(*this, id, o));
    by_addr_[nodes_.back()->addr()] = id;
    nodes_.back()->start(true);
    return *nodes_.back();
  }
  SimNode& node(int id) { return *nodes_.at(static_cast<std::size_t>(id - 1)); }
  SimNode* node_at(const PeerAddress& a) {
    auto it = by_addr_.find(a);
    return it == by_addr_.end() ? nullptr : nodes_[static_cast<std::size_t>(it->second - 1)].get();
  }
  std::vector<std::unique_ptr<SimNode>>& nodes() { return nodes_; }

  TimePoint now() const { return loop_.now(); }
  Duration period() const { return config_.period; }
  EventLoop& loop() { return loop_; }
  Net& net() { return net_; }
  std::mt19937& rng() { return net_.rng(); }
  void run_until(TimePoint t) { loop_.run_until(t); }
  void run_for(Duration d) { loop_.run_until(now() + d); }
  // Runs in steps until `done()` or `limit` has passed; whether it is done.
  bool run_until(const std::function<bool()>& done, Duration limit, Duration step = 10ms) {
    TimePoint end = now() + limit;
    while (!done()) {
      if (now() >= end) return false;
      run_until(std::min(end, now() + step));
    }
    return true;
  }

  // --- what a test injects
  // Nodes a and b (b = 0: a and everyone) cannot reach each other for `d`
  // from now: datagrams are lost, connects time out, segments of
  // established connections wait (TCP's RTO schedule) until it is over.
  void partition(int a, int b, Duration d);
  // A link break both sides notice at once (an interface flap, a reset):
  // every connection between a and b ends with a reset at both ends, what
  // was in flight is gone. Returns how many there were.
  int reset_connections(int a, int b);
  // The daemon on `id` is killed and started again `downtime` later: its
  // kernel closes its sockets (peers read a FIN), meanwhile connects to it
  // are reset and datagrams dropped, and the new daemon starts empty.
  void restart(int id, Duration downtime);

  // --- observers: after each packet a node's transport handed over
  // (packets of a TCP stream, and datagrams), with the node it came from.
  std::function<void(SimNode& at, const Mac& from, std::span<const std::uint8_t> packet, bool tcp)> on_packet;

  // --- used by the nodes
  ConnectionId next_conn_id() { return next_conn_++; }
  void udp(int from, const Route& to, std::vector<std::uint8_t> packet);
  void tcp_connect(int from, ConnectionId id, const PeerAddress& to);
  void tcp_write(ConnectionId id, int from, std::vector<std::uint8_t> packet);
  // A FIN from `from`'s end; close_end: the end is gone (a close, not a
  // shutdown of the sending side), nothing more reaches it.
  void tcp_fin(ConnectionId id, int from, bool close_end);
  // `from` resets the connection (SO_LINGER 0): what it had in flight is
  // gone, and its RST reaches the other end if a segment would.
  void tcp_abort(ConnectionId id, int from);
  // The daemon's link-down test (Connection::check): the first unacknowledged
  // segment `from` sent was retransmitted 4 times and nothing was
  // acknowledged for 5 s. With `when`: the time that will be true, if it will.
  bool link_down(ConnectionId id, int from, TimePoint now) const;
  std::optional<TimePoint> link_down_at(ConnectionId id, int from) const;
  std::uint64_t tcp_packets_delivered() const { return delivered_; }
  // Bytes sent on the link, headers included: a datagram's IPv6 and UDP
  // headers (and a fragment header per fragment when it is cut), a TCP
  // write's IPv6 and TCP headers (with timestamps) per segment, and one
  // pure acknowledgement per two segments the other way. Retransmissions
  // are not counted. What the delta-sync comparisons measure.
  struct Traffic {
    std::uint64_t udp = 0, tcp = 0;
    std::uint64_t total() const { return udp + tcp; }
  };
  const Traffic& traffic() const { return traffic_; }

 private:
  static NetModel with_loss(const SimConfig& c) {
    NetModel m = c.net;
    m.loss = c.loss;
    return m;
  }
  struct Flight {
    TimePoint sent{}, arrival{};
    Duration rto{};  // the RTO its first transmission had
    std::vector<std::uint8_t> packet;
    bool fin = false;
  };
  struct Dir {
    TimePoint last_arrival{};
    TimePoint last_ack{};  // when the last segment of this direction was acknowledged
    Duration rto{};
    std::deque<Flight> flight;
    bool fin_sent = false;
  };
  struct Wire {
    int end[2] = {0, 0};  // node ids: opener, acceptor
    bool established = false;
    bool open[2] = {true, false};
    Dir dir[2];  // dir[i]: from end[i] to end[1 - i]
    int side_of(int node) const { return end[0] == node ? 0 : 1; }
  };
  void send_flight(ConnectionId id, Wire& w, int side, Flight f);
  void arrive(ConnectionId id, int dir);
  void connect_answered(ConnectionId id, bool retried);

  SimConfig config_;
  EventLoop loop_;
  Net net_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::map<PeerAddress, int> by_addr_;
  std::map<ConnectionId, Wire> wires_;
  ConnectionId next_conn_ = 1;
  Traffic traffic_;
  std::uint64_t delivered_ = 0;
};

// ------------------------------------------------------------------ the transport

// TcpTransport::Peer: a session we open to a peer.
struct SimNode::Peer final : link::SessionEvents {
  Peer(SimNode& n, Route r, std::uint32_t seed) : n(n), to(std::move(r)), link(*this, n.limits_.session, seed) {}
  void open_connection() override { n.open_session(*this); }
  void close_connection(std::string_view why) override;
  void wake() override;
  void push_by_udp(wire::PushEncoder tx) override { n.udp_push(to, std::move(tx)); }
  void push_by_legacy(wire::PushEncoder tx) override { n.tcp_push(to, std::move(tx)); }
  void request_by_udp(const wire::Request& r) override { n.send_packet(to, wire::encode(r)); }
  void request_by_legacy(const wire::Request& r) override { n.tcp_request(to, r); }
  void learned(bool speaks_sessions) override {
    if (speaks_sessions) {
      ++n.stats.sessions_up;
      n.legacy_until_.erase(to.addr);
    } else {
      n.mark_legacy(to.addr);
    }
  }
  bool logging() const override { return n.tracing(); }
  void log(std::string_view line) override {
    if (n.tracing()) n.trace("session to " + std::to_string(n.sim_.node_at(to.addr) ? n.sim_.node_at(to.addr)->id() : 0) + ": " + std::string(line));
  }

  SimNode& n;
  Route to;
  link::SessionLink link;
  ConnectionId conn_id = 0;
};

// TcpTransport::Connection: one TCP connection, accepted or opened by us.
class SimNode::Conn : public std::enable_shared_from_this<SimNode::Conn> {
 public:
  enum class Kind { Inbound, Push, Request, Session };

  Conn(SimNode& n, ConnectionId id, Kind kind, PeerAddress peer, Mac mac)
      : n_(n), id_(id), kind_(kind), peer_(peer), mac_(mac), opened_(n.now()), last_activity_(opened_),
        responder_(n.limits_.session) {
    connecting_ = kind != Kind::Inbound;
  }

  ConnectionId id() const { return id_; }
  Kind kind() const { return kind_; }
  const PeerAddress& peer() const { return peer_; }
  bool closed() const { return closed_; }
  bool streaming() const { return !connecting_ && !closed_; }
  std::optional<Duration> inbound_session_unused(TimePoint now) const {
    if (closed_ || kind_ != Kind::Inbound || !responder_.active()) return std::nullopt;
    return responder_.unused_for(now);
  }

  void connect() {
    connect_deadline_ = n_.now() + n_.limits_.connect_timeout;
    n_.sim_.tcp_connect(n_.id_, id_, peer_);
  }
  // async_connect's handler.
  void connected() {
    if (closed_) return;
    connecting_ = false;
    ++n_.stats.connects;
    ever_connected_ = true;
    n_.peer_answered(peer_);
    last_activity_ = n_.now();
    if (kind_ == Kind::Session)
      if (Peer* p = n_.session_peer(peer_, id_)) p->link.connected(n_.now(), n_.engine_->mode() == wire::Mode::Primary);
    pump();
  }
  void refused() {
    if (closed_) return;
    connecting_ = false;
    ++n_.stats.refused;
    fail("connect: Connection refused");
  }

  bool send_reply(wire::PushEncoder tx) {
    if (closed_) return false;
    if (!job_) {
      send_transaction(std::move(tx), !responder_.active());
      return true;
    }
    if (replies_.size() >= n_.limits_.max_queued_replies) {
      close("too many pipelined requests");
      return false;
    }
    replies_.push_back(std::move(tx));
    return true;
  }
  void send_transaction(wire::PushEncoder tx, bool finish_after) {
    all_sent_ = job_done_ = false;
    original_ = tx.restarted();
    job_ = std::move(tx);
    finish_after_ = finish_after;
    if (!connecting_) pump();
  }
  void send_request(const wire::Request& req) {
    request_ = req;
    out_ = wire::encode(req);
    if (!connecting_) pump();
  }

  // `abort`: as the transport's, a reset that drops what was in flight.
  void close(const std::string& why, bool abort = false) {
    if (closed_) return;
    closed_ = true;
    link::CloseCause cause = !ever_connected_ ? (timed_out_ ? link::CloseCause::TimedOut : link::CloseCause::Refused)
                             : peer_done_     ? link::CloseCause::Closed
                                              : link::CloseCause::Failed;
    n_.trace("tcp " + std::to_string(id_) + ": closed (" + why + ")" + (abort ? ", reset" : ""));
    if (abort) n_.sim_.tcp_abort(id_, n_.id_);
    else n_.sim_.tcp_fin(id_, n_.id_, true);
    auto keep = shared_from_this();
    n_.forget(id_);
    if (kind_ == Kind::Session && !quiet_) n_.session_ended(peer_, id_, cause, why);
  }
  void close_quietly(const std::string& why, bool abort = false) {
    quiet_ = true;
    close(why, abort);
  }
  void kick() { pump(); }

  void fail(const std::string& why, bool timed_out = false) {
    if (closed_) return;
    auto self = shared_from_this();
    timed_out_ = timed_out;
    bool push_undelivered = kind_ == Kind::Push && original_ && !job_done_;
    bool request_unanswered = kind_ == Kind::Request && request_ && bytes_in_ == 0;
    close(why, /*abort=*/ever_connected_);
    if (push_undelivered || request_unanswered) {
      n_.peer_failed(peer_, why, timed_out);
      Route r{"mesh0", peer_, mac_, 0};
      if (push_undelivered) n_.udp_push(r, original_->restarted());
      if (request_unanswered) n_.send_packet(r, wire::encode(*request_));
    }
  }

  // The sweep's check.
  void check(TimePoint now) {
    if (closed_) return;
    if (connecting_) {
      if (now >= connect_deadline_) {
        ++n_.stats.connect_timeouts;
        fail("no answer within the connect timeout", true);
      }
      return;
    }
    if (kind_ == Kind::Session) {
      if (n_.sim_.link_down(id_, n_.id_, now)) {
        ++n_.stats.link_down;
        fail("link down? nothing acknowledged for 5 s, 4 retransmissions");
      }
      return;
    }
    if (responder_.active()) {
      switch (responder_.on_timer(now)) {
        case link::SessionResponder::Tick::Dead:
          close("session peer silent");
          return;
        case link::SessionResponder::Tick::Write:
          pump();
          return;
        case link::SessionResponder::Tick::Nothing:
          return;
      }
    }
    if (now - last_activity_ >= n_.limits_.idle_timeout) close("idle");
  }
  // When check() has something to do, as far as can be told now.
  std::optional<TimePoint> due() const {
    if (closed_) return std::nullopt;
    if (connecting_) return connect_deadline_;
    if (kind_ == Kind::Session) return n_.sim_.link_down_at(id_, n_.id_);
    if (responder_.active())
      return std::min(resp_rx_ + n_.limits_.session.dead_after, resp_tx_ + n_.limits_.session.keepalive_every);
    return last_activity_ + n_.limits_.idle_timeout;
  }

  // --- what the socket reads: a whole packet, the peer's FIN, a reset
  void on_bytes(std::vector<std::uint8_t> packet) {
    if (closed_) return;
    bytes_in_ += packet.size();
    last_activity_ = n_.now();
    Route from{"mesh0", peer_, mac_, id_};
    on_packet(from, packet);
  }
  void on_eof() {
    if (closed_) return;
    peer_done_ = true;
    if (kind_ == Kind::Inbound && !responder_.active() && (writing_ || job_ || !out_.empty())) {
      // The peer half-closed after its request; finish the answer first.
    } else if (kind_ == Kind::Push && !job_done_) {
      fail("peer closed before the transaction was sent");
    } else if (kind_ == Kind::Request && bytes_in_ == 0) {
      fail("peer closed without answering");
    } else {
      close("peer closed");
    }
  }
  void on_reset() { fail("read: Connection reset by peer"); }

 private:
  void on_packet(const Route& from, std::span<const std::uint8_t> packet) {
    auto now = n_.now();
    bool first = first_packet_;
    first_packet_ = false;
    std::uint8_t type = packet[0];
    std::string error;
    if (kind_ == Kind::Session) {
      Peer* p = n_.session_peer(peer_, id_);
      if (!p) {
        close_quietly("session gone");
        return;
      }
      if (!p->link.on_packet(packet, now, error)) {
        bad_session(error);
        return;
      }
      if (type == static_cast<std::uint8_t>(wire::Type::PushData) ||
          type == static_cast<std::uint8_t>(wire::Type::StatusTxEnd)) {
        n_.deliver(from, packet);
      } else if (!wire::is_session_type(type)) {
        bad_session("a packet of type " + std::to_string(type) + " on our own session");
      }
      return;
    }
    if (kind_ == Kind::Inbound) {
      if (wire::is_session_type(type) && n_.opts_.software == Software::Legacy2016) {
        // The 2016 proposal's parser: an unknown type ends the stream.
        close("unknown packet type " + std::to_string(type));
        return;
      }
      responder_.heard(now);
      resp_rx_ = now;
      if (wire::is_session_type(type)) {
        bool was_active = responder_.active();
        if (!responder_.on_frame(packet, first, now, error)) {
          bad_session(error);
          return;
        }
        if (!was_active && responder_.active()) {
          resp_tx_ = now;
          if (responder_.peer_primary()) {
            Route r{"mesh0", peer_, mac_, id_};  // as the transport: the stream it came on
            n_.deliver(r, wire::encode(wire::AnnouncePrimary{}));
            if (closed_) return;
          }
        }
        if (type == static_cast<std::uint8_t>(wire::SessionType::Refresh)) {
          auto entries = responder_.take_refresh();
          auto outcome = n_.engine_->on_refresh(from, entries, now);
          if (outcome.kept) responder_.used(now);
          n_.stats.refreshed += outcome.kept;
          n_.stats.wanted += outcome.want.size();
          responder_.wanted(std::move(outcome.want));
        }
        if (type == static_cast<std::uint8_t>(wire::SessionType::Packed)) {
          auto inner = responder_.take_unpacked();
          ++n_.stats.unpacked;
          n_.deliver(from, inner);
          if (closed_) return;
        }
        pump();
        return;
      }
      n_.deliver(from, packet);
      if (closed_) return;
      if (type == static_cast<std::uint8_t>(wire::Type::Request)) responder_.used(now);
      if (responder_.active() && type == static_cast<std::uint8_t>(wire::Type::StatusTxEnd) && packet.size() >= 8) {
        std::uint16_t id = be16(packet.data() + 4), packets = be16(packet.data() + 6);
        if (n_.engine_->just_completed(mac_, id)) {
          responder_.used(now);
          responder_.completed(id, packets);
          ++n_.stats.acks;
          ++n_.stats.acked_from[mac_];
          pump();
        }
      }
      return;
    }
    if (wire::is_session_type(type)) {
      bad_session("a session frame on a connection that is not a session");
      return;
    }
    n_.deliver(from, packet);
  }

  void bad_session(const std::string& error) { close("bad session: " + error); }

  void pump() {
    if (closed_ || writing_ || connecting_) return;
    if (out_.empty()) {
      auto now = n_.now();
      if (kind_ == Kind::Session) {
        if (Peer* p = n_.session_peer(peer_, id_)) p->link.next_packet(out_, now);
        if (out_.empty()) return;
      } else if (responder_.active()) {
        if (responder_.next_frame(out_, now)) resp_tx_ = now;
      }
    }
    if (out_.empty() && job_ && !job_->next(out_)) {
      job_.reset();
      job_done_ = true;
    }
    if (out_.empty()) {
      if (job_done_ || (kind_ == Kind::Request && request_sent_)) on_all_sent();
      return;
    }
    writing_ = true;
    bytes_out_ += out_.size();
    n_.sim_.tcp_write(id_, n_.id_, std::move(out_));
    out_.clear();
    // async_write's handler: the kernel took the packet.
    auto self = shared_from_this();
    std::uint64_t epoch = n_.epoch_;
    n_.sim_.loop().post([self, epoch] {
      if (self->n_.epoch_ != epoch) return;
      self->writing_ = false;
      if (self->closed_) return;
      self->last_activity_ = self->n_.now();
      if (self->kind_ == Kind::Request) self->request_sent_ = true;
      self->pump();
      self->n_.after();
    });
  }

  void on_all_sent() {
    if (all_sent_) return;
    all_sent_ = true;
    if (kind_ == Kind::Request) return;
    if (kind_ == Kind::Inbound) {
      if (!replies_.empty()) {
        all_sent_ = job_done_ = false;
        job_ = std::move(replies_.front());
        replies_.pop_front();
        pump();
        return;
      }
      if (finish_after_) close("reply sent");
      return;
    }
    // A push: shutdown(send), then wait for the peer's close.
    n_.sim_.tcp_fin(id_, n_.id_, false);
    if (peer_done_) close("push sent");
  }

  SimNode& n_;
  ConnectionId id_;
  Kind kind_;
  PeerAddress peer_;
  Mac mac_;
  std::vector<std::uint8_t> out_;
  std::optional<wire::PushEncoder> job_, original_;
  std::deque<wire::PushEncoder> replies_;
  std::optional<wire::Request> request_;
  bool finish_after_ = false, job_done_ = false, all_sent_ = false, request_sent_ = false;
  bool writing_ = false, connecting_ = false, peer_done_ = false, closed_ = false;
  bool ever_connected_ = false, timed_out_ = false, quiet_ = false, first_packet_ = true;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
  TimePoint opened_, last_activity_, connect_deadline_{};
  link::SessionResponder responder_;
  TimePoint resp_rx_{}, resp_tx_{};  // the responder's clocks, mirrored to schedule the sweep
};

inline void SimNode::Peer::close_connection(std::string_view why) {
  if (auto c = n.find_conn(conn_id)) c->close_quietly(std::string(why), /*abort=*/true);
  conn_id = 0;
}

inline void SimNode::Peer::wake() {
  // Not from inside the link's own call (Peer::wake posts the kick).
  if (auto c = n.find_conn(conn_id)) {
    SimNode* node = &n;
    std::uint64_t epoch = n.epoch_;
    n.sim_.loop().post([c, node, epoch] {
      if (node->epoch_ != epoch) return;
      c->kick();
      node->after();
    });
  }
}

// ------------------------------------------------------------------ SimNode

inline SimNode::SimNode(Sim& sim, int id, NodeOptions options)
    : sim_(sim), id_(id), opts_(std::move(options)), limits_(daemon_tcp_limits(sim.period())) {
  if (!opts_.udp_copies) limits_.session.udp_copy_max_bytes = 0;
  limits_.session.delta = opts_.delta;
  limits_.session.packed = opts_.packed;
  if (opts_.software != Software::Ours) opts_.tcp = false;
  sweep_phase_ = std::chrono::duration_cast<Duration>(250ms * std::uniform_real_distribution<>(0, 1)(sim_.rng()));
}

inline TimePoint SimNode::now() const { return sim_.now(); }

inline bool SimNode::tracing() const {
  static const bool on = std::getenv("ALFRED_SIM_TRACE") != nullptr;
  return on;
}
inline void SimNode::trace(std::string_view line) const {
  if (!tracing()) return;
  std::fprintf(stderr, "%10.3f node %d: %.*s\n",
               std::chrono::duration<double>(now().time_since_epoch()).count() - 1000.0, id_,
               static_cast<int>(line.size()), line.data());
}

inline void SimNode::start(bool first) {
  running_ = true;
  ++epoch_;
  auto seed = static_cast<std::uint32_t>(sim_.rng()());
  auto ids = std::make_shared<std::mt19937>(seed);
  engine_ = std::make_unique<Engine>(daemon_engine_config(opts_, sim_.period()), *this, tq_,
                                     [ids] { return static_cast<std::uint16_t>((*ids)()); });
  // Nodes of the first mesh started at random moments before; a restarted
  // daemon has its first tick one period after its start.
  Duration first_tick = first ? std::chrono::duration_cast<Duration>(
                                    sim_.period() * std::uniform_real_distribution<>(0, 1)(sim_.rng()))
                              : sim_.period();
  // One tick chain per incarnation; it advances by whole periods.
  struct Ticker {
    static void arm(SimNode* n, std::uint64_t epoch, TimePoint at) {
      n->next_tick_ = at;
      n->sim_.loop().at(at, [n, epoch, at] {
        if (n->epoch_ != epoch) return;
        arm(n, epoch, at + n->sim_.period());
        n->tick();
      });
    }
  };
  Ticker::arm(this, epoch_, now() + first_tick);
  // The listener is up before the engine hears of the interface.
  engine_->interface_up("mesh0", mac(), addr());
  after();
}

inline void SimNode::stop() {
  running_ = false;
  ++epoch_;
  engine_at_.reset();
  sweep_at_.reset();
  ++engine_gen_;
  ++sweep_gen_;
  peers_.clear();
  conns_.clear();
  udp_only_until_.clear();
  legacy_until_.clear();
  silent_.clear();
  engine_.reset();
}

inline void SimNode::tick() {
  if (!running_) return;
  engine_->on_sync_tick(now());
  after();
}

inline bool SimNode::set(const wire::PushData& push) {
  bool ok = running_ && engine_->ipc_set_data(push, now());
  after();
  return ok;
}

inline void SimNode::request(ClientId client, const wire::Request& r) {
  if (!running_) return;
  engine_->ipc_request(client, r, now());
  after();
}

inline void SimNode::deliver(const Route& from, std::span<const std::uint8_t> packet) {
  engine_->on_packet(from, packet, now());
  arm_engine();
  if (sim_.on_packet) sim_.on_packet(*this, from.mac, packet, from.stream != 0);
}

inline void SimNode::udp_in(const Route& from, std::vector<std::uint8_t> packet) {
  if (!running_) return;
  deliver(from, packet);
  after();
}

inline void SimNode::send_packet(const Route& to, std::vector<std::uint8_t> packet) {
  sim_.udp(id_, to, std::move(packet));
}

inline void SimNode::udp_push(const Route& to, wire::PushEncoder tx) {
  ++stats.udp_pushes;
  std::vector<std::uint8_t> p;
  while (tx.next(p)) sim_.udp(id_, to, p);
}

inline void SimNode::send_push(const Route& to, wire::PushEncoder tx, PushKind kind) {
  if (kind == PushKind::Reply && to.stream) {
    if (!reply(to.stream, std::move(tx))) trace("tcp: requester went away before the answer");
    return;
  }
  bool tcp = opts_.tcp && !udp_only(to.addr);
  if (tcp && !legacy(to.addr)) {
    ++stats.session_pushes;
    session_for(to).link.send(std::move(tx), kind == PushKind::Sync, now());
    return;
  }
  bool by_tcp = tcp && ((kind == PushKind::Sync && tx.total_size() > wire::kUnfragmentedPayload) ||
                        kind == PushKind::Prompt);
  if (by_tcp) {
    if (kind == PushKind::Prompt || !push_busy(to.addr)) {
      tcp_push(to, std::move(tx));
      return;
    }
    trace("tcp: earlier pushes still running, skipping");
    return;
  }
  udp_push(to, std::move(tx));
}

inline void SimNode::forward_request(const Route& to, const wire::Request& request) {
  if (opts_.tcp && !udp_only(to.addr)) {
    if (legacy(to.addr)) tcp_request(to, request);
    else session_for(to).link.request(request, now());
    return;
  }
  send_packet(to, wire::encode(request));
}

inline void SimNode::keep_session(const Route& to) {
  if (opts_.tcp && !udp_only(to.addr) && !legacy(to.addr)) {
    if (!running_) return;  // TcpTransport::session_keep: only on an interface we listen on
    session_for(to).link.keep_open(now());
  }
}

inline link::SessionLink::DeltaStats SimNode::delta_stats() const {
  link::SessionLink::DeltaStats d;
  for (const auto& [addr, p] : peers_) {
    const auto& s = p->link.delta_stats();
    d.syncs += s.syncs;
    d.changed += s.changed;
    d.refreshed += s.refreshed;
    d.refresh_bytes += s.refresh_bytes;
    d.wanted += s.wanted;
  }
  return d;
}

inline link::SessionLink::PackStats SimNode::pack_stats() const {
  link::SessionLink::PackStats d;
  for (const auto& [addr, p] : peers_) {
    const auto& s = p->link.pack_stats();
    d.packets += s.packets;
    d.packed += s.packed;
    d.bytes_in += s.bytes_in;
    d.bytes_out += s.bytes_out;
    d.precompressed += s.precompressed;
  }
  return d;
}

inline std::uint64_t SimNode::udp_copies() const {
  std::uint64_t n = 0;
  for (const auto& [addr, p] : peers_) n += p->link.udp_copies();
  return n;
}

inline const link::SessionLink* SimNode::session(const PeerAddress& to) const {
  auto it = peers_.find(to);
  return it == peers_.end() ? nullptr : &it->second->link;
}

inline std::shared_ptr<SimNode::Conn> SimNode::find_conn(ConnectionId id) const {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second;
}

inline bool SimNode::udp_only(const PeerAddress& peer) const {
  auto it = udp_only_until_.find(peer);
  return it != udp_only_until_.end() && now() < it->second;
}
inline bool SimNode::legacy(const PeerAddress& peer) const {
  auto it = legacy_until_.find(peer);
  return it != legacy_until_.end() && now() < it->second;
}

inline std::size_t SimNode::count(const PeerAddress* peer) const {
  std::size_t n = 0;
  for (const auto& [id, c] : conns_)
    if (!peer || c->peer() == *peer) ++n;
  return n;
}

inline std::shared_ptr<SimNode::Conn> SimNode::open(const Route& to, int kind) {
  if (!running_) return nullptr;
  if (count(nullptr) >= limits_.max_per_interface || count(&to.addr) >= limits_.max_per_peer) return nullptr;
  ConnectionId id = sim_.next_conn_id();
  auto c = std::make_shared<Conn>(*this, id, static_cast<Conn::Kind>(kind), to.addr, to.mac);
  conns_.emplace(id, c);
  return c;
}

inline void SimNode::tcp_push(const Route& to, wire::PushEncoder tx) {
  auto c = open(to, static_cast<int>(Conn::Kind::Push));
  if (!c) {
    udp_push(to, std::move(tx));
    return;
  }
  ++stats.legacy_pushes;
  c->send_transaction(std::move(tx), false);
  c->connect();
}

inline void SimNode::tcp_request(const Route& to, const wire::Request& request) {
  auto c = open(to, static_cast<int>(Conn::Kind::Request));
  if (!c) {
    send_packet(to, wire::encode(request));
    return;
  }
  c->send_request(request);
  c->connect();
}

inline bool SimNode::push_busy(const PeerAddress& peer) const {
  std::size_t n = 0;
  for (const auto& [id, c] : conns_) {
    if (c->kind() != Conn::Kind::Push || c->peer() != peer) continue;
    if (c->streaming()) return true;
    ++n;
  }
  return n >= limits_.max_pushes_per_peer;
}

inline SimNode::Peer* SimNode::session_peer(const PeerAddress& peer, ConnectionId conn) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || it->second->conn_id != conn) return nullptr;
  return it->second.get();
}

inline SimNode::Peer& SimNode::session_for(const Route& to) {
  auto& p = peers_[to.addr];
  if (!p) p = std::make_unique<Peer>(*this, to, static_cast<std::uint32_t>(sim_.rng()()));
  p->to.mac = to.mac;
  return *p;
}

inline void SimNode::open_session(Peer& p) {
  auto c = open(p.to, static_cast<int>(Conn::Kind::Session));
  if (!c) {
    p.link.closed(link::CloseCause::Refused, "no connection available", now());
    return;
  }
  p.conn_id = c->id();
  c->connect();
}

inline void SimNode::session_ended(const PeerAddress& peer, ConnectionId conn, link::CloseCause cause,
                                   const std::string& why) {
  Peer* p = session_peer(peer, conn);
  if (!p) return;
  bool was_up = p->link.state() == link::SessionState::Up;
  p->conn_id = 0;
  p->link.closed(cause, why, now());
  if (was_up) ++stats.sessions_down;
  p = session_peer(peer, 0);
  bool connect_failed = cause == link::CloseCause::Refused || cause == link::CloseCause::TimedOut;
  if (p && connect_failed && p->link.state() == link::SessionState::Idle)
    peer_failed(peer, why, cause == link::CloseCause::TimedOut);
}

inline void SimNode::mark_legacy(const PeerAddress& peer) { legacy_until_[peer] = now() + limits_.legacy_for; }

inline void SimNode::peer_failed(const PeerAddress& peer, const std::string& why, bool timed_out) {
  auto mark = limits_.udp_only_for;
  if (timed_out) {
    net::Silence& s = silent_[peer];
    if (++s.timeouts < 2) return;
    s.timeouts = 0;
    mark = limits_.udp_only_after_silence(++s.marks);
  } else if (auto it = silent_.find(peer); it != silent_.end()) {
    it->second.timeouts = 0;
  }
  udp_only_until_[peer] = now() + mark;
  trace("tcp: treated as UDP-only (" + why + ")");
}

inline bool SimNode::evict_unused() {
  std::shared_ptr<Conn> victim;
  Duration longest{};
  for (const auto& [id, c] : conns_) {
    auto unused = c->inbound_session_unused(now());
    if (unused && *unused >= limits_.session.idle_close && *unused > longest) {
      longest = *unused;
      victim = c;
    }
  }
  if (!victim) return false;
  victim->close("evicted: unused, interface at its connection limit");
  return true;
}

inline bool SimNode::reply(ConnectionId conn, wire::PushEncoder tx) {
  auto c = find_conn(conn);
  if (!c) return false;
  return c->send_reply(std::move(tx));
}

inline bool SimNode::tcp_accept(ConnectionId id, const SimNode& from) {
  // TcpTransport::on_accepted; a refusal is a reset.
  if (count(nullptr) >= limits_.max_per_interface && !evict_unused()) return false;
  PeerAddress peer = from.addr();
  if (count(&peer) >= limits_.max_per_peer) return false;
  conns_.emplace(id, std::make_shared<Conn>(*this, id, Conn::Kind::Inbound, peer, from.mac()));
  after();
  return true;
}

inline void SimNode::tcp_connected(ConnectionId id, bool) {
  if (auto c = find_conn(id)) c->connected();
  after();
}
inline void SimNode::tcp_refused(ConnectionId id) {
  if (auto c = find_conn(id)) c->refused();
  after();
}
inline void SimNode::tcp_packet(ConnectionId id, std::vector<std::uint8_t> packet) {
  if (auto c = find_conn(id)) c->on_bytes(std::move(packet));
  after();
}
inline void SimNode::tcp_eof(ConnectionId id) {
  if (auto c = find_conn(id)) c->on_eof();
  after();
}
inline void SimNode::tcp_reset(ConnectionId id) {
  if (auto c = find_conn(id)) c->on_reset();
  after();
}

inline void SimNode::sweep() {
  // TcpTransport::sweep.
  auto t = now();
  last_sweep_ = t;
  std::vector<std::shared_ptr<Conn>> all;
  for (auto& [id, c] : conns_) all.push_back(c);
  for (auto& c : all) c->check(t);
  std::vector<PeerAddress> keys;
  for (auto& [k, p] : peers_) keys.push_back(k);
  for (auto& k : keys) {
    auto it = peers_.find(k);
    if (it == peers_.end()) continue;
    it->second->link.on_timer(t);
    it = peers_.find(k);
    if (it != peers_.end() && it->second->link.finished() && !find_conn(it->second->conn_id)) peers_.erase(it);
  }
  for (auto it = legacy_until_.begin(); it != legacy_until_.end();)
    it = t >= it->second ? legacy_until_.erase(it) : std::next(it);
  for (auto it = udp_only_until_.begin(); it != udp_only_until_.end();)
    it = t >= it->second ? udp_only_until_.erase(it) : std::next(it);
}

inline std::optional<TimePoint> SimNode::sweep_due() const {
  std::optional<TimePoint> d;
  auto take = [&](std::optional<TimePoint> t) {
    if (t && (!d || *t < *d)) d = t;
  };
  for (const auto& [id, c] : conns_) take(c->due());
  for (const auto& [k, p] : peers_) {
    take(p->link.deadline());
    // SessionLink::on_timer also prunes what is too old; the real sweep
    // calls it 4 times a second, this one once a second while it matters.
    if (p->link.queued() > 0 || p->link.requests_pending() > 0) take(now() + 1s);
    if (p->link.finished() && !find_conn(p->conn_id)) take(now());
  }
  return d;
}

inline void SimNode::arm_engine() {
  if (!running_) return;
  auto d = engine_->next_deadline();
  if (!d) {
    engine_at_.reset();
    ++engine_gen_;
    return;
  }
  if (engine_at_ && *engine_at_ == *d) return;
  engine_at_ = *d;
  std::uint64_t gen = ++engine_gen_;
  sim_.loop().at(*d, [this, gen] {
    if (gen != engine_gen_ || !running_) return;
    engine_at_.reset();
    engine_->on_timer(now());
    after();
  });
}

inline void SimNode::arm_sweep() {
  if (!running_) return;
  // The first point of this node's 250 ms grid at or after t, and after the
  // last sweep (one per grid point).
  constexpr Duration step = 250ms;
  auto grid = [&](TimePoint t) {
    TimePoint origin = TimePoint{} + sweep_phase_;
    auto k = (t - origin + step - Duration(1)) / step;
    TimePoint at = origin + k * step;
    return at <= last_sweep_ ? last_sweep_ + step : at;
  };
  // Nothing can be due before the next grid point: no need to look.
  if (sweep_at_ && *sweep_at_ <= grid(now())) return;
  auto d = sweep_due();
  if (!d) return;
  TimePoint at = grid(std::max(*d, now()));
  if (sweep_at_ && *sweep_at_ <= at) return;  // an earlier sweep re-arms after it
  sweep_at_ = at;
  std::uint64_t gen = ++sweep_gen_;
  sim_.loop().at(at, [this, gen] {
    if (gen != sweep_gen_ || !running_) return;
    sweep_at_.reset();
    sweep();
    after();
  });
}

inline void SimNode::after() {
  if (!running_) return;
  arm_engine();
  arm_sweep();
}

// ------------------------------------------------------------------ Sim

inline void Sim::udp(int from, const Route& to, std::vector<std::uint8_t> packet) {
  std::size_t fragments = (packet.size() + 8 + 1231) / 1232;
  traffic_.udp += packet.size() + 8 + 40 * fragments + (fragments > 1 ? 8 * fragments : 0);
  for (auto& n : nodes_) {
    if (n->id() == from) continue;
    if (!to.addr.multicast && n->addr() != to.addr) continue;
    if (!net_.datagram_survives(from, n->id(), now(), packet.size())) continue;
    SimNode* target = n.get();
    Route back{"mesh0", addr_of(mac_of(from)), mac_of(from), 0};
    auto copy = packet;
    loop_.at(now() + net_.model().one_way, [target, back, copy] { target->udp_in(back, copy); });
  }
}

inline void Sim::tcp_connect(int from, ConnectionId id, const PeerAddress& to) {
  Wire w;
  w.end[0] = from;
  SimNode* target = node_at(to);
  w.end[1] = target ? target->id() : 0;
  wires_.emplace(id, w);
  if (!target || target->drops_tcp()) return;  // nobody there: the connect times out
  auto out = net_.connect(from, target->id(), now(), node(from).limits_.connect_timeout);
  if (!out.answered) return;  // the opener's sweep times it out
  loop_.at(out.at, [this, id, retried = out.retried] { connect_answered(id, retried); });
}

inline void Sim::connect_answered(ConnectionId id, bool retried) {
  auto it = wires_.find(id);
  if (it == wires_.end()) return;
  Wire& w = it->second;
  SimNode& opener = node(w.end[0]);
  SimNode& target = node(w.end[1]);
  if (!w.open[0]) return;  // the opener gave up (its timeout, or it restarted)
  if (!target.listening()) {
    w.open[0] = false;
    opener.tcp_refused(id);
    return;
  }
  w.established = true;
  w.open[1] = true;
  Duration rto = retried && net_.model().fallback_after_retried_syn ? net_.model().fallback_rto
                                                                     : net_.model().rto_min;
  for (auto& d : w.dir) {
    d.rto = rto;
    d.last_ack = now();
    d.last_arrival = now();
  }
  if (!target.tcp_accept(id, opener)) {
    // Refused after the handshake: the acceptor resets.
    w.open[1] = false;
    opener.tcp_connected(id, retried);
    loop_.at(now() + net_.model().one_way, [this, id] {
      auto it = wires_.find(id);
      if (it == wires_.end() || !it->second.open[0]) return;
      it->second.open[0] = false;
      node(it->second.end[0]).tcp_reset(id);
    });
    return;
  }
  opener.tcp_connected(id, retried);
}

inline void Sim::send_flight(ConnectionId id, Wire& w, int side, Flight f) {
  Dir& d = w.dir[side];
  int x = w.end[side], y = w.end[1 - side];
  TimePoint arrival = d.last_arrival;
  bool gone = false;
  std::size_t n = net_.segments(f.packet.size());
  bool thin = net_.thin(f.packet.size());
  for (std::size_t i = 0; i < n; ++i) {
    auto a = net_.segment_arrival(x, y, now(), d.rto, thin);
    if (!a) gone = true;
    else arrival = std::max(arrival, *a);
  }
  if (gone) arrival = kNever;  // TCP gave up; the connection is dead in all but name
  f.sent = now();
  f.rto = d.rto;
  f.arrival = arrival;
  d.last_arrival = arrival;
  d.flight.push_back(std::move(f));
  if (!gone) loop_.at(arrival, [this, id, side] { arrive(id, side); });
}

inline void Sim::tcp_write(ConnectionId id, int from, std::vector<std::uint8_t> packet) {
  auto it = wires_.find(id);
  if (it == wires_.end()) return;
  Wire& w = it->second;
  int side = w.side_of(from);
  if (!w.established || !w.open[side] || w.dir[side].fin_sent) return;
  std::size_t segments = net_.segments(packet.size());
  traffic_.tcp += packet.size() + 72 * segments + 72 * ((segments + 1) / 2);
  Flight f;
  f.packet = std::move(packet);
  send_flight(id, w, side, std::move(f));
}

inline void Sim::tcp_fin(ConnectionId id, int from, bool close_end) {
  auto it = wires_.find(id);
  if (it == wires_.end()) return;
  Wire& w = it->second;
  int side = w.side_of(from);
  if (!w.open[side]) return;
  if (close_end) w.open[side] = false;
  if (!w.established || w.dir[side].fin_sent) return;
  w.dir[side].fin_sent = true;
  Flight f;
  f.fin = true;
  send_flight(id, w, side, std::move(f));
}

inline void Sim::arrive(ConnectionId id, int side) {
  auto it = wires_.find(id);
  if (it == wires_.end()) return;
  Wire& w = it->second;
  Dir& d = w.dir[side];
  if (d.flight.empty()) return;
  Flight& f = d.flight.front();
  if (f.arrival > now()) {  // held by a cut that began after it was sent
    if (f.arrival < kNever) loop_.at(f.arrival, [this, id, side] { arrive(id, side); });
    return;
  }
  Flight got = std::move(f);
  d.flight.pop_front();
  d.last_ack = now() + net_.model().one_way;
  d.rto = net_.model().rto_min;  // an RTT sample: the fallback RTO is over
  int to = 1 - side;
  if (!w.open[to]) return;
  SimNode& n = node(w.end[to]);
  if (got.fin) {
    n.tcp_eof(id);
  } else {
    ++delivered_;
    n.tcp_packet(id, std::move(got.packet));
  }
}

inline bool Sim::link_down(ConnectionId id, int from, TimePoint t) const {
  auto at = link_down_at(id, from);
  return at && t >= *at;
}

inline std::optional<TimePoint> Sim::link_down_at(ConnectionId id, int from) const {
  auto it = wires_.find(id);
  if (it == wires_.end() || !it->second.established) return std::nullopt;
  const Dir& d = it->second.dir[it->second.side_of(from)];
  if (d.flight.empty()) return std::nullopt;
  const Flight& f = d.flight.front();
  // Its 4th retransmission is due 15 RTOs after the first transmission
  // (1 + 2 + 4 + 8); tcpi_last_ack_recv >= 5 s.
  TimePoint at = std::max(f.sent + 15 * f.rto, d.last_ack + 5s);
  if (f.arrival <= at) return std::nullopt;  // it gets through before
  return at;
}

inline void Sim::partition(int a, int b, Duration dur) {
  TimePoint from = now(), until = now() + dur;
  net_.cut(a, b, from, until);
  // What is in flight between them is held from now on.
  for (auto& [id, w] : wires_) {
    if (!w.established) continue;
    bool hit = (w.end[0] == a && (b == 0 || w.end[1] == b)) || (w.end[1] == a && (b == 0 || w.end[0] == b));
    if (!hit) continue;
    for (int side = 0; side < 2; ++side) {
      Dir& d = w.dir[side];
      TimePoint prev{};
      for (auto& f : d.flight) {
        if (f.arrival > from && f.arrival < kNever) {
          auto a2 = net_.arrival_after_loss(w.end[side], w.end[1 - side], from, f.rto,
                                            net_.thin(f.packet.size()));
          f.arrival = a2 ? std::max(prev, *a2) : kNever;
        }
        f.arrival = std::max(prev, f.arrival);
        prev = f.arrival;
      }
      if (!d.flight.empty()) d.last_arrival = std::max(d.last_arrival, prev);
    }
  }
}

inline void Sim::tcp_abort(ConnectionId id, int from) {
  auto it = wires_.find(id);
  if (it == wires_.end()) return;
  Wire& w = it->second;
  int side = w.side_of(from);
  if (!w.open[side]) return;
  w.open[side] = false;
  w.dir[side].flight.clear();
  int other = w.end[1 - side];
  if (!w.established || !w.open[1 - side] || other == 0) return;
  if (!net_.datagram_survives(from, other, now(), 60)) return;  // the peer finds out by itself
  loop_.at(now() + net_.model().one_way, [this, id, other] {
    auto it = wires_.find(id);
    if (it == wires_.end() || !it->second.open[it->second.side_of(other)]) return;
    it->second.open[it->second.side_of(other)] = false;
    for (auto& d : it->second.dir) d.flight.clear();
    node(other).tcp_reset(id);
  });
}

inline int Sim::reset_connections(int a, int b) {
  int n = 0;
  std::vector<ConnectionId> hit;
  for (auto& [id, w] : wires_) {
    if (!w.established) continue;
    if (!((w.end[0] == a && w.end[1] == b) || (w.end[0] == b && w.end[1] == a))) continue;
    if (!w.open[0] && !w.open[1]) continue;
    hit.push_back(id);
  }
  for (auto id : hit) {
    Wire& w = wires_.at(id);
    bool open[2] = {w.open[0], w.open[1]};
    w.open[0] = w.open[1] = false;
    for (auto& d : w.dir) d.flight.clear();
    ++n;
    for (int side = 0; side < 2; ++side)
      if (open[side]) node(w.end[side]).tcp_reset(id);
  }
  return n;
}

inline void Sim::restart(int id, Duration downtime) {
  // The kernel closes the dead daemon's sockets: a FIN after what they had sent.
  for (auto& [cid, w] : wires_) {
    for (int side = 0; side < 2; ++side)
      if (w.end[side] == id && w.open[side]) tcp_fin(cid, id, true);
  }
  SimNode& n = node(id);
  n.stop();
  loop_.at(now() + downtime, [&n] { n.start(false); });
}

}  // namespace alfred::sim
