#!/usr/bin/env bash
# On the GPU machine, one call (~5 min): the decode hand-over measurements of sessions 19–20.
#   1. the hand-over lab (lab/handover.sh: PDL wait against a flag, nvcc-built), while the
#      Llama-3-8B-shaped Q4_K file is generated;
#   2. the counted hand-over in the engine (SWIFTKT_CUDA_HANDOVER=1: the GEMVs wait on the
#      counter; =2: the small kernels too): its fallback count (standard error; 0 means every
#      target was right) and greedy text next to the default's;
#   3. ab_decode.sh, two rounds alternating: defaults, evict-first weight loads
#      (-DSWIFTKT_W_EVICT_FIRST), the two hand-over modes, mode 2 with evict-first;
#      then mode 2's step timeline.
# Usage: scripts/gpu/check_handover.sh SWIFTKT_BINARY WORK_DIR OUT_DIR
set -uo pipefail
bin=$1; work=$2; out=$3
source "$(dirname "$0")/common.sh"
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem,driver_version --format=csv,noheader
m8="$work/llama3-8b-q4_K.gguf"
(synth "$m8" --arch llama --shape llama3-8b --type q4_K --seed 1) &
timeout 90 bash "$here/lab/handover.sh" "$out" 2>&1 | tail -40; echo "lab $(el)"
wait; echo "8B ready $(el)"
p="The capital of France is"
timeout 90 "$bin" run -m "$m8" -p "$p" -n 24 --temp 0 2>/dev/null | tail -1
for mode in 1 2; do
    SWIFTKT_CUDA_HANDOVER=$mode timeout 90 "$bin" run -m "$m8" -p "$p" -n 24 --temp 0 > "$work/run.txt" 2> "$work/run.err"
    echo "exit $?: $(tail -1 "$work/run.txt")"; grep -E "hand-over|rror" "$work/run.err"
    SWIFTKT_CUDA_HANDOVER=$mode timeout 90 "$bin" bench -m "$m8" -p 0 -n 128 -r 1 2>&1 | grep -E "hand-over|^\| llama"
done
echo "hand-over checked $(el)"
ROUNDS=2 N=128 TIMELINE=h2 timeout 300 bash "$here/ab_decode.sh" "$work" "$out" d="$bin" ef="$bin+SWIFTKT_NVRTC_EXTRA=-DSWIFTKT_W_EVICT_FIRST" \
    h1="$bin+SWIFTKT_CUDA_HANDOVER=1" h2="$bin+SWIFTKT_CUDA_HANDOVER=2" \
    efh2="$bin+SWIFTKT_CUDA_HANDOVER=2+SWIFTKT_NVRTC_EXTRA=-DSWIFTKT_W_EVICT_FIRST"
echo "done $(el)"
