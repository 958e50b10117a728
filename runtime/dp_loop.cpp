#include "runtime/dp_loop.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "comm/clock.h"
#include "runtime/trace_writer.h"
#include "runtime/wire.h"

namespace dpep {
namespace {
std::string join_ints(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(v[i]);
  }
  return s + "]";
}
}  // namespace

DpLoop::DpLoop(comm::ControlPlane& cp, Engine& engine, std::shared_ptr<spdlog::logger> log,
               DpLoopOptions opt)
    : cp_(cp),
      engine_(engine),
      log_(std::move(log)),
      opt_(opt),
      ranks_(cp.size()),
      router_(cp.size(), engine.blocks().page_size(), engine.config().prefix_caching),
      prefill_budget_(engine.config().prefill_step_factor, engine.config().max_prefill_tokens) {
  if (opt_.trace) engine_.stats().phases = opt_.trace;
}

int DpLoop::pick_rank(const Request& r) {
  const int n = cp_.size();
  switch (opt_.strategy) {
    case BalanceStrategy::RoundRobin:
      return rr_next_++ % n;
    case BalanceStrategy::LeastTokens: {
      // Count a request against its rank at dispatch (no stale load); ties rotate.
      int best = -1;
      for (int k = 0; k < n; ++k) {
        const int i = (rr_next_ + k) % n;
        if (best < 0 || ranks_[i].outstanding_tokens < ranks_[best].outstanding_tokens) best = i;
      }
      rr_next_ = (best + 1) % n;
      return best;
    }
    case BalanceStrategy::MinExpectedLatency: {
      // lmdeploy's rule: fewest unfinished requests per unit speed (equal speeds here),
      // weighted by the rank's last step time; ties rotate.
      int best = -1;
      double best_cost = 0;
      for (int k = 0; k < n; ++k) {
        const int i = (rr_next_ + k) % n;
        const double cost =
            (ranks_[i].outstanding_requests + 1) * std::max(ranks_[i].forward_s, 1e-3);
        if (best < 0 || cost < best_cost) best = i, best_cost = cost;
      }
      rr_next_ = (best + 1) % n;
      return best;
    }
    case BalanceStrategy::CacheAware: {
      const auto c = router_.pick(r.prompt, r.sampling.max_tokens, rr_next_);
      router_.assign(r.id, r.prompt, c);
      rr_next_ = (c.rank + 1) % n;
      log_->debug("request {} -> rank {} ({} cached pages known there)", r.id, c.rank,
                  c.matched_pages);
      return c.rank;
    }
  }
  (void)r;
  return 0;
}

std::vector<comm::Blob> DpLoop::assign(RequestSource& source) {
  std::vector<Request> reqs;
  std::vector<int64_t> aborts;
  source.poll(reqs, aborts);
  std::vector<wire::Assignment> per_rank(cp_.size());
  for (auto& r : reqs) {
    const int k = pick_rank(r);
    const int64_t tokens = static_cast<int64_t>(r.prompt.size()) + r.sampling.max_tokens;
    owner_[r.id] = {k, tokens};
    ranks_[k].outstanding_requests++;
    ranks_[k].outstanding_tokens += tokens;
    per_rank[k].requests.push_back(std::move(r));
  }
  for (int64_t id : aborts) {
    auto it = owner_.find(id);
    if (it != owner_.end()) per_rank[it->second.first].aborts.push_back(id);
  }
  std::vector<comm::Blob> blobs(cp_.size());
  const int32_t budget = prefill_budget_.budget(decoding_);
  for (int k = 0; k < cp_.size(); ++k) {
    per_rank[k].prefill_budget = budget;
    blobs[k] = wire::encode(per_rank[k]);
  }
  return blobs;
}

