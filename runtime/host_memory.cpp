#include "runtime/host_memory.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace dpep {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  if (!f) return "";
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::optional<uint64_t> to_u64(const std::string& s) {
  const std::string t = trim(s);
  if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  try {
    return std::stoull(t);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

uint64_t stat_value(const std::string& stat, const std::string& key) {
  std::istringstream in(stat);
  std::string k;
  uint64_t v;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

// The smallest headroom of a cgroup directory and its parents up to the hierarchy's root.
std::optional<uint64_t> walk(const std::filesystem::path& root, const std::string& rel, bool v2) {
  namespace fs = std::filesystem;
  fs::path dir = root / fs::path(rel).relative_path();
  if (!fs::exists(dir)) dir = root;  // cgroup namespaces: our cgroup is the mount's root
  std::optional<uint64_t> best;
  for (;;) {
    const auto h =
        v2 ? cgroup_headroom(slurp(dir / "memory.max"), slurp(dir / "memory.current"),
                             slurp(dir / "memory.stat"))
           : cgroup_headroom(slurp(dir / "memory.limit_in_bytes"),
                             slurp(dir / "memory.usage_in_bytes"), slurp(dir / "memory.stat"));
    if (h) best = best ? std::min(*best, *h) : *h;
    if (dir == root || !dir.has_parent_path() || dir.parent_path() == dir) break;
    dir = dir.parent_path();
  }
  return best;
}

std::optional<uint64_t> detect_cgroup_headroom() {
  std::istringstream in(slurp("/proc/self/cgroup"));
  std::string line;
  std::optional<uint64_t> best;
  auto take = [&](std::optional<uint64_t> h) {
    if (h) best = best ? std::min(*best, *h) : *h;
  };
  while (std::getline(in, line)) {
    // "hierarchy-id:controllers:path"
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string ctrl = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (ctrl.empty() && std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers"))
      take(walk("/sys/fs/cgroup", path, true));
    std::istringstream cs(ctrl);
    std::string c;
    while (std::getline(cs, c, ','))
      if (c == "memory") take(walk("/sys/fs/cgroup/memory", path, false));
  }
  return best;
}

}  // namespace

uint64_t parse_meminfo_available(const std::string& meminfo) {
  std::istringstream in(meminfo);
  std::string key, unit;
  uint64_t val;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    if (ls >> key >> val && key == "MemAvailable:") {
      ls >> unit;
      return unit == "kB" ? val * 1024 : val;
    }
  }
  return 0;
}

std::optional<uint64_t> cgroup_headroom(const std::string& limit, const std::string& usage,
                                        const std::string& stat) {
  const auto lim = to_u64(limit);
  if (!lim || *lim >= (1ull << 60)) return std::nullopt;  // "max", absent, or v1's "no limit"
  const uint64_t used = to_u64(usage).value_or(0);
  // Inactive file pages are reclaimed before the cgroup's OOM killer runs.
  uint64_t inactive = stat_value(stat, "total_inactive_file");
  if (inactive == 0) inactive = stat_value(stat, "inactive_file");
  const uint64_t unreclaimable = used > inactive ? used - inactive : 0;
  return *lim > unreclaimable ? *lim - unreclaimable : 0;
}

uint64_t parse_byte_size(const std::string& text) {
  const std::string s = trim(text);
  size_t n = 0;
  double v = 0;
  try {
    v = std::stod(s, &n);
  } catch (const std::exception&) {
    n = 0;
  }
  const std::string suffix = s.substr(n);
  double mult = 1;
  if (suffix == "K" || suffix == "k")
    mult = 1024.0;
  else if (suffix == "M")
    mult = 1024.0 * 1024;
  else if (suffix == "G")
    mult = 1024.0 * 1024 * 1024;
  else if (suffix == "T")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else if (!suffix.empty())
    n = 0;
  if (n == 0 || !std::isfinite(v) || v < 0 || v * mult >= 1.8e19)
    throw std::invalid_argument(
        fmt::format("'{}' is not a byte size (a number with an optional K, M, G or T)", text));
  return static_cast<uint64_t>(v * mult);
}

std::string HostMemory::describe() const {
  if (overridden) return fmt::format("DPEP_MEMORY_AVAILABLE {:.2f} GB", available / 1e9);
  return fmt::format("MemAvailable {:.2f} GB, cgroup {}", mem_available / 1e9,
                     cgroup_headroom ? fmt::format("headroom {:.2f} GB", *cgroup_headroom / 1e9)
                                     : std::string("limit none"));
}

HostMemory detect_host_memory() {
  HostMemory h;
  if (const char* env = std::getenv("DPEP_MEMORY_AVAILABLE"); env && *env) {
    try {
      h.available = parse_byte_size(env);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("DPEP_MEMORY_AVAILABLE: ") + e.what());
    }
    h.overridden = true;
    return h;
  }
  h.mem_available = parse_meminfo_available(slurp("/proc/meminfo"));
  if (h.mem_available == 0)
    h.mem_available = static_cast<uint64_t>(sysconf(_SC_AVPHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  h.cgroup_headroom = detect_cgroup_headroom();
  h.available = h.cgroup_headroom ? std::min(h.mem_available, *h.cgroup_headroom) : h.mem_available;
  return h;
}

}  // namespace dpep
