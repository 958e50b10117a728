// WeightsWriter on the HDF5 C API. Layout and policies: docs/model-format.md.
#include "model/io/weights_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "model/io/fp8_block.h"
#include "model/io/h5_util.h"
#include "model/io/weights_config_attrs.h"
#include "model/io/weights_layout.h"

namespace dpep {
using namespace layout;
namespace {

constexpr int64_t kTargetChunkBytes = 4 << 20;  // row blocks of ~4 MiB for plain tensors

// Chunk shape: one item per chunk for stacks, else blocks of whole rows of ~4 MiB.
std::vector<hsize_t> chunk_dims(const std::vector<int64_t>& shape, int elem, bool stacked) {
  std::vector<hsize_t> c(shape.begin(), shape.end());
  if (stacked) {
    c[0] = 1;
  } else {
    int64_t row = elem;
    for (size_t i = 1; i < shape.size(); ++i) row *= shape[i];
    c[0] = std::clamp<int64_t>(kTargetChunkBytes / std::max<int64_t>(row, 1), 1, shape[0]);
  }
  return c;
}

// Creates a chunked dataset with a Fletcher-32 checksum per chunk (corruption is detected on
// read), intermediate groups included, and a "dtype" attribute.
h5::Handle create_dataset(hid_t file, const std::string& path, const std::string& name,
                          const std::vector<int64_t>& shape, DType dtype, bool stacked) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  h5::Handle space(h5::check(H5Screate_simple(dims.size(), dims.data(), nullptr), path, name),
                   H5Sclose);
  h5::Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!shape.empty() && numel(shape) > 0) {
    auto c = chunk_dims(shape, dtype_bytes(dtype), stacked);
    h5::check(H5Pset_chunk(dcpl.get(), c.size(), c.data()), path, "chunking of '" + name + "'");
    h5::check(H5Pset_fletcher32(dcpl.get()), path, "checksum of '" + name + "'");
  }
  h5::Handle ds(h5::check(H5Dcreate2(file, name.c_str(), file_type(dtype), space.get(), lcpl.get(),
                                     dcpl.get(), H5P_DEFAULT),
                          path, "create dataset '" + name + "'"),
                H5Dclose);
  h5::write_attr_str(ds.get(), "dtype", dtype_name(dtype), path);
  return ds;
}

// Writes `count` items [first, first+count) along dim 0 (or everything when count < 0).
void write_slab(hid_t ds, const std::vector<int64_t>& shape, int64_t first, int64_t count,
                DType dtype, const void* data, const std::string& path, const std::string& name) {
  if (numel(shape) == 0) return;
  if (count < 0) {
    h5::check(H5Dwrite(ds, mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path,
              "write dataset '" + name + "'");
    return;
  }
  h5::Handle fspace(H5Dget_space(ds), H5Sclose);
  std::vector<hsize_t> start(shape.size(), 0), cnt(shape.begin(), shape.end());
  start[0] = first;
  cnt[0] = count;
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr);
  h5::Handle mspace(H5Screate_simple(cnt.size(), cnt.data(), nullptr), H5Sclose);
  h5::check(H5Dwrite(ds, mem_type(dtype), mspace.get(), fspace.get(), H5P_DEFAULT, data), path,
            fmt::format("write item {} of dataset '{}'", first, name));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct WeightsWriter::Impl {
  // A dataset filled piecewise along dim 0: experts of a stack, or row slabs of a matrix.
  struct Partial {
    std::vector<int64_t> shape;  // [count, item...] or [rows, cols...]
    DType dtype;
    bool stacked;
    h5::Handle ds, scale;
    std::vector<bool> written;  // per index along dim 0
  };
  std::string path;
  h5::Handle file;
  std::map<std::string, Partial> partial;

  void check_open() const {
    if (!file.valid()) throw std::runtime_error(path + ": write after close");
  }
  Partial& find(const std::string& name, bool stacked) {
    auto it = partial.find(name);
    if (it == partial.end() || it->second.stacked != stacked)
      throw std::invalid_argument(fmt::format("{}: '{}' was not created with {}", path, name,
                                              stacked ? "create_stacked" : "create_rows"));
    return it->second;
  }
  void create(const std::string& name, std::vector<int64_t> shape, DType dtype, bool stacked) {
    check_open();
    Partial p;
    p.shape = std::move(shape);
    p.dtype = dtype;
    p.stacked = stacked;
    p.ds = create_dataset(file.get(), path, name, p.shape, dtype, stacked);
    if (dtype == DType::F8E4M3)
      p.scale = create_dataset(file.get(), path, name + "_scale_inv", scale_shape(p.shape),
                               DType::F32, stacked);
    p.written.assign(p.shape[0], false);
    partial[name] = std::move(p);
  }
};

WeightsWriter::WeightsWriter(const std::string& path, const ModelConfig& config)
    : impl_(std::make_unique<Impl>()) {
  h5::silence_errors();
  config.validate();
  impl_->path = path;
  // Newest format bounds: every metadata block carries a checksum, so corruption is detected.
  h5::Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  impl_->file =
      h5::Handle(h5::check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), path,
                           "cannot create file"),
                 H5Fclose);
  hid_t root = impl_->file.get();
  h5::write_attr_str(root, "format", kFormat, path);
  h5::write_attr_i64(root, "format_version", kFormatVersion, path);
  write_config_attrs(root, config, path);
}

WeightsWriter::~WeightsWriter() {
  try {
    if (impl_ && impl_->file.valid()) close();
  } catch (...) {
  }
}

