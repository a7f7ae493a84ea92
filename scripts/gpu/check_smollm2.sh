#!/usr/bin/env bash
# On a GPU machine (no Swift needed): the ops check, SmolLM2's greedy tokens on the GPU against
# the CPU path, and GPU benchmarks side by side with transformers + PyTorch on the same shape.
# Usage: scripts/gpu/check_smollm2.sh SWIFTKT_BINARY SMOLLM2_GGUF OUT_DIR
set -uo pipefail
bin=$1; model=$2; out=$3
mkdir -p "$out"
export SWIFTKT_HOME="${SWIFTKT_HOME:-$out/home}"
prompt="The capital of France is"

"$bin" devices --selftest > "$out/devices.txt" 2>&1
echo "== ops check"; "$bin" ops-check --perf > "$out/ops-check.md" 2> "$out/ops-check.log"; echo "ops-check exit $?"
tail -n 1 "$out/ops-check.md"

echo "== SmolLM2 greedy: GPU (default rules on a GPU machine) vs CPU (--kernels quantized)"
"$bin" run -m "$model" -p "$prompt" -n 32 --temp 0 --show-top 2 > "$out/gpu.txt" 2> "$out/gpu.log"
"$bin" run -m "$model" -p "$prompt" -n 32 --temp 0 --show-top 2 --kernels quantized > "$out/cpu.txt" 2> "$out/cpu.log"
grep -E "rules:|loaded|uploaded|cuda:" "$out/gpu.log" | head -5
if cmp -s "$out/gpu.txt" "$out/cpu.txt"; then echo "greedy text identical:"; else echo "greedy text DIFFERS:"; fi
cat "$out/gpu.txt"; echo; cat "$out/cpu.txt"; echo

echo "== bench SmolLM2 on the GPU"
"$bin" bench -m "$model" -p 512 -n 128 -r 5 -o json > "$out/bench-smollm2-gpu.json" 2> "$out/bench-smollm2-gpu.log"
grep -E '"avg_ts"|"test"' "$out/bench-smollm2-gpu.json"
echo "== transformers on the SmolLM2 shape"
python3 scripts/peer/torch_bench.py --shape smollm2-135m -p 512 -n 128 -r 5 > "$out/torch-smollm2.json" 2> "$out/torch-smollm2.log"
cat "$out/torch-smollm2.json"; tail -n 3 "$out/torch-smollm2.log"
