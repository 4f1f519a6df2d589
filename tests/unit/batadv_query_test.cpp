#include "batadv/batadv_query.hpp"

#include <gtest/gtest.h>
#include <linux/batman_adv.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

namespace alfred::batadv {
namespace {

// Any id works for the parsers; real ids are assigned dynamically (>= 16).
constexpr int kFakeFamily = 0x1b;

const Mac kOrig{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
const Mac kNeigh{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
const Mac kClient{0x02, 0x01, 0x02, 0x03, 0x04, 0x05};

struct MsgDeleter {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
using MsgPtr = std::unique_ptr<nl_msg, MsgDeleter>;

MsgPtr genl_msg(std::uint8_t cmd) {
  MsgPtr m(nlmsg_alloc());
  EXPECT_NE(m, nullptr);
  EXPECT_NE(genlmsg_put(m.get(), NL_AUTO_PORT, NL_AUTO_SEQ, kFakeFamily, 0, NLM_F_MULTI, cmd, 1),
            nullptr);
  return m;
}

void put_mac(nl_msg* m, int type, const Mac& mac) {
  ASSERT_EQ(nla_put(m, type, static_cast<int>(mac.size()), mac.data()), 0);
}

// An originator entry as the BATMAN IV dump sends it.
MsgPtr originator(const Mac& orig, std::uint8_t tq, bool best) {
  auto m = genl_msg(BATADV_CMD_GET_ORIGINATORS);
  put_mac(m.get(), BATADV_ATTR_ORIG_ADDRESS, orig);
  put_mac(m.get(), BATADV_ATTR_NEIGH_ADDRESS, kNeigh);
  EXPECT_EQ(nla_put_u32(m.get(), BATADV_ATTR_HARD_IFINDEX, 3), 0);
  EXPECT_EQ(nla_put_u32(m.get(), BATADV_ATTR_LAST_SEEN_MSECS, 120), 0);
  EXPECT_EQ(nla_put_u8(m.get(), BATADV_ATTR_TQ, tq), 0);
  if (best) {
    EXPECT_EQ(nla_put_flag(m.get(), BATADV_ATTR_FLAG_BEST), 0);
  }
  return m;
}

MsgPtr translation(const Mac& client, const Mac& orig, bool best) {
  auto m = genl_msg(BATADV_CMD_GET_TRANSTABLE_GLOBAL);
  put_mac(m.get(), BATADV_ATTR_TT_ADDRESS, client);
  put_mac(m.get(), BATADV_ATTR_ORIG_ADDRESS, orig);
  EXPECT_EQ(nla_put_u16(m.get(), BATADV_ATTR_TT_VID, 0x8000), 0);
  EXPECT_EQ(nla_put_u8(m.get(), BATADV_ATTR_TT_TTVN, 7), 0);
  EXPECT_EQ(nla_put_u32(m.get(), BATADV_ATTR_TT_CRC32, 0xdeadbeef), 0);
  EXPECT_EQ(nla_put_u32(m.get(), BATADV_ATTR_TT_FLAGS, 0), 0);
  if (best) {
    EXPECT_EQ(nla_put_flag(m.get(), BATADV_ATTR_FLAG_BEST), 0);
  }
  return m;
}

// --- parse_originator ------------------------------------------------------

TEST(BatadvParseOriginator, ValidBestEntry) {
  auto m = originator(kOrig, 217, true);
  auto e = parse_originator(m.get());
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->first, kOrig);
  EXPECT_EQ(e->second, 217);
}

TEST(BatadvParseOriginator, ExtremeTqValues) {
  auto lo = originator(kOrig, 0, true);
  auto hi = originator(kOrig, 255, true);
  EXPECT_EQ(parse_originator(lo.get())->second, 0);
  EXPECT_EQ(parse_originator(hi.get())->second, 255);
}

TEST(BatadvParseOriginator, NonBestEntryIsSkipped) {
  auto m = originator(kOrig, 217, false);
  EXPECT_FALSE(parse_originator(m.get()).has_value());
}

TEST(BatadvParseOriginator, MissingOrigAddress) {
  auto m = genl_msg(BATADV_CMD_GET_ORIGINATORS);
  ASSERT_EQ(nla_put_u8(m.get(), BATADV_ATTR_TQ, 100), 0);
  ASSERT_EQ(nla_put_flag(m.get(), BATADV_ATTR_FLAG_BEST), 0);
  EXPECT_FALSE(parse_originator(m.get()).has_value());
}

TEST(BatadvParseOriginator, MissingTqAsWithBatmanV) {
  auto m = genl_msg(BATADV_CMD_GET_ORIGINATORS);
  put_mac(m.get(), BATADV_ATTR_ORIG_ADDRESS, kOrig);
  ASSERT_EQ(nla_put_u32(m.get(), BATADV_ATTR_THROUGHPUT, 54000), 0);
  ASSERT_EQ(nla_put_flag(m.get(), BATADV_ATTR_FLAG_BEST), 0);
  EXPECT_FALSE(parse_originator(m.get()).has_value());
}

TEST(BatadvParseOriginator, NoAttributesAtAll) {
  auto m = genl_msg(BATADV_CMD_GET_ORIGINATORS);
  EXPECT_FALSE(parse_originator(m.get()).has_value());
}

TEST(BatadvParseOriginator, WrongCommand) {
  auto m = originator(kOrig, 217, true);
  genlmsghdr* g = static_cast<genlmsghdr*>(nlmsg_data(nlmsg_hdr(m.get())));
  g->cmd = BATADV_CMD_GET_NEIGHBORS;
  EXPECT_FALSE(parse_originator(m.get()).has_value());

  auto tt = translation(kClient, kOrig, true);
  EXPECT_FALSE(parse_originator(tt.get()).has_value());
}

TEST(BatadvParseOriginator, ShortMacAttribute) {
  auto m = genl_msg(BATADV_CMD_GET_ORIGINATORS);
  ASSERT_EQ(nla_put(m.get(), BATADV_ATTR_ORIG_ADDRESS, 5, kOrig.data()), 0);
  ASSERT_EQ(nla_put_u8(m.get(), BATADV_ATTR_TQ, 100), 0);
  ASSERT_EQ(nla_put_flag(m.get(), BATADV_ATTR_FLAG_BEST), 0);
  EXPECT_FALSE(parse_originator(m.get()).has_value());
}

TEST(BatadvParseOriginator, LongMacAttribute) {
  const std::uint8_t eight[8] = {0x02, 1, 2, 3, 4, 5, 6, 7};
  auto m = genl_msg(BATADV_CMD_GET_ORIGINATORS);
  ASSERT_EQ(nla_put(m.get(), BATADV_ATTR_ORIG_ADDRESS, sizeof eight, eight), 0);
  ASSERT_EQ(nla_put_u8(m.get(), BATADV_ATTR_TQ, 100), 0);
  ASSERT_EQ(nla_put_flag(m.get(), BATADV_ATTR_FLAG_BEST), 0);
  EXPECT_FALSE(parse_originator(m.get()).has_value());
}

TEST(BatadvParseOriginator, EmptyTqAttribute) {
  auto m = genl_msg(BATADV_CMD_GET_ORIGINATORS);
  put_mac(m.get(), BATADV_ATTR_ORIG_ADDRESS, kOrig);
  ASSERT_EQ(nla_put(m.get(), BATADV_ATTR_TQ, 0, nullptr), 0);
  ASSERT_EQ(nla_put_flag(m.get(), BATADV_ATTR_FLAG_BEST), 0);
  EXPECT_FALSE(parse_originator(m.get()).has_value());
}

TEST(BatadvParseOriginator, UnknownAttributesAreIgnored) {
  auto m = originator(kOrig, 42, true);
  const std::uint8_t blob[3] = {1, 2, 3};
  ASSERT_EQ(nla_put(m.get(), BATADV_ATTR_MAX + 7, sizeof blob, blob), 0);
  auto e = parse_originator(m.get());
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->second, 42);
}

// --- parse_translation -----------------------------------------------------

TEST(BatadvParseTranslation, ValidBestEntry) {
  auto m = translation(kClient, kOrig, true);
  auto e = parse_translation(m.get());
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->first, kClient);
  EXPECT_EQ(e->second, kOrig);
}

TEST(BatadvParseTranslation, NonBestEntryIsSkipped) {
  auto m = translation(kClient, kOrig, false);
  EXPECT_FALSE(parse_translation(m.get()).has_value());
}

TEST(BatadvParseTranslation, MissingClientAddress) {
  auto m = genl_msg(BATADV_CMD_GET_TRANSTABLE_GLOBAL);
  put_mac(m.get(), BATADV_ATTR_ORIG_ADDRESS, kOrig);
  ASSERT_EQ(nla_put_flag(m.get(), BATADV_ATTR_FLAG_BEST), 0);
  EXPECT_FALSE(parse_translation(m.get()).has_value());
}

TEST(BatadvParseTranslation, MissingOrigAddress) {
  auto m = genl_msg(BATADV_CMD_GET_TRANSTABLE_GLOBAL);
  put_mac(m.get(), BATADV_ATTR_TT_ADDRESS, kClient);
  ASSERT_EQ(nla_put_flag(m.get(), BATADV_ATTR_FLAG_BEST), 0);
  EXPECT_FALSE(parse_translation(m.get()).has_value());
}

TEST(BatadvParseTranslation, WrongCommand) {
  auto m = translation(kClient, kOrig, true);
  static_cast<genlmsghdr*>(nlmsg_data(nlmsg_hdr(m.get())))->cmd = BATADV_CMD_GET_TRANSTABLE_LOCAL;
  EXPECT_FALSE(parse_translation(m.get()).has_value());

  auto o = originator(kOrig, 1, true);
  EXPECT_FALSE(parse_translation(o.get()).has_value());
}

TEST(BatadvParseTranslation, ShortMacAttributes) {
  auto a = genl_msg(BATADV_CMD_GET_TRANSTABLE_GLOBAL);
  ASSERT_EQ(nla_put(a.get(), BATADV_ATTR_TT_ADDRESS, 4, kClient.data()), 0);
  put_mac(a.get(), BATADV_ATTR_ORIG_ADDRESS, kOrig);
  ASSERT_EQ(nla_put_flag(a.get(), BATADV_ATTR_FLAG_BEST), 0);
  EXPECT_FALSE(parse_translation(a.get()).has_value());

  auto b = genl_msg(BATADV_CMD_GET_TRANSTABLE_GLOBAL);
  put_mac(b.get(), BATADV_ATTR_TT_ADDRESS, kClient);
  ASSERT_EQ(nla_put(b.get(), BATADV_ATTR_ORIG_ADDRESS, 0, nullptr), 0);
  ASSERT_EQ(nla_put_flag(b.get(), BATADV_ATTR_FLAG_BEST), 0);
  EXPECT_FALSE(parse_translation(b.get()).has_value());
}

// --- malformed messages ----------------------------------------------------

TEST(BatadvParseGarbage, NullMessage) {
  EXPECT_FALSE(parse_originator(nullptr).has_value());
  EXPECT_FALSE(parse_translation(nullptr).has_value());
  EXPECT_EQ(parse_done_status(nullptr), -EINVAL);
}

TEST(BatadvParseGarbage, BareNetlinkHeader) {
  MsgPtr m(nlmsg_alloc_simple(kFakeFamily, 0));
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(parse_originator(m.get()).has_value());
  EXPECT_FALSE(parse_translation(m.get()).has_value());
}

TEST(BatadvParseGarbage, TruncatedGenlHeader) {
  MsgPtr m(nlmsg_alloc_simple(kFakeFamily, 0));
  std::uint8_t two[2] = {BATADV_CMD_GET_ORIGINATORS, 1};
  ASSERT_EQ(nlmsg_append(m.get(), two, sizeof two, 0), 0);
  EXPECT_FALSE(parse_originator(m.get()).has_value());
}

TEST(BatadvParseGarbage, ControlMessageTypes) {
  auto m = originator(kOrig, 217, true);
  for (int type : {NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN}) {
    nlmsg_hdr(m.get())->nlmsg_type = static_cast<std::uint16_t>(type);
    EXPECT_FALSE(parse_originator(m.get()).has_value()) << type;
  }
}

TEST(BatadvParseGarbage, LengthBeyondBuffer) {
  auto m = originator(kOrig, 217, true);
  nlmsg_hdr(m.get())->nlmsg_len = 0x7fffffff;
  EXPECT_FALSE(parse_originator(m.get()).has_value());
  nlmsg_hdr(m.get())->nlmsg_len = 3;
  EXPECT_FALSE(parse_originator(m.get()).has_value());
}

TEST(BatadvParseGarbage, AttributeLengthBeyondMessage) {
  auto m = genl_msg(BATADV_CMD_GET_ORIGINATORS);
  ASSERT_EQ(nla_put_flag(m.get(), BATADV_ATTR_FLAG_BEST), 0);
  ASSERT_EQ(nla_put_u8(m.get(), BATADV_ATTR_TQ, 9), 0);
  // A MAC attribute whose header claims more payload than the message holds.
  nlattr hdr{};
  hdr.nla_len = 200;
  hdr.nla_type = BATADV_ATTR_ORIG_ADDRESS;
  ASSERT_EQ(nlmsg_append(m.get(), &hdr, sizeof hdr, NLMSG_ALIGNTO), 0);
  Mac payload = kOrig;
  ASSERT_EQ(nlmsg_append(m.get(), payload.data(), payload.size(), NLMSG_ALIGNTO), 0);
  EXPECT_FALSE(parse_originator(m.get()).has_value());
}

TEST(BatadvParseGarbage, RandomPayloadsNeverCrash) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> len(0, 200);
  int accepted = 0;
  for (int i = 0; i < 5000; ++i) {
    MsgPtr m(nlmsg_alloc_simple(kFakeFamily, NLM_F_MULTI));
    ASSERT_NE(m, nullptr);
    std::vector<std::uint8_t> junk(static_cast<std::size_t>(len(rng)));
    for (auto& b : junk) b = static_cast<std::uint8_t>(byte(rng));
    // Half of the cases get a plausible genl header so the attribute parser
    // sees the junk, not just the header checks.
    if (i % 2 == 0 && junk.size() >= GENL_HDRLEN) {
      junk[0] = (i % 4 == 0) ? BATADV_CMD_GET_ORIGINATORS : BATADV_CMD_GET_TRANSTABLE_GLOBAL;
      junk[2] = junk[3] = 0;
    }
    if (!junk.empty()) {
      ASSERT_EQ(nlmsg_append(m.get(), junk.data(), junk.size(), NLMSG_ALIGNTO), 0);
    }
    accepted += parse_originator(m.get()).has_value();
    accepted += parse_translation(m.get()).has_value();
    (void)parse_done_status(m.get());
  }
  // Random bytes practically never form a complete valid best entry.
  EXPECT_LT(accepted, 5);
}

// --- NLMSG_DONE ------------------------------------------------------------

MsgPtr done_msg(const void* payload, std::size_t len) {
  MsgPtr m(nlmsg_alloc_simple(NLMSG_DONE, NLM_F_MULTI));
  if (len > 0) {
    EXPECT_EQ(nlmsg_append(m.get(), const_cast<void*>(payload), len, NLMSG_ALIGNTO), 0);
  }
  return m;
}

TEST(BatadvDoneStatus, SuccessAndErrors) {
  const int ok = 0, nodev = -ENODEV, positive = 5;
  EXPECT_EQ(parse_done_status(done_msg(&ok, sizeof ok).get()), 0);
  EXPECT_EQ(parse_done_status(done_msg(&nodev, sizeof nodev).get()), -ENODEV);
  EXPECT_EQ(parse_done_status(done_msg(&positive, sizeof positive).get()), 0);
  EXPECT_EQ(parse_done_status(done_msg(nullptr, 0).get()), 0);
}

TEST(BatadvDoneStatus, NotADoneMessage) {
  auto m = originator(kOrig, 1, true);
  EXPECT_EQ(parse_done_status(m.get()), -EINVAL);
}

// --- tq_of -----------------------------------------------------------------

TEST(BatadvTqOf, Lookups) {
  const Mac server_a{0x02, 0, 0, 0, 0, 0xa};
  const Mac server_b{0x02, 0, 0, 0, 0, 0xb};
  const Mac server_c{0x02, 0, 0, 0, 0, 0xc};
  const Mac orig_a{0x02, 1, 1, 1, 1, 0xa};
  const Mac orig_b{0x02, 1, 1, 1, 1, 0xb};
  const Mac orig_gone{0x02, 1, 1, 1, 1, 0xf};
  const std::map<Mac, Mac> tt{{server_a, orig_a}, {server_b, orig_b}, {server_c, orig_gone}};
  const std::map<Mac, std::uint8_t> orig{{orig_a, 200}, {orig_b, 90}};

  EXPECT_EQ(tq_of(server_a, tt, orig), 200);
  EXPECT_EQ(tq_of(server_b, tt, orig), 90);
  EXPECT_EQ(tq_of(server_c, tt, orig), 0);  // originator not reachable
  EXPECT_EQ(tq_of(orig_a, tt, orig), 0);    // not a client in the TT
  EXPECT_EQ(tq_of(server_a, {}, orig), 0);
  EXPECT_EQ(tq_of(server_a, tt, {}), 0);
}

// --- live queries (no batman-adv here, so only failure paths) ---------------

TEST(BatadvQuery, UnknownInterfaceFailsFast) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(originator_tq("definitely-not-an-iface0").has_value());
  EXPECT_FALSE(global_translations("definitely-not-an-iface0").has_value());
  EXPECT_FALSE(interface_available("definitely-not-an-iface0"));
  EXPECT_FALSE(originator_tq("").has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
}

TEST(BatadvQuery, NonBatmanInterfaceFailsWithinBudget) {
  // "lo" exists everywhere; either the batadv family is missing or the kernel
  // refuses to dump a non-batman interface. Both must fail, and quickly.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(originator_tq("lo").has_value());
  EXPECT_FALSE(global_translations("lo").has_value());
  EXPECT_FALSE(interface_available("lo"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(3500));
}

}  // namespace
}  // namespace alfred::batadv
