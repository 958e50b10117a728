// WeightsReader on the HDF5 C API. Layout and policies: docs/model-format.md.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "model/io/fp8_block.h"
#include "model/io/h5_util.h"
#include "model/io/weights_config_attrs.h"
#include "model/io/weights_file.h"
#include "model/io/weights_layout.h"

namespace dpep {
using namespace layout;

struct WeightsReader::Impl {
  std::string path;
  h5::Handle file;
  ModelConfig config;

  std::string where(const std::string& name) const {
    return fmt::format("{}: dataset '{}'", path, name);
  }
  h5::Handle open(const std::string& name) const {
    if (!h5::path_exists(file.get(), name)) throw std::runtime_error(where(name) + ": missing");
    return h5::Handle(h5::check(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), path,
                                "cannot open dataset '" + name + "'"),
                      H5Dclose);
  }
  // The stored dtype from the "dtype" attribute, checked against the HDF5 element type.
  DType dtype_of(hid_t ds, const std::string& name) const {
    if (h5::attr_class(ds, "dtype") != H5T_STRING)
      throw std::runtime_error(where(name) + ": no 'dtype' attribute");
    DType t;
    try {
      t = dtype_from_name(h5::read_attr_str(ds, "dtype", path));
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(where(name) + ": " + e.what());
    }
    h5::Handle type(h5::check(H5Dget_type(ds), path, name + ": type"), H5Tclose);
    const H5T_class_t cls = H5Tget_class(type.get());
    const size_t size = H5Tget_size(type.get());
    bool ok = t == DType::F32 ? cls == H5T_FLOAT && size == 4
                              : cls == H5T_INTEGER && size == size_t(dtype_bytes(t));
    if (!ok)
      throw std::runtime_error(
          fmt::format("{}: dtype attribute says {} but the HDF5 element type "
                      "has class {} and {} bytes",
                      where(name), dtype_name(t), static_cast<int>(cls), size));
    return t;
  }
  // Reads dims [first, first+count) along dim 0 (all when count < 0) into dst.
  void read_slab(hid_t ds, const std::vector<int64_t>& dims, int64_t first, int64_t count,
                 hid_t mtype, void* dst, const std::string& name) const {
    if (numel(dims) == 0) return;
    herr_t rc;
    if (count < 0) {
      rc = H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst);
    } else {
      h5::Handle fspace(H5Dget_space(ds), H5Sclose);
      std::vector<hsize_t> start(dims.size(), 0), cnt(dims.begin(), dims.end());
      start[0] = first;
      cnt[0] = count;
      H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr);
      h5::Handle mspace(H5Screate_simple(cnt.size(), cnt.data(), nullptr), H5Sclose);
      rc = H5Dread(ds, mtype, mspace.get(), fspace.get(), H5P_DEFAULT, dst);
    }
    if (rc < 0)
      throw std::runtime_error(where(name) +
                               ": read failed (corrupt or truncated file?): " + h5::last_error());
  }
  RawTensor read(const std::string& name, int64_t first, int64_t count,
                 const std::vector<int64_t>& expect) const;
};

RawTensor WeightsReader::Impl::read(const std::string& name, int64_t first, int64_t count,
                                    const std::vector<int64_t>& expect) const {
  h5::Handle ds = open(name);
  const auto dims = h5::dataset_dims(ds.get(), path, name);
  RawTensor out;
  out.dtype = dtype_of(ds.get(), name);
  if (count < 0) {
    if (dims != expect)
      throw std::runtime_error(fmt::format("{}: shape {} but expected {}", where(name),
                                           shape_str(dims), shape_str(expect)));
    out.shape = dims;
  } else {
    std::vector<int64_t> item(dims.empty() ? dims.begin() : dims.begin() + 1, dims.end());
    if (dims.empty() || item != expect)
      throw std::runtime_error(fmt::format("{}: shape {} but expected items of {}", where(name),
                                           shape_str(dims), shape_str(expect)));
    if (first < 0 || count < 0 || first + count > dims[0])
      throw std::out_of_range(fmt::format("{}: items [{}, {}) outside [0, {})", where(name), first,
                                          first + count, dims[0]));
    out.shape = expect;
    out.shape.insert(out.shape.begin(), count);
  }
  out.data.resize(numel(out.shape) * dtype_bytes(out.dtype));
  read_slab(ds.get(), dims, first, count, mem_type(out.dtype), out.data.data(), name);
  if (out.dtype == DType::F8E4M3) {
    if (dims.size() < 2) throw std::runtime_error(where(name) + ": f8e4m3 needs rank >= 2");
    const std::string sname = name + "_scale_inv";
    h5::Handle sds = open(sname);
    const auto sdims = h5::dataset_dims(sds.get(), path, sname);
    if (sdims != scale_shape(dims))
      throw std::runtime_error(fmt::format("{}: shape {} but expected {} for {}", where(sname),
                                           shape_str(sdims), shape_str(scale_shape(dims)),
                                           shape_str(dims)));
    if (dtype_of(sds.get(), sname) != DType::F32)
      throw std::runtime_error(where(sname) + ": scales must be f32");
    out.scale_inv.resize(numel(scale_shape(out.shape)));
    read_slab(sds.get(), sdims, first, count, H5T_NATIVE_FLOAT, out.scale_inv.data(), sname);
  }
  return out;
}

