#!/usr/bin/env bash
# On the GPU machine, one call: llama.cpp's CUDA build (from the trimmed llama-cpp-python sdist
# tree, scripts/gpu/llamacpp_cuda.sh) compiled in the background while swiftkt's ops check runs,
# then swiftkt and llama-bench alternately on the same synthetic GGUFs (Llama-3-8B shape Q4_K,
# SmolLM2 shape Q4_1), pp512 / tg128. Env: SKIP_OPS=1, ROUNDS (2), PREFETCH_ON=1 (also decode
# with SWIFTKT_CUDA_PREFETCH=1), START_QWEN3_SYNTH=1.
# Usage: scripts/gpu/bench_side_by_side.sh SWIFTKT_BINARY LLAMA_CPP_TAR_XZ WORK_DIR OUT_DIR
set -uo pipefail
bin=$1; src=$2; work=$3; out=$4
mkdir -p "$work" "$out"
export SWIFTKT_HOME="${SWIFTKT_HOME:-$work/home}"
here=$(dirname "$0")
bash "$here/llamacpp_cuda.sh" "$src" "$work/lcp" "$out" > "$out/llamacpp-build-step.log" 2>&1 &
build=$!
# The 8B model is made in the background while the ops check runs.
m8="$work/llama3-8b-q4_K.gguf"
[ -f "$m8" ] || ("$bin" synth --arch llama --shape llama3-8b --type q4_K --seed 1 -o "$m8.part" > /dev/null 2>&1 && mv "$m8.part" "$m8") &
synth=$!
ms=()
[ -n "${SKIP_OPS:-}" ] || for spec in "llama smollm2-135m q4_K" "llama smollm2-135m q4_1" "gemma3 gemma3-270m q8_0" "qwen3 tiny q4_K" "llama tiny q6_K"; do
    set -- $spec; f="$work/$1-$2-$3.gguf"
    "$bin" synth --arch "$1" --shape "$2" --type "$3" --seed 7 -o "$f" > /dev/null 2>&1 && ms+=(-m "$f")
done
if [ -z "${SKIP_OPS:-}" ]; then
    "$bin" ops-check "${ms[@]}" > "$out/ops-check.md" 2> "$out/ops-check.log"; echo "ops-check exit $?"
    grep -E "checks passed|^FAIL|\| .*gguf" "$out/ops-check.md" | head -20
else
    "$bin" synth --arch llama --shape smollm2-135m --type q4_1 --seed 7 -o "$work/llama-smollm2-135m-q4_1.gguf" > /dev/null 2>&1
fi
wait $synth
wait $build; cat "$out/llamacpp-build-step.log"
lb="$work/lcp/llama.cpp/build/bin/llama-bench"
for m in "$work/llama3-8b-q4_K.gguf" "$work/llama-smollm2-135m-q4_1.gguf"; do
    name=$(basename "$m" .gguf)
    for round in $(seq 1 "${ROUNDS:-2}"); do
        "$bin" bench -m "$m" -p 512 -n 128 -r 3 2>/dev/null | grep -E "^\| llama" | sed "s/^/swiftkt round $round: /" | tee -a "$out/side-by-side.md"
        # Decode with the GEMVs' weight-row prefetch (PREFETCH_ON=1; off by default).
        [ -n "${PREFETCH_ON:-}" ] && SWIFTKT_CUDA_PREFETCH=1 "$bin" bench -m "$m" -p 0 -n 128 -r 3 2>/dev/null | grep -E "^\| llama" \
            | sed "s/^/swiftkt SWIFTKT_CUDA_PREFETCH=1 round $round: /" | tee -a "$out/side-by-side.md"
        "$lb" -m "$m" -ngl 99 -p 512 -n 128 -r 3 -o md 2>/dev/null | grep -E "^\| llama" | sed "s/^/llama.cpp round $round: /" | tee -a "$out/side-by-side.md"
    done
done
# Optionally start making the Qwen3-30B-A3B-shaped model for bench_hybrid_side_by_side.sh
# (a new process session outlives this call while the machine stays warm).
if [ -n "${START_QWEN3_SYNTH:-}" ]; then
    setsid nohup bash -c "'$bin' synth --arch qwen3moe --shape qwen3-30b-a3b --type q4_K --seed 1 -o '$work/qwen3-30b-a3b-q4_K.gguf.part' > '$work/qwen3-synth.log' 2>&1 && mv '$work/qwen3-30b-a3b-q4_K.gguf.part' '$work/qwen3-30b-a3b-q4_K.gguf'" > /dev/null 2>&1 &
    echo "qwen3-30b-a3b synth started"
fi
