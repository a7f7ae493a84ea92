"""Line up our traced tensors (SWIFTKT_TRACE=DIR) with llama.cpp's (dump_llamacpp_tensors.py).

  python3 scripts/peer/compare_traces.py DIR llamacpp.npz [--all]

For each tensor we traced, in order, prints the largest absolute difference, the largest relative
to the tensor's largest magnitude, and the share of bit-identical elements; stops listing after
the first few tensors that differ unless --all. llama.cpp names a tensor again after each view or
op on it (Qcur-0, Qcur-0#2 after the reshape, Qcur-0#3 after RoPE): the last one with the same
element count is used.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("trace_dir")
    ap.add_argument("npz")
    ap.add_argument("--all", action="store_true")
    args = ap.parse_args()
    ref = np.load(args.npz)
    keys = list(ref.keys())
    shown_diff = 0
    with open(os.path.join(args.trace_dir, "index.txt")) as f:
        entries = [line.split() for line in f if line.strip()]
    for name, rows, cols in entries:
        ours = np.fromfile(os.path.join(args.trace_dir, name + ".f32"), dtype=np.float32).reshape(int(rows), int(cols))
        base = name.split("#")[0]
        candidates = [k for k in keys if (k == base or k.startswith(base + "#")) and ref[k].size == ours.size]
        if not candidates:
            # llama.cpp computes only the rows it needs at the end (result_norm/result_output: last token).
            candidates = [k for k in keys if (k == base or k.startswith(base + "#")) and ours.size % ref[k].shape[-1] == 0
                          and ref[k].size < ours.size]
            if not candidates:
                print(f"{name:>16}  (no llama.cpp tensor)")
                continue
            theirs = ref[candidates[-1]].reshape(-1, ours.shape[1])
            ours = ours[-theirs.shape[0]:]
        else:
            theirs = ref[candidates[-1]].reshape(ours.shape)
        diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
        scale = max(float(np.abs(theirs).max()), 1e-30)
        same = float(np.mean(ours.view(np.uint32) == theirs.view(np.uint32)))
        flag = "" if same == 1.0 else "  <--"
        print(f"{name:>16}  max|Δ| {diff.max():.3e}  rel {diff.max() / scale:.2e}  identical {same * 100:6.2f}%{flag}")
        if same < 1.0:
            shown_diff += 1
            if shown_diff >= 6 and not args.all:
                print("… (more with --all)")
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
