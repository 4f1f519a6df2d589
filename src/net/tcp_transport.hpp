#pragma once
// Server-to-server TCP. Every interface listens on port 16962; with -t the
// daemon sends large pushes and its forwarded requests over TCP. A stream
// carries ordinary alfred packets back to back. Transactions are encoded from
// a shared snapshot one packet at a time as the socket drains, so a connection
// holds about two packets (one arriving, one leaving) whatever the data size.
// When a peer refuses, resets or does not answer, the same transaction goes by
// UDP and the peer is remembered as UDP-only for a while.
//
// Sessions (src/link): with -t, everything for a peer that speaks them goes
// on one long-lived connection per peer (see link::SessionLink): pushes of
// any size, acknowledged, resent after a break; forwarded requests and their
// answers; keepalives. A peer that closes on the session hello speaks the
// 2016 framing and gets one connection per transaction, as before.
#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "engine/log_limiter.hpp"
#include "engine/refresh_outcome.hpp"
#include "engine/route.hpp"
#include "link/session_link.hpp"
#include "net/asio.hpp"
#include "store/record.hpp"
#include "wire/packet.hpp"
#include "wire/push_encoder.hpp"

namespace alfred::net {

struct TcpLimits {
  // Connections, both directions. Sessions are long-lived: a primary holds
  // one from each of its secondaries.
  std::size_t max_per_interface = 256;
  std::size_t max_per_peer = 8;
  // Of those, the ones we open. Honest meshes have a handful of primaries;
  // every address on the link that announces itself as one is a peer we
  // form a session to, and addresses cost an attacker nothing. Capped, such
  // addresses can take at most this many of the interface's slots, and the
  // rest stay free for the secondaries' sessions to us. At the cap a peer
  // that batman-adv knows takes the slot of one it does not; past it a peer
  // is served by UDP, as upstream serves every peer.
  std::size_t max_outbound_per_interface = 64;
  // Past Linux's third SYN (sent at 0, 1 and 3 s), so one lost SYN or
  // SYN-ACK on a lossy link does not end the attempt.
  std::chrono::milliseconds connect_timeout{4000};
  // A push whose handshake lost a SYN may still be connecting when the next
  // period's starts; a second one may then go ahead with the newer snapshot.
  std::size_t max_pushes_per_peer = 2;
  std::chrono::milliseconds idle_timeout{30000};     // nothing moved either way
  std::chrono::milliseconds partial_timeout{10000};  // a packet begun but not finished
  // An accepted connection that sent nothing: every honest opener (ours,
  // the 2016 proposal's) writes its first packet as soon as it connects.
  std::chrono::milliseconds silent_timeout{10000};
  std::chrono::milliseconds stall_timeout{10000};    // data to send, peer not reading
  std::chrono::seconds udp_only_for{300};  // after a refusal (no TCP there)
  // After connects that went unanswered: a peer cut off for a while (an
  // outage, or a lossy link that lost two handshakes) looks the same as an
  // address that never answers, and it may be our own daemon, back in a
  // period. Doubled for each such mark in a row, up to udp_only_for.
  std::chrono::seconds udp_only_silent_for{30};
  // The mark after the n-th such silence in a row (n >= 1).
  std::chrono::seconds udp_only_after_silence(int n) const {
    return std::min<std::chrono::seconds>(udp_only_silent_for * (1 << (std::min(n, 8) - 1)), udp_only_for);
  }
  // Answers waiting behind the one being sent on an inbound stream.
  std::size_t max_queued_replies = 4;
  // How long a peer that closed on our session hello is served the 2016
  // way (one connection per transaction) before it is probed again.
  std::chrono::seconds legacy_for{600};
  link::SessionLimits session{};
};

// Connects to one peer that went unanswered in a row, and the UDP-only marks
// they led to in a row (TcpTransport::peer_failed).
struct Silence {
  int timeouts = 0;
  int marks = 0;
};

struct TcpInterface {
  std::string name;
  unsigned index = 0;
  PeerAddress own;
  std::optional<asio::ip::address_v4> netmask;  // IPv4 mode
};

class TcpTransport {
 public:
  struct Callbacks {
    // A packet cut from a stream; `from.stream` names the connection.
    std::function<void(const Route& from, std::span<const std::uint8_t> packet)> deliver;
    std::function<void(const Route& to, wire::PushEncoder transaction)> push_by_udp;
    std::function<void(const Route& to, const wire::Request& request)> request_by_udp;
    // MAC of an accepted peer (EUI-64 or neighbour table); nullopt refuses it.
    std::function<std::optional<Mac>(const std::string& iface, const PeerAddress& peer)> peer_mac;
    std::function<bool(const PeerAddress& addr)> is_own_address;
    // Whether the packet just delivered completed (and applied) transaction
    // `id` from `peer`: after a txend on a session, only such a one is
    // acknowledged, never one the engine refused.
    std::function<bool(const Mac& peer, std::uint16_t id)> transaction_completed;
    // A delta-sync refresh on an inbound session (Engine::on_refresh).
    std::function<RefreshOutcome(const Route& from,
                                         std::span<const wire::RefreshEntry> entries)>
        refreshed;
    // We are a primary (said in our session hellos).
    std::function<bool()> is_primary;
    // batman-adv knows the MAC as an originator of the mesh (false without
    // batman-adv's view, -b none).
    std::function<bool(const Mac& peer)> in_mesh;
    // We are at the outbound cap: the engine refreshes what it knows of the
    // mesh at its next tick, for in_mesh.
    std::function<void()> crowded;
  };

