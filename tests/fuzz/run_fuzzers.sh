#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan), writes their seed
# corpora, and runs each named target (default: all) for SECONDS, one after
# the other; exits non-zero when any finds a crash (the input is saved as
# BUILD/crash-TARGET-*). Prints one line per target (executions, exec/s,
# result) and writes them to BUILD/fuzz-summary.tsv.
#
#   tests/fuzz/run_fuzzers.sh 25                          # every target, 25 s each (CI)
#   tests/fuzz/run_fuzzers.sh 600 trace_csv_fuzzer        # one target
#   MOESTREAM_FUZZ_RUNS=10000000 tests/fuzz/run_fuzzers.sh 7200 spec_fuzzer
#
# Environment: MOESTREAM_FUZZ_BUILD_DIR (default ./build-fuzz),
# MOESTREAM_FUZZ_BUILD_JOBS (2), MOESTREAM_FUZZ_RUNS (stop after this many
# executions, SECONDS still caps the time), MOESTREAM_BIN (the moestream that
# writes the packed-store seeds; default build/cli/moestream, built when
# missing). Seeds come from ../shared/data (traces, tokenizers, the
# stories260K model) plus small generated files; the corpus each target grows
# is kept in BUILD/corpus/TARGET and reused. Needs clang and
# libclang-rt-14-dev (Debian 12).
set -euo pipefail
all_targets=(gguf_fuzzer trace_mstrace_fuzzer trace_csv_fuzzer trace_jsonl_fuzzer
  chat_template_fuzzer tokenizer_fuzzer store_fuzzer spec_fuzzer)
secs=${1:-}
if [[ ! "$secs" =~ ^[0-9]+$ ]] || ((secs == 0)); then
  echo "usage: $0 SECONDS_PER_TARGET [TARGET...]   (targets: ${all_targets[*]})" >&2
  exit 2
