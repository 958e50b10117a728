#include "model/io/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace dpep {
namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit is 100 MB

struct DTypeInfo {
  const char* name;
  StDType type;
  int bytes;
};
constexpr DTypeInfo kDTypes[] = {
    {"BOOL", StDType::BOOL, 1}, {"U8", StDType::U8, 1},           {"I8", StDType::I8, 1},
    {"I16", StDType::I16, 2},   {"U16", StDType::U16, 2},         {"F16", StDType::F16, 2},
    {"BF16", StDType::BF16, 2}, {"I32", StDType::I32, 4},         {"U32", StDType::U32, 4},
    {"F32", StDType::F32, 4},   {"I64", StDType::I64, 8},         {"U64", StDType::U64, 8},
    {"F64", StDType::F64, 8},   {"F8_E4M3", StDType::F8_E4M3, 1}, {"F8_E5M2", StDType::F8_E5M2, 1},
};

void pread_all(int fd, void* dst, uint64_t n, uint64_t off, const std::string& what) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, std::min<uint64_t>(n, 1ull << 30), static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      throw std::runtime_error(fmt::format("{}: read failed: {}", what, std::strerror(errno)));
    if (r == 0)
      throw std::runtime_error(fmt::format("{}: unexpected end of file (truncated?)", what));
    p += r;
    n -= static_cast<uint64_t>(r);
    off += static_cast<uint64_t>(r);
  }
}

}  // namespace

const char* st_dtype_name(StDType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.name;
  return "?";
}
int st_dtype_bytes(StDType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.bytes;
  return 0;
}

int64_t StTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0)
    throw std::runtime_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  try {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw std::runtime_error(path + ": cannot stat");
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    auto bad = [&](const std::string& why) {
      return std::runtime_error(fmt::format("{}: bad safetensors header: {}", path, why));
    };
    if (file_size < 8)
      throw bad(fmt::format("file is {} bytes, shorter than the 8-byte length", file_size));
    unsigned char len_bytes[8];
    pread_all(fd_, len_bytes, 8, 0, path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
    if (n < 2 || n > kMaxHeader || n > file_size - 8)
      throw bad(fmt::format("header length {} does not fit the file of {} bytes", n, file_size));
    std::string text(n, '\0');
    pread_all(fd_, text.data(), n, 8, path);
    data_start_ = 8 + n;
    const uint64_t data_size = file_size - data_start_;

    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const std::exception& e) {
      throw bad(std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object()) throw bad("not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& name = it.key();
      const auto& v = it.value();
      if (name == "__metadata__") {
        if (!v.is_object()) throw bad("__metadata__ is not an object");
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m.value().is_string())
            throw bad("__metadata__ value '" + m.key() + "' is not a string");
          metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      auto tbad = [&](const std::string& why) {
        return bad(fmt::format("tensor '{}': {}", name, why));
      };
      if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
          !v.contains("data_offsets"))
        throw tbad("needs dtype, shape and data_offsets");
      if (!v["dtype"].is_string()) throw tbad("dtype is not a string");
      StTensor t;
      t.name = name;
      const std::string dt = v["dtype"].get<std::string>();
      const DTypeInfo* info = nullptr;
      for (const auto& d : kDTypes)
        if (dt == d.name) info = &d;
      if (!info) throw tbad("unknown dtype '" + dt + "'");
      t.dtype = info->type;
      if (!v["shape"].is_array()) throw tbad("shape is not an array");
      uint64_t count = 1;
      for (const auto& d : v["shape"]) {
        if (!d.is_number_unsigned()) throw tbad("shape has a non-integer or negative entry");
        const uint64_t x = d.get<uint64_t>();
        if (x > 0 && count > (1ull << 62) / x) throw tbad("shape overflows");
        count *= x;
        t.shape.push_back(static_cast<int64_t>(x));
      }
      const auto& off = v["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
          !off[1].is_number_unsigned())
        throw tbad("data_offsets must be two non-negative integers");
      t.begin = off[0].get<uint64_t>();
      t.end = off[1].get<uint64_t>();
      if (t.begin > t.end || t.end > data_size)
        throw tbad(fmt::format("data_offsets [{}, {}] outside the data section of {} bytes",
                               t.begin, t.end, data_size));
      if (count * static_cast<uint64_t>(info->bytes) != t.end - t.begin)
        throw tbad(fmt::format("shape and dtype {} need {} bytes but data_offsets span {}", dt,
                               count * info->bytes, t.end - t.begin));
      tensors_[name] = std::move(t);
    }
    // No two tensors may share bytes.
    std::vector<const StTensor*> order;
    for (const auto& [_, t] : tensors_)
      if (t.end > t.begin) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < order.size(); ++i)
      if (order[i]->begin < order[i - 1]->end)
        throw bad(fmt::format("tensors '{}' and '{}' overlap", order[i - 1]->name, order[i]->name));
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) ::close(fd_);
}

const StTensor& SafetensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw std::runtime_error(fmt::format("{}: no tensor '{}'", path_, name));
  return it->second;
}

void SafetensorsFile::read(const std::string& name, void* dst) const {
  const StTensor& t = get(name);
  pread_all(fd_, dst, t.nbytes(), data_start_ + t.begin,
            fmt::format("{}: tensor '{}'", path_, name));
}

void SafetensorsFile::read_range(const std::string& name, uint64_t offset, uint64_t n,
                                 void* dst) const {
  const StTensor& t = get(name);
  if (offset > t.nbytes() || n > t.nbytes() - offset)
    throw std::out_of_range(fmt::format("{}: tensor '{}': bytes [{}, {}) outside its {} bytes",
                                        path_, name, offset, offset + n, t.nbytes()));
  pread_all(fd_, dst, n, data_start_ + t.begin + offset,
            fmt::format("{}: tensor '{}'", path_, name));
}

std::vector<uint8_t> SafetensorsFile::read_bytes(const std::string& name) const {
  std::vector<uint8_t> out(get(name).nbytes());
  read(name, out.data());
  return out;
}

}  // namespace dpep
