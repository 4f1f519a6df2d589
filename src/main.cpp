// alfred: daemon and client in one binary, as upstream.
#include <csignal>
#include <cstdio>

#include "cli/client.hpp"
#include "cli/options.hpp"
#include "net/daemon.hpp"
#include "sys/privileges.hpp"

int main(int argc, char** argv) {
  if (!alfred::sys::reduce_capabilities()) return 1;
  int exit_code = 0;
  auto options = alfred::cli::parse_options(argc, argv, exit_code);
  if (!options) return exit_code;
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGCHLD, SIG_IGN);
  if (options->client != alfred::cli::ClientMode::None) return alfred::cli::run_client(*options);

  asio::io_context io(1);
  alfred::net::Daemon daemon(io, *options);
  if (int rc = daemon.start(); rc != 0) return rc;
  io.run();
  return 0;
}
