#!/usr/bin/env python3
"""Perplexity of a text file with llama.cpp (through llama-cpp-python), by llama-perplexity's method.

Reproduces tools/perplexity/perplexity.cpp (`perplexity()`, default ppl_stride 0, one sequence per
chunk):
  * the whole file is tokenized once, with BOS when the vocabulary's add_bos is set and without
    parsing special tokens (common_tokenize(ctx, text, add_special=true, parse_special=false));
  * llama-perplexity refuses a text shorter than 2 * n_ctx tokens; chunks = n_tokens // n_ctx;
  * each chunk is evaluated from an empty KV cache, its first token replaced by BOS when add_bos;
  * only the second half is scored: for i in [n_ctx/2, n_ctx-1): -log softmax(logits[i])[tok[i+1]];
  * PPL = exp(sum of those / count); per-chunk values are the running estimate ([1]x,[2]y,...).
llama-perplexity packs n_batch/n_ctx chunks into one batch as separate sequences; here each chunk
is one batch of n_ctx tokens (n_batch = n_ctx), which computes the same thing.

  python3 scripts/peer/llamacpp_perplexity.py MODEL.gguf TEXT.txt -c 512 [--flash-attn] [--json]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import llama_cpp


def log_softmax_at(row: np.ndarray, index: int) -> float:
    # As perplexity.cpp's log_softmax: max in float, sum of exp in double.
    m = float(row.max())
    s = float(np.exp(row.astype(np.float64) - m).sum())
    return float(row[index]) - m - math.log(s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("-c", "--ctx", type=int, default=512)
    ap.add_argument("--flash-attn", action="store_true", help="flash attention on (llama-perplexity's default 'auto' is on for the CPU)")
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ap.add_argument("--min-chunks", type=int, default=2, help="refuse texts with fewer chunks (llama-perplexity: 2)")
    args = ap.parse_args()

    n_ctx = args.ctx
    llm = llama_cpp.Llama(args.model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                          flash_attn=args.flash_attn, n_threads=args.threads, n_threads_batch=args.threads,
                          verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
    assert not llama_cpp.llama_vocab_get_add_eos(vocab)
    bos = llama_cpp.llama_vocab_bos(vocab)

    text = open(args.text, encoding="utf-8").read()
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False)
    if len(tokens) < args.min_chunks * n_ctx:
        print(f"the text has {len(tokens)} tokens; {args.min_chunks * n_ctx} are needed for -c {n_ctx}", file=sys.stderr)
        return 1
    n_chunk = len(tokens) // n_ctx
    first = n_ctx // 2

    started = time.time()
    nll, count, per_chunk = 0.0, 0, []
    for c in range(n_chunk):
        chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
        if add_bos:
            chunk[0] = bos
        llm.reset()
        llm.eval(chunk)
        scores = llm.scores  # [n_ctx, n_vocab] float32, all positions
        for i in range(first, n_ctx - 1):
            nll -= log_softmax_at(scores[i], chunk[i + 1])
            count += 1
        per_chunk.append(math.exp(nll / count))
        if not args.json:
            print(f"[{c + 1}]{per_chunk[-1]:.4f}", end=",", flush=True, file=sys.stderr)
    if not args.json:
        print(file=sys.stderr)
    ppl = math.exp(nll / count)
    result = {
        "model": os.path.basename(args.model), "text": os.path.basename(args.text), "n_ctx": n_ctx,
        "flash_attn": args.flash_attn, "add_bos": add_bos, "tokens": len(tokens), "chunks": n_chunk,
        "scored_tokens": count, "perplexity": ppl, "per_chunk": per_chunk,
        "seconds": round(time.time() - started, 2), "llama_cpp_python": llama_cpp.__version__,
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"Final estimate: PPL = {ppl:.4f} ({n_chunk} chunks of {n_ctx}, {count} tokens scored, "
              f"flash_attn={'on' if args.flash_attn else 'off'}, llama-cpp-python {llama_cpp.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
