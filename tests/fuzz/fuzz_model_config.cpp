// libFuzzer harness for the model config checks. Input byte 0 picks the mode:
//   even: the rest is a Hugging Face config.json for ModelConfig::from_hf_json (which validates);
//         a config it accepts must round-trip exactly through the HDF5 root attributes
//         (write_config_attrs -> read_config_attrs) and give a finite softmax scale.
//   odd:  the rest edits the attributes of a valid (tiny preset) in-memory HDF5 file before
//         read_config_attrs: records [field byte][kind byte][payload], kind 0 deletes the
//         attribute, 1 writes int64 (8 bytes), 2 float64 (8 bytes), 3 int8 (1 byte), 4 a
//         string (length byte + bytes). Accepted configs must pass validate() again.
// Allowed failures: std::invalid_argument / std::runtime_error. Anything else is a finding.
#include <hdf5.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "model/config.h"
#include "model/io/h5_util.h"
#include "model/io/weights_config_attrs.h"

namespace {

using namespace dpep;

// A fresh in-memory HDF5 file (core driver, never written to disk).
h5::Handle memory_file() {
  static int n = 0;
  h5::Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fapl_core(fapl.get(), 1 << 16, 0);
  const std::string name = "fuzz-config-" + std::to_string(n++) + ".h5";
  h5::Handle f(H5Fcreate(name.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!f.valid()) std::abort();
  return f;
}

void round_trip(const ModelConfig& c) {
  if (!std::isfinite(c.softmax_scale()) || c.softmax_scale() <= 0) std::abort();
  h5::Handle f = memory_file();
  write_config_attrs(f.get(), c, "mem");
  if (read_config_attrs(f.get(), "mem").to_fields() != c.to_fields()) std::abort();
}

void edit_attrs(const uint8_t* p, size_t n) {
  h5::Handle f = memory_file();
  write_config_attrs(f.get(), ModelConfig::preset("tiny"), "mem");
  const auto names = ModelConfig::field_names();
  const hid_t obj = f.get();
  while (n >= 2) {
    const std::string key = names[p[0] % names.size()];
    const int kind = p[1] % 5;
    p += 2, n -= 2;
    if (H5Aexists(obj, key.c_str()) > 0) H5Adelete(obj, key.c_str());
    if (kind == 1 || kind == 2) {
      if (n < 8) return;
      int64_t i;
      double d;
      std::memcpy(&i, p, 8);
      std::memcpy(&d, p, 8);
      if (kind == 1)
        h5::write_attr_i64(obj, key, i, "mem");
      else
        h5::write_attr_f64(obj, key, d, "mem");
      p += 8, n -= 8;
    } else if (kind == 3) {
      if (n < 1) return;
      h5::write_attr_i8(obj, key, static_cast<int8_t>(p[0]), "mem");
      p += 1, n -= 1;
    } else if (kind == 4) {
      if (n < 1) return;
      const size_t len = std::min<size_t>(p[0], n - 1);
      h5::write_attr_str(obj, key, std::string(reinterpret_cast<const char*>(p + 1), len), "mem");
      p += 1 + len, n -= 1 + len;
    }
  }
  try {
    const ModelConfig c = read_config_attrs(obj, "mem");
    c.validate();
    if (!std::isfinite(c.softmax_scale())) std::abort();
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool init = (h5::silence_errors(), true);
  (void)init;
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    ModelConfig c;
    try {
      c = ModelConfig::from_hf_json(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
    } catch (const std::invalid_argument&) {
      return 0;
    }
    round_trip(c);
  } else {
    edit_attrs(data + 1, size - 1);
  }
  return 0;
}
