#pragma once
// Queries of the batman-adv kernel module over generic netlink: which
// originators are reachable with which link quality (TQ), and which
// originator announces a given client MAC (the global translation table).
// alfred uses them to prefer the primary server with the best TQ.
//
// The socket I/O is separated from the parsing of single dump entries so the
// parsers can be exercised with synthetic messages; the kernel is not needed.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "wire/mac.hpp"

struct nl_msg;

namespace alfred::batadv {

// True when the "batadv" generic netlink family exists and both the
// originator and the global translation table dump succeed for mesh_iface.
bool interface_available(const std::string& mesh_iface);

// Best-route originators of mesh_iface and their TQ. nullopt on any failure
// (unknown interface, no batman-adv, netlink error, timeout, interrupted
// dump). Under B.A.T.M.A.N. V entries carry no TQ and the map comes back
// empty rather than failing.
std::optional<std::map<Mac, std::uint8_t>> originator_tq(const std::string& mesh_iface);

// The best entries of the global translation table: client MAC -> originator.
std::optional<std::map<Mac, Mac>> global_translations(const std::string& mesh_iface);

// TQ towards the originator that announces `server`; 0 when the server is not
// in the translation table or its originator is not in `orig`.
std::uint8_t tq_of(const Mac& server, const std::map<Mac, Mac>& tt,
                   const std::map<Mac, std::uint8_t>& orig);

// Parsers of single dump messages. They accept any message (including
// malformed or foreign ones) and return nullopt for everything that is not a
// well-formed best entry of the respective command. The netlink family id is
// not checked here because it is only known at run time; the dump does that.
std::optional<std::pair<Mac, std::uint8_t>> parse_originator(struct nl_msg* msg);
std::optional<std::pair<Mac, Mac>> parse_translation(struct nl_msg* msg);

// Status carried by an NLMSG_DONE message: 0 for a complete dump, a negative
// errno when the kernel aborted it (e.g. -ENODEV for a non-batman interface),
// -EINVAL when the message is not a well-formed NLMSG_DONE.
int parse_done_status(struct nl_msg* msg);

// --- what batadv-vis -s reads -----------------------------------------------

// A hard interface of the mesh (BATADV_CMD_GET_HARDIF dump entry).
struct HardInterface {
  std::uint32_t ifindex = 0;
  std::string name;
  Mac address{};
  bool active = false;
};

// A best-route originator entry with the neighbour it is reached through and
// the hard interface that neighbour is on (B.A.T.M.A.N. IV entries only:
// they carry a TQ).
struct OriginatorRoute {
  Mac originator{};
  Mac neighbour{};
  std::uint8_t tq = 0;
  std::uint32_t hard_ifindex = 0;
};

// Dumps, in the kernel's order; nullopt on any failure (as originator_tq).
std::optional<std::vector<HardInterface>> hard_interfaces(const std::string& mesh_iface);
std::optional<std::vector<OriginatorRoute>> originator_routes(const std::string& mesh_iface);
// Every entry of the local translation table (clients of this node), VLAN
// duplicates included, in the kernel's order.
std::optional<std::vector<Mac>> local_translations(const std::string& mesh_iface);

// Parsers of single dump messages, with the same contract as parse_originator.
std::optional<HardInterface> parse_hard_interface(struct nl_msg* msg);
std::optional<OriginatorRoute> parse_originator_route(struct nl_msg* msg);
std::optional<Mac> parse_local_translation(struct nl_msg* msg);

}  // namespace alfred::batadv
