#!/usr/bin/env bash
# Builds the libFuzzer target for the GGUF reader with clang (ASan+UBSan) and
# runs it for SECONDS on a seed corpus; exits non-zero when it finds a crash
# (the input is saved as build-fuzz/gguf-crash-*).
#
#   tests/fuzz/run_gguf_fuzzer.sh 30
#   MOESTREAM_FUZZ_BUILD_DIR=/tmp/bf tests/fuzz/run_gguf_fuzzer.sh 600
#
# Needs clang and libclang-rt-14-dev (Debian 12). The corpus grown by earlier
# runs is kept in the build directory and reused.
set -euo pipefail
secs=${1:-}
if [[ ! "$secs" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${MOESTREAM_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${MOESTREAM_FUZZ_BUILD_JOBS:-2}

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DMOESTREAM_FUZZ=ON \
  -DMOESTREAM_CUDA=OFF -DMOESTREAM_URING=OFF -DMOESTREAM_BENCH=OFF >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log" >&2; exit 1; }
ninja -C "$build" -j"$jobs" gguf_fuzzer make_gguf_seeds

seeds="$build/gguf_seeds"
corpus="$build/gguf_corpus"
mkdir -p "$seeds" "$corpus"
models=()
stories="$root/../shared/data/stories260k-gguf/stories260K.gguf"
[[ -f "$stories" ]] && models+=("$stories")
"$build/tests/fuzz/make_gguf_seeds" "$seeds" "${models[@]}"

echo "fuzzing the GGUF reader for ${secs}s ($(ls "$seeds" | wc -l) seeds, $(ls "$corpus" | wc -l) corpus files)"
"$build/tests/fuzz/gguf_fuzzer" "$corpus" "$seeds" \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$build/gguf-crash-"
