#!/usr/bin/env bash
# Every benchmark row that issues #5 and #6 set a target on, in one call on one GPU (36 s on an
# H100, binaries carried over): the figures to quote for the card it runs on.
#
#   BUILD_DIR=build-cuda scripts/headline_bench.sh [RESULTS_DIR]   (default ./headline-results)
#
# Rows, in this order (each benchmark under its own time limit, so that one slow part
# cannot take the rest with it):
#   MLA decode at FlashMLA's anchors (b128 x 4096 x 16 / 128 heads, b32 x 32k, b1 x 4096), with the
#     PyTorch baseline in the same run, and b1 x 4096 again with the early loads the model uses;
#   MLA prefill, 4k causal at 16 and 128 heads, against cuBLASLt's BF16 GEMM rate;
#   the grouped FP8 MoE GEMM at 4 x 8192 x 4096 x 7168;
#   the dense FP8 GEMM at M = 64, 128 and 4096 against cuBLASLt's block-scaled FP8;
#   the V2-Lite decode step at batches 1, 8, 64, 256 in BF16, and at 1 and 64 in FP8 (context 1024).
# Binaries come from $BUILD_DIR (built with -DMLASERVE_CUDA=ON, e.g. on a CPU machine and
# carried over). Writes each benchmark's JSON and its printed table under RESULTS_DIR, and
# summary.txt (one line per step). Exit status: 0 when every step ran.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD_DIR:-build-cuda}
RESULTS=${1:-./headline-results}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
SUMMARY="$RESULTS/summary.txt"
: >"$SUMMARY"
status=0

# step NAME LIMIT_S CMD...: CMD's output into RESULTS/NAME.txt, a line in the summary
# (scripts/lib/step.sh).
# shellcheck source=lib/step.sh disable=SC1091
. scripts/lib/step.sh
# shellcheck disable=SC2034  # read by run_step
STEP_WIDTH=28
step() { run_step "$1" "$2" "$RESULTS/$1.txt" "${@:3}"; }

{
  # The build's own commit only (a copied tree's .git can be stale; scripts/gpu_test.sh).
  echo "binaries from $(cat "$BUILD/build_commit.txt" 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader 2>&1
} | tee -a "$SUMMARY"

anchors=b128_c4096_h16_q1,b128_c4096_h128_q1,b32_c32768_h16_q1,b1_c4096_h16_q1
mla_args=(--out "$RESULTS" --shapes "$anchors")
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  step mla_decode_torch 300 python3 bench/mla_decode_torch_baseline.py "$RESULTS/mla_decode_torch.json" &&
    mla_args+=(--torch-baseline "$RESULTS/mla_decode_torch.json")
fi
step mla_decode 300 "$BUILD/bench/mla_decode_bench" "${mla_args[@]}"
step mla_decode_b1_early 120 "$BUILD/bench/mla_decode_bench" --out "$RESULTS" --shapes b1_c4096_h16_q1 \
  --early-loads on
step mha_prefill 300 "$BUILD/bench/mha_prefill_bench" --out "$RESULTS" --bf16-only \
  --shapes q4096_k4096_h16_causal,q4096_k4096_h128_causal
step moe_grouped 300 "$BUILD/bench/moe_fp8_bench" --out "$RESULTS" --sections gemm
step fp8_gemm 400 "$BUILD/bench/fp8_gemm_bench" --out "$RESULTS" --shapes v3. --tokens 64,128,4096
step step_v2l_bf16 400 "$BUILD/bench/decode_step_bench" --out "$RESULTS" --batches 1,8,64,256
step step_v2l_fp8 400 "$BUILD/bench/decode_step_bench" --out "$RESULTS" --batches 1,64 --quantization fp8
exit $status
