// The engine's knobs and their defaults, stated once: the command line (launch/run_options.h)
// takes its defaults from here.
#pragma once

namespace dpep {

struct EngineConfig {
  int max_batch_size = 256;
  int max_prefill_tokens = 8192;
  int page_size = 64;
  long long kv_cache_tokens = 0;       // > 0: cache size in tokens
  double cache_max_entry_count = 0.3;  // else: this fraction of free memory (lmdeploy-style)
  bool prefix_caching = true;          // automatic prefix caching of full latent pages
  double prefill_step_factor = 2.0;    // > 1: while decoding, a prefill step ~ this x a decode step
};

}  // namespace dpep