void DpLoop::run(RequestSource* source) {
  // Other ranks may be inside a collective when this one fails: end the whole job, naming us.
  try {
    run_impl(source);
  } catch (const std::exception& e) {
    log_->error("{}", e.what());
    log_run_summary(false);
    if (opt_.trace) {
      try {
        opt_.trace->flush();
      } catch (const std::exception& te) {
        log_->error("{}", te.what());
      }
    }
    log_->flush();
    cp_.abort_job(e.what());
  }
}

void DpLoop::run_impl(RequestSource* source) {
  const bool root = cp_.is_root();
  if (root && !source) throw std::logic_error("rank 0 needs a request source");
  int64_t step = 0;
  TraceWriter* const trace = opt_.trace;
  if (trace) trace->name_thread("dp loop");
  loop_start_s_ = now_seconds();
  for (;; ++step) {
    // 1. Work from rank 0.
    cp_.begin_step(step);  // watchdog: from here to end_step() counts against its timeout
    double tc0 = now_seconds();
    comm::Blob mine = cp_.scatter_blobs(root ? assign(*source) : std::vector<comm::Blob>{});
    const double t_scatter = now_seconds();
    {
      wire::Assignment work = wire::decode<wire::Assignment>(mine);
      engine_.set_prefill_budget(work.prefill_budget);
      for (auto& r : work.requests) engine_.add(std::move(r));
      for (int64_t id : work.aborts) engine_.abort(id);
    }
    // 2. Agreement: run, idle, or stop — decided from global data only.
    comm::StepLocal local;
    local.step = step;
    local.has_work = engine_.has_work();
    local.num_seqs = engine_.num_running() + engine_.num_waiting();
    local.stop = root && source->exhausted() && owner_.empty() && !source->ready();
    const double t_agree0 = trace ? now_seconds() : 0;
    comm::StepGlobal g = cp_.agree(local);
    const double t_agree = now_seconds();
    totals_.comm_s += t_agree - tc0;
    totals_.steps++;
    if (trace) {
      trace->complete("scatter", "control", tc0, t_scatter);
      trace->complete("agree", "control", t_agree0, t_agree);
    }
    if (g.any_error())
      throw std::runtime_error(fmt::format("rank {} reported an error", g.first_error_rank));
    if (g.all_idle()) {
      cp_.end_step();
      if (g.stop) break;
      comm::IdleStats idle = cp_.idle_wait([&] { return source->ready() || source->exhausted(); });
      totals_.idle_s += idle.waited.count() / 1000.0;
      if (idle.waited.count() > 0) log_->debug("idle {} ms", idle.waited.count());
      if (trace) {
        trace->complete("idle", "idle", t_agree, now_seconds(), "\"reason\":\"all ranks idle\"");
        trace->flush();
      }
      continue;
    }
    // 3. One forward on every rank (empty where there is nothing to run).
    StepReport rep = engine_.step();
    totals_.busy_steps++;
    totals_.rows += rep.rows;
    totals_.forward_s += rep.forward_s;
    totals_.sample_s += rep.sample_s;
    totals_.schedule_s += rep.schedule_s;
    if (rep.rows == 0) {
      totals_.empty_steps++;
      totals_.empty_step_s += rep.schedule_s + rep.forward_s + rep.sample_s;
    }
    // 4. Events and status back to rank 0.
    double tg0 = now_seconds();
    wire::StepStatus status;
    status.running = rep.running;
    status.waiting = rep.waiting;
    status.kv_used_pages = rep.kv_used_pages;
    status.kv_total_pages = rep.kv_total_pages;
    status.rows = rep.rows;
    status.prefill_rows = rep.prefill_rows;
    status.decode_rows = rep.decode_rows;
    status.forward_s = rep.forward_s;
    status.kv_cached_pages = rep.kv_cached_pages;
    status.prefix_query_tokens = rep.prefix_query_tokens;
    status.prefix_hit_tokens = rep.prefix_hit_tokens;
    status.cache_events = std::move(rep.cache_events);
    status.events = std::move(rep.events);
    auto all = cp_.gather_blobs(wire::encode(status));
    cp_.end_step();
    const double tg1 = now_seconds();
    totals_.comm_s += tg1 - tg0;
    if (trace) trace_step(step, rep, tc0, tg0, tg1);
    if (root) {
      double step_s = 0;
      int max_prefill = 0, decode_rows = 0, running = 0;
      for (int k = 0; k < cp_.size(); ++k) {
        wire::StepStatus got = wire::decode<wire::StepStatus>(all[k]);
        RankStatus& st = ranks_[k];
        st.running = got.running;
        st.waiting = got.waiting;
        st.kv_used_pages = got.kv_used_pages;
        st.kv_total_pages = got.kv_total_pages;
        st.rows = got.rows;
        st.forward_s = got.forward_s;
        st.kv_cached_pages = got.kv_cached_pages;
        st.prefix_query_tokens = got.prefix_query_tokens;
        st.prefix_hit_tokens = got.prefix_hit_tokens;
        max_prefill = std::max(max_prefill, static_cast<int>(got.prefill_rows));
        decode_rows += got.decode_rows;
        step_s = std::max(step_s, got.forward_s);
        running += got.running;
        router_.apply(k, got.cache_events);
        for (RequestEvent& e : got.events) {
          if (e.finish != FinishReason::None) {
            auto it = owner_.find(e.id);
            if (it != owner_.end()) {
              ranks_[it->second.first].outstanding_requests--;
              ranks_[it->second.first].outstanding_tokens -= it->second.second;
              owner_.erase(it);
            }
            router_.finish(e.id);
          }
          source->on_event(e, k);
        }
      }
      prefill_budget_.observe(step_s, max_prefill, decode_rows);
      decoding_ = running > 0;
      source->on_step(ranks_);
    }
    log_step(rep, false);
  }
  totals_.wall_s = now_seconds() - loop_start_s_;
  log_->info(
      "loop done: {} steps ({} busy), {} tokens computed, forward {:.3f} s, sampling {:.3f} s, "
      "control plane {:.3f} s, idle wait {:.3f} s; prefix cache: {} of {} admitted prompt tokens "
      "hit, {} pages cached, {} evicted",
      totals_.steps, totals_.busy_steps, totals_.rows, totals_.forward_s, totals_.sample_s,
      totals_.comm_s, totals_.idle_s, engine_.prefix_stats().hit_tokens,
      engine_.prefix_stats().query_tokens, engine_.blocks().num_cached(),
      engine_.blocks().num_evictions());
  // The closing info line: no step of its own, the cache figures as they stand.
  StepReport last;
  last.kv_total_pages = engine_.blocks().num_pages();
  last.kv_used_pages = engine_.blocks().num_pages() - engine_.blocks().num_free();
  last.kv_cached_pages = engine_.blocks().num_cached();
  last.prefix_hit_tokens = engine_.prefix_stats().hit_tokens;
  last.prefix_query_tokens = engine_.prefix_stats().query_tokens;
  log_step(last, true);
  log_run_summary(true);
  if (trace) trace->flush();
}

