#!/usr/bin/env python3
"""Hugging Face transformers + PyTorch (bf16, CUDA) on a model *shape*, llama-bench style:
pp N = one forward pass over N random prompt tokens from an empty cache; tg N = N single-token
forward passes with the KV cache from an empty cache (greedy, logits included). Weights are
random (the shape, not the values, sets the speed), initialized on the GPU.

Used by BENCHMARKS.md for the side-by-side with `swiftkt bench` on the GPU machine:
  python3 scripts/peer/torch_bench.py --shape llama3-8b -p 512 -n 128 -r 3
Shapes mirror `swiftkt synth` presets (llama: smollm2-135m, llama3-8b). Prints one JSON line
per test with llama-bench's field names (n_prompt, n_gen, avg_ts, stddev_ts) plus peer fields.
"""
import argparse, json, statistics, sys, time

SHAPES = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, rope_theta=100000.0, tie_word_embeddings=True),
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=False),
}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    args = ap.parse_args()
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(max_position_embeddings=8192, rms_norm_eps=1e-5, torch_dtype="bfloat16", **SHAPES[args.shape])
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    dev = torch.cuda.get_device_name(0)
    common = dict(peer="transformers", transformers=transformers.__version__, torch=torch.__version__, device=dev,
                  shape=args.shape, dtype="bfloat16", attn=getattr(model.config, "_attn_implementation", "?"))

    def pp():
        ids = torch.randint(0, cfg.vocab_size, (1, args.p), device="cuda")
        torch.cuda.synchronize(); t = time.perf_counter()
        with torch.inference_mode():
            model(ids, use_cache=True)
        torch.cuda.synchronize()
        return args.p / (time.perf_counter() - t)

    def tg():
        ids = torch.randint(0, cfg.vocab_size, (args.n,), device="cuda")
        torch.cuda.synchronize(); t = time.perf_counter()
        with torch.inference_mode():
            past = None
            for i in range(args.n):
                out = model(ids[i:i + 1].view(1, 1), past_key_values=past, use_cache=True)
                past = out.past_key_values
                out.logits[:, -1].argmax(-1).item()  # the step's token reaches the host, as in a real loop
        torch.cuda.synchronize()
        return args.n / (time.perf_counter() - t)

    for name, fn, np_, ng in [("pp%d" % args.p, pp, args.p, 0), ("tg%d" % args.n, tg, 0, args.n)]:
        if (np_ or ng) == 0:
            continue
        fn()  # warm-up
        samples = [fn() for _ in range(args.r)]
        print(json.dumps(dict(common, test=name, n_prompt=np_, n_gen=ng, avg_ts=statistics.mean(samples),
                              stddev_ts=statistics.stdev(samples) if len(samples) > 1 else 0.0, samples_ts=samples)), flush=True)

if __name__ == "__main__":
    main()
