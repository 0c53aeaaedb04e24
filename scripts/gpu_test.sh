#!/usr/bin/env bash
# The GPU machine's one command: every CUDA op test, their small cases again under
# compute-sanitizer (memcheck, racecheck), then the benchmarks with their PyTorch baselines.
#
#   scripts/gpu_test.sh [RESULTS_DIR]     (default: $OUT when set, else ./gpu-results)
#
# Binaries come from $BUILD_DIR (default build-cuda, else build) when its CUDA test binaries
# exist, e.g. built on the CPU machine and carried over; otherwise the script configures and
# builds them there with cmake + ninja. It finds tests as tests/**/cuda/test_* and benchmarks
# as bench/*_bench in the build folder, so a new CUDA op test or benchmark needs no edit here;
# a benchmark NAME_bench gets --torch-baseline from bench/NAME_torch_baseline.py when present.
#
# Writes to RESULTS_DIR: gpu_test.log (everything), summary.txt (one line per step, also
# printed last), gtest/*.xml, and bench/*.json. Few files on purpose: the device tool brings
# back at most 8. Exit status: 0 when every step passed.
#
# Environment: BUILD_DIR; PARTS (which of tests,sanitize,bench to run, default all three: a
# machine that limits each command's time can take them in turns); TEST_FILTER (gtest filter of
# the plain test runs, default '*'; e.g. '-MoeFp8Cuda.V3Gemv' leaves out the slowest case: its
# binary took 98 s without it and over 170 s with it on an H200); SANITIZE_FILTER (gtest filter
# of the sanitizer runs, default '*.Small*'); SANITIZE_TIMEOUT (seconds per sanitizer run,
# default 900: racecheck of test_ops_cuda's Small cases takes minutes); TESTS (the test binaries
# of the tests and sanitize parts, by name, comma-separated; default every one found); JOBS (test
# binaries run side by side in the tests and sanitize parts, each lane taking the next binary;
# default 1; never the benchmarks: their timings would share the GPU). One after another the
# tests part took ~8-9 minutes on an H200; on an H100 with JOBS=4 the tests part took 109 s and the sanitize part 314 s (racecheck
# of test_ops_cuda alone 281 s), so `PARTS=tests,sanitize JOBS=4` fits a machine that limits each
# command to 10 minutes. SKIP_BENCH=1 (as PARTS without bench).
#
# racecheck reports hazards inside two third-party kernels that the tests reach: cuBLASLt's
# block-scaled FP8 GEMMs (nvjet_sm90_*) and CUTLASS's grouped blockwise FP8 mainloop
# (cutlass::device_kernel<...>). Their code is not ours to change, and their outputs pass the
# tests' checks, so a racecheck run whose every reported access lies in one of them passes with
# "(third-party hazards only)" in the summary and the report in the log; a hazard anywhere else
# fails the step. (racecheck also flags two correct hand-overs between warpgroups: stores followed
# directly by a bar.arrive, and a bar.sync pair of all threads after a bar.arrive; our kernels hand
# data over in forms it reads right. bench/NOTES-mla-decode.md, the fifty-first session's probe.)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
RESULTS=${1:-${OUT:-./gpu-results}}
mkdir -p "$RESULTS/gtest" "$RESULTS/bench"
RESULTS=$(cd "$RESULTS" && pwd)
LOG="$RESULTS/gpu_test.log"
SUMMARY="$RESULTS/summary.txt"
: >"$LOG"
: >"$SUMMARY"
PARTS=",${PARTS:-tests,sanitize,bench},"
[ "${SKIP_BENCH:-0}" = 1 ] && PARTS=${PARTS//,bench,/,}
part() { [[ $PARTS == *",$1,"* ]]; }
TEST_FILTER=${TEST_FILTER:-'*'}
SANITIZE_FILTER=${SANITIZE_FILTER:-'*.Small*'}
SANITIZE_TIMEOUT=${SANITIZE_TIMEOUT:-900}
JOBS=${JOBS:-1}
export PATH="/usr/local/cuda/bin:$PATH"
# The tests read their data under this checkout, also from a build made elsewhere and carried here
# (tests/model/tiny_models.h: source_dir).
export MLASERVE_SOURCE_DIR="$ROOT"
status=0

log() { echo "$*" | tee -a "$LOG"; }
# step NAME CMD...: CMD (no time limit; it may be a function of this script that sets STEP_NOTE)
# with its output in the log, and a PASS/FAIL line with its time (scripts/lib/step.sh).
# shellcheck source=lib/step.sh disable=SC1091
. "$ROOT/scripts/lib/step.sh"
# shellcheck disable=SC2034  # read by run_step
STEP_WIDTH=58
step() { run_step "$1" 0 "$LOG" "${@:2}"; }

# racecheck TEST: racecheck of TEST's SANITIZE_FILTER cases, its report on stdout. Hazards (exit
# 99) count as a pass, noted in the summary, when no test failed and every access the report
# names lies in a third-party kernel (the note at the top). Run through step.
# shellcheck disable=SC2317  # invoked indirectly, as step's command
racecheck() {
  local report rc
  report=$(mktemp)
  timeout "$SANITIZE_TIMEOUT" compute-sanitizer --tool racecheck --error-exitcode 99 "$1" \
    --gtest_filter="$SANITIZE_FILTER" >"$report" 2>&1
  rc=$?
  cat "$report"
  if [ "$rc" -eq 99 ] && grep -q ' access at ' "$report" && ! grep -q '^\[  FAILED  \]' "$report" &&
    ! grep ' access at ' "$report" | grep -qvE ' access at (nvjet_sm90_|void cutlass::device_kernel<)'; then
    # shellcheck disable=SC2034  # read by run_step
    STEP_NOTE=" (third-party hazards only)"
    rc=0
  fi
  rm -f "$report"
  return "$rc"
}

find_tests() { find "$1/tests" -path '*/cuda/*' -type f -perm -u+x -name 'test_*' 2>/dev/null | sort; }
# A carried build is usable when its test binaries start here (same loader and libstdc++).
usable() {
  local t
  t=$(find_tests "$1" | head -n 1)
  [ -n "$t" ] && "$t" --gtest_list_tests >/dev/null 2>&1
}

BUILD=${BUILD_DIR:-}
if [ -z "$BUILD" ]; then
  for candidate in build-cuda build; do
    if usable "$candidate"; then BUILD=$candidate; break; fi
  done
fi
if [ -z "$BUILD" ] || ! usable "$BUILD"; then
  BUILD=${BUILD:-build-cuda}
  step "configure ($BUILD)" cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLASERVE_CUDA=ON || exit 1
  step "build ($BUILD)" cmake --build "$BUILD" -j"$(nproc)" || exit 1
fi
BUILD=$(cd "$BUILD" && pwd)

{
  # Only the build's own commit: the device tool's copy of the tree can carry a stale .git, whose
  # describe named another commit than the binaries' (sixty-sixth session).
  echo "host: $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  echo "build: $BUILD, binaries from $(cat "$BUILD/build_commit.txt" 2>/dev/null || echo 'an unknown commit (no build_commit.txt)')"
} | tee -a "$LOG"

tests=$(find_tests "$BUILD")
if [ -n "${TESTS:-}" ]; then
  tests=$(for t in $tests; do [[ ",$TESTS," == *",$(basename "$t"),"* ]] && echo "$t"; done)
  if [ -z "$tests" ]; then
    log "TESTS=$TESTS names no test binary of $BUILD"
    status=1
  fi
fi
# in_lanes FUNC ITEM...: FUNC ITEM for every item, in JOBS lanes side by side (each lane takes
# the next item not yet taken), each lane with its own log and summary, which join this script's
# in lane order once every lane has ended; a lane's FAIL or TIMEOUT line sets status. JOBS=1: one
# after another.
in_lanes() {
  local func=$1
  shift
  if [ "$JOBS" -le 1 ]; then
    for item in "$@"; do "$func" "$item"; done
    return
  fi
  local dir n
  dir=$(mktemp -d)
  echo 0 >"$dir/next"
  for ((n = 0; n < JOBS; n++)); do
    : >"$dir/$n.log"
    : >"$dir/$n.summary"
    LOG=$dir/$n.log SUMMARY=$dir/$n.summary lane "$dir/next" "$func" "$@" &
  done
  wait
  for ((n = 0; n < JOBS; n++)); do
    cat "$dir/$n.log" >>"$LOG"
    cat "$dir/$n.summary" >>"$SUMMARY"
  done
  grep -qE ' (FAIL|TIMEOUT) \(' "$dir"/*.summary && status=1
  rm -rf "$dir"
}
# lane NEXT FUNC ITEM...: FUNC ITEM for the items this lane takes, by the index in file NEXT
# (read and advanced under flock).
lane() {
  local next=$1 func=$2 i
  shift 2
  local items=("$@")
  # shellcheck disable=SC2016  # the inner shell expands them
  while i=$(flock "$next" sh -c 'i=$(cat "$1"); echo $((i + 1)) >"$1"; echo "$i"' _ "$next") &&
    [ "$i" -lt ${#items[@]} ]; do
    "$func" "${items[i]}"
  done
}

# The plain run of test binary $1.
# shellcheck disable=SC2317  # invoked indirectly, through in_lanes
run_test() {
  local name
  name=$(basename "$1")
  step "$name" "$1" --gtest_filter="$TEST_FILTER" --gtest_output="xml:$RESULTS/gtest/$name.xml"
}

# memcheck and racecheck of test binary $1's SANITIZE_FILTER cases.
# shellcheck disable=SC2317  # invoked indirectly, through in_lanes
sanitize_test() {
  local name
  name=$(basename "$1")
  if ! "$1" --gtest_list_tests --gtest_filter="$SANITIZE_FILTER" 2>/dev/null | grep -q '^  '; then
    log "$name has no $SANITIZE_FILTER cases: no sanitizer runs"
    return
  fi
  step "$name under memcheck ($SANITIZE_FILTER)" timeout "$SANITIZE_TIMEOUT" \
    compute-sanitizer --tool memcheck --error-exitcode 99 "$1" --gtest_filter="$SANITIZE_FILTER"
  step "$name under racecheck ($SANITIZE_FILTER)" racecheck "$1"
}

# shellcheck disable=SC2086  # $tests: one path a word
if part tests; then
  in_lanes run_test $tests
fi

if ! part sanitize; then
  :
elif command -v compute-sanitizer >/dev/null; then
  # shellcheck disable=SC2086
  in_lanes sanitize_test $tests
else
  log "compute-sanitizer not found: sanitizer runs skipped"
  echo "compute-sanitizer                                          SKIPPED" >>"$SUMMARY"
fi

if part bench; then
  for b in $(find "$BUILD/bench" -maxdepth 1 -type f -perm -u+x -name '*_bench' 2>/dev/null | sort); do
    name=$(basename "$b")
    args=(--out "$RESULTS/bench")
    baseline="$ROOT/bench/${name%_bench}_torch_baseline.py"
    if [ -f "$baseline" ] && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
      step "$name torch baseline" python3 "$baseline" "$RESULTS/bench/${name%_bench}_torch.json" &&
        args+=(--torch-baseline "$RESULTS/bench/${name%_bench}_torch.json")
    fi
    step "$name" "$b" "${args[@]}"
    # The benchmark's table, for the reply's tail.
    sed -n '/^card: /,/^wrote /p' "$LOG" | tail -n 30 >>"$SUMMARY"
  done
fi

echo
echo "== summary ($RESULTS)"
cat "$SUMMARY"
exit $status
