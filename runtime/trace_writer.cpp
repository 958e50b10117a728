#include "runtime/trace_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace dpep {
namespace {

constexpr std::string_view kTail = "\n]}\n";

int64_t os_tid() {
  return static_cast<int64_t>(::syscall(SYS_gettid));
}

void write_all(int fd, const char* p, size_t n, int64_t off, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(
          fmt::format("cannot write trace file {}: {}", path, std::strerror(errno)));
    }
    p += w;
    n -= static_cast<size_t>(w);
    off += w;
  }
}

}  // namespace

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += ch;
    }
  }
  return out;
}

std::string TraceWriter::file_name(int rank) {
  return fmt::format("rank-{:04d}.json", rank);
}

TraceWriter::TraceWriter(const std::string& dir, int rank, const std::string& host) : rank_(rank) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  path_ = (std::filesystem::path(dir) / file_name(rank)).string();
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error(
        fmt::format("cannot open trace file {}: {}", path_, std::strerror(errno)));
  const std::string head = fmt::format(
      "{{\"displayTimeUnit\":\"ms\",\"otherData\":{{\"rank\":{},\"host\":\"{}\"}},"
      "\"traceEvents\":[\n",
      rank, json_escape(host));
  write_all(fd_, head.data(), head.size(), 0, path_);
  body_end_ = static_cast<int64_t>(head.size());
  std::lock_guard<std::mutex> lk(mu_);
  begin_event();
  buf_ += fmt::format(
      "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{},\"tid\":0,\"args\":{{\"name\":\"rank {} "
      "({})\"}}}}",
      rank, rank, json_escape(host));
  begin_event();
  buf_ += fmt::format(
      "{{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":{},\"tid\":0,\"args\":{{\"sort_"
      "index\":{}}}}}",
      rank, rank);
}

TraceWriter::~TraceWriter() {
  try {
    flush();
  } catch (...) {
    // Destructors must not throw; the last complete flush stays a valid document.
  }
  if (fd_ >= 0) ::close(fd_);
}

void TraceWriter::begin_event() {
  if (events_++ > 0) buf_ += ",\n";
}

void TraceWriter::append_us(double t_s) {
  // Integer nanoseconds first, so that a child event never ends after its parent by rounding.
  const int64_t ns = std::llround((t_s - origin_s_) * 1e9);
  const int64_t a = ns < 0 ? -ns : ns;
  buf_ += fmt::format("{}{}.{:03d}", ns < 0 ? "-" : "", a / 1000, a % 1000);
}

int64_t TraceWriter::tid_locked() {
  const int64_t tid = os_tid();
  if (named_threads_.emplace(tid, true).second) {
    char name[32] = "thread";
    pthread_getname_np(pthread_self(), name, sizeof(name));
    begin_event();
    buf_ += fmt::format(
        "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":\"{}\"}}"
        "}}",
        rank_, tid, json_escape(name));
  }
  return tid;
}

void TraceWriter::name_thread(std::string_view name) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t tid = os_tid();
  named_threads_[tid] = true;
  begin_event();
  buf_ += fmt::format(
      "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":\"{}\"}}}"
      "}",
      rank_, tid, json_escape(name));
}

void TraceWriter::complete(std::string_view name, std::string_view cat, double begin_s,
                           double end_s, std::string_view args_json) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t tid = tid_locked();
  begin_event();
  buf_ += fmt::format("{{\"name\":\"{}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":", json_escape(name),
                      json_escape(cat));
  append_us(begin_s);
  buf_ += ",\"dur\":";
  const int64_t d = std::max<int64_t>(
      0, std::llround((end_s - origin_s_) * 1e9) - std::llround((begin_s - origin_s_) * 1e9));
  buf_ += fmt::format("{}.{:03d},\"pid\":{},\"tid\":{}", d / 1000, d % 1000, rank_, tid);
  if (!args_json.empty()) {
    buf_ += ",\"args\":{";
    buf_ += args_json;
    buf_ += '}';
  }
  buf_ += '}';
}

void TraceWriter::counter(std::string_view name, double t_s,
                          std::initializer_list<std::pair<std::string_view, double>> values) {
  std::lock_guard<std::mutex> lk(mu_);
  begin_event();
  buf_ += fmt::format("{{\"name\":\"{}\",\"ph\":\"C\",\"ts\":", json_escape(name));
  append_us(t_s);
  buf_ += fmt::format(",\"pid\":{},\"tid\":0,\"args\":{{", rank_);
  bool first = true;
  for (const auto& [k, v] : values) {
    buf_ +=
        fmt::format("{}\"{}\":{}", first ? "" : ",", json_escape(k), std::isfinite(v) ? v : 0.0);
    first = false;
  }
  buf_ += "}}";
}

void TraceWriter::phase(const char* name, int layer, double begin_s, double end_s) {
  if (layer >= 0)
    complete(name, "forward", begin_s, end_s, fmt::format("\"layer\":{}", layer));
  else
    complete(name, "forward", begin_s, end_s);
}

void TraceWriter::flush() {
  std::lock_guard<std::mutex> lk(mu_);
  if (fd_ < 0) return;
  // One write of the new events and the tail at the old tail's offset: the file holds a complete
  // document before and after.
  const int64_t body = static_cast<int64_t>(buf_.size());
  buf_ += kTail;
  write_all(fd_, buf_.data(), buf_.size(), body_end_, path_);
  body_end_ += body;
  buf_.clear();
}

}  // namespace dpep
