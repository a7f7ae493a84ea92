#!/usr/bin/env bash
# The whole test suite, from a fresh machine: Python test dependencies, a release build with
# testability, the two real models (pulled into $SWIFTKT_HOME if missing), then `swift test`.
# Whole-model tests need optimized code, so everything runs in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== python test dependencies"
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

echo "== NVRTC (PyPI wheel) so that the CUDA kernel sources are compiled in the tests, GPU or not"
nvrtc_dir="${SWIFTKT_HOME:-$HOME/.cache/swiftkt}/nvrtc"
if [ ! -f "$nvrtc_dir/nvidia/cu13/lib/libnvrtc.so.13" ]; then
    mkdir -p "$nvrtc_dir"
    if python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$nvrtc_dir" nvidia-cuda-nvrtc==13.5.37 \
        && (cd "$nvrtc_dir" && python3 -m zipfile -e nvidia_cuda_nvrtc-13.5.37-*.whl . && rm -f nvidia_cuda_nvrtc-*.whl); then
        echo "NVRTC 13.5 in $nvrtc_dir"
    else
        echo "warning: could not fetch NVRTC from PyPI; the kernel compile tests will be skipped"
    fi
fi
if [ -f "$nvrtc_dir/nvidia/cu13/lib/libnvrtc.so.13" ]; then export SWIFTKT_NVRTC="$nvrtc_dir/nvidia/cu13/lib/libnvrtc.so.13"; fi

echo "== build (release, testable)"
swift build -c release -Xswiftc -enable-testing --product swiftkt

echo "== real models"
.build/release/swiftkt pull smollm2-135m-instruct gemma3-270m

echo "== tests"
# The GGUF header fuzz runs 1,400 cases per unit of scale; release builds afford 4,200.
export SWIFTKT_FUZZ_CASES="${SWIFTKT_FUZZ_CASES:-3}"
log=$(mktemp)
set +e
swift test -c release -Xswiftc -enable-testing --disable-swift-testing "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One plain closing line for tools: "N passed, M failed" from XCTest's final summary.
summary=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -n 1)
total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
failed=$(echo "$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
rm -f "$log"
if [ -n "$summary" ]; then echo "$((total - failed)) passed, $failed failed"; fi
exit "$status"
