#include "launch/report/report_svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "launch/report/svg.h"

namespace dpep::report {
namespace {

namespace fs = std::filesystem;

RankRunSummary read_one(const fs::path& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(fmt::format("cannot read {}", path.string()));
  std::optional<RankRunSummary> s;
  try {
    s = find_run_summary(f);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", path.string(), e.what()));
  }
  if (!s)
    throw std::runtime_error(
        fmt::format("{} has no run summary line (the run is still going, was killed, or ran with "
                    "--log-level above info)",
                    path.string()));
  return *s;
}

// 1, 2 or 5 times a power of ten, at least x.
double nice_step(double x) {
  if (!(x > 0)) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(x)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= x) return m * p;
  return 10 * p;
}

std::string host_label(const RankRunSummary& s) {
  return s.host.empty() ? fmt::format("rank {}", s.rank)
                        : fmt::format("rank {} ({})", s.rank, s.host);
}

const char* category_colour(const std::string& c) {
  static const std::map<std::string, const char*> colours = {
      {"attention", "#4e79a7"}, {"router", "#a0cbe8"},        {"dispatch", "#f28e2b"},
      {"experts", "#59a14f"},   {"combine", "#ffbe7d"},       {"shared", "#8cd17d"},
      {"dense", "#b6992d"},     {"head", "#499894"},          {"schedule", "#86bcb6"},
      {"sampling", "#e15759"},  {"control plane", "#79706e"}, {"idle", "#d7d7d7"},
      {"other", "#bab0ac"}};
  auto it = colours.find(c);
  return it == colours.end() ? "#999999" : it->second;
}

// Black or white, whichever reads better on a "#rrggbb" fill.
const char* ink_on(const std::string& fill) {
  if (fill.size() != 7) return "#000";
  const int r = std::stoi(fill.substr(1, 2), nullptr, 16),
            g = std::stoi(fill.substr(3, 2), nullptr, 16),
            b = std::stoi(fill.substr(5, 2), nullptr, 16);
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#000" : "#fff";
}

std::string incomplete_note(const std::vector<RankRunSummary>& ranks) {
  std::string s;
  for (const auto& r : ranks)
    if (!r.complete) s += fmt::format("{}{}", s.empty() ? "" : ", ", r.rank);
  return s.empty() ? "" : fmt::format(" (ended by an error on rank {})", s);
}

}  // namespace

std::vector<RankRunSummary> read_run_summaries(const std::string& log_dir) {
  const fs::path dir(log_dir);
  if (!fs::is_directory(dir))
    throw std::runtime_error(fmt::format("{} is not a directory", log_dir));
  std::vector<RankRunSummary> out;
  out.push_back(read_one(dir / "rank-0000.log"));
  const int n = out[0].ranks;
  for (int r = 1; r < n; ++r) out.push_back(read_one(dir / fmt::format("rank-{:04d}.log", r)));
  check_run_summaries(out);
  return out;
}

void check_run_summaries(const std::vector<RankRunSummary>& ranks) {
  if (ranks.empty()) throw std::invalid_argument("no run summaries");
  const int n = ranks[0].ranks;
  if (static_cast<int>(ranks.size()) != n)
    throw std::invalid_argument(fmt::format(
        "rank 0 says the run had {} ranks, but {} summaries were given", n, ranks.size()));
  const int E = ranks[0].num_experts;
  int next_expert = 0;
  for (int r = 0; r < n; ++r) {
    const auto& s = ranks[r];
    if (s.rank != r || s.ranks != n)
      throw std::invalid_argument(fmt::format(
          "summary {} is rank {} of {}: the logs are from different runs", r, s.rank, s.ranks));
    if (s.num_experts != E)
      throw std::invalid_argument(
          fmt::format("rank {} has {} experts, rank 0 has {}", r, s.num_experts, E));
    if (s.expert_load.empty()) continue;
    if (s.first_expert != next_expert)
      throw std::invalid_argument(
          fmt::format("rank {} starts at expert {}, expected {}", r, s.first_expert, next_expert));
    next_expert += static_cast<int>(s.expert_load[0].second.size());
  }
  if (next_expert != 0 && next_expert != E)
    throw std::invalid_argument(
        fmt::format("the ranks' experts cover [0, {}) of the model's {}", next_expert, E));
}

