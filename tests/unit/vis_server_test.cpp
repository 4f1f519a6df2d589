// batadv-vis -s against recorded netlink replies: the bytes batman-adv sends
// for its hard interface, originator and local translation table dumps
// (genl family "batadv", B.A.T.M.A.N. IV), laid out as the kernel's fill
// functions write them, several messages per datagram and an NLMSG_DONE
// carrying the dump's status. batman-adv cannot be loaded here, so the
// replies are replayed through the same parsers the live dump uses, in the
// same way (messages of another type skipped, the dump failed by a negative
// status or an NLMSG_ERROR), into collect() and the published packet.
#include <gtest/gtest.h>
#include <linux/batman_adv.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <netlink/msg.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vis/vis_data.hpp"
#include "vis/vis_server.hpp"
#include "wire/packet.hpp"

namespace alfred::vis {
namespace {

constexpr std::uint16_t kFamily = 0x1e;  // the id genl assigned batadv on the recording host
constexpr std::uint32_t kPort = 0x3a9f;
constexpr std::uint32_t kSeq = 0x65f1c2a0;

using Bytes = std::vector<std::uint8_t>;

Mac mac(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint8_t e,
        std::uint8_t f) {
  return Mac{a, b, c, d, e, f};
}

// --- the kernel's wire format ----------------------------------------------

struct Attr {
  std::uint16_t type;
  Bytes payload;
};
Attr u8(std::uint16_t t, std::uint8_t v) { return {t, {v}}; }
Attr u16(std::uint16_t t, std::uint16_t v) {
  Bytes b(2);
  std::memcpy(b.data(), &v, 2);
  return {t, b};
}
Attr u32(std::uint16_t t, std::uint32_t v) {
  Bytes b(4);
  std::memcpy(b.data(), &v, 4);
  return {t, b};
}
Attr addr(std::uint16_t t, const Mac& m) { return {t, Bytes(m.begin(), m.end())}; }
Attr str(std::uint16_t t, const std::string& s) {
  Bytes b(s.begin(), s.end());
  b.push_back(0);
  return {t, b};
}
Attr flag(std::uint16_t t) { return {t, {}}; }

void put32(Bytes& b, std::uint32_t v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  b.insert(b.end(), p, p + 4);
}
void put16(Bytes& b, std::uint16_t v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  b.insert(b.end(), p, p + 2);
}

// One genl message of a dump (NLM_F_MULTI), appended to a datagram.
void genl(Bytes& dgram, std::uint8_t cmd, const std::vector<Attr>& attrs,
          std::uint16_t type = kFamily) {
  Bytes body{cmd, 1, 0, 0};  // genlmsghdr: cmd, version 1, reserved
  for (const Attr& a : attrs) {
    put16(body, static_cast<std::uint16_t>(NLA_HDRLEN + a.payload.size()));
    put16(body, a.type);
    body.insert(body.end(), a.payload.begin(), a.payload.end());
    body.resize(NLMSG_ALIGN(body.size()), 0);
  }
  put32(dgram, static_cast<std::uint32_t>(NLMSG_HDRLEN + body.size()));
  put16(dgram, type);
  put16(dgram, NLM_F_MULTI);
  put32(dgram, kSeq);
  put32(dgram, kPort);
  dgram.insert(dgram.end(), body.begin(), body.end());
}

void done(Bytes& dgram, int status = 0) {
  put32(dgram, NLMSG_HDRLEN + 4);
  put16(dgram, NLMSG_DONE);
  put16(dgram, NLM_F_MULTI);
  put32(dgram, kSeq);
  put32(dgram, kPort);
  put32(dgram, static_cast<std::uint32_t>(status));
}

void error(Bytes& dgram, int err) {
  put32(dgram, NLMSG_HDRLEN + sizeof(nlmsgerr));
  put16(dgram, NLMSG_ERROR);
  put16(dgram, 0);
  put32(dgram, kSeq);
  put32(dgram, kPort);
  nlmsgerr e{};
  e.error = err;
  const auto* p = reinterpret_cast<const std::uint8_t*>(&e);
  dgram.insert(dgram.end(), p, p + sizeof e);
}

// batadv_netlink_hardif_fill()
void hardif(Bytes& d, std::uint32_t mesh, std::uint32_t index, const std::string& name,
            const Mac& address, bool active) {
  std::vector<Attr> a{u32(BATADV_ATTR_MESH_IFINDEX, mesh), u32(BATADV_ATTR_HARD_IFINDEX, index),
                      str(BATADV_ATTR_HARD_IFNAME, name), addr(BATADV_ATTR_HARD_ADDRESS, address)};
  if (active) a.push_back(flag(BATADV_ATTR_ACTIVE));
  genl(d, BATADV_CMD_GET_HARDIF, a);
}

// batadv_iv_ogm_orig_dump_subentry()
void orig(Bytes& d, const Mac& originator, const Mac& neighbour, std::uint32_t hard_ifindex,
          std::uint8_t tq, bool best) {
  std::vector<Attr> a{addr(BATADV_ATTR_ORIG_ADDRESS, originator),
                      addr(BATADV_ATTR_NEIGH_ADDRESS, neighbour),
                      u32(BATADV_ATTR_HARD_IFINDEX, hard_ifindex),
                      u32(BATADV_ATTR_LAST_SEEN_MSECS, 730), u8(BATADV_ATTR_TQ, tq)};
  if (best) a.push_back(flag(BATADV_ATTR_FLAG_BEST));
  genl(d, BATADV_CMD_GET_ORIGINATORS, a);
}

// batadv_tt_local_dump_entry()
void tt_local(Bytes& d, const Mac& client, std::uint16_t vid, std::uint32_t flags) {
  std::vector<Attr> a{addr(BATADV_ATTR_TT_ADDRESS, client), u32(BATADV_ATTR_TT_CRC32, 0x1c7b9e2f),
                      u16(BATADV_ATTR_TT_VID, vid), u32(BATADV_ATTR_TT_FLAGS, flags)};
  if (!(flags & BATADV_TT_CLIENT_NOPURGE)) a.push_back(u32(BATADV_ATTR_LAST_SEEN_MSECS, 4120));
  genl(d, BATADV_CMD_GET_TRANSTABLE_LOCAL, a);
}

// --- replay ------------------------------------------------------------------

struct MsgDeleter {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};

// What Connection::dump() does with the datagrams of one dump: entries of
// our family go to the parser, NLMSG_DONE ends it with its status, an
// NLMSG_ERROR fails it, a dump that never ends fails too.
template <typename T>
std::optional<std::vector<T>> replay(const std::vector<Bytes>& datagrams,
                                     const std::function<std::optional<T>(nl_msg*)>& parse) {
  std::vector<T> out;
  for (const Bytes& d : datagrams) {
    auto* hdr = reinterpret_cast<nlmsghdr*>(const_cast<std::uint8_t*>(d.data()));
    int left = static_cast<int>(d.size());
    for (; nlmsg_ok(hdr, left); hdr = nlmsg_next(hdr, &left)) {
      std::unique_ptr<nl_msg, MsgDeleter> m(nlmsg_convert(hdr));
      if (!m) return std::nullopt;
      if (hdr->nlmsg_type == NLMSG_DONE) {
        if (batadv::parse_done_status(m.get()) != 0) return std::nullopt;
        return out;
      }
      if (hdr->nlmsg_type == NLMSG_ERROR) return std::nullopt;
      if (hdr->nlmsg_type != kFamily) continue;
      if (auto e = parse(m.get())) out.push_back(*e);
    }
  }
  return std::nullopt;
}

class RecordedMesh : public MeshView {
 public:
  std::vector<Bytes> hardifs, origs, tt;
  std::map<std::uint32_t, InterfaceInfo> links;  // if_indextoname + SIOCGIFHWADDR
  std::vector<std::string> asked;