void DpLoop::trace_step(int64_t step, const StepReport& rep, double t_begin, double t_gather,
                        double t_end) {
  TraceWriter& t = *opt_.trace;
  t.complete("step", "step", t_begin, t_end,
             fmt::format("\"step\":{},\"tokens\":{},\"decode\":{},\"prefill\":{},\"running\":{},"
                         "\"waiting\":{},\"kv_used_pages\":{}",
                         step, rep.rows, rep.decode_rows, rep.prefill_rows, rep.running,
                         rep.waiting, rep.kv_used_pages));
  const double t0 = rep.start_s, t1 = t0 + rep.schedule_s, t2 = t1 + rep.forward_s;
  if (rep.rows == 0)  // nothing of its own: the rank only serves the others' MoE exchanges
    t.complete("idle", "idle", t0, t2 + rep.sample_s, "\"reason\":\"no local work\"");
  t.complete("schedule", "engine", t0, t1);
  t.complete("forward", "engine", t1, t2);
  t.complete("sampling", "engine", t2, t2 + rep.sample_s);
  t.complete("gather", "control", t_gather, t_end);
  t.counter("tokens", t_begin, {{"decode", rep.decode_rows}, {"prefill", rep.prefill_rows}});
  t.counter("sequences", t_begin, {{"running", rep.running}, {"waiting", rep.waiting}});
  t.counter("KV pages used", t_begin, {{"used", rep.kv_used_pages}});
  t.flush();
}

