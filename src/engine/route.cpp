#include "engine/route.hpp"

#include <arpa/inet.h>

namespace alfred {

std::string to_string(const PeerAddress& a) {
  if (a.multicast) return "group";
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.v4 ? AF_INET : AF_INET6, a.ip.data(), buf, sizeof buf);
  return buf;
}

}  // namespace alfred
