#!/usr/bin/env bash
# Issue #9's checks and benchmarks on one machine with 2 or 4 GPUs, in one command:
#
#   scripts/dist_bench.sh [RESULTS_DIR]     (default: $OUT when set, else ./dist-results)
#
# 1. tests: test_dist_cuda with a world of 2 ranks (TP2, PP2), and of 4 (TP4, TP2xPP2, PP4)
#    when 4 GPUs are visible.
# 2. loopback: "two machines" on this one: two `mlaserve bench throughput --nnodes 2` processes
#    started separately, node 0 and node 1 each with half of the GPUs (CUDA_VISIBLE_DEVICES),
#    meeting at 127.0.0.1 (TP within a node, PP2 across the nodes). Once with NCCL's own choice
#    of transport, once with NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 NCCL_IB_DISABLE=1
#    NCCL_SOCKET_IFNAME=lo, so that every byte between ranks goes through TCP sockets (the log
#    keeps NCCL's "via NET/Socket" lines).
# 3. table: `mlaserve bench throughput` on V2-Lite dummy weights (BF16), the engine's own KV
#    sizing and --max-num-batched-tokens 8192 on every row, for 1 GPU, TP2, PP2 (one step per
#    stage in flight) and PP2 with one step in flight (the synchronous engine, for comparison),
#    and with 4 GPUs TP4, TP2xPP2 and PP4, on two workloads: 1000 x (1000 in, 100 out) and a
#    decode-heavy 512 x (64 in, 256 out) (512 requests: a pipeline holds two steps of 256).
#
# Writes to RESULTS_DIR: dist_bench.log (every command and its output), summary.txt (one line
# per step, then the throughput table in Markdown) and results.tar (the JSON of every bench run,
# named after its step, added as each run ends). Few files on purpose: the device tool brings
# back at most 8. Exit status: 0 when every step passed.
#
# Environment: BUILD_DIR (default build: $BUILD_DIR/mlaserve and
# $BUILD_DIR/tests/dist/cuda/test_dist_cuda); PARTS (default "tests loopback table");
# WORKLOADS (default "1000:1000:100 512:64:256", each prompts:input:output); LAYOUTS (names
# of the table's rows to run, in that order, e.g. "1gpu pp2 tp2"; default all); BENCH_TIMEOUT
# (seconds per bench run, default 120).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RESULTS=${1:-${OUT:-./dist-results}}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
LOG="$RESULTS/dist_bench.log"
SUMMARY="$RESULTS/summary.txt"
JSON_DIR=$(mktemp -d)
: >"$LOG"
: >"$SUMMARY"
BUILD=${BUILD_DIR:-build}
MLASERVE="$BUILD/mlaserve"
PARTS=${PARTS:-"tests loopback table"}
WORKLOADS=${WORKLOADS:-"1000:1000:100 512:64:256"}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
export NCCL_NVLS_ENABLE=0  # never NVLink multicast on these shared machines
GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
status=0

log() { echo "$*" | tee -a "$LOG"; }
# step NAME TIMEOUT CMD...: runs CMD (at most TIMEOUT seconds) with its output in the log,
# records PASS/FAIL/TIMEOUT and the time (scripts/lib/step.sh).
# shellcheck source=lib/step.sh disable=SC1091
. scripts/lib/step.sh
step() { run_step "$1" "$2" "$LOG" "${@:3}"; }
# bench NAME TIMEOUT ARGS...: one `mlaserve bench throughput` (in the environment BENCH_ENV);
# its JSON is kept as NAME.json.
BENCH_ENV=()
bench() {
  local name=$1 limit=$2
  shift 2
  local dir="$JSON_DIR/tmp-$name"
  step "$name" "$limit" env "${BENCH_ENV[@]}" "$MLASERVE" bench throughput "$@" --results-dir "$dir"
  local rc=$?
  local json
  json=$(find "$dir" -maxdepth 1 -name "*.json" 2>/dev/null | sort | head -n 1)
  if [ -n "$json" ]; then
    mv "$json" "$JSON_DIR/$name.json"
    tar rf "$RESULTS/results.tar" -C "$JSON_DIR" "./$name.json"  # kept even if a later step is cut short
  fi
  rm -rf "$dir"
  return $rc
}

log "dist_bench on $GPUS GPU(s): $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1), $(date -u +%FT%TZ)"
nvidia-smi topo -m >>"$LOG" 2>&1
if [ "$GPUS" -lt 2 ]; then
  log "needs at least 2 GPUs"
  exit 1
fi
V2LITE=(--load-format dummy --preset deepseek-v2-lite --device cuda)

# ---- 1. test_dist_cuda ---------------------------------------------------------------------
if [[ " $PARTS " == *" tests "* ]]; then
  step "test_dist_cuda world 2" 120 env MLASERVE_TEST_WORLD=2 "$BUILD/tests/dist/cuda/test_dist_cuda"
  if [ "$GPUS" -ge 4 ]; then
    step "test_dist_cuda world 4" 120 env MLASERVE_TEST_WORLD=4 "$BUILD/tests/dist/cuda/test_dist_cuda"
  fi
fi

