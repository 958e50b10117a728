#include "model/io/safetensors_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace dpep {
namespace {
void pwrite_all(int fd, const void* src, uint64_t n, uint64_t off, const std::string& what) {
  auto* p = static_cast<const char*>(src);
  while (n > 0) {
    ssize_t r = ::pwrite(fd, p, std::min<uint64_t>(n, 1ull << 30), static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      throw std::runtime_error(fmt::format("{}: write failed: {}", what, std::strerror(errno)));
    p += r;
    n -= static_cast<uint64_t>(r);
    off += static_cast<uint64_t>(r);
  }
}
}  // namespace

SafetensorsWriter::SafetensorsWriter(const std::string& path, const std::vector<StDecl>& tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path) {
  nlohmann::ordered_json h;
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& d : tensors) {
    StTensor t{d.name, d.dtype, d.shape, off, 0};
    t.end = off + static_cast<uint64_t>(t.numel()) * st_dtype_bytes(d.dtype);
    if (tensors_.count(d.name))
      throw std::invalid_argument(path + ": tensor '" + d.name + "' declared twice");
    h[d.name] = {
        {"dtype", st_dtype_name(d.dtype)}, {"shape", d.shape}, {"data_offsets", {t.begin, t.end}}};
    off = t.end;
    tensors_[d.name] = t;
    written_[d.name] = false;
  }
  data_bytes_ = off;
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8,
              ' ');  // keep the data 8-byte aligned, as the format suggests
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  pwrite_all(fd_, len, 8, 0, path);
  pwrite_all(fd_, text.data(), text.size(), 8, path);
  data_start_ = 8 + text.size();
  if (::ftruncate(fd_, static_cast<off_t>(data_start_ + data_bytes_)) != 0)
    throw std::runtime_error(fmt::format("{}: cannot size file: {}", path, std::strerror(errno)));
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsWriter::write(const std::string& name, const void* data) {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw std::invalid_argument(path_ + ": tensor '" + name + "' was not declared");
  pwrite_all(fd_, data, it->second.nbytes(), data_start_ + it->second.begin,
             path_ + ": tensor '" + name + "'");
  written_[name] = true;
}

void SafetensorsWriter::close() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  for (const auto& [name, done] : written_)
    if (!done)
      throw std::runtime_error(path_ + ": tensor '" + name + "' declared but never written");
}

}  // namespace dpep
