// OpenMP loops that open a parallel region only when it would have more than one thread.
// libgomp allocates (and frees) a team for every region of one thread (OMP_NUM_THREADS=1, an
// `if` clause that is false, or a region nested in another), and an orphaned dynamic loop
// allocates its work share; a decode step must allocate nothing (model/run_state.h), so such
// loops run inline on the calling thread instead. Results never depend on the split: every
// caller computes each item the same way whichever thread runs it.
#pragma once
#include <omp.h>

#include <algorithm>

namespace dpep {

// A region opened here would have more than one thread.
inline bool omp_team_possible() {
  return omp_get_max_threads() > 1 && omp_get_active_level() < omp_get_max_active_levels();
}

// body(begin, end, worker) on disjoint contiguous ranges covering [0, n) (at most one per
// thread, as schedule(static) splits them; worker = the thread's index in the team), or once
// with [0, n) and worker 0 when !allow or no team is possible.
template <class F>
void parallel_ranges(int n, bool allow, F&& body) {
  if (n <= 0) return;
  if (!allow || n == 1 || !omp_team_possible()) {
    body(0, n, 0);
    return;
  }
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int chunk = n / nt, rem = n % nt;
    const int b = id * chunk + std::min(id, rem), e = b + chunk + (id < rem ? 1 : 0);
    if (b < e) body(b, e, id);
  }
}

// body(i) for every i in [0, n), one item at a time to whichever thread is free; inline when
// !allow or no team is possible.
template <class F>
void parallel_for_dynamic(int n, bool allow, F&& body) {
  if (n <= 0) return;
  if (!allow || n == 1 || !omp_team_possible()) {
    for (int i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < n; ++i) body(i);
}

}  // namespace dpep
