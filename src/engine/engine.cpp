#include "engine/engine.hpp"

#include <algorithm>

namespace alfred {

namespace {
std::string describe(const Route& r) {
  return to_string(r.mac) + " (" + to_string(r.addr) + "%" + r.iface + ")";
}
}  // namespace

std::vector<std::string> parse_interface_list(const std::string& list) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    std::size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string name = list.substr(pos, comma - pos);
    if (!name.empty() && std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    pos = comma + 1;
  }
  return out;
}

Engine::Engine(EngineConfig config, Effects& effects, TqSource& tq,
               std::function<std::uint16_t()> random_id)
    : mode_(config.mode),
      interfaces_disabled_(config.interfaces_disabled),
      bat_iface_(std::move(config.bat_iface)),
      update_command_(config.update_command),
      fx_(effects),
      tq_(tq),
      random_id_(std::move(random_id)),
      store_(config.store),
      transactions_(config.limits),
      requests_(config.requests),
      max_servers_(config.max_servers_per_interface),
      sync_budget_(config.sync_budget_bytes),
      max_answer_bytes_(config.max_answer_bytes),
      prompt_delay_(config.prompt_sync_delay),
      first_hand_hold_(config.first_hand_hold) {
  for (auto& name : config.interfaces) ifaces_.push_back(Iface{name, false, {}, {}, {}, {}});
}

Engine::Iface* Engine::find_iface(const std::string& name) {
  for (auto& i : ifaces_)
    if (i.name == name) return &i;
  return nullptr;
}

const Engine::Iface* Engine::first_active() const {
  for (const auto& i : ifaces_)
    if (i.active) return &i;
  return nullptr;
}

void Engine::interface_up(const std::string& name, const Mac& mac, const PeerAddress& own) {
  Iface* i = find_iface(name);
  if (!i) return;
  i->active = true;
  i->mac = mac;
  i->own = own;
  // A primary is known the moment it can be heard, not a period later:
  // secondaries and other primaries adopt it on its first announcement.
  if (mode_ == wire::Mode::Primary) announce(*i);
}

void Engine::announce(const Iface& i) {
  if (i.active)
    fx_.send_packet(Route{i.name, PeerAddress::group(), {}, 0}, wire::encode(wire::AnnouncePrimary{}));
}

void Engine::interface_down(const std::string& name) {
  Iface* i = find_iface(name);
  if (!i) return;
  i->active = false;
}

// ---------------------------------------------------------------- network

void Engine::on_packet(const Route& from, std::span<const std::uint8_t> bytes, TimePoint now) {
  last_completed_.reset();
  auto decoded = wire::decode(bytes);
  if (!decoded.ok) {
    log_limited("decode", now, [&] {
      return "dropped packet from " + describe(from) + ": " + decoded.error;
    });
    return;
  }
  if (!find_iface(from.iface)) return;
  if (auto* push = std::get_if<wire::PushData>(&decoded.packet)) {
    if (decoded.ignored_bytes)
      log_limited("push-partial", now, [&] {
        return "push data from " + describe(from) + ": " + std::to_string(decoded.ignored_bytes) +
               " bytes after the last whole record ignored";
      });
    handle_push(from, *push, bytes, now);
  } else if (std::holds_alternative<wire::AnnouncePrimary>(decoded.packet)) {
    handle_announce(from, now);
  } else if (auto* req = std::get_if<wire::Request>(&decoded.packet)) {
    handle_request(from, *req, now);
  } else if (auto* end = std::get_if<wire::TxEnd>(&decoded.packet)) {
    handle_txend(from, *end, now);
  } else {
    log_limited("not-network", now, [&] {
      return "dropped " + std::string(wire::type_name(bytes[0])) + " packet from " +
            describe(from) + ": not a network message";
    });
  }
}

