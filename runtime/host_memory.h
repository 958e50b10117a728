// How much memory this host can still give to a job: /proc/meminfo's MemAvailable, or the
// headroom of the memory cgroup (v2 memory.max, v1 memory.limit_in_bytes, on this process's
// cgroup and its parents, minus what the cgroup already uses that it cannot reclaim), whichever
// is lower. DPEP_MEMORY_AVAILABLE=<bytes>[K|M|G|T] overrides the detection (tests).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace dpep {

struct HostMemory {
  uint64_t available = 0;      // what the memory plan may use
  uint64_t mem_available = 0;  // /proc/meminfo MemAvailable (0: unknown)
  std::optional<uint64_t> cgroup_headroom;
  bool overridden = false;       // DPEP_MEMORY_AVAILABLE
  std::string describe() const;  // "MemAvailable 22.8 GB, cgroup limit none"
};

HostMemory detect_host_memory();

// Pure parsers (unit-tested).
uint64_t parse_meminfo_available(const std::string& meminfo);  // bytes; 0 if absent
// limit: "max" or bytes (v1 reports ~2^63 for no limit); usage: bytes; stat: memory.stat text.
// Headroom = limit - (usage - inactive file pages); nullopt when there is no limit.
std::optional<uint64_t> cgroup_headroom(const std::string& limit, const std::string& usage,
                                        const std::string& stat);
// "123", "64K", "1.5G", "2T" (binary multiples); throws std::invalid_argument.
uint64_t parse_byte_size(const std::string& s);

}  // namespace dpep
