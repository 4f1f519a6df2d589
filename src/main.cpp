// alfred: daemon and client in one binary, as upstream.
#include <sys/resource.h>

#include <algorithm>
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

  // Every client and peer connection is a descriptor; the soft limit of 1024
  // is too low for a daemon that must outlast floods of them.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, 65536);
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  asio::io_context io(1);
  alfred::net::Daemon daemon(io, *options);
  if (int rc = daemon.start(); rc != 0) return rc;
  io.run();
  return 0;
}
