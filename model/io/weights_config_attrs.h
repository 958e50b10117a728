// ModelConfig <-> HDF5 root attributes, one attribute per ModelConfig field (same name).
// Integers are int64, reals float64, booleans int8 (0/1), strings fixed-length UTF-8.
#pragma once
#include <hdf5.h>

#include <string>

#include "model/config.h"

namespace dpep {

void write_config_attrs(hid_t obj, const ModelConfig& config, const std::string& file);
// Every field must be present with its type; the result is validated.
ModelConfig read_config_attrs(hid_t obj, const std::string& file);

}  // namespace dpep
