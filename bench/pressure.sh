#!/usr/bin/env bash
# Offloading under memory pressure: a model larger than the memory left to
# it, on a machine without a GPU, moestream's NVMe streaming side by side
# with the mmap baseline (the GGUF mapped and left to the page cache, as
# llama.cpp loads), at the same free memory, in one run.
#
#   bench/pressure.sh                       # JSON to out/pressure/pressure.json, table on stdout
#   LEVELS="0.30 0.55" GEN=16 bench/pressure.sh -o result.json
#
# For each level L (default 0.30 0.55 0.80 of the model's size):
#   1. the model's pages are dropped from the page cache (memlock evict);
#   2. all available memory but L x model + HEADROOM is locked (memlock leave),
#      so the page cache and every allocation of the run share what is left;
#   3. `moestream bench` runs with --device-budget L x model, once with
#      --experts-on nvme and once with --experts-on mmap, same prompt.
# Reported per run: prefill and decode tok/s, expert hit rate, bytes read from
# storage per decoded token (/proc/self/io), overlap efficiency, decode latency
# p50/p90/p99, and the disk bound: the disk's GB/s (fio, O_DIRECT random reads
# of the model at 1 and 4 MiB, the better of the two, measured in the same run)
# / bytes read per token.
#
# Needs: a Release build (./build), fio, python3, and CAP_IPC_LOCK (root) for
# memlock. The model (the shape of the offloading issue: qwen3moe, hidden 2048,
# 12 layers, 64 experts top-8, expert ffn 768, Q8_0, 4.0 GB) is generated once
# into out/pressure/ (MODEL= to use another).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${MOESTREAM_BIN:-./build/cli/moestream}
MEMLOCK=${MEMLOCK_BIN:-./build/bench/memlock}
DIR=${DIR:-out/pressure}
MODEL=${MODEL:-$DIR/mid-q8.gguf}
LEVELS=${LEVELS:-"0.30 0.55 0.80"}
PROMPT=${PROMPT:-32}
GEN=${GEN:-24}
CTX=${CTX:-512}
HEADROOM=${HEADROOM:-256M}
OUT="$DIR/pressure.json"
[[ "${1:-}" == "-o" ]] && OUT="$2"

for tool in "$BIN" "$MEMLOCK"; do
  [[ -x "$tool" ]] || { echo "pressure.sh: $tool not found; build first (./setup.sh)" >&2; exit 1; }
done
command -v fio >/dev/null || { echo "pressure.sh: fio not found (./setup.sh --deps-only)" >&2; exit 1; }
mkdir -p "$DIR"
if [[ ! -f "$MODEL" ]]; then
  echo "== generating $MODEL"
  "$BIN" gen --arch qwen3moe --layers 12 --hidden 2048 --heads 16 --kv-heads 4 --head-dim 128 \
    --experts 64 --top-k 8 --expert-ffn 768 --vocab 8192 --type q8_0 -o "$MODEL"
fi
model_bytes=$(stat -c %s "$MODEL")
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|amx_tile)$' | tr '\n' ' ')

