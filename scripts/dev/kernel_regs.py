#!/usr/bin/env python3
"""Compiles the CUDA kernel source (the raw strings of Sources/CUDA/KernelSource*.swift, in
KernelSource.all's order) with the NVRTC that scripts/test.sh installs, no GPU needed, and prints
ptxas' registers / shared memory / spills per kernel. Usage: scripts/dev/kernel_regs.py [ARCH] [NAME-FILTER]; SWIFTKT_NVRTC_EXTRA="-DNAME …" adds options."""
import ctypes, os, re, sys
root = os.path.join(os.path.dirname(__file__), "..", "..", "Sources", "CUDA")
parts = []
for name, file in [("text", "KernelSource.swift"), ("sampling", "KernelSource+Sampling.swift"), ("marlin", "KernelSource+Marlin.swift"),
                   ("experts", "KernelSource+Experts.swift"), ("decode", "KernelSource+Decode.swift"), ("mla", "KernelSource+MLA.swift")]:
    src = open(os.path.join(root, file)).read()
    m = re.search(r'static let %s = #"""\n(.*?)\n\s*"""#' % name, src, re.S)
    parts.append(m.group(1) + "\n")
source = "".join(parts).encode()
lib = os.environ.get("SWIFTKT_NVRTC") or os.path.expanduser("~/.cache/swiftkt/nvrtc/nvidia/cu13/lib/libnvrtc.so.13")
nv = ctypes.CDLL(lib)
arch = sys.argv[1] if len(sys.argv) > 1 else "sm_90"
flt = sys.argv[2] if len(sys.argv) > 2 else ""
prog = ctypes.c_void_p()
assert nv.nvrtcCreateProgram(ctypes.byref(prog), source, b"swiftkt-ops.cu", 0, None, None) == 0
opts = [b"--gpu-architecture=" + arch.encode(), b"-default-device", b"-std=c++17", b"-lineinfo", b"--ptxas-options=-v"] + [o.encode() for o in os.environ.get("SWIFTKT_NVRTC_EXTRA", "").split()]
arr = (ctypes.c_char_p * len(opts))(*opts)
rc = nv.nvrtcCompileProgram(prog, len(opts), arr)
size = ctypes.c_size_t()
nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
log = ctypes.create_string_buffer(size.value)
nv.nvrtcGetProgramLog(prog, log)
text = log.value.decode(errors="replace")
if rc != 0:
    print(text); sys.exit(1)
name = None
for line in text.splitlines():
    m = re.search(r"Compiling entry function '(\w+)'", line)
    if m: name = m.group(1); continue
    m = re.search(r"Used (\d+) registers.*", line)
    if m and name and flt in name: print(f"{name:40s} {line.split('ptxas info    :')[-1].strip()}")
    if "spill" in line and name and flt in name and not line.strip().endswith("0 bytes spill loads"):
        if " 0 bytes spill stores, 0 bytes spill loads" not in line: print(f"{name:40s} {line.strip()}")
