#pragma once
// The acceptor's side of a session, without I/O. An inbound stream whose
// first packet is a hello becomes a session: we answer the hello, confirm
// each transaction the engine completed, send keepalives when idle and end
// the stream when the opener has gone silent. A stream that starts with
// anything else stays what it always was (a push or a request of one
// transaction), so 2016-framing peers and Debian's are served as before.
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "engine/route.hpp"
#include "link/session_link.hpp"
#include "wire/session_frames.hpp"

namespace alfred::link {

class SessionResponder {
 public:
  // Confirmations waiting to be written. An opener that sends transactions
  // and never reads makes this queue grow; past it the oldest confirmation
  // goes (the opener sends that transaction again on its next session).
  static constexpr std::size_t kMaxControl = 64;

  explicit SessionResponder(SessionLimits limits) : limits_(limits) {}

  // A session frame from the opener (the transport hands over only those).
  // False: close the stream, `error` says why.
  bool on_frame(std::span<const std::uint8_t> frame, bool first_packet, TimePoint now,
                std::string& error);
  // Any bytes from the opener.
  void heard(TimePoint now) { last_rx_ = now; }
  bool active() const { return active_; }
  // The opener said in its hello that it is a primary.
  bool peer_primary() const { return peer_primary_; }
  // Both hellos offered delta sync: the opener may send refreshes.
  bool delta() const { return delta_; }
  // Both hellos offered compression: the opener may send packed frames.
  bool packed() const { return packed_; }
  // The push-data packet the packed frame on_frame() just took held, to be
  // taken as if it had come as is; empty after any other frame.
  std::vector<std::uint8_t> take_unpacked() { return std::move(unpacked_); }
  std::uint64_t unpacked_frames() const { return unpacked_frames_; }

  // The entries of the refresh on_frame() just took, for the engine
  // (Engine::on_refresh); empty after any other frame.
  std::vector<wire::RefreshEntry> take_refresh() { return std::move(refresh_); }
  // What the engine wants sent after all, from that refresh. At most one
  // want waits to be written: an opener that does not read gets no more
  // (its next refresh asks again), so this costs one frame of memory.
  void wanted(std::vector<wire::RecordKey> keys);
  std::uint64_t dropped_wants() const { return dropped_wants_; }

  // The engine completed transaction `tx_id` of `packets` packets that came
  // on this stream.
  void completed(std::uint16_t tx_id, std::uint16_t packets);
  // The opener used the session (a transaction the engine completed, a
  // request): what keepalives alone do not show.
  void used(TimePoint now) { last_used_ = now; }
  // A refresh that kept records alive: use, but only from an opener that
  // has delivered a transaction on this session. A refresh costs ~19 bytes
  // per record, so otherwise a forger held a slot for good with one refresh
  // of one record it had read from us, every couple of minutes.
  void refreshed(TimePoint now) {
    if (delivered_) last_used_ = now;
  }
  // How long the opener has held the session without using it. When an
  // interface is at its connection limit, the session unused longest (and
  // for at least the idle close) gives way to a newcomer: a peer holding
  // slots with keepalives alone cannot lock honest ones out.
  Duration unused_for(TimePoint now) const { return now - last_used_; }

  // A frame to write, once the previous packet has left.
  bool next_frame(std::vector<std::uint8_t>& out, TimePoint now);
  void wrote(TimePoint now) { last_tx_ = now; }

  enum class Tick { Nothing, Write, Dead };
  Tick on_timer(TimePoint now);
  std::uint64_t dropped_acks() const { return dropped_acks_; }

 private:
  SessionLimits limits_;
  bool active_ = false;
  bool peer_primary_ = false;
  bool delta_ = false;
  bool packed_ = false;
  std::vector<wire::RefreshEntry> refresh_;
  std::vector<std::uint8_t> unpacked_;
  std::uint64_t unpacked_frames_ = 0;
  std::deque<std::vector<std::uint8_t>> control_;
  TimePoint last_rx_{}, last_tx_{}, last_used_{};
  bool delivered_ = false;  // a transaction of the opener's completed here
  std::uint64_t dropped_acks_ = 0, dropped_wants_ = 0;
};

}  // namespace alfred::link
