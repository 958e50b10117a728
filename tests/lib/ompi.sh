# Shared by the MPI test scripts. Source it: . "$HERE/lib/ompi.sh"
#
#   ompi_spurious_exit STDERR-FILE   true if mpirun's stderr holds Open MPI 4.1's report of a rank
#                                    "with PID 0 ... exiting improperly": now and then, on a loaded
#                                    machine, mpirun says so of a rank that did finalize, and exits
#                                    non-zero (open-mpi/ompi#9389). The caller then lets the run's
#                                    own results decide.
ompi_spurious_exit() {
  grep -q "exiting improperly" "$1"
}
