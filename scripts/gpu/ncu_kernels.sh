#!/usr/bin/env bash
# On a GPU machine: Nsight Compute's stall reasons and hottest SASS lines for chosen kernels of a
# decode run (graphs off, caches and clocks left alone so that small kernels read as they run).
# Writes OUT/NAME.ncu-rep, OUT/NAME-details.txt (launch, occupancy, warp-state sections) and
# OUT/NAME-raw.csv, OUT/NAME-sass.csv (per-instruction warp-stall samples), and prints the stall
# summary (summarize_ncu_stalls.py).
# Env: passed through (e.g. SWIFTKT_CUDA_ATTN_SCAN=0). N tokens (-n) default 128.
# Usage: scripts/gpu/ncu_kernels.sh SWIFTKT_BINARY MODEL OUT_DIR NAME KERNEL_REGEX LAUNCH_SKIP LAUNCH_COUNT
set -uo pipefail
bin=$1; model=$2; out=$3; name=$4; regex=$5; skip=$6; count=$7
mkdir -p "$out"
SWIFTKT_CUDA_GRAPHS=0 timeout 240 ncu --cache-control none --clock-control none \
    --section LaunchStats --section Occupancy --section WarpStateStats --section SchedulerStats \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section SourceCounters \
    -k "regex:$regex" --launch-skip "$skip" --launch-count "$count" -f -o "$out/$name" \
    "$bin" bench -m "$model" -p 0 -n "${N:-128}" -r 1 > "$out/$name.log" 2>&1
echo "ncu $name exit $?"
ncu -i "$out/$name.ncu-rep" --page details > "$out/$name-details.txt" 2>&1
ncu -i "$out/$name.ncu-rep" --page raw --csv > "$out/$name-raw.csv" 2>&1
ncu -i "$out/$name.ncu-rep" --page source --print-source sass --csv > "$out/$name-sass.csv" 2>&1
grep -E "^  [a-z_0-9]+|Duration|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|No Eligible|Issued Warp|DRAM Throughput" \
    "$out/$name-details.txt" | head -40
python3 "$(dirname "$0")/summarize_ncu_stalls.py" "$out/$name-raw.csv" "$out/$name-sass.csv" "${TOP:-25}"
