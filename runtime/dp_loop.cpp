#include "runtime/dp_loop.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>

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
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
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
      prefill_budget_(engine.config().prefill_step_factor, engine.config().max_prefill_tokens) {}

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
  return 0;
}

std::vector<comm::Blob> DpLoop::assign(RequestSource& source) {
  std::vector<Request> reqs;
  std::vector<int64_t> aborts;
  source.poll(reqs, aborts);
  std::vector<wire::Writer> w(cp_.size());
  std::vector<std::vector<Request>> per_rank(cp_.size());
  std::vector<std::vector<int64_t>> aborts_per_rank(cp_.size());
  for (auto& r : reqs) {
    const int k = pick_rank(r);
    const int64_t tokens = static_cast<int64_t>(r.prompt.size()) + r.sampling.max_tokens;
    owner_[r.id] = {k, tokens};
    ranks_[k].outstanding_requests++;
    ranks_[k].outstanding_tokens += tokens;
    per_rank[k].push_back(std::move(r));
  }
  for (int64_t id : aborts) {
    auto it = owner_.find(id);
    if (it != owner_.end()) aborts_per_rank[it->second.first].push_back(id);
  }
  std::vector<comm::Blob> blobs(cp_.size());
  const int32_t budget = prefill_budget_.budget(decoding_);
  for (int k = 0; k < cp_.size(); ++k) {
    w[k].put<int32_t>(budget);
    w[k].put<uint32_t>(static_cast<uint32_t>(per_rank[k].size()));
    for (const auto& r : per_rank[k]) wire::put_request(w[k], r);
    w[k].put_vec(aborts_per_rank[k]);
    blobs[k] = std::move(w[k].bytes());
  }
  return blobs;
}

void DpLoop::run(RequestSource* source) {
  // Other ranks may be inside a collective when this one fails: end the whole job, naming us.
  try {
    run_impl(source);
  } catch (const std::exception& e) {
    log_->error("{}", e.what());
    log_->flush();
    cp_.abort_job(e.what());
  }
}

