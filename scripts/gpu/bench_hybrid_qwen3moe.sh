#!/usr/bin/env bash
# On the GPU machine: the hybrid set-up (rules/cuda-moe.yaml) on a Qwen3-30B-A3B-shaped Q4_K
# model made there, against the CPU alone; the reference figure for llama.cpp's CUDA build with
# `-ngl 99 -ot exps=CPU` on this machine kind is ~39 t/s decode (../shared/reference/README.md).
# Usage: scripts/gpu/bench_hybrid_qwen3moe.sh SWIFTKT_BINARY OUT_DIR [REPS]
set -uo pipefail
bin=$1; out=$2; reps=${3:-1}
mkdir -p "$out"
model=/tmp/qwen3-30b-a3b-q4_K.gguf
start=$(date +%s)
"$bin" synth --arch qwen3moe --shape qwen3-30b-a3b --type q4_K --seed 1 -o "$model" > "$out/synth.log" 2>&1
echo "synth exit $? in $(( $(date +%s) - start )) s"; ls -la "$model"
"$bin" bench -m "$model" -p 512 -n 64 -r "$reps" 2> "$out/hybrid.log" | grep -E "^\|" | tee "$out/hybrid.md"
grep -E "MoE blocks|repacked|uploaded" "$out/hybrid.log" | tail -3
"$bin" bench -m "$model" --kernels quantized -p 512 -n 64 -r "$reps" 2> "$out/cpu.log" | grep -E "^\| qwen" | tee "$out/cpu.md"