std::string expert_load_svg(const std::vector<RankRunSummary>& ranks) {
  check_run_summaries(ranks);
  const int R = static_cast<int>(ranks.size());
  const int E = ranks[0].num_experts;
  // layer -> global expert -> pairs
  std::map<int, std::vector<int64_t>> grid;
  std::vector<int64_t> rank_total(R, 0);
  for (const auto& s : ranks)
    for (const auto& [layer, load] : s.expert_load) {
      auto& row = grid[layer];
      row.resize(E, 0);
      for (size_t i = 0; i < load.size(); ++i) {
        row[s.first_expert + i] += load[i];
        rank_total[s.rank] += load[i];
      }
    }
  int64_t total = 0, max_cell = 0, max_rank = 0;
  for (int64_t v : rank_total) total += v, max_rank = std::max(max_rank, v);
  int hot_layer = -1, hot_expert = -1;
  for (const auto& [layer, row] : grid)
    for (int e = 0; e < E; ++e)
      if (row[e] > max_cell) max_cell = row[e], hot_layer = layer, hot_expert = e;
  const int L = static_cast<int>(grid.size());
  const double mean_rank = R ? double(total) / R : 0;

  const double cw = std::clamp(960.0 / std::max(1, E), 4.0, 48.0);
  const double ch = std::clamp(480.0 / std::max(1, L), 8.0, 32.0);
  const double left = 80, top = 120, gw = cw * E, gh = ch * L;
  const double W = std::max(left + gw + 150, 720.0), H = top + gh + 140;
  Svg svg(W, H);
  svg.text(16, 28, "Expert load: routed (token, expert) pairs per MoE layer and expert", 18,
           "start", "bold");
  svg.text(16, 50,
           fmt::format("{} ranks, {} routed experts, {} MoE layers; total {} routed pairs{}", R, E,
                       L, total, incomplete_note(ranks)),
           13);
  if (hot_layer >= 0) {
    double layer_mean = 0;
    for (int64_t v : grid[hot_layer]) layer_mean += v;
    layer_mean /= E;
    svg.text(16, 68,
             fmt::format("balance: max/mean pairs per rank = {:.3f}; hottest cell: layer {}, "
                         "expert {}, {} pairs ({:.2f}x its layer's mean)",
                         mean_rank > 0 ? max_rank / mean_rank : 1.0, hot_layer, hot_expert,
                         max_cell, layer_mean > 0 ? max_cell / layer_mean : 0.0),
             13);
  } else {
    svg.text(16, 68, "no MoE layer ran (no routed pairs)", 13);
  }

  // Cells.
  int li = 0;
  for (const auto& [layer, row] : grid) {
    const double y = top + li * ch;
    for (int e = 0; e < E; ++e) {
      int owner = 0;
      for (int r = 0; r < R; ++r)
        if (!ranks[r].expert_load.empty() && e >= ranks[r].first_expert) owner = r;
      svg.rect(left + e * cw, y, cw, ch, heat_colour(max_cell ? double(row[e]) / max_cell : 0),
               fmt::format("layer {}, expert {} (rank {}): {} pairs", layer, e, owner, row[e]));
    }
    int64_t layer_total = 0;
    for (int64_t v : row) layer_total += v;
    const int label_every = std::max(1, static_cast<int>(std::ceil(11.0 / ch)));
    if (li % label_every == 0) {
      svg.text(left - 6, y + ch / 2 + 4, fmt::format("{}", layer), 10, "end");
      svg.text(left + gw + 6, y + ch / 2 + 4, fmt::format("{}", layer_total), 10);
    }
    ++li;
  }
  svg.rect(left, top, gw, gh, "none", {}, "#444", 1);
  svg.text_vertical(22, top + gh / 2, "MoE layer", 12);
  svg.text(left + gw + 6, top - 8, "pairs", 10);

  // Expert index ticks.
  const int tick = std::max(1, static_cast<int>(nice_step(28.0 / cw)));
  for (int e = 0; e < E; e += tick)
    svg.text(left + (e + 0.5) * cw, top + gh + 14, fmt::format("{}", e), 9, "middle");
  svg.text(left + gw / 2, top + gh + 62, "routed expert (global index)", 12, "middle");

  // Rank blocks: boundaries, names above, totals below.
  for (int r = 0; r < R; ++r) {
    const auto& s = ranks[r];
    if (s.expert_load.empty()) continue;
    const int n = static_cast<int>(s.expert_load[0].second.size());
    const double x0 = left + s.first_expert * cw, x1 = x0 + n * cw, mid = (x0 + x1) / 2;
    if (r > 0) svg.line(x0, top - 26, x0, top + gh + 44, "#1f3b73", 2);
    const bool wide = x1 - x0 >= 90;
    svg.text(mid, top - 12, wide ? host_label(s) : fmt::format("r{}", r), wide ? 12 : 10, "middle",
             "bold", "#1f3b73");
    svg.text(mid, top + gh + 36, fmt::format("{}", rank_total[r]), wide ? 11 : 9, "middle", "bold",
             "#1f3b73");
  }
  svg.text(left - 6, top + gh + 36, "pairs per rank", 10, "end", "normal", "#1f3b73");

  // Colour legend.
  std::pair<double, std::string> stops[5];
  for (int i = 0; i < 5; ++i) stops[i] = {i / 4.0, heat_colour(i / 4.0)};
  svg.gradient("heat", stops, 5);
  const double ly = H - 34;
  svg.text(left, ly - 6, "pairs per cell", 11);
  svg.rect(left, ly, 240, 12, "url(#heat)", {}, "#444", 0.5);
  svg.text(left, ly + 26, "0", 10, "middle");
  svg.text(left + 240, ly + 26, fmt::format("{}", max_cell), 10, "middle");
  return svg.str();
}

