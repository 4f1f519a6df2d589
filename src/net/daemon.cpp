#include "net/daemon.hpp"

#include <malloc.h>
#include <spawn.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "auth/key_file.hpp"
#include "batadv/batadv_query.hpp"
#include "net/log.hpp"

extern char** environ;

namespace alfred::net {
namespace {

EngineConfig engine_config(const cli::Options& o) {
  EngineConfig c;
  c.mode = o.mode;
  c.interfaces_disabled = o.net_iface && *o.net_iface == "none";
  if (o.net_iface && !c.interfaces_disabled) c.interfaces = parse_interface_list(*o.net_iface);
  c.bat_iface = o.mesh_iface;
  c.update_command = o.update_command.has_value();
  // Forward fresh first-hand changes to the other primaries soon, not a
  // whole period later: a record then reaches every primary about one
  // period after it was set, leaving the next period for a lost push.
  auto period = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(o.sync_period));
  c.prompt_sync_delay = std::min<Duration>(period / 4, std::chrono::milliseconds(100));
  // Three of our periods, at least 30 s: secondaries mostly run the default
  // period whatever ours is.
  c.first_hand_hold = std::max<Duration>(3 * period, std::chrono::seconds(30));
  // Two periods: a secondary at our period pushes twice in it, one lost
  // push allowed; one at a longer period is guarded for part of its own,
  // which is enough for a stale copy elsewhere to lapse too (StoreLimits).
  c.store.first_hand_guard =
      std::clamp<Duration>(2 * period, std::chrono::seconds(1), c.first_hand_hold);
  // Full syncs to other primaries: 4 MiB a second of period, at least 16 MiB
  // a period: a 3 MB data set reaches 5 primaries a second, each of dozens
  // of real ones every period; primaries invented by a flood of
  // announcements take turns within the same budget.
  double seconds = std::max(o.sync_period, 0.0);
  c.sync_budget_bytes = std::max<std::size_t>(16u << 20, static_cast<std::size_t>(seconds * (4u << 20)));
  return c;
}

TcpLimits tcp_limits(const cli::Options& o) {
  TcpLimits l;
  // A session with nothing sent for three periods (at least two minutes)
  // serves a peer we no longer sync with; it is closed.
  double seconds = std::max(o.sync_period, 0.0);
  l.session.idle_close = std::max<Duration>(
      std::chrono::seconds(120),
      std::chrono::duration_cast<Duration>(std::chrono::duration<double>(3 * seconds)));
  return l;
}

constexpr std::size_t kMaxUnresolved = 256;
constexpr std::size_t kMaxUnresolvedBytes = 4u << 20;
constexpr std::chrono::milliseconds kArpWait{1000};
constexpr std::chrono::milliseconds kArpRetry{25};
constexpr std::chrono::seconds kInterfaceCheck{60};
constexpr std::chrono::seconds kReopenInterval{1};

}  // namespace

Daemon::Daemon(asio::io_context& io, const cli::Options& options)
    : io_(io),
      opts_(options),
      rng_(std::random_device{}()),
      engine_(engine_config(options), *this, batadv_,
              [this] { return static_cast<std::uint16_t>(rng_()); }),
      tcp_(io,
           TcpTransport::Callbacks{
               [this](const Route& from, std::span<const std::uint8_t> packet) {
                 // With keys nothing is taken by TCP (no listener, -t refused):
                 // should a connection ever deliver, it is not let in.
                 if (!guard_) deliver(from, packet);
               },
               [this](const Route& to, wire::PushEncoder tx) {
                 if (LinkSocket* l = link(to.iface)) l->send(to.addr, std::move(tx));
               },
               [this](const Route& to, const wire::Request& req) {
                 send_packet(to, wire::encode(req));
               },
               [this](const std::string& iface, const PeerAddress& peer) {
                 return peer_mac(iface, peer);
               },
               [this](const PeerAddress& a) { return is_own_address(a); },
               [this](const Mac& peer, std::uint16_t id) {
                 return engine_.just_completed(peer, id);
               },
               [this](const Route& from, std::span<const wire::RefreshEntry> entries) {
                 return engine_.on_refresh(from, entries, Clock::now());
               },
               [this] { return engine_.mode() == wire::Mode::Primary; },
               [this](const Mac& peer) { return engine_.in_mesh(peer); },
               [this] { engine_.crowded(); }},
           tcp_limits(options)),
      ipc_(io, options.unix_path,
           [this](ClientId c, std::span<const std::uint8_t> m) { on_ipc(c, m); }),
      sync_timer_(io),
      tx_timer_(io),
      check_timer_(io),
      arp_timer_(io),
      signals_(io, SIGINT, SIGTERM),
      hup_(io),
      auth_log_timer_(io),
      period_(std::chrono::duration_cast<Duration>(
          std::chrono::duration<double>(options.sync_period))) {
  if (options.ipv4) group4_ = asio::ip::address_v4(ntohl(options.ipv4_group));
  set_verbose(options.verbose);
  ipc_.set_lookup([this](std::uint8_t type, const Mac& source) { return engine_.store().get(source, type); });
}

