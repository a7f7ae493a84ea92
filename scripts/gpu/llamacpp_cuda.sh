#!/usr/bin/env bash
# Builds llama.cpp's llama-bench with CUDA on the GPU machine (source: the llama.cpp tree inside
# the llama-cpp-python sdist, trimmed of docs/models/other backends, as a .tar.xz) and, given
# models, runs it on each: -ngl 99, pp512 and tg128, JSON.
# Usage: scripts/gpu/llamacpp_cuda.sh SOURCE_TAR_XZ BUILD_DIR OUT_DIR [MODEL...]
set -uo pipefail
src=$1; dir=$2; out=$3; shift 3
export PATH=/usr/local/cuda/bin:$PATH
mkdir -p "$dir" "$out"
bench="$dir/llama.cpp/build/bin/llama-bench"
if [ ! -x "$bench" ]; then
    tar -xJf "$src" -C "$dir" || exit 1
    (cd "$dir/llama.cpp" && cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release > "$out/llamacpp-cmake.log" 2>&1 \
        && cmake --build build --target llama-bench -j"$(nproc)" > "$out/llamacpp-build.log" 2>&1)
    echo "llama.cpp build exit $?"
fi
for m in "$@"; do
    name=$(basename "$m" .gguf)
    "$bench" -m "$m" -ngl 99 -p 512 -n 128 -r 3 -o json > "$out/llamacpp-$name.json" 2> "$out/llamacpp-$name.log"
    echo "llama.cpp CUDA on $name (exit $?):"; grep -E '"(n_prompt|n_gen|avg_ts)"' "$out/llamacpp-$name.json" | tr -d ' \n'; echo
done
