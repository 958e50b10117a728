// Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not know newer Intel Xeons (family 6 model 207)
// and falls back to its Prescott (SSE3) kernels: sgemm at a quarter of the speed. The library
// picks its kernels when it is loaded, from OPENBLAS_CORETYPE, so setting the variable inside
// main is too late: dpep re-executes itself once with OPENBLAS_CORETYPE=SKYLAKEX instead.
#pragma once
#include <string>

namespace dpep {

// True when `core` (openblas_get_corename()) has no AVX-512 kernels although the CPU has
// AVX-512 (F, BW, DQ, VL: what OpenBLAS's SkylakeX kernels use).
bool openblas_core_is_fallback(const std::string& core, bool cpu_has_avx512);

// Whether to re-exec: OpenBLAS chose a fallback core, the user did not set OPENBLAS_CORETYPE,
// and this process is not already the re-executed one (no loop).
bool openblas_should_reexec(bool core_is_fallback, bool user_set_coretype, bool already_reexeced);

// Called first thing in main (before MPI_Init and before any thread of ours): re-executes
// /proc/self/exe with OPENBLAS_CORETYPE=SKYLAKEX and DPEP_OPENBLAS_REEXEC=<old core> when
// openblas_should_reexec says so; returns normally otherwise (or if exec fails, with a warning).
// DPEP_OPENBLAS_ASSUME_FALLBACK=1 treats the current core as a fallback (tests: this machine's
// OpenBLAS may already pick AVX-512 kernels).
void openblas_reexec_if_needed(char** argv);

// For the rank log: "SkylakeX (OPENBLAS_CORETYPE=SKYLAKEX set by dpep; OpenBLAS chose Prescott)".
std::string openblas_core_description();

}  // namespace dpep
