#include "model/io/converter.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <regex>
#include <set>
#include <stdexcept>

#include "comm/clock.h"
#include "model/config.h"
#include "model/io/fp8_block.h"
#include "model/io/hf_checkpoint.h"
#include "model/io/mtp_schema.h"
#include "model/io/tensor_convert.h"
#include "model/io/weights_file.h"
#include "model/io/weights_schema.h"

namespace dpep {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// One matrix (or vector) as found in the checkpoint: a whole tensor, or one expert's rows of
// a fused expert tensor.
struct Piece {
  const SafetensorsFile* file = nullptr;
  std::string tensor;               // checkpoint name
  uint64_t offset = 0, nbytes = 0;  // byte range inside that tensor
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;                   // of this piece: [out, in] or [n]
  const SafetensorsFile* scale_file = nullptr;  // fp8 only
  std::string scale_tensor;
};

struct Job {
  const TensorSpec* spec;
  std::vector<Piece> pieces;  // one, or one per expert
  DType out;
};

bool supported(StDType t) {
  return t == StDType::BF16 || t == StDType::F16 || t == StDType::F32 || t == StDType::F8_E4M3;
}

}  // namespace

DType convert_output_dtype(const TensorSpec& spec, StDType src, ConvertDType mode) {
  if (mode == ConvertDType::BF16) return DType::BF16;
  if (mode == ConvertDType::F32) return DType::F32;
  if (src == StDType::BF16) return DType::BF16;
  if (src == StDType::F8_E4M3 && spec.fp8_allowed()) return DType::F8E4M3;
  return DType::F32;  // f32, f16 (exact in f32), fp8 outside linear weights
}

