#include "model/io/weights_config_attrs.h"

#include <fmt/format.h>

#include <map>
#include <stdexcept>

#include "model/io/h5_util.h"

namespace dpep {
namespace {

using FieldKind = ModelConfig::FieldKind;

const std::map<std::string, FieldKind>& field_kinds() {
  static const auto kinds = ModelConfig::field_kinds();
  return kinds;
}

}  // namespace

void write_config_attrs(hid_t obj, const ModelConfig& config, const std::string& file) {
  for (const auto& [key, value] : config.to_fields()) {
    switch (field_kinds().at(key)) {
      case FieldKind::Int:
        h5::write_attr_i64(obj, key, std::stoll(value), file);
        break;
      case FieldKind::Real:
        h5::write_attr_f64(obj, key, std::stod(value), file);
        break;
      case FieldKind::Bool:
        h5::write_attr_i8(obj, key, value == "true" ? 1 : 0, file);
        break;
      case FieldKind::Name:
        h5::write_attr_str(obj, key, value, file);
        break;
    }
  }
}

ModelConfig read_config_attrs(hid_t obj, const std::string& file) {
  ModelConfig c;
  for (const auto& [key, kind] : field_kinds()) {
    const H5T_class_t cls = h5::attr_class(obj, key);
    if (cls == H5T_NO_CLASS)
      throw std::runtime_error(fmt::format(
          "{}: missing config attribute '{}' (file from another dpep version?)", file, key));
    const H5T_class_t want = kind == FieldKind::Real   ? H5T_FLOAT
                             : kind == FieldKind::Name ? H5T_STRING
                                                       : H5T_INTEGER;
    if (cls != want)
      throw std::runtime_error(
          fmt::format("{}: config attribute '{}' has the wrong type", file, key));
    std::string v;
    switch (kind) {
      case FieldKind::Int:
        v = std::to_string(h5::read_attr_i64(obj, key, file));
        break;
      case FieldKind::Real:
        v = fmt::format("{}", h5::read_attr_f64(obj, key, file));
        break;
      case FieldKind::Bool:
        v = h5::read_attr_i64(obj, key, file) ? "true" : "false";
        break;
      case FieldKind::Name:
        v = h5::read_attr_str(obj, key, file);
        break;
    }
    c.set_field(key, v);
  }
  try {
    c.validate();
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", file, e.what()));
  }
  return c;
}

}  // namespace dpep
