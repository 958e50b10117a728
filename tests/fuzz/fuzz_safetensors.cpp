// libFuzzer harness: the input is a whole .safetensors file (8-byte LE header length, JSON
// header, data), opened with SafetensorsFile from an in-memory file (memfd). Allowed outcomes:
// std::runtime_error, or a file whose every tensor lies inside the data section with
// non-negative dims, nbytes = numel x dtype size (exactly), and reads back whole and in slices.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "model/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("fuzz.safetensors", 0);
  if (fd < 0) std::abort();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))
    std::abort();
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    dpep::SafetensorsFile f(path);
    for (const auto& [name, t] : f.tensors()) {
      if (t.end < t.begin || t.end > size) std::abort();
      unsigned __int128 numel = 1;  // exact: no wrap-around can hide a mismatch
      for (int64_t d : t.shape) {
        if (d < 0) std::abort();
        numel *= static_cast<uint64_t>(d);
      }
      if (numel != static_cast<uint64_t>(t.numel())) std::abort();
      if (numel * dpep::st_dtype_bytes(t.dtype) != t.nbytes()) std::abort();
      const auto bytes = f.read_bytes(name);
      if (bytes.size() != t.nbytes()) std::abort();
      if (t.nbytes() > 0) {
        uint8_t b = 0;
        f.read_range(name, t.nbytes() - 1, 1, &b);
        if (b != bytes.back()) std::abort();
      }
      if (&f.get(name) != &t) std::abort();
    }
  } catch (const std::runtime_error&) {
  }
  return 0;
}
