#include "net/log.hpp"

#include <cstdio>
#include <ctime>

namespace alfred::net {
namespace {
bool g_verbose = false;

void emit(std::string_view message) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  std::fprintf(stderr, "[%lld.%03ld] %.*s\n", static_cast<long long>(ts.tv_sec),
               ts.tv_nsec / 1000000, static_cast<int>(message.size()), message.data());
}
}  // namespace

void set_verbose(bool on) { g_verbose = on; }
bool verbose() { return g_verbose; }
void log_error(std::string_view message) { emit(message); }
void log_verbose(std::string_view message) {
  if (g_verbose) emit(message);
}

}  // namespace alfred::net