Daemon::~Daemon() = default;

int Daemon::start() {
  std::string error;
  if (opts_.keyfile && !load_keys(error)) {
    std::fprintf(stderr, "Can't start server: key file %s\n", error.c_str());
    return 255;
  }
  if (!ipc_.open(error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 255;
  }
  bool disabled = opts_.net_iface && *opts_.net_iface == "none";
  if (!disabled) {
    if (!opts_.net_iface) {
      std::fprintf(stderr, "Can't start server: interface missing\n");
      return 255;
    }
    auto names = parse_interface_list(*opts_.net_iface);
    if (names.empty() && !opts_.force) {
      std::fprintf(stderr, "Can't start server: valid interface missing\n");
      return 255;
    }
    make_links(names);
    int opened = open_links();
    if (opened <= 0 && !opts_.force) {
      std::fprintf(stderr, "Failed to open interfaces\n");
      return 255;
    }
    if (names.size() > 1 && opts_.mode == wire::Mode::Secondary) {
      std::fprintf(stderr, "More than one interface specified in secondary mode\n");
      return 255;
    }
  }
  if (opts_.mesh_iface != "none" && !batadv::interface_available(opts_.mesh_iface) &&
      !opts_.force) {
    std::fprintf(stderr, "Can't start server: batman-adv interface %s not found\n",
                 opts_.mesh_iface.c_str());
    return 255;
  }
  if (guard_) {
    hup_.add(SIGHUP);
    wait_for_hup();
    schedule_auth_log();
  }
  signals_.async_wait([this](const asio::error_code& ec, int) {
    if (ec) return;
    ipc_.close();
    hup_.cancel();
    auth_log_timer_.cancel();
    if (guard_) log_auth_stats();
    tcp_.close_all();
    io_.stop();
  });
  next_sync_ = Clock::now() + period_;
  schedule_sync();
  schedule_check();
  return 0;
}

// ---------------------------------------------------------------- interfaces

LinkSocket* Daemon::link(const std::string& name) {
  for (auto& l : links_)
    if (l->name() == name) return l.get();
  return nullptr;
}

void Daemon::make_links(const std::vector<std::string>& names) {
  for (auto& l : links_) link_closed(*l);
  links_.clear();
  for (const auto& n : names)
    links_.push_back(std::make_unique<LinkSocket>(
        io_, n, group4_,
        [this](LinkSocket& l, const PeerAddress& from, const auth::Destination& to,
               std::span<const std::uint8_t> b) { on_datagram(l, from, to, b); }));
  for (auto& l : links_) l->set_guard(guard_.get());
}

int Daemon::open_links() {
  int opened = 0;
  for (auto& l : links_) {
    if (l->is_open()) {
      ++opened;
      continue;
    }
    std::string error;
    if (l->open(error)) {
      ++opened;
      link_opened(*l);
    } else {
      std::fprintf(stderr, "%s\n", error.c_str());
    }
  }
  last_reopen_ = Clock::now();
  return opened;
}

void Daemon::reopen_closed_links() {
  if (Clock::now() - last_reopen_ < kReopenInterval) return;
  bool any_closed = false;
  for (auto& l : links_) any_closed |= !l->is_open();
  if (any_closed) open_links();
}

void Daemon::schedule_check() {
  check_timer_.expires_after(kInterfaceCheck);
  check_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    for (auto& l : links_) {
      std::string why;
      if (l->is_open() && !l->still_valid(why)) {
        std::fprintf(stderr, "%s, closing netsock\n", why.c_str());
        l->close();
        link_closed(*l);
      }
    }
    reopen_closed_links();
    schedule_check();
  });
}

