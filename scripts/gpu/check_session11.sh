#!/usr/bin/env bash
# On the GPU machine, one or two calls: what session 11 built but could not run (every device
# start of that session was refused). Most important first.
#   1. ops-check: the preloading one-token q4_K GEMVs (mmv1p1/2_q4_K, mmv1rp1/2_q4_K) against
#      mmv1_q4_K bit for bit, the width-192 short attention (attn_short_192) against the two
#      kernels, and mmv1_q4_K itself, now built from the same template (the default decode GEMV:
#      its first run on a GPU since the refactor); tiny MoE files end to end against the CPU,
#      deepseek2 with SWIFTKT_CUDA_SHORT_192=1; `kernels --check` on the host (run it with a
#      binary of the wip/avx512-q4k-dpwssd branch to check that branch's AVX-512 q4_K kernel);
#   2. Llama-3-8B shape tg128 (issue 7's 70 % goal): default, SWIFTKT_CUDA_PRELOAD=1 and =2,
#      rope in the q/k/v GEMV with preloading, alternating, two rounds; `run` text of each; the
#      per-kernel table of SWIFTKT_PROFILE_KERNELS=1 (never run on a GPU yet);
#   3. DeepSeek-V2-Lite shape hybrid tg64: default, SWIFTKT_CUDA_SHORT_192=1, SWIFTKT_CUDA_PRELOAD=2
#      (with SWIFTKT_PROFILE_EXPERTS=1's "waiting for the GPU" line), llama.cpp beside it when
#      LLAMA_BENCH names a llama-bench binary;
#   4. the host's q4_K / q8_0 kernels per ISA at 1, 16 and 64 tokens (the AVX-512 dpwssd branch
#      against AVX2);
#   5. (session 12) the AMX q4_K kernel (default on AMX CPUs since): `kernels --check`, then 8–128 tokens
#      against tuned.
# Usage: scripts/gpu/check_session11.sh SWIFTKT_BINARY WORK_DIR OUT_DIR [STEPS]
#   STEPS e.g. "5 2 1", run in that order (default "1 2 4", about 5 minutes; step 3 synthesizes a 10 GiB model and
#   takes about 4 more, so give it its own call; models persist in WORK_DIR).
set -uo pipefail
bin=$1; work=$2; out=$3; steps=" ${4:-1 2 4} "
source "$(dirname "$0")/common.sh"
m8="$work/llama3-8b-q4_K.gguf"; ds="$work/deepseek-v2-lite-q4_K.gguf"
if step 2; then (synth "$m8" --arch llama --shape llama3-8b --type q4_K --seed 1) & fi

# 1.
run_step1() {
sed -E 's/stream_to_gpu_min_tokens: [0-9]+/stream_to_gpu_min_tokens: 32/' "$here/../../rules/cuda-moe.yaml" > "$work/moe.yaml"
models=()
for spec in "deepseek2 tiny-lite f32" "deepseek2 tiny-v2 q8_0" "qwen2moe tiny f32" "qwen3moe tiny q4_K"; do
    set -- $spec; f="$work/s11-$1-$2-$3.gguf"
    synth "$f" --arch "$1" --shape "$2" --type "$3" --seed 7
    models+=(-m "$f")
done
SWIFTKT_CUDA_SHORT_192=1 timeout 240 "$bin" ops-check --prompt-tokens 48 --rules "$work/moe.yaml" "${models[@]}" > "$out/ops-check.md" 2> "$work/ops.log"
echo "ops-check exit $? $(el)"
grep -E "checks passed|^\| .*gguf" "$out/ops-check.md"; grep -E "preloaded|× 192" "$out/ops-check.md" | head -12
"$bin" kernels --check 2>&1 | tail -2; echo "$(el)"
}

