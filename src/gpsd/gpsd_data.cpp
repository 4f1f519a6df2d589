#include "gpsd/gpsd_data.hpp"

#include <cstring>

#include "vis/unix_client.hpp"

namespace alfred::gpsd {

std::vector<std::uint8_t> encode(std::string_view tpv) {
  tpv = tpv.substr(0, std::min(tpv.find('\0'), kMaxTpv));
  const std::uint32_t len = static_cast<std::uint32_t>(tpv.size() + 1);
  // Sized once and filled in place (gcc 12 warns wrongly about inserting
  // into a vector that was just built from an initializer list).
  std::vector<std::uint8_t> out(4 + tpv.size() + 1, 0);
  out[0] = static_cast<std::uint8_t>(len >> 24);
  out[1] = static_cast<std::uint8_t>(len >> 16);
  out[2] = static_cast<std::uint8_t>(len >> 8);
  out[3] = static_cast<std::uint8_t>(len);
  if (!tpv.empty()) std::memcpy(out.data() + 4, tpv.data(), tpv.size());
  return out;
}

std::optional<std::string> parse_location(const char* arg, Location& out) {
  float lat = 0, lon = 0, alt = 0;
  if (std::sscanf(arg, "%f,%f,%f", &lat, &lon, &alt) != 3) return "Unable to parse location";
  if (lat < -90 || lat > 90) return "Invalid latitude";
  if (lon < -180 || lon > 180) return "Invalid longitude";
  // No support for aircraft or submarines, says upstream.
  if (alt < -1000 || alt > 9000) return "Invalid altitude";
  out = {lat, lon, alt};
  return std::nullopt;
}

std::string static_tpv(const Location& loc, const std::string& time) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"class\":\"TPV\",\"device\":\"command line\",\"time\":\"%s\","
                "\"lat\":%f,\"lon\":%f,\"alt\":%f,\"mode\":3}",
                time.c_str(), static_cast<double>(loc.lat), static_cast<double>(loc.lon),
                static_cast<double>(loc.alt));
  return buf;
}

SourceSpec parse_source_spec(const char* arg) {
  SourceSpec s;
  if (arg == nullptr) return s;
  const std::string spec = arg;
  // Where to look for the port's colon: past a bracketed IPv6 address.
  std::size_t from = 0;
  if (!spec.empty() && spec[0] == '[') {
    const std::size_t rbrk = spec.find(']');
    if (rbrk != std::string::npos) from = rbrk;
  }
  std::string server;
  bool server_set = false;
  const std::size_t colon1 = spec.find(':', from);
  if (colon1 != std::string::npos) {
    if (colon1 != 0) {
      server = spec.substr(0, colon1);
      server_set = true;
    }
    std::string rest = spec.substr(colon1 + 1);
    const std::size_t colon2 = rest.find(':');
    if (colon2 != std::string::npos) {
      s.device = rest.substr(colon2 + 1);
      rest.resize(colon2);
    }
    s.port = rest;
  } else if (spec.find('/') != std::string::npos) {
    s.device = spec;
  } else {
    server = spec;
    server_set = true;
  }
  if (server_set) s.server = server;
  if (!s.server.empty() && s.server[0] == '[') {
    s.server.erase(0, 1);
    const std::size_t rbrk = s.server.find(']');
    if (rbrk != std::string::npos) s.server.resize(rbrk);
  }
  return s;
}

bool is_tpv(std::string_view line) { return line.starts_with(R"({"class":"TPV")"); }

bool LineReader::feed(std::span<const std::uint8_t> bytes,
                      const std::function<void(std::string_view)>& on_line) {
  if (failed_) return false;
  for (std::uint8_t c : bytes) {
    if (c == '\r') continue;
    if (c == '\n') {
      std::string_view line(line_);
      on_line(line.substr(0, line.find('\0')));
      line_.clear();
      continue;
    }
    if (line_.size() == kMaxLine) {
      failed_ = true;
      line_.clear();
      return false;
    }
    line_.push_back(static_cast<char>(c));
  }
  return true;
}

void LineReader::reset() {
  line_.clear();
  failed_ = false;
}

void Printer::begin() { std::fputs("[\n", out_); }

void Printer::end() { std::fputs("\n]\n", out_); }

bool Printer::record(const tools::FirstRecord& r) {
  constexpr std::size_t kHeader = 4;
  if (r.length < kHeader) return false;
  const std::uint64_t tpv_len = static_cast<std::uint64_t>(r.data[0]) << 24 |
                                static_cast<std::uint64_t>(r.data[1]) << 16 |
                                static_cast<std::uint64_t>(r.data[2]) << 8 | r.data[3];
  if (r.length != kHeader + tpv_len) return true;  // bogus: skipped
  if (first_)
    first_ = false;
  else
    std::fputs(",\n", out_);
  std::fprintf(out_, "  { \"source\" : \"%s\", \"tpv\" : ", to_string(r.source).c_str());
  // The report as a C string, as upstream prints it: up to its NUL wherever
  // that is (a record without one runs into what the buffer holds after it).
  const std::uint8_t* tpv = r.data + kHeader;
  const std::size_t room = r.avail - kHeader;
  const void* nul = std::memchr(tpv, 0, room);
  const std::size_t n = nul ? static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - tpv) : room;
  std::fwrite(tpv, 1, n, out_);
  std::fputs(" }", out_);
  return true;
}

int run_client(const std::string& unix_path) {
  tools::Connection c;
  if (!c.open(unix_path)) return -1;
  if (!c.write_all(tools::request_packet(kGpsdType))) return -1;
  Printer p(stdout);
  tools::AnswerReader reader([&c](std::uint8_t* b, std::size_t n) { return c.read_full(b, n); });
  p.begin();
  while (auto r = reader.next()) {
    if (r->type != kGpsdType || r->version != kGpsdVersion) break;
    if (!p.record(*r)) break;
  }
  p.end();
  return 0;
}

}  // namespace alfred::gpsd