# ---- 2. two nodes over loopback ------------------------------------------------------------
# loopback NAME PORT [VAR=VALUE...]: node 1 in the background, node 0 in front, each with half
# of the GPUs, both in the given environment.
loopback() {
  local name=$1 port=$2
  shift 2
  local per_node=$((GPUS >= 4 ? 2 : 1))
  local node0 node1
  node0=$(seq -s, 0 $((per_node - 1)))
  node1=$(seq -s, "$per_node" $((2 * per_node - 1)))
  local args=("${V2LITE[@]}" --tensor-parallel-size "$per_node" --pipeline-parallel-size 2 --nnodes 2
              --master-addr 127.0.0.1 --master-port "$port" --num-prompts 256 --input-len 256 --output-len 64)
  log "== $name node 1, in the background: env $* CUDA_VISIBLE_DEVICES=$node1 $MLASERVE bench throughput ${args[*]} --node-rank 1"
  env "$@" CUDA_VISIBLE_DEVICES="$node1" timeout 180 "$MLASERVE" bench throughput "${args[@]}" --node-rank 1 \
    >"$JSON_DIR/$name-node1.log" 2>&1 &
  local pid1=$!
  BENCH_ENV=("$@" CUDA_VISIBLE_DEVICES="$node0")
  bench "$name" 180 "${args[@]}" --node-rank 0
  local rc0=$?
  BENCH_ENV=()
  wait "$pid1"
  local rc1=$?
  { echo "-- $name node 1 (exit $rc1):"; cat "$JSON_DIR/$name-node1.log"; } >>"$LOG"
  printf '%-44s %-16s\n' "$name node 1" "$([ $rc1 -eq 0 ] && echo PASS || echo "FAIL (exit $rc1)")" | tee -a "$SUMMARY"
  [ $rc1 -ne 0 ] && status=1
  # NCCL's connections (with NCCL_DEBUG=INFO): how many go through which transport.
  { sed -n "/^== $name: /,\$p" "$LOG"; cat "$JSON_DIR/$name-node1.log"; } | grep -o "via [A-Za-z0-9]*/[A-Za-z0-9]*" \
    | sort | uniq -c | sed "s/^/  $name connections: /" | tee -a "$SUMMARY"
  return $((rc0 | rc1))
}
if [[ " $PARTS " == *" loopback "* ]]; then
  loopback loopback-nccl-default 29611 NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT
  loopback loopback-sockets 29622 NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 NCCL_IB_DISABLE=1 NCCL_SOCKET_IFNAME=lo \
    NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT
fi

# ---- 3. throughput table -------------------------------------------------------------------
if [[ " $PARTS " == *" table "* ]]; then
  all=("1gpu:" "tp2:--tensor-parallel-size 2" "pp2:--pipeline-parallel-size 2"
       "pp2sync:--pipeline-parallel-size 2 --pipeline-steps-in-flight 1")
  if [ "$GPUS" -ge 4 ]; then
    all+=("tp4:--tensor-parallel-size 4" "tp2pp2:--tensor-parallel-size 2 --pipeline-parallel-size 2"
          "pp4:--pipeline-parallel-size 4")
  fi
  layouts=("${all[@]}")
  if [ -n "${LAYOUTS:-}" ]; then  # these, in this order (those this machine can run)
    layouts=()
    for want in $LAYOUTS; do
      for l in "${all[@]}"; do [ "${l%%:*}" = "$want" ] && layouts+=("$l"); done
    done
  fi
  port=29700
  for w in $WORKLOADS; do
    IFS=: read -r prompts input output <<<"$w"
    for l in "${layouts[@]}"; do
      port=$((port + 1))
      # shellcheck disable=SC2086  # the layout's flags split on purpose
      bench "v2lite-${prompts}x${input}x${output}-${l%%:*}" "$BENCH_TIMEOUT" "${V2LITE[@]}" ${l#*:} \
        --max-num-batched-tokens 8192 --master-port "$port" --num-prompts "$prompts" --input-len "$input" \
        --output-len "$output"
    done
  done
fi

# ---- summary: a Markdown table from the JSON -------------------------------------------------
python3 - "$JSON_DIR" >>"$SUMMARY" <<'EOF'
import json, pathlib, sys
rows = []
for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    d = json.loads(p.read_text())
    r, o = d["results"], d["options"]
    rows.append((p.stem, r["num_prompts"], r["input_len"], r["output_len"], r["elapsed_s"], r["requests_per_s"],
                 r["output_tokens_per_s"], r["total_tokens_per_s"], o["kv_cache_tokens"], r["preemptions"],
                 r["engine_steps"], r["elapsed_s"] / max(1, r["engine_steps"]) * 1e3))
# "vs 1 GPU": total tokens/s over the 1 GPU row's of the same workload.
one = {row[0].rsplit("-", 1)[0]: row[7] for row in rows if row[0].endswith("-1gpu")}
print("\n| run | requests | elapsed s | req/s | output tok/s | total tok/s | vs 1 GPU | KV cache tokens | steps | ms/step | preemptions |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for n, np_, i, o, e, rq, ot, tt, kv, pre, st, ms in rows:
    base = one.get(n.rsplit("-", 1)[0])
    vs = f"{tt / base:.2f}x" if base else "-"
    print(f"| {n} | {np_} x ({i}, {o}) | {e:.2f} | {rq:.1f} | {ot:,.0f} | {tt:,.0f} | {vs} | {kv:,} | {st} | {ms:.1f} | {pre} |")
EOF
cat "$SUMMARY"
(cd "$JSON_DIR" && tar rf "$RESULTS/results.tar" ./*.log 2>/dev/null)
rm -rf "$JSON_DIR"
exit $status
