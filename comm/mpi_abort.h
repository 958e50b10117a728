// Ending the whole job from one rank, never a hang.
//
// abort_job(why) prints "dpep: rank N (host H): why" to stderr and calls MPI_Abort on
// MPI_COMM_WORLD; Open MPI's mpirun then kills every other rank and exits non-zero. Use it
// whenever a rank fails where the other ranks may already be waiting in a collective (inside
// a forward step). Errors found before a step's collectives travel in StepAgreement instead.
#pragma once
#include <functional>
#include <string>

#include "comm/control_plane.h"

namespace dpep::comm {

// Safe from any thread, before or after MPI_Init (then it just prints and _exit()s).
[[noreturn]] void abort_job(const std::string& why);

// "dpep: rank N (host H): " — the prefix abort_job uses; "dpep: " before MPI_Init.
std::string rank_prefix();

// Runs body(); an escaping exception becomes abort_job(what()). Returns body's exit code.
int run_or_abort(const std::function<int()>& body);

}  // namespace dpep::comm