void Daemon::link_opened(LinkSocket& l) {
  // Listening is always on, so peers that choose TCP can reach us even when
  // we send by UDP ourselves. Before the engine hears of the interface: a
  // primary announces on it at once, and a peer that connects on that
  // announcement must not be refused (it would take us for UDP-only).
  // With keys, nothing is taken by TCP: sessions are not authenticated yet,
  // and a plain listener would let anyone on the link push records.
  std::string error;
  if (!guard_ && !tcp_.listen(TcpInterface{l.name(), l.index(), l.own(), l.ipv4_netmask()}, error))
    log_error(error);
  engine_.interface_up(l.name(), l.mac(), l.own());
  log_verbose("interface " + l.name() + " open, " + to_string(l.mac()) + " " + to_string(l.own()));
}

void Daemon::link_closed(LinkSocket& l) {
  engine_.interface_down(l.name());
  tcp_.close_interface(l.name());
}

std::optional<Mac> Daemon::peer_mac(const std::string& iface, const PeerAddress& peer) {
  if (!peer.v4) {
    wire::Ipv6Bytes ip;
    std::copy(peer.ip.begin(), peer.ip.end(), ip.begin());
    return wire::link_local_to_mac(ip);
  }
  LinkSocket* l = link(iface);
  if (!l) return std::nullopt;
  auto mac = l->neighbour_mac(peer);
  if (mac && !is_valid_unicast(*mac)) return std::nullopt;
  return mac;
}

void Daemon::reconfigure_interfaces(const std::vector<std::string>& names) {
  // Called from inside the engine, possibly while a socket of ours is on the
  // stack; replace the sockets once that code has returned.
  asio::post(io_, [this, names] {
    make_links(names);
    open_links();
  });
}

bool Daemon::is_own_address(const PeerAddress& a) const {
  for (const auto& l : links_)
    if (l->is_open() && l->own().v4 == a.v4 && l->own().ip == a.ip) return true;
  return false;
}

// ---------------------------------------------------------------- network input

void Daemon::on_datagram(LinkSocket& link, const PeerAddress& from, const auth::Destination& to,
                         std::span<const std::uint8_t> bytes) {
  if (is_own_address(from)) return;
  if (!from.v4) {
    auto mac = peer_mac(link.name(), from);
    if (!mac) {
      log_verbose("dropped datagram from " + to_string(from) + ": not an EUI-64 link-local address");
      return;
    }
    deliver_datagram(Route{link.name(), from, *mac, 0}, to, bytes);
    return;
  }
  if (auto mac = link.neighbour_mac(from)) {
    if (is_valid_unicast(*mac)) deliver_datagram(Route{link.name(), from, *mac, 0}, to, bytes);
    return;
  }
  // The sender's MAC is not in the neighbour table yet. Upstream sleeps here;
  // we park the datagram and look again shortly, without stopping the loop.
  // What a key would refuse anyway is not parked: each parked datagram costs
  // ARP lookups for a second. Only a source on the link's subnet can be a
  // neighbour, and the kernel is asked to resolve each source once (it
  // retries the ARP request itself), so spoofed sources get no probes and
  // no ARP requests beyond one per source parked.
  if (!link.on_link(from)) {
    log_verbose("dropped datagram from " + to_string(from) + ": not in the subnet of " + link.name());
    return;
  }
  if (guard_ && !guard_->worth_opening(bytes)) {
    refused(from, std::nullopt, auth::Refusal::Unsealed);
    return;
  }
  if (unresolved_.size() >= kMaxUnresolved || unresolved_bytes_ + bytes.size() > kMaxUnresolvedBytes) {
    log_verbose("dropped datagram from " + to_string(from) + ": too many awaiting ARP");
    return;
  }
  bool resolving = std::any_of(unresolved_.begin(), unresolved_.end(), [&](const Unresolved& u) {
    return u.iface == link.name() && u.from.ip == from.ip;
  });
  if (!resolving) link.start_resolution(from);
  unresolved_.push_back(
      {link.name(), from, to, {bytes.begin(), bytes.end()}, Clock::now() + kArpWait});
  unresolved_bytes_ += bytes.size();
  if (unresolved_.size() == 1) {
    arp_timer_.expires_after(kArpRetry);
    arp_timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) retry_unresolved();
    });
  }
}

