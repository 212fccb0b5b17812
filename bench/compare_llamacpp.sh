#!/usr/bin/env bash
# moestream beside llama.cpp on the same GGUF files, in one run: llama.cpp's
# `llama-bench` and `moestream bench`, same prompt and generation lengths,
# same threads, one after the other per model, then a table of tok/s and the
# ratios moestream / llama.cpp. llama.cpp is not a dependency: bring your own
# build of llama-bench.
#
#   bench/compare_llamacpp.sh LLAMA_BENCH MODEL.gguf [MODEL.gguf...]
#   THREADS=2 PROMPT=128 GEN=64 REPS=3 bench/compare_llamacpp.sh ~/llama.cpp/build/bin/llama-bench m.gguf
#
# Environment: THREADS (default: all cores), PROMPT (128), GEN (64), REPS (3),
# MOESTREAM_BIN (./build/cli/moestream), OUT (out/compare: the raw JSON of
# both tools per model and compare.json with the table's figures).
# moestream's figures are medians over REPS; llama-bench's are its averages
# (avg_ts). moestream's JSON also carries decode_weight_GBps, its ratio to
# memcpy traffic and overhead_ms_per_token.
set -euo pipefail
if (($# < 2)); then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
LLAMA_BENCH=$1
shift
cd "$(dirname "$0")/.."
BIN=${MOESTREAM_BIN:-./build/cli/moestream}
THREADS=${THREADS:-$(nproc)}
PROMPT=${PROMPT:-128}
GEN=${GEN:-64}
REPS=${REPS:-3}
OUT=${OUT:-out/compare}
mkdir -p "$OUT"
[[ -x "$LLAMA_BENCH" ]] || { echo "compare_llamacpp: '$LLAMA_BENCH' is not executable" >&2; exit 2; }
[[ -x "$BIN" ]] || { echo "compare_llamacpp: '$BIN' not built (cmake --build build)" >&2; exit 2; }

runs=()
for model in "$@"; do
  [[ -f "$model" ]] || { echo "compare_llamacpp: no model file '$model'" >&2; exit 2; }
  name=$(basename "$model" .gguf)
  echo "== $name: llama-bench" >&2
  "$LLAMA_BENCH" -m "$model" -p "$PROMPT" -n "$GEN" -r "$REPS" -t "$THREADS" -o json \
    > "$OUT/$name.llama.json"
  echo "== $name: moestream bench" >&2
  "$BIN" bench -m "$model" --prompt "$PROMPT" --gen "$GEN" --reps "$REPS" -t "$THREADS" --json \
    > "$OUT/$name.moestream.json"
  runs+=("$name")
done

python3 - "$OUT" "$THREADS" "${runs[@]}" <<'PY'
import json, os, sys
out, threads, names = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for name in names:
    llama = json.load(open(os.path.join(out, name + ".llama.json")))
    ms = json.load(open(os.path.join(out, name + ".moestream.json")))
    pp = next(r for r in llama if int(r.get("n_prompt", 0)) > 0 and int(r.get("n_gen", 0)) == 0)
    tg = next(r for r in llama if int(r.get("n_gen", 0)) > 0 and int(r.get("n_prompt", 0)) == 0)
    rows.append({
        "model": name,
        "prefill_tok_s": {"moestream": ms["prefill_tok_s"], "llamacpp": float(pp["avg_ts"])},
        "decode_tok_s": {"moestream": ms["decode_tok_s"], "llamacpp": float(tg["avg_ts"])},
        "prefill_ratio": ms["prefill_tok_s"] / float(pp["avg_ts"]),
        "decode_ratio": ms["decode_tok_s"] / float(tg["avg_ts"]),
        "decode_weight_to_memcpy_ratio": ms.get("decode_weight_to_memcpy_ratio"),
        "overhead_ms_per_token": ms.get("overhead_ms_per_token"),
    })
json.dump({"threads": int(threads), "models": rows}, open(os.path.join(out, "compare.json"), "w"), indent=1)
print(f"| model ({threads} threads) | prefill tok/s moestream / llama.cpp | decode tok/s moestream / llama.cpp |")
print("|---|---|---|")
for r in rows:
    p, d = r["prefill_tok_s"], r["decode_tok_s"]
    print(f"| {r['model']} | {p['moestream']:.0f} / {p['llamacpp']:.0f} ({r['prefill_ratio']:.2f}x) "
          f"| {d['moestream']:.0f} / {d['llamacpp']:.0f} ({r['decode_ratio']:.2f}x) |")
PY
