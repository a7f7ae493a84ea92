"""Dump llama.cpp's intermediate tensors for one prompt (prefill only) into an .npz file.

Used to find where our numerics first depart from llama.cpp's: run the same prompt through
`swiftkt` with SWIFTKT_TRACE=DIR (Models/Trace.swift writes the same named tensors) and compare
with scripts/peer/compare_traces.py.

  python3 scripts/peer/dump_llamacpp_tensors.py MODEL.gguf "The capital of France is" out.npz \
      [--threads 1] [--flash-attn on|off] [--no-special]

Tensors are keyed by llama.cpp's graph names ("attn_norm-0", "Qcur-0", "kqv_out-0", "ffn_out-0",
"l_out-0", "result_norm", "result_output", …), stored as float32 arrays with ggml's dimension
order reversed (numpy row-major: [tokens, features]). Only F32 tensors are kept.
"""

from __future__ import annotations

import argparse
import ctypes
import sys

import numpy as np
import llama_cpp

GGML_MAX_DIMS, GGML_MAX_SRC, GGML_MAX_OP_PARAMS, GGML_MAX_NAME = 4, 10, 64, 64


class GGMLTensor(ctypes.Structure):
    """struct ggml_tensor (ggml/include/ggml.h of the vendored llama.cpp)."""
    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("prompt", help="the prompt text, or @FILE to read it from FILE")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--flash-attn", choices=["on", "off"], default="on")
    ap.add_argument("--no-special", action="store_true", help="do not parse special tokens in the prompt")
    args = ap.parse_args()

    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(args.model.encode(), mparams)
    if not model:
        print(f"cannot load {args.model}", file=sys.stderr)
        return 1
    vocab = llama_cpp.llama_model_get_vocab(model)

    captured: dict[str, np.ndarray] = {}

    def callback(tensor_ptr, ask, _user):
        t = GGMLTensor.from_address(tensor_ptr)
        if ask:
            return True
        if t.type != 0 or not t.data:  # F32 only
            return True
        name = t.name.decode(errors="replace")
        ne = [t.ne[i] for i in range(GGML_MAX_DIMS)]
        nb = [t.nb[i] for i in range(GGML_MAX_DIMS)]
        count = ne[0] * ne[1] * ne[2] * ne[3]
        if nb[0] != 4:
            return True
        # Gather with strides (views are common: Qcur after reshape, kqv_out permutes).
        span = sum((ne[i] - 1) * nb[i] for i in range(GGML_MAX_DIMS)) + 4
        raw = (ctypes.c_char * span).from_address(t.data)
        base = np.frombuffer(raw, dtype=np.uint8)
        arr = np.lib.stride_tricks.as_strided(base.view(np.float32) if span % 4 == 0 else base[: span - span % 4].view(np.float32),
                                              shape=tuple(reversed(ne)), strides=tuple(reversed(nb)))
        key = name
        n = 1
        while key in captured:
            n += 1
            key = f"{name}#{n}"
        captured[key] = np.array(arr, dtype=np.float32).reshape(-1, ne[0]) if count else np.zeros((0,), np.float32)
        return True

    cb = llama_cpp.ggml_backend_sched_eval_callback(callback)
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = 512
    cparams.n_batch = 512
    cparams.n_ubatch = 512
    cparams.n_threads = args.threads
    cparams.n_threads_batch = args.threads
    cparams.flash_attn_type = 1 if args.flash_attn == "on" else 0
    cparams.cb_eval = cb
    cparams.cb_eval_user_data = None
    ctx = llama_cpp.llama_init_from_model(model, cparams)

    text = (open(args.prompt[1:], encoding="utf-8").read() if args.prompt.startswith("@") else args.prompt).encode()
    buf = (llama_cpp.llama_token * 4096)()
    add_bos = llama_cpp.llama_vocab_get_add_bos(vocab)
    n = llama_cpp.llama_tokenize(vocab, text, len(text), buf, 4096, add_bos, not args.no_special)
    tokens = list(buf[:n])
    batch = llama_cpp.llama_batch_get_one(buf, n)
    if llama_cpp.llama_decode(ctx, batch) != 0:
        print("llama_decode failed", file=sys.stderr)
        return 1
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(llama_cpp.llama_vocab_n_tokens(vocab),))
    captured["logits"] = np.array(logits, dtype=np.float32)[None, :]
    captured["tokens"] = np.array(tokens, dtype=np.float32)[None, :]
    np.savez(args.out, **captured)
    top = np.argsort(-captured["logits"][0])[:5]
    print(f"{len(tokens)} tokens {tokens}; {len(captured)} tensors; top-5 " +
          " ".join(f"{i}={captured['logits'][0][i]:.4f}" for i in top), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
