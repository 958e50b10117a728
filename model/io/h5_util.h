// Thin RAII and error helpers over the HDF5 C API, shared by weights_file.cpp.
// Every failing call becomes a std::runtime_error "<file>: <what>: <HDF5's own reason>".
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dpep::h5 {

// Turns off HDF5's automatic printing of error stacks (idempotent).
void silence_errors();

// The innermost message of HDF5's current error stack ("" if none), e.g. "checksum verification
// failed". Read it right after a failing call.
std::string last_error();

// Owns one hid_t and closes it with the matching H5*close on destruction.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Throws std::runtime_error(file + ": " + what + ": " + last_error()) when id/status < 0.
hid_t check(hid_t id, const std::string& file, const std::string& what);

// True when every component of "a/b/c" exists below loc (no error if a parent is missing).
bool path_exists(hid_t loc, const std::string& path);

// Scalar attributes on an object.
void write_attr_i64(hid_t obj, const std::string& name, int64_t v, const std::string& file);
void write_attr_f64(hid_t obj, const std::string& name, double v, const std::string& file);
void write_attr_i8(hid_t obj, const std::string& name, int8_t v, const std::string& file);
void write_attr_str(hid_t obj, const std::string& name, const std::string& v,
                    const std::string& file);

// Type class of an attribute (H5T_INTEGER, H5T_FLOAT, H5T_STRING), or H5T_NO_CLASS if absent.
H5T_class_t attr_class(hid_t obj, const std::string& name);
int64_t read_attr_i64(hid_t obj, const std::string& name, const std::string& file);
double read_attr_f64(hid_t obj, const std::string& name, const std::string& file);
std::string read_attr_str(hid_t obj, const std::string& name, const std::string& file);

// Current dims of a dataset.
std::vector<int64_t> dataset_dims(hid_t dset, const std::string& file, const std::string& what);

}  // namespace dpep::h5
