#!/usr/bin/env bash
# On the GPU machine: the ops check (with the Marlin GEMM and GPU-sampling cases) and its perf
# mode, then end to end on synthetic models: greedy tokens with the Marlin GEMM for prompt
# chunks (rules with marlin_max_tokens: 64) against the default rules, sampled text with the
# GPU sampler against the host sampler (SWIFTKT_GPU_SAMPLING=0), and prefill of 16/64-token
# prompts on the Llama-3-8B shape with and without Marlin.
# Usage: scripts/gpu/check_marlin_sampling.sh SWIFTKT_BINARY WORK_DIR OUT_DIR
set -uo pipefail
bin=$1; work=$2; out=$3
mkdir -p "$work" "$out"
export SWIFTKT_HOME="${SWIFTKT_HOME:-$work/home}"
ms=()
for spec in "llama smollm2-135m q4_K" "llama smollm2-135m q4_1" "gemma3 gemma3-270m q8_0" "qwen3 tiny q4_K" "llama tiny q6_K"; do
    set -- $spec; f="$work/$1-$2-$3.gguf"
    [ -f "$f" ] || "$bin" synth --arch "$1" --shape "$2" --type "$3" --seed 7 -o "$f" > /dev/null 2>&1
    ms+=(-m "$f")
done
[ -f "$work/llama3-8b-q4_K.gguf" ] || ("$bin" synth --arch llama --shape llama3-8b --type q4_K --seed 1 -o "$work/llama3-8b-q4_K.gguf" > /dev/null 2>&1 &)
"$bin" ops-check --perf "${ms[@]}" > "$out/ops-check.md" 2> "$out/ops-check.log"; echo "ops-check exit $?"
grep -E "checks passed|FAIL|\| .*gguf|marlin|Marlin|sampl" "$out/ops-check.md" | grep -v "| ok" | head -60
python3 - "$(dirname "$0")/../../rules/cuda.yaml" "$work/cuda-marlin.yaml" <<'PY'
import sys
src = open(sys.argv[1]).read()
src = src.replace("    class: LinearCUDA\n    kwargs:\n", "    class: LinearCUDA\n    kwargs:\n      marlin_max_tokens: 64\n")
open(sys.argv[2], "w").write(src)
PY
prompt="The history of the city begins in the early years of the river trade, when merchants from the north and the south met at the ford to exchange salt, grain, wool and news of distant places"
for m in "$work/llama-smollm2-135m-q4_K.gguf" "$work/llama-smollm2-135m-q4_1.gguf"; do
    name=$(basename "$m" .gguf)
    "$bin" run -m "$m" -p "$prompt" -n 32 --temp 0 > "$out/$name-default.txt" 2> "$work/$name-default.log"
    "$bin" run -m "$m" -p "$prompt" -n 32 --temp 0 --rules "$work/cuda-marlin.yaml" > "$out/$name-marlin.txt" 2> "$work/$name-marlin.log"
    cmp -s "$out/$name-default.txt" "$out/$name-marlin.txt" && echo "$name greedy: marlin = default" || { echo "$name greedy: DIFFER"; cat "$out/$name-default.txt"; echo; cat "$out/$name-marlin.txt"; echo; }
    grep -E "repacked|prompt|generat" "$work/$name-marlin.log" | tail -3
    "$bin" run -m "$m" -p "$prompt" -n 64 --temp 0.8 --seed 3 --repeat-penalty 1.1 > "$out/$name-gpu-sampling.txt" 2> "$work/$name-gs.log"
    SWIFTKT_GPU_SAMPLING=0 "$bin" run -m "$m" -p "$prompt" -n 64 --temp 0.8 --seed 3 --repeat-penalty 1.1 > "$out/$name-host-sampling.txt" 2> "$work/$name-hs.log"
    cmp -s "$out/$name-gpu-sampling.txt" "$out/$name-host-sampling.txt" && echo "$name sampled: GPU = host" || { echo "$name sampled: DIFFER"; cat "$out/$name-gpu-sampling.txt"; echo; cat "$out/$name-host-sampling.txt"; echo; }
    echo "GPU sampling: $(grep -E 'tokens/s|t/s' "$work/$name-gs.log" | tail -1)"; echo "host sampling: $(grep -E 'tokens/s|t/s' "$work/$name-hs.log" | tail -1)"
done
while [ ! -f "$work/llama3-8b-q4_K.gguf" ] || pgrep -f "synth --arch llama --shape llama3-8b" > /dev/null; do sleep 2; done
m="$work/llama3-8b-q4_K.gguf"
for rules in default marlin; do
    r=(); [ "$rules" = marlin ] && r=(--rules "$work/cuda-marlin.yaml")
    "$bin" bench -m "$m" -p 16,32,64 -n 0 -r 3 "${r[@]}" 2>/dev/null | grep -E "^\| llama" | sed "s/^/$rules: /" | tee -a "$out/marlin-bench.md"
done
"$bin" bench -m "$m" -p 512 -n 128 -r 3 2>/dev/null | grep -E "^\| llama" | tee -a "$out/marlin-bench.md"
"$bin" run -m "$m" -p "$prompt" -n 64 --temp 0.8 --seed 3 > /dev/null 2> "$work/8b-gs.log"; echo "8B GPU sampling: $(tail -2 "$work/8b-gs.log" | head -1)"
SWIFTKT_GPU_SAMPLING=0 "$bin" run -m "$m" -p "$prompt" -n 64 --temp 0.8 --seed 3 > /dev/null 2> "$work/8b-hs.log"; echo "8B host sampling: $(tail -2 "$work/8b-hs.log" | head -1)"
# Programmatic dependent launch off (SWIFTKT_CUDA_PDL=0) against on, alternately.
for round in 1 2; do
    for pdl in 1 0; do
        SWIFTKT_CUDA_PDL=$pdl "$bin" bench -m "$m" -p 512 -n 128 -r 3 2>/dev/null | grep -E "^\| llama" | sed "s/^/pdl=$pdl round $round: /" | tee -a "$out/pdl-bench.md"
    done
done
# Optionally start what scripts/gpu/check_hybrid_prefill.sh needs next (llama.cpp's CUDA build,
# the Qwen3-30B-A3B-shaped model) in a new session that outlives this call while the machine
# stays warm: LLAMA_CPP_TAR_XZ=path.
if [ -n "${LLAMA_CPP_TAR_XZ:-}" ]; then
    here=$(cd "$(dirname "$0")" && pwd)
    setsid nohup bash "$here/llamacpp_cuda.sh" "$LLAMA_CPP_TAR_XZ" "$work/lcp" "$work" > "$work/llamacpp-build-step.log" 2>&1 < /dev/null &
    setsid nohup bash -c "'$bin' synth --arch qwen3moe --shape qwen3-30b-a3b --type q4_K --seed 1 -o '$work/qwen3-30b-a3b-q4_K.gguf.part' > '$work/qwen3-synth.log' 2>&1 && mv '$work/qwen3-30b-a3b-q4_K.gguf.part' '$work/qwen3-30b-a3b-q4_K.gguf'" > /dev/null 2>&1 < /dev/null &
    echo "started llama.cpp build and qwen3-30b-a3b synth"
fi
