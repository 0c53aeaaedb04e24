#!/usr/bin/env bash
# Runs the whole test suite from a clean clone: set-up, build, then
#   1. the input-parsing tests again under AddressSanitizer + UBSan (CPU code only),
#   2. every test of the release build through CTest (the last summary printed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh

echo "== sanitizer build (ASan + UBSan) of the input-parsing tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMLASERVE_SANITIZE=ON -DMLASERVE_CUDA=OFF >/dev/null
cmake --build build-asan -j"$(nproc)" --target mlaserve_sanitized_tests
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L sanitize --output-on-failure -j"$(nproc)"

echo "== all tests"
ctest --test-dir build --output-on-failure -j"$(nproc)"
