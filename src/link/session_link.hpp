#pragma once
// The sender's side of a long-lived server-to-server session, one per peer,
// without any I/O: it is told what the connection did (connected, bytes in,
// a packet written, closed) and the time, and says what to do through
// SessionEvents. The transport owns the socket; the simulator and the tests
// drive the same object by hand.
//
//   Idle --send--> Connecting --connected--> Hello --peer's hello--> Up
//     ^                |  refused / no answer: everything by UDP      |
//     |                |                                              |
//     |                +--> Backoff (a peer that had a session) <-----+ broken,
//     |                     (reconnects failing: copies by UDP meanwhile)
//     +---- idle_close / nothing left -------------------------------- silent
//
// In Hello a peer that closes, or says nothing, is a 2016-framing peer: what
// was queued goes one connection per transaction, as that peer expects.
// Up: transactions go back to back; each stays queued until the peer
// acknowledges it, and what a broken session did not deliver is sent again
// on the next one. A full sync supersedes everything queued before it.
// Whatever the state, a small transaction not acknowledged within a quarter
// second also goes by UDP (a copy; see udp_copy_after).
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/route.hpp"
#include "store/record_digest.hpp"
#include "store/record.hpp"
#include "wire/packet.hpp"
#include "wire/push_encoder.hpp"
#include "wire/session_frames.hpp"

namespace alfred::link {

struct SessionLimits {
  // Transactions queued or awaiting their acknowledgement. A full sync
  // replaces all before it, so this bounds prompt pushes between syncs;
  // past it the oldest goes (the next full sync carries it).
  std::size_t max_queued = 8;
  std::size_t max_requests = 8;  // forwarded requests awaiting their answer
  Duration hello_timeout = std::chrono::seconds(3);
  // With nothing to send for this long a keepalive goes, so the peer knows
  // we are there; with nothing heard for dead_after (three of the peer's
  // keepalives lost in a row), the session is dead. One lost frame is
  // retransmitted by TCP and costs nothing.
  Duration keepalive_every = std::chrono::seconds(10);
  Duration dead_after = std::chrono::seconds(30);
  // A session nobody sent anything on for this long is closed; a peer that
  // is still a primary gets a sync every period, so this ends only sessions
  // to peers we no longer serve.
  Duration idle_close = std::chrono::seconds(120);
  // Reconnects: backoff_min doubling to backoff_max, each +-25% at random,
  // so that the secondaries of a restarted primary do not all come back in
  // the same instant.
  Duration backoff_min = std::chrono::milliseconds(200);
  Duration backoff_max = std::chrono::seconds(30);
  // A session must have stayed up this long for the backoff to start over:
  // a peer that takes sessions and drops them at once gets ever slower
  // reconnects, not five a second.
  Duration stable_after = std::chrono::seconds(10);
  // A transaction is dropped this long after it was first queued, or once
  // it was sent on max_sends sessions without an acknowledgement: by then
  // the periodic full sync carries it, and a peer that takes sessions and
  // never confirms cannot make us resend it for ever.
  Duration max_age = std::chrono::seconds(60);
  int max_sends = 3;
  // A forwarded request is answered within the engine's transaction
  // timeout or never; past it, it is forgotten.
  Duration request_timeout = std::chrono::seconds(10);
  // Reconnects that failed in a row before what is queued goes by UDP as
  // well (with the connect timeout and the backoff, about 35 s of outage).
  // A peer that spoke sessions is never given up on: reconnects go on, at
  // the backoff or at the daemon's period, whichever comes first.
  int max_failed_reconnects = 6;
  // Past them, the daemon's period paces the reconnects (each keep_open
  // tries at once) for this long; then the backoff alone (up to backoff_max).
  Duration period_reconnects_for = std::chrono::seconds(120);
  // A transaction that fits one unfragmented datagram and is still not
  // acknowledged this long after it was queued also goes by UDP, as a copy
  // (it stays queued for the session). What holds it is a lost SYN (Linux
  // resends it after 1 s, then 3 s), a session still forming, or a segment
  // lost more than once (200 ms and up each time): the copy gets there a
  // link's delay later, so a change is late only when both are lost. Where
  // acknowledgements come within this, no copy ever goes. 0 bytes: never.
  Duration udp_copy_after = std::chrono::milliseconds(250);
  std::size_t udp_copy_max_bytes = wire::kUnfragmentedPayload;
  // A copy can be lost too: while the session is not up (a lost SYN costs
  // 1 s, then 2 s more; a session being re-formed), another this long after
  // it, up to udp_copies_max in all. On a session that is up, one copy.
  Duration udp_copy_again = std::chrono::milliseconds(500);
  int udp_copies_max = 3;
  // Delta sync, offered in our hello and used where the peer's answer
  // offers it too: once the peer has acknowledged a full sync on this
  // session, a full sync sends only the records that changed since what it
  // acknowledged, and names the others in a refresh, which keeps them alive
  // there as a resend would. Off: every full sync is sent whole, as upstream.
  bool delta = true;
  // Compression, offered in our hello (and, as the acceptor, in our
  // answer): where both offer it, the opener sends the push-data packets
  // that deflate well as packed frames (wire/packed_frame.hpp).
  bool packed = true;
};

enum class SessionState { Idle, Connecting, Hello, Up, Backoff };
std::string_view to_string(SessionState s);

// How the connection ended, as the transport saw it.
enum class CloseCause {
  Refused,   // connect refused, reset or unreachable before it was up
  TimedOut,  // connect not answered within the transport's connect timeout
  Closed,    // the peer closed or reset an established connection
  Failed,    // a read or write error, or the transport gave up on it (stalled)
};

class SessionEvents {
 public:
  virtual ~SessionEvents() = default;
  virtual void open_connection() = 0;
  virtual void close_connection(std::string_view why) = 0;
  // next_packet() has something to write.
  virtual void wake() = 0;
  virtual void push_by_udp(wire::PushEncoder tx) = 0;
  // One connection for this transaction alone, as a 2016-framing peer expects.
  virtual void push_by_legacy(wire::PushEncoder tx) = 0;
  virtual void request_by_udp(const wire::Request& request) = 0;
  virtual void request_by_legacy(const wire::Request& request) = 0;
  // The peer answered our hello (Up), or turned out not to speak sessions.
  virtual void learned(bool speaks_sessions) = 0;
  virtual void log(std::string_view line) = 0;
  // Whether log() shows anything: per-transaction lines are only built then
  // (sizing a transaction walks its whole snapshot).
  virtual bool logging() const { return true; }
};

class SessionLink {
 public:
  SessionLink(SessionEvents& events, SessionLimits limits, std::uint32_t seed);

