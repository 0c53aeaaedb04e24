#!/usr/bin/env bash
# The main job on the embedded default: no GPU or weights needed. Builds, then shows the
# DeepSeek-V3 configuration the engine derives, and runs the whole engine (scheduler with chunked
# prefill and prefix cache, paged latent cache, model, sampler) on 16 concurrent requests against
# tiny-v3, a small random DeepSeek-V3-shaped checkpoint the project makes itself
# (tools/make_reference.py) whose output matches Hugging Face transformers token for token
# (tests/model/golden_test.cc, tests/engine/engine_model_test.cc). On the CPU when there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
scripts/build.sh >/dev/null
build/mlaserve inspect --preset deepseek-v3
echo
device=cpu
if [[ "$(build/mlaserve info)" == *"gpu visible: yes"* ]]; then device=cuda; fi
exec build/mlaserve bench throughput --model tests/data/tiny-v3 --device "$device" --num-blocks 64 \
  --num-prompts 16 --input-len 100 --output-len 32 --max-num-batched-tokens 512 --results-dir build/bench-results