void Engine::handle_announce(const Route& from, TimePoint now) {
  Iface* i = find_iface(from.iface);
  auto it = i->servers.find(from.mac);
  if (it != i->servers.end()) {
    i->heard.erase({it->second.last_seen, from.mac});
    // A known primary that opens a session to us (its hello is the
    // announcement, on a stream) may have restarted within kServerTimeout
    // and lost everything: it gets our first-hand data now, not at our next
    // period. Within the welcome count, as a newcomer.
    if (from.stream != 0 && mode_ == wire::Mode::Primary && i->active)
      welcome(Route{i->name, from.addr, from.mac, 0});
  } else {
    if (i->servers.size() >= max_servers_) {
      // Full: the primary heard longest ago gives way, but only if it has
      // been silent for a while, so that a flood of new addresses cannot
      // push out primaries that keep announcing. Forged addresses that keep
      // announcing would then lock real primaries out; so a newcomer that
      // batman-adv knows is in the mesh takes the place of the one heard
      // longest ago that it does not know, silent or not.
      crowded_ = true;
      auto oldest = i->heard.begin();
      if (in_mesh(from.mac))
        for (auto h = i->heard.begin(); h != i->heard.end(); ++h)
          if (!in_mesh(h->second)) {
            oldest = h;
            break;
          }
      bool displace = oldest != i->heard.end() && in_mesh(from.mac) && !in_mesh(oldest->second);
      if (oldest == i->heard.end() || (!displace && now - oldest->first < kServerStale)) {
        log_limited("servers-full", now, [&] {
      return "ignored primary " + describe(from) + ": " + std::to_string(max_servers_) +
                " primaries known on " + from.iface;
    });
        return;
      }
      Mac gone = oldest->second;
      log_limited("servers-evict", now, [&] {
      return "primary " + to_string(gone) + " dropped for " + describe(from) +
              ": primary table full";
    });
      if (best_ && best_->first == i->name && best_->second == gone) best_.reset();
      i->servers.erase(gone);
      i->heard.erase(oldest);
    }
    it = i->servers.try_emplace(from.mac).first;
    // Last in the queue of a sync budget, or every new address (forged
    // ones too) would go before the primaries already waiting.
    it->second.last_full_sync = now;
    fx_.log("new primary " + describe(from));
    if (mode_ == wire::Mode::Primary && i->active) welcome(Route{i->name, from.addr, from.mac, 0});
  }
  it->second.addr = from.addr;
  it->second.last_seen = now;
  i->heard.insert({now, from.mac});
  // A secondary without a primary takes the first one it hears at once, not
  // at its next tick, and hands it its data; the tick still picks the best
  // by TQ. Only with none chosen, so a flood of announcements costs nothing.
  if (mode_ == wire::Mode::Secondary && !best_server() && i->active) {
    best_ = {i->name, from.mac};
    fx_.log("adopted primary " + describe(from) + " on its first announcement");
    Route to{i->name, from.addr, from.mac, 0};
    fx_.keep_session(to);
    push_local(to, store_.snapshot(Source::Local), PushKind::Prompt);
  }
}

void Engine::welcome(const Route& to) {
  // Counted before anything is built: a newcomer over the budget costs a
  // welcome too, so alternating changes and forged newcomers cannot make us
  // build a snapshot of the store for each.
  if (welcomes_left_ <= 0) return;
  --welcomes_left_;
  // Sessions between primaries are ready before the first change to carry.
  // Within the welcome count: forged newcomers cost at most that many
  // connection attempts a period.
  fx_.keep_session(to);
  if (!welcome_snap_) welcome_snap_ = std::make_shared<const Snapshot>(store_.snapshot(Source::FirstHand));
  if (welcome_snap_->empty()) return;
  std::size_t size = wire::PushEncoder::encoded_size(*welcome_snap_, false, wire::kMaxPacket);
  // Charged to the period's sync budget like every sync to a primary.
  if (sync_budget_ > 0 && sync_spent_ + size > sync_budget_) {
    crowded_ = true;
    return;
  }
  sync_spent_ += size;
  fx_.log("first-hand data (" + std::to_string(welcome_snap_->size()) + " records) to new primary " +
          describe(to));
  fx_.send_push(to, wire::PushEncoder::shared(welcome_snap_, random_id_(), false), PushKind::Prompt);
}

