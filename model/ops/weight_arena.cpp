#include "model/ops/weight_arena.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

namespace dpep {
namespace {

constexpr size_t kHugePage = size_t(1) << 21;
constexpr size_t kSlabBytes = size_t(64) << 20;
// Larger blocks get a slab of their own, so that a slab's unused tail (never touched, so never
// resident) stays small against the slab.
constexpr size_t kOwnSlabBytes = kSlabBytes / 8;

struct Slab {
  uint8_t* base = nullptr;
  size_t size = 0, used = 0;
  ~Slab() { std::free(base); }
};

std::shared_ptr<Slab> new_slab(size_t size) {
  auto slab = std::make_shared<Slab>();
  void* p = nullptr;
  if (posix_memalign(&p, kHugePage, size) != 0) throw std::bad_alloc();
  slab->base = static_cast<uint8_t*>(p);
  slab->size = size;
  // Advice only: without THP (or with it off) the slab keeps 4 KB pages. The tail past the last
  // whole huge page stays in 4 KB pages.
  if (size >= kHugePage) madvise(slab->base, size / kHugePage * kHugePage, MADV_HUGEPAGE);
  return slab;
}

}  // namespace

std::shared_ptr<uint8_t> weight_alloc(size_t bytes) {
  const size_t need = (bytes + 63) / 64 * 64;
  std::shared_ptr<Slab> slab;
  size_t offset = 0;
  if (need >= kOwnSlabBytes) {
    slab = new_slab(need);
  } else {
    static std::mutex mu;
    static std::weak_ptr<Slab> current;  // the slab small blocks are carved from
    std::lock_guard<std::mutex> lock(mu);
    slab = current.lock();
    if (!slab || slab->size - slab->used < need) {
      slab = new_slab(kSlabBytes);
      current = slab;
    }
    offset = slab->used;
    slab->used += need;
  }
  uint8_t* p = slab->base + offset;
  std::memset(p, 0, bytes);
  return std::shared_ptr<uint8_t>(slab, p);  // shares the slab's ownership
}

}  // namespace dpep
