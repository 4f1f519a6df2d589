// batadv-vis: prints the vis data the alfred daemon holds (client mode, the
// default) or publishes this node's view of batman-adv (-s). Options, usage
// text, messages and exit codes are those of Debian's batadv-vis 2023.0.
#include <getopt.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "vis/vis_data.hpp"
#include "vis/vis_server.hpp"

#ifndef ALFRED_VERSION
#define ALFRED_VERSION "2026.1-tcp"
#endif

namespace {

void usage() {
  std::printf("Usage: batadv-vis [options]\n");
  std::printf("  -i, --interface             specify the batman-adv interface configured on the system (default: bat0)\n");
  std::printf("  -s, --server                start up in server mode, which regularly updates vis data from batman-adv\n");
  std::printf("  -f, --format <format>       specify the output format for client mode (either \"json\", \"jsondoc\" or \"dot\")\n");
  std::printf("  -u, --unix-path <path>      path to unix socket used for alfred server communication (default: \"/var/run/alfred.sock\")\n");
  std::printf("  -v, --version               print the version\n");
  std::printf("  -h, --help                  this help\n");
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  using alfred::vis::Format;
  bool server = false;
  std::string interface = "bat0";
  std::string unix_path = "/var/run/alfred.sock";
  Format format = Format::Dot;

  static const option long_options[] = {
      {"server", no_argument, nullptr, 's'},
      {"interface", required_argument, nullptr, 'i'},
      {"format", required_argument, nullptr, 'f'},
      {"unix-path", required_argument, nullptr, 'u'},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'v'},
      {nullptr, 0, nullptr, 0},
  };
  int opt;
  int index;
  while ((opt = getopt_long(argc, argv, "shf:i:vu:", long_options, &index)) != -1) {
    switch (opt) {
      case 's':
        server = true;
        break;
      case 'f':
        // Prefixes, as upstream compares them: "dotty" is dot.
        if (std::strncmp(optarg, "dot", 3) == 0)
          format = Format::Dot;
        else if (std::strncmp(optarg, "jsondoc", 7) == 0)
          format = Format::JsonDoc;
        else if (std::strncmp(optarg, "json", 4) == 0)
          format = Format::Json;
        else {
          usage();
          return 1;
        }
        break;
      case 'i':
        interface = optarg;
        break;
      case 'u':
        unix_path = optarg;
        break;
      case 'v':
        std::printf("%s %s\n", argv[0], ALFRED_VERSION);
        std::printf("VIS alfred client\n");
        return 1;
      case 'h':
      default:
        usage();
        return 1;
    }
  }
  if (std::signal(SIGPIPE, SIG_IGN) == SIG_ERR) std::perror("could not register SIGPIPE handler");

  if (server) {
    alfred::vis::NetlinkMeshView view;
    alfred::vis::run_server(view, interface, unix_path);
  }
  return alfred::vis::run_client(format, unix_path, ALFRED_VERSION);
}
