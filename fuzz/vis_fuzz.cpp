// batadv-vis' client against arbitrary answers from the daemon (vis records
// come from any node of the mesh).
//
// Input layout: the bytes the daemon writes on the unix socket, as they are.
// The answer goes through tools::AnswerReader and vis::Printer in all three
// formats, with a plainly written model of upstream's loop beside them.
// Checked: no memory error (ASan/UBSan); the model and the printer agree on
// where the answer ends and on how many interfaces, neighbours, clients and
// complaints each format prints (counted in its output); dot output opens and,
// unless a short record ended it, closes the graph; every record the model
// accepts re-encodes to its own bytes (when within the server's caps).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "vis/unix_client.hpp"
#include "vis/vis_data.hpp"

using namespace alfred;

namespace {

struct Counts {
  std::size_t primaries = 0, secondaries = 0, neighbours = 0, clients = 0, complaints = 0;
  bool closed = true;
};

// Upstream's loop, written out: packets read whole into a 64 KiB buffer.
Counts model(const std::uint8_t* data, std::size_t size) {
  Counts c;
  std::vector<std::uint8_t> buf(65536, 0);
  std::size_t pos = 0;
  for (;;) {
    if (size - pos < 4) break;
    std::memcpy(buf.data(), data + pos, 4);
    pos += 4;
    if (buf[0] != 0) break;
    const std::size_t l = static_cast<std::size_t>(buf[2]) << 8 | buf[3];
    if (l > 65532 || l < 14) break;
    if (size - pos < l) break;
    std::memcpy(buf.data() + 4, data + pos, l);
    pos += l;
    if (buf[14] != 1 || buf[15] != 1) break;
    const std::size_t len = static_cast<std::size_t>(buf[16]) << 8 | buf[17];
    const std::uint8_t* v = buf.data() + 18;
    if (len < 8) {
      c.closed = false;
      break;
    }
    const unsigned ni = v[6], ne = v[7];
    if (len != 8 + 6u * ni + 8u * ne || ni == 0) continue;
    c.primaries++;
    c.secondaries += ni - 1;
    const std::uint8_t* e = v + 8 + 6 * ni;
    for (unsigned i = 0; i < ne; ++i, e += 8) {
      if (e[6] == 255)
        c.clients++;
      else if (e[6] >= ni || e[7] == 0)
        c.complaints++;
      else
        c.neighbours++;
    }
    // Re-encoding what was read gives the same bytes.
    if (ni <= vis::kMaxIfaces) {
      vis::VisData d;
      std::memcpy(d.mac.data(), v, 6);
      for (unsigned i = 0; i < ni; ++i) {
        Mac m;
        std::memcpy(m.data(), v + 8 + 6 * i, 6);
        d.ifaces.push_back(m);
      }
      const std::uint8_t* x = v + 8 + 6 * ni;
      for (unsigned i = 0; i < ne; ++i, x += 8) {
        vis::VisEntry en;
        std::memcpy(en.mac.data(), x, 6);
        en.ifindex = x[6];
        en.qual = x[7];
        d.entries.push_back(en);
      }
      const auto bytes = vis::encode(d);
      FUZZ_CHECK(bytes.size() == len);
      FUZZ_CHECK(std::memcmp(bytes.data(), v, len) == 0);
    }
  }
  return c;
}

struct Rendered {
  std::string out, err;
  bool closed = true;
};

Rendered render(vis::Format f, const std::uint8_t* data, std::size_t size) {
  char* ob = nullptr;
  char* eb = nullptr;
  std::size_t ol = 0, el = 0;
  std::FILE* out = open_memstream(&ob, &ol);
  std::FILE* err = open_memstream(&eb, &el);
  FUZZ_CHECK(out && err);
  std::size_t pos = 0;
  tools::AnswerReader reader([&](std::uint8_t* b, std::size_t n) {
    const std::size_t k = std::min(n, size - pos);
    if (k) std::memcpy(b, data + pos, k);
    pos += k;
    return k;
  });
  vis::Printer p(f, out, err, "V");
  Rendered r;
  p.begin();
  while (auto rec = reader.next()) {
    FUZZ_CHECK(rec->avail >= 8u + 6 * 255 + 8 * 255);
    if (rec->type != vis::kVisType || rec->version != vis::kVisVersion) break;
    if (!p.record(*rec)) {
      r.closed = false;
      break;
    }
  }
  if (r.closed) p.end();
  std::fclose(out);
  std::fclose(err);
  r.out.assign(ob, ol);
  r.err.assign(eb, el);
  std::free(ob);
  std::free(eb);
  return r;
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Counts want = model(data, size);
  const std::size_t complaint_lines = want.complaints;

  const Rendered json = render(vis::Format::Json, data, size);
  FUZZ_CHECK(json.closed == want.closed);
  FUZZ_CHECK(count(json.out, "\"primary\"") == want.primaries);
  FUZZ_CHECK(count(json.out, "\"secondary\"") == want.secondaries);
  FUZZ_CHECK(count(json.out, "\"neighbor\"") == want.neighbours);
  FUZZ_CHECK(count(json.out, "\"gateway\"") == want.clients);
  FUZZ_CHECK(count(json.err, "\n") == complaint_lines);
  FUZZ_CHECK(count(json.out, "\n") ==
             want.primaries + want.secondaries + want.neighbours + want.clients);

  const Rendered dot = render(vis::Format::Dot, data, size);
  FUZZ_CHECK(dot.out.rfind("digraph {\n", 0) == 0);
  FUZZ_CHECK(dot.closed == want.closed);
  if (dot.closed) FUZZ_CHECK(dot.out.size() >= 12 && dot.out.compare(dot.out.size() - 2, 2, "}\n") == 0);
  FUZZ_CHECK(count(dot.out, "subgraph") == want.primaries);
  FUZZ_CHECK(count(dot.out, "[peripheries=2]") == want.secondaries);
  FUZZ_CHECK(count(dot.out, "[label=\"TT\"]") == want.clients);
  FUZZ_CHECK(count(dot.out, " -> ") == want.neighbours + want.clients);
  FUZZ_CHECK(dot.err == json.err);

  const Rendered doc = render(vis::Format::JsonDoc, data, size);
  FUZZ_CHECK(doc.closed == want.closed);
  FUZZ_CHECK(count(doc.out, "\"primary\"") == want.primaries);
  FUZZ_CHECK(count(doc.out, "\"neighbor\"") == want.neighbours);
  FUZZ_CHECK(doc.err == json.err);
  return 0;
}