void DpLoop::run_impl(RequestSource* source) {
  const bool root = cp_.is_root();
  if (root && !source) throw std::logic_error("rank 0 needs a request source");
  int64_t step = 0;
  for (;; ++step) {
    // 1. Work from rank 0.
    double tc0 = now_s();
    comm::Blob mine = cp_.scatter_blobs(root ? assign(*source) : std::vector<comm::Blob>{});
    {
      wire::Reader rd(mine);
      engine_.set_prefill_budget(rd.get<int32_t>());
      const uint32_t n = rd.get<uint32_t>();
      for (uint32_t i = 0; i < n; ++i) engine_.add(wire::get_request(rd));
      for (int64_t id : rd.get_vec<int64_t>()) engine_.abort(id);
    }
    // 2. Agreement: run, idle, or stop — decided from global data only.
    comm::StepLocal local;
    local.step = step;
    local.has_work = engine_.has_work();
    local.num_seqs = engine_.num_running() + engine_.num_waiting();
    local.stop = root && source->exhausted() && owner_.empty() && !source->ready();
    comm::StepGlobal g = cp_.agree(local);
    totals_.comm_s += now_s() - tc0;
    totals_.steps++;
    if (g.any_error())
      throw std::runtime_error(fmt::format("rank {} reported an error", g.first_error_rank));
    if (g.all_idle()) {
      if (g.stop) break;
      comm::IdleStats idle = cp_.idle_wait([&] { return source->ready() || source->exhausted(); });
      totals_.idle_s += idle.waited.count() / 1000.0;
      if (idle.waited.count() > 0) log_->debug("idle {} ms", idle.waited.count());
      continue;
    }
    // 3. One forward on every rank (empty where there is nothing to run).
    StepReport rep = engine_.step();
    totals_.busy_steps++;
    totals_.rows += rep.rows;
    totals_.forward_s += rep.forward_s;
    totals_.sample_s += rep.sample_s;
    // 4. Events and status back to rank 0.
    double tg0 = now_s();
    wire::Writer w;
    w.put<int32_t>(rep.running);
    w.put<int32_t>(rep.waiting);
    w.put<int32_t>(rep.kv_used_pages);
    w.put<int32_t>(rep.kv_total_pages);
    w.put<int32_t>(rep.rows);
    w.put<int32_t>(rep.prefill_rows);
    w.put<int32_t>(rep.decode_rows);
    w.put<double>(rep.forward_s);
    w.put<int32_t>(rep.kv_cached_pages);
    w.put<int64_t>(rep.prefix_query_tokens);
    w.put<int64_t>(rep.prefix_hit_tokens);
    wire::put_cache_events(w, rep.cache_events);
    w.put<uint32_t>(static_cast<uint32_t>(rep.events.size()));
    for (const auto& e : rep.events) wire::put_event(w, e);
    auto all = cp_.gather_blobs(w.bytes());
    totals_.comm_s += now_s() - tg0;
    if (root) {
      double step_s = 0;
      int max_prefill = 0, decode_rows = 0, running = 0;
      for (int k = 0; k < cp_.size(); ++k) {
        wire::Reader rd(all[k]);
        RankStatus& st = ranks_[k];
        st.running = rd.get<int32_t>();
        st.waiting = rd.get<int32_t>();
        st.kv_used_pages = rd.get<int32_t>();
        st.kv_total_pages = rd.get<int32_t>();
        st.rows = rd.get<int32_t>();
        max_prefill = std::max(max_prefill, rd.get<int32_t>());
        decode_rows += rd.get<int32_t>();
        st.forward_s = rd.get<double>();
        step_s = std::max(step_s, st.forward_s);
        running += st.running;
        st.kv_cached_pages = rd.get<int32_t>();
        st.prefix_query_tokens = rd.get<int64_t>();
        st.prefix_hit_tokens = rd.get<int64_t>();
        router_.apply(k, wire::get_cache_events(rd));
        const uint32_t n = rd.get<uint32_t>();
        for (uint32_t i = 0; i < n; ++i) {
          RequestEvent e = wire::get_event(rd);
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
  log_->info(
      "loop done: {} steps ({} busy), {} tokens computed, forward {:.3f} s, sampling {:.3f} s, "
      "control plane {:.3f} s, idle wait {:.3f} s; prefix cache: {} of {} admitted prompt tokens "
      "hit, {} pages cached, {} evicted",
      totals_.steps, totals_.busy_steps, totals_.rows, totals_.forward_s, totals_.sample_s,
      totals_.comm_s, totals_.idle_s, engine_.prefix_stats().hit_tokens,
      engine_.prefix_stats().query_tokens, engine_.blocks().num_cached(),
      engine_.blocks().num_evictions());
  log_step(StepReport{}, true);
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
      "router {:.4f}, dispatch {:.4f}, experts {:.4f}, "
      "combine {:.4f}, shared {:.4f}, dense {:.4f}, head {:.4f}, sampling {:.4f}, idle {:.4f} | "
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
  wire::Writer w;
  w.put_str(host);
  w.put(totals_.busy_steps);
  w.put(totals_.rows);
  w.put(totals_.forward_s);
  w.put(totals_.comm_s);
  w.put(totals_.idle_s);
  w.put(pairs);
  auto all = cp_.gather_blobs(w.bytes());
  if (!cp_.is_root()) return "";
  std::string out;
  int64_t max_pairs = 0, sum_pairs = 0;
  for (int k = 0; k < static_cast<int>(all.size()); ++k) {
    wire::Reader rd(all[k]);
    const std::string h = rd.get_str();
    const auto steps = rd.get<int64_t>();
    const auto rows = rd.get<int64_t>();
    const double fwd = rd.get<double>(), comm = rd.get<double>(), idle = rd.get<double>();
    const auto p = rd.get<int64_t>();
    max_pairs = std::max(max_pairs, p);
    sum_pairs += p;
    out += fmt::format(
        "rank {} ({}): {} steps, {} tokens computed, forward {:.2f} s, control plane {:.2f} s, "
        "idle {:.2f} s, routed expert pairs {}\n",
        k, h, steps, rows, fwd, comm, idle, p);
  }
  const double mean = all.empty() ? 0 : double(sum_pairs) / all.size();
  out += fmt::format("expert load balance: max/mean routed pairs per rank = {:.3f}\n",
                     mean > 0 ? max_pairs / mean : 1.0);
  return out;
}

}  // namespace dpep
