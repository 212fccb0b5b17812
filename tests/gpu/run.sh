#!/usr/bin/env bash
# Everything the CUDA backend has to show on a GPU, in one run and one JSON report:
#   1. every op against the CPU backend with per-type tolerances, the op scratch
#      budget, the refusal of a type without a kernel, and the link (the backend's
#      pinned async H2D copies next to cudaMemcpy's peak, same run):
#      tests/kernels/cuda_backend_gpu_test.cc;
#   2. every shared reference model end to end on CUDA, experts resident and offloaded
#      at three budgets, against the CPU backend: tests/engine/engine_gpu_test.cc;
#   3. overlap efficiency and throughput of an offloaded decode: `moestream bench`
#      on a generated Mixtral-shaped Q4_K model with half its experts in the budget,
#      copying every miss and in hybrid mode (--miss-policy auto, its measured GB/s).
#
#   tests/gpu/run.sh                    build (build-gpu/), run, write build-gpu/gpu_report.json
#   tests/gpu/run.sh --report FILE      write the report elsewhere
#   tests/gpu/run.sh --build-dir DIR    build in DIR
#   tests/gpu/run.sh --skip-build       use what DIR already holds
#
# Exit status: 0 when every step passed; 1 when a step failed (the report says which);
# 2 for a bad argument; 3 without a GPU or without nvcc (one line on stderr, nothing run).
# The steps after the build are time-boxed to 8 minutes together.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

build=build-gpu
report=""
skip_build=0
while (($#)); do
  case "$1" in
    --report) report="$2"; shift 2 ;;
    --build-dir) build="$2"; shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    *) echo "tests/gpu/run.sh: unknown argument '$1' (see the header of tests/gpu/run.sh)" >&2; exit 2 ;;
  esac
done
[[ -n "$report" ]] || report="$build/gpu_report.json"

# ---- a GPU, or one clear line ----
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "tests/gpu/run.sh: no NVIDIA GPU: nvidia-smi is not installed, so no driver is; nothing was run" >&2
  exit 3
fi
gpus=$(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)
if [[ -z "$gpus" ]]; then
  echo "tests/gpu/run.sh: no NVIDIA GPU: nvidia-smi lists no device ($(nvidia-smi -L 2>&1 | head -n 1)); nothing was run" >&2
  exit 3
fi
nvcc=$(command -v nvcc || true)
[[ -n "$nvcc" || ! -x /usr/local/cuda/bin/nvcc ]] || nvcc=/usr/local/cuda/bin/nvcc
if [[ -z "$nvcc" && $skip_build -eq 0 ]]; then
  echo "tests/gpu/run.sh: GPU present ($gpus) but nvcc was not found (PATH or /usr/local/cuda/bin): cannot build the CUDA backend" >&2
  exit 3
fi
cap=$(echo "$gpus" | cut -d, -f2 | tr -d ' .')

shared="${MOESTREAM_SHARED_DIR:-}"
for d in ../shared shared; do
  [[ -n "$shared" ]] && break
  [[ -d "$d/reference" ]] && shared="$(cd "$d" && pwd)"
done
export MOESTREAM_SHARED_DIR="${shared:-$root/../shared}"

mkdir -p "$build"
work="$build/gpu_run"
rm -rf "$work"
mkdir -p "$work"
log="$work/log.txt"
: >"$log"
now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# ---- build (only what the run needs, for this GPU's architecture) ----
t0=$(now)
build_ok=true
if [[ $skip_build -eq 0 ]]; then
  gen=(-G Ninja)
  command -v ninja >/dev/null 2>&1 || gen=()
  echo "== configure and build (sm_$cap) in $build" | tee -a "$log"
  if ! cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMOESTREAM_CUDA=ON \
      -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$cap" >>"$log" 2>&1 ||
     ! cmake --build "$build" -j "$(nproc)" --target kernels_gpu_tests engine_gpu_tests moestream \
      >>"$log" 2>&1; then
    build_ok=false
  fi
fi
t1=$(now)
build_s=$(sub "$t1" "$t0")
if [[ $build_ok != true ]]; then
  echo "tests/gpu/run.sh: the build failed; see $log" >&2
  tail -n 30 "$log" >&2
fi

# ---- the runs, 8 minutes together ----
deadline=$(( $(date +%s) + 480 ))
left() { local l=$(( deadline - $(date +%s) )); (( l > 5 )) && echo "$l" || echo 5; }
step() {  # step NAME SECONDS CMD...: runs CMD with a time box, records its status and time
  local name="$1" limit="$2"; shift 2
  local l; l=$(left); (( limit < l )) || limit=$l
  echo "== $name (at most ${limit}s): $*" | tee -a "$log"
  local s; s=$(now)
  timeout --kill-after=10 "$limit" "$@" >"$work/$name.out" 2>&1
  local rc=$?
  local e; e=$(now)
  cat "$work/$name.out" >>"$log"
  echo "{\"rc\": $rc, \"seconds\": $(sub "$e" "$s"), \"timed_out\": $([[ $rc -eq 124 || $rc -eq 137 ]] && echo true || echo false)}" \
    >"$work/$name.status.json"
  echo "   $name: exit $rc" | tee -a "$log"
}

