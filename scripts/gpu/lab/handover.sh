#!/usr/bin/env bash
# Builds and runs the hand-over lab (handover.cu) on the GPU machine: scripts/gpu/lab/handover.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); out=${1:-/tmp/lab}; mkdir -p "$out"
work=$(mktemp -d)
nvcc -O3 -arch=sm_90 -std=c++17 -o "$work/handover" "$here/handover.cu" 2> "$out/handover-build.log" || { cat "$out/handover-build.log"; exit 1; }
timeout 300 "$work/handover" | tee "$out/handover.md"
