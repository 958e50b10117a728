#include "runtime/request_source.h"

#include <fmt/format.h>

#include <stdexcept>

namespace dpep {

BalanceStrategy balance_strategy_from_name(const std::string& s) {
  if (s == "round_robin") return BalanceStrategy::RoundRobin;
  if (s == "least_tokens") return BalanceStrategy::LeastTokens;
  if (s == "min_expected_latency") return BalanceStrategy::MinExpectedLatency;
  if (s == "cache_aware") return BalanceStrategy::CacheAware;
  throw std::invalid_argument(fmt::format(
      "unknown --strategy '{}' (round_robin, least_tokens, min_expected_latency, cache_aware)", s));
}

}  // namespace dpep
