#include "model/ops/weight_arena.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace dpep {
namespace {

constexpr size_t kHugePage = size_t(1) << 21;
constexpr size_t kSlabBytes = size_t(64) << 20;
// Larger blocks get a slab of their own, so that a slab's unused tail (never touched, so never
// resident) stays small against the slab.
constexpr size_t kOwnSlabBytes = kSlabBytes / 8;

// A slab and the free ranges inside it (offset -> bytes, coalesced). Packing frees blocks while
// the model is built (gate and up once fused into one matrix, q_a and kv_a once concatenated);
// their ranges serve the next blocks, so that freed weights do not stay resident.
struct Slab {
  uint8_t* base = nullptr;
  size_t size = 0, used = 0;
  std::map<size_t, size_t> free;
  ~Slab() { std::free(base); }
};

std::mutex mu;
std::vector<std::weak_ptr<Slab>> shared_slabs;  // slabs that small blocks are carved from

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

// First fit among the free ranges of the live slabs; false if none fits. Holds mu.
bool take_free(size_t need, std::shared_ptr<Slab>& slab, size_t& offset) {
  for (auto it = shared_slabs.begin(); it != shared_slabs.end();) {
    std::shared_ptr<Slab> s = it->lock();
    if (!s) {
      it = shared_slabs.erase(it);
      continue;
    }
    for (auto r = s->free.begin(); r != s->free.end(); ++r)
      if (r->second >= need) {
        offset = r->first;
        const size_t rest = r->second - need;
        s->free.erase(r);
        if (rest > 0) s->free.emplace(offset + need, rest);
        slab = std::move(s);
        return true;
      }
    ++it;
  }
  return false;
}

// Returns [offset, offset + bytes) to its slab, merged with its free neighbours.
void give_back(Slab& s, size_t offset, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu);
  auto next = s.free.lower_bound(offset);
  if (next != s.free.end() && next->first == offset + bytes) {
    bytes += next->second;
    next = s.free.erase(next);
  }
  if (next != s.free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      bytes += prev->second;
      s.free.erase(prev);
    }
  }
  if (offset + bytes == s.used)
    s.used = offset;  // the top of the slab: bump space again
  else
    s.free.emplace(offset, bytes);
}

}  // namespace

std::shared_ptr<uint8_t> weight_alloc(size_t bytes) {
  const size_t need = (bytes + 63) / 64 * 64;
  if (need >= kOwnSlabBytes) {
    std::shared_ptr<Slab> slab = new_slab(need);
    std::memset(slab->base, 0, bytes);
    return std::shared_ptr<uint8_t>(slab, slab->base);  // shares the slab's ownership
  }
  std::shared_ptr<Slab> slab;
  size_t offset = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!take_free(need, slab, offset)) {
      std::shared_ptr<Slab> top = shared_slabs.empty() ? nullptr : shared_slabs.back().lock();
      if (!top || top->size - top->used < need) {
        top = new_slab(kSlabBytes);
        shared_slabs.push_back(top);
      }
      offset = top->used;
      top->used += need;
      slab = std::move(top);
    }
  }
  uint8_t* p = slab->base + offset;
  std::memset(p, 0, bytes);
  return std::shared_ptr<uint8_t>(
      p, [slab, offset, need](uint8_t*) { give_back(*slab, offset, need); });
}

}  // namespace dpep
