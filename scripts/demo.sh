#!/usr/bin/env bash
# The main job on the embedded default: no GPU or weights needed. Builds, shows the DeepSeek-V3
# configuration the engine derives, then starts the OpenAI-compatible server (`mlaserve serve`:
# HTTP front end, scheduler with chunked prefill and prefix cache, paged latent cache, model,
# sampler) on tiny-v3, a small random DeepSeek-V3-shaped checkpoint the project makes itself
# (tools/make_reference.py) whose output matches Hugging Face transformers token for token, and
# answers one streamed chat request from the official openai client (tools/demo_chat.py), then
# stops the server. On the GPU when one is visible, else on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
scripts/build.sh >/dev/null
build/mlaserve inspect --preset deepseek-v3
echo
device=cpu
if [[ "$(build/mlaserve info)" == *"gpu visible: yes"* ]]; then device=cuda; fi
exec python3 tools/demo_chat.py build/mlaserve tests/data/tiny-v3 tests/data/tiny-tokenizer --device "$device"
