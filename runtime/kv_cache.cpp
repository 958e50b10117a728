#include "runtime/kv_cache.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace dpep {

KvCache::KvCache(int num_layers, int num_pages, int page_size, int width, bool bf16, int kv_lora) {
  view_.bf16 = bf16;
  view_.kv_lora = kv_lora;
  view_.page_size = page_size;
  view_.width = width;
  data_.reset(new (std::align_val_t(
      64)) float[static_cast<size_t>(num_layers) * num_pages * view_.page_floats()]);
  view_.data = data_.get();
  view_.num_layers = num_layers;
  view_.num_pages = num_pages;
  view_.page_size = page_size;
  view_.width = width;
}

int kv_pages_for_tokens(long long tokens, int page_size) {
  return static_cast<int>(std::max<long long>(1, (tokens + page_size - 1) / page_size));
}

int kv_pages_for_fraction(double fraction, size_t bytes_per_token, int page_size) {
  // MemAvailable from /proc/meminfo (kB); sysconf as a fallback.
  long long avail = 0;
  std::ifstream f("/proc/meminfo");
  std::string key;
  long long val;
  std::string unit;
  while (f >> key >> val >> unit)
    if (key == "MemAvailable:") {
      avail = val * 1024;
      break;
    }
  if (avail == 0) avail = static_cast<long long>(sysconf(_SC_AVPHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  const long long tokens = static_cast<long long>(fraction * avail / bytes_per_token);
  return kv_pages_for_tokens(tokens, page_size);
}

}  // namespace dpep