RankRunSummary DpLoop::run_summary() const {
  RankRunSummary s;
  s.rank = cp_.rank();
  s.ranks = cp_.size();
  s.host = opt_.host;
  s.steps = totals_.steps;
  s.busy_steps = totals_.busy_steps;
  s.tokens = totals_.rows;
  s.wall_s = totals_.wall_s > 0 ? totals_.wall_s : now_seconds() - loop_start_s_;
  s.empty_steps = totals_.empty_steps;
  s.empty_step_s = totals_.empty_step_s;
  const ForwardStats& f = engine_.stats();
  MoeStats m;
  for (const auto& x : f.moe) {
    m.router_s += x.router_s;
    m.dispatch_s += x.dispatch_s;
    m.experts_s += x.experts_s;
    m.combine_s += x.combine_s;
    m.shared_s += x.shared_s;
  }
  // forward_s covers the model's phases; what they do not account for goes to "other".
  s.time_s = {{"attention", f.attention_s},      {"router", m.router_s},
              {"dispatch", m.dispatch_s},        {"experts", m.experts_s},
              {"combine", m.combine_s},          {"shared", m.shared_s},
              {"dense", f.dense_mlp_s},          {"head", f.head_s},
              {"schedule", totals_.schedule_s},  {"sampling", totals_.sample_s},
              {"control plane", totals_.comm_s}, {"idle", totals_.idle_s}};
  double named = 0;
  for (const auto& [name, v] : s.time_s) named += v;
  s.time_s.emplace_back("other", std::max(0.0, s.wall_s - named));
  for (size_t l = 0; l < f.moe.size(); ++l) {
    const auto& load = f.moe[l].local_expert_tokens;
    if (load.empty()) continue;
    s.expert_load.emplace_back(static_cast<int>(l), load);
    // Experts are placed contiguously: rank r holds [r*n, (r+1)*n).
    s.first_expert = cp_.rank() * static_cast<int>(load.size());
    s.num_experts = cp_.size() * static_cast<int>(load.size());
  }
  return s;
}

void DpLoop::log_run_summary(bool complete) {
  try {
    RankRunSummary s = run_summary();
    s.complete = complete;
    log_->info("run summary {}", s.to_json());
  } catch (const std::exception& e) {
    log_->error("cannot write the run summary: {}", e.what());
  }
}

std::vector<RankRunSummary> DpLoop::gather_run_summaries() {
  const std::string mine = run_summary().to_json();
  auto all = cp_.gather_blobs(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(mine.data()), mine.size()));
  std::vector<RankRunSummary> out;
  if (!cp_.is_root()) return out;
  for (const auto& b : all)
    out.push_back(RankRunSummary::from_json(std::string(b.begin(), b.end())));
  return out;
}