void Daemon::retry_unresolved() {
  auto now = Clock::now();
  std::deque<Unresolved> waiting;
  auto items = std::move(unresolved_);
  unresolved_.clear();
  unresolved_bytes_ = 0;
  for (auto& u : items) {
    LinkSocket* l = link(u.iface);
    if (!l || !l->is_open()) continue;
    if (auto mac = l->neighbour_mac(u.from)) {
      if (is_valid_unicast(*mac)) deliver_datagram(Route{u.iface, u.from, *mac, 0}, u.to, u.bytes);
    } else if (now < u.deadline) {
      unresolved_bytes_ += u.bytes.size();
      waiting.push_back(std::move(u));
    } else {
      log_verbose("arp: incomplete for " + to_string(u.from) + ", datagram dropped");
    }
  }
  for (auto& w : waiting) unresolved_.push_back(std::move(w));
  if (!unresolved_.empty()) {
    arp_timer_.expires_after(kArpRetry);
    arp_timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) retry_unresolved();
    });
  }
}

void Daemon::deliver_datagram(const Route& from, const auth::Destination& to,
                              std::span<const std::uint8_t> bytes) {
  if (!guard_) {
    deliver(from, bytes);
    return;
  }
  std::vector<std::uint8_t> packet;
  auth::Refusal why{};
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
  if (guard_->open(bytes, from.mac, to, packet, why, static_cast<std::uint64_t>(now_us))) {
    deliver(from, packet);
    return;
  }
  refused(from.addr, from.mac, why);
}

void Daemon::refused(const PeerAddress& addr, std::optional<Mac> mac, auth::Refusal why) {
  if (!verbose()) return;
  if (auto suffix = refusal_log_.admit(std::string(auth::to_string(why)), Clock::now()))
    log_verbose("auth: refused a datagram from " + to_string(addr) +
                (mac ? " (" + to_string(*mac) + ")" : std::string()) + ": " +
                std::string(auth::to_string(why)) + *suffix);
}

bool Daemon::load_keys(std::string& error) {
  auto keys = auth::load_key_file(*opts_.keyfile, error);
  if (!keys) return false;
  auto ring = std::make_shared<const auth::Keyring>(std::move(*keys));
  std::size_t n = ring->size();
  if (guard_) {
    guard_->set_keyring(std::move(ring));
  } else {
    guard_ = std::make_unique<auth::DatagramGuard>(
        std::move(ring), opts_.auth_transition ? auth::AuthMode::Transition : auth::AuthMode::Enforce);
  }
  log_error("authenticated mesh: " + std::to_string(n) + " key(s) from " + *opts_.keyfile + ", mode " +
            (opts_.auth_transition ? "transition" : "enforce"));
  return true;
}

void Daemon::wait_for_hup() {
  hup_.async_wait([this](const asio::error_code& ec, int) {
    if (ec) return;
    std::string error;
    if (!load_keys(error))
      log_error("key file reload refused, keeping the " + std::to_string(guard_->keyring().size()) +
                " key(s) in use: " + error);
    wait_for_hup();
  });
}

void Daemon::log_auth_stats() {
  const auto& st = guard_->stats();
  std::string line = "auth: sealed " + std::to_string(st.sealed) + ", opened " + std::to_string(st.opened) +
                     ", plain taken " + std::to_string(st.plain_taken) + "; refused:";
  for (std::size_t i = 0; i < auth::kRefusals; ++i)
    line += std::string(i ? ", " : " ") + std::string(auth::to_string(static_cast<auth::Refusal>(i))) + " " +
            std::to_string(st.refused[i]);
  log_verbose(line);
}

void Daemon::schedule_auth_log() {
  // The counters, for operators: every minute, and once more at exit.
  auth_log_timer_.expires_after(std::chrono::seconds(60));
  auth_log_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    log_auth_stats();
    schedule_auth_log();
  });
}

void Daemon::deliver(const Route& from, std::span<const std::uint8_t> bytes) {
  engine_.on_packet(from, bytes, Clock::now());
  arm_tx_timer();
}

// ---------------------------------------------------------------- unix socket

