#pragma once
// batadv-vis -s: what batman-adv knows about this node's neighbourhood,
// compiled into a vis v1 record and published to the daemon every 10 s,
// as upstream's server does.
//
// From the mesh interface (-i, default bat0):
//   interfaces  the active hard interfaces (GET_HARDIF dump), in interface
//               index order (the order of upstream's RTM_GETLINK walk), the
//               first being the node's primary; a route over an interface not
//               among them adds that interface after them (upstream does so);
//   entries     every best originator that is its own neighbour (a direct
//               neighbour) with a TQ of at least 1, on the index of its hard
//               interface and with its TQ; then every local translation table
//               entry, as a client (ifindex 255, quality 0).
// A query that fails leaves its part out; the record is published anyway (an
// empty one when batman-adv is not there at all), as upstream does.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "batadv/batadv_query.hpp"
#include "vis/vis_data.hpp"

namespace alfred::vis {

struct InterfaceInfo {
  std::uint32_t ifindex = 0;
  std::string name;
  Mac address{};
};

// Where the server's view of batman-adv comes from: netlink on a live
// system (NetlinkMeshView), recorded replies in the tests.
class MeshView {
 public:
  virtual ~MeshView() = default;
  virtual std::optional<std::vector<batadv::HardInterface>> hard_interfaces(
      const std::string& mesh_iface) = 0;
  virtual std::optional<std::vector<batadv::OriginatorRoute>> originator_routes(
      const std::string& mesh_iface) = 0;
  virtual std::optional<std::vector<Mac>> local_translations(const std::string& mesh_iface) = 0;
  // Name and address of an interface by index (if_indextoname, SIOCGIFHWADDR).
  virtual std::optional<InterfaceInfo> interface_by_index(std::uint32_t ifindex) = 0;
};

class NetlinkMeshView final : public MeshView {
 public:
  std::optional<std::vector<batadv::HardInterface>> hard_interfaces(
      const std::string& mesh_iface) override;
  std::optional<std::vector<batadv::OriginatorRoute>> originator_routes(
      const std::string& mesh_iface) override;
  std::optional<std::vector<Mac>> local_translations(const std::string& mesh_iface) override;
  std::optional<InterfaceInfo> interface_by_index(std::uint32_t ifindex) override;
};

VisData collect(MeshView& view, const std::string& mesh_iface);

constexpr unsigned kUpdateIntervalSeconds = 10;

// Collects and publishes one record; `tx_id` is incremented first (upstream's
// first push has id 1). false if the daemon could not be reached.
bool publish_once(MeshView& view, const std::string& mesh_iface, const std::string& unix_path,
                  std::uint16_t& tx_id);

// The server loop; never returns.
[[noreturn]] void run_server(MeshView& view, const std::string& mesh_iface,
                             const std::string& unix_path);

}  // namespace alfred::vis