void Engine::push_local(const Route& to, Snapshot records, PushKind kind) {
  if (!records.empty())
    fx_.send_push(to, wire::PushEncoder(std::move(records), random_id_(), false), kind);
}

void Engine::handle_request(const Route& from, const wire::Request& req, TimePoint now) {
  // Only primaries are asked (secondaries send no announcements, so no one
  // has reason to ask them); answering in any mode, as upstream does, only
  // makes every node an amplifier.
  if (mode_ != wire::Mode::Primary) {
    log_limited("request-mode", now, [&] {
      return "dropped request from " + describe(from) + ": not a primary";
    });
    return;
  }
  // Admitted before the snapshot is built, so a refused request costs
  // O(log n), not a walk of the store.
  switch (requests_.admit(from.iface, from.mac, store_.type_bytes(req.requested_type),
                          store_.has_sender(from.mac), now)) {
    case RequestBudget::Verdict::Answer:
      break;
    case RequestBudget::Verdict::SourceLimited:
      log_limited("request-source", now, [&] {
      return "dropped request from " + describe(from) + ": too many requests from it";
    });
      return;
    case RequestBudget::Verdict::GlobalLimited:
      log_limited("request-global", now, [&] {
      return "dropped request from " + describe(from) + ": reply budget of this second spent";
    });
      return;
  }
  // An answer queued behind a slow reader keeps its snapshot, and records
  // the store has dropped since, alive: what all answers in flight hold is
  // capped, counted until the transport lets the last copy go.
  std::size_t cost = store_.type_bytes(req.requested_type) +
                     store_.type_records(req.requested_type) * sizeof(RecordPtr);
  if (*answers_live_ + cost > max_answer_bytes_ && *answers_live_ > 0) {
    log_limited("request-memory", now, [&] {
      return "dropped request from " + describe(from) + ": answers in flight hold " +
             std::to_string(*answers_live_) + " bytes";
    });
    return;
  }
  *answers_live_ += cost;
  std::weak_ptr<std::size_t> meter = answers_live_;
  auto snap = std::shared_ptr<const Snapshot>(
      new Snapshot(store_.snapshot(Source::Synced, req.requested_type)),
      [meter, cost](const Snapshot* p) {
        if (auto m = meter.lock()) *m -= cost;
        delete p;
      });
  if (fx_.logging())
    fx_.log("request for type " + std::to_string(req.requested_type) + " from " + describe(from) +
            ": " + std::to_string(snap->size()) + " records");
  fx_.send_push(from, wire::PushEncoder::shared(std::move(snap), req.tx_id, true), PushKind::Reply);
}

void Engine::handle_push(const Route& from, const wire::PushData& push,
                         std::span<const std::uint8_t> bytes, TimePoint now) {
  TransactionTable::Key key{from.mac, push.tx_id};
  // Keep only the packet itself, not trailing bytes of the datagram.
  wire::TlvHeader h;
  wire::read_tlv_header(bytes, h);
  std::span<const std::uint8_t> packet = bytes.first(wire::kTlvSize + h.length);
  auto* tx = transactions_.find(key);
  if (!tx) {
    // The other copy of a transaction that completed a moment ago (see
    // RecentCompletions): applied once only.
    if (recent_.completed_packet(key, push.seqno, packet, now)) return;
    // Secondaries only take answers to their own requests.
    if (mode_ != wire::Mode::Primary) {
      log_limited("push-unsolicited", now, [&] {
      return "dropped push data from " + describe(from) + ": no transaction " +
              std::to_string(push.tx_id);
    });
      return;
    }
    tx = transactions_.create(key, now, end_of_life(from, now));
    if (!tx) {
      log_limited("push-tx-limit", now, [&] {
      return "dropped push data from " + describe(from) + ": transaction limit reached";
    });
      return;
    }
  }
  auto r = transactions_.add_packet(*tx, push.seqno, std::vector<std::uint8_t>(packet.begin(), packet.end()), now);
  if (r == TransactionTable::AddResult::OverLimit) {
    log_limited("push-memory", now, [&] {
      return "dropped push data from " + describe(from) + ": buffer limit reached";
    });
    return;
  }
  if (r == TransactionTable::AddResult::TooManyPackets) {
    log_limited("push-packets", now, [&] {
      return "dropped push data from " + describe(from) + ": transaction " +
            std::to_string(push.tx_id) + " has " +
            std::to_string(transactions_.limits().max_packets_per_transaction) + " packets";
    });
    return;
  }
  if (r == TransactionTable::AddResult::Duplicate) return;
  finish_if_complete(key, from);
}

