// One trace of all ranks on one timeline: `dpep report --trace-dir DIR`
// joins DIR/rank-NNNN.json (as runtime/trace_writer.h writes them) into DIR/all-ranks.json,
// where each rank is a process of its own on one timeline. The events are copied as text, in
// chunks, so traces larger than memory merge too.
#pragma once
#include <string>

namespace dpep::report {

inline constexpr const char* kMergedTraceFile = "all-ranks.json";

// Joins DIR/rank-0000.json .. rank-(num_ranks-1).json into out_path. Throws naming the file
// that is missing or not a complete dpep trace.
void merge_traces(const std::string& dir, int num_ranks, const std::string& out_path);

}  // namespace dpep::report
