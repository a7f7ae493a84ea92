#!/usr/bin/env bash
# On a GPU machine, one call: what each family of a decode step's kernels costs inside the
# captured step (issue 7: the 8B decode as a fraction of the memory bandwidth). The lent
# machines have no Nsight Systems, so the step is timed with families left out
# (SWIFTKT_CUDA_DEBUG_SKIP; wrong results, true times): the difference against the default is
# the family's cost in the step as it runs (launch gaps and overlap included). Then
# SWIFTKT_PROFILE_KERNELS=1's per-kernel table (graphs off) after `ops-check --perf` (its q4_K GEMV timings).
# Env: SKIP_OPS=1 (no ops-check first), ROUNDS (2), VARIANTS (space-separated; each a +-joined list of
#   "-" = defaults, a,b = SWIFTKT_CUDA_DEBUG_SKIP=a,b, NAME=V = an environment assignment, fast =
#   rules/cuda-fast.yaml), EXTRA_VARIANTS (appended), PROFILE=0 (no per-kernel table), TEXT_VARIANTS
#   (+-joined environment assignments whose greedy `run` text must equal the default's).
# Usage: scripts/gpu/decode_costs.sh SWIFTKT_BINARY WORK_DIR OUT_DIR
set -uo pipefail
bin=$1; work=$2; out=$3
source "$(dirname "$0")/common.sh"
m8="$work/llama3-8b-q4_K.gguf"
(synth "$m8" --arch llama --shape llama3-8b --type q4_K --seed 1) &
if [ -z "${SKIP_OPS:-}" ]; then
    timeout 300 "$bin" ops-check --perf > "$out/ops-check.md" 2> "$out/ops-check.log"; echo "ops-check exit $? $(el)"
    grep -E "^perf (device copy|linear q4_K|attention decode)" "$out/ops-check.log" | head -12
    grep -E "checks passed|staged|preloaded" "$out/ops-check.md" | head -20; grep -E "\| (fail|FAIL)" "$out/ops-check.md" | head
fi
wait; echo "8B ready $(el)"
variants=${VARIANTS:-"- SWIFTKT_CUDA_PRELOAD=0 norm glu attn,rope norm,glu,attn,rope qkv,o,gateup,down qkv,o gateup,down"}
variants="$variants ${EXTRA_VARIANTS:-}"
for round in $(seq 1 "${ROUNDS:-2}"); do
    for v in $variants; do
        envs=(DEFAULT=1); args=()
        for piece in ${v//+/ }; do
            case "$piece" in
                -) ;;
                fast) args+=(--rules "$here/../../rules/cuda-fast.yaml") ;;
                *=*) envs+=("$piece") ;;
                *) envs+=("SWIFTKT_CUDA_DEBUG_SKIP=$piece") ;;
            esac
        done
        env "${envs[@]}" timeout 120 "$bin" bench -m "$m8" -p 0 -n 128 -r 2 ${args[@]+"${args[@]}"} 2>/dev/null | grep -E "^\| llama" \
            | sed "s/^/round $round, $v: /" | tee -a "$out/costs.md"
    done
    echo "$(el)"
done
# Greedy text of each TEXT_VARIANTS entry (env assignments joined by +) against the default's.
if [ -n "${TEXT_VARIANTS:-}" ]; then
    base=$(timeout 60 "$bin" run -m "$m8" -p "The capital of France is" -n 48 --temp 0 2>/dev/null | md5sum)
    for v in $TEXT_VARIANTS; do
        [ "$(env ${v//+/ } timeout 60 "$bin" run -m "$m8" -p "The capital of France is" -n 48 --temp 0 2>/dev/null | md5sum)" = "$base" ] \
            && echo "8B run text with $v: same as the default" || echo "8B run text with $v: DIFFERS"
    done
fi
if [ "${PROFILE:-1}" != 0 ]; then
    SWIFTKT_PROFILE_KERNELS=1 timeout 90 "$bin" bench -m "$m8" -p 0 -n 64 -r 1 2> "$out/kernel-profile.txt" | grep -E "^\| llama"
    grep -vE "^(loading|uploaded)" "$out/kernel-profile.txt" | head -12
fi
echo "done $(el)"
