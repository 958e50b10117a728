# Sourced by perf scripts that compare this tree with a baseline commit run in the same script.
# build_baseline DIR COMMIT: dpep of COMMIT built (Release, ccache) in a detached git worktree
# DIR/baseline-COMMIT, once; its log in DIR/baseline-build.log. Prints the binary's path.
build_baseline() {
  local dir=$1 commit=$2 src=$1/baseline-$2
  if [[ ! -x $src/build/dpep ]]; then
    echo "building baseline $commit in $src (log $dir/baseline-build.log)" >&2
    [[ -d $src ]] || git worktree add --detach "$src" "$commit" >/dev/null
    (cd "$src" && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache &&
     cmake --build build -j2 --target dpep) >"$dir/baseline-build.log" 2>&1
  fi
  echo "$src/build/dpep"
}

# baseline_setup DIR COMMIT [TARGET...]: the common start of a baseline comparison. Builds this
# tree's dpep (and the extra perf TARGETs) and the baseline's dpep (path in BASE_DPEP), makes the
# bench preset model (DIR/bench.h5, bf16) once, and prints the machine and the commits.
baseline_setup() {
  local dir=$1 commit=$2; shift 2
  cmake --build build -j2 --target dpep "$@" >/dev/null
  BASE_DPEP=$(build_baseline "$dir" "$commit")
  [[ -f $dir/bench.h5 ]] ||
    build/dpep init-model --preset bench --seed 1 --dtype bf16 --out "$dir/bench.h5" >/dev/null
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), baseline $commit"
}

# bf16_peak DIR TAG: the bf16 peak (oneDNN 2048^3 bf16, all threads; needs bench_matmul built),
# printed, kept in DIR/TAG-peak.txt and set in PEAK.
bf16_peak() {
  OMP_NUM_THREADS=$(nproc) build/perf/bench_matmul --bf16-peak | tee "$1/$2-peak.txt"
  PEAK=$(sed -n 's/^bf16 peak.*: \([0-9.]*\)$/\1/p' "$1/$2-peak.txt")
}
