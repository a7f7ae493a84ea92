#!/usr/bin/env bash
# On the GPU machine after bench_side_by_side.sh (same lease: llama-bench built, the
# Qwen3-30B-A3B-shaped Q4_K model being made): swiftkt's hybrid set-up (rules/cuda-moe.yaml:
# MoE blocks on the CPU, the rest on the GPU) and llama.cpp's CUDA build with its experts on
# the CPU (`-ngl 99 -ot exps=CPU`), alternately, pp512 / tg64.
# Usage: scripts/gpu/bench_hybrid_side_by_side.sh SWIFTKT_BINARY WORK_DIR OUT_DIR [REPS]
set -uo pipefail
bin=$1; work=$2; out=$3; reps=${4:-2}
mkdir -p "$out"
export SWIFTKT_HOME="${SWIFTKT_HOME:-$work/home}"
model="$work/qwen3-30b-a3b-q4_K.gguf"
lb="$work/lcp/llama.cpp/build/bin/llama-bench"
# Made here unless bench_side_by_side.sh's background synth has it (or is still writing it:
# then it renames the .part file itself when done).
if [ ! -f "$model" ] && [ ! -f "$model.part" ]; then
    "$bin" synth --arch qwen3moe --shape qwen3-30b-a3b --type q4_K --seed 1 -o "$model.part" > "$work/qwen3-synth.log" 2>&1 \
        && mv "$model.part" "$model"
fi
while [ ! -f "$model" ]; do sleep 2; done
ls -la "$model"
for round in 1 2; do
    "$lb" -m "$model" -ngl 99 -ot "exps=CPU" -t "$(nproc)" -p 512 -n 64 -r "$reps" -o md 2> "$out/llamacpp-hybrid-$round.log" \
        | grep -E "^\| qwen" | sed "s/^/llama.cpp -ot exps=CPU round $round: /" | tee -a "$out/hybrid-side-by-side.md"
    "$bin" bench -m "$model" -p 512 -n 64 -r "$reps" 2> "$out/swiftkt-hybrid-$round.log" \
        | grep -E "^\| qwen" | sed "s/^/swiftkt cuda-moe round $round: /" | tee -a "$out/hybrid-side-by-side.md"
done
