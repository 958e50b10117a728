// --trace-dir and the run pictures: the trace file is a valid Chrome trace document after every
// flush, a DP loop run on a tiny model traces every phase, the run summary line round-trips,
// and the SVG pictures are well formed, escape their text and carry the run's numbers.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include <unistd.h>

#include "comm/loopback_control_plane.h"
#include "launch/report/merge_traces.h"
#include "launch/report/report_svg.h"
#include "launch/report/svg.h"
#include "model_test_util.h"
#include "runtime/batch_source.h"
#include "runtime/dp_loop.h"
#include "runtime/run_summary.h"
#include "runtime/trace_writer.h"

using namespace dpep;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() /
                     fmt::format("dpep-test-trace-{}-{}", name, static_cast<long>(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

json read_json(const fs::path& p) {
  std::ifstream f(p);
  return json::parse(f);  // throws if the file is not one complete JSON document
}

// Complete events of each thread must nest (no partial overlap), or Perfetto misplaces them.
// The file has whole nanoseconds; read back as doubles of about 1e10 us, ts + dur carries a few
// 1e-6 us of rounding, so spans are compared to the file's resolution (1 ns = 1e-3 us).
void expect_nested(const json& events) {
  std::map<int64_t, std::vector<std::pair<double, double>>> by_tid;
  for (const auto& e : events)
    if (e["ph"] == "X") {
      const double b = e["ts"].get<double>(), d = e["dur"].get<double>();
      ASSERT_GE(d, 0);
      by_tid[e["tid"].get<int64_t>()].emplace_back(b, b + d);
    }
  for (auto& [tid, spans] : by_tid) {
    std::sort(spans.begin(), spans.end(), [](auto& a, auto& b) {
      return a.first != b.first ? a.first < b.first : a.second > b.second;
    });
    std::vector<double> open_ends;
    for (const auto& [b, e] : spans) {
      while (!open_ends.empty() && open_ends.back() <= b + 1e-3) open_ends.pop_back();
      if (!open_ends.empty()) {
        ASSERT_LE(e, open_ends.back() + 1e-3) << "span [" << b << ", " << e << "]";
      }
      open_ends.push_back(e);
    }
  }
}

// Well-formedness of the SVG the writer emits: one root, balanced tags, quoted attributes,
// no raw '&' or '<' in text (python's xml parser checks the same files in e2e_trace_report.sh).
void expect_well_formed_xml(const std::string& doc) {
  std::vector<std::string> stack;
  size_t i = doc.find("?>");
  ASSERT_NE(i, std::string::npos);
  i += 2;
  int roots = 0;
  while (i < doc.size()) {
    const size_t lt = doc.find('<', i);
    const std::string text = doc.substr(i, lt == std::string::npos ? std::string::npos : lt - i);
    for (size_t k = 0; k < text.size(); ++k) {
      ASSERT_NE(text[k], '>') << "raw '>' in text near " << text.substr(0, 60);
      if (text[k] == '&') {
        const size_t semi = text.find(';', k);
        ASSERT_NE(semi, std::string::npos);
        const std::string ent = text.substr(k, semi - k + 1);
        ASSERT_TRUE(ent == "&amp;" || ent == "&lt;" || ent == "&gt;" || ent == "&quot;" ||
                    ent == "&apos;")
            << ent;
      }
    }
    if (lt == std::string::npos) break;
    const size_t gt = doc.find('>', lt);
    ASSERT_NE(gt, std::string::npos);
    std::string tag = doc.substr(lt + 1, gt - lt - 1);
    ASSERT_EQ(tag.find('<'), std::string::npos) << tag;
    if (tag[0] == '/') {
      ASSERT_FALSE(stack.empty()) << tag;
      ASSERT_EQ(stack.back(), tag.substr(1));
      stack.pop_back();
    } else {
      const bool self_closing = tag.back() == '/';
      const std::string name = tag.substr(0, tag.find_first_of(" /"));
      // Attribute values are quoted and hold no raw '<' or '&' outside entities.
      size_t quotes = std::count(tag.begin(), tag.end(), '"');
      ASSERT_EQ(quotes % 2, 0u) << tag;
      if (stack.empty()) ++roots;
      if (!self_closing) stack.push_back(name);
    }
    i = gt + 1;
  }
  EXPECT_TRUE(stack.empty());
  EXPECT_EQ(roots, 1);
}

RankRunSummary make_summary(int rank, int ranks, int experts_per_rank, int64_t base) {
  RankRunSummary s;
  s.rank = rank;
  s.ranks = ranks;
  s.host = rank == 0 ? "node<a&b>" : "node-b";
  s.steps = 12;
  s.busy_steps = 10;
  s.tokens = 100 + rank;
  s.wall_s = 2.0;
  for (int c = 0; c < kNumTimeCategories; ++c) s.time_s.emplace_back(kTimeCategories[c], 0.125);
  s.first_expert = rank * experts_per_rank;
  s.num_experts = ranks * experts_per_rank;
  for (int layer : {1, 2}) {
    std::vector<int64_t> load;
    for (int e = 0; e < experts_per_rank; ++e) load.push_back(base + 10 * layer + e);
    s.expert_load.emplace_back(layer, load);
  }
  return s;
}

}  // namespace

TEST(TraceWriter, ValidDocumentAfterEveryFlushWithEscapedNames) {
  const fs::path dir = temp_dir("writer");
  {
    TraceWriter t(dir.string(), 3, "host \"q\"\n");
    EXPECT_EQ(t.path(), (dir / "rank-0003.json").string());
    t.set_origin(100.0);
    t.name_thread("dp loop");
    t.complete("step", "step", 100.001, 100.002, "\"step\":0");
    t.complete("odd \"name\"\\\t", "x", 100.0015, 100.0016);
    t.flush();
    json j = read_json(t.path());  // complete while the writer is still open (abort case)
    ASSERT_TRUE(j["traceEvents"].is_array());
    t.phase("attention", 2, 100.003, 100.004);
    t.counter("sequences", 100.003, {{"running", 4}, {"waiting", 1}});
    t.flush();
    t.flush();  // an empty flush keeps the document
    j = read_json(t.path());
    const auto& ev = j["traceEvents"];
    std::map<std::string, json> by_name;
    for (const auto& e : ev) by_name[e["name"].get<std::string>()] = e;
    EXPECT_EQ(by_name["process_name"]["args"]["name"], "rank 3 (host \"q\"\n)");
    EXPECT_EQ(by_name["process_name"]["pid"], 3);
    EXPECT_EQ(by_name["thread_name"]["args"]["name"], "dp loop");
    EXPECT_TRUE(by_name.count("odd \"name\"\\\t"));
    const json& step = by_name["step"];
    EXPECT_EQ(step["ph"], "X");
    EXPECT_NEAR(step["ts"].get<double>(), 1000.0, 1e-3);  // microseconds from the origin
    EXPECT_NEAR(step["dur"].get<double>(), 1000.0, 1e-3);
    EXPECT_EQ(step["args"]["step"], 0);
    EXPECT_EQ(by_name["attention"]["args"]["layer"], 2);
    EXPECT_EQ(by_name["attention"]["cat"], "forward");
    EXPECT_EQ(by_name["sequences"]["ph"], "C");
    EXPECT_EQ(by_name["sequences"]["args"]["running"], 4);
    EXPECT_EQ(by_name["step"]["tid"], by_name["attention"]["tid"]);
    EXPECT_EQ(t.events_written(), static_cast<int64_t>(ev.size()));
  }
  EXPECT_TRUE(read_json(dir / "rank-0003.json")["traceEvents"].is_array());
  fs::remove_all(dir);
}

TEST(TraceWriter, MergedTraceHoldsEveryRanksEvents) {
  const fs::path dir = temp_dir("merge");
  size_t total = 0;
  for (int r = 0; r < 3; ++r) {
    TraceWriter t(dir.string(), r, "h");
    for (int i = 0; i <= r; ++i) t.complete("step", "step", i, i + 0.5);
    t.flush();
    total += read_json(t.path())["traceEvents"].size();
  }
  const fs::path out = dir / report::kMergedTraceFile;
  report::merge_traces(dir.string(), 3, out.string());
  const json j = read_json(out);
  ASSERT_EQ(j["traceEvents"].size(), total);
  std::map<int, int> steps;
  for (const auto& e : j["traceEvents"])
    if (e["name"] == "step") steps[e["pid"].get<int>()]++;
  EXPECT_EQ(steps, (std::map<int, int>{{0, 1}, {1, 2}, {2, 3}}));
  // A rank file cut short (not written by a finished flush) or missing is named.
  EXPECT_THROW(report::merge_traces(dir.string(), 4, out.string()), std::runtime_error);
  fs::resize_file(dir / "rank-0001.json", fs::file_size(dir / "rank-0001.json") - 2);
  try {
    report::merge_traces(dir.string(), 3, out.string());
    FAIL() << "a cut file must be refused";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("rank-0001.json"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_json(out)["traceEvents"].size(), total);  // the earlier merge is untouched
  fs::remove_all(dir);
}

TEST(TraceWriter, UnwritablePathIsAClearError) {
  const fs::path dir = temp_dir("bad");
  std::ofstream(dir / "file") << "x";
  try {
    TraceWriter t((dir / "file").string(), 0, "h");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("rank-0000.json"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

namespace {
// Nothing for the first polls (so the loop idles), then a batch of requests.
class LateSource final : public RequestSource {
 public:
  explicit LateSource(std::vector<Request> r) : inner_(std::move(r)) {}
  void poll(std::vector<Request>& reqs, std::vector<int64_t>& aborts) override {
    if (ready()) inner_.poll(reqs, aborts);
  }
  bool ready() override { return ++asked_ > 3 && inner_.ready(); }
  bool exhausted() override { return inner_.exhausted(); }
  void on_event(const RequestEvent& e, int rank) override { inner_.on_event(e, rank); }
  BatchSource inner_;
  int asked_ = 0;
};
}  // namespace

TEST(TraceWriter, DpLoopTracesEveryPhaseAndLogsTheRunSummary) {
  const fs::path dir = temp_dir("loop");
  const ModelConfig c = ModelConfig::preset("tiny");
  Model model(c, dpep::testing::random_weights(c, 5), {});
  comm::LoopbackExchange ex;
  comm::LoopbackControlPlane cp;
  Engine engine(model, ex, EngineConfig{4, 64, 16, 1024});
  std::ostringstream log_text;
  auto log = std::make_shared<spdlog::logger>(
      "t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  log->set_level(spdlog::level::info);
  std::vector<Request> reqs;
  for (int i = 0; i < 3; ++i) {
    Request r;
    r.id = i;
    r.prompt = {5 + i, 6, 7, 8, 9};
    r.sampling.max_tokens = 3;
    r.sampling.ignore_eos = true;
    reqs.push_back(r);
  }
  LateSource source(reqs);
  TraceWriter trace(dir.string(), 0, "testhost");
  DpLoop loop(cp, engine, log, DpLoopOptions{BalanceStrategy::LeastTokens, 50, &trace, "testhost"});
  loop.run(&source);
  log->flush();

  const json j = read_json(trace.path());
  const json& ev = j["traceEvents"];
  std::map<std::string, int> count;
  std::map<std::string, std::set<int>> layers;
  for (const auto& e : ev) {
    count[e["name"]]++;
    if (e.contains("args") && e["args"].contains("layer"))
      layers[e["name"]].insert(e["args"]["layer"].get<int>());
  }
  const int busy = static_cast<int>(loop.totals().busy_steps);
  ASSERT_GT(busy, 0);
  EXPECT_EQ(count["step"], busy);
  for (const char* name : {"schedule", "forward", "sampling", "gather", "head"})
    EXPECT_EQ(count[name], busy) << name;
  EXPECT_EQ(count["scatter"], loop.totals().steps);
  EXPECT_EQ(count["agree"], loop.totals().steps);
  EXPECT_GE(count["idle"], 1);
  const int L = static_cast<int>(c.num_hidden_layers),
            dense = static_cast<int>(c.first_k_dense_replace);
  EXPECT_EQ(count["attention"], busy * L);
  EXPECT_EQ(count["dense mlp"], busy * dense);
  for (const char* name : {"router", "dispatch", "experts", "combine", "shared"}) {
    EXPECT_EQ(count[name], busy * (L - dense)) << name;
    EXPECT_EQ(layers[name].size(), static_cast<size_t>(L - dense)) << name;
    EXPECT_EQ(*layers[name].begin(), dense) << name;
  }
  EXPECT_EQ(layers["attention"].size(), static_cast<size_t>(L));
  EXPECT_EQ(count["process_name"], 1);
  for (const auto& e : ev)
    if (e["name"] == "process_name") {
      EXPECT_EQ(e["args"]["name"], "rank 0 (testhost)");
    }
  expect_nested(ev);

  // The run summary line: parses, carries the engine's expert load and the loop's totals.
  std::istringstream in(log_text.str());
  const auto s = find_run_summary(in);
  ASSERT_TRUE(s.has_value()) << log_text.str();
  EXPECT_TRUE(s->complete);
  EXPECT_EQ(s->empty_steps, 0);  // one rank: every busy step has its tokens
  EXPECT_EQ(s->host, "testhost");
  EXPECT_EQ(s->busy_steps, busy);
  EXPECT_EQ(s->tokens, loop.totals().rows);
  EXPECT_EQ(s->num_experts, c.n_routed_experts);
  EXPECT_EQ(s->expert_load.size(), static_cast<size_t>(L - dense));
  int64_t pairs = 0;
  for (const auto& m : engine.stats().moe)
    for (int64_t v : m.local_expert_tokens) pairs += v;
  EXPECT_EQ(s->routed_pairs(), pairs);
  // Every token goes to top_k experts in every MoE layer (one rank computes them all).
  EXPECT_EQ(pairs, loop.totals().rows * c.num_experts_per_tok * (L - dense));
  double named = 0;
  for (const auto& [name, v] : s->time_s) {
    EXPECT_GE(v, 0) << name;
    named += v;
  }
  EXPECT_EQ(static_cast<int>(s->time_s.size()), kNumTimeCategories);
  EXPECT_GE(named, s->wall_s * 0.999);  // "other" fills the rest
  EXPECT_GT(s->time_of("attention"), 0);
  fs::remove_all(dir);
}

TEST(RunSummary, JsonRoundTripAndErrors) {
  const RankRunSummary a = make_summary(1, 2, 4, 7);
  const RankRunSummary b = RankRunSummary::from_json(a.to_json());
  EXPECT_EQ(b.to_json(), a.to_json());
  EXPECT_EQ(b.routed_pairs(), a.routed_pairs());
  EXPECT_THROW(RankRunSummary::from_json("{"), std::invalid_argument);
  EXPECT_THROW(RankRunSummary::from_json("{\"rank\":0}"), std::invalid_argument);
  json j = json::parse(a.to_json());
  j["first_expert"] = 6;  // 6 + 4 experts > 8
  EXPECT_THROW(RankRunSummary::from_json(j.dump()), std::invalid_argument);
  std::istringstream log("2026 info hello\n2026 info run summary " + a.to_json() + "\nlater\n");
  auto found = find_run_summary(log);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->rank, 1);
  std::istringstream none("no summary here\n");
  EXPECT_FALSE(find_run_summary(none));
}

TEST(ReportSvg, PicturesAreWellFormedAndCarryTheRunsNumbers) {
  const std::vector<RankRunSummary> ranks = {make_summary(0, 2, 4, 1), make_summary(1, 2, 4, 500)};
  const int64_t total = ranks[0].routed_pairs() + ranks[1].routed_pairs();
  const std::string load = report::expert_load_svg(ranks);
  expect_well_formed_xml(load);
  EXPECT_NE(load.find(fmt::format("total {} routed pairs", total)), std::string::npos);
  EXPECT_NE(load.find(fmt::format(">{}<", ranks[0].routed_pairs())), std::string::npos);
  EXPECT_NE(load.find(fmt::format(">{}<", ranks[1].routed_pairs())), std::string::npos);
  // The hottest cell: rank 1, layer 2, its last expert (global 7): 500 + 20 + 3.
  EXPECT_NE(load.find("layer 2, expert 7, 523 pairs"), std::string::npos);
  EXPECT_NE(load.find("rank 0 (node&lt;a&amp;b&gt;)"), std::string::npos);
  EXPECT_EQ(load.find("node<a"), std::string::npos);
  // One cell per layer and expert, each with its tooltip.
  size_t cells = 0;
  for (size_t p = 0; (p = load.find("<title>layer ", p)) != std::string::npos; ++p) ++cells;
  EXPECT_EQ(cells, 2u * 8u);

  const std::string steps = report::step_time_svg(ranks);
  expect_well_formed_xml(steps);
  EXPECT_NE(steps.find("10 busy steps, 201 tokens computed, loop wall 2.000 s"), std::string::npos);
  for (int c = 0; c < kNumTimeCategories; ++c)
    EXPECT_NE(steps.find(fmt::format("rank 1: {} 0.1250 s", kTimeCategories[c])), std::string::npos)
        << kTimeCategories[c];
  EXPECT_NE(steps.find("1.625 s"), std::string::npos);  // each bar's total: 13 x 0.125
}

TEST(ReportSvg, InconsistentSummariesAreRefused) {
  EXPECT_THROW(report::check_run_summaries({}), std::invalid_argument);
  EXPECT_THROW(report::check_run_summaries({make_summary(0, 2, 4, 1)}), std::invalid_argument);
  EXPECT_THROW(report::check_run_summaries({make_summary(0, 2, 4, 1), make_summary(0, 2, 4, 1)}),
               std::invalid_argument);
  auto other = make_summary(1, 2, 4, 1);
  other.num_experts = 16;
  EXPECT_THROW(report::check_run_summaries({make_summary(0, 2, 4, 1), other}),
               std::invalid_argument);
  EXPECT_NO_THROW(
      report::check_run_summaries({make_summary(0, 2, 4, 1), make_summary(1, 2, 4, 1)}));
}

TEST(ReportSvg, ReadsTheLogDirAndNamesWhatIsMissing) {
  const fs::path dir = temp_dir("logs");
  const auto r0 = make_summary(0, 2, 4, 1), r1 = make_summary(1, 2, 4, 9);
  std::ofstream(dir / "rank-0000.log")
      << "x info start\nx info run summary " << r0.to_json() << "\n";
  try {
    report::read_run_summaries(dir.string());
    FAIL() << "rank 1's log is missing";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("rank-0001.log"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "rank-0001.log") << "x info start\n";
  try {
    report::read_run_summaries(dir.string());
    FAIL() << "rank 1's log has no summary";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no run summary"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "rank-0001.log") << "x info run summary " << r1.to_json() << "\n";
  const auto ranks = report::read_run_summaries(dir.string());
  ASSERT_EQ(ranks.size(), 2u);
  const auto paths = report::write_report(ranks, (dir / "out").string());
  ASSERT_EQ(paths.size(), 2u);
  for (const auto& p : paths) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    expect_well_formed_xml(ss.str());
  }
  EXPECT_THROW(report::read_run_summaries((dir / "nope").string()), std::runtime_error);
  fs::remove_all(dir);
}

TEST(ReportSvg, XmlEscapeAndColours) {
  EXPECT_EQ(report::xml_escape("a<b>&\"c'\x01"), "a&lt;b&gt;&amp;&quot;c&apos;");
  EXPECT_EQ(report::heat_colour(0), "#ffffcc");
  EXPECT_EQ(report::heat_colour(1), "#800026");
  EXPECT_EQ(report::heat_colour(-3), report::heat_colour(0));
}