TimePoint Engine::end_of_life(const Route& from, TimePoint now) {
  return from.stream ? TimePoint::max() : now + TransactionTable::kDatagramLifetime;
}

void Engine::handle_txend(const Route& from, const wire::TxEnd& end, TimePoint now) {
  TransactionTable::Key key{from.mac, end.tx_id};
  auto* tx = transactions_.find(key);
  if (!tx) {
    if (recent_.completed_txend(key, end.seqno, now)) {
      // The second copy's txend (see RecentCompletions): confirmed, and
      // nothing opened.
      last_completed_ = key;
      return;
    }
    if (mode_ != wire::Mode::Primary || end.seqno == 0) return;
    tx = transactions_.create(key, now, end_of_life(from, now));
    if (!tx) return;
  }
  // Its first txend only: repeats would hold the transaction open for ever.
  if (!tx->expected) transactions_.touch(*tx, now);
  tx->expected = end.seqno;
  finish_if_complete(key, from);
}

void Engine::finish_if_complete(const TransactionTable::Key& key, const Route& from) {
  auto* tx = transactions_.find(key);
  if (!tx || !tx->complete()) return;
  auto done = transactions_.take(key);
  last_completed_ = key;
  TimePoint now = done.last_rx;
  RecentCompletions::Entry entry{now, static_cast<std::uint16_t>(done.packets.size()), 0};
  if (done.packets.size() == 1) entry.digest = RecentCompletions::digest(done.packets.begin()->second);
  recent_.add(key, entry);
  std::size_t bytes = done.bytes;
  for (const auto& [seqno, packet] : done.packets) apply(from.mac, packet, now);
  // Not rate-limited: the benchmark reads these lines; one per transaction.
  if (fx_.logging())
    fx_.log("transaction " + std::to_string(key.id) + " from " + describe(from) + " complete: " +
            std::to_string(done.packets.size()) + " packets, " + std::to_string(bytes) + " bytes");
  if (done.client) finish_client(*done.client, done.requested_type, key.id);
}

void Engine::apply(const Mac& sender, const std::vector<std::uint8_t>& packet, TimePoint now) {
  auto decoded = wire::decode(packet);
  auto* push = std::get_if<wire::PushData>(&decoded.packet);
  if (!decoded.ok || !push) return;  // checked when it arrived
  std::size_t refused = 0;
  for (const auto& rv : push->records) {
    if (rv.data.size() > wire::kMaxRecordData) continue;
    Record rec{rv.source, rv.type, rv.version, {rv.data.begin(), rv.data.end()}};
    auto u = store_.apply_remote(std::move(rec), sender, now);
    if (u.refused) ++refused;
    if (u.changed) {
      note_changed(rv.type);
      fx_.event(rv.type, rv.source);
      if (rv.source == sender && mode_ == wire::Mode::Primary)
        note_first_hand_change(rv.type, rv.source, now);
    }
  }
  if (refused)
    log_limited("store-full", now, [&] {
      return "store full (" + std::to_string(store_.size()) + " records, " +
            std::to_string(store_.memory()) + " bytes): refused " + std::to_string(refused) +
            " records from " + to_string(sender) +
             (store_.settled(sender, now)
                  ? " (settled senders take room only from newcomers)"
                  : " (a newcomer takes room only from newcomers as heavy)");
    });
}

