#include "model/io/h5_util.h"

#include <fmt/format.h>

#include <stdexcept>

namespace dpep::h5 {

void silence_errors() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

namespace {
herr_t walk_cb(unsigned, const H5E_error2_t* err, void* data) {
  if (err && err->desc) static_cast<std::vector<std::string>*>(data)->push_back(err->desc);
  return 0;
}
}  // namespace

// The outermost entry says what the API call was doing, the innermost why it failed.
std::string last_error() {
  std::vector<std::string> stack;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &stack);
  if (stack.empty()) return "HDF5 call failed";
  if (stack.size() == 1 || stack.front() == stack.back()) return stack.front();
  return stack.front() + " (" + stack.back() + ")";
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_) closer_(id_);
  id_ = -1;
}

hid_t check(hid_t id, const std::string& file, const std::string& what) {
  if (id < 0) throw std::runtime_error(fmt::format("{}: {}: {}", file, what, last_error()));
  return id;
}

bool path_exists(hid_t loc, const std::string& path) {
  size_t pos = 0;
  while (true) {
    size_t slash = path.find('/', pos);
    std::string prefix = path.substr(0, slash);
    if (prefix.empty() || H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
    pos = slash + 1;
  }
}

namespace {
void write_scalar(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type,
                  const void* v, const std::string& file) {
  Handle space(check(H5Screate(H5S_SCALAR), file, "create dataspace"), H5Sclose);
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle attr(check(H5Acreate2(obj, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                    file, "create attribute '" + name + "'"),
              H5Aclose);
  check(H5Awrite(attr.get(), mem_type, v), file, "write attribute '" + name + "'");
}

Handle open_attr(hid_t obj, const std::string& name, const std::string& file) {
  return Handle(
      check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), file, "missing attribute '" + name + "'"),
      H5Aclose);
}
}  // namespace

void write_attr_i64(hid_t obj, const std::string& name, int64_t v, const std::string& file) {
  write_scalar(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, file);
}
void write_attr_f64(hid_t obj, const std::string& name, double v, const std::string& file) {
  write_scalar(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, file);
}
void write_attr_i8(hid_t obj, const std::string& name, int8_t v, const std::string& file) {
  write_scalar(obj, name, H5T_STD_I8LE, H5T_NATIVE_INT8, &v, file);
}
void write_attr_str(hid_t obj, const std::string& name, const std::string& v,
                    const std::string& file) {
  Handle type(check(H5Tcopy(H5T_C_S1), file, "string type"), H5Tclose);
  H5Tset_size(type.get(), v.size() + 1);
  H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  write_scalar(obj, name, type.get(), type.get(), v.c_str(), file);
}

H5T_class_t attr_class(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) return H5T_NO_CLASS;
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!attr.valid()) return H5T_NO_CLASS;
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  return type.valid() ? H5Tget_class(type.get()) : H5T_NO_CLASS;
}

int64_t read_attr_i64(hid_t obj, const std::string& name, const std::string& file) {
  Handle attr = open_attr(obj, name, file);
  int64_t v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), file, "read attribute '" + name + "'");
  return v;
}

double read_attr_f64(hid_t obj, const std::string& name, const std::string& file) {
  Handle attr = open_attr(obj, name, file);
  double v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v), file, "read attribute '" + name + "'");
  return v;
}

std::string read_attr_str(hid_t obj, const std::string& name, const std::string& file) {
  Handle attr = open_attr(obj, name, file);
  Handle type(check(H5Aget_type(attr.get()), file, "attribute type '" + name + "'"), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw std::runtime_error(fmt::format("{}: attribute '{}' is not a string", file, name));
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    char* s = nullptr;
    check(H5Aread(attr.get(), mem.get(), &s), file, "read attribute '" + name + "'");
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  size_t n = H5Tget_size(type.get());
  std::string buf(n, '\0');
  check(H5Aread(attr.get(), type.get(), buf.data()), file, "read attribute '" + name + "'");
  buf.resize(std::min(buf.find('\0'), n));
  return buf;
}

std::vector<int64_t> dataset_dims(hid_t dset, const std::string& file, const std::string& what) {
  Handle space(check(H5Dget_space(dset), file, what + ": dataspace"), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.get());
  check(nd, file, what + ": rank");
  std::vector<hsize_t> d(nd);
  check(H5Sget_simple_extent_dims(space.get(), d.data(), nullptr), file, what + ": dims");
  return std::vector<int64_t>(d.begin(), d.end());
}

}  // namespace dpep::h5
