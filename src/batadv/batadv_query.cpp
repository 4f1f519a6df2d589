#include "batadv/batadv_query.hpp"

#include <linux/batman_adv.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>

#include "sys/privileges.hpp"

namespace alfred::batadv {
namespace {

using Clock = std::chrono::steady_clock;

// The daemon is single-threaded around these queries; a stuck kernel or a
// flood of dump data must not stall announcements for long.
constexpr auto kQueryBudget = std::chrono::milliseconds(1000);
constexpr auto kResolveWait = std::chrono::milliseconds(250);

// Version of the batadv genl API the request is phrased in; the kernel
// ignores it today, but 1 is what the family registers.
constexpr std::uint8_t kBatadvGenlVersion = 1;

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct MsgDeleter {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
using SockPtr = std::unique_ptr<nl_sock, SockDeleter>;
using MsgPtr = std::unique_ptr<nl_msg, MsgDeleter>;

using AttrTable = std::array<nlattr*, BATADV_ATTR_MAX + 1>;

// Only the attributes we read get a policy; everything else stays NLA_UNSPEC
// so that newer kernels adding attributes do not make us reject entries.
const nla_policy* policy() {
  static const auto table = [] {
    std::array<nla_policy, BATADV_ATTR_MAX + 1> p{};
    const nla_policy mac{NLA_UNSPEC, 6, 6};
    p[BATADV_ATTR_ORIG_ADDRESS] = mac;
    p[BATADV_ATTR_TT_ADDRESS] = mac;
    p[BATADV_ATTR_TQ] = nla_policy{NLA_U8, 0, 0};
    p[BATADV_ATTR_FLAG_BEST] = nla_policy{NLA_FLAG, 0, 0};
    return p;
  }();
  return table.data();
}

// Validates the netlink and genl headers against the buffer actually
// allocated for the message, checks the command and parses the attributes.
// false for anything malformed.
bool parse_entry(nl_msg* msg, std::uint8_t expected_cmd, AttrTable& tb) {
  if (msg == nullptr) return false;
  nlmsghdr* nlh = nlmsg_hdr(msg);
  if (nlh == nullptr) return false;
  // nlmsg_len is data from the peer; everything libnl derives from it is
  // only safe if it stays inside our buffer.
  if (nlh->nlmsg_len < NLMSG_HDRLEN || nlh->nlmsg_len > nlmsg_get_max_size(msg)) return false;
  if (nlh->nlmsg_type < NLMSG_MIN_TYPE) return false;
  if (!genlmsg_valid_hdr(nlh, 0)) return false;

  auto* gnlh = static_cast<genlmsghdr*>(nlmsg_data(nlh));
  if (gnlh->cmd != expected_cmd) return false;

  tb.fill(nullptr);
  return nla_parse(tb.data(), BATADV_ATTR_MAX, genlmsg_attrdata(gnlh, 0), genlmsg_attrlen(gnlh, 0),
                   policy()) == 0;
}

Mac mac_of(const nlattr* attr) {
  Mac mac{};
  std::memcpy(mac.data(), nla_data(attr), mac.size());
  return mac;
}

// --- dump machinery --------------------------------------------------------

struct DumpState {
  int family = 0;
  std::function<void(nl_msg*)> on_entry;
  bool done = false;
  int error = 0;  // negative errno (kernel) or negative libnl code
  bool interrupted = false;
};

int on_valid(nl_msg* msg, void* arg) {
  auto* st = static_cast<DumpState*>(arg);
  // Anything but our family on this private socket would be a protocol
  // violation; ignore it rather than guess what it means.
  if (nlmsg_hdr(msg)->nlmsg_type == st->family) st->on_entry(msg);
  return NL_OK;
}

int on_finish(nl_msg* msg, void* arg) {
  auto* st = static_cast<DumpState*>(arg);
  // The kernel reports errors of the dump callback (e.g. -ENODEV when the
  // ifindex is not a batman-adv interface) in the NLMSG_DONE payload, not as
  // an NLMSG_ERROR, so looking only for errors would accept any interface.
  st->error = parse_done_status(msg);
  st->done = true;
  return NL_STOP;
}

int on_ack(nl_msg*, void* arg) {
  static_cast<DumpState*>(arg)->done = true;
  return NL_STOP;
}

int on_error(sockaddr_nl*, nlmsgerr* err, void* arg) {
  auto* st = static_cast<DumpState*>(arg);
  st->error = err->error < 0 ? err->error : -EPROTO;
  st->done = true;
  return NL_STOP;
}

int on_dump_intr(nl_msg*, void* arg) {
  // The table changed while the kernel walked it; the result may contain
  // stale or missing entries. The caller retries on its next period anyway.
  static_cast<DumpState*>(arg)->interrupted = true;
  return NL_OK;
}

class Connection {
 public:
  // Opens a generic netlink socket and resolves the batadv family.
  static std::optional<Connection> open(Clock::time_point deadline) {
    SockPtr sock(nl_socket_alloc());
    if (!sock) return std::nullopt;
    if (genl_connect(sock.get()) < 0) return std::nullopt;
    // genl_ctrl_resolve blocks in recvmsg, possibly more than once. The
    // kernel answers synchronously within sendmsg(), so any wait at all means
    // something is broken; keep each wait short to stay within the budget.
    if (!set_recv_timeout(sock.get(), std::min(deadline, Clock::now() + kResolveWait)))
      return std::nullopt;
    int family = genl_ctrl_resolve(sock.get(), BATADV_NL_NAME);
    if (family < 0) return std::nullopt;
    // The dump itself is driven by poll() against the deadline.
    if (nl_socket_set_nonblocking(sock.get()) < 0) return std::nullopt;
    return Connection(std::move(sock), family);
  }

  bool dump(std::uint8_t cmd, unsigned ifindex, Clock::time_point deadline,
            std::function<void(nl_msg*)> on_entry) {
    MsgPtr req(nlmsg_alloc());
    if (!req) return false;
    if (genlmsg_put(req.get(), NL_AUTO_PORT, NL_AUTO_SEQ, family_, 0, NLM_F_DUMP, cmd,
                    kBatadvGenlVersion) == nullptr)
      return false;
    if (nla_put_u32(req.get(), BATADV_ATTR_MESH_IFINDEX, ifindex) < 0) return false;

    DumpState st;
    st.family = family_;
    st.on_entry = std::move(on_entry);
    nl_sock* s = sock_.get();
    if (nl_socket_modify_cb(s, NL_CB_VALID, NL_CB_CUSTOM, on_valid, &st) < 0 ||
        nl_socket_modify_cb(s, NL_CB_FINISH, NL_CB_CUSTOM, on_finish, &st) < 0 ||
        nl_socket_modify_cb(s, NL_CB_ACK, NL_CB_CUSTOM, on_ack, &st) < 0 ||
        nl_socket_modify_cb(s, NL_CB_DUMP_INTR, NL_CB_CUSTOM, on_dump_intr, &st) < 0 ||
        nl_socket_modify_err_cb(s, NL_CB_CUSTOM, on_error, &st) < 0)
      return false;
    // The callbacks point at this stack frame; detach them on every exit so a
    // later dump on the same socket can never reach a dead DumpState.
    struct Detach {
      nl_sock* s;
      ~Detach() {
        nl_socket_modify_cb(s, NL_CB_VALID, NL_CB_DEFAULT, nullptr, nullptr);
        nl_socket_modify_cb(s, NL_CB_FINISH, NL_CB_DEFAULT, nullptr, nullptr);
        nl_socket_modify_cb(s, NL_CB_ACK, NL_CB_DEFAULT, nullptr, nullptr);
        nl_socket_modify_cb(s, NL_CB_DUMP_INTR, NL_CB_DEFAULT, nullptr, nullptr);
        nl_socket_modify_err_cb(s, NL_CB_DEFAULT, nullptr, nullptr);
      }
    } detach{s};

    if (nl_send_auto(s, req.get()) < 0) return false;

    const int fd = nl_socket_get_fd(s);
    while (!st.done) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd pfd{fd, POLLIN, 0};
      const int pr = poll(&pfd, 1, static_cast<int>(left));
      if (pr < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      if (pr == 0) return false;
      const int rc = nl_recvmsgs_default(s);
      if (st.done) break;
      // EAGAIN after a partial multipart batch is normal on a non-blocking
      // socket (libnl versions report it as 0 or -NLE_AGAIN).
      if (rc < 0 && rc != -NLE_AGAIN) return false;
    }
    return st.error == 0 && !st.interrupted;
  }

 private:
  Connection(SockPtr sock, int family) : sock_(std::move(sock)), family_(family) {}

  static bool set_recv_timeout(nl_sock* s, Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(left.count() / 1000000);
    tv.tv_usec = static_cast<suseconds_t>(left.count() % 1000000);
    return setsockopt(nl_socket_get_fd(s), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0;
  }

  SockPtr sock_;
  int family_;
};

unsigned mesh_ifindex(const std::string& mesh_iface) {
  if (mesh_iface.empty() || mesh_iface.size() >= IFNAMSIZ) return 0;
  return if_nametoindex(mesh_iface.c_str());
}

// Runs one query with CAP_NET_ADMIN effective. The batadv dump commands are
// admin-only. The kernel checks the sender at sendmsg() time and, for sends
// without an explicit destination address, also the credentials the socket
// was opened with; holding the capability for the whole query, socket
// creation included, is correct whichever way libnl sends.
template <typename Fn>
auto with_connection(const std::string& mesh_iface, Fn fn) -> decltype(fn(
    std::declval<Connection&>(), 0u, Clock::time_point{})) {
  const unsigned ifindex = mesh_ifindex(mesh_iface);
  if (ifindex == 0) return std::nullopt;
  const auto deadline = Clock::now() + kQueryBudget;
  sys::CapabilityRaise admin(CAP_NET_ADMIN);
  auto conn = Connection::open(deadline);
  if (!conn) return std::nullopt;
  return fn(*conn, ifindex, deadline);
}

std::optional<std::map<Mac, std::uint8_t>> dump_originators(Connection& c, unsigned ifindex,
                                                            Clock::time_point deadline) {
  std::map<Mac, std::uint8_t> out;
  const bool ok = c.dump(BATADV_CMD_GET_ORIGINATORS, ifindex, deadline, [&out](nl_msg* m) {
    if (auto e = parse_originator(m)) out.insert_or_assign(e->first, e->second);
  });
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::map<Mac, Mac>> dump_translations(Connection& c, unsigned ifindex,
                                                    Clock::time_point deadline) {
  std::map<Mac, Mac> out;
  const bool ok = c.dump(BATADV_CMD_GET_TRANSTABLE_GLOBAL, ifindex, deadline, [&out](nl_msg* m) {
    if (auto e = parse_translation(m)) out.insert_or_assign(e->first, e->second);
  });
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace

std::optional<std::pair<Mac, std::uint8_t>> parse_originator(nl_msg* msg) {
  AttrTable tb;
  if (!parse_entry(msg, BATADV_CMD_GET_ORIGINATORS, tb)) return std::nullopt;
  if (!tb[BATADV_ATTR_ORIG_ADDRESS] || !tb[BATADV_ATTR_TQ]) return std::nullopt;
  if (!tb[BATADV_ATTR_FLAG_BEST]) return std::nullopt;
  return std::pair{mac_of(tb[BATADV_ATTR_ORIG_ADDRESS]), nla_get_u8(tb[BATADV_ATTR_TQ])};
}

std::optional<std::pair<Mac, Mac>> parse_translation(nl_msg* msg) {
  AttrTable tb;
  if (!parse_entry(msg, BATADV_CMD_GET_TRANSTABLE_GLOBAL, tb)) return std::nullopt;
  if (!tb[BATADV_ATTR_TT_ADDRESS] || !tb[BATADV_ATTR_ORIG_ADDRESS]) return std::nullopt;
  if (!tb[BATADV_ATTR_FLAG_BEST]) return std::nullopt;
  return std::pair{mac_of(tb[BATADV_ATTR_TT_ADDRESS]), mac_of(tb[BATADV_ATTR_ORIG_ADDRESS])};
}

int parse_done_status(nl_msg* msg) {
  if (msg == nullptr) return -EINVAL;
  nlmsghdr* nlh = nlmsg_hdr(msg);
  if (nlh == nullptr || nlh->nlmsg_type != NLMSG_DONE) return -EINVAL;
  if (nlh->nlmsg_len < NLMSG_HDRLEN || nlh->nlmsg_len > nlmsg_get_max_size(msg)) return -EINVAL;
  // Very old kernels sent an empty NLMSG_DONE; that can only mean success.
  if (nlmsg_datalen(nlh) < static_cast<int>(sizeof(int))) return 0;
  int status = 0;
  std::memcpy(&status, nlmsg_data(nlh), sizeof status);
  return status < 0 ? status : 0;
}

bool interface_available(const std::string& mesh_iface) {
  auto both = with_connection(mesh_iface, [](Connection& c, unsigned ifindex,
                                             Clock::time_point deadline) -> std::optional<bool> {
    if (!dump_originators(c, ifindex, deadline)) return std::nullopt;
    if (!dump_translations(c, ifindex, deadline)) return std::nullopt;
    return true;
  });
  return both.value_or(false);
}

std::optional<std::map<Mac, std::uint8_t>> originator_tq(const std::string& mesh_iface) {
  return with_connection(mesh_iface, dump_originators);
}

std::optional<std::map<Mac, Mac>> global_translations(const std::string& mesh_iface) {
  return with_connection(mesh_iface, dump_translations);
}

std::uint8_t tq_of(const Mac& server, const std::map<Mac, Mac>& tt,
                   const std::map<Mac, std::uint8_t>& orig) {
  const auto client = tt.find(server);
  if (client == tt.end()) return 0;
  const auto o = orig.find(client->second);
  return o == orig.end() ? 0 : o->second;
}

}  // namespace alfred::batadv

// --- what batadv-vis -s reads -----------------------------------------------

namespace alfred::batadv {
namespace {

// Policy of the attributes the vis parsers read; the rest stays NLA_UNSPEC
// (see policy() above).
const nla_policy* vis_policy() {
  static const auto table = [] {
    std::array<nla_policy, BATADV_ATTR_MAX + 1> p{};
    const nla_policy mac{NLA_UNSPEC, 6, 6};
    p[BATADV_ATTR_ORIG_ADDRESS] = mac;
    p[BATADV_ATTR_NEIGH_ADDRESS] = mac;
    p[BATADV_ATTR_TT_ADDRESS] = mac;
    p[BATADV_ATTR_HARD_ADDRESS] = mac;
    p[BATADV_ATTR_HARD_IFNAME] = nla_policy{NLA_STRING, 0, IFNAMSIZ};
    p[BATADV_ATTR_HARD_IFINDEX] = nla_policy{NLA_U32, 0, 0};
    p[BATADV_ATTR_TQ] = nla_policy{NLA_U8, 0, 0};
    p[BATADV_ATTR_FLAG_BEST] = nla_policy{NLA_FLAG, 0, 0};
    p[BATADV_ATTR_ACTIVE] = nla_policy{NLA_FLAG, 0, 0};
    return p;
  }();
  return table.data();
}

// parse_entry() with vis_policy().
bool parse_vis_entry(nl_msg* msg, std::uint8_t expected_cmd, AttrTable& tb) {
  if (msg == nullptr) return false;
  nlmsghdr* nlh = nlmsg_hdr(msg);
  if (nlh == nullptr) return false;
  if (nlh->nlmsg_len < NLMSG_HDRLEN || nlh->nlmsg_len > nlmsg_get_max_size(msg)) return false;
  if (nlh->nlmsg_type < NLMSG_MIN_TYPE) return false;
  if (!genlmsg_valid_hdr(nlh, 0)) return false;
  auto* gnlh = static_cast<genlmsghdr*>(nlmsg_data(nlh));
  if (gnlh->cmd != expected_cmd) return false;
  tb.fill(nullptr);
  return nla_parse(tb.data(), BATADV_ATTR_MAX, genlmsg_attrdata(gnlh, 0), genlmsg_attrlen(gnlh, 0),
                   vis_policy()) == 0;
}

template <typename Entry, typename Parse>
std::optional<std::vector<Entry>> dump_list(const std::string& mesh_iface, std::uint8_t cmd,
                                            Parse parse) {
  return with_connection(mesh_iface,
                         [&](Connection& c, unsigned ifindex,
                             Clock::time_point deadline) -> std::optional<std::vector<Entry>> {
                           std::vector<Entry> out;
                           const bool ok = c.dump(cmd, ifindex, deadline, [&](nl_msg* m) {
                             if (auto e = parse(m)) out.push_back(std::move(*e));
                           });
                           if (!ok) return std::nullopt;
                           return out;
                         });
}

}  // namespace

std::optional<HardInterface> parse_hard_interface(nl_msg* msg) {
  AttrTable tb;
  if (!parse_vis_entry(msg, BATADV_CMD_GET_HARDIF, tb)) return std::nullopt;
  if (!tb[BATADV_ATTR_HARD_IFINDEX] || !tb[BATADV_ATTR_HARD_ADDRESS]) return std::nullopt;
  HardInterface h;
  h.ifindex = nla_get_u32(tb[BATADV_ATTR_HARD_IFINDEX]);
  h.address = mac_of(tb[BATADV_ATTR_HARD_ADDRESS]);
  if (const nlattr* name = tb[BATADV_ATTR_HARD_IFNAME]) {
    // The policy (NLA_STRING) made sure of the terminator; strnlen all the same.
    const auto* p = static_cast<const char*>(nla_data(name));
    h.name.assign(p, strnlen(p, static_cast<std::size_t>(nla_len(name))));
  }
  h.active = tb[BATADV_ATTR_ACTIVE] != nullptr;
  return h;
}

std::optional<OriginatorRoute> parse_originator_route(nl_msg* msg) {
  AttrTable tb;
  if (!parse_vis_entry(msg, BATADV_CMD_GET_ORIGINATORS, tb)) return std::nullopt;
  if (!tb[BATADV_ATTR_ORIG_ADDRESS] || !tb[BATADV_ATTR_NEIGH_ADDRESS] || !tb[BATADV_ATTR_TQ] ||
      !tb[BATADV_ATTR_HARD_IFINDEX] || !tb[BATADV_ATTR_FLAG_BEST])
    return std::nullopt;
  OriginatorRoute r;
  r.originator = mac_of(tb[BATADV_ATTR_ORIG_ADDRESS]);
  r.neighbour = mac_of(tb[BATADV_ATTR_NEIGH_ADDRESS]);
  r.tq = nla_get_u8(tb[BATADV_ATTR_TQ]);
  r.hard_ifindex = nla_get_u32(tb[BATADV_ATTR_HARD_IFINDEX]);
  return r;
}

std::optional<Mac> parse_local_translation(nl_msg* msg) {
  AttrTable tb;
  if (!parse_vis_entry(msg, BATADV_CMD_GET_TRANSTABLE_LOCAL, tb)) return std::nullopt;
  if (!tb[BATADV_ATTR_TT_ADDRESS]) return std::nullopt;
  return mac_of(tb[BATADV_ATTR_TT_ADDRESS]);
}

std::optional<std::vector<HardInterface>> hard_interfaces(const std::string& mesh_iface) {
  return dump_list<HardInterface>(mesh_iface, BATADV_CMD_GET_HARDIF, parse_hard_interface);
}

std::optional<std::vector<OriginatorRoute>> originator_routes(const std::string& mesh_iface) {
  return dump_list<OriginatorRoute>(mesh_iface, BATADV_CMD_GET_ORIGINATORS,
                                    parse_originator_route);
}

std::optional<std::vector<Mac>> local_translations(const std::string& mesh_iface) {
  return dump_list<Mac>(mesh_iface, BATADV_CMD_GET_TRANSTABLE_LOCAL, parse_local_translation);
}

}  // namespace alfred::batadv
