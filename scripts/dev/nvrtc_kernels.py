"""The CUDA kernel source as KernelSource.all assembles it (the raw strings of Sources/CUDA/KernelSource*.swift,
in that order), compiled with the NVRTC that scripts/test.sh installs (SWIFTKT_NVRTC overrides; no GPU needed).
Shared by scripts/dev/kernel_regs.py and kernel_sass.py. SWIFTKT_NVRTC_EXTRA="-DNAME …" adds options."""
import ctypes, os, re

_ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "Sources", "CUDA")
_PARTS = [("text", "KernelSource.swift"), ("sampling", "KernelSource+Sampling.swift"), ("marlin", "KernelSource+Marlin.swift"),
          ("experts", "KernelSource+Experts.swift"), ("decode", "KernelSource+Decode.swift"), ("mla", "KernelSource+MLA.swift")]


def source():
    parts = []
    for name, file in _PARTS:
        src = open(os.path.join(_ROOT, file)).read()
        parts.append(re.search(r'static let %s = #"""\n(.*?)\n\s*"""#' % name, src, re.S).group(1) + "\n")
    return "".join(parts).encode()


def compile(arch, options=()):
    """(ok, log, cubin or None) for `arch` with -default-device -std=c++17 -lineinfo, `options` and SWIFTKT_NVRTC_EXTRA."""
    lib = os.environ.get("SWIFTKT_NVRTC") or os.path.expanduser("~/.cache/swiftkt/nvrtc/nvidia/cu13/lib/libnvrtc.so.13")
    nv = ctypes.CDLL(lib)
    prog = ctypes.c_void_p()
    assert nv.nvrtcCreateProgram(ctypes.byref(prog), source(), b"swiftkt-ops.cu", 0, None, None) == 0
    opts = [b"--gpu-architecture=" + arch.encode(), b"-default-device", b"-std=c++17", b"-lineinfo"] \
        + [o.encode() for o in options] + [o.encode() for o in os.environ.get("SWIFTKT_NVRTC_EXTRA", "").split()]
    ok = nv.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts)) == 0
    size = ctypes.c_size_t()
    nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nv.nvrtcGetProgramLog(prog, log)
    cubin = None
    if ok:
        nv.nvrtcGetCUBINSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        nv.nvrtcGetCUBIN(prog, buf)
        cubin = buf.raw
    return ok, log.value.decode(errors="replace"), cubin
