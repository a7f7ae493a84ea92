#!/usr/bin/env python3
"""Compiles the CUDA kernel source (the raw strings of Sources/CUDA/KernelSource*.swift, in
KernelSource.all's order) with the NVRTC that scripts/test.sh installs, no GPU needed, and prints
ptxas' registers / shared memory / spills per kernel. Usage: scripts/dev/kernel_regs.py [ARCH] [NAME-FILTER]; SWIFTKT_NVRTC_EXTRA="-DNAME …" adds options."""
import os, re, sys
sys.dont_write_bytecode = True  # (no __pycache__ in the tree)
sys.path.insert(0, os.path.dirname(__file__))
import nvrtc_kernels
arch = sys.argv[1] if len(sys.argv) > 1 else "sm_90"
flt = sys.argv[2] if len(sys.argv) > 2 else ""
ok, text, _ = nvrtc_kernels.compile(arch, ["--ptxas-options=-v"])
if not ok:
    print(text); sys.exit(1)
name = None
for line in text.splitlines():
    m = re.search(r"Compiling entry function '(\w+)'", line)
    if m: name = m.group(1); continue
    m = re.search(r"Used (\d+) registers.*", line)
    if m and name and flt in name: print(f"{name:40s} {line.split('ptxas info    :')[-1].strip()}")
    if "spill" in line and name and flt in name and not line.strip().endswith("0 bytes spill loads"):
        if " 0 bytes spill stores, 0 bytes spill loads" not in line: print(f"{name:40s} {line.strip()}")
