#pragma once
// Command line of the alfred binary, daemon and client in one, with
// upstream's options, defaults, messages and exit codes.
#include <cstdint>
#include <optional>
#include <string>

#include "wire/packet.hpp"

namespace alfred::cli {

enum class ClientMode {
  None,  // run the daemon
  Request,
  SetData,
  ModeSwitch,
  ChangeInterface,
  ChangeBatIface,
  ServerStatus,
  EventMonitor,
};

struct Options {
  ClientMode client = ClientMode::None;
  int client_arg = 0;      // data type for -r / -s
  int client_version = 0;  // -V
  wire::Mode mode = wire::Mode::Secondary;
  std::optional<std::string> net_iface;  // -i, or -I for the client
  std::string mesh_iface = "bat0";
  std::string unix_path = "/var/run/alfred.sock";
  std::optional<std::string> update_command;
  double sync_period = 10.0;
  bool verbose = false;
  bool force = false;
  bool tcp = false;
  bool ipv4 = false;
  std::uint32_t ipv4_group = 0;  // network byte order, as given to -4
  // Authenticated mesh (issue 11): long options only, upstream's letters stay free.
  std::optional<std::string> keyfile;  // --keyfile
  bool auth_transition = false;        // --auth-mode transition (default: enforce)
  bool auth_mode_given = false;
};

// Parses argv. On nullopt the process exits with `exit_code` (what upstream
// does after -h, -v or a bad argument); messages are already printed.
std::optional<Options> parse_options(int argc, char** argv, int& exit_code);

void print_usage();

}  // namespace alfred::cli