lock_pid=""
cleanup() { [[ -n "$lock_pid" ]] && kill "$lock_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# Locks all memory but $1 bytes; returns once the lock is held.
hold() {
  local fifo="$DIR/memlock.out"
  rm -f "$fifo"
  "$MEMLOCK" leave "$1" > "$fifo" &
  lock_pid=$!
  for _ in $(seq 600); do
    grep -q locked "$fifo" 2>/dev/null && return 0
    kill -0 "$lock_pid" 2>/dev/null || { cat "$fifo" >&2; return 1; }
    sleep 0.1
  done
  echo "pressure.sh: memlock did not lock in time" >&2
  return 1
}
release() { cleanup; wait "$lock_pid" 2>/dev/null || true; lock_pid=""; }

echo "== disk: O_DIRECT random reads of the model (fio, io_uring, 1 and 4 MiB blocks at depth 32)"
# The disk's best of two block sizes: the tightest bound (cloud disks vary
# from one second to the next; the larger figure is what the disk can give).
disk_bps=0
for bs in 1M 4M; do
  "$MEMLOCK" evict "$MODEL"
  fio --name=disk --filename="$MODEL" --readonly --rw=randread --bs=$bs --direct=1 --iodepth=32 \
      --ioengine=io_uring --runtime=5 --time_based --output-format=json > "$DIR/fio-$bs.json" 2>/dev/null ||
  fio --name=disk --filename="$MODEL" --readonly --rw=randread --bs=$bs --direct=1 --iodepth=8 \
      --ioengine=psync --numjobs=4 --group_reporting --runtime=5 --time_based \
      --output-format=json > "$DIR/fio-$bs.json"
  bps=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(int(sum(x["read"]["bw_bytes"] for x in j["jobs"])))' "$DIR/fio-$bs.json")
  echo "   $bs blocks: $((bps / 1000000)) MB/s"
  (( bps > disk_bps )) && disk_bps=$bps
done

runs=()
for level in $LEVELS; do
  budget=$(python3 -c "print(int($level * $model_bytes))")
  keep=$(python3 -c "
import re
h='$HEADROOM'; m={'K':1<<10,'M':1<<20,'G':1<<30}
print($budget + (int(h[:-1])*m[h[-1]] if h[-1] in m else int(h)))")
  for mode in nvme mmap; do
    echo "== level $level: $((keep >> 20)) MiB free, device budget $((budget >> 20)) MiB, experts on $mode"
    "$MEMLOCK" evict "$MODEL"
    hold "$keep"
    out="$DIR/run-$level-$mode.json"
    if "$BIN" bench -m "$MODEL" --device-budget "$budget" --experts-on "$mode" \
        --prompt "$PROMPT" --gen "$GEN" --reps 1 --ctx "$CTX" --json > "$out" 2> "$DIR/run-$level-$mode.err"; then
      runs+=("$level:$mode:$out")
    else
      echo "pressure.sh: level $level $mode failed: $(tail -1 "$DIR/run-$level-$mode.err")" >&2
      echo '{"failed": true}' > "$out"
      runs+=("$level:$mode:$out")
    fi
    release
  done
done

python3 - "$OUT" "$model_bytes" "$disk_bps" "$cpu" "$flags" "${runs[@]}" <<'PY'
import json, sys
out, model_bytes, disk_bps, cpu, flags = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = []
for spec in sys.argv[6:]:
    level, mode, path = spec.split(":", 2)
    j = json.load(open(path))
    r = {"level": float(level), "mode": mode, "failed": j.get("failed", False)}
    if not r["failed"]:
        bpt = j.get("storage_read_bytes_per_token", 0.0)
        r.update({
            "device_budget_bytes": j.get("device_budget_bytes"),
            "prefill_tok_s": j["prefill_tok_s"], "decode_tok_s": j["decode_tok_s"],
            "hit_rate": j.get("hit_rate"), "overlap_efficiency": j.get("overlap_efficiency"),
            "storage_read_bytes_per_token": bpt,
            "expert_bytes_per_token": j.get("bytes_per_token"),
            "decode_latency_ms": j.get("decode_latency_ms"),
            "disk_bound_tok_s": disk_bps / bpt if bpt > 0 else None,
        })
    rows.append(r)
by = {(r["level"], r["mode"]): r for r in rows}
for r in rows:
    base = by.get((r["level"], "mmap"))
    if r["mode"] == "nvme" and base and not r["failed"] and not base["failed"] and base["decode_tok_s"] > 0:
        r["decode_vs_mmap"] = r["decode_tok_s"] / base["decode_tok_s"]
    if not r["failed"] and r.get("disk_bound_tok_s"):
        r["decode_vs_disk_bound"] = r["decode_tok_s"] / r["disk_bound_tok_s"]
result = {"model_bytes": model_bytes, "disk_bytes_per_s": disk_bps, "cpu": cpu, "cpu_flags": flags.strip(), "runs": rows}
json.dump(result, open(out, "w"), indent=1)
print(f"model {model_bytes/2**30:.2f} GiB, disk {disk_bps/1e9:.2f} GB/s, {cpu} ({flags.strip()})")
print(f"{'level':>5} {'mode':>5} {'prefill':>8} {'decode':>7} {'vs mmap':>7} {'hit':>5} {'MB/tok':>7} {'bound':>6} {'vs bound':>8} {'overlap':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}")
for r in rows:
    if r["failed"]:
        print(f"{r['level']:>5.2f} {r['mode']:>5} failed"); continue
    lat = r["decode_latency_ms"] or {}
    f = lambda v, fmt: (fmt % v) if isinstance(v, (int, float)) else "-"
    print(f"{r['level']:>5.2f} {r['mode']:>5} {r['prefill_tok_s']:>8.2f} {r['decode_tok_s']:>7.2f} "
          f"{f(r.get('decode_vs_mmap'), '%6.1fx'):>7} {f(r['hit_rate'] if r['mode']=='nvme' else None, '%.2f'):>5} "
          f"{r['storage_read_bytes_per_token']/1e6:>7.1f} {f(r['disk_bound_tok_s'], '%.2f'):>6} "
          f"{f(r.get('decode_vs_disk_bound'), '%.2f'):>8} {f(r['overlap_efficiency'] if r['mode']=='nvme' else None, '%.3f'):>7} "
          f"{f(lat.get('p50'), '%.0f'):>7} {f(lat.get('p90'), '%.0f'):>7} {f(lat.get('p99'), '%.0f'):>7}")
print(f"wrote {out}")
PY
