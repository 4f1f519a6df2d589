// alfred-gpsd against arbitrary input: answers from the daemon (positions
// come from any node of the mesh) and what gpsd sends on its socket.
//
// Input layout:
//   byte 0 bit 0   0: the rest is an answer on the unix socket,
//                  1: the rest is gpsd's output, cut into chunks
//   byte 0 bits 1-7, byte 1  (gpsd only) chunk sizes: chunk i is
//                  1 + (seed * (i + 1)) % 4096 bytes, seed = bytes 0-1
// Checked, answers: no memory error; the output is "[\n" ... "\n]\n" with one
// `{ "source" : ...` per record the plainly written model accepts.
// Checked, gpsd: the same lines whatever the chunking (fed whole, fed in
// chunks), each at most kMaxLine bytes without '\r', '\n' or NUL; the reader
// fails exactly when a model finds a line longer than kMaxLine, and then
// after the same lines; what the server would publish for each TPV line is a
// well-formed record (length field = report + NUL) that fits a packet.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "gpsd/gpsd_data.hpp"
#include "wire/packet.hpp"

using namespace alfred;

namespace {

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

void answer(const std::uint8_t* data, std::size_t size) {
  // The model: upstream's loop.
  std::size_t records = 0;
  {
    std::size_t pos = 0;
    for (;;) {
      if (size - pos < 4 || data[pos] != 0) break;
      const std::size_t l = static_cast<std::size_t>(data[pos + 2]) << 8 | data[pos + 3];
      if (l > 65532 || l < 14 || size - pos - 4 < l) break;
      const std::uint8_t* rec = data + pos + 8;
      pos += 4 + l;
      if (rec[6] != gpsd::kGpsdType || rec[7] != gpsd::kGpsdVersion) break;
      // The record header lies inside the packet (l >= 14).
      const std::size_t len = static_cast<std::size_t>(rec[8]) << 8 | rec[9];
      if (len < 4) break;
      ++records;
    }
  }
  char* ob = nullptr;
  std::size_t ol = 0;
  std::FILE* out = open_memstream(&ob, &ol);
  FUZZ_CHECK(out);
  std::size_t pos = 0;
  tools::AnswerReader reader([&](std::uint8_t* b, std::size_t n) {
    const std::size_t k = std::min(n, size - pos);
    if (k) std::memcpy(b, data + pos, k);
    pos += k;
    return k;
  });
  gpsd::Printer p(out);
  p.begin();
  std::size_t seen = 0, printed = 0;
  while (auto r = reader.next()) {
    if (r->type != gpsd::kGpsdType || r->version != gpsd::kGpsdVersion) break;
    if (r->length < 4) break;
    ++seen;
    const std::uint64_t tl = static_cast<std::uint64_t>(r->data[0]) << 24 | r->data[1] << 16 |
                             r->data[2] << 8 | r->data[3];
    if (r->length == 4 + tl) ++printed;
    FUZZ_CHECK(p.record(*r));
  }
  p.end();
  std::fclose(out);
  const std::string s(ob, ol);
  std::free(ob);
  FUZZ_CHECK(seen == records);
  FUZZ_CHECK(s.rfind("[\n", 0) == 0);
  FUZZ_CHECK(s.size() >= 5 && s.compare(s.size() - 3, 3, "\n]\n") == 0);
  FUZZ_CHECK(count(s, "  { \"source\" : \"") >= printed);
}

void lines(unsigned seed, const std::uint8_t* data, std::size_t size) {
  // The model: upstream's byte loop.
  std::vector<std::string> want;
  bool want_fail = false;
  {
    std::string cur;
    for (std::size_t i = 0; i < size && !want_fail; ++i) {
      const char c = static_cast<char>(data[i]);
      if (c == '\r') continue;
      if (c == '\n') {
        want.push_back(cur.substr(0, cur.find('\0')));
        cur.clear();
      } else if (cur.size() == gpsd::kMaxLine) {
        want_fail = true;
      } else {
        cur.push_back(c);
      }
    }
  }
  auto run = [&](bool chunked) {
    gpsd::LineReader r;
    std::vector<std::string> got;
    bool ok = true;
    std::size_t pos = 0;
    for (unsigned i = 0; pos < size && ok; ++i) {
      const std::size_t n = chunked ? std::min<std::size_t>(size - pos, 1 + (seed * (i + 1)) % 4096)
                                    : size - pos;
      ok = r.feed(std::span(data + pos, n), [&](std::string_view l) {
        FUZZ_CHECK(l.size() <= gpsd::kMaxLine);
        FUZZ_CHECK(l.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos);
        got.emplace_back(l);
        if (gpsd::is_tpv(l)) {
          const auto rec = gpsd::encode(l);
          FUZZ_CHECK(rec.size() == 4 + l.size() + 1);
          FUZZ_CHECK(rec.size() <= wire::kMaxRecordData);
          const std::uint32_t len = static_cast<std::uint32_t>(rec[0]) << 24 | rec[1] << 16 |
                                    rec[2] << 8 | rec[3];
          FUZZ_CHECK(len == l.size() + 1);
          FUZZ_CHECK(rec.back() == 0);
        }
      });
      pos += n;
    }
    FUZZ_CHECK(ok == !r.failed());
    FUZZ_CHECK(r.failed() == want_fail);
    FUZZ_CHECK(got == want);
  };
  run(false);
  run(true);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  if ((data[0] & 1) == 0) {
    answer(data + 1, size - 1);
  } else if (size >= 2) {
    lines(static_cast<unsigned>(data[0]) << 8 | data[1], data + 2, size - 2);
  }
  return 0;
}
