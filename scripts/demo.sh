#!/usr/bin/env bash
# The main job on the embedded default: no GPU or weights needed. Builds, then shows the
# DeepSeek-V3 configuration the engine derives, and generates from tiny-v3, a small random
# DeepSeek-V3-shaped checkpoint the project makes itself (tools/make_reference.py), whose output
# matches Hugging Face transformers token for token (tests/model/golden_test.cc).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
scripts/build.sh >/dev/null
build/mlaserve inspect --preset deepseek-v3
echo
exec build/mlaserve generate --model tests/data/tiny-v3 --prompt-ids 0,17,93,400,12 --max-tokens 24 --temperature 0
