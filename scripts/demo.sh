#!/usr/bin/env bash
# The main job on the embedded default: no GPU or weights needed. Builds, then runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
scripts/build.sh >/dev/null
exec build/mlaserve inspect --preset deepseek-v3
