#pragma once
// Client modes of the alfred binary: talk to a running daemon over its unix
// socket and print exactly what upstream's client prints.
#include "cli/options.hpp"

namespace alfred::cli {

// Returns the process exit code.
int run_client(const Options& options);

}  // namespace alfred::cli
