#include "cli/options.hpp"

#include <arpa/inet.h>
#include <getopt.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifndef ALFRED_VERSION
#define ALFRED_VERSION "2026.1-tcp"
#endif

namespace alfred::cli {

void print_usage() {
  std::printf(
      "Usage: alfred [options]\n"
      "client mode options:\n"
      "  -s, --set-data [data type]          sets new data to distribute from stdin\n"
      "                                      for the supplied data type (0-255)\n"
      "  -r, --request [data type]           collect data from the network and print on stdout\n"
      "  -d, --verbose                       Show extra information in the data output\n"
      "  -V, --req-version                   specify the data version set for -s\n"
      "  -M, --modeswitch primary            switch daemon to mode primary\n"
      "                   secondary          switch daemon to mode secondary\n"
      "  -I, --change-interface [interface]  change to the specified interface(s)\n"
      "  -B, --change-bat-iface [interface]  change to the specified batman-adv interface\n"
      "  -S, --server-status                 request server status info such as mode & "
      "interfaces\n"
      "  -E, --event-monitor                 monitor alfred data record update events\n"
      "\n"
      "server mode options:\n"
      "  -i, --interface                     specify the interface (or comma separated list of "
      "interfaces) to listen on\n"
      "  -f, --force                         start server even when batman-adv or interface(s) "
      "are not yet available.\n"
      "  -b                                  specify the batman-adv interface\n"
      "                                      configured on the system (default: bat0)\n"
      "                                      use 'none' to disable the batman-adv\n"
      "                                      based best server selection\n"
      "  -m, --primary                       start up the daemon in primary mode, which\n"
      "                                      accepts data from secondaries and syncs it with\n"
      "                                      other primaries\n"
      "  -p, --sync-period [period]          set synchronization period, in seconds\n"
      "                                      fractional seconds are supported (i.e. 0.2 = 5 Hz)\n"
      "  -4 [group-address]                  specify IPv4 multicast address and operate in IPv4 "
      "mode\n"
      "  -t, --tcp                           send large pushes, syncs and requests to other\n"
      "                                      servers over TCP (falls back to UDP)\n"
      "  --keyfile [path]                    authenticate every server-to-server datagram with\n"
      "                                      the keys in this file (mode 600, one 32-byte key a\n"
      "                                      line, hex or base64; the first one seals, all open);\n"
      "                                      re-read on SIGHUP. Not with -t yet\n"
      "  --auth-mode [enforce|transition]    enforce: take authenticated datagrams only (default);\n"
      "                                      transition: send sealed and plain, take both\n"
      "  -u, --unix-path [path]              path to unix socket used for client-server\n"
      "                                      communication (default: \"/var/run/alfred.sock\")\n"
      "  -c, --update-command                command to call on data change\n"
      "  -v, --version                       print the version\n"
      "  -h, --help                          this help\n"
      "\n");
}

namespace {
// Long options without a short letter: values getopt_long never returns for one.
constexpr int kKeyfileOption = 1000;
constexpr int kAuthModeOption = 1001;
}  // namespace

std::optional<Options> parse_options(int argc, char** argv, int& exit_code) {
  static const option long_options[] = {
      {"set-data", required_argument, nullptr, 's'},
      {"request", required_argument, nullptr, 'r'},
      {"interface", required_argument, nullptr, 'i'},
      {"master", no_argument, nullptr, 'm'},
      {"primary", no_argument, nullptr, 'm'},
      {"help", no_argument, nullptr, 'h'},
      {"req-version", required_argument, nullptr, 'V'},
      {"modeswitch", required_argument, nullptr, 'M'},
      {"change-interface", required_argument, nullptr, 'I'},
      {"change-bat-iface", required_argument, nullptr, 'B'},
      {"server-status", no_argument, nullptr, 'S'},
      {"event-monitor", no_argument, nullptr, 'E'},
      {"unix-path", required_argument, nullptr, 'u'},
      {"update-command", required_argument, nullptr, 'c'},
      {"version", no_argument, nullptr, 'v'},
      {"verbose", no_argument, nullptr, 'd'},
      {"sync-period", required_argument, nullptr, 'p'},
      {"force", no_argument, nullptr, 'f'},
      {"tcp", no_argument, nullptr, 't'},
      {"keyfile", required_argument, nullptr, kKeyfileOption},
      {"auth-mode", required_argument, nullptr, kAuthModeOption},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  exit_code = 1;
  optind = 1;
  int opt, idx;
  while ((opt = getopt_long(argc, argv, "ms:r:hi:b:vV:M:I:B:SEu:dc:p:4:ft", long_options, &idx)) !=
         -1) {
    switch (opt) {
      case 'r':
      case 's': {
        o.client = opt == 'r' ? ClientMode::Request : ClientMode::SetData;
        int i = std::atoi(optarg);
        if (i < static_cast<int>(wire::kMinUserType) || i > 255) {
          std::fprintf(stderr, "bad data type argument\n");
          return std::nullopt;
        }
        o.client_arg = i;
        break;
      }
      case 'm':
        o.mode = wire::Mode::Primary;
        break;
      case 'i':
        o.net_iface = optarg;
        break;
      case 'b':
        o.mesh_iface = optarg;
        break;
      case 'V': {
        int i = std::atoi(optarg);
        if (i < 0 || i > 255) {
          std::fprintf(stderr, "bad data version argument\n");
          return std::nullopt;
        }
        o.client_version = i;
        break;
      }
      case 'M':
        if (!std::strcmp(optarg, "master") || !std::strcmp(optarg, "primary")) {
          o.mode = wire::Mode::Primary;
        } else if (!std::strcmp(optarg, "slave") || !std::strcmp(optarg, "secondary")) {
          o.mode = wire::Mode::Secondary;
        } else {
          std::fprintf(stderr, "bad modeswitch argument\n");
          return std::nullopt;
        }
        o.client = ClientMode::ModeSwitch;
        break;
      case 'I':
        o.client = ClientMode::ChangeInterface;
        o.net_iface = optarg;
        break;
      case 'B':
        o.client = ClientMode::ChangeBatIface;
        o.mesh_iface = optarg;
        break;
      case 'S':
        o.client = ClientMode::ServerStatus;
        break;
      case 'E':
        o.client = ClientMode::EventMonitor;
        break;
      case 'u':
        o.unix_path = optarg;
        break;
      case 'd':
        o.verbose = true;
        break;
      case 'c':
        o.update_command = optarg;
        break;
      case 'v':
        std::printf("%s %s\n", argv[0], ALFRED_VERSION);
        std::printf("A.L.F.R.E.D. - Almighty Lightweight Remote Fact Exchange Daemon\n");
        return std::nullopt;
      case 'p': {
        double p = std::strtod(optarg, nullptr);
        long long sec = static_cast<long long>(static_cast<int>(p));
        auto nsec = static_cast<unsigned>((p - static_cast<int>(p)) * 1e9);
        std::printf(" ** Setting sync interval to: %.9f seconds (%lld.%09u)\n", p, sec, nsec);
        if (!(p > 0.0) || p > 86400.0) {
          std::fprintf(stderr, "bad sync period argument\n");
          return std::nullopt;
        }
        o.sync_period = p;
        break;
      }
      case '4': {
        o.ipv4 = true;
        in_addr a{};
        inet_pton(AF_INET, optarg, &a);
        o.ipv4_group = a.s_addr;
        std::printf(" ** IPv4 Multicast Mode: %x\n", a.s_addr);
        break;
      }
      case 'f':
        o.force = true;
        break;
      case 't':
        o.tcp = true;
        break;
      case kKeyfileOption:
        o.keyfile = optarg;
        break;
      case kAuthModeOption:
        if (std::strcmp(optarg, "enforce") == 0) {
          o.auth_transition = false;
        } else if (std::strcmp(optarg, "transition") == 0) {
          o.auth_transition = true;
        } else {
          std::fprintf(stderr, "bad --auth-mode argument: enforce or transition\n");
          return std::nullopt;
        }
        o.auth_mode_given = true;
        break;
      case 'h':
      default:
        print_usage();
        return std::nullopt;
    }
  }
  if (o.auth_mode_given && !o.keyfile) {
    std::fprintf(stderr, "--auth-mode needs --keyfile\n");
    return std::nullopt;
  }
  if (o.keyfile && o.tcp) {
    // Sessions are not authenticated yet; plain TCP beside sealed datagrams
    // would be a way in for anyone on the link.
    std::fprintf(stderr, "--keyfile cannot be used with -t yet: TCP sessions are not authenticated\n");
    return std::nullopt;
  }
  exit_code = 0;
  return o;
}

}  // namespace alfred::cli
