#pragma once
// The network under the in-process mesh simulator (mesh_sim.hpp): a virtual
// clock with an event queue, and a link model for datagrams and TCP that is
// deterministic for a seed. Only timing and loss live here; what the two ends
// of a connection do with it (the daemon's Connection, SessionLink and
// SessionResponder) is in mesh_sim.hpp.
//
// The model, as the daemon meets a lossy link (every number below is a
// field of NetModel):
//
// - Datagrams take `one_way` (2 ms). One of n bytes is cut into IPv6
//   fragments of 1232 bytes of payload; it is lost if any fragment is (each
//   with the frame loss rate), or if the two nodes are cut off from each
//   other when it is sent.
//
// - TCP connect: the opener sends SYNs at 0, 1 and 3 s (Linux: initial RTO
//   1 s, doubling). An attempt succeeds if its SYN and the SYN-ACK both
//   cross (each lost with the frame loss rate, always while the pair is
//   cut); the acceptor's own SYN-ACK retransmissions are folded into the
//   opener's next SYN. Success: both ends are connected 2 x one_way after
//   the SYN (the acceptor's accept runs first, then the opener's connect
//   completes). A host whose daemon does not listen (stopped, or Debian's
//   alfred, which speaks no TCP) answers the first SYN that reaches it with a
//   reset: the connect fails (Refused). No answer: nothing happens, and the
//   opener's transport times the connect out (TcpLimits::connect_timeout,
//   4 s) - a node that is partitioned or off the link times out.
//
// - An established connection: each direction delivers the packets written
//   to it whole and in order. A packet of n bytes is n / mss segments (mss
//   1448, at least one). Every transmission of a segment is lost with the
//   frame loss rate, and always while the pair is cut; a lost segment is sent
//   again one RTO later, the RTO doubling on each repeated loss of that
//   segment (rto_min 200 ms, at most rto_max), except on a thin stream:
//   the transport sets TCP_THIN_LINEAR_TIMEOUTS, so the first six
//   retransmissions of a packet of fewer than four segments (Linux: fewer
//   than four segments out) keep the RTO. A packet arrives one_way after
//   the last of its segments got through, and never before the packets
//   written before it: head-of-line blocking. A cut that starts while
//   packets are in flight holds them (they are lost at the cut and follow
//   the RTO schedule from there).
//   Simplifications: no fast retransmit or SACK (a loss always costs an RTO,
//   the worst case for a lone segment, which is what sessions mostly carry),
//   no bandwidth limit and no socket buffer (a write completes at once),
//   acknowledgements are never lost (a lost ACK is covered by the next one
//   while data flows). The FIN of a close or half-close is one more segment.
//
// - RFC 6298 (5.7), Linux's TCP_TIMEOUT_FALLBACK: a connection without an
//   RTT sample from its handshake starts with an RTO of 3 s. Linux takes
//   that sample from the TCP timestamp echo even when the SYN or SYN-ACK was
//   retransmitted (timestamps are on by default), so this is off unless
//   `fallback_after_retried_syn` is set: then a connection whose handshake
//   needed a second SYN starts both directions with `fallback_rto` until its
//   first segment is acknowledged (a peer without timestamps; the README's
//   benchmark notes name it as a cause of slow first pushes).
//
// - A reset (an injected link break) ends both ends at once; what was in
//   flight is gone. A restarted node's kernel closes its sockets: a FIN after
//   what it had sent, and nothing reaches the dead endpoints any more.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <vector>

#include "store/record.hpp"

namespace alfred::sim {

using namespace std::chrono_literals;

// A virtual clock and what is due on it. Events at the same instant run in
// the order they were scheduled.
class EventLoop {
 public:
  TimePoint now() const { return now_; }
  void at(TimePoint t, std::function<void()> fn) { events_.emplace(std::max(t, now_), std::move(fn)); }
  void post(std::function<void()> fn) { at(now_, std::move(fn)); }
  void run_until(TimePoint t) {
    while (!events_.empty() && events_.begin()->first <= t) {
      auto it = events_.begin();
      now_ = it->first;
      auto fn = std::move(it->second);
      events_.erase(it);
      fn();
      ++executed_;
    }
    now_ = std::max(now_, t);
  }
  std::uint64_t executed() const { return executed_; }