std::string step_time_svg(const std::vector<RankRunSummary>& ranks) {
  check_run_summaries(ranks);
  const int R = static_cast<int>(ranks.size());
  double max_total = 0, max_wall = 0;
  int64_t tokens = 0;
  std::vector<double> mean(kNumTimeCategories, 0);
  for (const auto& s : ranks) {
    double t = 0;
    for (int c = 0; c < kNumTimeCategories; ++c) {
      const double v = s.time_of(kTimeCategories[c]);
      t += v;
      mean[c] += v / R;
    }
    max_total = std::max(max_total, t);
    max_wall = std::max(max_wall, s.wall_s);
    tokens += s.tokens;
  }
  const int64_t busy = ranks[0].busy_steps;
  const double left = 190, top = 96, bar_w = 720, bar_h = 26, gap = 14;
  const double bars_h = R * (bar_h + gap);
  const int legend_cols = 3;
  const int legend_rows = (kNumTimeCategories + legend_cols - 1) / legend_cols;
  const double W = left + bar_w + 150, H = top + bars_h + 50 + legend_rows * 20 + 30;
  const double scale = max_total > 0 ? bar_w / max_total : 0;
  Svg svg(W, H);
  svg.text(16, 28, "Step time per rank: where the loop's wall time went", 18, "start", "bold");
  svg.text(16, 50,
           fmt::format("{} ranks, {} busy steps, {} tokens computed, loop wall {:.3f} s ({:.2f} ms "
                       "per busy step){}",
                       R, busy, tokens, max_wall, busy > 0 ? max_wall / busy * 1e3 : 0.0,
                       incomplete_note(ranks)),
           13);
  svg.text(16, 68,
           "waits for other ranks show up in dispatch and combine (inside the forward) and in the "
           "control plane (between steps); idle steps: steps without tokens of the rank's own",
           11, "start", "normal", "#555");

  // Time axis.
  const double step = nice_step(max_total / 6);
  for (double t = 0; max_total > 0 && t <= max_total * 1.0001; t += step) {
    const double x = left + t * scale;
    svg.line(x, top - 6, x, top + bars_h - gap + 4, "#ccc", 1, "3,3");
    svg.text(x, top + bars_h - gap + 18, fmt::format("{:g} s", t), 10, "middle");
  }
  svg.text(left + bar_w / 2, top + bars_h - gap + 34, "seconds over the run", 12, "middle");

  for (int r = 0; r < R; ++r) {
    const auto& s = ranks[r];
    const double y = top + r * (bar_h + gap);
    svg.text(left - 8, y + bar_h / 2 + 4, host_label(s), 12, "end", "bold");
    double x = left, total = 0;
    for (int c = 0; c < kNumTimeCategories; ++c) total += s.time_of(kTimeCategories[c]);
    for (int c = 0; c < kNumTimeCategories; ++c) {
      const std::string name = kTimeCategories[c];
      const double v = s.time_of(name);
      if (v <= 0) continue;
      const double w = v * scale;
      const std::string fill = category_colour(name);
      svg.rect(x, y, w, bar_h, fill,
               fmt::format("rank {}: {} {:.4f} s ({:.1f}%)", s.rank, name, v,
                           total > 0 ? 100 * v / total : 0.0));
      if (w >= 34)
        svg.text(x + w / 2, y + bar_h / 2 + 4, fmt::format("{:.0f}%", 100 * v / total), 10,
                 "middle", "normal", ink_on(fill));
      x += w;
    }
    svg.text(x + 8, y + bar_h / 2, fmt::format("{:.3f} s", total), 11);
    svg.text(x + 8, y + bar_h / 2 + 11,
             fmt::format("{} idle steps, {:.3f} s", s.empty_steps, s.empty_step_s), 9, "start",
             "normal", "#555");
  }

  // Legend: colour, category, mean seconds per rank.
  const double ly = top + bars_h + 56;
  svg.text(16, ly - 4, "mean per rank:", 11, "start", "bold");
  double mean_total = 0;
  for (double v : mean) mean_total += v;
  for (int c = 0; c < kNumTimeCategories; ++c) {
    const double x = left + (c % legend_cols) * 250, y = ly + (c / legend_cols) * 20 - 14;
    svg.rect(x, y, 14, 14, category_colour(kTimeCategories[c]), {}, "#666", 0.5);
    svg.text(x + 20, y + 11,
             fmt::format("{} {:.4f} s ({:.1f}%)", kTimeCategories[c], mean[c],
                         mean_total > 0 ? 100 * mean[c] / mean_total : 0.0),
             11);
  }
  return svg.str();
}

