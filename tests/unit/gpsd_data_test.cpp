// alfred-gpsd without libgps: the record, -l and -g parsing, the reading of
// gpsd's lines and the client's output (expected texts are what Debian's
// alfred-gpsd 2023.0 printed for the same answers).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "gpsd/gpsd_data.hpp"
#include "wire/packet.hpp"

namespace alfred::gpsd {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes push(std::uint8_t type, std::uint8_t version, const Bytes& data, const Mac& source) {
  Bytes out;
  wire::encode_push_header(out, 1, 0);
  wire::append_record(out, source, type, version, data);
  wire::finish_tlv(out, 0);
  return out;
}

Bytes tpv(const std::string& text, std::uint32_t len, bool nul = true) {
  Bytes b(4 + text.size() + (nul ? 1 : 0), 0);
  b[0] = static_cast<std::uint8_t>(len >> 24);
  b[1] = static_cast<std::uint8_t>(len >> 16);
  b[2] = static_cast<std::uint8_t>(len >> 8);
  b[3] = static_cast<std::uint8_t>(len);
  std::copy(text.begin(), text.end(), b.begin() + 4);
  return b;
}

std::string render(const Bytes& answer) {
  char* buf = nullptr;
  std::size_t len = 0;
  std::FILE* out = open_memstream(&buf, &len);
  std::size_t pos = 0;
  tools::AnswerReader reader([&](std::uint8_t* b, std::size_t n) {
    const std::size_t k = std::min(n, answer.size() - pos);
    if (k) std::memcpy(b, answer.data() + pos, k);
    pos += k;
    return k;
  });
  Printer p(out);
  p.begin();
  while (auto r = reader.next()) {
    if (r->type != kGpsdType || r->version != kGpsdVersion) break;
    if (!p.record(*r)) break;
  }
  p.end();
  std::fclose(out);
  std::string s(buf, len);
  std::free(buf);
  return s;
}

TEST(GpsdRecord, Encode) {
  EXPECT_EQ(encode("{}"), (Bytes{0, 0, 0, 3, '{', '}', 0}));
  EXPECT_EQ(encode(std::string_view("ab\0cd", 5)), (Bytes{0, 0, 0, 3, 'a', 'b', 0}));
  EXPECT_EQ(encode(""), (Bytes{0, 0, 0, 1, 0}));
  const Bytes init = encode(kInitTpv);
  EXPECT_EQ(init.size(), 4 + kInitTpv.size() + 1);
  const Bytes huge = encode(std::string(70000, 'x'));
  EXPECT_EQ(huge.size(), 4 + kMaxTpv + 1);
  EXPECT_LE(huge.size(), wire::kMaxRecordData);
}

TEST(GpsdPrint, Records) {
  const Mac a{2, 0, 0, 0, 0, 1}, b{2, 0, 0, 0, 0, 9}, c{2, 0, 0, 0, 0, 3};
  const std::string t1 = R"({"class":"TPV","mode":3,"lat":48.1})";
  Bytes ans = push(2, 1, tpv(t1, t1.size() + 1), a);
  Bytes bogus = push(2, 1, tpv("{\"x\":1}", 99), b);  // length field does not match: skipped
  Bytes last = push(2, 1, encode(kInitTpv), c);
  ans.insert(ans.end(), bogus.begin(), bogus.end());
  ans.insert(ans.end(), last.begin(), last.end());
  EXPECT_EQ(render(ans),
            "[\n"
            "  { \"source\" : \"02:00:00:00:00:01\", \"tpv\" : {\"class\":\"TPV\",\"mode\":3,\"lat\":48.1} },\n"
            "  { \"source\" : \"02:00:00:00:00:03\", \"tpv\" : {\"class\":\"TPV\",\"mode\":0} }\n"
            "]\n");
  EXPECT_EQ(render({}), "[\n\n]\n");
}

TEST(GpsdPrint, ShortRecordOrOtherTypeEnds) {
  const Mac a{2, 0, 0, 0, 0, 1};
  Bytes ans = push(2, 1, encode("{}"), a);
  Bytes shortrec = push(2, 1, Bytes{0, 0, 1}, a);
  Bytes more = push(2, 1, encode("{\"b\":2}"), a);
  Bytes x = ans;
  x.insert(x.end(), shortrec.begin(), shortrec.end());
  x.insert(x.end(), more.begin(), more.end());
  EXPECT_EQ(render(x), "[\n  { \"source\" : \"02:00:00:00:00:01\", \"tpv\" : {} }\n]\n");
  Bytes y = ans;
  Bytes vis = push(1, 1, encode("{}"), a);
  y.insert(y.end(), vis.begin(), vis.end());
  y.insert(y.end(), more.begin(), more.end());
  EXPECT_EQ(render(y), "[\n  { \"source\" : \"02:00:00:00:00:01\", \"tpv\" : {} }\n]\n");
}

TEST(GpsdPrint, ReportWithoutNulRunsIntoTheBuffer) {
  const Mac a{2, 0, 0, 0, 0, 1};
  // First a long report, then one of 2 bytes without its NUL: upstream's %s
  // goes on into what the first left in the buffer.
  Bytes ans = push(2, 1, encode("{\"long\":\"abcdef\"}"), a);
  Bytes cut = push(2, 1, tpv("XY", 2, false), a);
  ans.insert(ans.end(), cut.begin(), cut.end());
  EXPECT_EQ(render(ans),
            "[\n  { \"source\" : \"02:00:00:00:00:01\", \"tpv\" : {\"long\":\"abcdef\"} },\n"
            "  { \"source\" : \"02:00:00:00:00:01\", \"tpv\" : XYlong\":\"abcdef\"} }\n]\n");
}

TEST(GpsdLocation, Parse) {
  Location l;
  EXPECT_EQ(parse_location("48.1,11.5,500", l), std::nullopt);
  EXPECT_FLOAT_EQ(l.lat, 48.1f);
  EXPECT_FLOAT_EQ(l.lon, 11.5f);
  EXPECT_FLOAT_EQ(l.alt, 500.0f);
  EXPECT_EQ(parse_location("-90,-180,-1000", l), std::nullopt);
  EXPECT_EQ(parse_location("90,180,9000", l), std::nullopt);
  EXPECT_EQ(parse_location("1,2,3trailing", l), std::nullopt);  // scanf stops there too
  EXPECT_EQ(parse_location("abc", l), "Unable to parse location");
  EXPECT_EQ(parse_location("1,2", l), "Unable to parse location");
  EXPECT_EQ(parse_location("", l), "Unable to parse location");
  EXPECT_EQ(parse_location("90.01,0,0", l), "Invalid latitude");
  EXPECT_EQ(parse_location("0,-180.5,0", l), "Invalid longitude");
  EXPECT_EQ(parse_location("0,0,9000.5", l), "Invalid altitude");
  EXPECT_EQ(parse_location("0,0,-1001", l), "Invalid altitude");
}

TEST(GpsdLocation, StaticReport) {
  Location l;
  ASSERT_EQ(parse_location("48.1,11.5,500", l), std::nullopt);
  EXPECT_EQ(static_tpv(l, "2026-12-01T10:00:00.000Z"),
            R"({"class":"TPV","device":"command line","time":"2026-12-01T10:00:00.000Z",)"
            R"("lat":48.099998,"lon":11.500000,"alt":500.000000,"mode":3})");
}

TEST(GpsdSource, Spec) {
  auto spec = [](const char* s) { return parse_source_spec(s); };
  using S = SourceSpec;
  EXPECT_EQ(spec(nullptr), (S{"localhost", "2947", std::nullopt}));
  EXPECT_EQ(spec("gps.example"), (S{"gps.example", "2947", std::nullopt}));
  EXPECT_EQ(spec("gps.example:3000"), (S{"gps.example", "3000", std::nullopt}));
  EXPECT_EQ(spec("gps.example:3000:/dev/ttyUSB0"), (S{"gps.example", "3000", "/dev/ttyUSB0"}));
  EXPECT_EQ(spec(":3000"), (S{"localhost", "3000", std::nullopt}));
  EXPECT_EQ(spec("::/dev/gps"), (S{"localhost", "", "/dev/gps"}));
  EXPECT_EQ(spec("/dev/ttyACM0"), (S{"localhost", "2947", "/dev/ttyACM0"}));
  EXPECT_EQ(spec("[::1]"), (S{"::1", "2947", std::nullopt}));
  EXPECT_EQ(spec("[::1]:2948"), (S{"::1", "2948", std::nullopt}));
  EXPECT_EQ(spec("[fe80::1:2948"), (S{"fe80", "", "1:2948"}));
  EXPECT_EQ(spec("[fe80"), (S{"fe80", "2947", std::nullopt}));
  EXPECT_EQ(spec(""), (S{"", "2947", std::nullopt}));
}

TEST(GpsdLines, Splitting) {
  LineReader r;
  std::vector<std::string> lines;
  auto collect = [&](std::string_view l) { lines.emplace_back(l); };
  const std::string in = "{\"class\":\"VERSION\"}\r\n{\"class\":\"TPV\",\"mode\":3}\r\npart";
  EXPECT_TRUE(r.feed(std::span(reinterpret_cast<const std::uint8_t*>(in.data()), in.size()), collect));
  const std::string rest = "ial\r\n\n\rx\ry\n";
  EXPECT_TRUE(r.feed(std::span(reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size()), collect));
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"class\":\"VERSION\"}", "{\"class\":\"TPV\",\"mode\":3}",
                                             "partial", "", "xy"}));
  EXPECT_FALSE(is_tpv(lines[0]));
  EXPECT_TRUE(is_tpv(lines[1]));
  EXPECT_FALSE(is_tpv(" {\"class\":\"TPV\"}"));
  EXPECT_FALSE(is_tpv("{\"class\":\"TPVX\"}"));
  EXPECT_TRUE(is_tpv("{\"class\":\"TPV\"garbage"));  // upstream compares the prefix only
}

