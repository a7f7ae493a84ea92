"""Numpy building blocks of the reference forward pass, written for clarity, not speed.

Shapes: x [tokens, embedding]; q [tokens, heads, headDim]; k, v [tokens, kvHeads, headDim].
Reductions (RMSNorm, softmax) are done in float64 and cast back to the input's dtype.
Rope follows ggml: "normal" rotates adjacent pairs (x[2i], x[2i+1]) (llama, whose GGUF q/k rows
were permuted by the converter), "neox" rotates halves (x[i], x[i + nRot/2]) (qwen2, qwen3,
gemma3). theta_i = pos * freqScale * base^(-2i/nRot) / freqFactor[i] (freq factors: Llama 3's
`rope_freqs` tensor); dims past nRot are left alone.
"""

from __future__ import annotations

import numpy as np


def rms_norm(x: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
    """RMSNorm over the last axis; `weight` broadcasts over it (gemma weights already hold the +1)."""
    x64 = x.astype(np.float64)
    y = x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + eps)
    if weight is not None:
        y = y * weight.astype(np.float64)
    return y.astype(x.dtype)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x [tokens, in] @ weight[out, in].T (+ bias[out])."""
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    return y


def silu(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (x64 / (1.0 + np.exp(-x64))).astype(x.dtype)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    y = 0.5 * x64 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x64 + 0.044715 * x64 ** 3)))
    return y.astype(x.dtype)


def rope(x: np.ndarray, positions: np.ndarray, n_rot: int, base: float, neox: bool,
         freq_scale: float = 1.0, freq_factors: np.ndarray | None = None) -> np.ndarray:
    """Rotary embedding of x [tokens, heads, headDim] at `positions` [tokens]."""
    half = n_rot // 2
    inv_freq = base ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)
    if freq_factors is not None:
        inv_freq = inv_freq / freq_factors.astype(np.float64)[:half]
    theta = positions.astype(np.float64)[:, None] * freq_scale * inv_freq[None, :]  # [tokens, half]
    cos = np.cos(theta)[:, None, :]
    sin = np.sin(theta)[:, None, :]
    out = x.astype(np.float64).copy()
    if neox:
        a = out[..., :half].copy()
        b = out[..., half:n_rot].copy()
        out[..., :half] = a * cos - b * sin
        out[..., half:n_rot] = a * sin + b * cos
    else:
        a = out[..., 0:n_rot:2].copy()
        b = out[..., 1:n_rot:2].copy()
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    return out.astype(x.dtype)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, positions: np.ndarray, scale: float,
              window: int | None = None, softcap: float | None = None, round_probs=None) -> np.ndarray:
    """Causal grouped-query attention over one sequence.

    q [tokens, heads, headDim], k/v [tokens, kvHeads, headDim(v)] → [tokens, heads * headDimV].
    Query at position p sees keys at positions j <= p, and with a sliding window only p - j < window
    (ggml's LLAMA_SWA_TYPE_STANDARD).
    """
    n_tokens, n_head, _ = q.shape
    n_kv = k.shape[1]
    group = n_head // n_kv
    allowed = positions[None, :] <= positions[:, None]
    if window is not None:
        allowed &= (positions[:, None] - positions[None, :]) < window
    out = np.empty((n_tokens, n_head, v.shape[2]), dtype=np.float64)
    for h in range(n_head):
        kv = h // group
        scores = (q[:, h, :].astype(np.float64) @ k[:, kv, :].astype(np.float64).T) * scale
        if softcap:
            scores = np.tanh(scores / softcap) * softcap
        scores = np.where(allowed, scores, -np.inf)
        scores -= scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=-1, keepdims=True)
        if round_probs is not None:
            p = round_probs(p)
        out[:, h, :] = p @ v[:, kv, :].astype(np.float64)
    return out.reshape(n_tokens, -1).astype(q.dtype)
