#!/usr/bin/env python3
"""Do llama.cpp and SwiftKT agree on our synthetic models?

For each architecture's `tiny` preset (or ARCH:SHAPE, e.g. deepseek2:tiny-lite) and each weight type, this writes the model with
`swiftkt synth`, then:
  1. loads it with llama.cpp (llama-cpp-python; F16 KV cache, flash attention off unless
     --flash-attn) and evaluates a short text (tokenized by llama.cpp, no BOS: the synthetic
     vocabulary's add_bos is false);
  2. runs the numpy reference (scripts/reference/forward.py, the independent implementation
     SwiftKT's SyntheticTests match within 1e-3) on the same token ids;
  3. runs `swiftkt run -p TEXT -n 1 --temp 0 --show-top 5 --no-special` and reads our top-5
     logits of the last prompt position (this also checks that both tokenize the text alike);
and reports the cosine similarity of llama.cpp's last-position logits with the reference's
(and over all positions), the max |difference| relative to the logit scale, and whether the
top-5 token ids of llama.cpp, the reference and SwiftKT agree.

  python3 scripts/peer/check_synthetic.py [--swiftkt .build-ppl/release/swiftkt] [--json]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXT = "The river runs past the old mill, under three bridges, and out to the sea."


def llamacpp_logits(path, text, flash_attn):
    llm = llama_cpp.Llama(path, n_ctx=128, n_batch=128, logits_all=True, flash_attn=flash_attn,
                          n_threads=os.cpu_count() or 1, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
    tokens = llm.tokenize(text.encode(), add_bos=add_bos, special=False)
    llm.reset()
    llm.eval(tokens)
    logits = np.array(llm.scores[:len(tokens)], dtype=np.float32)
    del llm
    return tokens, logits


def reference_logits(path, tokens, workdir):
    out = os.path.join(workdir, "ref.npy")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts/reference/forward.py"), path,
                    "--tokens", ",".join(map(str, tokens)), "--out", out],
                   check=True, capture_output=True, text=True)
    return np.load(out)


def swiftkt_top5(swiftkt, path, text):
    p = subprocess.run([swiftkt, "run", "-m", path, "-p", text, "-n", "1", "--temp", "0", "--show-top", "5",
                        "--no-special", "-t", "2"], capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr.strip().splitlines()[-1:] or ["swiftkt run failed"]
    for line in p.stderr.splitlines():
        found = re.findall(r'(\d+)\((?:"(?:[^"\\]|\\.)*")\)=(-?[0-9.]+)', line)
        if found:
            return [(int(i), float(v)) for i, v in found], None
    return None, ["no --show-top line in swiftkt's output"]


def cosine(a, b):
    a = a.astype(np.float64).ravel(); b = b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swiftkt", default=os.path.join(ROOT, ".build-ppl/release/swiftkt"))
    ap.add_argument("--archs", default="llama,qwen2,qwen3,gemma3")
    ap.add_argument("--types", default="q8_0,q4_K,q4_0")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--text", default=TEXT)
    ap.add_argument("--flash-attn", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as work:
        for spec in args.archs.split(","):
            arch, _, shape = spec.partition(":")
            shape = shape or "tiny"
            for qtype in args.types.split(","):
                path = os.path.join(work, f"{arch}-{shape}-{qtype}.gguf")
                row = {"arch": spec, "type": qtype}
                rows.append(row)
                s = subprocess.run([args.swiftkt, "synth", "--arch", arch, "--shape", shape, "--type", qtype,
                                    "--seed", str(args.seed), "-o", path], capture_output=True, text=True)
                if s.returncode != 0:
                    row["error"] = "synth failed: " + s.stderr.strip()[-300:]
                    continue
                try:
                    tokens, ours_cpp = llamacpp_logits(path, args.text, args.flash_attn)
                except Exception as e:  # llama.cpp refused the file
                    row["loads"] = False
                    row["error"] = f"llama.cpp: {e}"
                    continue
                row["loads"] = True
                row["tokens"] = len(tokens)
                ref = reference_logits(path, tokens, work)
                last_cpp, last_ref = ours_cpp[-1], ref[-1]
                row["cos_last"] = cosine(last_cpp, last_ref)
                row["cos_all"] = min(cosine(ours_cpp[i], ref[i]) for i in range(len(tokens)))
                row["cos_first8"] = min(cosine(ours_cpp[i], ref[i]) for i in range(min(8, len(tokens))))
                row["max_abs_rel"] = float(np.abs(ours_cpp - ref).max() / np.abs(ref).max())
                top_cpp = [int(i) for i in np.argsort(-last_cpp, kind="stable")[:5]]
                top_ref = [int(i) for i in np.argsort(-last_ref, kind="stable")[:5]]
                row["top5_llamacpp"] = [(i, round(float(last_cpp[i]), 4)) for i in top_cpp]
                row["top1_ref_agrees"] = top_cpp[0] == top_ref[0]
                top_ours, err = swiftkt_top5(args.swiftkt, path, args.text)
                if top_ours is None:
                    row["swiftkt_error"] = err
                else:
                    row["top5_swiftkt"] = top_ours
                    row["top1_swiftkt_agrees"] = top_ours[0][0] == top_cpp[0]
                    row["top5_swiftkt_max_abs_diff"] = max(abs(v - float(last_cpp[i])) for i, v in top_ours)
                    row["top5_swiftkt_same_ids"] = [i for i, _ in top_ours] == top_cpp
                    row["top5_swiftkt_same_set"] = sorted(i for i, _ in top_ours) == sorted(top_cpp)
                if not args.json:
                    print(f"{arch:7s} {qtype:5s} loads  cos(last) {row['cos_last']:.6f}  min cos(first 8) {row['cos_first8']:.6f}  min cos(all) {row['cos_all']:.6f}  "
                          f"max|Δ|/scale {row['max_abs_rel']:.2e}  top1 ref {'=' if row['top1_ref_agrees'] else '≠'}  "
                          f"swiftkt top1 {'=' if row.get('top1_swiftkt_agrees') else '≠'} top5 "
                          f"{'same order' if row.get('top5_swiftkt_same_ids') else 'same set' if row.get('top5_swiftkt_same_set') else 'DIFFERENT ' + str(row.get('swiftkt_error', ''))}"
                          + (f" (max |Δlogit| {row['top5_swiftkt_max_abs_diff']:.3f})" if 'top5_swiftkt_max_abs_diff' in row else ""),
                          flush=True)
    for r in rows:
        if "error" in r and not args.json:
            print(f"{r['arch']:7s} {r['type']:5s} FAILED: {r['error']}")
    if args.json:
        print(json.dumps({"llama_cpp_python": llama_cpp.__version__, "text": args.text, "seed": args.seed,
                          "flash_attn": args.flash_attn, "results": rows}, indent=1))
    return 0 if all(r.get("loads") and r.get("cos_last", 0) > 0.999 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
