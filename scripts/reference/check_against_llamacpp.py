#!/usr/bin/env python3
"""Checks forward.py's graphs against llama.cpp (the `llama_cpp` Python package) exactly.

From a real llama-architecture GGUF (SmolLM2) it writes small all-F32 variants (first 4 layers)
that exercise each supported code path, runs both llama.cpp (F32 KV cache, no flash attention)
and forward.py on the same tokens, and prints the largest logit difference over all positions.
With F32 weights ggml does not quantize activations, so the two should agree to ~1e-4.

    python3 scripts/reference/check_against_llamacpp.py ~/.cache/swiftkt/models/smollm2-135m-instruct.gguf

Variants: llama (normal rope); llama + Llama 3 `rope_freqs` factors; llama + linear rope
scaling ×2; qwen2 (neox rope, random q/k/v biases); qwen3 (neox rope, random per-head q/k norms).
gemma3 is checked from its own file with dequantize_gguf.py (see README.md).
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import gguf
from gguf.quants import dequantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forward as F  # noqa: E402
from gguf_weights import GGUFWeights  # noqa: E402

LAYERS = 4
TOKENS = [504, 3575, 282, 4649, 314, 7042, 30, 198, 504, 1797]


def write_variant(reader: gguf.GGUFReader, dst: str, arch: str, extra_kv: dict, extra_tensors: dict) -> None:
    src_arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst, arch)
    for field in reader.fields.values():
        name = field.name
        if name == "general.architecture" or name.startswith("GGUF."):
            continue
        if name == "general.file_type":
            writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
            continue
        value = field.contents()
        if name.startswith(src_arch + "."):
            name = arch + name[len(src_arch):]
        if name == f"{arch}.block_count":
            value = LAYERS
        vtype = field.types[0]
        writer.add_key_value(name, value, vtype, sub_type=field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None)
    for key, (value, vtype) in extra_kv.items():
        writer.add_key_value(f"{arch}.{key}", value, vtype)
    for t in reader.tensors:
        if t.name.startswith("blk.") and int(t.name.split(".")[1]) >= LAYERS:
            continue
        data = dequantize(t.data, t.tensor_type).astype(np.float32)
        writer.add_tensor(t.name, data.reshape(tuple(int(d) for d in reversed(t.shape))))
    for name, array in extra_tensors.items():
        writer.add_tensor(name, array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llamacpp_logits(path: str, tokens: list[int]) -> np.ndarray:
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=64, n_threads=2, logits_all=True, verbose=False,
                type_k=0, type_v=0, flash_attn=False)  # GGML_TYPE_F32 KV cache
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    llm.close()
    return logits


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    reader = gguf.GGUFReader(sys.argv[1])
    arch = reader.fields["general.architecture"].contents()
    if arch != "llama":
        raise SystemExit(f"needs a llama-architecture GGUF, got {arch}")
    n_embd = int(reader.fields["llama.embedding_length"].contents())
    n_head = int(reader.fields["llama.attention.head_count"].contents())
    n_kv = int(reader.fields["llama.attention.head_count_kv"].contents())
    hd = n_embd // n_head
    rng = np.random.default_rng(0)
    U32, F32, STR = gguf.GGUFValueType.UINT32, gguf.GGUFValueType.FLOAT32, gguf.GGUFValueType.STRING

    def per_layer(fn):
        return {f"blk.{i}.{name}": arr for i in range(LAYERS) for name, arr in fn().items()}

    variants = {
        "llama": ("llama", {}, {}),
        "llama+rope_freqs": ("llama", {}, {"rope_freqs.weight": np.linspace(1.0, 8.0, hd // 2)}),
        "llama+linear x2": ("llama", {"rope.scaling.type": ("linear", STR), "rope.scaling.factor": (2.0, F32)}, {}),
        "qwen2": ("qwen2", {}, per_layer(lambda: {
            "attn_q.bias": rng.normal(0, 0.5, n_embd), "attn_k.bias": rng.normal(0, 0.5, n_kv * hd),
            "attn_v.bias": rng.normal(0, 0.5, n_kv * hd)})),
        "qwen3": ("qwen3", {"attention.key_length": (hd, U32), "attention.value_length": (hd, U32)}, per_layer(lambda: {
            "attn_q_norm.weight": 1 + rng.normal(0, 0.3, hd), "attn_k_norm.weight": 1 + rng.normal(0, 0.3, hd)})),
    }
    failed = False
    baseline = None
    with tempfile.TemporaryDirectory() as tmp:
        for label, (variant_arch, kv, tensors) in variants.items():
            path = os.path.join(tmp, label.replace(" ", "_").replace("+", "_") + ".gguf")
            write_variant(reader, path, variant_arch, kv, tensors)
            expected = llamacpp_logits(path, TOKENS)
            w = GGUFWeights(path)
            ours = F.forward(w, F.Config.read(w), TOKENS)
            diff = float(np.abs(ours - expected).max())
            # A variant must change the output, or it exercised nothing.
            effect = float(np.abs(ours - baseline).max()) if baseline is not None else float("inf")
            baseline = ours if baseline is None else baseline
            ok = diff < 1e-3 and effect > 0.1
            failed |= not ok
            print(f"{label:<18} max |logit diff| over {len(TOKENS)} positions: {diff:.2e} "
                  f"(change vs plain llama {effect:.2f}) {'ok' if ok else 'FAIL'}")
            os.remove(path)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
