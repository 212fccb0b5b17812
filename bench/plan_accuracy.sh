#!/usr/bin/env bash
# How close `moestream plan`'s predicted decode tok/s comes to `moestream
# bench` on the CPU backend: for each mode (resident, experts on host RAM
# behind a device budget, experts on NVMe), measure the host's memory
# bandwidth (the memcpy probe, through a tiny model's bench), predict with
# `plan --host-gbps` (and --nvme-gbps from a direct read of the model file),
# and measure with `bench`, back to back (the bandwidth probed just before
# and just after the bench), and print predicted vs measured and PASS/FAIL
# at +-30%. Exit 1 if any mode fails.
#
#   bench/plan_accuracy.sh -m model.gguf --device-budget 2G --host-budget 5G
#   bench/plan_accuracy.sh --gen "--preset small --type q8_0" --modes "resident host"
#
# The hit rate comes from a routing trace of the model itself, recorded with
# `run --record-trace` on another prompt (--trace record, the default), or
# from --trace zipf / --trace FILE. Timings on a shared machine are noisy:
# the load average is printed with each row.
set -euo pipefail

BIN=${MOESTREAM:-build/cli/moestream}
MODEL=""
GEN_ARGS=""
MODES="resident host nvme"
DEVICE_BUDGET=""
HOST_BUDGET=""
PROMPT=16
GEN=32
REPS=3
THREADS=2
TRACE=record
TOLERANCE=0.30

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  echo "flags: -m FILE | --gen 'GEN ARGS'; --modes 'resident host nvme'; --device-budget SIZE;"
  echo "       --host-budget SIZE (nvme mode's host cache); --prompt N; --tokens N; --reps N; -t N; --trace record|zipf|FILE"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -m) MODEL=$2; shift 2 ;;
    --gen) GEN_ARGS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --device-budget) DEVICE_BUDGET=$2; shift 2 ;;
    --host-budget) HOST_BUDGET=$2; shift 2 ;;
    --prompt) PROMPT=$2; shift 2 ;;
    --tokens) GEN=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    -t) THREADS=$2; shift 2 ;;
    --trace) TRACE=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "plan_accuracy.sh: unknown flag '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z "$MODEL" && -z "$GEN_ARGS" ]]; then
  echo "plan_accuracy.sh: give -m MODEL or --gen 'ARGS'" >&2; exit 2
fi
if [[ ! -x "$BIN" ]]; then
  echo "plan_accuracy.sh: no moestream binary at $BIN (set MOESTREAM)" >&2; exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/plan_accuracy.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

if [[ -z "$MODEL" ]]; then
  MODEL=$WORK/model.gguf
  # shellcheck disable=SC2086
  "$BIN" gen $GEN_ARGS --quiet -o "$MODEL" >/dev/null
fi
"$BIN" gen --preset tiny --quiet -o "$WORK/probe.gguf" >/dev/null

CTX=$((PROMPT + GEN + 1))
KV_POS=$((PROMPT + GEN / 2))

# The memcpy probe (kernels/cpu/memcpy_probe.h) as `bench` reports it:
# bytes copied per second; memory traffic is twice that.
host_gbps() {
  "$BIN" bench -m "$WORK/probe.gguf" -t "$THREADS" --prompt 1 --gen 1 --reps 1 --json 2>/dev/null |
    json '2 * d["memcpy_GBps"]'
}

# NVMe: a direct (uncached) read of 512 MiB of the model file.
nvme_gbps() {
  local size skip
  size=$(stat -c %s "$MODEL")
  skip=$(( size / 2 / 4194304 ))
  local blocks=128
  if (( size < 2 * 536870912 )); then blocks=$(( size / 2 / 4194304 )); skip=0; fi
  (( blocks < 1 )) && blocks=1
  dd if="$MODEL" of=/dev/null bs=4M count=$blocks skip=$skip iflag=direct 2>&1 |
    awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i - 1);
                    print ($1 / s) / 1e9 }'
}

