// alfred-gpsd: prints the positions the alfred daemon holds (client mode, the
// default) or publishes this node's position (-s) from gpsd or a static
// location. Options, usage text, messages and exit codes are those of
// Debian's alfred-gpsd 2023.0.
#include <getopt.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gpsd/gpsd_data.hpp"
#include "gpsd/gpsd_server.hpp"

#ifndef ALFRED_VERSION
#define ALFRED_VERSION "2026.1-tcp"
#endif

namespace {

void usage() {
  std::printf("Usage: alfred-gpsd [options]\n");
  std::printf("  -s, --server                start up in server mode, which regularly updates gpsd data from batman-adv\n");
  std::printf("  -l <lat>,<lon>,<alt>        Static location\n");
  std::printf("  -g server[:port[:device]]   GPSD source\n");
  std::printf("  -v, --version               print the version\n");
  std::printf("  -h, --help                  this help\n");
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace alfred::gpsd;
  bool server = false;
  ServerOptions o;
  o.unix_path = "/var/run/alfred.sock";

  static const option long_options[] = {
      {"server", no_argument, nullptr, 's'},
      {"location", required_argument, nullptr, 'l'},
      {"gpsd", required_argument, nullptr, 'g'},
      {"unix-path", required_argument, nullptr, 'u'},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'v'},
      {nullptr, 0, nullptr, 0},
  };
  int opt;
  int index;
  while ((opt = getopt_long(argc, argv, "shl:g:vu:", long_options, &index)) != -1) {
    switch (opt) {
      case 's':
        server = true;
        break;
      case 'l':
        o.static_location = true;
        if (auto error = parse_location(optarg, o.location)) {
          std::printf("%s\n", error->c_str());
          usage();
          return EXIT_FAILURE;
        }
        break;
      case 'g':
        o.source = parse_source_spec(optarg);
        break;
      case 'u':
        o.unix_path = optarg;
        break;
      case 'v':
        std::printf("%s %s\n", argv[0], ALFRED_VERSION);
        std::printf("GPSD alfred client\n");
        return EXIT_FAILURE;
      case 'h':
      default:
        usage();
        return EXIT_FAILURE;
    }
  }
  if (std::signal(SIGPIPE, SIG_IGN) == SIG_ERR) std::perror("could not register SIGPIPE handler");

  if (server) run_server(o);
  return run_client(o.unix_path);
}
