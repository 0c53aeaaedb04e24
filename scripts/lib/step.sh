# One step of the GPU machine's scripts (gpu_test.sh, headline_bench.sh, dist_bench.sh), sourced
# by them: a command run under an optional time limit, its output kept, one summary line.
#
#   run_step NAME LIMIT OUT CMD...
#
# LIMIT: seconds, or 0 for none (CMD may then be a shell function of the caller, which can set
# STEP_NOTE for the PASS line to carry). OUT gets "== NAME: CMD", then CMD's stdout and stderr.
# The summary line, "NAME VERDICT SECONDS" with NAME padded to STEP_WIDTH (default 44), goes to
# stdout, to $SUMMARY and to OUT. VERDICT: PASS[$STEP_NOTE], TIMEOUT (LIMITs) or FAIL (exit N);
# anything but PASS sets the caller's status=1. Returns CMD's exit status.
# shellcheck shell=bash
STEP_NOTE=
run_step() {
  local name=$1 limit=$2 out=$3
  shift 3
  echo "== $name: $*" >>"$out"
  local t0=$SECONDS rc
  if [ "$limit" -gt 0 ]; then
    timeout "$limit" "$@" >>"$out" 2>&1
  else
    "$@" >>"$out" 2>&1
  fi
  rc=$?
  local verdict="PASS$STEP_NOTE"
  if [ $rc -eq 124 ] && [ "$limit" -gt 0 ]; then
    verdict="TIMEOUT (${limit}s)"
  elif [ $rc -ne 0 ]; then
    verdict="FAIL (exit $rc)"
  fi
  # shellcheck disable=SC2034  # the sourcing script's exit status
  [ $rc -ne 0 ] && status=1
  STEP_NOTE=
  printf '%-*s %-16s %4ds\n' "${STEP_WIDTH:-44}" "$name" "$verdict" $((SECONDS - t0)) | tee -a "$SUMMARY" "$out"
  return $rc
}
