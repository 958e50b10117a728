#include "comm/control_plane.h"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

namespace dpep::comm {

StepGlobal reduce_steps(std::span<const StepLocal> ranks) {
  if (ranks.empty()) throw std::invalid_argument("reduce_steps: no ranks");
  int64_t step_min = INT64_MAX, step_max = INT64_MIN;
  StepGlobal g;
  for (size_t r = 0; r < ranks.size(); ++r) {
    const StepLocal& s = ranks[r];
    step_min = std::min(step_min, s.step);
    step_max = std::max(step_max, s.step);
    g.total_tokens += s.num_tokens;
    g.max_tokens = std::max(g.max_tokens, s.num_tokens);
    g.total_seqs += s.num_seqs;
    g.max_seqs = std::max(g.max_seqs, s.num_seqs);
    g.ranks_with_work += s.has_work ? 1 : 0;
    if (s.error) {
      if (g.first_error_rank < 0) g.first_error_rank = static_cast<int>(r);
      ++g.num_error_ranks;
    }
    g.stop = g.stop || s.stop;
    g.flags |= s.flags;
  }
  if (step_min != step_max)
    throw std::logic_error("lock-step lost: ranks are at steps " + std::to_string(step_min) + ".." +
                           std::to_string(step_max));
  g.step = step_min;
  return g;
}

}  // namespace dpep::comm