  struct Stats {
    std::uint64_t accepted = 0, refused = 0, connected = 0, failed = 0, fallbacks = 0;
    std::uint64_t bytes_in = 0, bytes_out = 0;
    std::uint64_t sessions_up = 0, sessions_down = 0, resent = 0;
  };

  TcpTransport(asio::io_context& io, Callbacks callbacks, TcpLimits limits);
  ~TcpTransport();
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  bool listen(const TcpInterface& iface, std::string& error);
  // Stops listening on the interface and closes its connections.
  void close_interface(const std::string& iface);
  void close_all();

  bool udp_only(const std::string& iface, const PeerAddress& peer) const;
  // True when a push to this peer is streaming, or too many are still
  // connecting: a new one would only compete with them.
  bool push_busy(const std::string& iface, const PeerAddress& peer) const;

  // One connection for this transaction alone (the 2016 framing).
  void push(const Route& to, wire::PushEncoder transaction);
  void request(const Route& to, const wire::Request& request);
  // On the peer's session, opened if need be. `full`: a full sync, which
  // supersedes what is still queued for the peer.
  void session_push(const Route& to, wire::PushEncoder transaction, bool full);
  void session_request(const Route& to, const wire::Request& request);
  // A session to this peer is wanted ahead of its traffic (see
  // link::SessionLink::keep_open).
  void session_keep(const Route& to);
  // The peer closed on our session hello not long ago: it speaks the 2016
  // framing (or is one of ours from before sessions).
  bool legacy(const std::string& iface, const PeerAddress& peer) const;
  std::size_t session_count() const { return peers_.size(); }
  // The answer to a request that came on stream `conn`; false if it is gone.
  bool reply(ConnectionId conn, wire::PushEncoder transaction);

  std::size_t connection_count() const { return connections_.size(); }
  std::size_t listener_count() const { return listeners_.size(); }
  const Stats& stats() const { return stats_; }

 private:
  class Connection;
  friend class Connection;
  struct Peer;
  using PeerKey = std::pair<std::string, PeerAddress>;
  struct Listener {
    Listener(TcpInterface i, std::unique_ptr<asio::ip::tcp::acceptor> a)
        : iface(std::move(i)), acceptor(std::move(a)) {}
    TcpInterface iface;
    std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
    // After a failed accept: the pause before the next, 100 ms doubling to 1 s.
    std::unique_ptr<asio::steady_timer> retry;
    std::chrono::milliseconds retry_delay{0};
  };

  // A new outbound connection (kind: Connection::Kind); nullptr when the
  // interface has no TCP listener, i.e. is down.
  std::shared_ptr<Connection> open(const Route& to, int kind, const std::string& what);
  void start(const std::shared_ptr<Connection>& c, const Route& to);
  void accept(Listener& l);
  void on_accepted(Listener& l, asio::ip::tcp::socket sock);
  void on_accept_error(Listener& l, const asio::error_code& ec);
  void forget(ConnectionId id);
  Peer* session_peer(const std::string& iface, const PeerAddress& peer, ConnectionId conn);
  Peer& session_for(const Route& to);
  void open_session(Peer& p);
  void session_ended(const std::string& iface, const PeerAddress& peer, ConnectionId conn,
                     link::CloseCause cause, const std::string& why);
  void mark_legacy(const PeerKey& key);
  void peer_answered(const std::string& iface, const PeerAddress& peer);
  // An inbound session from this peer: the marks that it speaks no TCP, or
  // only the 2016 framing, are wrong now.
  void speaks_sessions(const std::string& iface, const PeerAddress& peer);
  void peer_failed(const std::string& iface, const PeerAddress& peer, const std::string& why,
                   bool timed_out);
  void sweep();
  static constexpr std::chrono::milliseconds kSweepBusy{250}, kSweepIdle{1000};
  void arm_sweep(std::chrono::milliseconds after);
  // Something started that has a deadline (a connect, a send, a backoff):
  // the next sweep comes within kSweepBusy.
  void hurry();
  std::size_t count(const std::string& iface, const PeerAddress* peer, bool outbound_only = false) const;
  // At the connection limit: closes the inbound session unused longest (at
  // least the session idle close); false if there is none.
  bool evict_unused(const std::string& iface);
  // At the outbound cap: closes our oldest connection to a peer batman-adv
  // does not know, if `to` is one it knows; false otherwise.
  bool evict_outbound_for(const Route& to);
  const TcpInterface* find_iface(const std::string& name) const;

  asio::io_context& io_;
  Callbacks cb_;
  TcpLimits limits_;
  std::map<std::string, Listener> listeners_;
  std::map<ConnectionId, std::shared_ptr<Connection>> connections_;
  std::map<std::pair<std::string, PeerAddress>, TimePoint> udp_only_until_;
  std::map<std::pair<std::string, PeerAddress>, Silence> silent_;
  std::map<PeerKey, TimePoint> legacy_until_;
  std::map<PeerKey, std::unique_ptr<Peer>> peers_;  // sessions we opened (or are opening)
  std::uint32_t session_seed_ = 0;
  ConnectionId next_id_ = 1;
  asio::steady_timer sweep_timer_;
  bool sweeping_ = false;
  Stats stats_;
  // Lines a peer or a shortage can cause again and again (bad streams,
  // pipelined requests, failed accepts): one of each kind per 10 s.
  LogLimiter error_log_{std::chrono::seconds(10)};
};

}  // namespace alfred::net
