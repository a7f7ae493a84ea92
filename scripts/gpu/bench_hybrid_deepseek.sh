#!/usr/bin/env bash
# On the GPU machine: DeepSeek-V2-Lite's hybrid set-up (MLA attention on the GPU, MoE blocks on
# the CPU: rules/cuda-moe.yaml) — first its greedy tokens against the all-CPU set-up on tiny
# deepseek2 models (ops-check's end-to-end comparison, decode and a prompt-sized chunk), then
# pp512 / tg64 side by side with llama.cpp's CUDA build with its experts on the CPU
# (`-ngl 99 -ot exps=CPU`) on the same Q4_K file, alternately.
# Usage: scripts/gpu/bench_hybrid_deepseek.sh SWIFTKT_BINARY WORK_DIR OUT_DIR LLAMA_BENCH [REPS]
#   LLAMA_BENCH: a llama-bench built by scripts/gpu/llamacpp_cuda.sh (or "-" to skip it).
set -uo pipefail
bin=$1; work=$2; out=$3; lb=$4; reps=${5:-2}
source "$(dirname "$0")/common.sh"
model="$work/deepseek-v2-lite-q4_K.gguf"
(synth "$model" --arch deepseek2 --shape deepseek-v2-lite --type q4_K --seed 1) &

# Correctness: tiny V2-Lite-like files (attn_kv_b, YaRN, shared experts), q4_K and q8_0, decode
# steps after a 48-token prompt (GEMM linears, CPU-numerics attention at width 192, experts
# streamed to the GPU at 32+) and after a 100-token one (split-K attention at width 192); tiny-v2
# adds the q LoRA. The ops check's own MLA kernel checks are in the same report.
sed -E 's/stream_to_gpu_min_tokens: [0-9]+/stream_to_gpu_min_tokens: 32/' "$here/../../rules/cuda-moe.yaml" > "$work/moe.yaml"
tiny=()
for shape in tiny-lite tiny-v2; do
    for t in q4_K q8_0; do
        f="$work/$shape-$t.gguf"; synth "$f" --arch deepseek2 --shape $shape --type "$t" --seed 7; tiny+=(-m "$f")
    done
done
for p in ${DS_PROMPTS:-48 100}; do
    timeout 150 "$bin" ops-check --prompt-tokens $p --rules "$work/moe.yaml" "${tiny[@]}" > "$out/deepseek-check-$p.md" 2> "$work/ds-check.log"
    echo "deepseek2 hybrid check, $p-token prompt: exit $? $(el)"; grep -E "^\| .*gguf|checks passed" "$out/deepseek-check-$p.md"
    grep -iE "error|unsupported" "$work/ds-check.log" | head -3
done
grep -iE "mla|yarn|× 192" "$out"/deepseek-check-*.md | head -12

wait; ls -la "$model"
"$bin" inspect -m "$model" --placement --rules "$here/../../rules/cuda-moe.yaml" 2>&1 | tail -6
# The real widths (kv rank 512, 16 heads) end to end against the all-CPU path.
timeout 150 "$bin" ops-check --prompt-tokens 24 --rules "$work/moe.yaml" -m "$model" > "$out/deepseek-check-v2lite.md" 2> "$work/ds-check.log"
echo "V2-Lite hybrid check, 24-token prompt: exit $? $(el)"; grep -E "^\| .*gguf|checks passed" "$out/deepseek-check-v2lite.md"
echo "$(el)"
side() {
    if [ "$lb" != - ]; then
        "$lb" -m "$model" -ngl 99 -ot "exps=CPU" -t "$(nproc)" -p 512 -n 64 -r "$reps" -o md 2> "$out/llamacpp-ds-$round.log" \
            | grep -E "^\| deepseek" | sed "s/^/llama.cpp -ot exps=CPU round $round: /" | tee -a "$out/deepseek-side-by-side.md"
    fi
    SWIFTKT_PROFILE_EXPERTS=1 "$bin" bench -m "$model" -p 512 -n 64 -r "$reps" --rules "$here/../../rules/cuda-moe.yaml" 2> "$out/swiftkt-ds-$round.log" \
        | grep -E "^\| deepseek" | sed "s/^/swiftkt cuda-moe round $round: /" | tee -a "$out/deepseek-side-by-side.md"
    grep -E "^decode|512-token" "$out/swiftkt-ds-$round.log" | tail -2
    echo "$(el)"
}
round=1 side
# The hybrid decode defaults (captured segments, the router on the GPU) against both off.
for round in 1; do
    for v in DEFAULT=1 "SWIFTKT_CUDA_HYBRID_GRAPHS=0 SWIFTKT_CUDA_ROUTER=0"; do
        env $v SWIFTKT_PROFILE_EXPERTS=1 "$bin" bench -m "$model" -p 0 -n 64 -r 2 --rules "$here/../../rules/cuda-moe.yaml" 2> "$work/sw.err" \
            | grep -E "^\| deepseek" | sed "s/^/swiftkt tg64 $v round $round: /" | tee -a "$out/deepseek-switches.md"
        grep -E "^decode" "$work/sw.err" | tail -1
    done
done
echo "$(el)"
# A second round when the call has time left (DS_BUDGET seconds, default unlimited).
[ $(( $(date +%s) - t0 )) -lt "${DS_BUDGET:-99999}" ] && round=2 side
