// --trace-dir: one Chrome trace-event file per rank (DIR/rank-0000.json), the legacy JSON format
// that Perfetto UI and chrome://tracing open. Complete ("X") events with microsecond ts/dur,
// pid = rank, tid = the OS thread id; metadata names the process "rank N (host)".
//
// The file is a complete JSON document after every flush(): the closing "]}" is written after
// the events and overwritten by the next flush, so a run that ends by an error or an abort
// still leaves a parseable file (up to its last flush, which the DP loop does every step).
// No MPI here: the caller picks the time origin (all ranks take it right after a collective).
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/model.h"

namespace dpep {

class TraceWriter : public PhaseSink {
 public:
  // Creates DIR if needed and opens DIR/rank-%04d.json (truncated). Throws naming the path.
  TraceWriter(const std::string& dir, int rank, const std::string& host);
  ~TraceWriter() override;  // flushes
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // Times are steady-clock seconds (as the loop and the model measure them); ts = t - origin.
  void set_origin(double steady_s) { origin_s_ = steady_s; }
  // Names the calling thread in the trace (thread_name metadata).
  void name_thread(std::string_view name);
  // A complete event. args_json: the members of the "args" object without braces
  // (e.g. "\"layer\":3"), or empty.
  void complete(std::string_view name, std::string_view cat, double begin_s, double end_s,
                std::string_view args_json = {});
  // A counter track sample: name {key: value, ...} at time t.
  void counter(std::string_view name, double t_s,
               std::initializer_list<std::pair<std::string_view, double>> values);
  // PhaseSink: model phases (category "forward"; args.layer when layer >= 0).
  void phase(const char* name, int layer, double begin_s, double end_s) override;
  // Appends the buffered events to the file and closes the document after them.
  void flush();

  const std::string& path() const { return path_; }
  int64_t events_written() const { return events_; }
  static std::string file_name(int rank);  // "rank-0000.json"

 private:
  void begin_event();  // "," between events; caller holds mu_
  int64_t tid_locked();
  void append_us(double t_s);  // microseconds since origin, 3 decimals

  std::mutex mu_;
  std::string path_;
  int fd_ = -1;
  int rank_ = 0;
  int64_t body_end_ = 0;  // file offset where the closing "]}" starts
  int64_t events_ = 0;
  double origin_s_ = 0;
  std::string buf_;
  std::unordered_map<int64_t, bool> named_threads_;
};

// Escapes a string for a JSON string literal (without the quotes).
std::string json_escape(std::string_view s);

}  // namespace dpep