# 2.
run_step2() {
wait
for round in 1 2; do
    for v in DEFAULT=1 SWIFTKT_CUDA_PRELOAD=1 SWIFTKT_CUDA_PRELOAD=2 "SWIFTKT_CUDA_QKV_ROPE=1 SWIFTKT_CUDA_PRELOAD=2"; do
        env $v timeout 90 "$bin" bench -m "$m8" -p 0 -n 128 -r 2 2>/dev/null | grep -E "^\| llama" | sed "s|^|8B r$round $v: |" | tee -a "$out/decode-8b.md"
    done
done
base=$(timeout 60 "$bin" run -m "$m8" -p "The capital of France is" -n 64 --temp 0 2>/dev/null | md5sum)
for v in SWIFTKT_CUDA_PRELOAD=1 SWIFTKT_CUDA_PRELOAD=2 "SWIFTKT_CUDA_QKV_ROPE=1 SWIFTKT_CUDA_PRELOAD=2"; do
    [ "$(env $v timeout 60 "$bin" run -m "$m8" -p "The capital of France is" -n 64 --temp 0 2>/dev/null | md5sum)" = "$base" ] \
        && echo "8B run text with $v: same" || echo "8B run text with $v: DIFFERS"
done
SWIFTKT_PROFILE_KERNELS=1 timeout 90 "$bin" bench -m "$m8" -p 0 -n 64 -r 1 2> "$out/kernel-profile.txt" | grep -E "^\| llama"
grep -vE "^(loading|uploaded)" "$out/kernel-profile.txt" | head -40; echo "$(el)"
}

# 3.
run_step3() {
synth "$ds" --arch deepseek2 --shape deepseek-v2-lite --type q4_K --seed 1; echo "V2-Lite ready $(el)"
if [ -n "${LLAMA_BENCH:-}" ]; then
    "$LLAMA_BENCH" -m "$ds" -ngl 99 -ot exps=CPU -t 16 -p 0 -n 64 -r 2 -o md 2>/dev/null | grep -E "^\| deepseek" | sed "s/^/llama.cpp: /" | tee -a "$out/v2-lite.md"
fi
# Prompts with the routed experts on the CPU (never streamed): AVX2's lane kernel (tuned) against
# the AMX tiles (session 12), beside the default that streams 32+-token chunks to the GPU.
sed -E 's/stream_to_gpu_min_tokens: [0-9]+/stream_to_gpu_min_tokens: 0/' "$here/../../rules/cuda-moe.yaml" > "$work/moe-cpu.yaml"
for v in "SWIFTKT_ISA=tuned --rules $work/moe-cpu.yaml" "SWIFTKT_AMX=1 --rules $work/moe-cpu.yaml" "DEFAULT=1"; do
    set -- $v
    env $1 timeout 150 "$bin" bench -m "$ds" -p 64,512 -n 0 -r 2 "${@:2}" 2>/dev/null | grep -E "^\| deepseek" | sed "s|^|V2-Lite prompt $v: |" | tee -a "$out/v2-lite.md"
done
for v in DEFAULT=1 SWIFTKT_CUDA_SHORT_192=1 SWIFTKT_CUDA_PRELOAD=2 DEFAULT=2; do
    env $v SWIFTKT_PROFILE_EXPERTS=1 timeout 120 "$bin" bench -m "$ds" -p 0 -n 64 -r 3 2> "$work/v2.err" | grep -E "^\| deepseek" | sed "s|^|V2-Lite $v: |" | tee -a "$out/v2-lite.md"
    grep -E "^decode" "$work/v2.err" | tail -1
done
echo "$(el)"
}

# 4.
run_step4() {
for isa in avx512 avx2; do
    timeout 60 "$bin" kernels --types q4_K,q8_0 --tokens 1,16,64 -t 16 --seconds 0.5 --isa $isa 2>&1 | grep -E "^\| q" | sed "s/^/$isa /" | tee -a "$out/host-isa.md"
done
echo "$(el)"
}

# 5. (session 12) The AMX q4_K kernel: its first run on a tile unit — the bit check against the
#    scalar reference, then the batch sizes of prompt chunks against tuned's AVX2 lane kernel,
#    on a V2-Lite expert's gate shape [1408, 2048] and a 4096 × 2048 matrix.
run_step5() {
grep -o -E "amx[a-z0-9_]*" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
SWIFTKT_AMX=1 timeout 120 "$bin" kernels --check --types q4_K 2>&1 | tail -3 | tee "$out/amx-check.txt"
for shape in "1408 2048" "4096 2048"; do
    set -- $shape
    for isa in tuned amx; do
        SWIFTKT_AMX=1 timeout 90 "$bin" kernels --types q4_K --rows $1 --cols $2 --tokens 8,16,32,64,128 -t 16 --seconds 0.3 --isa $isa 2>&1 \
            | grep -iE "^\| q|error" | tee -a "$out/amx.md"
    done
done
echo "$(el)"
}

# The steps in the order STEPS lists them (the quick ones first when a call may be cut short).
for n in $steps; do "run_step$n"; done