 private:
  TimePoint now_ = TimePoint{} + 1000s;
  std::multimap<TimePoint, std::function<void()>> events_;
  std::uint64_t executed_ = 0;
};

struct NetModel {
  double loss = 0.0;  // frame loss rate, every frame and direction alike
  Duration one_way = 2ms;
  std::size_t fragment_payload = 1232;  // IPv6 minimum MTU less headers
  std::size_t mss = 1448;
  Duration rto_min = 200ms;
  Duration rto_max = 120s;
  bool fallback_after_retried_syn = false;
  Duration fallback_rto = 3s;
  std::vector<Duration> syn_at{0s, 1s, 3s};
  int max_transmissions = 16;  // Linux tcp_retries2 = 15: past it a segment is given up on
  bool thin_linear_timeouts = true;  // TCP_THIN_LINEAR_TIMEOUTS, as the transport sets it
  int thin_linear_retries = 6;       // Linux TCP_THIN_LINEAR_RETRIES
  std::size_t thin_segments = 4;     // a stream with fewer segments out is thin
};

// Loss, cuts and the timing rules above. Nodes are numbered from 1; node 0
// in a cut means "every node".
class Net {
 public:
  Net(NetModel model, std::uint32_t seed) : m_(model), rng_(seed) {}
  const NetModel& model() const { return m_; }
  std::mt19937& rng() { return rng_; }

  bool lost() { return m_.loss > 0 && std::uniform_real_distribution<>(0, 1)(rng_) < m_.loss; }

  // Cuts node a off from node b (0: from everyone) during [from, until).
  void cut(int a, int b, TimePoint from, TimePoint until) { cuts_.push_back({a, b, from, until}); }
  bool is_cut(int x, int y, TimePoint t) const {
    for (const auto& c : cuts_) {
      if (t < c.from || t >= c.until) continue;
      if ((c.a == x && (c.b == y || c.b == 0)) || (c.a == y && (c.b == x || c.b == 0))) return true;
    }
    return false;
  }

  // A datagram of `size` bytes sent now from x to y: whether it arrives.
  bool datagram_survives(int x, int y, TimePoint now, std::size_t size) {
    if (is_cut(x, y, now)) return false;
    std::size_t frags = (size + 8 + m_.fragment_payload - 1) / m_.fragment_payload;
    for (std::size_t i = 0; i < frags; ++i)
      if (lost()) return false;
    return true;
  }

  struct ConnectOutcome {
    bool answered = false;  // a SYN and its answer crossed (a SYN-ACK, or a reset)
    TimePoint at{};         // when the opener gets the answer
    bool retried = false;   // the SYN that got through was not the first
  };
  // The handshake of a connect from x to y started at `now`. Whether y
  // answers with a SYN-ACK or a reset is up to y when the answer is due.
  ConnectOutcome connect(int x, int y, TimePoint now, Duration timeout) {
    ConnectOutcome out;
    for (std::size_t k = 0; k < m_.syn_at.size(); ++k) {
      TimePoint syn = now + m_.syn_at[k];
      if (syn - now >= timeout) break;
      if (is_cut(x, y, syn) || lost()) continue;  // the SYN
      TimePoint back = syn + m_.one_way;
      if (is_cut(x, y, back) || lost()) continue;  // the SYN-ACK (or the reset)
      out.answered = true;
      out.at = back + m_.one_way;
      out.retried = k > 0;
      return out;
    }
    return out;
  }

  // When a segment first transmitted at `t` from x to y, with retransmission
  // timeout `rto`, arrives; nullopt if TCP gives up on it. `thin`: the
  // segment's packet has fewer than thin_segments segments.
  std::optional<TimePoint> segment_arrival(int x, int y, TimePoint t, Duration rto, bool thin,
                                           int retransmissions = 0) {
    for (int n = retransmissions; n < m_.max_transmissions; ++n) {
      if (!is_cut(x, y, t) && !lost()) return t + m_.one_way;
      t += rto;
      rto = next_rto(rto, thin, n + 1);
    }
    return std::nullopt;
  }
  // The same for a segment that was just lost at `t` (a cut began while it
  // was in flight): its next transmission is one RTO later.
  std::optional<TimePoint> arrival_after_loss(int x, int y, TimePoint t, Duration rto, bool thin) {
    return segment_arrival(x, y, t + rto, next_rto(rto, thin, 1), thin, 1);
  }
  // The RTO after the n-th retransmission of a segment.
  Duration next_rto(Duration rto, bool thin, int n) const {
    if (thin && m_.thin_linear_timeouts && n <= m_.thin_linear_retries) return rto;
    return std::min(rto * 2, m_.rto_max);
  }
  bool thin(std::size_t bytes) const { return segments(bytes) < m_.thin_segments; }
  std::size_t segments(std::size_t bytes) const { return std::max<std::size_t>(1, (bytes + m_.mss - 1) / m_.mss); }

 private:
  struct Cut {
    int a, b;
    TimePoint from, until;
  };
  NetModel m_;
  std::mt19937 rng_;
  std::vector<Cut> cuts_;
};

}  // namespace alfred::sim
