#!/usr/bin/env bash
# On a GPU machine: a synthetic Llama-3-8B-shaped Q4_K model generated there, benchmarked on
# the GPU side by side with transformers + PyTorch (bf16) on the same shape, one run.
# Usage: scripts/gpu/bench_llama8b.sh SWIFTKT_BINARY WORK_DIR OUT_DIR
set -uo pipefail
bin=$1; work=$2; out=$3
mkdir -p "$out" "$work"
export SWIFTKT_HOME="${SWIFTKT_HOME:-$work/home}"
model="$work/llama3-8b-q4_K.gguf"
[ -f "$model" ] || "$bin" synth --arch llama --shape llama3-8b --type q4_K --seed 1 -o "$model" 2>&1 | tail -n 1
echo "== swiftkt (GPU)"
"$bin" bench -m "$model" -p 512 -n 128 -r 3 -o json > "$out/bench-8b-gpu.json" 2> "$out/bench-8b-gpu.log"
grep -E '"avg_ts"|"test"' "$out/bench-8b-gpu.json"; tail -n 2 "$out/bench-8b-gpu.log"
echo "== transformers (bf16)"
python3 scripts/peer/torch_bench.py --shape llama3-8b -p 512 -n 128 -r 3 > "$out/torch-8b.json" 2> "$out/torch-8b.log"
cat "$out/torch-8b.json"; tail -n 3 "$out/torch-8b.log"
