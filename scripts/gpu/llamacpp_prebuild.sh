#!/usr/bin/env bash
# Builds llama.cpp's llama-bench with CUDA on a machine WITHOUT a GPU or CUDA toolkit (the 2-core
# development box), so that a GPU call carries it instead of spending ~5 minutes of device time
# on the build: the CUDA 13.0 compiler, headers and libraries come from PyPI wheels
# (nvidia-cuda-nvcc, -nvvm, -crt, -runtime, -cccl, nvidia-cublas), the driver library is a stub
# made from cuda.h's names (the GPU machine's libcuda.so.1 is used at run time), the CPU backend
# is compiled for the GPU machine's host (-march=sapphirerapids: AVX-512, VNNI, AMX), the GPU code
# for sm_90. About 40 minutes on 2 cores. Output: OUT_TAR (bin/llama-bench and its libraries,
# stripped, ~42 MB as .tar.xz); on the GPU machine unpack it and run with
#   LD_LIBRARY_PATH=DIR/bin:/usr/local/cuda/lib64 DIR/bin/llama-bench ...
# (libcudart.so.13 and libcublas.so.13 come from the GPU machine's CUDA 13 install).
# Built once in session 9 (llama.cpp 0.25.3 tree); no GPU machine was lent after the build, so it
# has not yet run there: if it fails to load, fall back to scripts/gpu/llamacpp_cuda.sh.
# Usage: scripts/gpu/llamacpp_prebuild.sh LLAMA_CPP_SOURCE_TAR_XZ WORK_DIR OUT_TAR
set -euo pipefail
src=$1; work=$2; out=$3
mkdir -p "$work/wheels" "$work/cuda"
cuda="$work/cuda/nvidia/cu13"
if [ ! -x "$cuda/bin/nvcc" ]; then
    (cd "$work/wheels" && pip download --no-deps "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" "nvidia-cuda-crt==13.0.88" \
        "nvidia-cuda-runtime==13.0.96" "nvidia-cublas==13.0.2.14" "nvidia-cuda-cccl==13.0.85")
    for w in "$work"/wheels/*.whl; do unzip -q -o "$w" -d "$work/cuda"; done
    (cd "$cuda/lib" && for l in libcudart libcublas libcublasLt; do ln -sf $l.so.13 $l.so; done)
    ln -sfn lib "$cuda/lib64"
    # A stub driver library for linking only: every cu* name in cuda.h as an empty function.
    mkdir -p "$cuda/lib/stubs"
    grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$cuda/include/cuda.h" | sort -u | sed 's/.*/void &(void){}/' > "$work/cudastub.c"
    gcc -shared -fPIC -o "$cuda/lib/stubs/libcuda.so" -Wl,-soname,libcuda.so.1 "$work/cudastub.c"
    ln -sf libcuda.so "$cuda/lib/stubs/libcuda.so.1"
fi
export PATH="$cuda/bin:$PATH" LD_LIBRARY_PATH="$cuda/lib:$cuda/lib/stubs"
[ -d "$work/llama.cpp" ] || tar -xJf "$src" -C "$work"
cd "$work/llama.cpp"
cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCUDAToolkit_ROOT="$cuda" -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" \
    -DGGML_NATIVE=OFF -DCMAKE_C_FLAGS="-march=sapphirerapids" -DCMAKE_CXX_FLAGS="-march=sapphirerapids" \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF \
    -DCMAKE_BUILD_TYPE=Release > "$work/cmake.log"
cmake --build build --target llama-bench -j"$(nproc)" > "$work/build.log" 2>&1 || { tail -20 "$work/build.log"; exit 1; }
rm -rf "$work/pkg" && mkdir -p "$work/pkg/bin" && cp -a build/bin/* "$work/pkg/bin/"
strip --strip-unneeded "$work/pkg/bin/"*.so.* "$work/pkg/bin/llama-bench"
tar -cJf "$out" -C "$work/pkg" bin
ls -la "$out"
