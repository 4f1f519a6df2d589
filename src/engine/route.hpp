#pragma once
// Where a packet came from or goes to, in terms the protocol core needs:
// which of our interfaces, the peer's IP address and MAC, and, for packets
// that arrived on a TCP stream, the connection to answer on.
#include <array>
#include <compare>
#include <cstdint>
#include <string>

#include "wire/mac.hpp"

namespace alfred {

struct PeerAddress {
  bool v4 = false;
  bool multicast = false;  // the link's alfred group (ff02::1 or the -4 group)
  std::array<std::uint8_t, 16> ip{};  // IPv4 uses the first four bytes

  static PeerAddress group() {
    PeerAddress a;
    a.multicast = true;
    return a;
  }
  auto operator<=>(const PeerAddress&) const = default;
};

std::string to_string(const PeerAddress& a);

using ConnectionId = std::uint64_t;  // 0: not a stream
using ClientId = std::uint64_t;      // a unix-socket client

struct Route {
  std::string iface;
  PeerAddress addr;
  Mac mac{};
  ConnectionId stream = 0;
};

}  // namespace alfred
