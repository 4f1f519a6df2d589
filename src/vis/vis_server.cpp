#include "vis/vis_server.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>

namespace alfred::vis {

VisData collect(MeshView& view, const std::string& mesh_iface) {
  std::vector<InterfaceInfo> ifaces;
  if (auto hard = view.hard_interfaces(mesh_iface)) {
    std::stable_sort(hard->begin(), hard->end(),
                     [](const auto& a, const auto& b) { return a.ifindex < b.ifindex; });
    for (const auto& h : *hard) {
      if (!h.active) continue;
      const bool known = std::any_of(ifaces.begin(), ifaces.end(),
                                     [&](const InterfaceInfo& i) { return i.name == h.name; });
      if (!known) ifaces.push_back({h.ifindex, h.name, h.address});
    }
  }
  // Index of a hard interface in the list, adding it if it is not there;
  // 255 (upstream's -1 as a byte) when it cannot be looked up.
  auto index_of = [&](std::uint32_t ifindex) -> std::uint8_t {
    if (ifindex == 0) return kTtIfindex;
    for (std::size_t i = 0; i < ifaces.size(); ++i)
      if (ifaces[i].ifindex == ifindex) return static_cast<std::uint8_t>(i);
    auto info = view.interface_by_index(ifindex);
    if (!info) return kTtIfindex;
    ifaces.push_back(*info);
    return static_cast<std::uint8_t>(ifaces.size() - 1);
  };

  VisData vis;
  if (auto routes = view.originator_routes(mesh_iface)) {
    for (const auto& r : *routes) {
      if (r.tq < 1 || r.originator != r.neighbour) continue;
      vis.entries.push_back({r.originator, index_of(r.hard_ifindex), r.tq});
    }
  }
  if (auto tt = view.local_translations(mesh_iface)) {
    for (const Mac& m : *tt) vis.entries.push_back({m, kTtIfindex, 0});
  }
  for (const auto& i : ifaces) vis.ifaces.push_back(i.address);
  if (vis.ifaces.size() > kMaxIfaces) vis.ifaces.resize(kMaxIfaces);
  if (vis.entries.size() > kMaxEntries) vis.entries.resize(kMaxEntries);
  return vis;
}

bool publish_once(MeshView& view, const std::string& mesh_iface, const std::string& unix_path,
                  std::uint16_t& tx_id) {
  const VisData vis = collect(view, mesh_iface);
  ++tx_id;
  const auto data = encode(vis);
  return tools::publish(unix_path, tools::push_packet(tx_id, kVisType, kVisVersion, data));
}

void run_server(MeshView& view, const std::string& mesh_iface, const std::string& unix_path) {
  std::uint16_t tx_id = 0;
  for (;;) {
    publish_once(view, mesh_iface, unix_path, tx_id);
    std::this_thread::sleep_for(std::chrono::seconds(kUpdateIntervalSeconds));
  }
}

// --- the live system ---------------------------------------------------------

std::optional<std::vector<batadv::HardInterface>> NetlinkMeshView::hard_interfaces(
    const std::string& mesh_iface) {
  return batadv::hard_interfaces(mesh_iface);
}

std::optional<std::vector<batadv::OriginatorRoute>> NetlinkMeshView::originator_routes(
    const std::string& mesh_iface) {
  return batadv::originator_routes(mesh_iface);
}

std::optional<std::vector<Mac>> NetlinkMeshView::local_translations(const std::string& mesh_iface) {
  return batadv::local_translations(mesh_iface);
}

std::optional<InterfaceInfo> NetlinkMeshView::interface_by_index(std::uint32_t ifindex) {
  char name[IF_NAMESIZE] = {};
  if (::if_indextoname(ifindex, name) == nullptr) return std::nullopt;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name, std::min(std::strlen(name), sizeof ifr.ifr_name - 1));
  const int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    std::perror("can't get interface");
    return std::nullopt;
  }
  const int rc = ::ioctl(sock, SIOCGIFHWADDR, &ifr);
  ::close(sock);
  if (rc == -1) {
    std::perror("can't get MAC address");
    return std::nullopt;
  }
  InterfaceInfo info;
  info.ifindex = ifindex;
  info.name = name;
  std::memcpy(info.address.data(), ifr.ifr_hwaddr.sa_data, info.address.size());
  return info;
}

}  // namespace alfred::vis
