#!/usr/bin/env bash
# On the GPU machine, one call: what session 8 built but could not run (its device time ran out),
# most important first.
#   1. devices --selftest (NCCL's all-reduce over every GPU is new), ops-check (the q6_K
#      tensor-core experts kernel against one launch per expert is new);
#   2. hybrid decode as captured segments (SWIFTKT_CUDA_HYBRID_GRAPHS=1) or as one graph with host
#      nodes (=host), the router on the GPU (SWIFTKT_CUDA_ROUTER=1), against the all-CPU path
#      on tiny MoE models, and a Q4_K_M-like mix (q4_K, q6_K down: two tile heights per chunk,
#      and the q6_K kernel with SWIFTKT_EXPERTS_MMA_Q6K=1);
#   3. Qwen3-30B-A3B shape decode under each switch with SWIFTKT_PROFILE_EXPERTS=1 (segments,
#      the exact GPU router, dynamic CPU shares, workers bound to cores, a huge-page heap) and `run` text with and without segments;
#   4. the same shape as a Q4_K_M-like mix: pp512 with the q6_K kernel off and on;
#   5. the host's q4_K GEMV bandwidth (`swiftkt kernels`), static and dynamic shares;
#   6. Llama-3-8B shape tg128 / tg512 (decode attention in one kernel at every length; rope and
#      the KV store in the q/k/v GEMV, SWIFTKT_CUDA_QKV_ROPE=1, and its `run` text);
#   7. the split over a stand-in second GPU, speed line included (scripts/gpu/check_split.sh);
#   8. (session 9's lead) the host CPU (lscpu) and its q4_K GEMV per ISA and thread count: on the
#      H100 host the AVX-512 kernel scaled linearly from 8 to 16 threads at only ~3.8 GB/s per
#      thread (61 GB/s at 16), while the AVX2 kernel reads 16.7 GB/s on one Zen 3 core — if the
#      AVX2 path (or fewer threads) is faster there, the hybrid decode's CPU experts are too slow
#      for a kernel reason, not the host's DRAM.
# Steps 1–7 ran in session 9 (BENCHMARKS.md); step 8 has not run yet.
# Usage: scripts/gpu/check_unmeasured.sh SWIFTKT_BINARY WORK_DIR OUT_DIR [STEPS]
#   STEPS: which steps to run, e.g. "1 2 3 4" (default: all; the whole list takes about 10 minutes,
#   so split it over two calls when one call is limited to 600 s; models persist in WORK_DIR).
set -uo pipefail
bin=$1; work=$2; out=$3; steps=" ${4:-8} "
source "$(dirname "$0")/common.sh"
m30="$work/qwen3-30b-a3b-q4_K.gguf"; m30m="$work/qwen3-30b-a3b-q4_K_M.gguf"; m8="$work/llama3-8b-q4_K.gguf"
ms="$work/llama-smollm2-135m-q4_1.gguf"
(synth "$m30" --arch qwen3moe --shape qwen3-30b-a3b --type q4_K --seed 1) &
synth "$ms" --arch llama --shape smollm2-135m --type q4_1 --seed 7

# 1.
if step 1; then
"$bin" devices --selftest 2>&1 | grep -E "nccl|selftest"
"$bin" ops-check -m "$ms" > "$out/ops-check.md" 2> "$out/ops-check.log"; echo "ops-check exit $? $(el)"
grep -E "checks passed|tensor cores" "$out/ops-check.md"; grep -E "\| (fail|FAIL)" "$out/ops-check.md" | head
fi

# 2.
if step 2; then
sed -E 's/stream_to_gpu_min_tokens: [0-9]+/stream_to_gpu_min_tokens: 32/' "$here/../../rules/cuda-moe.yaml" > "$work/moe.yaml"
models=()
for spec in "qwen3moe q4_K -" "mixtral q8_0 -" "qwen3moe q4_K q6_K"; do
    set -- $spec; f="$work/tiny-$1-$2-$3.gguf"
    synth "$f" --arch "$1" --shape tiny --type "$2" $([ "$3" != - ] && echo --down-type "$3") --seed 7
    models+=(-m "$f")
done
for v in SWIFTKT_CUDA_HYBRID_GRAPHS=1 SWIFTKT_CUDA_HYBRID_GRAPHS=host SWIFTKT_EXPERTS_MMA_Q6K=1 SWIFTKT_CUDA_ROUTER=1; do
    for p in 48 24; do
        SWIFTKT_CUDA_HYBRID_GRAPHS=1 env "$v" timeout 150 "$bin" ops-check --prompt-tokens $p --rules "$work/moe.yaml" "${models[@]}" > "$out/hybrid-${v//=/_}-$p.md" 2> "$work/hybrid.log"
        echo "hybrid check $v, $p-token prompt: exit $? $(el)"; grep -E "^\| .*gguf|checks passed" "$out/hybrid-${v//=/_}-$p.md"
    done
done
fi

