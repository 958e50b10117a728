#include "launch/report/merge_traces.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace dpep::report {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kHeadEnd = "\"traceEvents\":[\n";
constexpr std::string_view kTail = "\n]}\n";

}  // namespace

void merge_traces(const std::string& dir, int num_ranks, const std::string& out_path) {
  if (!fs::is_directory(dir)) throw std::runtime_error(fmt::format("{} is not a directory", dir));
  std::vector<fs::path> files;
  for (int r = 0; r < num_ranks; ++r) {
    files.push_back(fs::path(dir) / fmt::format("rank-{:04d}.json", r));
    if (!fs::is_regular_file(files.back()))
      throw std::runtime_error(fmt::format("no trace {}", files.back().string()));
  }
  const std::string tmp = out_path + ".tmp";
  std::ofstream out(tmp, std::ios::binary);
  if (!out) throw std::runtime_error(fmt::format("cannot write {}", tmp));
  out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  bool first = true;
  std::vector<char> buf(1 << 20);
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const auto size = static_cast<int64_t>(fs::file_size(f));
    std::string head(static_cast<size_t>(std::min<int64_t>(size, 4096)), '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    const size_t h = head.find(kHeadEnd);
    std::string tail(kTail.size(), '\0');
    if (size >= static_cast<int64_t>(kTail.size())) {
      in.seekg(size - static_cast<int64_t>(kTail.size()));
      in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    }
    if (!in || h == std::string::npos || tail != kTail ||
        static_cast<int64_t>(h + kHeadEnd.size()) > size - static_cast<int64_t>(kTail.size()))
      throw std::runtime_error(fmt::format("{} is not a complete dpep trace", f.string()));
    int64_t pos = static_cast<int64_t>(h + kHeadEnd.size());
    const int64_t end = size - static_cast<int64_t>(kTail.size());
    if (pos == end) continue;  // no events
    if (!first) out << ",\n";
    first = false;
    in.seekg(pos);
    while (pos < end) {
      const auto n = static_cast<std::streamsize>(std::min<int64_t>(end - pos, buf.size()));
      in.read(buf.data(), n);
      if (!in) throw std::runtime_error(fmt::format("cannot read {}", f.string()));
      out.write(buf.data(), n);
      pos += n;
    }
  }
  out << kTail;
  out.close();
  if (!out) throw std::runtime_error(fmt::format("cannot write {}", tmp));
  fs::rename(tmp, out_path);
}

}  // namespace dpep::report
