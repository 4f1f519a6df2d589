#include "link/session_link.hpp"

#include <algorithm>

#include "wire/packed_frame.hpp"
#include "wire/session_frames.hpp"

namespace alfred::link {

std::string_view to_string(SessionState s) {
  switch (s) {
    case SessionState::Idle: return "idle";
    case SessionState::Connecting: return "connecting";
    case SessionState::Hello: return "hello";
    case SessionState::Up: return "up";
    case SessionState::Backoff: return "backoff";
  }
  return "?";
}

namespace {
std::string ms(Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}
}  // namespace

SessionLink::SessionLink(SessionEvents& events, SessionLimits limits, std::uint32_t seed)
    : ev_(events), limits_(limits), rng_(seed ? seed : 1) {}

void SessionLink::send(wire::PushEncoder tx, bool full, TimePoint now) {
  last_use_ = now;
  if (full && (!outgoing_.empty() || !unacked_.empty())) {
    // A full sync carries everything the older transactions did. As a
    // delta too: what they carried is not in the baseline until it is
    // acknowledged, so the delta carries it again.
    std::size_t n = outgoing_.size() + unacked_.size();
    superseded_ += n;
    outgoing_.clear();
    unacked_.clear();
    ev_.log("session: full sync supersedes " + std::to_string(n) + " queued transaction(s)");
  }
  if (full && delta_peer_ && baseline_ok_ && state_ == SessionState::Up) {
    send_delta(std::move(tx), now);
    return;
  }
  Item item{std::move(tx), full, now, {}, 0};
  item.part = !full;
  enqueue(std::move(item), now);
}

void SessionLink::enqueue(Item item, TimePoint now) {
  // Reconnects keep failing: a copy goes by UDP at once, and the
  // transaction stays queued for the session that comes back.
  item.small = fits_one_datagram(item.tx);
  if (degraded_) copy_for_outage(item, now);
  outgoing_.push_back(std::move(item));
  make_room();
  if (state_ == SessionState::Idle) start_connecting(now);
  else if (state_ == SessionState::Up) ev_.wake();
  // Behind a transaction already copied, this one is copied at once.
  copy_by_udp(now);
}

namespace {
bool by_key(const wire::RecordKey& a, const wire::RecordKey& b) { return a < b; }
wire::RecordKey key_of(const Record& r) { return wire::RecordKey{r.type, r.source}; }
}  // namespace

void SessionLink::send_delta(wire::PushEncoder tx, TimePoint now) {
  const auto snap = tx.records();
  Snapshot changed;
  std::vector<wire::RefreshEntry> same;
  std::vector<Held> next;
  next.reserve(std::min(snap->size(), baseline_.size()));
  auto b = baseline_.begin();
  bool ordered = true;
  for (std::size_t i = 0; i < snap->size(); ++i) {
    const Record& r = *(*snap)[i];
    wire::RecordKey key = key_of(r);
    if (i > 0 && !by_key(key_of(*(*snap)[i - 1]), key)) {
      ordered = false;
      break;
    }
    std::uint64_t d = digest_of(r);
    while (b != baseline_.end() && by_key(b->key, key)) ++b;
    if (b != baseline_.end() && b->key == key && b->digest == d) {
      same.push_back({key, d});
      next.push_back({key, d});
    } else {
      changed.push_back((*snap)[i]);
    }
  }
  if (!ordered) {
    // Not a store's snapshot (those are ordered by type, then source): it
    // goes whole, and sets the baseline again when acknowledged.
    reset_baseline();
    Item item{std::move(tx), true, now, {}, 0};
    enqueue(std::move(item), now);
    return;
  }
  // What the peer holds from us, as far as we know, is now what it had and
  // we still send; the changed records join when acknowledged. Those we no
  // longer send are left to expire there, as with a full sync.
  baseline_ = std::move(next);
  last_full_ = snap;
  ++delta_stats_.syncs;
  delta_stats_.changed += changed.size();
  delta_stats_.refreshed += same.size();
  if (ev_.logging())
    ev_.log("delta sync: " + std::to_string(changed.size()) + " changed record(s) (transaction " +
            std::to_string(tx.tx_id()) + "), " + std::to_string(same.size()) + " refreshed");
  // Refreshes of an older delta still waiting to be written (a peer that
  // does not read) are replaced by these, so they never pile up.
  std::erase_if(control_, [](const std::vector<std::uint8_t>& f) {
    return !f.empty() && f[0] == static_cast<std::uint8_t>(wire::SessionType::Refresh);
  });
  wants_allowed_ = 0;
  wants_left_ = same.size();
  for (std::size_t i = 0; i < same.size(); i += wire::kMaxRefreshEntries) {
    auto chunk = std::span<const wire::RefreshEntry>(same).subspan(
        i, std::min(wire::kMaxRefreshEntries, same.size() - i));
    auto f = wire::encode_refresh(chunk);
    delta_stats_.refresh_bytes += f.size();
    control_.push_back(std::move(f));
    ++wants_allowed_;
  }
  if (!changed.empty()) {
    Item item{wire::PushEncoder(std::move(changed), tx.tx_id(), false), true, now, {}, 0};
    item.part = true;
    enqueue(std::move(item), now);
  } else if (!same.empty()) {
    ev_.wake();
  }
}

bool SessionLink::on_want(const std::vector<wire::RecordKey>& keys, TimePoint now,
                          std::string& error) {
  if (!delta_peer_ || wants_allowed_ <= 0 || !last_full_) {
    error = "a want that answers no refresh";
    return false;
  }
  std::vector<wire::RecordKey> sorted = keys;
  std::sort(sorted.begin(), sorted.end(), by_key);
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  // Only records our refreshes named can be wanted, each once: a peer that
  // wants the whole store in every want would have it sent again and again.
  if (sorted.size() > wants_left_) {
    error = "a want of " + std::to_string(sorted.size()) + " record(s), past the " +
            std::to_string(wants_left_) + " our refreshes left to want";
    return false;
  }
  --wants_allowed_;
  wants_left_ -= sorted.size();
  // The peer does not hold these as we do: they leave the baseline, and go
  // again from the last full sync (a key not in it is ignored). Both lists
  // are ordered, so one pass over each: a want costs the baseline's size
  // plus its own, not their product.
  Snapshot again;
  const Snapshot& full = *last_full_;
  auto r = full.begin();
  auto b = baseline_.begin();
  auto kept = baseline_.begin();
  for (const auto& k : sorted) {
    r = std::lower_bound(r, full.end(), k, [](const RecordPtr& rec, const wire::RecordKey& key) {
      return by_key(key_of(*rec), key);
    });
    if (r != full.end() && key_of(**r) == k) again.push_back(*r);
    while (b != baseline_.end() && by_key(b->key, k)) *kept++ = *b++;
    if (b != baseline_.end() && b->key == k) ++b;
  }
  if (kept != b) baseline_.erase(std::move(b, baseline_.end(), kept), baseline_.end());
  delta_stats_.wanted += again.size();
  if (ev_.logging())
    ev_.log("delta sync: the peer wants " + std::to_string(keys.size()) + " record(s), " +
            std::to_string(again.size()) + " of them ours to send");
  if (again.empty()) return true;
  Item item{wire::PushEncoder(std::move(again), static_cast<std::uint16_t>(rng_()), false), false, now,
            {}, 0};
  item.part = true;
  enqueue(std::move(item), now);
  return true;
}

void SessionLink::acknowledged(const Item& i) {
  if (!delta_peer_) return;
  const Snapshot& recs = *i.tx.records();
  std::vector<Held> held;
  held.reserve(recs.size());
  for (const auto& r : recs) held.push_back({key_of(*r), digest_of(*r)});
  auto less = [](const Held& a, const Held& b) { return by_key(a.key, b.key); };
  if (!i.part) {
    // A full sync, whole: the peer holds exactly this from us now.
    if (!std::is_sorted(held.begin(), held.end(), less) ||
        std::adjacent_find(held.begin(), held.end(), [](const Held& a, const Held& b) {
          return a.key == b.key;
        }) != held.end()) {
      reset_baseline();
      return;
    }
    baseline_ = std::move(held);
    baseline_ok_ = true;
    last_full_ = i.tx.records();
    return;
  }
  if (!baseline_ok_) return;
  // Merged in one pass (the newer digest wins): a delta of many records
  // costs what the baseline's size does, not that times their number.
  std::stable_sort(held.begin(), held.end(), less);
  std::vector<Held> merged;
  merged.reserve(baseline_.size() + held.size());
  auto a = baseline_.begin();
  for (auto h = held.begin(); h != held.end(); ++h) {
    if (std::next(h) != held.end() && std::next(h)->key == h->key) continue;  // the last one counts
    while (a != baseline_.end() && by_key(a->key, h->key)) merged.push_back(*a++);
    if (a != baseline_.end() && a->key == h->key) ++a;
    merged.push_back(*h);
  }
  merged.insert(merged.end(), a, baseline_.end());
  baseline_ = std::move(merged);
}

void SessionLink::reset_baseline() {
  baseline_ok_ = false;
  baseline_.clear();
  last_full_.reset();
  wants_allowed_ = 0;
  wants_left_ = 0;
}

void SessionLink::reset_delta() {
  delta_peer_ = false;
  reset_baseline();
}

bool SessionLink::fits_one_datagram(const wire::PushEncoder& tx) const {
  std::size_t max = limits_.udp_copy_max_bytes;
  if (max == 0) return false;
  // Every record takes its 10-byte header at least: a transaction of more
  // records is not walked (a full sync of a large store is never small).
  if (tx.record_count() > max / 10) return false;
  return tx.total_size() <= max;
}

template <typename F>
void SessionLink::in_send_order(F&& f) {
  for (auto& i : unacked_)
    if (!f(i)) return;
  if (current_ && !f(*current_)) return;
  for (auto& i : outgoing_)
    if (!f(i)) return;
}

template <typename F>
void SessionLink::in_send_order(F&& f) const {
  const_cast<SessionLink*>(this)->in_send_order([&](const Item& i) { return f(i); });
}

template <typename Why>
void SessionLink::copy(Item& i, TimePoint now, Why why) {
  ev_.push_by_udp(i.tx.restarted());
  ++i.copies;
  i.copied_at = now;
  ++udp_copies_;
  if (ev_.logging()) ev_.log("session: transaction " + std::to_string(i.tx.tx_id()) + " " + why() + ": a copy by UDP");
}

void SessionLink::copy_for_outage(Item& i, TimePoint now) {
  ev_.push_by_udp(i.tx.restarted());
  // One copy: through an outage of minutes, more would go nowhere.
  i.copies = std::max(1, limits_.udp_copies_max);
  i.copied_at = now;
}

std::optional<TimePoint> SessionLink::again_due(const Item& i) const {
  // On a session that is up, TCP resends what was lost every RTO (thin
  // streams: linearly), so one copy is enough there; a connect waits for
  // SYNs at 1 s, then 3 s.
  if (state_ == SessionState::Up || i.copies >= limits_.udp_copies_max) return std::nullopt;
  return i.copied_at + limits_.udp_copy_again;
}

void SessionLink::copy_by_udp(TimePoint now) {
  bool copying = false;
  in_send_order([&](Item& i) {
    if (i.delivered) return true;
    if (!i.small) return false;
    if (i.copies > 0) {
      copying = true;
      if (auto t = again_due(i); t && now >= *t) copy(i, now, [] { return std::string("still not acknowledged"); });
      return true;
    }
    if (copying) {
      copy(i, now, [] { return std::string("queued behind one copied"); });
    } else if (now - i.queued_at >= limits_.udp_copy_after) {
      copy(i, now, [&] {
        return "not acknowledged within " + ms(limits_.udp_copy_after) + " (" + std::string(to_string(state_)) + ")";
      });
      copying = true;
    }
    return true;
  });
}

std::optional<TimePoint> SessionLink::copy_due() const {
  std::optional<TimePoint> due;
  auto take = [&](TimePoint t) {
    if (!due || t < *due) due = t;
  };
  in_send_order([&](const Item& i) {
    if (i.delivered) return true;
    if (!i.small) return false;
    if (i.copies == 0) {
      // The first one not copied: those behind it are younger.
      take(i.queued_at + limits_.udp_copy_after);
      return false;
    }
    if (auto t = again_due(i)) take(*t);
    return true;
  });
  return due;
}

void SessionLink::make_room() {
  while (queued() > limits_.max_queued) {
    std::deque<Item>& from = unacked_.empty() ? outgoing_ : unacked_;
    if (from.empty()) break;
    from.pop_front();
    ++superseded_;
    ev_.log("session: more than " + std::to_string(limits_.max_queued) +
            " transactions queued, the oldest dropped (the next full sync carries it)");
  }
}

void SessionLink::request(const wire::Request& request, TimePoint now) {
  last_use_ = now;
  // Its answer comes by UDP (or a connection of the peer's): queued as well,
  // it would be answered twice.
  if (degraded_ || requests_.size() >= limits_.max_requests) {
    ev_.request_by_udp(request);
    return;
  }
  requests_.push_back(PendingRequest{request, false, now});
  if (state_ == SessionState::Idle) start_connecting(now);
  else if (state_ == SessionState::Up) ev_.wake();
}

void SessionLink::keep_open(TimePoint now) {
  last_use_ = now;
  if (state_ == SessionState::Idle) {
    start_connecting(now);
  } else if (state_ == SessionState::Backoff) {
    reform_ = true;
    // Reconnects have failed for a while (an outage): the backoff has grown
    // long, and the daemon's period paces the attempts instead, so the
    // session is back about a period after the link, not a backoff later.
    // For a while: a peer that took one session and went silent for good
    // (or an address an attacker answered once) then gets the backoff's
    // attempts, not one a period for ever.
    if (degraded_ && now - degraded_since_ < limits_.period_reconnects_for &&
        now - state_since_ >= limits_.backoff_min)
      start_connecting(now);
  }
}

void SessionLink::start_connecting(TimePoint now) {
  state_ = SessionState::Connecting;
  state_since_ = now;
  ev_.open_connection();
}

void SessionLink::connected(TimePoint now, bool primary) {
  if (state_ != SessionState::Connecting) return;
  state_ = SessionState::Hello;
  state_since_ = last_rx_ = last_tx_ = now;
  control_.clear();
  wire::SessionHello hello;
  hello.primary = primary;
  hello.delta = limits_.delta;
  hello.packed = limits_.packed;
  reset_delta();
  packed_peer_ = false;
  hello.keepalive_seconds = static_cast<std::uint16_t>(
      std::chrono::duration_cast<std::chrono::seconds>(limits_.keepalive_every).count());
  control_.push_back(wire::encode(hello));
  ev_.wake();
}

bool SessionLink::on_packet(std::span<const std::uint8_t> packet, TimePoint now,
                            std::string& error) {
  last_rx_ = now;
  wire::TlvHeader h;
  if (!wire::read_tlv_header(packet, h)) return true;
  if (!wire::is_session_type(h.type)) {
    // An answer to one of our requests ends with its txend.
    if (h.type == static_cast<std::uint8_t>(wire::Type::StatusTxEnd) && packet.size() >= 8) {
      std::uint16_t id = static_cast<std::uint16_t>(packet[4] << 8 | packet[5]);
      auto it = std::find_if(requests_.begin(), requests_.end(), [&](const PendingRequest& r) {
        return r.sent && r.request.tx_id == id;
      });
      if (it != requests_.end()) requests_.erase(it);
    }
    return true;
  }
  auto f = wire::decode_session(packet, error);
  if (!f) return false;
  switch (f->type) {
    case wire::SessionType::Hello:
      if (state_ != SessionState::Hello) return true;  // a repeat changes nothing
      if (!f->hello.answer) {
        error = "the peer's hello does not answer ours";
        return false;
      }
      state_ = SessionState::Up;
      state_since_ = now;
      spoke_sessions_ = true;
      delta_peer_ = limits_.delta && f->hello.delta;
      packed_peer_ = limits_.packed && f->hello.packed;
      reform_ = false;
      failed_reconnects_ = 0;
      if (degraded_) ev_.log("session back after reconnects failed: UDP copies end");
      degraded_ = false;
      ev_.learned(true);
      ev_.log("session up (session version " + std::to_string(f->hello.version) + "), " +
              std::to_string(queued()) + " transaction(s) and " +
              std::to_string(requests_.size()) + " request(s) to send");
      ev_.wake();
      return true;
    case wire::SessionType::Ack: {
      if (state_ != SessionState::Up) {
        error = "an acknowledgement before the session was up";
        return false;
      }
      auto it = std::find_if(unacked_.begin(), unacked_.end(),
                             [&](const Item& i) { return i.tx.tx_id() == f->ack.tx_id; });
      if (it != unacked_.end()) {
        // What went before it on the stream has reached the peer too (its
        // engine refused it, or took it from a copy we sent): it holds
        // nothing up behind it any more, so it is not copied, nor what
        // comes after it on its account.
        for (auto j = unacked_.begin(); j != it; ++j) j->delivered = true;
        acknowledged(*it);
        unacked_.erase(it);
      }
      return true;  // an ack of nothing we wait for is ignored
    }
    case wire::SessionType::Keepalive:
      return true;
    case wire::SessionType::Refresh:
      error = "a refresh from the acceptor";
      return false;
    case wire::SessionType::Want:
      if (state_ != SessionState::Up) {
        error = "a want before the session was up";
        return false;
      }
      return on_want(f->want, now, error);
    case wire::SessionType::Packed:
      error = "a packed frame from the acceptor";
      return false;
  }
  return true;
}

void SessionLink::closed(CloseCause cause, std::string_view why, TimePoint now) {
  // What the peer holds is known again only from a new full sync.
  reset_delta();
  packed_peer_ = false;
  switch (state_) {
    case SessionState::Idle:
    case SessionState::Backoff:
      return;
    case SessionState::Connecting:
      if (spoke_sessions_) {
        reconnect_failed(now, why);
        return;
      }
      ev_.log("session: can't connect (" + std::string(why) + "), " + std::to_string(queued()) +
              " transaction(s) go by UDP");
      give_up(false);
      return;
    case SessionState::Hello:
      // Only a clean close on our hello says "2016 framing" (that proposal
      // reads the hello whole, then closes). A reset is a peer at its
      // connection limit, or a link problem: as a failed connect.
      if (cause != CloseCause::Closed) {
        if (spoke_sessions_) {
          reconnect_failed(now, why);
        } else {
          ev_.log("session: connection reset before the session was up (" + std::string(why) +
                  "), " + std::to_string(queued()) + " transaction(s) go by UDP");
          give_up(false);
        }
        return;
      }
      // Closed on our hello: a peer of the 2016 framing (or of ours from
      // before sessions), which takes one connection per transaction.
      ev_.log("session: peer closed on the session hello (" + std::string(why) +
              "), taken to speak the 2016 framing");
      spoke_sessions_ = false;
      ev_.learned(false);
      give_up(true);
      return;
    case SessionState::Up: {
      std::size_t again = unacked_.size() + (current_ ? 1 : 0);
      requeue();
      reform_ = true;
      if (now - state_since_ >= limits_.stable_after) backoff_ = Duration::zero();
      ev_.log("session down (" + std::string(why) + "), " + std::to_string(again) +
              " unacknowledged transaction(s) to resend");
      enter_backoff(now, why);
      return;
    }
  }
}

void SessionLink::reconnect_failed(TimePoint now, std::string_view why) {
  // A peer that held a session with us speaks sessions: failing connects are
  // an outage, or the peer restarting, never a reason to take it for
  // UDP-only. After a few, what is queued goes by UDP too (a copy: it stays
  // queued for the next session), and so does what comes meanwhile.
  if (++failed_reconnects_ > limits_.max_failed_reconnects && !degraded_) {
    degraded_ = true;
    degraded_since_ = now;
    ev_.log("session: " + std::to_string(failed_reconnects_) + " reconnects failed (" +
            std::string(why) + "): " + std::to_string(outgoing_.size()) +
            " transaction(s) go by UDP as well until the session is back");
    for (auto& i : outgoing_)
      if (i.copies == 0) copy_for_outage(i, now);
    std::deque<PendingRequest> reqs;
    reqs.swap(requests_);
    for (auto& r : reqs) ev_.request_by_udp(r.request);
  }
  enter_backoff(now, why);
}

void SessionLink::requeue() {
  control_.clear();
  // From its first packet again, keeping when it was queued, how often it
  // was sent and whether it was copied.
  auto again = [](Item& i) {
    Item r = i;
    r.tx = i.tx.restarted();
    r.written_at = {};
    r.delivered = false;
    return r;
  };
  if (current_) {
    outgoing_.push_front(again(*current_));
    current_.reset();
    ++resent_;
  }
  while (!unacked_.empty()) {
    outgoing_.push_front(again(unacked_.back()));
    unacked_.pop_back();
    ++resent_;
  }
  for (auto& r : requests_) r.sent = false;
}

void SessionLink::give_up(bool legacy) {
  requeue();
  reform_ = false;
  degraded_ = false;
  failed_reconnects_ = 0;
  std::deque<Item> items;
  items.swap(outgoing_);
  std::deque<PendingRequest> reqs;
  reqs.swap(requests_);
  state_ = SessionState::Idle;
  for (auto& i : items) {
    if (legacy) ev_.push_by_legacy(std::move(i.tx));
    else if (i.copies == 0) ev_.push_by_udp(std::move(i.tx));  // else a copy went already
  }
  for (auto& r : reqs) {
    if (legacy) ev_.request_by_legacy(r.request);
    else ev_.request_by_udp(r.request);
  }
}

Duration SessionLink::next_backoff() {
  backoff_ = backoff_ == Duration::zero() ? limits_.backoff_min
                                          : std::min<Duration>(backoff_ * 2, limits_.backoff_max);
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  return std::chrono::duration_cast<Duration>(backoff_ * jitter(rng_));
}

void SessionLink::enter_backoff(TimePoint now, std::string_view why) {
  control_.clear();
  state_ = SessionState::Backoff;
  state_since_ = now;
  Duration d = next_backoff();
  retry_at_ = now + d;
  ev_.log("session: reconnecting in " + ms(d) + " (" + std::string(why) + ")");
}

bool SessionLink::next_packet(std::vector<std::uint8_t>& out, TimePoint now) {
  if (!control_.empty()) {
    out = std::move(control_.front());
    control_.pop_front();
    last_tx_ = now;
    return true;
  }
  if (state_ != SessionState::Up) return false;
  for (auto& r : requests_)
    if (!r.sent) {
      r.sent = true;
      out = wire::encode(r.request);
      if (ev_.logging())
        ev_.log("request for type " + std::to_string(r.request.requested_type) +
                " (transaction " + std::to_string(r.request.tx_id) + ")");
      last_tx_ = now;
      return true;
    }
  while (true) {
    if (!current_) {
      if (outgoing_.empty()) return false;
      current_ = std::move(outgoing_.front());
      outgoing_.pop_front();
      ++current_->sends;
      pack_before_ = pack_stats_;
      if (ev_.logging())
        ev_.log("push of " + std::to_string(current_->tx.total_size()) + " bytes (transaction " +
                std::to_string(current_->tx.tx_id()) + (current_->full ? ", full sync" : "") + ")");
    }
    if (current_->tx.next(out)) {
      if (packed_peer_) maybe_pack(out);
      last_tx_ = now;
      return true;
    }
    if (pack_stats_.packed != pack_before_.packed && ev_.logging())
      ev_.log("transaction " + std::to_string(current_->tx.tx_id()) + ": " +
              std::to_string(pack_stats_.packed - pack_before_.packed) + " of " +
              std::to_string(pack_stats_.packets - pack_before_.packets) + " packet(s) packed, " +
              std::to_string(pack_stats_.bytes_in - pack_before_.bytes_in) + " -> " +
              std::to_string(pack_stats_.bytes_out - pack_before_.bytes_out) + " bytes");
    // Written through its txend; it stays until the peer confirms it. One
    // that had no packet at all has nothing to confirm.
    if (current_->tx.packets_sent() > 0 || current_->tx.record_count() > 0) {
      current_->written_at = now;
      unacked_.push_back(std::move(*current_));
    }
    current_.reset();
  }
}

void SessionLink::maybe_pack(std::vector<std::uint8_t>& out) {
  if (out.empty() || out[0] != static_cast<std::uint8_t>(wire::Type::PushData)) return;
  ++pack_stats_.packets;
  std::size_t before = out.size();
  auto r = wire::pack(out, out);
  if (r == wire::PackResult::Precompressed) ++pack_stats_.precompressed;
  if (r != wire::PackResult::Packed) return;
  ++pack_stats_.packed;
  pack_stats_.bytes_in += before;
  pack_stats_.bytes_out += out.size();
}

void SessionLink::prune(TimePoint now) {
  auto stale = [&](const Item& i) {
    return now - i.queued_at >= limits_.max_age || i.sends >= limits_.max_sends;
  };
  std::size_t before = outgoing_.size() + unacked_.size();
  std::erase_if(outgoing_, stale);
  std::erase_if(unacked_, [&](const Item& i) { return now - i.queued_at >= limits_.max_age; });
  if (std::size_t n = before - outgoing_.size() - unacked_.size()) {
    superseded_ += n;
    ev_.log("session: " + std::to_string(n) + " transaction(s) dropped after " +
            std::to_string(limits_.max_sends) + " sessions or " + ms(limits_.max_age) +
            " unconfirmed (the next full sync carries them)");
  }
  std::erase_if(requests_, [&](const PendingRequest& r) {
    return now - r.queued_at >= limits_.request_timeout;
  });
}

void SessionLink::on_timer(TimePoint now) {
  prune(now);
  copy_by_udp(now);
  switch (state_) {
    case SessionState::Idle:
    case SessionState::Connecting:
      return;  // the transport times a connect out
    case SessionState::Hello:
      if (now - state_since_ >= limits_.hello_timeout) {
        ev_.close_connection("no answer to the session hello");
        // A peer that spoke sessions before is slow, not of the 2016 framing.
        closed(spoke_sessions_ ? CloseCause::Failed : CloseCause::Closed,
               "no answer to the session hello", now);
      }
      return;
    case SessionState::Backoff:
      if (now - last_use_ >= limits_.idle_close) {
        // Nobody has sent to this peer for a long while: it is not one we
        // serve any more, so there is nothing to re-form.
        reform_ = false;
        degraded_ = false;
        outgoing_.clear();
        requests_.clear();
        state_ = SessionState::Idle;
        return;
      }
      if (now < retry_at_) return;
      if (outgoing_.empty() && requests_.empty() && !reform_) {
        state_ = SessionState::Idle;
        return;
      }
      start_connecting(now);
      return;
    case SessionState::Up:
      if (now - last_rx_ >= limits_.dead_after) {
        std::string why = "nothing heard for " + ms(now - last_rx_);
        ev_.close_connection(why);
        closed(CloseCause::Failed, why, now);
        return;
      }
      // A transaction the peer took but never confirmed: its engine refused
      // it (a limit). The session is fine; the next full sync tries again.
      while (!unacked_.empty() && now - unacked_.front().written_at >= limits_.dead_after) {
        ev_.log("session: transaction " + std::to_string(unacked_.front().tx.tx_id()) +
                " not acknowledged within " + ms(limits_.dead_after) + ", dropped");
        unacked_.pop_front();
      }
      if (queued() == 0 && requests_.empty() && now - last_use_ >= limits_.idle_close) {
        ev_.close_connection("idle");
        state_ = SessionState::Idle;
        ev_.log("session closed: idle for " + ms(now - last_use_));
        return;
      }
      if (now - last_tx_ >= limits_.keepalive_every) {
        control_.push_back(wire::encode(wire::SessionKeepalive{}));
        ev_.wake();
      }
      return;
  }
}

std::optional<TimePoint> SessionLink::deadline() const {
  std::optional<TimePoint> d = copy_due();
  auto take = [&](TimePoint t) {
    if (!d || t < *d) d = t;
  };
  switch (state_) {
    case SessionState::Idle:
    case SessionState::Connecting:
      break;
    case SessionState::Hello:
      take(state_since_ + limits_.hello_timeout);
      break;
    case SessionState::Backoff:
      take(retry_at_);
      break;
    case SessionState::Up: {
      take(std::min(last_rx_ + limits_.dead_after, last_tx_ + limits_.keepalive_every));
      if (!unacked_.empty()) take(unacked_.front().written_at + limits_.dead_after);
      if (queued() == 0 && requests_.empty()) take(last_use_ + limits_.idle_close);
      break;
    }
  }
  return d;
}

bool SessionLink::finished() const {
  return state_ == SessionState::Idle && queued() == 0 && requests_.empty() && !reform_;
}

}  // namespace alfred::link