RefreshOutcome Engine::on_refresh(const Route& from,
                                          std::span<const wire::RefreshEntry> entries,
                                          TimePoint now) {
  RefreshOutcome out;
  if (mode_ != wire::Mode::Primary) return out;
  std::size_t refused = 0;
  for (const auto& e : entries) {
    switch (store_.refresh(e.key.type, e.key.source, e.digest, from.mac, now)) {
      case Store::Refresh::Kept:
        ++refreshed_;
        ++out.kept;
        break;
      case Store::Refresh::Missing:
      case Store::Refresh::Differs:
        out.want.push_back(e.key);
        break;
      case Store::Refresh::Refused:
        ++refused;
        break;
      case Store::Refresh::Local:
      case Store::Refresh::FirstHand:
        break;
    }
  }
  if (refused)
    log_limited("store-full", now, [&] {
      return "store full (" + std::to_string(store_.size()) + " records, " +
             std::to_string(store_.memory()) + " bytes): refused to refresh " +
             std::to_string(refused) + " records from " + to_string(from.mac);
    });
  return out;
}

void Engine::note_changed(std::uint8_t type) {
  if (update_command_) changed_types_.set(type);
}

void Engine::note_first_hand_change(std::uint8_t type, const Mac& source, TimePoint now) {
  // A primary forwards what it set or heard first-hand to the other
  // primaries, a secondary what it set to its primary: changes coalesce for
  // prompt_delay_, then go as one small transaction.
  welcome_snap_.reset();
  if (prompt_delay_ <= Duration::zero()) return;
  prompt_keys_.insert({type, source});
  if (!prompt_at_) prompt_at_ = now + prompt_delay_;
}

std::optional<TimePoint> Engine::next_deadline() const {
  auto d = transactions_.next_deadline();
  if (prompt_at_ && (!d || *prompt_at_ < *d)) d = prompt_at_;
  return d;
}

void Engine::sync_primaries(std::shared_ptr<const Snapshot> snap, bool periodic, TimePoint now) {
  if (snap->empty()) return;
  std::vector<Route> targets;
  std::vector<Server*> servers;
  for (auto& i : ifaces_) {
    if (!i.active) continue;
    for (auto& [mac, s] : i.servers) {
      targets.push_back(Route{i.name, s.addr, mac, 0});
      servers.push_back(&s);
    }
  }
  if (targets.empty()) return;
  // Every known primary gets the snapshot, unless that is more than what is
  // left of the period's budget: announcements are unauthenticated, so the
  // table can hold primaries that are not there. Then as many as the budget
  // allows get it: those batman-adv knows are in the mesh first, then the
  // ones synced longest ago, so each primary still gets a full sync every
  // few periods. Prompt forwards are charged to the same budget; one the
  // budget has no room for waits for the period's full sync.
  std::size_t size = std::max<std::size_t>(
      1, wire::PushEncoder::encoded_size(*snap, false, wire::kMaxPacket));
  std::size_t n = targets.size();
  std::vector<std::size_t> order(n);
  for (std::size_t k = 0; k < n; ++k) order[k] = k;
  if (periodic) sync_spent_ = 0;
  if (sync_budget_ > 0) {
    std::size_t left = sync_budget_ > sync_spent_ ? sync_budget_ - sync_spent_ : 0;
    if (size * n > left) {
      n = std::min(n, left / size);
      if (periodic) n = std::max<std::size_t>(n, 1);
      crowded_ = true;  // crowded: learn which primaries are real at the next tick
      // Prompt syncs reach the same primaries as the last full one did, but
      // only full syncs move a primary back in the queue.
      auto rank = [&](std::size_t k) {
        return std::make_pair(!in_mesh(targets[k].mac), servers[k]->last_full_sync);
      };
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return rank(a) < rank(b); });
      log_limited("sync-budget", now, [&] {
        return std::string(periodic ? "full" : "prompt") + " syncs: sync budget of " +
               std::to_string(sync_budget_) + " bytes a period reaches " + std::to_string(n) +
               " of " + std::to_string(targets.size()) + " primaries";
      });
    }
    sync_spent_ += n * size;
  }
  for (std::size_t k = 0; k < n; ++k) {
    if (periodic) servers[order[k]]->last_full_sync = now;
    fx_.send_push(targets[order[k]], wire::PushEncoder::shared(snap, random_id_(), false),
                  periodic ? PushKind::Sync : PushKind::Prompt);
  }
}

