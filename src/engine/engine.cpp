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
      transactions_(config.limits),
      prompt_delay_(config.prompt_sync_delay) {
  for (auto& name : config.interfaces) ifaces_.push_back(Iface{name, false, {}, {}, {}});
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
}

void Engine::interface_down(const std::string& name) {
  Iface* i = find_iface(name);
  if (!i) return;
  i->active = false;
}

// ---------------------------------------------------------------- network

void Engine::on_packet(const Route& from, std::span<const std::uint8_t> bytes, TimePoint now) {
  auto decoded = wire::decode(bytes);
  if (!decoded.ok) {
    fx_.log("dropped packet from " + describe(from) + ": " + decoded.error);
    return;
  }
  if (!find_iface(from.iface)) return;
  if (auto* push = std::get_if<wire::PushData>(&decoded.packet)) {
    handle_push(from, *push, bytes, now);
  } else if (std::holds_alternative<wire::AnnouncePrimary>(decoded.packet)) {
    handle_announce(from, now);
  } else if (auto* req = std::get_if<wire::Request>(&decoded.packet)) {
    handle_request(from, *req, now);
  } else if (auto* end = std::get_if<wire::TxEnd>(&decoded.packet)) {
    handle_txend(from, *end, now);
  } else {
    fx_.log("dropped " + std::string(wire::type_name(bytes[0])) + " packet from " +
            describe(from) + ": not a network message");
  }
}

void Engine::handle_announce(const Route& from, TimePoint now) {
  Iface* i = find_iface(from.iface);
  auto [it, inserted] = i->servers.try_emplace(from.mac);
  it->second.addr = from.addr;
  it->second.last_seen = now;
  if (inserted) fx_.log("new primary " + describe(from));
}

void Engine::handle_request(const Route& from, const wire::Request& req, TimePoint) {
  auto snap = store_.snapshot(Source::Synced, req.requested_type);
  fx_.log("request for type " + std::to_string(req.requested_type) + " from " + describe(from) +
          ": " + std::to_string(snap.size()) + " records");
  fx_.send_push(from, wire::PushEncoder(std::move(snap), req.tx_id, true), PushKind::Reply);
}

void Engine::handle_push(const Route& from, const wire::PushData& push,
                         std::span<const std::uint8_t> bytes, TimePoint now) {
  TransactionTable::Key key{from.mac, push.tx_id};
  auto* tx = transactions_.find(key);
  if (!tx) {
    // Secondaries only take answers to their own requests.
    if (mode_ != wire::Mode::Primary) {
      fx_.log("dropped push data from " + describe(from) + ": no transaction " +
              std::to_string(push.tx_id));
      return;
    }
    tx = transactions_.create(key, now);
    if (!tx) {
      fx_.log("dropped push data from " + describe(from) + ": transaction limit reached");
      return;
    }
  }
  // Keep only the packet itself, not trailing bytes of the datagram.
  wire::TlvHeader h;
  wire::read_tlv_header(bytes, h);
  std::vector<std::uint8_t> copy(bytes.begin(), bytes.begin() + wire::kTlvSize + h.length);
  auto r = transactions_.add_packet(*tx, push.seqno, std::move(copy), now);
  if (r == TransactionTable::AddResult::OverLimit) {
    fx_.log("dropped push data from " + describe(from) + ": buffer limit reached");
    return;
  }
  if (r == TransactionTable::AddResult::Duplicate) return;
  finish_if_complete(key, from);
}

void Engine::handle_txend(const Route& from, const wire::TxEnd& end, TimePoint now) {
  TransactionTable::Key key{from.mac, end.tx_id};
  auto* tx = transactions_.find(key);
  if (!tx) {
    if (mode_ != wire::Mode::Primary || end.seqno == 0) return;
    tx = transactions_.create(key, now);
    if (!tx) return;
  }
  tx->last_rx = now;
  tx->expected = end.seqno;
  finish_if_complete(key, from);
}

void Engine::finish_if_complete(const TransactionTable::Key& key, const Route& from) {
  auto* tx = transactions_.find(key);
  if (!tx || !tx->complete()) return;
  auto done = transactions_.take(key);
  TimePoint now = done.last_rx;
  std::size_t bytes = done.bytes;
  for (const auto& [seqno, packet] : done.packets) apply(from.mac, packet, now);
  fx_.log("transaction " + std::to_string(key.id) + " from " + describe(from) + " complete: " +
          std::to_string(done.packets.size()) + " packets, " + std::to_string(bytes) + " bytes");
  if (done.client) finish_client(*done.client, done.requested_type, key.id);
}