namespace {

// The fused layout of the routed experts (hf_fused_experts): expert e's rows of this spec.
bool resolve_fused(const HfCheckpoint& ck, const TensorSpec& spec, int64_t e,
                   const std::vector<int64_t>& item, int64_t E, Piece& p) {
  const FusedExperts fused = hf_fused_experts(spec);
  const std::string& name = fused.hf_name;
  if (!ck.has(name)) return false;
  const StTensor& t = ck.tensor(name);
  const std::vector<int64_t> want{E, fused.parts * item[0], item[1]};
  if (t.shape != want)
    throw std::runtime_error(
        fmt::format("{}: fused tensor '{}' has shape {} but config.json implies {}", ck.dir(), name,
                    shape_str(t.shape), shape_str(want)));
  if (t.dtype == StDType::F8_E4M3)
    throw std::runtime_error(
        fmt::format("{}: fused fp8 expert tensor '{}' is not supported", ck.dir(), name));
  const uint64_t bytes = st_dtype_bytes(t.dtype), item_elems = item[0] * item[1];
  p.file = &ck.shard_of(name);
  p.tensor = name;
  p.dtype = t.dtype;
  p.shape = item;
  p.nbytes = item_elems * bytes;
  p.offset = (e * fused.parts + fused.part) * item_elems * bytes;
  return true;
}

Piece resolve(const HfCheckpoint& ck, const TensorSpec& spec, int64_t e,
              std::set<std::string>& used) {
  Piece p;
  std::string name = spec.hf_name;
  std::vector<int64_t> shape = spec.shape;
  if (e >= 0) {
    name.replace(name.find("{e}"), 3, std::to_string(e));
    shape.erase(shape.begin());
    if (!ck.has(name) && resolve_fused(ck, spec, e, shape, spec.shape[0], p)) {
      used.insert(p.tensor);
      return p;
    }
  }
  if (!ck.has(name))
    throw std::runtime_error(
        fmt::format("{}: missing tensor '{}' (dpep dataset '{}')", ck.dir(), name, spec.name));
  const StTensor& t = ck.tensor(name);
  if (t.shape != shape)
    throw std::runtime_error(fmt::format("{}: tensor '{}' has shape {} but config.json implies {}",
                                         ck.shard_of(name).path(), name, shape_str(t.shape),
                                         shape_str(shape)));
  if (!supported(t.dtype))
    throw std::runtime_error(
        fmt::format("{}: tensor '{}' has dtype {}; dpep converts BF16, F16, F32 and F8_E4M3",
                    ck.shard_of(name).path(), name, st_dtype_name(t.dtype)));
  used.insert(name);
  p = Piece{&ck.shard_of(name), name, 0, t.nbytes(), t.dtype, shape, nullptr, {}};
  if (t.dtype == StDType::F8_E4M3) {
    const std::string sname = name + "_scale_inv";
    if (shape.size() != 2)
      throw std::runtime_error(fmt::format("{}: fp8 tensor '{}' must be a matrix", ck.dir(), name));
    if (!ck.has(sname))
      throw std::runtime_error(
          fmt::format("{}: fp8 tensor '{}' has no '{}'", ck.dir(), name, sname));
    const StTensor& s = ck.tensor(sname);
    const std::vector<int64_t> want{fp8_blocks(shape[0]), fp8_blocks(shape[1])};
    if (s.shape != want ||
        !(s.dtype == StDType::F32 || s.dtype == StDType::BF16 || s.dtype == StDType::F16))
      throw std::runtime_error(fmt::format(
          "{}: '{}' is {} {} but must be float [{}, {}] (128x128 blocks of {})", ck.dir(), sname,
          st_dtype_name(s.dtype), shape_str(s.shape), want[0], want[1], shape_str(shape)));
    used.insert(sname);
    p.scale_file = &ck.shard_of(sname);
    p.scale_tensor = sname;
  }
  return p;
}

// Checkpoint tensors dpep leaves out on purpose: layers past the declared MTP layers (e.g. a
// checkpoint whose config.json sets num_nextn_predict_layers to 0 but still ships layer 61), MTP
// layers that could not be kept, and rotary caches.
bool skippable(const std::string& name, int64_t first_skipped_layer,
               const std::set<int64_t>& skipped_layers) {
  static const std::regex layer(R"(^model\.layers\.(\d+)\.)");
  std::smatch m;
  if (std::regex_search(name, m, layer)) {
    const int64_t l = std::stoll(m[1].str());
    if (l >= first_skipped_layer || skipped_layers.count(l)) return true;
  }
  return name.ends_with("rotary_emb.inv_freq");
}

bool has_prefix(const HfCheckpoint& ck, const std::string& prefix) {
  for (const auto& n : ck.tensor_names())
    if (n.rfind(prefix, 0) == 0) return true;
  return false;
}

Job make_job(const HfCheckpoint& ck, const TensorSpec& spec, ConvertDType mode,
             std::set<std::string>& used) {
  Job job{&spec, {}, DType::F32};
  if (spec.kind == TensorKind::Experts)
    for (int64_t e = 0; e < spec.shape[0]; ++e) job.pieces.push_back(resolve(ck, spec, e, used));
  else
    job.pieces.push_back(resolve(ck, spec, -1, used));
  job.out = convert_output_dtype(spec, job.pieces[0].dtype, mode);
  for (const auto& p : job.pieces)
    if (p.dtype != job.pieces[0].dtype)
      throw std::runtime_error(fmt::format("{}: experts of '{}' mix dtypes {} ('{}') and {} ('{}')",
                                           ck.dir(), spec.name, st_dtype_name(job.pieces[0].dtype),
                                           job.pieces[0].tensor, st_dtype_name(p.dtype), p.tensor));
  return job;
}

// Jobs for every spec of the main model (any problem is an error), then for each MTP layer the
// checkpoint holds: kept whole when all its tensors are there and well-formed (the shared copies
// of embed_tokens and shared_head.head may be absent), else left out with a note in `st`, since
// dpep does not need it to run the model.
std::vector<Job> plan(const HfCheckpoint& ck, const ModelConfig& cfg,
                      const std::vector<TensorSpec>& specs,
                      const std::vector<TensorSpec>& mtp_specs, ConvertDType mode,
                      ConvertStats& st) {
  std::set<std::string> used;
  std::vector<Job> jobs;
  for (const auto& spec : specs) jobs.push_back(make_job(ck, spec, mode, used));
  std::set<int64_t> skipped_layers;
  for (int64_t i = 0; i < cfg.num_nextn_predict_layers; ++i) {
    if (!has_prefix(ck, mtp_hf_prefix(cfg, i))) continue;
    const int64_t layer = cfg.num_hidden_layers + i;
    std::set<std::string> layer_used;
    std::vector<Job> layer_jobs;
    try {
      for (const auto& spec : mtp_specs)
        if (spec.layer == layer && (ck.has(spec.hf_name) || !mtp_spec_optional(spec)))
          layer_jobs.push_back(make_job(ck, spec, mode, layer_used));
    } catch (const std::runtime_error& e) {
      st.mtp_note += fmt::format("MTP layer {} (checkpoint layer {}) not kept: {}\n", i,
                                 cfg.num_hidden_layers + i, e.what());
      skipped_layers.insert(cfg.num_hidden_layers + i);
      continue;
    }
    used.insert(layer_used.begin(), layer_used.end());
    st.mtp_tensors += static_cast<int64_t>(layer_jobs.size());
    for (auto& j : layer_jobs) jobs.push_back(std::move(j));
    ++st.mtp_layers;
  }
  std::vector<std::string> unknown;
  for (const auto& name : ck.tensor_names())
    if (!used.count(name) &&
        !skippable(name, cfg.num_hidden_layers + cfg.num_nextn_predict_layers, skipped_layers))
      unknown.push_back(name);
  if (!unknown.empty())
    throw std::runtime_error(
        fmt::format("{}: unknown tensor '{}'{} not in dpep's DeepSeek-V3 schema for this "
                    "config.json",
                    ck.dir(), unknown[0],
                    unknown.size() > 1 ? fmt::format(" (and {} more)", unknown.size() - 1) : ""));
  return jobs;
}

struct Buffers {
  std::vector<uint8_t> raw, conv;
};

// Reads rows [row0, row0 + nrows) of a piece ([rows, cols] or [rows]) and converts them to
// `out`; scale points at the piece's whole fp8 block-scale table. The returned pointer is valid
// while `b` lives.
const void* load_rows(const Piece& p, int64_t row0, int64_t nrows, DType out, const float* scale,
                      Buffers& b) {
  const int64_t cols = p.shape.size() > 1 ? p.shape[1] : 1;
  const uint64_t row_bytes = cols * st_dtype_bytes(p.dtype);
  b.raw.resize(nrows * row_bytes);
  p.file->read_range(p.tensor, p.offset + row0 * row_bytes, nrows * row_bytes, b.raw.data());
  const int64_t n = nrows * cols;
  if (p.dtype == StDType::F8_E4M3) {
    if (out == DType::F8E4M3) return b.raw.data();
    const float* s = scale + (row0 / kFp8Block) * fp8_blocks(cols);
    b.conv.resize(n * dtype_bytes(out));
    if (out == DType::F32)
      fp8_block_dequant(b.raw.data(), s, nrows, cols, reinterpret_cast<float*>(b.conv.data()));
    else
      fp8_block_dequant_bf16(b.raw.data(), s, nrows, cols,
                             reinterpret_cast<uint16_t*>(b.conv.data()));
    return b.conv.data();
  }
  if ((out == DType::BF16 && p.dtype == StDType::BF16) ||
      (out == DType::F32 && p.dtype == StDType::F32))
    return b.raw.data();
  b.conv.resize(n * dtype_bytes(out));
  if (out == DType::F32)
    st_to_f32(p.dtype, b.raw.data(), reinterpret_cast<float*>(b.conv.data()), n);
  else
    st_to_bf16(p.dtype, b.raw.data(), reinterpret_cast<uint16_t*>(b.conv.data()), n);
  return b.conv.data();
}

std::vector<float> load_scales(const Piece& p) {
  if (p.dtype != StDType::F8_E4M3) return {};
  return st_scales_to_f32(p.scale_file->get(p.scale_tensor).dtype,
                          p.scale_file->read_bytes(p.scale_tensor));
}

// A plain tensor in slabs of rows (whole 128-row blocks for fp8), so that neither the
// checkpoint tensor nor its converted copy is ever in memory whole.
void write_plain(WeightsWriter& w, const TensorSpec& spec, const Piece& p, DType out,
                 uint64_t slab_bytes) {
  const int64_t rows = p.shape[0], cols = p.shape.size() > 1 ? p.shape[1] : 1;
  const uint64_t row_bytes = cols * std::max(st_dtype_bytes(p.dtype), dtype_bytes(out));
  int64_t slab = std::max<int64_t>(1, slab_bytes / row_bytes);
  if (p.dtype == StDType::F8_E4M3) slab = std::max<int64_t>(1, slab / kFp8Block) * kFp8Block;
  const auto scale = load_scales(p);
  w.create_rows(spec.name, spec.shape, out);
  Buffers b;
  for (int64_t r0 = 0; r0 < rows; r0 += slab) {
    const int64_t n = std::min(slab, rows - r0);
    const void* data = load_rows(p, r0, n, out, scale.data(), b);
    const float* s =
        out == DType::F8E4M3 ? scale.data() + (r0 / kFp8Block) * fp8_blocks(cols) : nullptr;
    w.write_rows(spec.name, r0, n, data, s);
  }
}

void write_all(const HfCheckpoint& ck, const ModelConfig& cfg, const std::vector<Job>& jobs,
               const ConvertOptions& opt, ConvertStats& st) {
  const Stopwatch t0;
  WeightsWriter w(opt.out_path, cfg);
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Job& job = jobs[i];
    const TensorSpec& spec = *job.spec;
    uint64_t bytes = 0;
    if (spec.kind == TensorKind::Experts) {
      std::vector<int64_t> item(spec.shape.begin() + 1, spec.shape.end());
      w.create_stacked(spec.name, spec.shape[0], item, job.out);
      for (size_t e = 0; e < job.pieces.size(); ++e) {
        const Piece& p = job.pieces[e];
        Buffers b;
        const auto scale = load_scales(p);
        const void* data = load_rows(p, 0, p.shape[0], job.out, scale.data(), b);
        w.write_item(spec.name, e, data, job.out == DType::F8E4M3 ? scale.data() : nullptr);
        bytes += p.nbytes;
        st.largest_piece = std::max(st.largest_piece, p.nbytes);
      }
    } else {
      write_plain(w, spec, job.pieces[0], job.out, opt.slab_bytes);
      bytes = job.pieces[0].nbytes;
      st.largest_piece = std::max(st.largest_piece, bytes);
    }
    st.bytes_read += bytes;
    ++st.tensors;
    if (opt.progress)
      fmt::print(stderr, "[{:>4}/{}] {:<40} {:<18} {:>7} -> {:<6} {:>9.1f} MB  {:6.1f} s\n", i + 1,
                 jobs.size(), spec.name, shape_str(spec.shape), st_dtype_name(job.pieces[0].dtype),
                 dtype_name(job.out), bytes / 1e6, t0.seconds());
  }
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    const auto p = std::filesystem::path(ck.dir()) / f;
    if (std::filesystem::exists(p))
      w.write_text(std::string("tokenizer/") + f, read_text_file(p.string()));
  }
  w.close();
}

}  // namespace

