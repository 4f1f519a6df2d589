#pragma once
// batadv-vis' data: the vis v1 record (alfred data type 1, version 1) and the
// three ways the client prints it (dot, json, jsondoc), byte for byte as
// Debian's batadv-vis 2023.0 does.
//
// vis v1, as one record's data:
//   mac[6]        unused (upstream's server leaves it zero)
//   iface_n u8    interfaces, the first one is the node's "primary"
//   entries_n u8
//   iface_n x mac[6]
//   entries_n x { mac[6], ifindex u8 (index into the interfaces, 255 = a
//                 client from the translation table), qual u8 (TQ, 0 for TT) }
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "vis/unix_client.hpp"
#include "wire/mac.hpp"

namespace alfred::vis {

constexpr std::uint8_t kVisType = 1;
constexpr std::uint8_t kVisVersion = 1;
constexpr std::uint8_t kTtIfindex = 255;
constexpr std::size_t kVisHeaderSize = 8;
constexpr std::size_t kIfaceSize = 6;
constexpr std::size_t kEntrySize = 8;
constexpr std::size_t kMaxIfaces = 254;   // what upstream's server puts in at most
constexpr std::size_t kMaxEntries = 255;

struct VisEntry {
  Mac mac{};
  std::uint8_t ifindex = 0;
  std::uint8_t qual = 0;
  bool operator==(const VisEntry&) const = default;
};

struct VisData {
  Mac mac{};
  std::vector<Mac> ifaces;
  std::vector<VisEntry> entries;
  bool operator==(const VisData&) const = default;
};

// The record's data. Interfaces beyond kMaxIfaces and entries beyond
// kMaxEntries are left out.
std::vector<std::uint8_t> encode(const VisData& vis);

enum class Format { Dot, Json, JsonDoc };

// Prints an answer of type-1 records as upstream's client does: begin(), one
// record() per push packet of the answer, end() unless record() said stop.
// `version` is the "source_version" of jsondoc.
class Printer {
 public:
  Printer(Format format, std::FILE* out, std::FILE* err, std::string version);
  void begin();
  // false: the answer ends here without end() (upstream returns at once when
  // a record is shorter than the vis header).
  bool record(const tools::FirstRecord& r);
  void end();

 private:
  void interfaces(std::uint8_t n, const std::uint8_t* ifaces);
  void entries(std::uint8_t n, const std::uint8_t* entries, std::uint8_t iface_n,
               const std::uint8_t* ifaces);
  Format format_;
  std::FILE* out_;
  std::FILE* err_;
  std::string version_;
  bool first_interface_ = true;
};

// Requests type 1 from the daemon and prints it; the exit code of batadv-vis.
int run_client(Format format, const std::string& unix_path, const std::string& version);

}  // namespace alfred::vis
