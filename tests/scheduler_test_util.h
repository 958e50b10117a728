// Helpers for the model-free scheduler, prefix-cache and router tests: fake token runs,
// sequences, and a step in which the "model" appends token 7 to every sampled sequence.
#pragma once
#include <memory>
#include <vector>

#include "runtime/scheduler.h"

namespace dpep::testing {

inline std::vector<int> toks(int base, int n) {
  std::vector<int> t;
  for (int i = 0; i < n; ++i) t.push_back(base + i);
  return t;
}

inline std::vector<int> concat(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline std::unique_ptr<Sequence> seq(int64_t id, std::vector<int> prompt, int max_tokens) {
  auto s = std::make_unique<Sequence>();
  s->req.id = id;
  s->req.sampling.max_tokens = max_tokens;
  s->req.prompt = prompt;
  s->tokens = prompt;
  s->num_prompt = static_cast<int>(prompt.size());
  return s;
}

inline std::vector<std::unique_ptr<Sequence>> fake_step(
    Scheduler& sch, std::vector<ScheduledChunk>* chunks_out = nullptr) {
  auto chunks = sch.schedule();
  for (auto& c : chunks)
    if (c.sample) {
      c.seq->tokens.push_back(7);
      if (c.seq->num_generated() >= c.seq->req.sampling.max_tokens)
        c.seq->status = SeqStatus::Finished;
    }
  if (chunks_out) *chunks_out = chunks;
  return sch.postprocess(chunks);
}

}  // namespace dpep::testing
