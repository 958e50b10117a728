// Counts heap allocations for tests that assert a code path makes none. Include it in ONE
// translation unit of a test binary: it replaces malloc and its relatives for the whole process
// (glibc's documented way to replace malloc, forwarding to __libc_*), so every allocation
// counts, whichever library makes it (libstdc++'s operator new, OpenMP, OpenBLAS, MPI) and on
// whichever thread; the count runs only inside count_allocations().
#pragma once
#include <dlfcn.h>
#include <execinfo.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace dpep_alloc_counter {
inline std::atomic<bool> g_counting{false};
inline std::atomic<long> g_allocs{0};
// DPEP_ALLOC_TRACE=1: the stacks of the first counted allocations go to stderr (resolve the
// addresses with addr2line -i -f -C -e <binary>), to find what allocates.
inline const bool g_trace = std::getenv("DPEP_ALLOC_TRACE") != nullptr;
inline thread_local bool t_in_trace = false;
// When set: allocations whose stack passes through a shared library whose path contains one of
// these '|'-separated strings are counted apart, in g_excluded.
inline const char* g_exclude = nullptr;
inline std::atomic<long> g_excluded{0};
// The stacks of the first counted allocations, kept (without allocating) for
// print_counted_stacks().
inline constexpr int kKeptStacks = 4, kStackDepth = 24;
inline void* g_stacks[kKeptStacks][kStackDepth];
inline int g_stack_depth[kKeptStacks];
inline bool path_matches(const char* path, const char* patterns) {
  for (const char* p = patterns; *p;) {
    const char* end = std::strchr(p, '|');
    const size_t len = end ? static_cast<size_t>(end - p) : std::strlen(p);
    if (memmem(path, std::strlen(path), p, len)) return true;
    if (!end) break;
    p = end + 1;
  }
  return false;
}
inline bool from_excluded_library() {
  void* bt[48];
  const int n = backtrace(bt, 48);
  for (int i = 0; i < n; ++i) {
    Dl_info info;
    if (dladdr(bt[i], &info) && info.dli_fname && path_matches(info.dli_fname, g_exclude))
      return true;
  }
  return false;
}
inline void note() {
  // Allocations of the counter's own stack walks (backtrace loads libgcc once) do not count.
  if (!g_counting.load(std::memory_order_relaxed) || t_in_trace) return;
  t_in_trace = true;
  if (g_exclude && from_excluded_library()) {
    g_excluded.fetch_add(1, std::memory_order_relaxed);
  } else {
    const long n = g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (n < kKeptStacks) g_stack_depth[n] = backtrace(g_stacks[n], kStackDepth);
    if (g_trace && n < 5) {
      void* bt[24];
      backtrace_symbols_fd(bt, backtrace(bt, 24), 2);
      (void)!write(2, "----\n", 5);
    }
  }
  t_in_trace = false;
}
}  // namespace dpep_alloc_counter

using dpep_alloc_counter::note;

extern "C" {
void* malloc(size_t n) {
  note();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) {
  note();
  return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) {
  note();
  return __libc_realloc(p, n);
}
void free(void* p) {
  __libc_free(p);
}
void* memalign(size_t a, size_t n) {
  note();
  return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
  note();
  return __libc_memalign(a, n);
}
int posix_memalign(void** p, size_t a, size_t n) {
  note();
  *p = __libc_memalign(a, n);
  return *p ? 0 : 12;  // ENOMEM
}
}

// Writes the stacks of the first counted allocations of the last count_allocations() to stderr
// (library+offset per frame; resolve with addr2line -f -C -e LIB OFFSET), for a failure's reader.
inline void print_counted_stacks(long counted) {
  namespace ac = dpep_alloc_counter;
  for (long i = 0; i < counted && i < ac::kKeptStacks; ++i) {
    backtrace_symbols_fd(ac::g_stacks[i], ac::g_stack_depth[i], 2);
    (void)!write(2, "----\n", 5);
  }
}

// Heap allocations (every thread) made while f runs. With exclude_library, allocations whose
// stack passes through a library whose path contains it are not counted but stored in *excluded.
template <class F>
inline long count_allocations(F&& f, const char* exclude_library = nullptr,
                              long* excluded = nullptr) {
  namespace ac = dpep_alloc_counter;
  void* warm[4];
  (void)backtrace(warm, 4);  // loads the unwinder now, not while counting
  ac::g_exclude = exclude_library;
  ac::g_allocs = 0;
  ac::g_excluded = 0;
  ac::g_counting = true;
  f();
  ac::g_counting = false;
  ac::g_exclude = nullptr;
  if (excluded) *excluded = ac::g_excluded.load();
  return ac::g_allocs.load();
}
