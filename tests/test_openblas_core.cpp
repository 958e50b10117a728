// The re-exec decision of launch/openblas_core.cpp: which OpenBLAS cores count as a fallback on
// an AVX-512 CPU, and that a user's OPENBLAS_CORETYPE and the re-exec marker stop it.
#include <gtest/gtest.h>

#include "launch/openblas_core.h"

using dpep::openblas_core_is_fallback;
using dpep::openblas_should_reexec;

TEST(OpenblasCore, FallbackCoresOnAvx512Cpu) {
  for (const char* slow : {"Prescott", "Core2", "Nehalem", "Sandybridge", "Haswell", "Zen"})
    EXPECT_TRUE(openblas_core_is_fallback(slow, true)) << slow;
  for (const char* fast : {"SkylakeX", "Cooperlake", "SapphireRapids", "SKYLAKEX", "cooperlake"})
    EXPECT_FALSE(openblas_core_is_fallback(fast, true)) << fast;
}

TEST(OpenblasCore, NoAvx512MeansNothingToFix) {
  for (const char* core : {"Prescott", "Haswell", "Zen"})
    EXPECT_FALSE(openblas_core_is_fallback(core, false)) << core;
}

TEST(OpenblasCore, ReexecOnlyOnceAndNeverOverUserChoice) {
  EXPECT_TRUE(openblas_should_reexec(true, false, false));
  EXPECT_FALSE(openblas_should_reexec(true, true, false));    // user set OPENBLAS_CORETYPE
  EXPECT_FALSE(openblas_should_reexec(true, false, true));    // already re-executed: no loop
  EXPECT_FALSE(openblas_should_reexec(false, false, false));  // the core is fine
}
