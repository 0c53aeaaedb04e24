#!/usr/bin/env bash
# Fuzzes the input parsers with libFuzzer under ASan + UBSan (tests/fuzz): every target, or those
# named, for SECONDS each (default 60), from its committed corpus (tests/fuzz/corpus/TARGET) and
# seeds (build-fuzz/tests/fuzz/seeds/TARGET, see tests/fuzz/CMakeLists.txt) into a working corpus
# that grows across runs (build-fuzz/corpus/TARGET).
#   scripts/fuzz.sh [SECONDS] [TARGET...]    targets: safetensors_header model_config request
#                                            http_session tokenizer tokenizer_files chat_template
# A crash stops its target and leaves the input in build-fuzz/findings/TARGET/; once fixed, the
# input goes into tests/fuzz/corpus/TARGET/, where CI replays it (fuzz_replay_TARGET).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors_header model_config request http_session tokenizer tokenizer_files chat_template)

scripts/setup.sh
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz: installing clang and its fuzzer runtime"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
fi

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMLASERVE_FUZZ=ON -DMLASERVE_CUDA=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target mlaserve_fuzzers

declare -A dict=([safetensors_header]=json [model_config]=json [request]=json [http_session]=http
                 [tokenizer_files]=json [chat_template]=jinja)
status=0
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t
  findings=build-fuzz/findings/$t
  mkdir -p "$work" "$findings"
  max_len=16384
  if [ "$t" = tokenizer_files ]; then  # the tiny tokenizer's two files as a seed
    { cat tests/data/tiny-tokenizer/tokenizer.json; printf '\0'; cat tests/data/tiny-tokenizer/tokenizer_config.json; } \
      > "$work/seed-tiny"
    max_len=65536
  fi
  if [ "$t" = chat_template ]; then  # the Jinja engine's conformance cases as more seeds
    python3 - "$work" <<'PY'
import json, pathlib, sys
cases = json.load(open("tests/tokenizer/data/jinja_cases.json"))
for i, case in enumerate(cases):
    pathlib.Path(sys.argv[1], f"case-{i:03d}").write_text(case["template"])
PY
  fi
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len="$max_len" -print_final_stats=1
        -artifact_prefix="$findings/")
  [ -n "${dict[$t]:-}" ] && args+=(-dict="tests/fuzz/dict/${dict[$t]}.dict")
  echo "== fuzz_$t: ${seconds} s"
  inputs=("$work")
  for d in "tests/fuzz/corpus/$t" "build-fuzz/tests/fuzz/seeds/$t"; do [ -d "$d" ] && inputs+=("$d"); done
  if ! build-fuzz/tests/fuzz/fuzz_"$t" "${args[@]}" "${inputs[@]}" 2>"build-fuzz/fuzz_$t.log"; then
    echo "fuzz_$t FOUND A BUG: input in $findings/, log in build-fuzz/fuzz_$t.log"
    status=1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb|new_units_added)" "build-fuzz/fuzz_$t.log" || true
done
exit $status
