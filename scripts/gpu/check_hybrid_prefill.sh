#!/usr/bin/env bash
# On the GPU machine: routed experts of prompt-sized chunks on the GPU (rules/cuda-moe.yaml with
# stream_to_gpu_min_tokens: 32) against the all-CPU path end to end on tiny models of each MoE
# architecture and an upcycled SmolLM2-shaped model (48-token prompts: experts on the GPU; 24:
# on the CPU), then the Qwen3-30B-A3B shape side by side with llama.cpp's CUDA build
# (`-ngl 99 -ot exps=CPU`): swiftkt with and without expert streaming, pp512 / tg64.
# Env: OPS_CHECK=1 (ops check first), OPS_PERF=1, SKIP_8B=1, SKIP_TINY=1 (no tiny-model checks), ROUNDS, MOE_PP /
# MOE_CPU_PP (prompt lengths of the 30B runs, e.g. 128,512; MOE_CPU_PP=0 skips the CPU-experts run), STAGING_TOO=1
# (streamed through staging too), PER_EXPERT_TOO=1 (also SWIFTKT_EXPERTS_ONE_LAUNCH=0: one launch per expert), PROFILE=1
# (a pp512 run of each streamed variant with SWIFTKT_PROFILE_EXPERTS=1: where the host's time goes per chunk).
# Usage: scripts/gpu/check_hybrid_prefill.sh SWIFTKT_BINARY WORK_DIR OUT_DIR LLAMA_CPP_TAR_XZ
set -uo pipefail
bin=$1; work=$2; out=$3; src=$4
mkdir -p "$work" "$out"
export SWIFTKT_HOME="${SWIFTKT_HOME:-$work/home}"
here=$(cd "$(dirname "$0")" && pwd)
model="$work/qwen3-30b-a3b-q4_K.gguf"
lb="$work/lcp/llama.cpp/build/bin/llama-bench"
if [ ! -x "$lb" ] && ! pgrep -f llamacpp_cuda.sh > /dev/null; then
    bash "$here/llamacpp_cuda.sh" "$src" "$work/lcp" "$work" > "$work/llamacpp-build-step.log" 2>&1 &
fi
if [ ! -f "$model" ] && ! pgrep -f "shape qwen3-30b-a3b" > /dev/null; then
    ("$bin" synth --arch qwen3moe --shape qwen3-30b-a3b --type q4_K --seed 1 -o "$model.part" > "$work/qwen3-synth.log" 2>&1 && mv "$model.part" "$model") &
fi
[ -n "${SKIP_8B:-}" ] || [ -f "$work/llama3-8b-q4_K.gguf" ] || ("$bin" synth --arch llama --shape llama3-8b --type q4_K --seed 1 -o "$work/llama3-8b-q4_K.gguf.part" > /dev/null 2>&1 && mv "$work/llama3-8b-q4_K.gguf.part" "$work/llama3-8b-q4_K.gguf") &
if [ -n "${OPS_CHECK:-}" ]; then
    "$bin" ops-check ${OPS_PERF:+--perf} > "$out/ops-check.md" 2> "$work/ops-check.log"; echo "ops-check exit $?"
    grep -E "checks passed|FAIL" "$out/ops-check.md"
    # rules/cuda-fast.yaml (Marlin for 48-token chunks of a 108-token prompt, f32 attention) vs rules/cuda.yaml.
    f="$work/llama-smollm2-135m-q4_K.gguf"
    [ -f "$f" ] || "$bin" synth --arch llama --shape smollm2-135m --type q4_K --seed 7 -o "$f" > /dev/null 2>&1
    cp "$here/../../rules/cuda.yaml" "$work/cuda-nomarlin.yaml"
    prompt="The history of the city begins in the early years of the river trade, when merchants from the north and the south met at the ford to exchange salt, grain, wool and news of distant places"
    a=$("$bin" run -m "$f" -p "$prompt" -n 32 --temp 0 -b 48 --rules "$here/../../rules/cuda-fast.yaml" 2>/dev/null); b=$("$bin" run -m "$f" -p "$prompt" -n 32 --temp 0 -b 48 --rules "$work/cuda-nomarlin.yaml" 2>/dev/null)
    [ "$a" = "$b" ] && echo "48-token chunks: cuda-fast greedy = cuda greedy" || { echo "48-token chunks: cuda-fast and cuda greedy DIFFER"; echo "$a"; echo "$b"; }
fi
models=()
for spec in "mixtral tiny q8_0" "mixtral tiny q4_K" "qwen2moe tiny q8_0" "qwen3moe tiny q4_K"; do
    set -- $spec; f="$work/synth-$1-$2-$3.gguf"
    [ -f "$f" ] || "$bin" synth --arch "$1" --shape "$2" --type "$3" --seed 7 -o "$f" > /dev/null 2>&1
    models+=(-m "$f")
