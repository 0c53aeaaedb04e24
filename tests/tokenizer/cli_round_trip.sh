#!/usr/bin/env bash
# `mlaserve tokenize | mlaserve detokenize` on the tiny tokenizer: the text comes back, BOS
# appears with --add-special, a bad line gives an error line in its place and exit code 1, and
# ids outside int32 are refused.
#   cli_round_trip.sh MLASERVE_BINARY TOKENIZER_DIR
set -euo pipefail
bin=$1
dir=$2
fail() { echo "FAIL: $*"; exit 1; }

input='{"text": "héllo <｜User｜> 1234 😀\n"}'
ids=$(printf '%s\n' "$input" | "$bin" tokenize --tokenizer "$dir")
[[ $ids == '{"ids":['* ]] || fail "tokenize gave: $ids"
back=$(printf '%s\n' "$ids" | "$bin" detokenize --tokenizer "$dir")
[[ $back == '{"text":"héllo <｜User｜> 1234 😀\n"}' ]] || fail "round trip gave: $back"

with_bos=$(printf '%s\n' '{"text": "hi"}' | "$bin" tokenize --tokenizer "$dir" --add-special)
[[ $with_bos == '{"ids":[0,'* ]] || fail "--add-special gave: $with_bos"
skipped=$(printf '%s\n' "$with_bos" | "$bin" detokenize --tokenizer "$dir" --skip-special)
[[ $skipped == '{"text":"hi"}' ]] || fail "--skip-special gave: $skipped"

# run_lines COMMAND LINE...: the command on those input lines; sets code (its exit status) and
# lines (its output lines).
run_lines() {
  local cmd=$1 out
  shift
  set +e
  out=$(printf '%s\n' "$@" | "$bin" "$cmd" --tokenizer "$dir")
  code=$?
  set -e
  mapfile -t lines <<< "$out"
}

run_lines tokenize 'not json' '{"text": "ok"}' '{"ids": [99999]}'
[[ $code == 1 ]] || fail "exit code $code after a bad line"
[[ ${#lines[@]} == 3 ]] || fail "expected 3 output lines, got: ${lines[*]}"
[[ ${lines[0]} == '{"error":"line 1: '* ]] || fail "bad JSON gave: ${lines[0]}"
[[ ${lines[1]} == '{"ids":['* ]] || fail "good line gave: ${lines[1]}"
[[ ${lines[2]} == *'string field \"text\"'* ]] || fail "missing text gave: ${lines[2]}"
# Ids past int32 are refused, not wrapped (4294967296 once decoded as token 0).
run_lines detokenize '{"ids": [4294967296]}' '{"ids": [-1]}' '{"ids": [1]}'
[[ $code == 1 ]] || fail "exit code $code after out-of-range ids"
[[ ${lines[0]} == *'token id 4294967296 outside'* ]] || fail "2^32 gave: ${lines[0]}"
[[ ${lines[1]} == *'token id -1 outside'* ]] || fail "-1 gave: ${lines[1]}"
[[ ${lines[2]} == '{"text":'* ]] || fail "a good line after them gave: ${lines[2]}"
echo "cli round trip: ok"
