#!/usr/bin/env bash
# On the GPU machine (no Swift needed): the hybrid MoE set-up (rules/cuda-moe.yaml: MoE blocks on
# the CPU, the rest on the GPU) against the all-CPU path, end to end, on tiny synthetic models of
# each MoE architecture and on an upcycled SmolLM2-shaped model; then the speed of a
# mixtral-8x1b-shaped Q4_K model, hybrid vs CPU only.
# Usage: scripts/gpu/check_hybrid_moe.sh SWIFTKT_BINARY OUT_DIR
set -uo pipefail
bin=$1; out=$2
mkdir -p "$out"
export SWIFTKT_HOME="${SWIFTKT_HOME:-/tmp/swiftkt-home}"
models=()
for spec in "mixtral tiny q8_0" "mixtral tiny q4_K" "qwen2moe tiny q8_0" "qwen3moe tiny q4_K"; do
    set -- $spec
    f="/tmp/synth-$1-$2-$3.gguf"
    "$bin" synth --arch "$1" --shape "$2" --type "$3" --seed 7 -o "$f" > /dev/null 2>&1 && models+=(-m "$f")
done
"$bin" synth --arch llama --shape smollm2-135m --type q4_1 --seed 7 -o /tmp/smollm2-shape.gguf > /dev/null 2>&1
"$bin" synth --upcycle /tmp/smollm2-shape.gguf --experts 4 -o /tmp/smollm2-shape-moe4.gguf > /dev/null 2>&1 && models+=(-m /tmp/smollm2-shape-moe4.gguf)
echo "== hybrid (default rules on a GPU machine) vs CPU, end to end"
"$bin" ops-check "${models[@]}" > "$out/hybrid-check.md" 2> "$out/hybrid-check.log"; echo "ops-check exit $?"
grep -E "^\| .*gguf|checks passed|FAIL" "$out/hybrid-check.md"
grep -iE "error|MoE blocks" "$out/hybrid-check.log" | head -5
"$bin" run -m /tmp/smollm2-shape-moe4.gguf -p "The capital of France is" -n 8 --temp 0 2>&1 | tail -4
echo "== speed: mixtral-8x1b shape, Q4_K"
"$bin" synth --arch mixtral --shape mixtral-8x1b --type q4_K --seed 1 -o /tmp/mixtral-8x1b.gguf > /dev/null 2>&1; ls -la /tmp/mixtral-8x1b.gguf
"$bin" bench -m /tmp/mixtral-8x1b.gguf -p 512 -n 64 -r 2 2>"$out/bench-hybrid.log" | grep -E "^\|" | tee "$out/bench-hybrid.md"
grep -E "MoE blocks|rules" "$out/bench-hybrid.log" | head -3
"$bin" bench -m /tmp/mixtral-8x1b.gguf --kernels quantized -p 512 -n 64 -r 2 2>/dev/null | grep -E "^\| mixtral|^\| llama" | tee "$out/bench-cpu.md"