namespace {
std::vector<float> decode(RawTensor&& raw) {
  const int64_t n = numel(raw.shape);
  std::vector<float> out(n);
  if (raw.dtype != DType::F8E4M3) {
    to_f32(raw.dtype, raw.data.data(), out.data(), n);
    return out;
  }
  const int64_t rows = raw.shape[raw.shape.size() - 2], cols = raw.shape.back();
  const int64_t items = n / std::max<int64_t>(rows * cols, 1);
  const int64_t sblock = fp8_blocks(rows) * fp8_blocks(cols);
  for (int64_t b = 0; b < items; ++b)
    fp8_block_dequant(raw.data.data() + b * rows * cols, raw.scale_inv.data() + b * sblock, rows,
                      cols, out.data() + b * rows * cols);
  return out;
}
}  // namespace

WeightsReader::WeightsReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  h5::silence_errors();
  impl_->path = path;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw std::runtime_error(path + ": no such model file");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw std::runtime_error(path + ": not an HDF5 file (or its superblock is damaged)");
  impl_->file = h5::Handle(h5::check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path,
                                     "cannot open HDF5 file (truncated or corrupt?)"),
                           H5Fclose);
  hid_t root = impl_->file.get();
  if (h5::attr_class(root, "format") != H5T_STRING ||
      h5::read_attr_str(root, "format", path) != kFormat)
    throw std::runtime_error(
        fmt::format("{}: not a dpep model file (root attribute format != '{}')", path, kFormat));
  if (h5::attr_class(root, "format_version") != H5T_INTEGER)
    throw std::runtime_error(path + ": missing root attribute 'format_version'");
  const int64_t v = h5::read_attr_i64(root, "format_version", path);
  if (v != kFormatVersion)
    throw std::runtime_error(fmt::format(
        "{}: format_version {} is not supported (this dpep reads {})", path, v, kFormatVersion));
  impl_->config = read_config_attrs(root, path);
}

WeightsReader::~WeightsReader() = default;

const std::string& WeightsReader::path() const {
  return impl_->path;
}
const ModelConfig& WeightsReader::config() const {
  return impl_->config;
}

bool WeightsReader::has(const std::string& name) const {
  return h5::path_exists(impl_->file.get(), name);
}

StoredTensor WeightsReader::info(const std::string& name) const {
  h5::Handle ds = impl_->open(name);
  StoredTensor t;
  t.shape = h5::dataset_dims(ds.get(), impl_->path, name);
  t.dtype = impl_->dtype_of(ds.get(), name);
  t.has_scale = has(name + "_scale_inv");
  return t;
}

RawTensor WeightsReader::read_raw(const std::string& name,
                                  const std::vector<int64_t>& expect) const {
  return impl_->read(name, 0, -1, expect);
}

RawTensor WeightsReader::read_items_raw(const std::string& name, int64_t first, int64_t count,
                                        const std::vector<int64_t>& expect_item) const {
  if (count < 0) throw std::out_of_range(impl_->where(name) + ": negative item count");
  return impl_->read(name, first, count, expect_item);
}

std::vector<float> WeightsReader::read_f32(const std::string& name,
                                           const std::vector<int64_t>& expect) const {
  return decode(read_raw(name, expect));
}

std::vector<float> WeightsReader::read_items_f32(const std::string& name, int64_t first,
                                                 int64_t count,
                                                 const std::vector<int64_t>& expect_item) const {
  return decode(read_items_raw(name, first, count, expect_item));
}

std::optional<std::string> WeightsReader::read_text(const std::string& name) const {
  if (!has(name)) return std::nullopt;
  h5::Handle ds = impl_->open(name);
  h5::Handle type(h5::check(H5Dget_type(ds.get()), impl_->path, name), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0)
    throw std::runtime_error(impl_->where(name) + ": not a fixed-length text dataset");
  std::string buf(H5Tget_size(type.get()), '\0');
  impl_->read_slab(ds.get(), {}, 0, -1, type.get(), buf.data(), name);
  buf.resize(std::min(buf.find('\0'), buf.size()));
  return buf;
}

}  // namespace dpep