  std::optional<std::vector<batadv::HardInterface>> hard_interfaces(const std::string& m) override {
    asked.push_back("hardif " + m);
    return replay<batadv::HardInterface>(hardifs, batadv::parse_hard_interface);
  }
  std::optional<std::vector<batadv::OriginatorRoute>> originator_routes(const std::string& m) override {
    asked.push_back("orig " + m);
    return replay<batadv::OriginatorRoute>(origs, batadv::parse_originator_route);
  }
  std::optional<std::vector<Mac>> local_translations(const std::string& m) override {
    asked.push_back("tt " + m);
    return replay<Mac>(tt, batadv::parse_local_translation);
  }
  std::optional<InterfaceInfo> interface_by_index(std::uint32_t i) override {
    asked.push_back("link " + std::to_string(i));
    auto it = links.find(i);
    if (it == links.end()) return std::nullopt;
    return it->second;
  }
};

const Mac kWlan = mac(0x02, 0x10, 0x00, 0x00, 0x00, 0x01);
const Mac kEth = mac(0x02, 0x10, 0x00, 0x00, 0x00, 0x02);
const Mac kVpn = mac(0x02, 0x10, 0x00, 0x00, 0x00, 0x03);
const Mac kNodeA = mac(0x02, 0x20, 0x00, 0x00, 0x00, 0x0a);
const Mac kNodeB = mac(0x02, 0x20, 0x00, 0x00, 0x00, 0x0b);
const Mac kNodeC = mac(0x02, 0x20, 0x00, 0x00, 0x00, 0x0c);
const Mac kNodeD = mac(0x02, 0x20, 0x00, 0x00, 0x00, 0x0d);
const Mac kBat0 = mac(0x02, 0x30, 0x00, 0x00, 0x00, 0x01);
const Mac kClient1 = mac(0x02, 0x40, 0x00, 0x00, 0x00, 0x01);
const Mac kClient2 = mac(0x02, 0x40, 0x00, 0x00, 0x00, 0x02);

// A node with three hard interfaces (wlan0 ifindex 4 and eth1 ifindex 3
// active, vpn0 ifindex 7 not), four originators and two local clients.
RecordedMesh typical_node() {
  RecordedMesh m;
  Bytes d1;
  // The kernel walks its hard interface list in registration order.
  hardif(d1, 9, 4, "wlan0", kWlan, true);
  hardif(d1, 9, 7, "vpn0", kVpn, false);
  hardif(d1, 9, 3, "eth1", kEth, true);
  done(d1);
  m.hardifs = {d1};

  Bytes o1, o2;
  orig(o1, kNodeA, kNodeA, 4, 230, true);   // direct neighbour over wlan0
  orig(o1, kNodeA, kNodeB, 4, 120, false);  // another route to it: not the best
  orig(o1, kNodeB, kNodeB, 3, 255, true);   // direct over eth1
  orig(o2, kNodeC, kNodeA, 4, 190, true);   // two hops: not a neighbour
  orig(o2, kNodeD, kNodeD, 4, 0, true);     // TQ 0: left out
  orig(o2, kNodeC, kNodeC, 7, 17, true);    // over the inactive vpn0
  done(o2);
  m.origs = {o1, o2};

  Bytes t1;
  tt_local(t1, kBat0, 0x8000, BATADV_TT_CLIENT_NOPURGE);  // the mesh interface itself
  tt_local(t1, kClient1, 0x8000, 0);
  tt_local(t1, kClient2, 0x8000 | 5, BATADV_TT_CLIENT_WIFI);
  done(t1);
  m.tt = {t1};

  m.links[7] = {7, "vpn0", kVpn};
  return m;
}

TEST(VisServer, CollectsLikeUpstream) {
  RecordedMesh m = typical_node();
  VisData v = collect(m, "bat0");
  // Active interfaces in index order, then vpn0 for the route over it.
  EXPECT_EQ(v.ifaces, (std::vector<Mac>{kEth, kWlan, kVpn}));
  const std::vector<VisEntry> want{
      {kNodeA, 1, 230}, {kNodeB, 0, 255}, {kNodeC, 2, 17},
      {kBat0, 255, 0},  {kClient1, 255, 0}, {kClient2, 255, 0},
  };
  EXPECT_EQ(v.entries, want);
  EXPECT_EQ(v.mac, Mac{});  // upstream never fills it in
  EXPECT_EQ(m.asked, (std::vector<std::string>{"hardif bat0", "orig bat0", "link 7", "tt bat0"}));
}

TEST(VisServer, RecordBytes) {
  RecordedMesh m = typical_node();
  const Bytes got = encode(collect(m, "bat0"));
  Bytes want{0, 0, 0, 0, 0, 0, 3, 6};
  for (const Mac& i : {kEth, kWlan, kVpn}) want.insert(want.end(), i.begin(), i.end());
  auto entry = [&](const Mac& a, std::uint8_t idx, std::uint8_t q) {
    want.insert(want.end(), a.begin(), a.end());
    want.push_back(idx);
    want.push_back(q);
  };
  entry(kNodeA, 1, 230);
  entry(kNodeB, 0, 255);
  entry(kNodeC, 2, 17);
  entry(kBat0, 255, 0);
  entry(kClient1, 255, 0);
  entry(kClient2, 255, 0);
  EXPECT_EQ(got, want);
}

TEST(VisServer, NoBatmanAdvPublishesAnEmptyRecord) {
  RecordedMesh m;  // every dump fails: no datagrams, so no NLMSG_DONE
  VisData v = collect(m, "bat0");
  EXPECT_TRUE(v.ifaces.empty());
  EXPECT_TRUE(v.entries.empty());
  EXPECT_EQ(encode(v), Bytes(8, 0));
}

TEST(VisServer, FailedDumpsLeaveTheirPartOut) {
  RecordedMesh m = typical_node();
  Bytes bad;
  error(bad, -ENODEV);
  m.origs = {bad};
  Bytes aborted;
  tt_local(aborted, kClient1, 0x8000, 0);
  done(aborted, -EINTR);  // the kernel aborted the dump
  m.tt = {aborted};
  VisData v = collect(m, "bat0");
  EXPECT_EQ(v.ifaces, (std::vector<Mac>{kEth, kWlan}));
  EXPECT_TRUE(v.entries.empty());
}

TEST(VisServer, ForeignAndMalformedMessagesAreSkipped) {
  RecordedMesh m = typical_node();
  Bytes d;
  genl(d, BATADV_CMD_GET_ORIGINATORS,
       {addr(BATADV_ATTR_ORIG_ADDRESS, kNodeA), addr(BATADV_ATTR_NEIGH_ADDRESS, kNodeA),
        u32(BATADV_ATTR_HARD_IFINDEX, 4), u8(BATADV_ATTR_TQ, 99), flag(BATADV_ATTR_FLAG_BEST)},
       /*type=*/0x77);  // not our family
  genl(d, BATADV_CMD_GET_ORIGINATORS,
       {{BATADV_ATTR_ORIG_ADDRESS, Bytes(5, 1)}, addr(BATADV_ATTR_NEIGH_ADDRESS, kNodeA),
        u32(BATADV_ATTR_HARD_IFINDEX, 4), u8(BATADV_ATTR_TQ, 99), flag(BATADV_ATTR_FLAG_BEST)});
  genl(d, BATADV_CMD_GET_ORIGINATORS,  // no hard interface
       {addr(BATADV_ATTR_ORIG_ADDRESS, kNodeA), addr(BATADV_ATTR_NEIGH_ADDRESS, kNodeA),
        u8(BATADV_ATTR_TQ, 99), flag(BATADV_ATTR_FLAG_BEST)});
  genl(d, BATADV_CMD_GET_TRANSTABLE_LOCAL,  // wrong command for this dump
       {addr(BATADV_ATTR_ORIG_ADDRESS, kNodeA), addr(BATADV_ATTR_NEIGH_ADDRESS, kNodeA),
        u32(BATADV_ATTR_HARD_IFINDEX, 4), u8(BATADV_ATTR_TQ, 99), flag(BATADV_ATTR_FLAG_BEST)});
  orig(d, kNodeB, kNodeB, 3, 40, true);
  done(d);
  m.origs = {d};
  VisData v = collect(m, "bat0");
  ASSERT_GE(v.entries.size(), 1u);
  EXPECT_EQ(v.entries[0], (VisEntry{kNodeB, 0, 40}));
  EXPECT_EQ(v.entries.size(), 4u);  // and the three local clients
}

TEST(VisServer, UnknownHardInterfaceBecomes255) {
  RecordedMesh m = typical_node();
  Bytes o;
  orig(o, kNodeA, kNodeA, 42, 200, true);  // an index nobody knows
  done(o);
  m.origs = {o};
  m.tt.clear();
  VisData v = collect(m, "bat0");
  EXPECT_EQ(v.ifaces.size(), 2u);
  ASSERT_EQ(v.entries.size(), 1u);
  EXPECT_EQ(v.entries[0], (VisEntry{kNodeA, 255, 200}));
}

TEST(VisServer, CapsAtUpstreamLimits) {
  RecordedMesh m;
  Bytes h, o, t;
  for (std::uint32_t i = 1; i <= 300; ++i)
    hardif(h, 9, i, "if" + std::to_string(i),
           mac(2, 0, 0, 0, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)), true);
  done(h);
  for (std::uint32_t i = 1; i <= 300; ++i) {
    Mac n = mac(2, 1, 0, 0, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i));
    orig(o, n, n, 1, 100, true);
  }
  done(o);
  done(t);
  m.hardifs = {h};
  m.origs = {o};
  m.tt = {t};
  const Bytes rec = encode(collect(m, "bat0"));
  ASSERT_GE(rec.size(), 8u);
  EXPECT_EQ(rec[6], 254);
  EXPECT_EQ(rec[7], 255);
  EXPECT_EQ(rec.size(), 8u + 254 * 6 + 255 * 8);
}

