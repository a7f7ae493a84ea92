#!/usr/bin/env python3
"""Reference quant conversions for SwiftKT's Core tests, computed with gguf-py (`gguf.quants`).

gguf-py's quants.py is the bit-exact reference for GGUF block dequantization (and for the legacy
quantizers Q4_0 … Q8_0, F16 and BF16). The Swift tests (Tests/CoreTests/QuantReferenceTests.swift)
write raw inputs to a temporary folder plus a manifest, run this script, and compare bit patterns.

Usage:  python3 scripts/quant_reference.py MANIFEST
Each manifest line is:  OP TYPE INPUT OUTPUT
  OP      dequantize: INPUT holds raw blocks of TYPE, OUTPUT receives little-endian f32 values
          quantize:   INPUT holds little-endian f32 values, OUTPUT receives raw blocks of TYPE
  TYPE    a ggml type name as GGMLQuantizationType spells it (F16, BF16, Q4_0, Q4_K, IQ4_XS, …)
Set-up:   pip install gguf==0.19.0   (exit status 3 when gguf or numpy cannot be imported)
"""
import sys

EXPECTED_GGUF = "0.19.0"


def main() -> int:
    try:
        import numpy as np
        import gguf
        from gguf import quants
    except ImportError as e:
        print(f"quant_reference.py: cannot import gguf/numpy ({e}); run the set-up: pip install gguf=={EXPECTED_GGUF}",
              file=sys.stderr)
        return 3
    try:
        from importlib.metadata import version
        found = version("gguf")
        if found != EXPECTED_GGUF:
            print(f"quant_reference.py: warning: gguf {found} installed, tests were written against {EXPECTED_GGUF}",
                  file=sys.stderr)
    except Exception:
        pass

    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        jobs = [line.split() for line in f if line.strip()]
    for job in jobs:
        if len(job) != 4:
            print(f"quant_reference.py: bad manifest line {job}", file=sys.stderr)
            return 2
        op, name, src, dst = job
        qtype = gguf.GGMLQuantizationType[name]
        with np.errstate(all="ignore"):
            if op == "dequantize":
                data = np.fromfile(src, dtype=np.uint8)
                out = np.asarray(quants.dequantize(data, qtype), dtype=np.float32)
            elif op == "quantize":
                data = np.fromfile(src, dtype="<f4")
                out = np.asarray(quants.quantize(data, qtype))
            else:
                print(f"quant_reference.py: unknown op {op}", file=sys.stderr)
                return 2
        np.ascontiguousarray(out).tofile(dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
