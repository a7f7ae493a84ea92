#!/usr/bin/env python3
"""Compiles the CUDA kernel source (as scripts/dev/kernel_regs.py does: KernelSource.all's raw strings, the NVRTC
that scripts/test.sh installs, no GPU needed) to a cubin and prints one kernel's SASS through nvdisasm, which it
fetches once from PyPI (nvidia-cuda-nvdisasm) into ~/.cache/swiftkt/nvdisasm. With --outline, only the loads,
stores, shuffles, integer dot products, branches, labels and the dependent-launch wait (ACQBULK) — enough to see
where a kernel's loads are issued relative to its arithmetic and its wait.
Usage: scripts/dev/kernel_sass.py KERNEL [ARCH] [--outline]; SWIFTKT_NVRTC_EXTRA="-DNAME …" adds options."""
import ctypes, glob, os, re, subprocess, sys, tempfile, zipfile

args = [a for a in sys.argv[1:] if not a.startswith("--")]
if not args:
    sys.exit(__doc__)
kernel, arch, outline = args[0], (args[1] if len(args) > 1 else "sm_90"), "--outline" in sys.argv

root = os.path.join(os.path.dirname(__file__), "..", "..", "Sources", "CUDA")
parts = []
for name, file in [("text", "KernelSource.swift"), ("sampling", "KernelSource+Sampling.swift"), ("marlin", "KernelSource+Marlin.swift"),
                   ("experts", "KernelSource+Experts.swift"), ("decode", "KernelSource+Decode.swift"), ("mla", "KernelSource+MLA.swift")]:
    src = open(os.path.join(root, file)).read()
    parts.append(re.search(r'static let %s = #"""\n(.*?)\n\s*"""#' % name, src, re.S).group(1) + "\n")
lib = os.environ.get("SWIFTKT_NVRTC") or os.path.expanduser("~/.cache/swiftkt/nvrtc/nvidia/cu13/lib/libnvrtc.so.13")
nv = ctypes.CDLL(lib)
prog = ctypes.c_void_p()
assert nv.nvrtcCreateProgram(ctypes.byref(prog), "".join(parts).encode(), b"swiftkt-ops.cu", 0, None, None) == 0
opts = [b"--gpu-architecture=" + arch.encode(), b"-default-device", b"-std=c++17", b"-lineinfo"] \
    + [o.encode() for o in os.environ.get("SWIFTKT_NVRTC_EXTRA", "").split()]
if nv.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts)) != 0:
    size = ctypes.c_size_t(); nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value); nv.nvrtcGetProgramLog(prog, log)
    sys.exit(log.value.decode(errors="replace"))
size = ctypes.c_size_t(); nv.nvrtcGetCUBINSize(prog, ctypes.byref(size))
cubin = ctypes.create_string_buffer(size.value); nv.nvrtcGetCUBIN(prog, cubin)

cache = os.path.expanduser("~/.cache/swiftkt/nvdisasm")
tool = glob.glob(os.path.join(cache, "**", "bin", "nvdisasm"), recursive=True)
if not tool:
    os.makedirs(cache, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", cache, "nvidia-cuda-nvdisasm"], check=True)
    for wheel in glob.glob(os.path.join(cache, "*.whl")):
        zipfile.ZipFile(wheel).extractall(cache)
    tool = glob.glob(os.path.join(cache, "**", "bin", "nvdisasm"), recursive=True)
    os.chmod(tool[0], 0o755)
with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
    f.write(cubin.raw); f.flush()
    sass = subprocess.run([tool[0], "-c", f.name], capture_output=True, text=True)
if sass.returncode != 0:
    sys.exit(f"nvdisasm failed: {sass.stderr.strip()}")
# The kernel's section: from its header to the next one.
m = re.search(r"//-+ \.text\.%s\s+-+\n(.*?)(?=//-+ \.text\.|\Z)" % re.escape(kernel), sass.stdout, re.S)
if not m:
    sys.exit(f"no kernel {kernel} in the {arch} cubin")
keep = ("LDG", "LDS", "STG", "STS", "SHFL", "IDP", "BRA", "EXIT", "ACQBULK", "PREEXIT", "BAR", "MUFU")
for line in m.group(1).splitlines():
    if not outline or line.strip().startswith(".L") or any(k in line for k in keep):
        print(line)
