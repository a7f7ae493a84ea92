#!/usr/bin/env python3
"""Independent numpy reference forward pass for GGUF models (llama, qwen2, qwen3, gemma3, and the
mixture-of-experts ones: llama files with experts (Mixtral), qwen2moe, qwen3moe, and deepseek2
(DeepSeek-V2/V3: multi-head latent attention, grouped sigmoid/softmax routing, shared experts)).

Computes the logits of every position of one token sequence (positions 0…n-1, no cache), with
weights dequantized once by the `gguf` package and activations in float32 (or float64 with
`--dtype float64`). It shares no code with SwiftKT and follows llama.cpp's graph for each
architecture (llama-model.cpp), so its numbers are the ones a correct engine should approach;
llama.cpp itself quantizes activations to 8 bits, so expect differences of a few hundredths.

    python3 scripts/reference/forward.py MODEL.gguf --tokens 1,2,3 --out logits.npy --top 5
    python3 scripts/reference/forward.py MODEL.gguf --golden /work/shared/reference/smollm2_p1_raw.txt

Shapes: x [tokens, embedding]; weights as numpy [out, in] (see gguf_weights.py).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_weights import GGUFWeights  # noqa: E402
import llamacpp_numerics as emu  # noqa: E402
from ops import attention, gelu_tanh, linear, rms_norm, rope, silu  # noqa: E402

SUPPORTED = ("llama", "qwen2", "qwen3", "gemma3", "qwen2moe", "qwen3moe", "deepseek2")


# MARK: - Hyperparameters

@dataclass
class DeepSeek:
    """deepseek2: MLA and routing settings (llama.cpp's deepseek2.cpp, llama-context.cpp)."""
    q_lora: int
    kv_lora: int
    qk_nope: int
    qk_rope: int
    v_dim: int
    split_kv: bool
    leading_dense: int
    gating: int              # 1 softmax, 2 sigmoid
    groups: int
    groups_used: int
    freq_scale: float
    ext_factor: float
    attn_factor: float       # the rope's mscale argument
    n_ctx_orig: int
    kq_scale: float

    @staticmethod
    def read(w: GGUFWeights, rope_base: float, n_rot: int) -> "DeepSeek":
        k_mla = int(w.hp("attention.key_length_mla", 0) or 0)
        v_mla = int(w.hp("attention.value_length_mla", 0) or 0)
        split = k_mla > 0 and v_mla > 0
        k_dim = k_mla if split else int(w.require("attention.key_length"))
        v_dim = v_mla if split else int(w.require("attention.value_length"))
        scaling = w.hp("rope.scaling.type", "linear")
        factor = float(w.hp("rope.scaling.factor", 0.0) or 0.0)
        freq_scale = 1.0 if (factor == 0.0 or scaling == "none") else 1.0 / factor
        ext = 1.0 if scaling == "yarn" else 0.0
        log_mul = float(w.hp("rope.scaling.yarn_log_multiplier", 0.0) or 0.0) / 0.1
        attn_factor = 1.0
        if ext != 0.0:
            def mscale(scale: float, m: float) -> float:
                return 1.0 if scale <= 1.0 else 0.1 * m * math.log(scale) + 1.0
            f = 1.0 / freq_scale
            attn_factor = (mscale(f, log_mul) / mscale(f, log_mul)) if log_mul != 0.0 else mscale(f, 1.0)
            attn_factor /= 1.0 + 0.1 * math.log(f)
        attn_factor *= float(w.hp("rope.scaling.attn_factor", 1.0) or 1.0)
        # DeepSeek's YaRN magnitude correction goes into the softmax scale.
        org = attn_factor * (1.0 + 0.1 * math.log(1.0 / freq_scale))
        m = org * (1.0 + 0.1 * log_mul * math.log(1.0 / freq_scale))
        return DeepSeek(
            q_lora=int(w.hp("attention.q_lora_rank", 0) or 0), kv_lora=int(w.require("attention.kv_lora_rank")),
            qk_nope=k_dim - n_rot, qk_rope=n_rot, v_dim=v_dim, split_kv=split,
            leading_dense=int(w.hp("leading_dense_block_count", 0) or 0),
            gating=int(w.hp("expert_gating_func", 1) or 1),
            groups=int(w.hp("expert_group_count", 0) or 0), groups_used=int(w.hp("expert_group_used_count", 0) or 0),
            freq_scale=freq_scale, ext_factor=ext, attn_factor=attn_factor,
            n_ctx_orig=int(w.hp("rope.scaling.original_context_length", w.hp("context_length", 2048))),
            kq_scale=m * m / math.sqrt(k_dim))



@dataclass
class Config:
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int        # key/query head size
    head_dim_v: int
    n_rot: int
    eps: float
    rope_base: float
    rope_base_local: float
    freq_scale: float
    neox: bool
    attn_scale: float
    sliding_window: int | None
    swa_layers: list[bool]   # True: this layer uses the sliding window (and the local rope base)
    final_softcap: float | None
    attn_softcap: float | None
    n_expert: int = 0          # mixture of experts (0: dense MLP)
    n_expert_used: int = 0
    expert_norm: bool = False  # renormalize the selected weights (llama.cpp's norm_w)
    expert_scale: float = 0.0  # multiply the weights unless 0 or 1 (expert_weights_scale)
    ds: "DeepSeek | None" = None


    @staticmethod
    def read(w: GGUFWeights) -> "Config":
        arch = w.arch
        if arch not in SUPPORTED:
            raise SystemExit(f"unsupported architecture {arch!r}; supported: {', '.join(SUPPORTED)}")
        n_embd = int(w.require("embedding_length"))
        n_head = int(w.require("attention.head_count"))
        n_head_kv = int(w.hp("attention.head_count_kv", n_head))
        head_dim = int(w.hp("attention.key_length", n_embd // n_head))
        head_dim_v = int(w.hp("attention.value_length", head_dim))
        n_layer = int(w.require("block_count"))

        scaling = w.hp("rope.scaling.type", "none")
        if arch == "deepseek2":
            scaling = "none"  # YaRN: DeepSeek.read
        factor = float(w.hp("rope.scaling.factor", w.hp("rope.scale_linear", 1.0)) or 1.0)
        if scaling in ("none", None) or factor == 1.0:
            freq_scale = 1.0
        elif scaling == "linear":
            freq_scale = 1.0 / factor
        else:
            raise SystemExit(f"rope scaling {scaling!r} (factor {factor}) is not implemented in the reference")

        window = w.hp("attention.sliding_window")
        swa = [False] * n_layer
        rope_base_local = float(w.hp("rope.freq_base", 10000.0))
        if arch == "gemma3":
            window = int(window) if window else None
            pattern = w.hp("attention.sliding_window_pattern", 6)
            if isinstance(pattern, list):  # per-layer flags, true = sliding
                swa = [bool(p) for p in pattern]
            else:  # every pattern-th layer is global: i is global iff (i + 1) % pattern == 0
                swa = [window is not None and (i + 1) % int(pattern) != 0 for i in range(n_layer)]
            rope_base_local = 10000.0
        else:
            window = None

        scale = w.hp("attention.scale")
        # MoE: llama.cpp's build_moe_ffn with softmax gating; norm_w is fixed per architecture
        # (true for llama/Mixtral and qwen3moe, false for qwen2moe), no key is read for it.
        n_expert = int(w.hp("expert_count", 0) or 0)
        n_expert_used = int(w.hp("expert_used_count", 0) or 0)
        n_rot = int(w.hp("rope.dimension_count", head_dim))
        ds = DeepSeek.read(w, float(w.hp("rope.freq_base", 10000.0)), n_rot) if arch == "deepseek2" else None
        return Config(
            arch=arch, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv,
            head_dim=head_dim, head_dim_v=head_dim_v,
            n_rot=int(w.hp("rope.dimension_count", head_dim)),
            eps=float(w.hp("attention.layer_norm_rms_epsilon", 1e-6)),
            rope_base=float(w.hp("rope.freq_base", 10000.0)),
            rope_base_local=rope_base_local,
            freq_scale=freq_scale,
            neox=arch != "llama",
            attn_scale=float(scale) if scale else 1.0 / math.sqrt(head_dim),
            sliding_window=window,
            swa_layers=swa,
            final_softcap=(float(w.hp("final_logit_softcapping")) if w.hp("final_logit_softcapping") else None),
            attn_softcap=(float(w.hp("attn_logit_softcapping")) if w.hp("attn_logit_softcapping") else None),
            n_expert=n_expert, n_expert_used=n_expert_used,
            expert_norm=(bool(w.hp("expert_weights_norm", False)) if ds else arch in ("llama", "qwen3moe")),
            expert_scale=(float(w.hp("expert_weights_scale", 0.0) or 0.0) if ds else 0.0),
            ds=ds,
        )


# MARK: - DeepSeek

def yarn_rope(x: np.ndarray, positions: np.ndarray, ds: DeepSeek, base: float) -> np.ndarray:
    """ggml's normal-mode rope (consecutive pairs) with YaRN on x [tokens, heads, qk_rope], float64."""
    n = ds.qk_rope
    half = n // 2

    def corr_dim(n_rot: float) -> float:
        return n * math.log(ds.n_ctx_orig / (n_rot * 2 * math.pi)) / (2 * math.log(base))
    low = max(0.0, math.floor(corr_dim(32.0)))
    high = min(n - 1.0, math.ceil(corr_dim(1.0)))
    i = np.arange(half, dtype=np.float64)
    extrap = positions.astype(np.float64)[:, None] * base ** (-2.0 * i / n)[None, :]   # [tokens, half]
    interp = ds.freq_scale * extrap
    mscale = ds.attn_factor
    theta = interp
    if ds.ext_factor != 0.0:
        y = (i - low) / max(0.001, high - low)
        ramp = (1.0 - np.clip(y, 0.0, 1.0)) * ds.ext_factor
        theta = interp * (1.0 - ramp) + extrap * ramp
        mscale *= 1.0 + 0.1 * math.log(1.0 / ds.freq_scale)
    cos = (np.cos(theta) * mscale)[:, None, :]
    sin = (np.sin(theta) * mscale)[:, None, :]
    v = x.astype(np.float64)
    x0, x1 = v[..., 0::2], v[..., 1::2]
    out = np.empty_like(v)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out.astype(x.dtype)


def mla(w: GGUFWeights, cfg: Config, p: str, h: np.ndarray, positions: np.ndarray, lin) -> np.ndarray:
    """Multi-head latent attention, decompressed: full keys [k_nope | k_pe] and values per head.
    Split files (attn_k_b [heads, kv_lora, nope], attn_v_b [heads, v, kv_lora]) are decompressed
    with the same weights (k_nope_h = c @ k_b_h, v_h = c @ v_b_h.T), not absorbed."""
    ds = cfg.ds
    n, H = h.shape[0], cfg.n_head
    kd = ds.qk_nope + ds.qk_rope
    if ds.q_lora > 0:
        q = lin(rms_norm(lin(h, p + "attn_q_a.weight"), w.tensor(p + "attn_q_a_norm.weight"), cfg.eps), p + "attn_q_b.weight")
    else:
        q = lin(h, p + "attn_q.weight")
    q = q.reshape(n, H, kd)
    q = np.concatenate([q[..., :ds.qk_nope], yarn_rope(q[..., ds.qk_nope:], positions, ds, cfg.rope_base)], axis=-1)
    ca = lin(h, p + "attn_kv_a_mqa.weight")                              # [tokens, kv_lora + rope]
    c = rms_norm(ca[:, :ds.kv_lora], w.tensor(p + "attn_kv_a_norm.weight"), cfg.eps)
    k_pe = yarn_rope(ca[:, None, ds.kv_lora:], positions, ds, cfg.rope_base)  # [tokens, 1, rope]
    if ds.split_kv:
        kb = w.tensor(p + "attn_k_b.weight").reshape(H, ds.kv_lora, ds.qk_nope)
        vb = w.tensor(p + "attn_v_b.weight").reshape(H, ds.v_dim, ds.kv_lora)
        k_nope = np.einsum("tl,hln->thn", c, kb)
        v = np.einsum("tl,hvl->thv", c, vb)
    else:
        kv = lin(c, p + "attn_kv_b.weight").reshape(n, H, ds.qk_nope + ds.v_dim)
        k_nope, v = kv[..., :ds.qk_nope], kv[..., ds.qk_nope:]
    k = np.concatenate([k_nope, np.repeat(k_pe, H, axis=1)], axis=-1)
    a = attention(q, k.astype(q.dtype), v.astype(q.dtype), positions, ds.kq_scale)
    return lin(a, p + "attn_output.weight")


def route(cfg: Config, w: GGUFWeights, p: str, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expert ids and weights [tokens, k] as llama.cpp's build_moe_ffn (float64 probabilities)."""
    ds = cfg.ds
    if ds is not None and ds.gating == 2:
        probs = 1.0 / (1.0 + np.exp(-logits))
    else:
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
    sel_scores = probs.copy()
    if w.has(p + "exp_probs_b.bias"):
        sel_scores = sel_scores + w.tensor(p + "exp_probs_b.bias").astype(np.float64)
    if ds is not None and ds.groups > 1:
        g = sel_scores.reshape(sel_scores.shape[0], ds.groups, -1)
        top2 = -np.sort(-g, axis=-1)[..., :2].sum(axis=-1)                   # [tokens, groups]
        keep = np.argsort(-top2, axis=-1, kind="stable")[:, :ds.groups_used]
        mask = np.full_like(top2, -np.inf)
        np.put_along_axis(mask, keep, 0.0, axis=-1)
        sel_scores = (g + mask[..., None]).reshape(sel_scores.shape)
    k = cfg.n_expert_used
    sel = np.argsort(-sel_scores, axis=-1, kind="stable")[:, :k]
    weights = np.take_along_axis(probs, sel, axis=-1)
    if cfg.expert_norm:
        weights = weights / np.maximum(weights.sum(axis=-1, keepdims=True), 6.103515625e-5)
    if cfg.expert_scale not in (0.0, 1.0):
        weights = weights * cfg.expert_scale
    return sel, weights


# MARK: - Forward

def forward(w: GGUFWeights, cfg: Config, tokens: list[int], emulate: bool = False) -> np.ndarray:
    """Logits [tokens, vocab] for one sequence at positions 0…n-1.

    `emulate`: round activations as llama.cpp's CPU backend does (see llamacpp_numerics.py).
    """
    def lin(x: np.ndarray, name: str, bias: str | None = None) -> np.ndarray:
        if emulate:
            x = emu.activations_for(w.tensors[name].tensor_type, x)
        return linear(x, w.tensor(name), w.optional(bias) if bias else None)

    def moe(h: np.ndarray, p: str) -> np.ndarray:
        """Mixture of experts: softmax router, top-k, (renormalized) weights, SwiGLU experts from
        the stacked `ffn_*_exps` tensors ([experts, out, in] in numpy order), plus qwen2moe's
        shared expert scaled by sigmoid(ffn_gate_inp_shexp · h)."""
        logits = lin(h, p + "ffn_gate_inp.weight").astype(np.float64)      # [tokens, experts]
        k = cfg.n_expert_used
        sel, weights = route(cfg, w, p, logits)                            # [tokens, k]
        gate, up, down = (w.tensor(p + f"ffn_{n}_exps.weight") for n in ("gate", "up", "down"))
        types = {n: w.tensors[p + f"ffn_{n}_exps.weight"].tensor_type for n in ("gate", "up", "down")}

        def mm(x: np.ndarray, weight: np.ndarray, kind: str) -> np.ndarray:
            if emulate:
                x = emu.activations_for(types[kind], x)
            return x @ weight.T

        out = np.zeros_like(h)
        for t in range(h.shape[0]):
            for j in range(k):
                e = sel[t, j]
                x = h[t:t + 1]
                y = mm(silu(mm(x, gate[e], "gate")) * mm(x, up[e], "up"), down[e], "down")
                out[t] += (weights[t, j] * y[0]).astype(out.dtype)
        if w.has(p + "ffn_gate_shexp.weight"):
            shared = lin(silu(lin(h, p + "ffn_gate_shexp.weight")) * lin(h, p + "ffn_up_shexp.weight"),
                         p + "ffn_down_shexp.weight")
            if w.has(p + "ffn_gate_inp_shexp.weight"):                      # qwen2moe: sigmoid gate
                g = h.astype(np.float64) @ w.tensor(p + "ffn_gate_inp_shexp.weight").astype(np.float64).reshape(-1)
                shared = shared * (1.0 / (1.0 + np.exp(-g)))[:, None]
            out = out + shared.astype(out.dtype)
        return out

    positions = np.arange(len(tokens))
    embd = w.tensor("token_embd.weight")                      # [vocab, embedding]
    x = embd[np.asarray(tokens)].astype(w.dtype)              # [tokens, embedding]
    if cfg.arch == "gemma3":
        x = x * np.asarray(math.sqrt(cfg.n_embd), dtype=w.dtype)
    freq_factors = w.optional("rope_freqs.weight")             # Llama 3: [nRot/2]

    for i in range(cfg.n_layer):
        p = f"blk.{i}."
        t = lambda name: w.tensor(p + name)                   # noqa: E731
        n = len(tokens)

        # Attention block.
        h = rms_norm(x, t("attn_norm.weight"), cfg.eps)
        if cfg.ds is not None:
            x = x + mla(w, cfg, p, h, positions, lin)
            h = rms_norm(x, t("ffn_norm.weight"), cfg.eps)
            f = moe(h, p) if w.has(p + "ffn_gate_inp.weight") else lin(
                silu(lin(h, p + "ffn_gate.weight")) * lin(h, p + "ffn_up.weight"), p + "ffn_down.weight")
            x = x + f
            continue
        q = lin(h, p + "attn_q.weight", p + "attn_q.bias").reshape(n, cfg.n_head, cfg.head_dim)
        k = lin(h, p + "attn_k.weight", p + "attn_k.bias").reshape(n, cfg.n_head_kv, cfg.head_dim)
        v = lin(h, p + "attn_v.weight", p + "attn_v.bias").reshape(n, cfg.n_head_kv, cfg.head_dim_v)
        if w.has(p + "attn_q_norm.weight"):                   # qwen3, gemma3: per-head RMSNorm
            q = rms_norm(q, t("attn_q_norm.weight"), cfg.eps)
            k = rms_norm(k, t("attn_k_norm.weight"), cfg.eps)
        local = cfg.swa_layers[i]
        base = cfg.rope_base_local if local else cfg.rope_base
        fscale = 1.0 if local else cfg.freq_scale
        q = rope(q, positions, cfg.n_rot, base, cfg.neox, fscale, freq_factors)
        k = rope(k, positions, cfg.n_rot, base, cfg.neox, fscale, freq_factors)
        if emulate:  # F16 KV cache; q converted to F16 for the K·q product
            q, k, v = emu.f16(q), emu.f16(k), emu.f16(v)
        a = attention(q, k, v, positions, cfg.attn_scale,
                      window=cfg.sliding_window if local else None, softcap=cfg.attn_softcap,
                      round_probs=emu.f16 if emulate else None)
        a = lin(a, p + "attn_output.weight", p + "attn_output.bias")
        if w.has(p + "post_attention_norm.weight"):           # gemma3
            a = rms_norm(a, t("post_attention_norm.weight"), cfg.eps)
        x = x + a

        # Feed-forward block: gated (SwiGLU, or GeGLU with tanh GELU for gemma).
        h = rms_norm(x, t("ffn_norm.weight"), cfg.eps)
        if w.has(p + "ffn_gate_inp.weight"):                  # mixture of experts
            f = moe(h, p)
        else:
            gate = lin(h, p + "ffn_gate.weight")
            act = gelu_tanh(gate) if cfg.arch == "gemma3" else silu(gate)
            f = lin(act * lin(h, p + "ffn_up.weight"), p + "ffn_down.weight")
        if w.has(p + "post_ffw_norm.weight"):                 # gemma3
            f = rms_norm(f, t("post_ffw_norm.weight"), cfg.eps)
        x = x + f

    x = rms_norm(x, w.tensor("output_norm.weight"), cfg.eps)
    head = "output.weight" if w.has("output.weight") else "token_embd.weight"  # tied LM head
    logits = lin(x, head).astype(np.float64)
    if cfg.final_softcap:
        logits = np.tanh(logits / cfg.final_softcap) * cfg.final_softcap
    return logits.astype(np.float32)


# MARK: - Command line

def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') + '"'


def top_k(w: GGUFWeights, row: np.ndarray, k: int) -> list[tuple[int, float]]:
    ids = np.argsort(-row, kind="stable")[:k]
    return [(int(i), float(row[i])) for i in ids]


def read_golden(path: str) -> tuple[list[int], list[tuple[int, float]]]:
    text = open(path, encoding="utf-8").read()
    ids = [int(s) for s in re.search(r"^prompt_ids \(\d+\): (.*)$", text, re.M).group(1).split()]
    top_line = re.search(r"^step0_top5: (.*)$", text, re.M).group(1)
    top = [(int(a), float(b)) for a, b in re.findall(r"(\d+)\(\".*?\"\)=(-?[0-9.]+)", top_line)]
    return ids, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="GGUF file")
    parser.add_argument("--tokens", help="comma-separated token ids")
    parser.add_argument("--golden", help="a llama.cpp golden file (*_raw.txt): use its prompt ids and compare its step-0 top-5")
    parser.add_argument("--out", help="write logits [tokens, vocab] float32 to this .npy file")
    parser.add_argument("--top", type=int, default=0, help="print the last position's top-K tokens")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--emulate-llamacpp", action="store_true",
                        help="round activations like llama.cpp's CPU backend (8-bit matmul inputs, F16 KV)")
    args = parser.parse_args()

    golden = read_golden(args.golden) if args.golden else None
    if args.tokens:
        tokens = [int(s) for s in args.tokens.replace(" ", ",").split(",") if s]
    elif golden:
        tokens = golden[0]
    else:
        parser.error("give --tokens or --golden")

    start = time.time()
    w = GGUFWeights(args.model, dtype=np.dtype(args.dtype))
    cfg = Config.read(w)
    logits = forward(w, cfg, tokens, emulate=args.emulate_llamacpp)
    elapsed = time.time() - start
    print(f"{cfg.arch}: {len(tokens)} tokens → logits {logits.shape} in {elapsed:.1f} s", file=sys.stderr)

    if args.out:
        np.save(args.out, logits)
    if args.top:
        top = top_k(w, logits[-1], args.top)
        print(f"top{args.top}: " + " ".join(f"{i}({quoted(w.token_text(i))})={v:.4f}" for i, v in top))
    if golden:
        worst = 0.0
        print("golden (llama.cpp) vs reference:")
        for i, ref in golden[1]:
            ours = float(logits[-1][i])
            worst = max(worst, abs(ours - ref))
            print(f"  {i:>7} {quoted(w.token_text(i)):<12} llama.cpp {ref:9.4f}  reference {ours:9.4f}  diff {ours - ref:+.4f}")
        ours_top = [i for i, _ in top_k(w, logits[-1], len(golden[1]))]
        same = ours_top == [i for i, _ in golden[1]]
        print(f"  top-{len(golden[1])} order {'matches' if same else 'DIFFERS: ' + str(ours_top)}; max |diff| {worst:.4f}")


if __name__ == "__main__":
    main()