// --- the parsers on single recorded messages ---------------------------------

std::optional<batadv::HardInterface> one_hardif(const std::vector<Attr>& attrs) {
  Bytes d;
  genl(d, BATADV_CMD_GET_HARDIF, attrs);
  done(d);
  auto v = replay<batadv::HardInterface>({d}, batadv::parse_hard_interface);
  if (!v || v->empty()) return std::nullopt;
  return v->front();
}

TEST(VisParse, HardInterface) {
  auto h = one_hardif({u32(BATADV_ATTR_MESH_IFINDEX, 9), u32(BATADV_ATTR_HARD_IFINDEX, 4),
                       str(BATADV_ATTR_HARD_IFNAME, "wlan0"), addr(BATADV_ATTR_HARD_ADDRESS, kWlan),
                       flag(BATADV_ATTR_ACTIVE)});
  ASSERT_TRUE(h);
  EXPECT_EQ(h->ifindex, 4u);
  EXPECT_EQ(h->name, "wlan0");
  EXPECT_EQ(h->address, kWlan);
  EXPECT_TRUE(h->active);

  h = one_hardif({u32(BATADV_ATTR_HARD_IFINDEX, 5), addr(BATADV_ATTR_HARD_ADDRESS, kEth)});
  ASSERT_TRUE(h);  // no name, not active
  EXPECT_EQ(h->name, "");
  EXPECT_FALSE(h->active);

  // A name without its terminator fails the policy (NLA_STRING), as upstream's.
  EXPECT_FALSE(one_hardif({u32(BATADV_ATTR_HARD_IFINDEX, 5), addr(BATADV_ATTR_HARD_ADDRESS, kEth),
                           {BATADV_ATTR_HARD_IFNAME, Bytes{'e', 't', 'h'}}}));

  EXPECT_FALSE(one_hardif({addr(BATADV_ATTR_HARD_ADDRESS, kEth)}));          // no index
  EXPECT_FALSE(one_hardif({u32(BATADV_ATTR_HARD_IFINDEX, 5)}));              // no address
  EXPECT_FALSE(one_hardif({u8(BATADV_ATTR_HARD_IFINDEX, 5), addr(BATADV_ATTR_HARD_ADDRESS, kEth)}));
  EXPECT_FALSE(one_hardif({u32(BATADV_ATTR_HARD_IFINDEX, 5), {BATADV_ATTR_HARD_ADDRESS, Bytes(7, 1)}}));
  EXPECT_FALSE(one_hardif({u32(BATADV_ATTR_HARD_IFINDEX, 5), addr(BATADV_ATTR_HARD_ADDRESS, kEth),
                           str(BATADV_ATTR_HARD_IFNAME, std::string(20, 'x'))}));  // longer than IFNAMSIZ
}