# 3.
if step 3; then
wait
(synth "$m30m" --arch qwen3moe --shape qwen3-30b-a3b --type q4_K --down-type q6_K --seed 1) &
for v in DEFAULT=1 SWIFTKT_CUDA_HYBRID_GRAPHS=1 SWIFTKT_CUDA_HYBRID_GRAPHS=host SWIFTKT_CUDA_ROUTER=1 SWIFTKT_CPU_DYNAMIC=1 SWIFTKT_PIN_THREADS=1 GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432; do
    env "$v" SWIFTKT_PROFILE_EXPERTS=1 timeout 120 "$bin" bench -m "$m30" -p 0 -n 64 -r 2 --rules "$work/moe.yaml" 2> "$work/decode.err" \
        | grep -E "^\| qwen" | sed "s|^|30B tg64 $v: |" | tee -a "$out/hybrid-decode.md"
    grep -E "^decode" "$work/decode.err" | tail -1 | tee -a "$out/hybrid-decode.md"
done
a=$(SWIFTKT_CUDA_HYBRID_GRAPHS=1 SWIFTKT_CUDA_ROUTER=1 timeout 100 "$bin" run -m "$m30" -p "The capital of France is" -n 32 --temp 0 --rules "$work/moe.yaml" 2>/dev/null | md5sum)
b=$(timeout 100 "$bin" run -m "$m30" -p "The capital of France is" -n 32 --temp 0 --rules "$work/moe.yaml" 2>/dev/null | md5sum)
c=$(SWIFTKT_CUDA_HYBRID_GRAPHS=host timeout 100 "$bin" run -m "$m30" -p "The capital of France is" -n 32 --temp 0 --rules "$work/moe.yaml" 2>/dev/null | md5sum)
[ "$c" = "$b" ] && echo "30B run text: host nodes = launches" || echo "30B run text DIFFERS with host nodes"
[ "$a" = "$b" ] && echo "30B run text: segments + GPU router = launches + CPU router" || echo "30B run text DIFFERS with segments + GPU router"
echo "$(el)"
fi

# 4.
if step 4; then
wait
for v in DEFAULT=1 SWIFTKT_EXPERTS_MMA_Q6K=1; do
    env "$v" SWIFTKT_PROFILE_EXPERTS=1 timeout 120 "$bin" bench -m "$m30m" -p 512 -n 0 -r 2 --rules "$work/moe.yaml" 2> "$work/pp.err" \
        | grep -E "^\| qwen" | sed "s|^|30B Q4_K_M-like pp512 $v: |" | tee -a "$out/hybrid-prefill.md"
    grep -E "512-token" "$work/pp.err" | tail -1
done
echo "$(el)"
fi

# 5.
if step 5; then
for shape in "768 2048" "2048 768" "12288 2048"; do
    set -- $shape
    for v in DEFAULT=1 SWIFTKT_CPU_DYNAMIC=1; do
        env "$v" timeout 60 "$bin" kernels --types q4_K --rows $1 --cols $2 --tokens 1 -t 16,8 --working-set 4096 --seconds 1 2>&1 \
            | grep -E "^\| q4_K" | sed "s|^|$v |" | tee -a "$out/host-kernels.md"
    done
done
fi

# 6.
if step 6; then
synth "$m8" --arch llama --shape llama3-8b --type q4_K --seed 1
for v in DEFAULT=1 SWIFTKT_CUDA_QKV_ROPE=1 SWIFTKT_CUDA_SHORT_ATTENTION=0 DEFAULT=2 SWIFTKT_CUDA_QKV_ROPE=1; do
    env "$v" timeout 90 "$bin" bench -m "$m8" -p 0 -n 128,512 -r 2 2>/dev/null | grep -E "^\| llama" | sed "s|^|8B $v: |" | tee -a "$out/decode-8b.md"
done
a=$(timeout 60 "$bin" run -m "$m8" -p "The capital of France is" -n 64 --temp 0 2>/dev/null | md5sum)
b=$(SWIFTKT_CUDA_QKV_ROPE=1 timeout 60 "$bin" run -m "$m8" -p "The capital of France is" -n 64 --temp 0 2>/dev/null | md5sum)
[ "$a" = "$b" ] && echo "8B run text: rope in the q/k/v GEMV = apart" || echo "8B run text DIFFERS with rope in the q/k/v GEMV"
echo "$(el)"
fi

# 7.
if step 7; then
timeout 120 bash "$here/check_split.sh" "$bin" "$ms" 30 "$work/split" "$out" 2>&1 | tail -4
echo "$(el)"
fi

# 8.
if step 8; then
lscpu | grep -E "Model name|^CPU\(s\)|Thread|Core|Socket|NUMA node|L3|Flags" | cut -c1-200
for isa in avx512 avx2; do
    timeout 120 "$bin" kernels --types q4_K,q8_0 --rows 12288 --cols 2048 --tokens 1 -t 1,2,4,8,16 --isa $isa --working-set 2048 --seconds 1 2>&1 \
        | grep -E "^\| q" | tee -a "$out/host-isa.md"
done
timeout 60 "$bin" kernels --types q4_K --rows 768 --cols 2048 --tokens 1 -t 8,16 --isa avx2 --working-set 2048 --seconds 1 2>&1 | grep -E "^\| q" | tee -a "$out/host-isa.md"
echo "$(el)"
fi
