#!/usr/bin/env bash
# A short validation on the GPU machine (no Swift there), for a session with little device
# time: CUDA found and working, every CPU kernel ISA of the host (AVX-512 VNNI, AVX2, baseline)
# bit-identical to the scalar reference, every CUDA operator against the CPU reference and a
# SmolLM2-shaped model end to end, then CPU (AVX-512 vs AVX2) and GPU speed on that shape.
# Usage: scripts/gpu/validate.sh SWIFTKT_BINARY OUT_DIR
set -uo pipefail
bin=$1; out=$2
mkdir -p "$out"
export SWIFTKT_HOME="${SWIFTKT_HOME:-/tmp/swiftkt-home}"
model=/tmp/smollm2-shape-q4_1.gguf
"$bin" devices --selftest > "$out/devices.txt" 2>&1; echo "devices exit $?"; cat "$out/devices.txt"
"$bin" kernels --check --types q4_0,q4_1,q5_0,q5_1,q8_0,q4_K,q5_K,q6_K > "$out/kernel-check.txt" 2>&1; echo "kernel check exit $?"
cat "$out/kernel-check.txt"
"$bin" synth --arch llama --shape smollm2-135m --type q4_1 --seed 7 -o "$model" > /dev/null 2>&1
"$bin" ops-check -m "$model" > "$out/ops-check.md" 2> "$out/ops-check.log"; echo "ops-check exit $?"
grep -E "checks passed|FAIL|\| .*gguf" "$out/ops-check.md" | head -20
for isa in avx512 avx2; do
    SWIFTKT_ISA=$isa "$bin" bench -m "$model" --kernels quantized -p 512 -n 128 -t 16 -r 2 2>/dev/null | grep -E "^\| llama" | sed "s/\$/ $isa/"
done | tee "$out/cpu-bench.md"
"$bin" bench -m "$model" -p 512 -n 128 -r 3 2>/dev/null | grep -E "^\| llama" | tee "$out/gpu-bench.md"
