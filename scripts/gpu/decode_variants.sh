#!/usr/bin/env bash
# On a GPU machine, one call: the ops check, then decode (tg128, and tg512 to cross the
# short-attention bucket) on the Llama-3-8B shape Q4_K and the SmolLM2 shape Q4_1 under the
# decode step's switches, alternating; then one ncu window of per-kernel durations
# (caches not flushed) for the default step.
# Env: SKIP_OPS=1, ROUNDS (2), VARIANTS (space-separated env assignments, "-" = defaults).
# Usage: scripts/gpu/decode_variants.sh SWIFTKT_BINARY WORK_DIR OUT_DIR
set -uo pipefail
bin=$1; work=$2; out=$3
mkdir -p "$work" "$out"
export SWIFTKT_HOME="${SWIFTKT_HOME:-$work/home}"
here=$(dirname "$0")
m8="$work/llama3-8b-q4_K.gguf"; ms="$work/llama-smollm2-135m-q4_1.gguf"
[ -f "$m8" ] || ("$bin" synth --arch llama --shape llama3-8b --type q4_K --seed 1 -o "$m8.part" > /dev/null 2>&1 && mv "$m8.part" "$m8") &
synth=$!
[ -f "$ms" ] || "$bin" synth --arch llama --shape smollm2-135m --type q4_1 --seed 7 -o "$ms" > /dev/null 2>&1
if [ -z "${SKIP_OPS:-}" ]; then
    "$bin" ops-check -m "$ms" > "$out/ops-check.md" 2> "$out/ops-check.log"; echo "ops-check exit $?"
    grep -E "checks passed|^FAIL|\| .*gguf" "$out/ops-check.md" | head -20
    grep -E "\| (fail|FAIL)" "$out/ops-check.md" | head -20
fi
wait $synth
variants=${VARIANTS:-"- SWIFTKT_CUDA_SHORT_ROPE=1 SWIFTKT_CUDA_SHORT_ATTENTION=0"}
for m in "$m8" "$ms"; do
    for round in $(seq 1 "${ROUNDS:-2}"); do
        for v in $variants; do
            if [ "$v" = "-" ]; then envs=(); else envs=("$v"); fi
            env ${envs[@]+"${envs[@]}"} "$bin" bench -m "$m" -p 0 -n 128,512 -r 3 2>/dev/null | grep -E "^\| llama" \
                | sed "s/^/$(basename "$m" .gguf) $v round $round: /" | tee -a "$out/decode.md"
        done
    done
done
SWIFTKT_CUDA_GRAPHS=0 timeout 200 ncu --metrics gpu__time_duration.sum --csv --cache-control none --clock-control none \
    --launch-skip 3000 --launch-count 600 "$bin" run -m "$m8" -p "The capital of France is" -n 40 --temp 0 > "$out/ncu.csv" 2> "$out/ncu.log"
python3 "$here/summarize_ncu.py" "$out/ncu.csv" > "$out/ncu-summary.md"; head -16 "$out/ncu-summary.md"
# Greedy generation as a user runs it (the token picked on the GPU): the same text under every
# variant (their kernels are bit-equal), and its speed.
for m in "$m8" "$ms"; do
    for v in $variants; do
        if [ "$v" = "-" ]; then envs=(); else envs=("$v"); fi
        env ${envs[@]+"${envs[@]}"} "$bin" run -m "$m" -p "The capital of France is" -n 300 --temp 0 > "$work/run-$v.txt" 2> "$work/run-$v.log"
        grep -E "generated" "$work/run-$v.log" | sed "s/^/run $(basename "$m" .gguf) $v: /" | tee -a "$out/decode.md"
        cmp -s "$work/run-$v.txt" "$work/run--.txt" && echo "  same text as the defaults" || echo "  TEXT DIFFERS from the defaults"
    done
done
