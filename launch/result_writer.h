// The results file of `dpep offline --input-file ... --output-file ...`, written as requests
// finish so that a crash loses nothing that had finished:
//   - each result is one complete JSON line with its "id", written with a single write(2) on an
//     O_APPEND descriptor (no user-space buffer: once rank 0 has it, it is in the file);
//   - resume: the complete lines already there are kept (their ids are done), a torn last line
//     (no newline: the process died mid-write) is cut off;
//   - finish_in_order(): an optional last pass writes the lines in input order to a temporary
//     file next to it and renames it over the file (atomic: the file is never half-sorted).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

namespace dpep {

// Throws std::runtime_error naming the path if it cannot be opened for writing (creates it if
// missing, changes nothing in an existing file). Called before any weight is read.
void check_output_writable(const std::string& path);

class ResultWriter {
 public:
  // resume = false: truncates the file. resume = true: keeps its complete lines (throws naming
  // the line if a complete line is not a JSON object with an "id").
  ResultWriter(const std::string& path, bool resume);
  ~ResultWriter();
  ResultWriter(const ResultWriter&) = delete;
  ResultWriter& operator=(const ResultWriter&) = delete;

  const std::unordered_set<std::string>& done() const { return done_; }  // ids already in the file
  size_t kept_lines() const { return kept_; }
  bool dropped_torn_line() const { return torn_; }

  void write(const nlohmann::json& result);  // one line, one write(2); throws on I/O errors
  // Rewrites the file with its lines sorted by the position of their id in `order` (ids not in
  // it go last, in file order), through a temporary file and a rename.
  void finish_in_order(const std::vector<std::string>& order);

 private:
  std::string path_;
  int fd_ = -1;
  std::unordered_set<std::string> done_;
  size_t kept_ = 0;
  bool torn_ = false;
};

// "id" of a result line as a string (numbers as their JSON text), as request ids are.
std::string result_id(const nlohmann::json& line);

// The sampling seed a request without one gets: a hash of its id, so a resumed run, or the
// same request at another position or on another rank, samples the same tokens.
int64_t seed_from_id(const std::string& id);

}  // namespace dpep
