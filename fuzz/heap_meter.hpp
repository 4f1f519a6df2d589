#pragma once
// Live heap of the fuzz process, as glibc would have it.
//
// The fuzz build runs on ASan's allocator, so mallinfo2() says nothing, and
// __sanitizer_get_current_allocated_bytes() counts only the bytes asked for:
// an 8-byte vector is 8 bytes there but a 32-byte chunk in the daemon. The
// daemon's cost of many small allocations is what a "small packet, big
// allocation" bug is made of, so this meter hooks every malloc and free
// (__sanitizer_install_malloc_and_free_hooks) and keeps the sum of the glibc
// chunk sizes of live allocations: n + 8 rounded up to 16, at least 32 (the
// same model Store::record_cost uses). It also keeps the plain requested
// bytes and the number of live allocations, for the report.
//
// The hooks see every thread's allocations; the targets are single-threaded
// and libFuzzer allocates nothing of its own while an input runs.
#include <atomic>
#include <cstddef>
#include <cstdint>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALFRED_HEAP_METER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ALFRED_HEAP_METER_ASAN 1
#endif

#ifdef ALFRED_HEAP_METER_ASAN
#include <sanitizer/allocator_interface.h>
#else
#include <malloc.h>
#endif

namespace alfred::fuzz::heap {

constexpr std::size_t glibc_chunk(std::size_t n) {
  std::size_t c = (n + 8 + 15) & ~std::size_t{15};
  return c < 32 ? 32 : c;
}

struct Totals {
  std::int64_t chunks = 0;  // glibc-modelled bytes of live allocations
  std::int64_t user = 0;    // bytes asked for
  std::int64_t count = 0;   // live allocations
};

inline std::atomic<std::int64_t> g_chunks{0}, g_user{0}, g_count{0};

#ifdef ALFRED_HEAP_METER_ASAN
extern "C" inline void alfred_heap_meter_malloc(const volatile void*, std::size_t size) {
  g_chunks.fetch_add(static_cast<std::int64_t>(glibc_chunk(size)), std::memory_order_relaxed);
  g_user.fetch_add(static_cast<std::int64_t>(size), std::memory_order_relaxed);
  g_count.fetch_add(1, std::memory_order_relaxed);
}
// Runs before ASan releases the chunk, so its size is still known.
extern "C" inline void alfred_heap_meter_free(const volatile void* p) {
  std::size_t size = __sanitizer_get_allocated_size(const_cast<const void*>(p));
  if (size == 0 && !__sanitizer_get_ownership(const_cast<const void*>(p))) return;
  g_chunks.fetch_sub(static_cast<std::int64_t>(glibc_chunk(size)), std::memory_order_relaxed);
  g_user.fetch_sub(static_cast<std::int64_t>(size), std::memory_order_relaxed);
  g_count.fetch_sub(1, std::memory_order_relaxed);
}

inline bool install() {
  static const bool ok = __sanitizer_install_malloc_and_free_hooks(alfred_heap_meter_malloc,
                                                                   alfred_heap_meter_free) != 0;
  return ok;
}

inline Totals now() {
  install();
  return Totals{g_chunks.load(std::memory_order_relaxed), g_user.load(std::memory_order_relaxed),
                g_count.load(std::memory_order_relaxed)};
}
#else
// Without ASan: glibc's own figure (bytes in use, headers included).
inline bool install() { return true; }
inline Totals now() {
  struct mallinfo2 mi = mallinfo2();
  return Totals{static_cast<std::int64_t>(mi.uordblks), static_cast<std::int64_t>(mi.uordblks), 0};
}
#endif

inline Totals operator-(const Totals& a, const Totals& b) {
  return Totals{a.chunks - b.chunks, a.user - b.user, a.count - b.count};
}

}  // namespace alfred::fuzz::heap
