// Heartbeats from every rank to the root over UDP, so that when the job is stuck the root can
// name the rank that stopped: a SIGSTOPped, frozen or dead rank goes silent, a rank stuck in
// its own compute reports that it is outside any collective. MPI cannot carry them: it is
// initialised FUNNELED and the engine thread may be blocked inside a collective.
//
//   auto hb = Heartbeat::create(MPI_COMM_WORLD, 0);  // collective (engine thread)
//   hb->send(beat);                                  // non-root, any thread (watchdog)
//   hb->receive(); hb->diagnose(...)                 // root, any one thread (watchdog)
//
// A rank on the root's host beats to 127.0.0.1; a rank elsewhere to the address of the root's
// host name and to each of the root's interface addresses (harmless duplicates). If none
// reaches the root, that rank's beats are missing: the root never treats a rank it has not
// heard from as silent (the diagnosis only mentions it). Beats carry a per-job random token.
#pragma once
#include <mpi.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dpep::comm {

// What a rank says about itself, every watchdog check (4 times a second).
struct Beat {
  int32_t rank = 0;
  int32_t kind = 0;                // 0 beat (rank -> root), 1 answer (root -> rank), 2 goodbye
  int64_t step = -1;               // current or last step
  int64_t step_age_ms = -1;        // how long the current step has run; -1 between steps
  int64_t collective_age_ms = -1;  // how long this rank waits in a collective; -1 if not in one
  char what[40] = {};              // the collective's label (empty if none)
};

class Heartbeat {
 public:
  using Clock = std::chrono::steady_clock;
  // Collective over comm. Never throws: on a socket error the instance works without beats.
  static std::unique_ptr<Heartbeat> create(MPI_Comm comm, int root);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  bool is_root() const { return rank_ == root_; }
  void send(const Beat& b);  // non-root; drops the beat on error
  // Takes every packet waiting on the socket (non-blocking). Root: records beats and answers
  // each one, so the other ranks hear from the root too. Others: records the root's answers.
  void receive();
  // The first peer (root: any rank; others: the root) heard from before that has been silent
  // for `limit`, without saying goodbye; -1 if none. quiet_s: how long.
  int silent_peer(std::chrono::milliseconds limit, double& quiet_s) const;
  // Tells the peers this rank ends normally (its silence from now on is no fault).
  void say_goodbye();
  const std::string& host(int rank) const { return hosts_[rank]; }
  // Root: one phrase per rank that looks stuck, e.g. "rank 1 (host vm) sent no heartbeat for
  // 9.1 s (stopped, frozen or dead?)"; empty when every rank looks healthy. silent_ms: no beat
  // for that long counts as silent. my_step: the root's current step.
  std::string diagnose(std::chrono::milliseconds silent_ms, int64_t my_step) const;

 private:
  Heartbeat() = default;
  void send_to_root(const void* data, size_t n);
  int rank_ = 0, size_ = 1, root_ = 0;
  int fd_ = -1;
  uint64_t token_ = 0;
  std::vector<std::string> hosts_;  // root: every rank's host
  struct Seen {
    bool any = false, gone = false;
    Beat last;
    Clock::time_point at;
  };
  std::vector<Seen> seen_;                  // root: index = rank; others: the root's entry only
  std::vector<std::vector<uint8_t>> addr_;  // root: where each rank's beats come from
  std::vector<sockaddr_in> targets_;        // others: the root's addresses to beat to
  Clock::time_point created_ = Clock::now();
};

}  // namespace dpep::comm
