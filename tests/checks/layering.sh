#!/usr/bin/env bash
# Layering check: the preprocessor's include closure of every source of the serve library
# (launch/serve/) and of the tokenizer library (runtime/tokenizer/) holds no MPI header, and
# model/ includes neither MPI nor HTTP. Uses the compile flags CMake recorded.
# usage: layering.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=$1 build=$2
db=$build/compile_commands.json
[[ -f $db ]] || { echo "no $db"; exit 1; }
fail=0
check() {  # check DIR FORBIDDEN_REGEX WHAT
  local dir=$1 re=$2 what=$3 n=0
  while IFS= read -r -d '' f; do
    # the command CMake compiles f with, turned into a dependency listing (-M)
    cmd=$(python3 - "$db" "$f" <<'PY'
import json, sys, shlex
db, f = sys.argv[1], sys.argv[2]
for e in json.load(open(db)):
    if e["file"] == f:
        args = shlex.split(e["command"])
        out = [a for i, a in enumerate(args) if a not in ("-c",)]
        # drop "-o X"
        res, skip = [], False
        for a in out:
            if skip: skip = False; continue
            if a == "-o": skip = True; continue
            res.append(a)
        print(" ".join(shlex.quote(a) for a in res + ["-M"]))
        break
PY
)
    [[ -n $cmd ]] || { echo "FAIL: $f is not compiled by any target"; fail=1; continue; }
    deps=$(cd "$build" && eval "$cmd" 2>&1) || { echo "FAIL: cannot preprocess $f"; fail=1; continue; }
    if grep -Eq "$re" <<<"$deps"; then
      echo "FAIL: $f includes $what: $(grep -Eo "[^ ]*($re)[^ ]*" <<<"$deps" | head -1)"
      fail=1
    fi
    n=$((n + 1))
  done < <(find "$src/$dir" -maxdepth 1 -name '*.cpp' -print0)
  echo "$dir: $n sources checked for $what"
}
check launch/serve '/mpi\.h|/openmpi/' "MPI"
check launch/report '/mpi\.h|/openmpi/' "MPI"
check runtime/tokenizer '/mpi\.h|/openmpi/' "MPI"
check model '/mpi\.h|/openmpi/|httplib\.h' "MPI or HTTP"
check model/io '/mpi\.h|/openmpi/|httplib\.h' "MPI or HTTP"
check model/ops '/mpi\.h|/openmpi/|httplib\.h' "MPI or HTTP"
check comm '/model/' "model headers"
exit $fail