void Daemon::on_ipc(ClientId client, std::span<const std::uint8_t> message) {
  // `message` is one whole TLV (the framer saw to that). Like upstream, a
  // server-status request of the right version is answered without looking
  // at its body.
  wire::TlvHeader h;
  if (wire::read_tlv_header(message, h) && h.version == wire::kVersion &&
      h.type == static_cast<std::uint8_t>(wire::Type::ServerStatus)) {
    ipc_.reply(client, wire::encode(engine_.status()));
    return;
  }
  auto d = wire::decode(message);
  if (!d.ok) {
    log_verbose("unix client " + std::to_string(client) + ": " + d.error);
    ipc_.finish(client);
    return;
  }
  auto now = Clock::now();
  if (auto* push = std::get_if<wire::PushData>(&d.packet)) {
    // Upstream stores the first record and ignores whatever follows it.
    if (push->records.size() > 1 || d.ignored_bytes)
      log_verbose("unix client " + std::to_string(client) + ": set data holds " +
                  std::to_string(push->records.size()) + " whole record(s) and " +
                  std::to_string(d.ignored_bytes) +
                  " unparsable byte(s); only the first record is used");
    if (!engine_.ipc_set_data(*push, now)) log_verbose("unix client: set data refused");
    ipc_.finish(client);
    arm_tx_timer();  // a primary forwards the change promptly
  } else if (auto* req = std::get_if<wire::Request>(&d.packet)) {
    if (h.length != 3) {
      ipc_.finish(client);
      return;
    }
    engine_.ipc_request(client, *req, now);
    arm_tx_timer();
  } else if (auto* ms = std::get_if<wire::ModeSwitch>(&d.packet)) {
    engine_.ipc_modeswitch(*ms);
    ipc_.finish(client);
  } else if (auto* ci = std::get_if<wire::ChangeInterface>(&d.packet)) {
    engine_.ipc_change_interface(ci->interfaces);
    ipc_.finish(client);
  } else if (auto* cb = std::get_if<wire::ChangeBatIface>(&d.packet)) {
    engine_.ipc_change_bat_iface(cb->bat_iface);
    ipc_.finish(client);
  } else if (std::holds_alternative<wire::EventRegister>(d.packet)) {
    ipc_.make_listener(client);
  } else {
    ipc_.finish(client);
  }
}

// ---------------------------------------------------------------- effects

void Daemon::send_packet(const Route& to, std::vector<std::uint8_t> packet) {
  if (LinkSocket* l = link(to.iface)) l->send(to.addr, std::move(packet));
}

void Daemon::send_push(const Route& to, wire::PushEncoder transaction, PushKind kind) {
  if (kind == PushKind::Reply && to.stream) {
    if (!tcp_.reply(to.stream, std::move(transaction)))
      log_verbose("tcp: requester went away before the answer");
    return;
  }
  // With -t everything for a peer goes on its session, whatever the size:
  // acknowledged, and resent if the session breaks. Not the answer to a
  // request that came by UDP: any address can send one, and a session
  // formed for it would hold one of our connections for minutes. It goes as
  // upstream sends it, or on a connection of its own where it would
  // fragment.
  bool tcp = opts_.tcp && !tcp_.udp_only(to.iface, to.addr);
  if (tcp && !tcp_.legacy(to.iface, to.addr) && kind != PushKind::Reply) {
    tcp_.session_push(to, std::move(transaction), kind == PushKind::Sync);
    return;
  }
  // A 2016-framing peer (and the answer to a UDP request): one connection
  // per transaction. Periodic syncs and answers go by TCP only where they
  // would fragment; small ones stay datagrams, and a lost one is repeated
  // next period. What changed goes by TCP whatever its size, so that one
  // lost frame does not hold it back a whole period: it is sent only on a
  // change, so the handshake it costs is per change.
  bool by_tcp = tcp &&
                (((kind == PushKind::Sync || kind == PushKind::Reply) &&
                  transaction.total_size() > wire::kUnfragmentedPayload) ||
                 kind == PushKind::Prompt);
  if (by_tcp) {
    // A change does not wait for (nor skip) a push still running: it gets a
    // connection of its own, within the per-peer limits (past them, UDP).
    // Two changes in flight to one peer may then arrive out of order; the
    // next full sync repairs that.
    if (kind != PushKind::Sync || !tcp_.push_busy(to.iface, to.addr)) {
      tcp_.push(to, std::move(transaction));
      return;
    }
    log_verbose("tcp: earlier pushes to " + to_string(to.addr) + " still running, skipping");
    return;
  }
  if (LinkSocket* l = link(to.iface))
    l->send(to.addr, std::move(transaction),
            kind == PushKind::Reply ? LinkSocket::Priority::Answer : LinkSocket::Priority::Own);
}

