#include "vis/vis_data.hpp"

#include <cstring>

namespace alfred::vis {
namespace {

std::string mac_at(const std::uint8_t* p) {
  Mac m;
  std::memcpy(m.data(), p, m.size());
  return to_string(m);
}

// Upstream divides in double by the quality taken as float.
double metric(std::uint8_t qual) { return 255.0 / static_cast<float>(qual); }

}  // namespace

std::vector<std::uint8_t> encode(const VisData& vis) {
  const std::size_t ni = std::min(vis.ifaces.size(), kMaxIfaces);
  const std::size_t ne = std::min(vis.entries.size(), kMaxEntries);
  std::vector<std::uint8_t> out(vis.mac.begin(), vis.mac.end());
  out.reserve(kVisHeaderSize + ni * kIfaceSize + ne * kEntrySize);
  out.push_back(static_cast<std::uint8_t>(ni));
  out.push_back(static_cast<std::uint8_t>(ne));
  for (std::size_t i = 0; i < ni; ++i) out.insert(out.end(), vis.ifaces[i].begin(), vis.ifaces[i].end());
  for (std::size_t i = 0; i < ne; ++i) {
    const VisEntry& e = vis.entries[i];
    out.insert(out.end(), e.mac.begin(), e.mac.end());
    out.push_back(e.ifindex);
    out.push_back(e.qual);
  }
  return out;
}

Printer::Printer(Format format, std::FILE* out, std::FILE* err, std::string version)
    : format_(format), out_(out), err_(err), version_(std::move(version)) {}

void Printer::begin() {
  switch (format_) {
    case Format::Dot:
      std::fputs("digraph {\n", out_);
      break;
    case Format::Json:
      break;
    case Format::JsonDoc:
      std::fputs("{\n", out_);
      std::fprintf(out_, "  \"source_version\" : \"%s\",\n", version_.c_str());
      std::fputs("  \"algorithm\" : 4,\n", out_);
      std::fputs("  \"vis\" : [\n", out_);
      break;
  }
}

void Printer::end() {
  switch (format_) {
    case Format::Dot:
      std::fputs("}\n", out_);
      break;
    case Format::Json:
      break;
    case Format::JsonDoc:
      std::fputs("\n  ]\n", out_);
      std::fputs("}\n", out_);
      break;
  }
}

bool Printer::record(const tools::FirstRecord& r) {
  if (r.length < kVisHeaderSize) return false;
  const std::uint8_t* v = r.data;
  const std::uint8_t iface_n = v[6];
  const std::uint8_t entries_n = v[7];
  // A record whose size does not match its counts is skipped, as is one
  // without interfaces.
  if (r.length != kVisHeaderSize + iface_n * kIfaceSize + entries_n * kEntrySize) return true;
  if (iface_n == 0) return true;
  const std::uint8_t* ifaces = v + kVisHeaderSize;
  interfaces(iface_n, ifaces);
  if (entries_n == 0) return true;
  entries(entries_n, ifaces + iface_n * kIfaceSize, iface_n, ifaces);
  return true;
}

void Printer::interfaces(std::uint8_t n, const std::uint8_t* ifaces) {
  const std::string primary = mac_at(ifaces);
  switch (format_) {
    case Format::Dot:
      std::fprintf(out_, "\tsubgraph \"cluster_%s\" {\n", primary.c_str());
      for (unsigned i = 0; i < n; ++i)
        std::fprintf(out_, "\t\t\"%s\"%s\n", mac_at(ifaces + i * kIfaceSize).c_str(),
                     i ? " [peripheries=2]" : "");
      std::fputs("\t}\n", out_);
      break;
    case Format::Json:
      std::fprintf(out_, "{ \"primary\" : \"%s\" }\n", primary.c_str());
      for (unsigned i = 1; i < n; ++i) {
        std::fprintf(out_, "{ \"secondary\" : \"%s\"", mac_at(ifaces + i * kIfaceSize).c_str());
        std::fprintf(out_, ", \"of\" : \"%s\" }\n", primary.c_str());
      }
      break;
    case Format::JsonDoc:
      if (first_interface_)
        first_interface_ = false;
      else
        std::fputs(",\n", out_);
      std::fprintf(out_, "    { \"primary\" : \"%s\",\n", primary.c_str());
      if (n > 1) {
        std::fputs("      \"secondary\" : [ ", out_);
        for (unsigned i = 1; i < n; ++i) {
          std::fprintf(out_, "\"%s\"", mac_at(ifaces + i * kIfaceSize).c_str());
          if (i < n - 1u) std::fputs(",", out_);
        }
        std::fputs("\n       ],\n", out_);
      }
      break;
  }
}

void Printer::entries(std::uint8_t n, const std::uint8_t* entries, std::uint8_t iface_n,
                      const std::uint8_t* ifaces) {
  auto entry = [&](unsigned i) { return entries + i * kEntrySize; };
  // A neighbour entry that can be printed; complains like upstream otherwise.
  auto usable = [&](const std::uint8_t* e) {
    if (e[6] >= iface_n) {
      std::fputs("ERROR: bad ifindex ...\n", err_);
      return false;
    }
    if (e[7] == 0) {
      std::fputs("ERROR: quality = 0?\n", err_);
      return false;
    }
    return true;
  };
  const std::string primary = mac_at(ifaces);
  switch (format_) {
    case Format::Dot:
    case Format::Json:
      for (unsigned i = 0; i < n; ++i) {
        const std::uint8_t* e = entry(i);
        const bool dot = format_ == Format::Dot;
        if (e[6] == kTtIfindex) {
          if (dot) {
            std::fprintf(out_, "\t\"%s\" ", primary.c_str());
            std::fprintf(out_, "-> \"%s\" [label=\"TT\"]\n", mac_at(e).c_str());
          } else {
            std::fprintf(out_, "{ \"router\" : \"%s\"", primary.c_str());
            std::fprintf(out_, ", \"gateway\" : \"%s\", \"label\" : \"TT\" }\n", mac_at(e).c_str());
          }
          continue;
        }
        if (!usable(e)) continue;
        const std::string router = mac_at(ifaces + e[6] * kIfaceSize);
        if (dot) {
          std::fprintf(out_, "\t\"%s\" ", router.c_str());
          std::fprintf(out_, "-> \"%s\" [label=\"%3.3f\"]\n", mac_at(e).c_str(), metric(e[7]));
        } else {
          std::fprintf(out_, "{ \"router\" : \"%s\"", router.c_str());
          std::fprintf(out_, ", \"neighbor\" : \"%s\", \"label\" : \"%3.3f\" }\n", mac_at(e).c_str(),
                       metric(e[7]));
        }
      }
      break;
    case Format::JsonDoc: {
      std::fputs("      \"neighbors\" : [\n", out_);
      bool first = true;
      for (unsigned i = 0; i < n; ++i) {
        const std::uint8_t* e = entry(i);
        if (e[6] == kTtIfindex || !usable(e)) continue;
        if (first)
          first = false;
        else
          std::fputs(",\n", out_);
        std::fprintf(out_, "         { \"router\" : \"%s\",\n",
                     mac_at(ifaces + e[6] * kIfaceSize).c_str());
        std::fprintf(out_, "           \"neighbor\" : \"%s\",\n", mac_at(e).c_str());
        std::fprintf(out_, "           \"metric\" : \"%3.3f\" }", metric(e[7]));
      }
      std::fputs("\n      ],\n", out_);
      std::fputs("      \"clients\" : [\n", out_);
      first = true;
      for (unsigned i = 0; i < n; ++i) {
        const std::uint8_t* e = entry(i);
        if (e[6] != kTtIfindex) continue;
        if (first)
          first = false;
        else
          std::fputs(",\n", out_);
        std::fprintf(out_, "        \"%s\"", mac_at(e).c_str());
      }
      std::fputs("\n      ]\n", out_);
      std::fputs("    }", out_);
      break;
    }
  }
}

int run_client(Format format, const std::string& unix_path, const std::string& version) {
  tools::Connection c;
  if (!c.open(unix_path)) return -1;
  if (!c.write_all(tools::request_packet(kVisType))) return -1;
  Printer p(format, stdout, stderr, version);
  tools::AnswerReader reader([&c](std::uint8_t* b, std::size_t n) { return c.read_full(b, n); });
  p.begin();
  while (auto r = reader.next()) {
    // Anything but a vis v1 record ends the answer.
    if (r->type != kVisType || r->version != kVisVersion) break;
    if (!p.record(*r)) return 0;
  }
  p.end();
  return 0;
}

}  // namespace alfred::vis
