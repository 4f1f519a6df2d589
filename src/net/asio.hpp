// Asio for this project: the one place it is included from.
//
// MinSizeRel builds for routers are compiled without exceptions, RTTI and
// unwind tables (CMakeLists.txt, issue 10): a fifth of the binary was
// exception tables, and no code of ours throws or catches. Asio then calls
// this function where it would throw, and leaves its definition to the
// program. The calls that a peer, a client or a setting can make fail
// take an error_code here; what is left throwing (run(), a timer's
// expires_after(), an allocation) fails only when the system does, and an
// exception would have found no handler and ended the process through
// std::terminate anyway. So it says what went wrong and aborts.
#pragma once

#include <asio.hpp>

#if defined(ASIO_NO_EXCEPTIONS)
#include <cstdio>
#include <cstdlib>

namespace asio::detail {
template <typename Exception>
void throw_exception(const Exception& e) {
  std::fprintf(stderr, "alfred: fatal: %s\n", e.what());
  std::abort();
}
}  // namespace asio::detail
#endif
