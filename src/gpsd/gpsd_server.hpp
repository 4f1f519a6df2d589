#pragma once
// alfred-gpsd -s: publishes this node's position as a type-2 record, every
// 2 s from gpsd (-g, default localhost:2947) or every 300 s from a static
// location (-l), as upstream does. The connection to gpsd goes through
// libgps (gps_open, gps_stream with WATCH_ENABLE | WATCH_JSON, gps_close);
// its JSON lines are read from the socket as upstream reads them, and the
// newest TPV report is what the next publication carries (before the first:
// {"class":"TPV","mode":0}). A lost or failed connection is opened again
// after the next publication.
#include <string>

#include "gpsd/gpsd_data.hpp"

namespace alfred::gpsd {

struct ServerOptions {
  std::string unix_path;
  bool static_location = false;
  Location location;
  SourceSpec source;
};

[[noreturn]] void run_server(const ServerOptions& options);

}  // namespace alfred::gpsd