fi
shift
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "$0: unknown target '$t' (known: ${all_targets[*]})" >&2; exit 2; }
done
runs=${MOESTREAM_FUZZ_RUNS:-}
if [[ -n "$runs" && ! "$runs" =~ ^[0-9]+$ ]]; then
  echo "$0: MOESTREAM_FUZZ_RUNS must be a whole number, got '$runs'" >&2
  exit 2
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${MOESTREAM_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${MOESTREAM_FUZZ_BUILD_JOBS:-2}
shared="$root/../shared/data"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DMOESTREAM_FUZZ=ON \
  -DMOESTREAM_CUDA=OFF -DMOESTREAM_URING=OFF -DMOESTREAM_BENCH=OFF >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log" >&2; exit 1; }
ninja -C "$build" -j"$jobs" "${targets[@]}" make_gguf_seeds make_trace_seeds

# ---- seeds (rewritten on every run; the grown corpus is kept apart)
seeds_of() { echo "$build/seeds/$1"; }
fresh() { rm -rf "$(seeds_of "$1")"; mkdir -p "$(seeds_of "$1")"; }
# The first N lines of a shared file, as a seed of target T.
excerpt() {
  local t=$1 f=$2 n=$3
  [[ -f "$f" ]] && head -n "$n" "$f" >"$(seeds_of "$t")/$(basename "$f")"
  return 0
}

seed_gguf() {
  fresh gguf_fuzzer
  local models=()
  [[ -f "$shared/stories260k-gguf/stories260K.gguf" ]] && models+=("$shared/stories260k-gguf/stories260K.gguf")
  "$build/tests/fuzz/make_gguf_seeds" "$(seeds_of gguf_fuzzer)" "${models[@]}" >/dev/null
}
seed_trace_csv() {
  fresh trace_csv_fuzzer
  for f in "$shared"/*-route-trace/*.route.csv; do excerpt trace_csv_fuzzer "$f" 60; done
}
seed_trace_jsonl() {
  fresh trace_jsonl_fuzzer
  for f in "$shared"/mixtral-8x7b-routing/*_routing.jsonl "$shared"/mixtral-8x7b-routing/*raw*.jsonl \
           "$shared"/olmoe-routing-layer0/moe_routes.jsonl "$shared"/qwen15-moe-routing/moe_layer0.jsonl; do
    excerpt trace_jsonl_fuzzer "$f" 24
  done
  # Two vLLM logger files of one directory, NUL-separated (see trace_fuzzer.cc).
  local q="$shared/qwen15-moe-routing"
  if [[ -f "$q/moe_layer0.jsonl" && -f "$q/moe_layer8.jsonl" ]]; then
    { head -n 12 "$q/moe_layer0.jsonl"; printf '\0'; head -n 12 "$q/moe_layer8.jsonl"; } \
      >"$(seeds_of trace_jsonl_fuzzer)/qwen15-two-layers"
  fi
}
seed_trace_mstrace() {
  fresh trace_mstrace_fuzzer
  local tmp="$build/seeds/mstrace-src"
  rm -rf "$tmp"; mkdir -p "$tmp"
  local srcs=()
  for f in "$shared"/*-route-trace/*.route.csv; do [[ -f "$f" ]] && head -n 80 "$f" >"$tmp/$(basename "$f")" && srcs+=("$tmp/$(basename "$f")"); done
  local m="$shared/mixtral-8x7b-routing/gsm8k_p0_routing.jsonl"
  [[ -f "$m" ]] && head -n 40 "$m" >"$tmp/mixtral_routing.jsonl" && srcs+=("$tmp/mixtral_routing.jsonl")
  ((${#srcs[@]})) && "$build/tests/fuzz/make_trace_seeds" "$(seeds_of trace_mstrace_fuzzer)" "${srcs[@]}" >/dev/null
  rm -rf "$tmp"
}
seed_chat_template() {
  fresh chat_template_fuzzer
  local d; d=$(seeds_of chat_template_fuzzer)
  local i=0
  for s in "{% for message in messages %}<|im_start|>{{ message['role'] }}{% endfor %}" \
           "<|start_header_id|>user<|end_header_id|>" "<|header_start|>" "<|channel|>final" \
           "[INST] {{ message['content'] }} [/INST]" "<｜User｜>{{ content }}<｜Assistant｜>" \
           "'Assistant: '" "chatml" "gpt-oss" "user"; do
    printf '%s' "$s" >"$d/t$((i++))"
  done
}
seed_tokenizer() {
  fresh tokenizer_fuzzer
  local d; d=$(seeds_of tokenizer_fuzzer)
  # Byte 0 picks the vocabulary (6 loaded by default), byte 1 the mode.
  local v=0
  for inp in "$shared"/tokenizers/*.inp; do
    [[ -f "$inp" ]] || continue
    for mode in 0 3; do
      { printf "\\$(printf %03o $v)\\$(printf %03o $mode)"; head -c 1500 "$inp"; } >"$d/$(basename "$inp").$mode"
    done
    v=$((v + 1))
  done
  for v in 0 1 2 3 4 5; do
    # Decode: a few ids, some out of range.
    printf "\\$(printf %03o $v)\\014\\001\\000\\000\\000\\377\\377\\377\\177\\050\\000\\000\\000" >"$d/ids$v"
  done
}
seed_store() {
  fresh store_fuzzer
  local bin=${MOESTREAM_BIN:-$root/build/cli/moestream}
  if [[ ! -x "$bin" ]]; then
    cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    ninja -C "$root/build" -j"$jobs" moestream
  fi
  local d; d=$(seeds_of store_fuzzer)
  local tmp="$build/seeds/store-src"
  rm -rf "$tmp"; mkdir -p "$tmp"
  "$bin" gen --preset tiny --layers 1 --experts 2 --top-k 1 --expert-ffn 8 --hidden 32 --vocab 64 \
    --heads 1 --kv-heads 1 --head-dim 32 -o "$tmp/a.gguf" >/dev/null
  "$bin" gen --arch mixtral --preset tiny --layers 2 --experts 3 --top-k 2 --expert-ffn 32 --hidden 32 --vocab 64 \
    --heads 1 --kv-heads 1 --head-dim 32 --type q8_0 --expert-layout split -o "$tmp/b.gguf" >/dev/null
  "$bin" pack "$tmp/a.gguf" -o "$d/a.store" >/dev/null 2>&1
  "$bin" pack "$tmp/b.gguf" -o "$d/b.store" >/dev/null 2>&1
  rm -rf "$tmp"
}
seed_spec() {
  fresh spec_fuzzer
  local d; d=$(seeds_of spec_fuzzer)
  local i=0
  # Byte 0: 0 size, 1 policy, 2 predictor, 3 (+8k) capacity, 4 link, 5 spec.
  for s in "\\000" "1.5GiB" "\\000" "64KB" "\\000" "4096" "\\001" "lfu:decay=0.9,period=10" \
           "\\001" "lfru:recency=0.7" "\\001" "2q:kin=0.25,kout=0.5" "\\001" "static:frac=0.5" \
           "\\001" "min" "\\001" "layer" "\\002" "coact:k=4" "\\002" "popularity:k=2" "\\002" "gate:k=3" \
           "\\002" "oracle" "\\002" "prev" "\\001" "markov:prior=4" \
           "\\002" "coact:weights=1,step=1" "\\003" "12.5%" "\\173" "16" "\\004" "pcie4x16" \
           "\\004" "custom:25:8" "\\005" "lfu:a=1.5,k=3,b=true,s=x"; do
    if ((i % 2 == 0)); then printf "$s" >"$d/s$i"; else printf '%s' "$s" >>"$d/s$((i - 1))"; fi
    i=$((i + 1))
  done
}

max_len_of() {
  case $1 in
    store_fuzzer) echo 65536 ;;
    gguf_fuzzer) echo 65536 ;;
    spec_fuzzer|chat_template_fuzzer) echo 4096 ;;
    tokenizer_fuzzer) echo 2048 ;;
    *) echo 16384 ;;
  esac
}

summary="$build/fuzz-summary.tsv"
printf 'target\texecutions\texec_per_s\tseconds\tresult\n' >"$summary"
failed=0
for t in "${targets[@]}"; do
  case $t in
    gguf_fuzzer) seed_gguf ;;
    trace_mstrace_fuzzer) seed_trace_mstrace ;;
    trace_csv_fuzzer) seed_trace_csv ;;
    trace_jsonl_fuzzer) seed_trace_jsonl ;;
    chat_template_fuzzer) seed_chat_template ;;
    tokenizer_fuzzer) seed_tokenizer ;;
    store_fuzzer) seed_store ;;
    spec_fuzzer) seed_spec ;;
  esac
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  log="$build/$t.log"
  echo "fuzzing $t for ${secs}s${runs:+ or $runs executions} ($(ls "$(seeds_of "$t")" | wc -l) seeds, $(ls "$corpus" | wc -l) corpus files)"
  start=$(date +%s)
  rc=0
  # The files the target writes its inputs to (in memory where possible),
  # removed here even when the target dies.
  scratch_base=/dev/shm
  [[ -d $scratch_base && -w $scratch_base ]] || scratch_base=$build
  scratch="$scratch_base/moestream-fuzz-$$-$t"
  MOESTREAM_FUZZ_SCRATCH=$scratch "$build/tests/fuzz/$t" "$corpus" "$(seeds_of "$t")" -max_total_time="$secs" ${runs:+-runs="$runs"} \
    -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len_of "$t")" -print_final_stats=1 \
    -artifact_prefix="$build/crash-$t-" >"$log" 2>&1 || rc=$?
  rm -rf "$scratch"
  elapsed=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if ((rc == 0)); then result=ok; else result="CRASH (exit $rc; see $log)"; failed=1; tail -n 40 "$log" >&2; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "${execs:-?}" "${rate:-?}" "$elapsed" "$result" | tee -a "$summary"
done
exit $failed