void Engine::finish_client(ClientId client, std::uint8_t type, std::uint16_t id) {
  fx_.reply_records(client, store_.snapshot(Source::Synced, type), id);
}

// ---------------------------------------------------------------- unix socket

bool Engine::ipc_set_data(const wire::PushData& push, TimePoint now) {
  if (push.records.empty()) return false;
  const auto& rv = push.records.front();
  // A record must fit one packet, or it could never be synced or answered.
  if (rv.data.size() > wire::kMaxRecordData) return false;
  Mac source = rv.source;
  if (interfaces_disabled_) {
    // Without an interface there is no own MAC; only a primary may hold data
    // on behalf of others.
    if (!is_valid_unicast(source) || mode_ != wire::Mode::Primary) return false;
  } else {
    const Iface* i = first_active();
    if (!i) return false;
    if (is_valid_unicast(source)) {
      if (source != i->mac && mode_ != wire::Mode::Primary) return false;
    } else {
      source = i->mac;
    }
  }
  Record rec{source, rv.type, rv.version, {rv.data.begin(), rv.data.end()}};
  auto u = store_.set_local(std::move(rec), now);
  if (u.refused) {
    log_limited("store-full-local", now, [&] {
      return "store full (" + std::to_string(store_.size()) + " records, " +
             std::to_string(store_.memory()) + " bytes of locally set data): set refused";
    });
    return false;
  }
  if (u.changed) {
    fx_.event(rv.type, source);
    note_first_hand_change(rv.type, source, now);
  }
  return true;
}

void Engine::ipc_request(ClientId client, const wire::Request& request, TimePoint now) {
  auto best = best_server();
  if (mode_ == wire::Mode::Primary || !best || !first_active()) {
    finish_client(client, request.requested_type, request.tx_id);
    return;
  }
  TransactionTable::Key key{best->mac, request.tx_id};
  auto* tx = transactions_.create(key, now);
  if (!tx) {
    fx_.log("request " + std::to_string(request.tx_id) + " refused: transaction busy or limit");
    fx_.reply_error(client, request.tx_id);
    return;
  }
  tx->client = client;
  tx->requested_type = request.requested_type;
  if (fx_.logging())
    fx_.log("forwarding request for type " + std::to_string(request.requested_type) + " to " +
            describe(*best));
  fx_.forward_request(*best, request);
}

bool Engine::ipc_modeswitch(const wire::ModeSwitch& m) {
  switch (m.mode) {
    case static_cast<std::uint8_t>(wire::Mode::Secondary):
      if (ifaces_.size() != 1) return false;
      mode_ = wire::Mode::Secondary;
      return true;
    case static_cast<std::uint8_t>(wire::Mode::Primary):
      if (mode_ != wire::Mode::Primary)
        for (const auto& i : ifaces_) announce(i);
      mode_ = wire::Mode::Primary;
      return true;
    default:
      return false;
  }
}

