#include "auth/datagram_guard.hpp"

#include <algorithm>

namespace alfred::auth {

std::string_view to_string(Refusal r) {
  switch (r) {
    case Refusal::Malformed: return "malformed";
    case Refusal::NoKey: return "no key matched";
    case Refusal::BadTag: return "bad tag";
    case Refusal::Replay: return "replay";
    case Refusal::MacMismatch: return "MAC mismatch";
    case Refusal::Unsealed: return "not authenticated";
  }
  return "?";
}

DatagramGuard::DatagramGuard(std::shared_ptr<const Keyring> ring, AuthMode mode,
                             std::uint64_t first_counter)
    : ring_(std::move(ring)), mode_(mode), counter_(first_counter) {}

std::vector<std::uint8_t> DatagramGuard::seal(const Mac& own, std::span<const std::uint8_t> packet) {
  auto out = auth::seal(*ring_, counter_, own, packet);
  if (!out.empty()) {
    ++counter_;
    ++stats_.sealed;
  }
  return out;
}

bool DatagramGuard::open(std::span<const std::uint8_t> datagram, const Mac& from,
                         std::vector<std::uint8_t>& packet, Refusal& why) {
  auto refuse = [&](Refusal r) {
    why = r;
    ++stats_.refused[static_cast<std::size_t>(r)];
    return false;
  };
  if (!looks_sealed(datagram)) {
    if (mode_ == AuthMode::Enforce) return refuse(Refusal::Unsealed);
    packet.assign(datagram.begin(), datagram.end());
    ++stats_.plain_taken;
    return true;
  }
  OpenError e{};
  auto o = auth::open(*ring_, datagram, from, e);
  if (!o) {
    switch (e) {
      case OpenError::MacMismatch: return refuse(Refusal::MacMismatch);
      case OpenError::UnknownKey: return refuse(Refusal::NoKey);
      case OpenError::BadTag: return refuse(Refusal::BadTag);
      default: return refuse(Refusal::Malformed);
    }
  }
  ReplayWindow::Sender sender{};
  std::copy(from.begin(), from.end(), sender.begin());
  if (window_.admit(sender, o->counter) != ReplayWindow::Verdict::Fresh) return refuse(Refusal::Replay);
  packet = std::move(o->packet);
  ++stats_.opened;
  return true;
}

}  // namespace alfred::auth
