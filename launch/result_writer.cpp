#include "launch/result_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

namespace dpep {
namespace {

std::runtime_error io_error(const std::string& what, const std::string& path) {
  return std::runtime_error(fmt::format("cannot {} {}: {}", what, path, std::strerror(errno)));
}

void write_all(int fd, const std::string& s, const std::string& path) {
  size_t off = 0;
  while (off < s.size()) {  // one call unless the kernel splits it (signals, huge lines)
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw io_error("write", path);
    off += static_cast<size_t>(n);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

std::string result_id(const nlohmann::json& line) {
  const auto& id = line.at("id");
  return id.is_string() ? id.get<std::string>() : id.dump();
}

int64_t seed_from_id(const std::string& id) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h & 0x7fffffffffffffffull);
}

void check_output_writable(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw io_error("write the output file", path);
  ::close(fd);
}

ResultWriter::ResultWriter(const std::string& path, bool resume) : path_(path) {
  if (resume) {
    const std::string text = read_file(path);
    const size_t end = text.rfind('\n');
    const size_t keep = end == std::string::npos ? 0 : end + 1;
    torn_ = keep < text.size();
    std::istringstream in(text.substr(0, keep));
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
        done_.insert(result_id(j));
      } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format(
            "--resume: line {} of {} is not a result line ({}); remove it and resume again", n,
            path, e.what()));
      }
      kept_++;
    }
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw io_error("write the output file", path);
    if (torn_ && ::ftruncate(fd_, static_cast<off_t>(keep)) != 0)
      throw io_error("cut the torn last line of", path);
    ::close(fd_);
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  } else {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  }
  if (fd_ < 0) throw io_error("write the output file", path);
}

ResultWriter::~ResultWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void ResultWriter::write(const nlohmann::json& result) {
  std::string line = result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  write_all(fd_, line, path_);
}

void ResultWriter::finish_in_order(const std::vector<std::string>& order) {
  std::unordered_map<std::string, size_t> pos;
  for (size_t i = 0; i < order.size(); ++i) pos.emplace(order[i], i);
  std::vector<std::pair<size_t, std::string>> lines;  // (rank, line)
  std::istringstream in(read_file(path_));
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto it = pos.find(result_id(nlohmann::json::parse(line)));
    lines.emplace_back(it == pos.end() ? order.size() : it->second, std::move(line));
  }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  const std::filesystem::path p(path_);
  const std::string tmp =
      (p.parent_path() / fmt::format(".{}.{}.tmp", p.filename().string(), ::getpid())).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw io_error("write the temporary file", tmp);
  try {
    std::string all;
    for (auto& [_, l] : lines) all += l + '\n';
    write_all(fd, all, tmp);
    if (::fsync(fd) != 0) throw io_error("sync", tmp);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw io_error("rename the ordered results onto", path_);
  }
}

}  // namespace dpep
