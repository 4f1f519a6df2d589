#pragma once
// alfred-gpsd's data (alfred data type 2, version 1) and everything of the
// program that does not need libgps: the record, the static location, the
// gpsd source spec, the reading of gpsd's JSON lines and the client's output,
// all as Debian's alfred-gpsd 2023.0 has them.
//
// gpsd v1, as one record's data:
//   tpv_len u32 (big endian)   length of tpv including its terminating NUL
//   tpv                        a gpsd TPV report (one line of JSON) and a NUL
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vis/unix_client.hpp"

namespace alfred::gpsd {

constexpr std::uint8_t kGpsdType = 2;
constexpr std::uint8_t kGpsdVersion = 1;
// What the server publishes before it has a report.
constexpr std::string_view kInitTpv = R"({"class":"TPV","mode":0})";
// Publishing periods: with gpsd, and with a static location.
constexpr unsigned kGpsdIntervalSeconds = 2;
constexpr unsigned kStaticIntervalSeconds = 300;
// The longest report line upstream reads (its 4 KiB buffer less the NUL);
// a longer one closes the connection to gpsd.
constexpr std::size_t kMaxLine = 4095;
// The longest report a record can carry in one push packet (upstream's
// limit, its buffer, is a few bytes larger; its lines never come close).
constexpr std::size_t kMaxTpv = 65535 - 8 - 8 - 10 - 4 - 1;

// The record's data for a report; the report ends at its first NUL, if any,
// and is cut to kMaxTpv bytes.
std::vector<std::uint8_t> encode(std::string_view tpv);

struct Location {
  float lat = 0, lon = 0, alt = 0;
};

// -l's argument, "lat,lon,alt" read as upstream does (scanf's %f). On error
// the message upstream prints first ("Unable to parse location", "Invalid
// latitude", ...); nullopt means success.
std::optional<std::string> parse_location(const char* arg, Location& out);

// The report published for a static location; `time` is ISO 8601 (libgps'
// timespec_to_iso8601 of now).
std::string static_tpv(const Location& loc, const std::string& time);

// -g's argument: server[:port[:device]], "[v6addr]" allowed, or a device path
// alone; upstream's copy of gpsd's source spec parser.
struct SourceSpec {
  std::string server = "localhost";
  std::string port = "2947";
  std::optional<std::string> device;
  bool operator==(const SourceSpec&) const = default;
};
SourceSpec parse_source_spec(const char* arg);

// True for a line gpsd sends as a TPV report (it starts with {"class":"TPV").
bool is_tpv(std::string_view line);

// Splits what gpsd sends into lines as upstream does: '\r' is dropped
// wherever it is, '\n' ends a line, a line ends at its first NUL. A line
// longer than kMaxLine fails the reader (upstream closes the connection);
// feed() then returns false and takes nothing more until reset().
class LineReader {
 public:
  bool feed(std::span<const std::uint8_t> bytes, const std::function<void(std::string_view)>& on_line);
  bool failed() const { return failed_; }
  void reset();

 private:
  std::string line_;
  bool failed_ = false;
};

// Prints an answer of type-2 records as upstream's client does.
class Printer {
 public:
  Printer(std::FILE* out) : out_(out) {}
  void begin();
  // false: the answer ends here (a record shorter than its length field).
  bool record(const tools::FirstRecord& r);
  void end();

 private:
  std::FILE* out_;
  bool first_ = true;
};

// Requests type 2 from the daemon and prints it; the exit code of alfred-gpsd.
int run_client(const std::string& unix_path);

}  // namespace alfred::gpsd