done
[ -f "$work/smollm2-shape.gguf" ] || "$bin" synth --arch llama --shape smollm2-135m --type q4_1 --seed 7 -o "$work/smollm2-shape.gguf" > /dev/null 2>&1
[ -f "$work/smollm2-shape-moe4.gguf" ] || "$bin" synth --upcycle "$work/smollm2-shape.gguf" --experts 4 -o "$work/smollm2-shape-moe4.gguf" > /dev/null 2>&1
models+=(-m "$work/smollm2-shape-moe4.gguf")
sed -E 's/stream_to_gpu_min_tokens: [0-9]+/stream_to_gpu_min_tokens: 32/' "$here/../../rules/cuda-moe.yaml" > "$work/cuda-moe-stream.yaml"
for p in $([ -n "${SKIP_TINY:-}" ] || echo 48 24); do
    echo "== hybrid (experts streamed from 32 tokens) vs CPU, $p-token prompt"
    "$bin" ops-check --prompt-tokens $p --rules "$work/cuda-moe-stream.yaml" "${models[@]}" > "$out/hybrid-check-$p.md" 2> "$work/hybrid-check-$p.log"; echo "ops-check exit $?"
    grep -E "^\| .*gguf|checks passed" "$out/hybrid-check-$p.md"
    grep -iE "error|stream|MoE blocks" "$work/hybrid-check-$p.log" | sort | uniq -c | head -5
done
echo "== waiting for the 30B model and llama.cpp"
while [ ! -f "$model" ]; do sleep 2; done
while [ ! -x "$lb" ] && pgrep -f llamacpp_cuda.sh > /dev/null; do sleep 2; done
cat "$work/llamacpp-build-step.log" 2>/dev/null | tail -2
ls -la "$model"
m8="$work/llama3-8b-q4_K.gguf"
while [ -z "${SKIP_8B:-}" ] && [ ! -f "$m8" ]; do sleep 2; done
if [ -z "${SKIP_8B:-}" ]; then
for round in 1; do
    "$bin" bench -m "$m8" -p 512 -n 128 -r 3 2>/dev/null | grep -E "^\| llama" | sed "s/^/swiftkt round $round: /" | tee -a "$out/side-by-side-8b.md"
    [ -x "$lb" ] && "$lb" -m "$m8" -ngl 99 -p 512 -n 128 -r 3 -o md 2>/dev/null | grep -E "^\| llama" | sed "s/^/llama.cpp round $round: /" | tee -a "$out/side-by-side-8b.md"
done
"$bin" bench -m "$m8" -p 16,64 -n 128 -r 3 --rules "$here/../../rules/cuda-fast.yaml" 2>/dev/null | grep -E "^\| llama" | sed "s/^/swiftkt rules\/cuda-fast.yaml: /" | tee -a "$out/side-by-side-8b.md"
fi
for round in $(seq 1 "${ROUNDS:-2}"); do
    timeout 150 "$bin" bench -m "$model" -p ${MOE_PP:-512} -n 64 -r 2 --rules "$work/cuda-moe-stream.yaml" 2> "$out/swiftkt-stream-$round.log" | grep -E "^\| qwen" | sed "s/^/swiftkt cuda-moe (streamed experts) round $round: /" | tee -a "$out/hybrid-side-by-side.md"
    [ -x "$lb" ] && timeout 150 "$lb" -m "$model" -ngl 99 -ot "exps=CPU" -t "$(nproc)" -p ${MOE_PP:-512} -n 64 -r 2 -o md 2> "$out/llamacpp-hybrid-$round.log" \
        | grep -E "^\| qwen" | sed "s/^/llama.cpp -ot exps=CPU round $round: /" | tee -a "$out/hybrid-side-by-side.md"
    [ -n "${PER_EXPERT_TOO:-}" ] && SWIFTKT_EXPERTS_ONE_LAUNCH=0 timeout 150 "$bin" bench -m "$model" -p ${MOE_PP:-512} -n 0 -r 2 --rules "$work/cuda-moe-stream.yaml" 2>/dev/null \
        | grep -E "^\| qwen" | sed "s/^/swiftkt SWIFTKT_EXPERTS_ONE_LAUNCH=0 round $round: /" | tee -a "$out/hybrid-side-by-side.md"
    # The same with uploads through staging instead of page-locked copies (STAGING_TOO=1).
    [ $round = 1 ] && [ -n "${STAGING_TOO:-}" ] && SWIFTKT_STREAM_PINNED=0 timeout 120 "$bin" bench -m "$model" -p 512 -n 0 -r 2 --rules "$work/cuda-moe-stream.yaml" 2>/dev/null \
        | grep -E "^\| qwen" | sed "s/^/swiftkt streamed experts through staging: /" | tee -a "$out/hybrid-side-by-side.md"
    [ $round = 1 ] && [ "${MOE_CPU_PP:-512}" != 0 ] && timeout 100 "$bin" bench -m "$model" -p ${MOE_CPU_PP:-512} -n 0 -r 1 --rules "$here/../../rules/cuda-moe.yaml" 2>/dev/null | grep -E "^\| qwen" | sed "s/^/swiftkt experts on the CPU: /" | tee -a "$out/hybrid-side-by-side.md"
done
grep -E "stream|page" "$out/swiftkt-stream-1.log" | head -3
if [ -n "${PROFILE:-}" ]; then
    for v in "" ${PER_EXPERT_TOO:+SWIFTKT_EXPERTS_ONE_LAUNCH=0}; do
        env SWIFTKT_PROFILE_EXPERTS=1 $v timeout 100 "$bin" bench -m "$model" -p 512 -n 0 -r 1 --rules "$work/cuda-moe-stream.yaml" 2>&1 >/dev/null \
            | grep -iE "chunk|wait" | tail -2 | sed "s/^/profile ${v:-default}: /" | tee -a "$out/hybrid-side-by-side.md"
    done
fi
