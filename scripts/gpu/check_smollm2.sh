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
echo "== synthetic models of each dense architecture (GPU against the CPU path, end to end)"
synth=()
for spec in "llama tiny q4_K" "qwen2 tiny q8_0" "qwen3 tiny q4_K" "gemma3 tiny q8_0" "gemma3 gemma3-270m q8_0" "llama smollm2-135m q4_0"; do
    set -- $spec
    f="$out/synth-$1-$2-$3.gguf"
    "$bin" synth --arch "$1" --shape "$2" --type "$3" --seed 1 -o "$f" > /dev/null 2>&1 && synth+=(-m "$f")
done
echo "== ops check (+ SmolLM2 and the synthetic models end to end)"
"$bin" ops-check ${OPS_PERF:+--perf} -m "$model" "${synth[@]}" > "$out/ops-check.md" 2> "$out/ops-check.log"; echo "ops-check exit $?"
grep -E "^\| .*gguf|checks passed" "$out/ops-check.md"
rm -f "$out"/synth-*.gguf

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