void WeightsWriter::write(const std::string& name, const std::vector<int64_t>& shape, DType dtype,
                          const void* data, const float* scale_inv) {
  auto& p = impl_->path;
  impl_->check_open();
  if (dtype == DType::F8E4M3 && (shape.size() < 2 || !scale_inv))
    throw std::invalid_argument(fmt::format(
        "{}: dataset '{}': f8e4m3 needs rank >= 2 and a scale_inv block table", p, name));
  auto ds = create_dataset(impl_->file.get(), p, name, shape, dtype, false);
  write_slab(ds.get(), shape, 0, -1, dtype, data, p, name);
  if (dtype == DType::F8E4M3) {
    auto ss = scale_shape(shape);
    auto sd = create_dataset(impl_->file.get(), p, name + "_scale_inv", ss, DType::F32, false);
    write_slab(sd.get(), ss, 0, -1, DType::F32, scale_inv, p, name + "_scale_inv");
  }
}

void WeightsWriter::create_stacked(const std::string& name, int64_t count,
                                   const std::vector<int64_t>& item_shape, DType dtype) {
  auto& p = impl_->path;
  if (count <= 0 || item_shape.empty() || numel(item_shape) <= 0)
    throw std::invalid_argument(fmt::format(
        "{}: stacked dataset '{}' needs count > 0 and a non-empty item shape", p, name));
  if (dtype == DType::F8E4M3 && item_shape.size() < 2)
    throw std::invalid_argument(fmt::format("{}: dataset '{}': f8e4m3 needs rank >= 2", p, name));
  std::vector<int64_t> shape = item_shape;
  shape.insert(shape.begin(), count);
  impl_->create(name, shape, dtype, true);
}

void WeightsWriter::write_item(const std::string& name, int64_t index, const void* data,
                               const float* scale_inv) {
  auto& p = impl_->path;
  auto& st = impl_->find(name, true);
  if (index < 0 || index >= st.shape[0])
    throw std::out_of_range(
        fmt::format("{}: dataset '{}': item {} outside [0, {})", p, name, index, st.shape[0]));
  if (st.dtype == DType::F8E4M3 && !scale_inv)
    throw std::invalid_argument(
        fmt::format("{}: dataset '{}': f8e4m3 item needs scale_inv", p, name));
  write_slab(st.ds.get(), st.shape, index, 1, st.dtype, data, p, name);
  if (st.dtype == DType::F8E4M3)
    write_slab(st.scale.get(), scale_shape(st.shape), index, 1, DType::F32, scale_inv, p,
               name + "_scale_inv");
  st.written[index] = true;
}

void WeightsWriter::create_rows(const std::string& name, const std::vector<int64_t>& shape,
                                DType dtype) {
  auto& p = impl_->path;
  if (shape.empty() || numel(shape) <= 0)
    throw std::invalid_argument(fmt::format("{}: dataset '{}' needs a non-empty shape", p, name));
  if (dtype == DType::F8E4M3 && shape.size() != 2)
    throw std::invalid_argument(fmt::format("{}: dataset '{}': f8e4m3 rows need rank 2", p, name));
  impl_->create(name, shape, dtype, false);
}

void WeightsWriter::write_rows(const std::string& name, int64_t row0, int64_t nrows,
                               const void* data, const float* scale_inv) {
  auto& p = impl_->path;
  auto& st = impl_->find(name, false);
  const int64_t rows = st.shape[0];
  if (row0 < 0 || nrows <= 0 || row0 + nrows > rows)
    throw std::out_of_range(fmt::format("{}: dataset '{}': rows [{}, {}) outside [0, {})", p, name,
                                        row0, row0 + nrows, rows));
  if (st.dtype == DType::F8E4M3) {
    if (!scale_inv || row0 % kFp8Block != 0 || (nrows % kFp8Block != 0 && row0 + nrows != rows))
      throw std::invalid_argument(fmt::format(
          "{}: dataset '{}': f8e4m3 rows must come in whole 128-row blocks with scale_inv", p,
          name));
    write_slab(st.scale.get(), scale_shape(st.shape), row0 / kFp8Block, fp8_blocks(nrows),
               DType::F32, scale_inv, p, name + "_scale_inv");
  }
  write_slab(st.ds.get(), st.shape, row0, nrows, st.dtype, data, p, name);
  std::fill(st.written.begin() + row0, st.written.begin() + row0 + nrows, true);
}

void WeightsWriter::write_text(const std::string& name, const std::string& text) {
  auto& p = impl_->path;
  h5::Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), text.size() + 1);
  H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  h5::Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  h5::Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  h5::Handle ds(h5::check(H5Dcreate2(impl_->file.get(), name.c_str(), type.get(), space.get(),
                                     lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
                          p, "create text dataset '" + name + "'"),
                H5Dclose);
  h5::check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, text.c_str()), p,
            "write text dataset '" + name + "'");
}

void WeightsWriter::close() {
  if (!impl_->file.valid()) return;
  std::string missing;
  for (auto& [name, st] : impl_->partial) {
    auto n = std::count(st.written.begin(), st.written.end(), false);
    if (n > 0 && missing.empty())
      missing = fmt::format("dataset '{}' has {} of {} {} never written", name, n, st.shape[0],
                            st.stacked ? "items" : "rows");
    st.ds.reset();
    st.scale.reset();
  }
  impl_->partial.clear();
  herr_t rc = H5Fclose(impl_->file.get());
  std::string err = rc < 0 ? h5::last_error() : "";
  impl_->file = h5::Handle();  // already closed (or unusable)
  if (rc < 0) throw std::runtime_error(impl_->path + ": closing the file failed: " + err);
  if (!missing.empty()) throw std::runtime_error(impl_->path + ": " + missing);
}

}  // namespace dpep
