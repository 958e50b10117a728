// dpep report LOGDIR: pictures of a finished run from its per-rank logs (the "run summary" line
// each rank writes when its loop ends): LOGDIR/expert-load.svg and LOGDIR/step-time.svg.
#include <fmt/format.h>

#include <filesystem>
#include <vector>

#include "launch/command.h"
#include "launch/report/merge_traces.h"
#include "launch/report/report_svg.h"
#include "launch/run_options.h"

namespace po = boost::program_options;

namespace dpep {
namespace {

int run_report(int argc, char** argv) {
  std::string log_dir, out_dir, trace_dir;
  // LOGDIR may come first, without a flag; the rest are options.
  std::vector<char*> args(argv, argv + argc);
  if (args.size() > 1 && args[1][0] != '-') {
    log_dir = args[1];
    args.erase(args.begin() + 1);
  }
  // Anything else without a flag is a mistake (boost would ignore it).
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string a = args[i], prev = args[i - 1];
    if (a[0] != '-' && prev != "--log-dir" && prev != "--out-dir" && prev != "--trace-dir")
      throw std::invalid_argument(fmt::format(
          "unexpected argument '{}' (usage: dpep report LOGDIR [--out-dir DIR] [--trace-dir DIR])",
          a));
  }
  po::options_description d("report options");
  d.add_options()("log-dir", po::value(&log_dir), "the run's --log-dir (or give it first)")(
      "out-dir", po::value(&out_dir), "where to write the SVG files (default: the log dir)")(
      "trace-dir", po::value(&trace_dir),
      "also join the run's --trace-dir files into DIR/all-ranks.json (all ranks on one timeline)");
  po::variables_map vm;
  if (!parse_command_line(static_cast<int>(args.size()), args.data(), d, vm,
                          "usage: dpep report LOGDIR [--out-dir DIR] [--trace-dir DIR]"))
    return 0;
  if (log_dir.empty()) throw std::invalid_argument("give the run's log dir: dpep report LOGDIR");
  if (out_dir.empty()) out_dir = log_dir;
  const auto ranks = report::read_run_summaries(log_dir);
  const auto paths = report::write_report(ranks, out_dir);
  fmt::print("{}", report::report_text(ranks));
  for (const auto& p : paths) fmt::print("wrote {}\n", p);
  if (!trace_dir.empty()) {
    const std::string merged =
        (std::filesystem::path(trace_dir) / report::kMergedTraceFile).string();
    report::merge_traces(trace_dir, ranks[0].ranks, merged);
    fmt::print("wrote {} (traces of {} ranks)\n", merged, ranks[0].ranks);
  }
  return 0;
}

RegisterCommand reg("report",
                    "SVG pictures of a finished run from its log dir (expert load, step time)",
                    run_report);

}  // namespace
}  // namespace dpep
