#!/usr/bin/env bash
# The whole test suite, from a fresh machine: Python test dependencies, a release build with
# testability, the two real models (pulled into $SWIFTKT_HOME if missing), then `swift test`.
# Whole-model tests need optimized code, so everything runs in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== python test dependencies"
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

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
