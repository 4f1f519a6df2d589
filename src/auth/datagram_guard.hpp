#pragma once
// What an authenticated daemon does with its datagrams (issue 11), sans I/O:
// seals every packet it sends, and opens every one it receives, refusing
// forgeries, replays, and datagrams played back from another node. In
// transition mode a plain (unsealed) packet is still taken, and the socket
// sends every packet plain too, so a running mesh moves to keys node by
// node (all to transition, then all to enforce) and every node hears every
// other at each step; in enforce mode a plain packet is refused.
//
// Cost per received datagram: the form, MAC and key-id checks come before
// any crypto, and a window entry is made only for a datagram that opened, so
// a flood of forged datagrams costs at most one AEAD check each, and no
// memory. In transition mode each packet that opened, and each plain one,
// is also hashed once (RecentPackets, bounded like the window).
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "auth/keyring.hpp"
#include "auth/recent_packets.hpp"
#include "auth/replay_window.hpp"
#include "auth/sealed_datagram.hpp"
#include "wire/mac.hpp"

namespace alfred::auth {

enum class AuthMode { Enforce, Transition };

// Why a received datagram was not taken; counted for operators (-d).
enum class Refusal {
  Malformed,    // truncated, bad length
  NoKey,        // no key of ours has its id
  BadTag,       // forged, or changed on the way
  Replay,       // its counter was taken before
  Stale,        // its counter is too far behind the sender's newest (a
                // replay, or the sender restarted with its clock set back)
  MacMismatch,  // sealed by another node than the one it came from
  Unsealed,     // a plain packet, in enforce mode
  PlainCopy,    // transition: the plain copy of a packet its sender just
                // sealed (taken sealed; see RecentPackets)
};
constexpr std::size_t kRefusals = 8;
std::string_view to_string(Refusal r);

class DatagramGuard {
 public:
  DatagramGuard(std::shared_ptr<const Keyring> ring, AuthMode mode);

  // Keys re-read (SIGHUP): the new first key seals from now on.
  void set_keyring(std::shared_ptr<const Keyring> ring) { ring_ = std::move(ring); }
  const Keyring& keyring() const { return *ring_; }
  AuthMode mode() const { return mode_; }

  // `packet` sealed as sent by `own` (the MAC of the interface it leaves
  // by) to `to` (the address it is sent to); empty if it would not fit one datagram (kMaxSealable). Its counter
  // is one more than the last, so that the receiver's window
  // (ReplayWindow::kWindow) covers that many datagrams of reordering; but
  // where the clock (`clock_us`,
  // microseconds since the epoch) is more than kClockJump ahead of it (at
  // start, or after NTP set the clock forward) it jumps to the clock: a
  // restarted node goes on above what it sent before. A node whose clock
  // went back across a restart is refused as Stale until its clock passes
  // what it had sent.
  static constexpr std::uint64_t kClockJump = 60'000'000;
  std::vector<std::uint8_t> seal(const Mac& own, const Destination& to, std::span<const std::uint8_t> packet,
                                 std::uint64_t clock_us);

  // A datagram from the node whose MAC is `from`, that reached us at `to`
  // (our own address, or the group's), at `now_us` (a steady clock). True:
  // `packet` is what to take (opened, or the datagram itself when plain in
  // transition mode). False: refused, for `why`.
  //
  // In transition mode a plain packet that repeats one of the last packets
  // opened sealed from the same MAC within kPlainCopyWindow is refused
  // (PlainCopy): a node in transition sends every packet twice, sealed and
  // then plain for the nodes without a key, and a keyed node takes the
  // sealed one only (not every request answered, every push applied twice).
  // The copy follows its sealed packet at once, or after a full socket.
  static constexpr std::uint64_t kPlainCopyWindow = 2'000'000;
  bool open(std::span<const std::uint8_t> datagram, const Mac& from, const Destination& to,
            std::vector<std::uint8_t>& packet, Refusal& why, std::uint64_t now_us = 0);

  // Before a datagram from a sender whose MAC is not known yet is kept
  // waiting for ARP: false (counted as Unsealed) for a plain one in enforce
  // mode, which open() would refuse anyway.
  bool worth_opening(std::span<const std::uint8_t> datagram);

  struct Stats {
    std::uint64_t sealed = 0, opened = 0, plain_taken = 0;
    std::uint64_t refused[kRefusals] = {};
  };
  const Stats& stats() const { return stats_; }

 private:
  std::shared_ptr<const Keyring> ring_;
  AuthMode mode_;
  std::uint64_t counter_ = 0;
  ReplayWindow window_;
  RecentPackets recent_;  // transition mode only
  Stats stats_;
};

}  // namespace alfred::auth