void Daemon::forward_request(const Route& to, const wire::Request& request) {
  // The answer to a request is usually what would fragment, so with -t the
  // request goes on a stream the answer can come back on.
  if (opts_.tcp && !tcp_.udp_only(to.iface, to.addr)) {
    if (tcp_.legacy(to.iface, to.addr)) tcp_.request(to, request);
    else tcp_.session_request(to, request);
    return;
  }
  send_packet(to, wire::encode(request));
}

void Daemon::keep_session(const Route& to) {
  if (opts_.tcp && !tcp_.udp_only(to.iface, to.addr) && !tcp_.legacy(to.iface, to.addr))
    tcp_.session_keep(to);
}

void Daemon::reply_records(ClientId client, Snapshot records, std::uint16_t tx_id) {
  ipc_.reply_records(client, std::move(records), tx_id);
}

void Daemon::reply_error(ClientId client, std::uint16_t tx_id) {
  ipc_.reply(client, wire::encode(wire::StatusError::failed(tx_id)));
}

void Daemon::event(std::uint8_t type, const Mac& source) {
  if (ipc_.listener_count() == 0) return;
  ipc_.notify_listeners(wire::encode(wire::EventNotify{type, source}));
}

void Daemon::run_update_command(const std::bitset<256>& types) {
  if (!opts_.update_command) return;
  std::string command = *opts_.update_command;
  for (std::size_t t = 0; t < types.size(); ++t)
    if (types[t]) {
      // Appended piecewise: gcc 12 -O3 warns (-Wrestrict, a false positive)
      // on " " + std::to_string(t).
      command += ' ';
      command += std::to_string(t);
    }
  std::printf("executing: %s\n", command.c_str());
  std::fflush(stdout);
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  pid_t pid;
  // SIGCHLD is ignored, so the child is reaped by the kernel.
  int rc = posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ);
  if (rc != 0) log_error("can't run update command: " + std::string(std::strerror(rc)));
}

void Daemon::log(std::string_view message) { log_verbose(message); }
bool Daemon::logging() const { return verbose(); }

// ---------------------------------------------------------------- timers

void Daemon::schedule_sync() {
  sync_timer_.expires_at(next_sync_);
  sync_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    on_sync();
    auto now = Clock::now();
    next_sync_ += period_;
    // After a stall, skip the missed periods instead of firing a burst.
    if (next_sync_ <= now) next_sync_ = now + period_;
    schedule_sync();
  });
}

void Daemon::on_sync() {
  reopen_closed_links();
  auto now = Clock::now();
  // Upstream prints this every period; under a service manager that is
  // 8,640 journal lines a day at the default period, so only with -d.
  if (engine_.mode() == wire::Mode::Primary && verbose()) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    std::printf("[%lld.%09u] announce primary ...\n", static_cast<long long>(ts.tv_sec),
                static_cast<unsigned>(ts.tv_nsec));
    std::fflush(stdout);
  }
  engine_.on_sync_tick(now);
  arm_tx_timer();
}

void Daemon::release_memory() {
  // After a flood, transactions that timed out or records evicted leave the
  // heap at its high mark; hand the pages back so a router's RSS returns to
  // normal. Counted in heap memory: a flood of empty pushes is 32 MiB of
  // heap but little payload.
  std::size_t now = engine_.transactions().memory() + engine_.store().memory();
  if (now + (4u << 20) < buffered_peak_) {
    ::malloc_trim(0);
    buffered_peak_ = now;
  }
  buffered_peak_ = std::max(buffered_peak_, now);
}

void Daemon::arm_tx_timer() {
  release_memory();
  auto deadline = engine_.next_deadline();
  // A wait already due no later than the deadline stays: firing early costs
  // one harmless engine tick, where re-arming on every packet (the earliest
  // transaction completes, the deadline moves) costs a cancelled handler and
  // a timerfd update per packet.
  if (!deadline || (tx_armed_ && tx_timer_.expiry() <= *deadline)) return;
  tx_armed_ = true;
  tx_timer_.expires_at(*deadline);
  tx_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    tx_armed_ = false;
    engine_.on_timer(Clock::now());
    arm_tx_timer();
  });
}

}  // namespace alfred::net