bool Engine::ipc_change_interface(const std::string& interfaces) {
  if (mode_ == wire::Mode::Secondary && interfaces.find(',') != std::string::npos) {
    fx_.log("refused to set multiple interfaces in secondary mode");
    return false;
  }
  ifaces_.clear();
  best_.reset();
  std::vector<std::string> names;
  if (interfaces != "none") names = parse_interface_list(interfaces);
  for (auto& n : names) ifaces_.push_back(Iface{n, false, {}, {}, {}, {}});
  fx_.reconfigure_interfaces(names);
  return true;
}

void Engine::ipc_change_bat_iface(const std::string& bat_iface) { bat_iface_ = bat_iface; }

wire::ServerStatus Engine::status() const {
  wire::ServerStatus st;
  st.has_mode = true;
  st.mode = static_cast<std::uint8_t>(mode_);
  for (const auto& i : ifaces_) st.interfaces.push_back({i.name, i.active});
  st.has_bat_iface = true;
  st.bat_iface = bat_iface_;
  return st;
}

// ---------------------------------------------------------------- time

std::optional<Route> Engine::best_server() const {
  if (!best_) return std::nullopt;
  for (const auto& i : ifaces_) {
    if (i.name != best_->first) continue;
    auto it = i.servers.find(best_->second);
    if (it == i.servers.end()) return std::nullopt;
    return Route{i.name, it->second.addr, it->first, 0};
  }
  return std::nullopt;
}

std::vector<Route> Engine::servers() const {
  std::vector<Route> out;
  for (const auto& i : ifaces_)
    for (const auto& [mac, s] : i.servers) out.push_back(Route{i.name, s.addr, mac, 0});
  return out;
}

void Engine::update_tq() {
  std::vector<Mac> macs;
  for (const auto& i : ifaces_)
    for (const auto& [mac, s] : i.servers) macs.push_back(mac);
  if (macs.empty()) return;
  std::map<Mac, std::uint8_t> tq;
  if (bat_iface_ != "none") {
    bool ok = true;
    tq = tq_.tq(bat_iface_, macs, ok);
    if (!ok) fx_.log("could not query batman-adv interface " + bat_iface_);
  }
  for (auto& i : ifaces_)
    for (auto& [mac, s] : i.servers) {
      if (bat_iface_ == "none") {
        s.tq = 255;
      } else {
        auto it = tq.find(mac);
        s.tq = it == tq.end() ? 0 : it->second;
      }
    }
}

void Engine::choose_best_server() {
  int best_tq = -1;
  best_.reset();
  for (const auto& i : ifaces_)
    for (const auto& [mac, s] : i.servers)
      if (s.tq > best_tq) {
        best_tq = s.tq;
        best_ = {i.name, mac};
      }
}

void Engine::refresh_mesh_addresses(TimePoint now) {
  // Only while a table is full or the sync budget short of the primaries;
  // after that, a stale list would still rank the sync queue, so it goes.
  if (!crowded_) {
    mesh_addresses_.clear();
    return;
  }
  crowded_ = false;
  if (bat_iface_ == "none") return;
  bool ok = true;
  auto macs = tq_.mesh_addresses(bat_iface_, ok);
  if (!ok) {
    log_limited("mesh-addresses", now, [&] {
      return "primary table full, and batman-adv interface " + bat_iface_ +
             " could not be asked which primaries are in the mesh";
    });
    return;
  }
  if (macs.size() > kMaxMeshAddresses) macs.erase(std::next(macs.begin(), kMaxMeshAddresses), macs.end());
  mesh_addresses_ = std::move(macs);
  log_limited("mesh-addresses", now, [&] {
    return "primary table full: batman-adv knows " + std::to_string(mesh_addresses_.size()) +
           " addresses in the mesh, which take the place of unknown primaries";
  });
}

