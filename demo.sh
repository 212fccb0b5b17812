#!/usr/bin/env bash
# moestream demo: a generated MoE model whose routed experts are more than 4x
# the device budget, run with the experts streamed from NVMe through the
# device expert cache over a modelled PCIe 4.0 x16 link.
#
#   cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build moestream
#   ./demo.sh            # files under ./demo/ (gitignored)
set -euo pipefail
cd "$(dirname "$0")"
BIN=${MOESTREAM_BIN:-./build/cli/moestream}
[[ -x "$BIN" ]] || { echo "demo.sh: $BIN not found; build it first (ninja -C build moestream)" >&2; exit 1; }
mkdir -p demo
MODEL=demo/moe-q8.gguf
# 52 MiB: the model (220 MB) is 4x the budget, and the plan gives a fifth of the
# 256 experts a device slot (53) after the resident part, KV cache and scratch.
BUDGET=${BUDGET:-52M}
FLAGS=(--ctx 512 --kv-type f16 --batch 32 --experts-on nvme --link pcie4x16)

# 4 layers x 64 experts (top-4) of 3 x 512x512 Q8_0 matrices: ~214 MiB of routed experts.
[[ -f "$MODEL" ]] || "$BIN" gen --preset small --experts 64 --top-k 4 --expert-ffn 512 \
    --type q8_0 -o "$MODEL"

echo "== plan: $BUDGET of device memory, experts on NVMe (every byte the run will allocate)"
"$BIN" plan -m "$MODEL" --device-budget "$BUDGET" "${FLAGS[@]}"

echo "== run: experts read from NVMe on demand, prefetched by the next layer's router"
"$BIN" run -m "$MODEL" --prompt-ids 1,2,3,4,5,6,7,8 -n 32 --temp 0 --device-budget "$BUDGET" \
    "${FLAGS[@]}"
