// batadv-vis' client side: the vis v1 record and its three output formats.
// The expected texts are what Debian's batadv-vis 2023.0 printed for the same
// answers (served by a stand-in daemon), with its version replaced by "V".
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "vis/unix_client.hpp"
#include "vis/vis_data.hpp"
#include "wire/packet.hpp"

namespace alfred::vis {
namespace {

using Bytes = std::vector<std::uint8_t>;

Mac m(std::uint8_t a, std::uint8_t b, std::uint8_t f) { return Mac{2, a, 0, 0, b, f}; }

Bytes push(std::uint8_t type, std::uint8_t version, const Bytes& data,
           const Mac& source = Mac{2, 0, 0, 0, 0, 1}) {
  Bytes out;
  wire::encode_push_header(out, 1, 0);
  wire::append_record(out, source, type, version, data);
  wire::finish_tlv(out, 0);
  return out;
}

struct Output {
  std::string out, err;
};

// Runs an answer (the bytes the daemon writes) through the client's loop.
Output render(Format f, const Bytes& answer) {
  char* obuf = nullptr;
  char* ebuf = nullptr;
  std::size_t olen = 0, elen = 0;
  std::FILE* out = open_memstream(&obuf, &olen);
  std::FILE* err = open_memstream(&ebuf, &elen);
  std::size_t pos = 0;
  tools::AnswerReader reader([&](std::uint8_t* b, std::size_t n) {
    const std::size_t k = std::min(n, answer.size() - pos);
    if (k) std::memcpy(b, answer.data() + pos, k);
    pos += k;
    return k;
  });
  Printer p(f, out, err, "V");
  p.begin();
  bool ended = false;
  while (auto r = reader.next()) {
    if (r->type != kVisType || r->version != kVisVersion) break;
    if (!p.record(*r)) {
      ended = true;
      break;
    }
  }
  if (!ended) p.end();
  std::fclose(out);
  std::fclose(err);
  Output o{std::string(obuf, olen), std::string(ebuf, elen)};
  std::free(obuf);
  std::free(ebuf);
  return o;
}

Bytes vis(const std::vector<Mac>& ifaces, const std::vector<VisEntry>& entries) {
  return encode(VisData{Mac{}, ifaces, entries});
}

const Mac i1 = m(0x10, 0, 1), i2 = m(0x10, 0, 2), i3 = m(0x10, 0, 3);
const Mac n1 = m(0x20, 0, 0xa), n2 = m(0x20, 0, 0xb), n3 = m(0x20, 0, 0xc), c1 = m(0x40, 0, 1);

Bytes sample_answer() {
  Bytes a = push(1, 1, vis({i1, i2}, {{n1, 0, 230}, {n2, 1, 255}, {c1, 255, 0}, {n3, 5, 10},
                                      {n3, 0, 0}, {n3, 1, 3}}));
  Bytes b = push(1, 1, vis({i3}, {{n1, 0, 1}}), Mac{2, 0, 0, 0, 0, 2});
  Bytes c = push(1, 1, vis({i2}, {}));
  a.insert(a.end(), b.begin(), b.end());
  a.insert(a.end(), c.begin(), c.end());
  return a;
}

const char* const kErrors = "ERROR: bad ifindex ...\nERROR: quality = 0?\n";

TEST(VisPrint, Dot) {
  Output o = render(Format::Dot, sample_answer());
  EXPECT_EQ(o.out,
            "digraph {\n"
            "\tsubgraph \"cluster_02:10:00:00:00:01\" {\n"
            "\t\t\"02:10:00:00:00:01\"\n"
            "\t\t\"02:10:00:00:00:02\" [peripheries=2]\n"
            "\t}\n"
            "\t\"02:10:00:00:00:01\" -> \"02:20:00:00:00:0a\" [label=\"1.109\"]\n"
            "\t\"02:10:00:00:00:02\" -> \"02:20:00:00:00:0b\" [label=\"1.000\"]\n"
            "\t\"02:10:00:00:00:01\" -> \"02:40:00:00:00:01\" [label=\"TT\"]\n"
            "\t\"02:10:00:00:00:02\" -> \"02:20:00:00:00:0c\" [label=\"85.000\"]\n"
            "\tsubgraph \"cluster_02:10:00:00:00:03\" {\n"
            "\t\t\"02:10:00:00:00:03\"\n"
            "\t}\n"
            "\t\"02:10:00:00:00:03\" -> \"02:20:00:00:00:0a\" [label=\"255.000\"]\n"
            "\tsubgraph \"cluster_02:10:00:00:00:02\" {\n"
            "\t\t\"02:10:00:00:00:02\"\n"
            "\t}\n"
            "}\n");
  EXPECT_EQ(o.err, kErrors);
}

TEST(VisPrint, Json) {
  Output o = render(Format::Json, sample_answer());
  EXPECT_EQ(o.out,
            "{ \"primary\" : \"02:10:00:00:00:01\" }\n"
            "{ \"secondary\" : \"02:10:00:00:00:02\", \"of\" : \"02:10:00:00:00:01\" }\n"
            "{ \"router\" : \"02:10:00:00:00:01\", \"neighbor\" : \"02:20:00:00:00:0a\", \"label\" : \"1.109\" }\n"
            "{ \"router\" : \"02:10:00:00:00:02\", \"neighbor\" : \"02:20:00:00:00:0b\", \"label\" : \"1.000\" }\n"
            "{ \"router\" : \"02:10:00:00:00:01\", \"gateway\" : \"02:40:00:00:00:01\", \"label\" : \"TT\" }\n"
            "{ \"router\" : \"02:10:00:00:00:02\", \"neighbor\" : \"02:20:00:00:00:0c\", \"label\" : \"85.000\" }\n"
            "{ \"primary\" : \"02:10:00:00:00:03\" }\n"
            "{ \"router\" : \"02:10:00:00:00:03\", \"neighbor\" : \"02:20:00:00:00:0a\", \"label\" : \"255.000\" }\n"
            "{ \"primary\" : \"02:10:00:00:00:02\" }\n");
  EXPECT_EQ(o.err, kErrors);
}

TEST(VisPrint, JsonDoc) {
  Output o = render(Format::JsonDoc, sample_answer());
  // Upstream leaves the last node (no entries) unclosed and the second one's
  // clients empty; byte for byte is byte for byte.
  EXPECT_EQ(o.out,
            "{\n"
            "  \"source_version\" : \"V\",\n"
            "  \"algorithm\" : 4,\n"
            "  \"vis\" : [\n"
            "    { \"primary\" : \"02:10:00:00:00:01\",\n"
            "      \"secondary\" : [ \"02:10:00:00:00:02\"\n"
            "       ],\n"
            "      \"neighbors\" : [\n"
            "         { \"router\" : \"02:10:00:00:00:01\",\n"
            "           \"neighbor\" : \"02:20:00:00:00:0a\",\n"
            "           \"metric\" : \"1.109\" },\n"
            "         { \"router\" : \"02:10:00:00:00:02\",\n"
            "           \"neighbor\" : \"02:20:00:00:00:0b\",\n"
            "           \"metric\" : \"1.000\" },\n"
            "         { \"router\" : \"02:10:00:00:00:02\",\n"
            "           \"neighbor\" : \"02:20:00:00:00:0c\",\n"
            "           \"metric\" : \"85.000\" }\n"
            "      ],\n"
            "      \"clients\" : [\n"
            "        \"02:40:00:00:00:01\"\n"
            "      ]\n"
            "    },\n"
            "    { \"primary\" : \"02:10:00:00:00:03\",\n"
            "      \"neighbors\" : [\n"
            "         { \"router\" : \"02:10:00:00:00:03\",\n"
            "           \"neighbor\" : \"02:20:00:00:00:0a\",\n"
            "           \"metric\" : \"255.000\" }\n"
            "      ],\n"
            "      \"clients\" : [\n"
            "\n"
            "      ]\n"
            "    },\n"
            "    { \"primary\" : \"02:10:00:00:00:02\",\n"
            "\n"
            "  ]\n"
            "}\n");
  EXPECT_EQ(o.err, kErrors);
}

TEST(VisPrint, EmptyAnswer) {
  EXPECT_EQ(render(Format::Dot, {}).out, "digraph {\n}\n");
  EXPECT_EQ(render(Format::Json, {}).out, "");
  EXPECT_EQ(render(Format::JsonDoc, {}).out,
            "{\n  \"source_version\" : \"V\",\n  \"algorithm\" : 4,\n  \"vis\" : [\n\n  ]\n}\n");
}

TEST(VisPrint, BogusRecordsAreSkipped) {
  Bytes a = push(1, 1, vis({}, {{n1, 0, 9}}));  // no interfaces
  Bytes sized = vis({i1}, {{n1, 0, 9}});
  sized.push_back(0);  // one byte more than its counts say
  Bytes b = push(1, 1, sized);
  Bytes c = push(1, 1, vis({i2}, {{n2, 0, 51}}));
  a.insert(a.end(), b.begin(), b.end());
  a.insert(a.end(), c.begin(), c.end());
  EXPECT_EQ(render(Format::Json, a).out,
            "{ \"primary\" : \"02:10:00:00:00:02\" }\n"
            "{ \"router\" : \"02:10:00:00:00:02\", \"neighbor\" : \"02:20:00:00:00:0b\", \"label\" : \"5.000\" }\n");
}

TEST(VisPrint, ShortRecordEndsWithoutClosing) {
  Bytes a = push(1, 1, vis({i1}, {}));
  Bytes b = push(1, 1, Bytes{1, 2, 3});
  Bytes c = push(1, 1, vis({i2}, {}));
  a.insert(a.end(), b.begin(), b.end());
  a.insert(a.end(), c.begin(), c.end());
  EXPECT_EQ(render(Format::Dot, a).out,
            "digraph {\n\tsubgraph \"cluster_02:10:00:00:00:01\" {\n\t\t\"02:10:00:00:00:01\"\n\t}\n");
}

TEST(VisPrint, OtherTypesAndPacketsEndTheAnswer) {
  for (Bytes stop : {push(2, 1, vis({i2}, {})), push(1, 0, vis({i2}, {})),
                     Bytes{3, 0, 0, 4, 0, 1, 0, 1},           // txend
                     Bytes{0, 0, 0, 13},                      // push shorter than one record header
                     Bytes{0, 0, 0xff, 0xfd}}) {              // longer than the buffer
    Bytes a = push(1, 1, vis({i1}, {}));
    a.insert(a.end(), stop.begin(), stop.end());
    Bytes more = push(1, 1, vis({i3}, {}));
    a.insert(a.end(), more.begin(), more.end());
    EXPECT_EQ(render(Format::Json, a).out, "{ \"primary\" : \"02:10:00:00:00:01\" }\n");
  }
}

TEST(VisPrint, OnlyTheFirstRecordOfAPacketCounts) {
  Bytes a;
  wire::encode_push_header(a, 1, 0);
  const Bytes r1 = vis({i1}, {}), r2 = vis({i2}, {});
  wire::append_record(a, Mac{2, 0, 0, 0, 0, 1}, 1, 1, r1);
  wire::append_record(a, Mac{2, 0, 0, 0, 0, 2}, 1, 1, r2);
  wire::finish_tlv(a, 0);
  EXPECT_EQ(render(Format::Json, a).out, "{ \"primary\" : \"02:10:00:00:00:01\" }\n");
}

TEST(VisPrint, RecordRunningPastItsPacketReadsWhatEarlierPacketsLeft) {
  // A long record, then a packet whose record claims the same length but
  // carries only the header: upstream reads the rest from its buffer.
  const Bytes big = vis({i1, i2}, {{n1, 1, 5}});
  Bytes a = push(1, 1, big);
  Bytes cut = push(1, 1, Bytes(big.begin(), big.begin() + 8));
  cut[16] = 0;
  cut[17] = static_cast<std::uint8_t>(big.size());
  a.insert(a.end(), cut.begin(), cut.end());
  const std::string one =
      "{ \"primary\" : \"02:10:00:00:00:01\" }\n"
      "{ \"secondary\" : \"02:10:00:00:00:02\", \"of\" : \"02:10:00:00:00:01\" }\n"
      "{ \"router\" : \"02:10:00:00:00:02\", \"neighbor\" : \"02:20:00:00:00:0a\", \"label\" : \"51.000\" }\n";
  EXPECT_EQ(render(Format::Json, a).out, one + one);
}

TEST(VisRecord, EncodeLayoutAndCaps) {
  EXPECT_EQ(encode(VisData{}), Bytes(8, 0));
  VisData v;
  v.mac = Mac{1, 2, 3, 4, 5, 6};
  v.ifaces = {i1};
  v.entries = {{n1, 0, 200}};
  EXPECT_EQ(encode(v), (Bytes{1, 2, 3, 4, 5, 6, 1, 1, 2, 0x10, 0, 0, 0, 1, 2, 0x20, 0, 0, 0, 0xa,
                              0, 200}));
  v.ifaces.assign(300, i1);
  v.entries.assign(300, {n1, 0, 1});
  const Bytes big = encode(v);
  EXPECT_EQ(big[6], 254);
  EXPECT_EQ(big[7], 255);
  EXPECT_EQ(big.size(), 8u + 254 * 6 + 255 * 8);
}

TEST(VisClient, NoDaemon) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_client(Format::Dot, "/nonexistent/alfred.sock", "V"), -1);
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "can't connect to unix socket: No such file or directory\n");
}

}  // namespace
}  // namespace alfred::vis
