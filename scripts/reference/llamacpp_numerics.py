"""Optional emulation of llama.cpp's CPU numerics (`forward.py --emulate-llamacpp`).

Not part of the reference proper: it exists to show that the reference's remaining distance to
llama.cpp's goldens comes from llama.cpp rounding activations, not from a wrong graph. ggml
converts the activation operand of each matmul to the weight type's `vec_dot_type` before the dot
product (ggml-cpu type_traits): Q4_0/Q5_0/Q8_0 weights → Q8_0 activations (blocks of 32, one fp16
scale amax/127), Q4_1/Q5_1 → Q8_1 (same values, plus a block sum), k-quants → Q8_K (blocks of
256, float scale max/-127 taken from the signed value of largest magnitude), F16 → F16. The KV
cache is F16, and attention converts q and the probabilities to F16 for its two matmuls.
Each function returns the dequantized float32 values the integer dot product effectively sees.
"""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T


def _round_away(x: np.ndarray) -> np.ndarray:
    """C roundf: halves away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def q8_0(x: np.ndarray) -> np.ndarray:
    shape = x.shape
    b = x.astype(np.float32).reshape(-1, 32)
    amax = np.abs(b).max(axis=1, keepdims=True)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0.0).astype(np.float32)
    q = _round_away(b * inv)
    d16 = d.astype(np.float16).astype(np.float32)
    return (q * d16).reshape(shape)


def q8_k(x: np.ndarray) -> np.ndarray:
    shape = x.shape
    b = x.astype(np.float32).reshape(-1, 256)
    idx = np.abs(b).argmax(axis=1)
    mx = b[np.arange(b.shape[0]), idx][:, None]
    safe = np.where(mx != 0, mx, 1)
    iscale = np.where(mx != 0, -127.0 / safe, 0.0).astype(np.float32)
    q = np.minimum(127, _round_away(iscale * b))
    d = np.where(iscale != 0, 1.0 / np.where(iscale != 0, iscale, 1), 0.0).astype(np.float32)
    return (q * d).reshape(shape)


def f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


_Q8_0_TYPES = {T.Q4_0, T.Q5_0, T.Q8_0, T.Q4_1, T.Q5_1}  # Q8_1 rounds values like Q8_0
_Q8_K_TYPES = {T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K}


def activations_for(weight_type, x: np.ndarray) -> np.ndarray:
    """x as the dot product with a `weight_type` weight sees it."""
    if weight_type in _Q8_0_TYPES:
        return q8_0(x)
    if weight_type in _Q8_K_TYPES:
        return q8_k(x)
    if weight_type in (T.F16, T.BF16):
        return f16(x)
    if weight_type == T.F32:
        return x
    raise NotImplementedError(f"no activation emulation for {weight_type.name}")
