# Sourced by the scripts/gpu check and bench scripts after they set bin, work and out (and
# steps, when they have numbered steps): the work and output folders, SWIFTKT_HOME inside the
# work folder unless set, `here` (this folder), elapsed time (`el`), `step N` (is step N asked
# for) and `synth FILE ARGS…` (a synthetic model, made once: kept only when complete).
mkdir -p "$work" "$out"
export SWIFTKT_HOME="${SWIFTKT_HOME:-$work/home}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s]"; }
step() { [[ " ${steps:-} " == *" $1 "* ]]; }
synth() { [ -f "$1" ] || ("$bin" synth "${@:2}" -o "$1.part" > /dev/null 2>&1 && mv "$1.part" "$1"); }