ConvertDType convert_dtype_from_name(const std::string& s) {
  if (s == "keep") return ConvertDType::Keep;
  if (s == "bf16" || s == "bfloat16") return ConvertDType::BF16;
  if (s == "fp32" || s == "f32" || s == "float32") return ConvertDType::F32;
  throw std::invalid_argument("--dtype must be keep, bf16 or fp32, not '" + s + "'");
}

HfQuantization hf_quantization_from_config(const std::string& config_json) {
  HfQuantization q;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(config_json);
  } catch (const std::exception& e) {
    throw std::invalid_argument(fmt::format("config.json is not valid JSON: {}", e.what()));
  }
  if (!j.is_object() || !j.contains("quantization_config") || j["quantization_config"].is_null())
    return q;
  const auto& qc = j["quantization_config"];
  auto bad = [](const std::string& what) {
    return std::invalid_argument("config.json: quantization_config: " + what);
  };
  if (!qc.is_object()) throw bad("must be an object");
  const std::string method = qc.value("quant_method", std::string());
  if (method != "fp8")
    throw bad(
        fmt::format("quant_method '{}' is not supported (dpep reads fp8 checkpoints)", method));
  const std::string fmt_name = qc.value("fmt", std::string("e4m3"));
  if (fmt_name != "e4m3")
    throw bad(fmt::format("fmt '{}' is not supported (dpep reads e4m3)", fmt_name));
  if (qc.contains("weight_block_size")) {
    const auto& b = qc["weight_block_size"];
    if (!(b.is_array() && b.size() == 2 && b[0].is_number_integer() && b[1].is_number_integer() &&
          b[0].get<int64_t>() == 128 && b[1].get<int64_t>() == 128))
      throw bad(fmt::format("weight_block_size {} is not supported (dpep reads [128, 128] blocks)",
                            b.dump()));
  }
  q.fp8 = true;
  return q;
}

ConvertStats convert_checkpoint(const ConvertOptions& opt) {
  const Stopwatch t0;
  HfCheckpoint ck(opt.hf_dir);
  ModelConfig cfg;
  try {
    cfg = ModelConfig::from_hf_json(ck.config_json());
    hf_quantization_from_config(ck.config_json());
  } catch (const std::exception& e) {
    throw std::runtime_error(opt.hf_dir + "/config.json: " + e.what());
  }
  const auto specs = model_tensor_specs(cfg);
  const auto mtp_specs = mtp_tensor_specs(cfg);
  ConvertStats st;
  const auto jobs = plan(ck, cfg, specs, mtp_specs, opt.dtype, st);
  // The file's num_nextn_predict_layers says how many MTP layers it holds under mtp/.
  ModelConfig stored = cfg;
  stored.num_nextn_predict_layers = st.mtp_layers;
  st.mtp_declared = cfg.num_nextn_predict_layers;
  st.mtp_layer_first = cfg.num_hidden_layers;
  try {
    write_all(ck, stored, jobs, opt, st);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(opt.out_path, ec);
    throw;
  }
  st.seconds = t0.seconds();
  return st;
}

}  // namespace dpep
