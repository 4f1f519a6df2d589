#include "link/session_responder.hpp"

#include "wire/packed_frame.hpp"
#include "wire/session_frames.hpp"

namespace alfred::link {

bool SessionResponder::on_frame(std::span<const std::uint8_t> frame, bool first_packet,
                                TimePoint now, std::string& error) {
  last_rx_ = now;
  refresh_.clear();
  unpacked_.clear();
  auto f = wire::decode_session(frame, error);
  if (!f) return false;
  if (f->type == wire::SessionType::Hello) {
    if (active_ || !first_packet) {
      error = "a session hello that does not open the stream";
      return false;
    }
    if (f->hello.answer) {
      error = "an answering hello from the opener";
      return false;
    }
    active_ = true;
    peer_primary_ = f->hello.primary;
    delta_ = limits_.delta && f->hello.delta;
    packed_ = limits_.packed && f->hello.packed;
    last_tx_ = last_used_ = now;
    wire::SessionHello answer;
    answer.answer = true;
    answer.delta = delta_;
    answer.packed = packed_;
    answer.keepalive_seconds = static_cast<std::uint16_t>(
        std::chrono::duration_cast<std::chrono::seconds>(limits_.keepalive_every).count());
    control_.push_back(wire::encode(answer));
    return true;
  }
  if (!active_) {
    error = "a session frame on a stream that is not a session";
    return false;
  }
  switch (f->type) {
    case wire::SessionType::Ack:
      error = "an acknowledgement from the opener";
      return false;
    case wire::SessionType::Want:
      error = "a want from the opener";
      return false;
    case wire::SessionType::Refresh:
      if (!delta_) {
        error = "a refresh on a session without delta sync";
        return false;
      }
      refresh_ = std::move(f->refresh);
      return true;
    case wire::SessionType::Packed:
      if (!packed_) {
        error = "a packed frame on a session without compression";
        return false;
      }
      if (!wire::unpack(f->packed, unpacked_, error)) return false;
      ++unpacked_frames_;
      return true;
    default:
      return true;  // keepalive
  }
}

void SessionResponder::wanted(std::vector<wire::RecordKey> keys) {
  if (!active_ || keys.empty()) return;
  for (const auto& c : control_)
    if (!c.empty() && c[0] == static_cast<std::uint8_t>(wire::SessionType::Want)) {
      ++dropped_wants_;
      return;
    }
  if (control_.size() >= kMaxControl) {
    ++dropped_wants_;
    return;
  }
  control_.push_back(wire::encode_want(keys));
}

void SessionResponder::completed(std::uint16_t tx_id, std::uint16_t packets) {
  if (!active_) return;
  delivered_ = true;
  if (control_.size() >= kMaxControl) {
    control_.pop_front();
    ++dropped_acks_;
  }
  control_.push_back(wire::encode(wire::SessionAck{tx_id, packets}));
}

bool SessionResponder::next_frame(std::vector<std::uint8_t>& out, TimePoint now) {
  if (control_.empty()) return false;
  out = std::move(control_.front());
  control_.pop_front();
  last_tx_ = now;
  return true;
}

SessionResponder::Tick SessionResponder::on_timer(TimePoint now) {
  if (!active_) return Tick::Nothing;
  if (now - last_rx_ >= limits_.dead_after) return Tick::Dead;
  if (now - last_tx_ >= limits_.keepalive_every && control_.empty()) {
    control_.push_back(wire::encode(wire::SessionKeepalive{}));
    return Tick::Write;
  }
  return Tick::Nothing;
}

}  // namespace alfred::link
