#include "auth/datagram_guard.hpp"

#include <algorithm>

namespace alfred::auth {

std::string_view to_string(Refusal r) {
  switch (r) {
    case Refusal::Malformed: return "malformed";
    case Refusal::NoKey: return "no key matched";
    case Refusal::BadTag: return "bad tag";
    case Refusal::Replay: return "replay";
    case Refusal::Stale: return "stale counter";
    case Refusal::MacMismatch: return "MAC mismatch";
    case Refusal::Unsealed: return "not authenticated";
    case Refusal::PlainCopy: return "plain copy";
  }
  return "?";
}

DatagramGuard::DatagramGuard(std::shared_ptr<const Keyring> ring, AuthMode mode)
    : ring_(std::move(ring)), mode_(mode) {}

std::vector<std::uint8_t> DatagramGuard::seal(const Mac& own, const Destination& to,
                                              std::span<const std::uint8_t> packet, std::uint64_t clock_us) {
  std::uint64_t counter = counter_ + 1;
  if (clock_us > counter && clock_us - counter > kClockJump) counter = clock_us;
  auto out = auth::seal(*ring_, counter, own, to, packet);
  if (!out.empty()) {
    counter_ = counter;
    ++stats_.sealed;
  }
  return out;
}

bool DatagramGuard::worth_opening(std::span<const std::uint8_t> datagram) {
  if (mode_ == AuthMode::Transition || looks_sealed(datagram)) return true;
  ++stats_.refused[static_cast<std::size_t>(Refusal::Unsealed)];
  return false;
}

bool DatagramGuard::open(std::span<const std::uint8_t> datagram, const Mac& from, const Destination& to,
                         std::vector<std::uint8_t>& packet, Refusal& why, std::uint64_t now_us) {
  auto refuse = [&](Refusal r) {
    why = r;
    ++stats_.refused[static_cast<std::size_t>(r)];
    return false;
  };
  ReplayWindow::Sender sender{};
  std::copy(from.begin(), from.end(), sender.begin());
  if (!looks_sealed(datagram)) {
    if (!worth_opening(datagram)) {  // counted there
      why = Refusal::Unsealed;
      return false;
    }
    if (recent_.seen(sender, datagram, now_us, kPlainCopyWindow))
      return refuse(Refusal::PlainCopy);
    packet.assign(datagram.begin(), datagram.end());
    ++stats_.plain_taken;
    return true;
  }
  OpenError e{};
  auto o = auth::open(*ring_, datagram, from, to, e);
  if (!o) {
    switch (e) {
      case OpenError::MacMismatch: return refuse(Refusal::MacMismatch);
      case OpenError::UnknownKey: return refuse(Refusal::NoKey);
      case OpenError::BadTag: return refuse(Refusal::BadTag);
      default: return refuse(Refusal::Malformed);
    }
  }
  switch (window_.admit(sender, o->counter)) {
    case ReplayWindow::Verdict::Fresh: break;
    case ReplayWindow::Verdict::Replayed: return refuse(Refusal::Replay);
    case ReplayWindow::Verdict::TooOld: return refuse(Refusal::Stale);
  }
  if (mode_ == AuthMode::Transition) recent_.remember(sender, RecentPackets::digest(o->packet), now_us);
  packet = std::move(o->packet);
  ++stats_.opened;
  return true;
}

}  // namespace alfred::auth