bin_dir="$build/tests"
moestream="$build/cli/moestream"
[[ -x "$moestream" ]] || moestream=$(find "$build" -maxdepth 3 -type f -name moestream -perm -u+x | head -n 1)
if [[ $build_ok == true ]]; then
  step kernels 150 "$bin_dir/kernels_gpu_tests" --gtest_output="json:$work/kernels.json"
  step engine 240 "$bin_dir/engine_gpu_tests" --gtest_output="json:$work/engine.json"
  # Overlap: a Mixtral-shaped Q4_K model (8 experts, 4 layers, hidden 512, 53 MB), a
  # budget of half the file plus 4 MiB (on the CPU backend that gives an expert hit rate
  # near 0.8), experts on the pinned host tier.
  bench_model="$work/bench-mixtral.gguf"
  step bench_gen 60 "$moestream" gen --preset mixtral-8x7b --scale 8 --scale-layers --type q4_k \
    --seed 7 -o "$bench_model"
  if [[ -s "$bench_model" ]]; then
    size=$(stat -c %s "$bench_model")
    step bench_resident 60 "$moestream" bench -m "$bench_model" --backend cuda --prompt 64 --gen 64 \
      --reps 2 --json
    step bench_offloaded 90 "$moestream" bench -m "$bench_model" --backend cuda \
      --device-budget "$(( size / 2 + (4 << 20) ))" --experts-on host --prompt 64 --gen 64 --reps 2 --json
    # Hybrid: the same budget, misses computed on the host when the measured
    # bandwidths say so (the measured GB/s line goes to stderr, kept in the report).
    step bench_hybrid 60 "$moestream" bench -m "$bench_model" --backend cuda \
      --device-budget "$(( size / 2 + (4 << 20) ))" --experts-on host --miss-policy auto \
      --prompt 64 --gen 64 --reps 2 --json
  fi
fi
t2=$(now)

# ---- one JSON report ----
python3 - "$work" "$report" "$gpus" "$build_s" "$(sub "$t2" "$t1")" "$build_ok" "$MOESTREAM_SHARED_DIR" <<'EOF'
import json, os, sys
work, report, gpu, build_s, run_s, build_ok, shared = sys.argv[1:8]
def load(name):
    try:
        with open(os.path.join(work, name)) as f:
            return json.load(f)
    except Exception:
        return None
def last_json_line(name):
    try:
        with open(os.path.join(work, name)) as f:
            for line in reversed(f.read().splitlines()):
                if line.startswith("{"):
                    return json.loads(line)
    except Exception:
        pass
    return None
def gtest(name):
    j = load(name + ".json")
    st = load(name + ".status.json")
    out = {"status": st, "tests": [], "passed": 0, "failed": 0, "skipped": 0}
    if j is None:
        return out
    for suite in j.get("testsuites", []):
        for t in suite.get("testsuite", []):
            skipped = t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN"
            failed = bool(t.get("failures"))
            rec = {"name": suite["name"] + "." + t["name"],
                   "result": "failed" if failed else ("skipped" if skipped else "passed"),
                   "seconds": t.get("time")}
            props = {k: v for k, v in t.items() if k not in (
                "name", "status", "result", "timestamp", "time", "classname", "failures",
                "file", "line", "value_param", "type_param")}
            if props:
                rec["properties"] = props
            if failed:
                rec["failures"] = [f.get("failure", "")[:2000] for f in t["failures"]]
            out["tests"].append(rec)
            out[rec["result"]] += 1
    return out
kernels, engine = gtest("kernels"), gtest("engine")
link = {}
for t in kernels["tests"]:
    if t["name"].endswith("LinkBandwidthPinnedVersusMemcpyPeak"):
        link = t.get("properties", {})
bench = {k: last_json_line(k + ".out") for k in ("bench_resident", "bench_offloaded", "bench_hybrid")}
hybrid_line = None
try:
    with open(os.path.join(work, "bench_hybrid.out")) as f:
        hybrid_line = next((l.strip() for l in f if "hybrid experts:" in l), None)
except Exception:
    pass
overlap = None
if bench["bench_offloaded"]:
    b = bench["bench_offloaded"]
    overlap = {k: b.get(k) for k in ("overlap_efficiency", "overlap_efficiency_reps", "hit_rate",
               "stall_ms", "transfer_ms", "compute_ms", "link_busy_ms", "decode_tok_s",
               "prefill_tok_s", "device_budget_bytes")}
steps = {k: load(k + ".status.json") for k in ("kernels", "engine", "bench_gen",
                                                "bench_resident", "bench_offloaded", "bench_hybrid")}
ok = (build_ok == "true"
      and all(s is not None and s["rc"] == 0 for s in steps.values())
      and kernels["failed"] == 0 and engine["failed"] == 0
      and kernels["passed"] > 0 and engine["passed"] > 0)
doc = {"ok": ok, "gpu": gpu.strip(), "build_ok": build_ok == "true",
       "build_seconds": float(build_s), "run_seconds": float(run_s), "shared_dir": shared,
       "steps": steps, "link": link, "overlap": overlap, "hybrid_bandwidths": hybrid_line,
       "bench": bench,
       "kernels": kernels, "engine": engine}
os.makedirs(os.path.dirname(os.path.abspath(report)), exist_ok=True)
tmp = report + ".tmp"
with open(tmp, "w") as f:
    json.dump(doc, f, indent=1)
os.replace(tmp, report)
print(json.dumps({"ok": ok, "report": report, "kernels": {k: kernels[k] for k in ("passed", "failed", "skipped")},
                  "engine": {k: engine[k] for k in ("passed", "failed", "skipped")},
                  "link": link, "overlap_efficiency": overlap and overlap.get("overlap_efficiency")}))
sys.exit(0 if ok else 1)
EOF