void Engine::apply(const Mac& sender, const std::vector<std::uint8_t>& packet, TimePoint now) {
  auto decoded = wire::decode(packet);
  auto* push = std::get_if<wire::PushData>(&decoded.packet);
  if (!decoded.ok || !push) return;  // checked when it arrived
  for (const auto& rv : push->records) {
    if (rv.data.size() > wire::kMaxRecordData) continue;
    Record rec{rv.source, rv.type, rv.version, {rv.data.begin(), rv.data.end()}};
    auto u = store_.apply_remote(std::move(rec), sender, now);
    if (u.changed) {
      note_changed(rv.type);
      fx_.event(rv.type, rv.source);
      if (rv.source == sender) note_first_hand_change(rv.type, rv.source, now);
    }
  }
}

void Engine::note_changed(std::uint8_t type) {
  if (update_command_) changed_types_.set(type);
}

void Engine::note_first_hand_change(std::uint8_t type, const Mac& source, TimePoint now) {
  if (mode_ != wire::Mode::Primary || prompt_delay_ <= Duration::zero()) return;
  prompt_keys_.insert({type, source});
  if (!prompt_at_) prompt_at_ = now + prompt_delay_;
}

std::optional<TimePoint> Engine::next_deadline() const {
  auto d = transactions_.next_deadline();
  if (prompt_at_ && (!d || *prompt_at_ < *d)) d = prompt_at_;
  return d;
}

void Engine::sync_primaries(std::shared_ptr<const Snapshot> snap) {
  if (snap->empty()) return;
  for (const auto& i : ifaces_) {
    if (!i.active) continue;
    for (const auto& [mac, s] : i.servers)
      fx_.send_push(Route{i.name, s.addr, mac, 0},
                    wire::PushEncoder::shared(snap, random_id_(), false), PushKind::Sync);
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
  for (auto& n : names) ifaces_.push_back(Iface{n, false, {}, {}, {}});
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

void Engine::on_sync_tick(TimePoint now) {
  if (mode_ == wire::Mode::Primary) {
    auto announce = wire::encode(wire::AnnouncePrimary{});
    for (const auto& i : ifaces_)
      if (i.active) fx_.send_packet(Route{i.name, PeerAddress::group(), {}, 0}, announce);
    // One snapshot serves every primary; the records are shared, not copied.
    sync_primaries(std::make_shared<const Snapshot>(store_.snapshot(Source::FirstHand)));
    prompt_keys_.clear();  // the full sync carries them
    prompt_at_.reset();
  } else {
    update_tq();
    choose_best_server();
    if (auto best = best_server()) {
      const Iface* i = find_iface(best->iface);
      auto snap = store_.snapshot(Source::Local);
      if (i && i->active && !snap.empty())
        fx_.send_push(*best, wire::PushEncoder(std::move(snap), random_id_(), false),
                      PushKind::Sync);
    }
  }
  expire(now);
  if (update_command_ && changed_types_.any()) {
    fx_.run_update_command(changed_types_);
    changed_types_.reset();
  }
}

void Engine::expire(TimePoint now) {
  auto gone = store_.expire(now);
  if (update_command_) changed_types_ |= gone;
  for (auto& i : ifaces_)
    for (auto it = i.servers.begin(); it != i.servers.end();) {
      if (now - it->second.last_seen >= kServerTimeout) {
        if (best_ && best_->first == i.name && best_->second == it->first) best_.reset();
        fx_.log("primary " + to_string(it->first) + " timed out");
        it = i.servers.erase(it);
      } else {
        ++it;
      }
    }
  if (!best_) choose_best_server();
  on_timer(now);
}

void Engine::on_timer(TimePoint now) {
  if (prompt_at_ && now >= *prompt_at_) {
    prompt_at_.reset();
    std::vector<std::pair<std::uint8_t, Mac>> keys(prompt_keys_.begin(), prompt_keys_.end());
    prompt_keys_.clear();
    if (mode_ == wire::Mode::Primary)
      sync_primaries(std::make_shared<const Snapshot>(store_.snapshot_of(keys, Source::FirstHand)));
  }
  for (const auto& key : transactions_.expired(now)) {
    auto tx = transactions_.take(key);
    fx_.log("transaction " + std::to_string(key.id) + " from " + to_string(key.peer) +
            " timed out with " + std::to_string(tx.packets.size()) + " packets");
    if (tx.client) fx_.reply_error(*tx.client, key.id);
  }
}

}  // namespace alfred
