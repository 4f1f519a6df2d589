#include "net/batadv_tq.hpp"

#include "batadv/batadv_query.hpp"

namespace alfred::net {

std::map<Mac, std::uint8_t> BatadvTq::tq(const std::string& bat_iface,
                                         const std::vector<Mac>& servers, bool& ok) {
  std::map<Mac, std::uint8_t> out;
  auto tt = batadv::global_translations(bat_iface);
  auto orig = batadv::originator_tq(bat_iface);
  ok = tt.has_value() && orig.has_value();
  if (!ok) return out;
  for (const auto& s : servers) out[s] = batadv::tq_of(s, *tt, *orig);
  return out;
}

std::set<Mac> BatadvTq::mesh_addresses(const std::string& bat_iface, bool& ok) {
  std::set<Mac> out;
  auto tt = batadv::global_translations(bat_iface);
  ok = tt.has_value();
  if (!ok) return out;
  for (const auto& [client, originator] : *tt) out.insert(out.end(), client);
  return out;
}

}  // namespace alfred::net
