"""Greedy goldens for a long prompt (≥ 64 tokens: llama.cpp's tiled attention and tiled k-quant
matmuls), written as JSON fixtures that RealModelTests checks without llama.cpp installed.

  python3 scripts/peer/make_long_goldens.py   # writes Tests/ModelTests/Fixtures/long_golden_*.json

Prompt: the first 1,500 characters of Tests/ModelTests/Fixtures/perplexity.txt. llama.cpp via
llama-cpp-python 0.3.36 (flash attention on, f16 KV cache, n_batch = n_ubatch = 512, 1 thread):
prompt ids, the top-5 logits after the prompt, and 16 greedy tokens.
"""

import json
import os
import sys

import numpy as np
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = {"smollm2-135m-instruct": "smollm2-135m-instruct.gguf", "gemma3-270m": "gemma3-270m.gguf"}


def main() -> int:
    text = open(os.path.join(ROOT, "Tests/ModelTests/Fixtures/perplexity.txt"), encoding="utf-8").read()[:1500]
    cache = os.path.expanduser(os.environ.get("SWIFTKT_HOME", "~/.cache/swiftkt")) + "/models"
    for name, file in MODELS.items():
        llm = llama_cpp.Llama(os.path.join(cache, file), n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=1,
                              n_threads_batch=1, flash_attn=True, logits_all=False, verbose=False)
        add_bos = llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model))
        tokens = llm.tokenize(text.encode(), add_bos=bool(add_bos), special=True)
        llm.eval(tokens)
        n_vocab = llm.n_vocab()

        def last_logits():
            ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
            return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32)

        first = last_logits()
        top = [int(i) for i in np.argsort(-first)[:5]]
        generated = []
        for _ in range(16):
            nxt = int(np.argmax(last_logits()))
            generated.append(nxt)
            llm.eval([nxt])
        out = {"model": name, "llama_cpp_python": llama_cpp.__version__, "prompt_chars": 1500,
               "prompt_ids": tokens, "top5": [[i, float(first[i])] for i in top], "generated_ids": generated}
        path = os.path.join(ROOT, f"Tests/ModelTests/Fixtures/long_golden_{name}.json")
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
        print(f"{name}: {len(tokens)} prompt tokens, top-1 {top[0]} {first[top[0]]:.4f}, wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