void Engine::on_sync_tick(TimePoint now) {
  refresh_mesh_addresses(now);
  welcomes_left_ = kWelcomesPerPeriod;
  welcome_snap_.reset();
  // Primaries that went silent go first: a secondary whose best one timed
  // out pushes to the next at this tick, not a period later.
  expire_servers(now);
  if (mode_ == wire::Mode::Primary) {
    for (const auto& i : ifaces_) announce(i);
    // Sessions to the other primaries are kept up (re-formed after a failed
    // first connect) even while we have nothing of our own to sync: the
    // first change then finds them ready. The same primaries a sync goes
    // to; forged ones that never answer are marked UDP-only and skipped.
    for (const auto& i : ifaces_)
      if (i.active)
        for (const auto& [mac, sv] : i.servers) fx_.keep_session(Route{i.name, sv.addr, mac, 0});
    // A secondary that moved to another primary left its record here; synced
    // as ours, it would overwrite the fresh copy its new primary holds.
    if (std::size_t n = store_.demote_first_hand(now, first_hand_hold_))
      if (fx_.logging())
        fx_.log(std::to_string(n) + " first-hand record(s) not refreshed by their source for " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(first_hand_hold_).count()) +
                " s: no longer synced as ours");
    // One snapshot serves every primary; the records are shared, not copied.
    sync_primaries(std::make_shared<const Snapshot>(store_.snapshot(Source::FirstHand)), true, now);
  } else {
    update_tq();
    choose_best_server();
    if (auto best = best_server()) {
      const Iface* i = find_iface(best->iface);
      if (i && i->active) {
        // A secondary with nothing of its own still forwards its clients'
        // requests there, and a new record must not wait for a handshake.
        fx_.keep_session(*best);
        push_local(*best, store_.snapshot(Source::Local), PushKind::Sync);
      }
    }
  }
  prompt_keys_.clear();  // the full sync carries them
  prompt_at_.reset();
  expire(now);
  if (update_command_ && changed_types_.any()) {
    fx_.run_update_command(changed_types_);
    changed_types_.reset();
  }
}

void Engine::expire(TimePoint now) {
  requests_.expire(now);
  auto gone = store_.expire(now);
  if (update_command_) changed_types_ |= gone;
  expire_servers(now);
  on_timer(now);
}

void Engine::expire_servers(TimePoint now) {
  for (auto& i : ifaces_)
    for (auto it = i.servers.begin(); it != i.servers.end();) {
      if (now - it->second.last_seen >= kServerTimeout) {
        if (best_ && best_->first == i.name && best_->second == it->first) best_.reset();
        fx_.log("primary " + to_string(it->first) + " timed out");
        i.heard.erase({it->second.last_seen, it->first});
        it = i.servers.erase(it);
      } else {
        ++it;
      }
    }
  if (!best_) choose_best_server();
}

void Engine::on_timer(TimePoint now) {
  if (prompt_at_ && now >= *prompt_at_) {
    prompt_at_.reset();
    std::vector<std::pair<std::uint8_t, Mac>> keys(prompt_keys_.begin(), prompt_keys_.end());
    prompt_keys_.clear();
    if (mode_ == wire::Mode::Primary) {
      sync_primaries(std::make_shared<const Snapshot>(store_.snapshot_of(keys, Source::FirstHand)),
                     false, now);
    } else if (auto best = best_server()) {
      const Iface* i = find_iface(best->iface);
      if (i && i->active) {
        if (fx_.logging())
          fx_.log("prompt push of " + std::to_string(keys.size()) + " changed record(s) to " +
                  describe(*best));
        push_local(*best, store_.snapshot_of(keys, Source::Local), PushKind::Prompt);
      }
    }
  }
  for (const auto& key : transactions_.expired(now)) {
    auto tx = transactions_.take(key);
    if (fx_.logging())
      fx_.log("transaction " + std::to_string(key.id) + " from " + to_string(key.peer) +
              " timed out with " + std::to_string(tx.packets.size()) + " packets");
    if (tx.client) fx_.reply_error(*tx.client, key.id);
  }
}

}  // namespace alfred