TEST(VisParse, OriginatorRouteNeedsAllFourAndBest) {
  auto parse = [](const std::vector<Attr>& a) {
    Bytes d;
    genl(d, BATADV_CMD_GET_ORIGINATORS, a);
    done(d);
    return replay<batadv::OriginatorRoute>({d}, batadv::parse_originator_route)->size();
  };
  const std::vector<Attr> all{addr(BATADV_ATTR_ORIG_ADDRESS, kNodeA), addr(BATADV_ATTR_NEIGH_ADDRESS, kNodeB),
                              u32(BATADV_ATTR_HARD_IFINDEX, 4), u8(BATADV_ATTR_TQ, 9),
                              flag(BATADV_ATTR_FLAG_BEST)};
  EXPECT_EQ(parse(all), 1u);
  for (std::size_t skip = 0; skip < all.size(); ++skip) {
    std::vector<Attr> some;
    for (std::size_t i = 0; i < all.size(); ++i)
      if (i != skip) some.push_back(all[i]);
    EXPECT_EQ(parse(some), 0u) << "without attribute " << all[skip].type;
  }
  // B.A.T.M.A.N. V: throughput instead of TQ.
  EXPECT_EQ(parse({addr(BATADV_ATTR_ORIG_ADDRESS, kNodeA), addr(BATADV_ATTR_NEIGH_ADDRESS, kNodeA),
                   u32(BATADV_ATTR_HARD_IFINDEX, 4), u32(BATADV_ATTR_THROUGHPUT, 5400),
                   flag(BATADV_ATTR_FLAG_BEST)}),
            0u);
}