  // --- what the daemon wants delivered. `full`: a full sync, which makes
  // every transaction queued before it redundant.
  void send(wire::PushEncoder tx, bool full, TimePoint now);
  void request(const wire::Request& request, TimePoint now);
  // Traffic is expected: connect now if there is no session, and count as
  // use (no idle close). A session formed ahead of its first transaction has
  // its handshake, and the 3 s retransmission timeout Linux starts with
  // after a lost SYN, behind it when a change comes.
  void keep_open(TimePoint now);

  // --- what the connection did
  // `primary`: we are one (told to the peer in our hello).
  void connected(TimePoint now, bool primary = false);
  // A packet cut from the stream: a session frame (hello, ack, keepalive), or
  // a packet of an answer, which the transport also hands to the engine.
  // False when it breaks the session's rules (the transport closes).
  bool on_packet(std::span<const std::uint8_t> packet, TimePoint now, std::string& error);
  void closed(CloseCause cause, std::string_view why, TimePoint now);
  // The next packet to write, once the previous one has left; false: nothing.
  bool next_packet(std::vector<std::uint8_t>& out, TimePoint now);

  // --- time
  void on_timer(TimePoint now);
  std::optional<TimePoint> deadline() const;

  SessionState state() const { return state_; }
  // Nothing queued, nothing pending and no connection: the link can go.
  bool finished() const;
  std::size_t queued() const { return outgoing_.size() + (current_ ? 1 : 0) + unacked_.size(); }
  std::size_t awaiting_ack() const { return unacked_.size(); }
  std::size_t requests_pending() const { return requests_.size(); }
  std::uint64_t resent() const { return resent_; }
  std::uint64_t superseded() const { return superseded_; }
  // Copies sent because an acknowledgement was late (udp_copy_after), not
  // those that go while reconnects keep failing.
  std::uint64_t udp_copies() const { return udp_copies_; }
  // Delta sync: whether it is in use on the session now, and what it did.
  bool delta() const { return delta_peer_; }
  bool has_baseline() const { return baseline_ok_; }
  std::size_t baseline_size() const { return baseline_.size(); }
  struct DeltaStats {
    std::uint64_t syncs = 0;        // full syncs sent as a delta
    std::uint64_t changed = 0;      // records those sent
    std::uint64_t refreshed = 0;    // records named in refreshes instead
    std::uint64_t refresh_bytes = 0;
    std::uint64_t wanted = 0;       // records sent again for a want
  };
  const DeltaStats& delta_stats() const { return delta_stats_; }
  // Compression: whether the peer takes packed frames, and what went.
  bool packed() const { return packed_peer_; }
  struct PackStats {
    std::uint64_t packets = 0;        // push-data packets written on a packing session
    std::uint64_t packed = 0;         // of them, sent as packed frames
    std::uint64_t bytes_in = 0;       // what those packed ones were
    std::uint64_t bytes_out = 0;      // and what they became
    std::uint64_t precompressed = 0;  // left as they were: compressed already
  };
  const PackStats& pack_stats() const { return pack_stats_; }

