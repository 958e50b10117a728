#include "launch/openblas_core.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cblas.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace dpep {
namespace {

constexpr const char* kMarker = "DPEP_OPENBLAS_REEXEC";

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}

}  // namespace

bool openblas_core_is_fallback(const std::string& core, bool cpu_has_avx512) {
  if (!cpu_has_avx512) return false;
  // OpenBLAS 0.3.21 core names with AVX-512 kernels (case differs between versions).
  for (const char* good : {"skylakex", "cooperlake", "sapphirerapids"})
    if (strcasecmp(core.c_str(), good) == 0) return false;
  return true;
}

bool openblas_should_reexec(bool core_is_fallback, bool user_set_coretype, bool already_reexeced) {
  return core_is_fallback && !user_set_coretype && !already_reexeced;
}

void openblas_reexec_if_needed(char** argv) {
  const std::string core = openblas_get_corename();
  const bool assume_fallback = env_set("DPEP_OPENBLAS_ASSUME_FALLBACK");
  const bool avx512 = cpu_has_avx512();
  const bool fallback = assume_fallback ? avx512 : openblas_core_is_fallback(core, avx512);
  if (!openblas_should_reexec(fallback, env_set("OPENBLAS_CORETYPE"), env_set(kMarker))) return;
  setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1);
  setenv(kMarker, core.c_str(), 1);
  execv("/proc/self/exe", argv);
  // Still here: exec failed. Run on with the slow kernels rather than not at all.
  fmt::print(stderr,
             "dpep: warning: OpenBLAS chose its '{}' kernels on an AVX-512 CPU and re-executing "
             "with OPENBLAS_CORETYPE=SKYLAKEX failed ({}); float32 GEMMs will be slow\n",
             core, std::strerror(errno));
  unsetenv("OPENBLAS_CORETYPE");
}

std::string openblas_core_description() {
  std::string s = openblas_get_corename();
  const char* marker = std::getenv(kMarker);
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  if (marker && *marker)
    s += fmt::format(" (OPENBLAS_CORETYPE={} set by dpep; OpenBLAS chose {})", forced ? forced : "",
                     marker);
  else if (forced && *forced)
    s += fmt::format(" (OPENBLAS_CORETYPE={} set by the user)", forced);
  return s;
}

}  // namespace dpep