TEST(VisParse, LocalTranslation) {
  Bytes d;
  tt_local(d, kClient1, 0x8000, 0);
  genl(d, BATADV_CMD_GET_TRANSTABLE_LOCAL, {u32(BATADV_ATTR_TT_FLAGS, 0)});  // no address
  genl(d, BATADV_CMD_GET_TRANSTABLE_LOCAL, {{BATADV_ATTR_TT_ADDRESS, Bytes(4, 2)}});
  tt_local(d, kClient1, 0x8000 | 3, 0);  // the same client on a VLAN: listed again
  done(d);
  auto v = replay<Mac>({d}, batadv::parse_local_translation);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, (std::vector<Mac>{kClient1, kClient1}));
}

// The whole server step: what reaches the daemon's socket.
TEST(VisServer, PublishesOnePushPacketPerUpdate) {
  char dir[] = "/tmp/vis-server-test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/sock";
  int ls = socket(AF_LOCAL, SOCK_STREAM, 0);
  ASSERT_GE(ls, 0);
  sockaddr_un a{};
  a.sun_family = AF_LOCAL;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(ls, 4), 0);

  RecordedMesh m = typical_node();
  std::uint16_t tx = 0;
  for (std::uint16_t round = 1; round <= 2; ++round) {
    ASSERT_TRUE(publish_once(m, "bat0", path, tx));
    int c = accept(ls, nullptr, nullptr);
    ASSERT_GE(c, 0);
    Bytes got;
    std::uint8_t buf[4096];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) got.insert(got.end(), buf, buf + n);
    close(c);
    const Bytes rec = encode(collect(m, "bat0"));
    Bytes want{0, 0, 0, 0, 0, static_cast<std::uint8_t>(round), 0, 0};  // push, tx id, seqno 0
    want.insert(want.end(), 6, 0);          // source: the daemon's own
    want.insert(want.end(), {kVisType, kVisVersion, 0, static_cast<std::uint8_t>(rec.size())});
    want.insert(want.end(), rec.begin(), rec.end());
    const std::size_t tlv = want.size() - 4;
    want[2] = static_cast<std::uint8_t>(tlv >> 8);
    want[3] = static_cast<std::uint8_t>(tlv);
    EXPECT_EQ(got, want) << "round " << round;
    auto d = wire::decode(got);
    EXPECT_TRUE(d.ok);
  }
  close(ls);
  unlink(path.c_str());
  rmdir(dir);

  // No daemon: the message upstream prints, and false.
  testing::internal::CaptureStderr();
  EXPECT_FALSE(publish_once(m, "bat0", path, tx));
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "can't connect to unix socket: No such file or directory\n");
  EXPECT_EQ(tx, 3);
}

TEST(VisServer, LiveQueriesFailWithoutBatmanAdv) {
  NetlinkMeshView live;
  EXPECT_FALSE(live.hard_interfaces("definitely-not-an-iface0").has_value());
  EXPECT_FALSE(live.originator_routes("lo").has_value());
  EXPECT_FALSE(live.local_translations("lo").has_value());
  EXPECT_FALSE(live.interface_by_index(0x7ffffff0).has_value());
  auto lo = live.interface_by_index(1);
  ASSERT_TRUE(lo.has_value());
  EXPECT_EQ(lo->name, "lo");
  EXPECT_EQ(lo->address, Mac{});
  VisData v = collect(live, "lo");
  EXPECT_EQ(encode(v), Bytes(8, 0));
}

}  // namespace
}  // namespace alfred::vis