TEST(GpsdLines, NulEndsALine) {
  LineReader r;
  std::vector<std::string> lines;
  const Bytes in{'a', 'b', 0, 'c', '\n'};
  EXPECT_TRUE(r.feed(in, [&](std::string_view l) { lines.emplace_back(l); }));
  EXPECT_EQ(lines, std::vector<std::string>{"ab"});
}

TEST(GpsdLines, LongestLineAndOneByteMore) {
  std::vector<std::string> lines;
  auto collect = [&](std::string_view l) { lines.emplace_back(l); };
  LineReader r;
  std::string ok(kMaxLine, 'a');
  ok += "\r\r\n";
  EXPECT_TRUE(r.feed(std::span(reinterpret_cast<const std::uint8_t*>(ok.data()), ok.size()), collect));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].size(), kMaxLine);

  std::string bad = "short\n" + std::string(kMaxLine + 1, 'b') + "\nafter\n";
  EXPECT_FALSE(r.feed(std::span(reinterpret_cast<const std::uint8_t*>(bad.data()), bad.size()), collect));
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(lines.size(), 2u);  // "short", then nothing
  EXPECT_FALSE(r.feed(std::span(reinterpret_cast<const std::uint8_t*>(bad.data()), 6), collect));
  r.reset();
  EXPECT_TRUE(r.feed(std::span(reinterpret_cast<const std::uint8_t*>(bad.data()), 6), collect));
  EXPECT_EQ(lines.size(), 3u);
}

TEST(GpsdClient, NoDaemon) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_client("/nonexistent/alfred.sock"), -1);
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "can't connect to unix socket: No such file or directory\n");
}

}  // namespace
}  // namespace alfred::gpsd
