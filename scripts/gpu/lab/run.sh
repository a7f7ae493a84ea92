#!/usr/bin/env bash
# Builds and runs the GEMV lab on the GPU machine: scripts/gpu/lab/run.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); out=${1:-/tmp/lab}; mkdir -p "$out"
work=$(mktemp -d)
sed -n '/static let text = #"""/,/^"""#/p' "$here/../../../Sources/CUDA/KernelSource.swift" | sed '1d;$d' > "$work/kernels.cuh"
nvcc -O3 -arch=sm_90 -std=c++17 --resource-usage -I"$work" -o "$work/lab" "$here/gemv_q4k.cu" 2> "$out/build.log" || { cat "$out/build.log"; exit 1; }
grep -E "Function properties|registers|spill" "$out/build.log" | grep -B1 -E "v[0-9]_|mmvq_q4_K\b" | head -40 || true
"$work/lab" | tee "$out/lab.md"
