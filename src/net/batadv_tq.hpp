#pragma once
// TQ towards primaries from batman-adv over netlink: server MAC -> originator
// through the global translation table, then the originator's TQ.
#include "engine/effects.hpp"

namespace alfred::net {

class BatadvTq final : public TqSource {
 public:
  std::map<Mac, std::uint8_t> tq(const std::string& bat_iface, const std::vector<Mac>& servers,
                                 bool& ok) override;
  std::set<Mac> mesh_addresses(const std::string& bat_iface, bool& ok) override;
};

}  // namespace alfred::net
