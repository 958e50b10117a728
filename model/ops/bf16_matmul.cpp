#include "model/ops/bf16_matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "model/ops/dtypes.h"

namespace dpep {

using dnnl::memory;

namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// float32 rows -> bf16 rows (round to nearest even), n elements.
void to_bf16(const float* x, uint16_t* y, size_t n) {
  size_t i = 0;
#if defined(__AVX512BF16__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
#endif
  for (; i < n; ++i) y[i] = f32_to_bf16(x[i]);
}

memory::desc weights_any(int in, int out) {
  return memory::desc({in, out}, memory::data_type::bf16, memory::format_tag::any);
}

}  // namespace

struct Bf16Matmul::Impl {
  int out = 0, in = 0;
  memory::desc w_desc;
  memory w_mem;
  // Primitives by (rows, output stride): creating a primitive descriptor costs tens of us,
  // more than a small GEMM, so each shape is created once.
  std::mutex mu;
  std::map<std::pair<int, int>, dnnl::matmul> prims;
  dnnl::matmul get(int T, int ldy) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = prims.find({T, ldy});
    if (it != prims.end()) return it->second;
    memory::desc a({T, in}, memory::data_type::bf16, memory::format_tag::ab);
    memory::desc c({T, out}, memory::data_type::f32, memory::dims{ldy, 1});
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, w_desc, c), cpu_engine());
    if (pd.weights_desc() != w_desc)
      throw std::logic_error("oneDNN chose another weight layout for this shape");
    // A reference (scalar) implementation is hundreds of times slower: callers avoid the
    // shapes that get one (strided output), so meeting it here is a bug worth stopping on.
    if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0)
      throw std::logic_error("oneDNN has only a reference bf16 matmul for " + std::to_string(T) +
                             "x" + std::to_string(in) + "x" + std::to_string(out));
    return prims.emplace(std::make_pair(T, ldy), dnnl::matmul(pd)).first->second;
  }
};

bool Bf16Matmul::supported() {
  static const bool ok = [] {
    try {
      const auto isa = dnnl::get_effective_cpu_isa();
      return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
    } catch (...) {
      return false;
    }
  }();
  return ok;
}

Bf16Matmul::Bf16Matmul(const float* w, int out, int in) : impl_(std::make_unique<Impl>()) {
  impl_->out = out;
  impl_->in = in;
  auto& eng = cpu_engine();
  dnnl::stream st(eng);
  // Pack for a mid-size row count; other row counts use the same packed layout.
  memory::desc a({64, in}, memory::data_type::bf16, memory::format_tag::ab);
  memory::desc c({64, out}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, weights_any(in, out), c), eng);
  impl_->w_desc = pd.weights_desc();
  // W [out, in] row-major is W^T [in, out] in "ba" order.
  std::vector<uint16_t> wb(static_cast<size_t>(out) * in);
  to_bf16(w, wb.data(), wb.size());
  memory plain({{in, out}, memory::data_type::bf16, memory::format_tag::ba}, eng, wb.data());
  impl_->w_mem = memory(impl_->w_desc, eng);
  dnnl::reorder(plain, impl_->w_mem).execute(st, plain, impl_->w_mem);
  st.wait();
}

Bf16Matmul::~Bf16Matmul() = default;
Bf16Matmul::Bf16Matmul(Bf16Matmul&&) noexcept = default;
Bf16Matmul& Bf16Matmul::operator=(Bf16Matmul&&) noexcept = default;

size_t Bf16Matmul::bytes() const {
  return impl_ ? impl_->w_desc.get_size() : 0;
}

void Bf16Matmul::forward(const float* x, int T, float* y, int ldx, int ldy) const {
  if (T == 0) return;
  const int in = impl_->in, out = impl_->out;
  thread_local std::vector<uint16_t> xb;
  xb.resize(static_cast<size_t>(T) * in);
  for (int t = 0; t < T; ++t)
    to_bf16(x + static_cast<size_t>(t) * ldx, xb.data() + static_cast<size_t>(t) * in, in);
  auto& eng = cpu_engine();
  thread_local dnnl::stream st(eng);
  // Row blocks of at most kRowBlock: oneDNN 2.6's AMX kernel slows down ~6x on some larger
  // row counts with a row tail (e.g. 424 x 1024 x 512), and blocks keep one primitive per size.
  constexpr int kRowBlock = 64;
  // oneDNN's fast kernels want a dense output: strided outputs go through a dense buffer.
  thread_local std::vector<float> yb;
  const bool dense = ldy == out;
  if (!dense) yb.resize(static_cast<size_t>(std::min(T, kRowBlock)) * out);
  for (int t0 = 0; t0 < T; t0 += kRowBlock) {
    const int rows = std::min(kRowBlock, T - t0);
    dnnl::matmul prim = impl_->get(rows, out);
    memory::desc a({rows, in}, memory::data_type::bf16, memory::format_tag::ab);
    memory::desc c({rows, out}, memory::data_type::f32, memory::format_tag::ab);
    float* dst = dense ? y + static_cast<size_t>(t0) * ldy : yb.data();
    prim.execute(st, {{DNNL_ARG_SRC, memory(a, eng, xb.data() + static_cast<size_t>(t0) * in)},
                      {DNNL_ARG_WEIGHTS, impl_->w_mem},
                      {DNNL_ARG_DST, memory(c, eng, dst)}});
    if (!dense) {
      st.wait();
      for (int r = 0; r < rows; ++r)
        std::memcpy(y + static_cast<size_t>(t0 + r) * ldy, yb.data() + static_cast<size_t>(r) * out,
                    sizeof(float) * out);
    }
  }
  st.wait();
}

}  // namespace dpep
