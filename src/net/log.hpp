#pragma once
// Diagnostics go to stderr; verbose ones only with -d.
#include <string_view>

namespace alfred::net {

void set_verbose(bool on);
bool verbose();
void log_error(std::string_view message);    // always shown
void log_verbose(std::string_view message);  // shown with -d

}  // namespace alfred::net