TRACE_FLAG=()
if [[ "$TRACE" == record ]]; then
  # Routing of another prompt than bench's (bench draws its ids from seed 1234).
  ids=$(python3 -c "print(','.join(str((i * 37 + 11) % 500 + 1) for i in range($PROMPT)))")
  "$BIN" run -m "$MODEL" -t "$THREADS" --prompt-ids "$ids" -n $((GEN * 2)) --temp 0 \
    --record-trace "$WORK/model.mstrace" >/dev/null 2>&1
  TRACE_FLAG=(--trace "$WORK/model.mstrace")
elif [[ -n "$TRACE" ]]; then
  TRACE_FLAG=(--trace "$TRACE")
fi

fail=0
printf '%-9s %-34s %9s %17s %9s %6s %11s %11s  %s\n' mode flags predicted range measured ratio \
  "hit pred" "hit meas" "load"
for mode in $MODES; do
  case "$mode" in
    resident) FLAGS=() ;;
    host) FLAGS=(--experts-on host --device-budget "${DEVICE_BUDGET:?--device-budget needed}") ;;
    nvme) FLAGS=(--experts-on nvme --device-budget "${DEVICE_BUDGET:?--device-budget needed}") ;;
    *) echo "plan_accuracy.sh: unknown mode '$mode'" >&2; exit 2 ;;
  esac
  # The host tier pins every expert (no budget); NVMe's host cache is the budget.
  if [[ "$mode" == nvme && -n "$HOST_BUDGET" ]]; then FLAGS+=(--host-budget "$HOST_BUDGET"); fi
  # Host bandwidth just before and just after the measurement (the machine
  # may be shared): the prediction uses their mean; the prediction itself
  # reads nothing of the measurement.
  hg1=$(host_gbps)
  ng=$(nvme_gbps)
  bench=$("$BIN" bench -m "$MODEL" -t "$THREADS" --backend cpu --prompt "$PROMPT" --gen "$GEN" \
    --reps "$REPS" "${FLAGS[@]}" --json 2>/dev/null)
  hg2=$(host_gbps)
  hg=$(python3 -c "print(($hg1 + $hg2) / 2)")
  # plan needs a budget: a resident run's is the whole model.
  PLAN_FLAGS=("${FLAGS[@]}")
  if [[ "$mode" == resident ]]; then
    PLAN_FLAGS=(--device-budget $(( $(stat -c %s "$MODEL") * 2 + 1073741824 )))
  fi
  plan=$("$BIN" plan -m "$MODEL" -t "$THREADS" --backend cpu --ctx "$CTX" --kv-position "$KV_POS" \
    --host-gbps "$hg" --nvme-gbps "$ng" "${TRACE_FLAG[@]}" "${PLAN_FLAGS[@]}" --json)
  pred=$(echo "$plan" | json 'd["decode"]["tok_s"]')
  lo=$(echo "$plan" | json 'd["decode"]["tok_s_low"]')
  hi=$(echo "$plan" | json 'd["decode"]["tok_s_high"]')
  hitp=$(echo "$plan" | json 'd["decode"]["hit_rate_device"]')
  src=$(echo "$plan" | json 'd["decode"]["hit_rate_source"]')
  meas=$(echo "$bench" | json 'd["decode_tok_s"]')
  hitm=$(echo "$bench" | json 'd.get("hit_rate", 1.0)')
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  verdict=$(python3 -c "r=$pred/$meas; print('%.2f %s' % (r, 'PASS' if abs(r-1) <= $TOLERANCE else 'FAIL'))")
  [[ "$verdict" == *FAIL ]] && fail=1
  printf '%-9s %-34s %9.2f %8.2f..%-8.2f %9.2f %6s %6.3f %-4s %6.3f  %s  (host %.1f GB/s, nvme %.2f GB/s) %s\n' \
    "$mode" "${FLAGS[*]:-}" "$pred" "$lo" "$hi" "$meas" "${verdict% *}" "$hitp" "${src:0:4}" "$hitm" \
    "$load" "$hg" "$ng" "${verdict#* }"
done
exit $fail