std::vector<std::string> write_report(const std::vector<RankRunSummary>& ranks,
                                      const std::string& out_dir) {
  check_run_summaries(ranks);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  std::vector<std::string> paths;
  for (const auto& [name, body] :
       {std::pair<const char*, std::string>{kExpertLoadFile, expert_load_svg(ranks)},
        {kStepTimeFile, step_time_svg(ranks)}}) {
    const std::string path = (fs::path(out_dir) / name).string();
    std::ofstream f(path);
    f << body;
    f.close();
    if (!f) throw std::runtime_error(fmt::format("cannot write {}", path));
    paths.push_back(path);
  }
  return paths;
}

std::string report_text(const std::vector<RankRunSummary>& ranks) {
  std::string out;
  int64_t total = 0, max_pairs = 0;
  for (const auto& s : ranks) {
    const int64_t p = s.routed_pairs();
    total += p;
    max_pairs = std::max(max_pairs, p);
    out += fmt::format(
        "{}: {} busy steps, {} tokens computed, wall {:.3f} s (attention {:.3f}, experts {:.3f}, "
        "dispatch+combine {:.3f}, control plane {:.3f}, idle {:.3f}), {} idle steps ({:.3f} s), "
        "routed pairs {}{}\n",
        host_label(s), s.busy_steps, s.tokens, s.wall_s, s.time_of("attention"),
        s.time_of("experts"), s.time_of("dispatch") + s.time_of("combine"),
        s.time_of("control plane"), s.time_of("idle"), s.empty_steps, s.empty_step_s, p,
        s.complete ? "" : " (ended by an error)");
  }
  const double mean = ranks.empty() ? 0 : double(total) / ranks.size();
  out += fmt::format("total routed pairs {}, max/mean per rank {:.3f}\n", total,
                     mean > 0 ? max_pairs / mean : 1.0);
  return out;
}

}  // namespace dpep::report