 private:
  struct Item {
    wire::PushEncoder tx;
    bool full;
    TimePoint queued_at;     // first queued (kept across resends)
    TimePoint written_at{};  // its txend handed out, for the ack timeout
    int sends = 0;           // sessions it was started on
    bool small = false;      // fits one unfragmented datagram
    int copies = 0;          // copies that went by UDP
    TimePoint copied_at{};   // the last one
    bool delivered = false;  // a later one was acknowledged on this session
    // Delta sync: the records it carries are only some of what the peer
    // should hold (a prompt push, a delta, a want's answer); acknowledged,
    // they join the baseline. A full sync sent whole replaces it.
    bool part = false;
  };
  struct Held {
    wire::RecordKey key;
    std::uint64_t digest = 0;
  };
  struct PendingRequest {
    wire::Request request;
    bool sent = false;
    TimePoint queued_at{};
  };
  // Drops what is too old or was sent too often, and requests past their timeout.
  void prune(TimePoint now);

  void start_connecting(TimePoint now);
  void enter_backoff(TimePoint now, std::string_view why);
  // A connect to a peer that spoke sessions failed.
  void reconnect_failed(TimePoint now, std::string_view why);
  // Hands everything queued to UDP or, for a 2016-framing peer, to one
  // connection per transaction.
  void give_up(bool legacy);
  // After a broken session: what was written but not acknowledged, and what
  // was being written, go first on the next session.
  void requeue();
  void make_room();
  Duration next_backoff();
  bool fits_one_datagram(const wire::PushEncoder& tx) const;
  // Sends the UDP copies that are due: walking the transactions in the order
  // the session sends them, from the first one not acknowledged within
  // udp_copy_after (or after one already copied) on, and again
  // udp_copy_again after a copy. It stops at one that does not fit a
  // datagram, so that no copy overtakes what goes before it.
  void copy_by_udp(TimePoint now);
  template <typename Why> void copy(Item& i, TimePoint now, Why why);
  void copy_for_outage(Item& i, TimePoint now);
  // When the next copy of `i` (copied before) is due, if ever.
  std::optional<TimePoint> again_due(const Item& i) const;
  // When copy_by_udp() has something to do next, if ever.
  std::optional<TimePoint> copy_due() const;
  // Delta sync: the acknowledged transaction's records are now the peer's.
  void acknowledged(const Item& i);
  // Turns a full sync into a delta against the baseline: queues the changed
  // records (if any) and refresh frames for the rest.
  void send_delta(wire::PushEncoder tx, TimePoint now);
  // A want from the peer: the records it names, from the last full sync.
  bool on_want(const std::vector<wire::RecordKey>& keys, TimePoint now, std::string& error);
  void reset_delta();
  void reset_baseline();
  void enqueue(Item item, TimePoint now);
  template <typename F> void in_send_order(F&& f);
  template <typename F> void in_send_order(F&& f) const;

  SessionEvents& ev_;
  SessionLimits limits_;
  std::minstd_rand rng_;
  SessionState state_ = SessionState::Idle;
  bool spoke_sessions_ = false;  // this peer answered a hello before
  // A session that was up broke: it is re-formed even with nothing to
  // send, so that a restarted peer hears from us (our hello) at once.
  bool reform_ = false;
  int failed_reconnects_ = 0;
  // max_failed_reconnects in a row: transactions also go by UDP meanwhile.
  bool degraded_ = false;
  TimePoint degraded_since_{};
  Duration backoff_{};
  TimePoint state_since_{};
  TimePoint retry_at_{};
  TimePoint last_rx_{}, last_tx_{}, last_use_{};
  std::deque<Item> outgoing_;         // not started
  std::optional<Item> current_;       // being written
  std::deque<Item> unacked_;          // written, awaiting the peer's ack
  std::deque<PendingRequest> requests_;
  std::deque<std::vector<std::uint8_t>> control_;  // hello, keepalive
  std::uint64_t resent_ = 0, superseded_ = 0, udp_copies_ = 0;
  // Delta sync, per session (reset when one ends).
  bool delta_peer_ = false;
  bool baseline_ok_ = false;
  std::vector<Held> baseline_;  // by key, as snapshots are ordered
  std::shared_ptr<const Snapshot> last_full_;
  int wants_allowed_ = 0;  // one want per refresh frame of the last delta
  std::size_t wants_left_ = 0;  // records those frames named, not yet wanted
  DeltaStats delta_stats_;
  bool packed_peer_ = false;
  PackStats pack_stats_;
  PackStats pack_before_;  // when the transaction being written started
  // Packs a push-data packet `out` where the peer takes it and it pays off.
  void maybe_pack(std::vector<std::uint8_t>& out);
};

}  // namespace alfred::link
