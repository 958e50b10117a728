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
