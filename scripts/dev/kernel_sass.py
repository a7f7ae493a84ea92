#!/usr/bin/env python3
"""Compiles the CUDA kernel source (scripts/dev/nvrtc_kernels.py: KernelSource.all's raw strings, the NVRTC
that scripts/test.sh installs, no GPU needed) to a cubin and prints one kernel's SASS through nvdisasm, which it
fetches once from PyPI (nvidia-cuda-nvdisasm) into ~/.cache/swiftkt/nvdisasm. With --outline, only the loads,
stores, shuffles, integer dot products, branches, labels and the dependent-launch wait (ACQBULK) — enough to see
where a kernel's loads are issued relative to its arithmetic and its wait.
Usage: scripts/dev/kernel_sass.py KERNEL [ARCH] [--outline]; SWIFTKT_NVRTC_EXTRA="-DNAME …" adds options."""
import glob, os, re, subprocess, sys, tempfile, zipfile
sys.dont_write_bytecode = True  # (no __pycache__ in the tree)
sys.path.insert(0, os.path.dirname(__file__))
import nvrtc_kernels

args = [a for a in sys.argv[1:] if not a.startswith("--")]
if not args:
    sys.exit(__doc__)
kernel, arch, outline = args[0], (args[1] if len(args) > 1 else "sm_90"), "--outline" in sys.argv

ok, log, cubin = nvrtc_kernels.compile(arch)
if not ok:
    sys.exit(log)

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
    f.write(cubin); f.flush()
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
