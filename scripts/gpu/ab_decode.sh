#!/usr/bin/env bash
# On a GPU machine, one call: decode tokens/s of several binaries and switch settings on the
# Llama-3-8B shape Q4_K, alternating entry by entry within each round (machines differ by about
# 1 %, so only numbers of one call compare); then each entry's greedy text against the first's,
# and optionally one entry's step timeline (SWIFTKT_CUDA_TIMELINE).
# An entry is LABEL=BINARY, optionally followed by +NAME=VALUE environment assignments.
# Env: ROUNDS (3), N (decode lengths for bench -n, 128), OPS=BINARY (its `ops-check --perf`
#   first, to OUT/ops-check.md), TIMELINE=LABEL (that entry's timeline at step 64, to
#   OUT/timeline-LABEL.txt).
# Usage: scripts/gpu/ab_decode.sh WORK_DIR OUT_DIR ENTRY…
set -uo pipefail
work=$1; out=$2; shift 2
# entry → label, binary, environment assignments
parse() { label=${1%%=*}; local rest=${1#*=}; ebin=${rest%%+*}; envs=(DEFAULT=1)
    local tail=${rest#"$ebin"}; for a in ${tail//+/ }; do envs+=("$a"); done; }
# The parsed entry's greedy text, hashed.
greedy() { env "${envs[@]}" timeout 60 "$ebin" run -m "$m8" -p "The capital of France is" -n 48 --temp 0 2>/dev/null | md5sum; }
parse "$1"; bin=$ebin  # the first entry's binary makes the model
source "$(dirname "$0")/common.sh"
m8="$work/llama3-8b-q4_K.gguf"
(synth "$m8" --arch llama --shape llama3-8b --type q4_K --seed 1) &
if [ -n "${OPS:-}" ]; then
    timeout 300 "$OPS" ops-check --perf > "$out/ops-check.md" 2> "$out/ops-check.log"; echo "ops-check exit $? $(el)"
    grep -E "checks passed" "$out/ops-check.md"; grep -E "\| (fail|FAIL)" "$out/ops-check.md" | head
    grep -E "^perf (device copy|linear q4_K \(1|add \+ rms_norm)" "$out/ops-check.log" | head -12
fi
wait; echo "8B ready $(el)"
for round in $(seq 1 "${ROUNDS:-3}"); do
    for e in "$@"; do
        parse "$e"
        env "${envs[@]}" timeout 120 "$ebin" bench -m "$m8" -p 0 -n "${N:-128}" -r 2 2>/dev/null | grep -E "^\| llama" \
            | sed "s/^/round $round, $label: /" | tee -a "$out/ab.md"
    done
    echo "$(el)"
done
parse "$1"; base=$(greedy)
for e in "${@:2}"; do
    parse "$e"
    [ "$(greedy)" = "$base" ] \
        && echo "greedy text of $label: same as $1" || echo "greedy text of $label: DIFFERS from $1"
done
if [ -n "${TIMELINE:-}" ]; then
    for e in "$@"; do
        parse "$e"; [ "$label" = "$TIMELINE" ] || continue
        env "${envs[@]}" SWIFTKT_CUDA_TIMELINE=64 timeout 120 "$ebin" bench -m "$m8" -p 0 -n 128 -r 1 > /dev/null 2> "$out/timeline-$label.txt"
        grep -E "^(per kernel|sums|  [a-z_0-9]+ )" "$out/timeline-$label.txt" | head -30
    done
fi
echo "done $(el)"
