// Cost of --trace-dir: the same DP loop run (one process, loopback control plane, a preset
// model with random weights) with and without a TraceWriter, alternating, several rounds.
// Reports wall and thread CPU time per mode (CPU time is steadier on a shared machine) and the
// trace bytes per step.
// usage: bench_trace [preset=small] [rounds=5] [requests=16] [prompt=64] [output=32]
#include <fmt/format.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "comm/loopback_control_plane.h"
#include "runtime/batch_source.h"
#include "runtime/dp_loop.h"
#include "runtime/trace_writer.h"
#include "tests/model_test_util.h"

using namespace dpep;

namespace {
double thread_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  const std::string preset = argc > 1 ? argv[1] : "small";
  const int rounds = argc > 2 ? std::stoi(argv[2]) : 5;
  const int nreq = argc > 3 ? std::stoi(argv[3]) : 16;
  const int prompt = argc > 4 ? std::stoi(argv[4]) : 64;
  const int output = argc > 5 ? std::stoi(argv[5]) : 32;
  const ModelConfig c = ModelConfig::preset(preset);
  Model model(c, testing::random_weights(c, 7), {});
  comm::LoopbackExchange ex;
  comm::LoopbackControlPlane cp;
  auto log =
      std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  const auto dir = std::filesystem::temp_directory_path() / "dpep-bench-trace";
  std::vector<Request> reqs;
  std::mt19937 g(1);
  for (int i = 0; i < nreq; ++i) {
    Request r;
    r.id = i;
    for (int t = 0; t < prompt; ++t) r.prompt.push_back(2 + g() % (c.vocab_size - 2));
    r.sampling.max_tokens = output;
    r.sampling.ignore_eos = true;
    reqs.push_back(std::move(r));
  }
  std::vector<double> wall[2], cpu[2];
  double bytes_per_step = 0;
  int64_t steps = 0;
  for (int round = 0; round < rounds; ++round)
    for (int mode = 0; mode < 2; ++mode) {
      Engine engine(model, ex, EngineConfig{nreq, 8192, 64, 1 << 16});
      BatchSource source(reqs);
      std::unique_ptr<TraceWriter> trace;
      if (mode == 1) trace = std::make_unique<TraceWriter>(dir.string(), 0, "bench");
      DpLoop loop(cp, engine, log,
                  DpLoopOptions{BalanceStrategy::LeastTokens, 0, trace.get(), "bench"});
      const double c0 = thread_cpu_s();
      const auto w0 = std::chrono::steady_clock::now();
      loop.run(&source);
      wall[mode].push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
      cpu[mode].push_back(thread_cpu_s() - c0);
      steps = loop.totals().busy_steps;
      if (trace) {
        trace->flush();
        bytes_per_step = double(std::filesystem::file_size(trace->path())) / steps;
      }
    }
  fmt::print(
      "preset {}, {} requests x ({} prompt + {} output tokens), {} busy steps per run, {} rounds\n",
      preset, nreq, prompt, output, steps, rounds);
  for (int mode = 0; mode < 2; ++mode)
    fmt::print("trace {:3}: median wall {:.4f} s, median thread CPU {:.4f} s (wall per round:{})\n",
               mode ? "on" : "off", median(wall[mode]), median(cpu[mode]), [&] {
                 std::string s;
                 for (double w : wall[mode]) s += fmt::format(" {:.3f}", w);
                 return s;
               }());
  fmt::print("ratio on/off: wall {:.4f}, thread CPU {:.4f}; trace {:.0f} bytes per step\n",
             median(wall[1]) / median(wall[0]), median(cpu[1]) / median(cpu[0]), bytes_per_step);
  // The writer alone: phase events (as the model sends them), a flush every 50.
  {
    TraceWriter t(dir.string(), 0, "bench");
    const int n = 200000;
    const double c0 = thread_cpu_s();
    for (int i = 0; i < n; ++i) {
      t.phase("dispatch", i % 61, 1.0 + i * 1e-6, 1.0 + i * 1e-6 + 5e-7);
      if (i % 50 == 49) t.flush();
    }
    t.flush();
    const double dt = thread_cpu_s() - c0;
    fmt::print(
        "writer alone: {:.3f} us CPU per event (flush every 50 events), {:.0f} bytes per event\n",
        dt / n * 1e6, double(std::filesystem::file_size(t.path())) / n);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