void DpLoop::log_step(const StepReport& rep, bool force) {
  const bool info_now = force || (opt_.log_every > 0 && totals_.busy_steps % opt_.log_every == 0);
  if (!info_now && !log_->should_log(spdlog::level::debug)) return;
  const ForwardStats& s = engine_.stats();
  MoeStats moe, last;
  std::vector<int64_t> load, last_load;
  auto sum_moe = [](const ForwardStats& f, MoeStats& m, std::vector<int64_t>& l) {
    for (const auto& x : f.moe) {
      m.router_s += x.router_s;
      m.dispatch_s += x.dispatch_s;
      m.experts_s += x.experts_s;
      m.combine_s += x.combine_s;
      m.shared_s += x.shared_s;
      if (l.size() < x.local_expert_tokens.size()) l.resize(x.local_expert_tokens.size(), 0);
      for (size_t i = 0; i < x.local_expert_tokens.size(); ++i) l[i] += x.local_expert_tokens[i];
    }
  };
  sum_moe(s, moe, load);
  sum_moe(last_stats_, last, last_load);
  last_load.resize(load.size(), 0);
  std::vector<int64_t> dload(load.size());
  for (size_t i = 0; i < load.size(); ++i) dload[i] = load[i] - last_load[i];
  const auto lvl = info_now ? spdlog::level::info : spdlog::level::debug;
  const int64_t steps = totals_.busy_steps - last_totals_.busy_steps;
  log_->log(
      lvl,
      "{} steps to {}: tokens {} (this step {}: decode {}, prefill {}), running {}, waiting {}, "
      "KV {}/{} pages, prefix cache {} pages, hits {}/{} prompt tokens | s: attention {:.4f}, "
      "router {:.4f}, dispatch {:.4f}, experts {:.4f}, combine {:.4f}, shared {:.4f}, dense "
      "{:.4f}, head {:.4f}, sampling {:.4f}, idle {:.4f} | "
      "expert load (local, pairs) {}",
      steps, totals_.busy_steps, totals_.rows - last_totals_.rows, rep.rows, rep.decode_rows,
      rep.prefill_rows, rep.running, rep.waiting, rep.kv_used_pages, rep.kv_total_pages,
      rep.kv_cached_pages, rep.prefix_hit_tokens, rep.prefix_query_tokens,
      s.attention_s - last_stats_.attention_s, moe.router_s - last.router_s,
      moe.dispatch_s - last.dispatch_s, moe.experts_s - last.experts_s,
      moe.combine_s - last.combine_s, moe.shared_s - last.shared_s,
      s.dense_mlp_s - last_stats_.dense_mlp_s, s.head_s - last_stats_.head_s,
      totals_.sample_s - last_totals_.sample_s, totals_.idle_s - last_totals_.idle_s,
      join_ints(dload));
  if (info_now) {
    last_stats_ = s;
    last_totals_ = totals_;
  }
}

}  // namespace dpep

namespace dpep {

std::string DpLoop::summary(const std::string& host) {
  int64_t pairs = 0;
  for (const auto& m : engine_.stats().moe)
    for (int64_t v : m.local_expert_tokens) pairs += v;
  const wire::RankSummary mine{host,           totals_.busy_steps, totals_.rows, totals_.forward_s,
                               totals_.comm_s, totals_.idle_s,     pairs};
  auto all = cp_.gather_blobs(wire::encode(mine));
  if (!cp_.is_root()) return "";
  std::string out;
  int64_t max_pairs = 0, sum_pairs = 0;
  for (int k = 0; k < static_cast<int>(all.size()); ++k) {
    const auto r = wire::decode<wire::RankSummary>(all[k]);
    const auto p = r.routed_pairs;
    max_pairs = std::max(max_pairs, p);
    sum_pairs += p;
    out += fmt::format(
        "rank {} ({}): {} steps, {} tokens computed, forward {:.2f} s, control plane {:.2f} s, "
        "idle {:.2f} s, routed expert pairs {}\n",
        k, r.host, r.busy_steps, r.rows, r.forward_s, r.comm_s, r.idle_s, p);
  }
  const double mean = all.empty() ? 0 : double(sum_pairs) / all.size();
  out += fmt::format("expert load balance: max/mean routed pairs per rank = {:.3f}\n",
                     mean > 0 ? max_pairs / mean : 1.0);
  return out;
}

}  // namespace dpep
