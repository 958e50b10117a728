// Helper for tests/e2e_comm_abort.sh: a tiny lock-step loop (step agreement, then a "forward"
// with dispatch/combine) that fails on purpose. Usage: mpi_abort_helper MODE [RANK]
//   ok          every rank finishes 5 steps and exits 0
//   step-error  RANK reports an error in the step agreement: all ranks exit 1 in order
//   throw       RANK throws inside the forward: abort_job -> MPI_Abort kills the job
//   kill        RANK SIGKILLs itself inside the forward: mpirun kills the job
//   hang        RANK sleeps inside the forward: the others' watchdog (1.5 s) aborts the job
#include <fmt/format.h>

#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "comm/mpi_abort.h"
#include "comm/mpi_context.h"
#include "comm/mpi_control.h"
#include "comm/mpi_exchange.h"
#include "comm/mpi_watchdog.h"

using namespace dpep::comm;

namespace {

void forward(MpiExchange& ex, int me, const std::string& mode, int bad, int step) {
  const int R = ex.num_ranks(), H = 8, K = 2, E = 2 * R;
  std::vector<float> x(H, float(me)), out(H);
  std::vector<int> idx = {me % E, (me + 1) % E};
  std::vector<float> w = {0.5f, 0.5f};
  DispatchResult d = ex.dispatch(x.data(), 1, H, idx.data(), w.data(), K, {E, R});
  if (me == bad && step == 2) {  // others are about to wait in combine
    if (mode == "throw") throw std::runtime_error("simulated failure inside the forward");
    if (mode == "kill") std::raise(SIGKILL);
    if (mode == "hang") std::this_thread::sleep_for(std::chrono::hours(1));
  }
  std::vector<float> y(static_cast<size_t>(count_local_slots(d)) * H);
  for (int i = 0, row = 0; i < d.num_recv; ++i)
    for (int j = 0; j < K; ++j)
      if (d.topk_local[i * K + j] >= 0) std::copy_n(&d.x[i * H], H, &y[H * row++]);
  ex.combine(y.data(), std::move(d.handle), out.data());
}

int run(int argc, char** argv, MpiContext& ctx) {
  const std::string mode = argc > 1 ? argv[1] : "ok";
  const int bad = argc > 2 ? std::atoi(argv[2]) : -1;
  Watchdog wd(std::chrono::milliseconds(mode == "hang" ? 1500 : 0));
  MpiControlPlane cp(ctx.world(), 0, &wd);
  MpiExchange ex(ctx.world(), {.watchdog = &wd});
  for (int step = 0; step < 5; ++step) {
    wd.set_step(step);
    StepLocal mine{.step = step, .num_tokens = 1, .has_work = true};
    if (mode == "step-error" && ctx.rank() == bad && step == 2) {
      fmt::print(stderr, "{}error: simulated failure before the step\n", rank_prefix());
      mine.error = true;
    }
    const StepGlobal g = cp.agree(mine);
    if (g.any_error()) {
      if (!mine.error)
        fmt::print(stderr, "{}stopping: rank {} reported an error at step {}\n", rank_prefix(),
                   g.first_error_rank, step);
      return 1;
    }
    forward(ex, ctx.rank(), mode, bad, step);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int rc = 0;
  {
    MpiContext ctx(&argc, &argv);
    rc = run_or_abort([&] { return run(argc, argv, ctx); });
  }
  return rc;
}
