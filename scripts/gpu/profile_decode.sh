#!/usr/bin/env bash
# On a GPU machine: where a decode step's GPU time goes. Runs a short greedy generation under
# Nsight Compute (graphs off, so that every kernel is its own launch; their durations are the
# same), skips the load and the prompt, and sums kernel durations per token by kernel name.
# Usage: scripts/gpu/profile_decode.sh SWIFTKT_BINARY MODEL OUT_DIR [SKIP] [COUNT]
set -uo pipefail
bin=$1; model=$2; out=$3; skip=${4:-3000}; count=${5:-2000}
mkdir -p "$out"
SWIFTKT_CUDA_GRAPHS=0 ncu --metrics gpu__time_duration.sum --csv --launch-skip "$skip" --launch-count "$count" \
    "$bin" run -m "$model" -p "The capital of France is" -n 64 --temp 0 > "$out/ncu.csv" 2> "$out/ncu.log"
echo "ncu exit $?"
python3 "$(dirname "$0")/summarize_ncu.py" "$out/ncu.csv"
