#!/usr/bin/env python3
"""Side-by-side throughput of llama.cpp and swiftkt on one GGUF file, with llama-bench's tests.

    scripts/peer/compare_llamacpp.py -m MODEL.gguf -p 512 -n 128 -t 1,2 -r 5 [--swiftkt PATH]

Definitions (the same for both engines, llama-bench's):
  pp N  N tokens (BOS first when the model adds one, then random ids) decoded from an empty
        KV cache in one call, n_batch = n_ubatch = 512, logits for the last token only.
  tg N  N single-token decodes from an empty KV cache (BOS, then random ids), each with logits.
Each test is repeated r times; t/s = mean ± sample stddev of the per-repetition rates.

llama.cpp runs in this process through the PyPI package `llama-cpp-python` (0.3.36, which
builds llama.cpp from source): `Llama(model_path, n_ctx, n_batch=512, n_ubatch=512,
n_threads=t, n_threads_batch=t, logits_all=False, flash_attn=True)` creates the model and
context (one per thread count, kept for the whole run); the timed loops then call the C API
directly, as llama-bench does: `llama_memory_clear`, then `llama_decode(llama_batch_get_one(...))`
+ `llama_synchronize`. The batches are prepared before the clock starts, so the Python cost
inside a timed tg step is one ctypes call of `llama_decode` and one of `llama_synchronize`; the
script measures a ctypes call and prints it (about 0.2-0.5 µs, i.e. < 0.02 % of a 5 ms token).
Flash attention is on (our engine's f16 KV cache uses flash-attention numerics; llama-bench's
`-fa` default differs between llama.cpp versions): pass --flash-attn off to compare without it.

swiftkt runs as a separate process, `swiftkt bench -m FILE -p .. -n .. -t .. -r 1 -o json`,
once per repetition (each invocation loads the model and does its own untimed warm-up run of
every test; --swiftkt-warmup off skips it, which costs the first run only its page faults on
the mmapped weights). llama.cpp gets one untimed warm-up run of every test at start. The two engines
alternate per repetition (llama.cpp first on even repetitions, swiftkt first on odd ones) so
that slow drift of a shared machine hits both alike.

How these llama.cpp numbers compare with llama-bench's in ../shared/reference/README.md
(quiet machine; SmolLM2 Q4_1 pp512/tg128 = 254.7/155.5 t/s at 1 thread, 481.0/210.9 at 2):
the timed loop makes the same C calls as llama-bench (llama_decode + llama_synchronize on
batches from llama_batch_get_one, memory cleared between runs), so the only difference is the
ctypes call cost, < 0.03 % of a token; on a quiet machine the two should agree within
llama-bench's own ~8 % spread. That is NOT verified yet: the first runs (BENCHMARKS.md) were on
a machine at load average 6-8 on 2 cores and measured 85-160 / 45-78 t/s at 1 thread, and 2
threads collapse under oversubscription (llama.cpp's workers spin at barriers: tg128 fell to
3-10 t/s). Re-run on a quiet machine and compare.

Prints one markdown table (model, threads, test, llama.cpp t/s, swiftkt t/s, ratio
swiftkt/llama.cpp) and the machine, commits, load average and memory; --json FILE also saves
every sample.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import time


def parse_list(text: str) -> list[int]:
    values: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            values += list(range(int(a), int(b) + 1))
        else:
            values.append(int(part))
    return values


def resolve_model(name: str) -> str:
    if os.path.exists(name):
        return os.path.abspath(name)
    home = os.path.expanduser(os.environ.get("SWIFTKT_HOME", "~/.cache/swiftkt"))
    candidate = os.path.join(home, "models", name if name.endswith(".gguf") else name + ".gguf")
    if os.path.exists(candidate):
        return candidate
    sys.exit(f"model '{name}' not found (neither a path nor {candidate})")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
        mem = f"{mem_kb / 1048576:.1f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    return f"{cpu}, {os.cpu_count()} cores, {mem} memory"


def load_average() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def git_commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# MARK: - llama.cpp side

class LlamaCppBench:
    """One llama.cpp model + context at a fixed thread count, driven through the C API."""

    def __init__(self, path: str, threads: int, n_ctx: int, n_batch: int, flash_attn: bool, seed: int):
        import llama_cpp
        self.lib = llama_cpp
        self.llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
                                   n_threads=threads, n_threads_batch=threads, logits_all=False,
                                   flash_attn=flash_attn, verbose=False)
        self.ctx = self.llm.ctx
        self.n_batch = n_batch
        model = self.llm.model
        vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        self.bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.rng = random.Random(seed)

    def _tokens(self, n: int):
        ids = [self.rng.randrange(self.n_vocab) for _ in range(n)]
        if self.bos is not None:
            ids[0] = self.bos
        return (self.lib.llama_token * n)(*ids)

    def run(self, n_prompt: int, n_gen: int, depth: int = 0) -> int:
        """One timed run from an empty cache (or one holding `depth` tokens, evaluated untimed,
        as llama-bench's -d); returns nanoseconds."""
        lib, ctx = self.lib, self.ctx
        n = n_prompt + n_gen
        prefix = self._tokens(depth) if depth else None
        tokens = self._tokens(n)
        if depth:
            tokens[0] = self.rng.randrange(self.n_vocab)  # (BOS only at the very start, as swiftkt bench)
        base = ctypes.addressof(tokens)
        size = ctypes.sizeof(lib.llama_token)
        step = 1 if n_gen else self.n_batch
        batches = [lib.llama_batch_get_one(ctypes.cast(base + i * size, ctypes.POINTER(lib.llama_token)),
                                           min(step, n - i)) for i in range(0, n, step)]
        decode, synchronize = lib.llama_decode, lib.llama_synchronize
        lib.llama_memory_clear(self.memory, True)
        if depth:
            pbase = ctypes.addressof(prefix)
            for i in range(0, depth, self.n_batch):
                b = lib.llama_batch_get_one(ctypes.cast(pbase + i * size, ctypes.POINTER(lib.llama_token)), min(self.n_batch, depth - i))
                if decode(ctx, b) != 0:
                    raise RuntimeError("llama_decode failed (depth)")
            synchronize(ctx)
        start = time.perf_counter_ns()
        for batch in batches:
            if decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            synchronize(ctx)
        elapsed = time.perf_counter_ns() - start
        del tokens
        return elapsed

    def ctypes_call_ns(self) -> float:
        """The cost of one ctypes call into libllama (what a tg step adds over llama-bench)."""
        f, ctx, count = self.lib.llama_n_ctx, self.ctx, 100_000
        start = time.perf_counter_ns()
        for _ in range(count):
            f(ctx)
        return (time.perf_counter_ns() - start) / count


# MARK: - swiftkt side

def swiftkt_run(binary: str, model: str, prompts: list[int], gens: list[int], threads: list[int],
                batch: int, warmup: bool, depths: list[int], rules: str | None) -> list[dict]:
    cmd = [binary, "bench", "-m", model, "-p", ",".join(map(str, prompts or [0])), "-n", ",".join(map(str, gens or [0])),
           "-d", ",".join(map(str, depths)), "-t", ",".join(map(str, threads)), "-r", "1", "-b", str(batch), "-o", "json"]
    if rules:
        cmd += ["--rules", rules]
    if not warmup:
        cmd.append("--no-warmup")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


# MARK: - main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True, help="GGUF path or a pulled model name")
    ap.add_argument("-p", "--n-prompt", default="512", help="prompt lengths, comma-separated (0 = none)")
    ap.add_argument("-n", "--n-gen", default="128", help="generation lengths, comma-separated (0 = none)")
    ap.add_argument("-t", "--threads", default=str(os.cpu_count()), help="thread counts, comma-separated")
    ap.add_argument("-d", "--n-depth", default="0", help="tokens in the cache before each test, comma-separated (llama-bench's -d)")
    ap.add_argument("--rules", help="swiftkt's rules file (e.g. rules/cpu-long-context.yaml)")
    ap.add_argument("-r", "--repetitions", type=int, default=5)
    ap.add_argument("-b", "--batch-size", type=int, default=512)
    ap.add_argument("--swiftkt", default=".build/release/swiftkt", help="swiftkt binary")
    ap.add_argument("--flash-attn", choices=["on", "off"], default="on")
    ap.add_argument("--swiftkt-warmup", choices=["on", "off"], default="on",
                    help="off: skip swiftkt's per-invocation warm-up run (halves its time when it is slow)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--json", help="also write every sample to this file")
    args = ap.parse_args()

    model = resolve_model(args.model)
    prompts = [p for p in parse_list(args.n_prompt) if p > 0]
    gens = [g for g in parse_list(args.n_gen) if g > 0]
    threads = parse_list(args.threads)
    depths = parse_list(args.n_depth)
    tests = [(p, 0, d) for p in prompts for d in depths] + [(0, g, d) for g in gens for d in depths]
    if not tests:
        sys.exit("nothing to run")
    n_ctx = max(p + g + d for p, g, d in tests)
    name = lambda p, g, d: ("pp%d" % p if p else "tg%d" % g) + (" @ d%d" % d if d else "")
    import llama_cpp
    load_before = load_average()

    log(f"llama.cpp: loading {os.path.basename(model)} at {threads} threads (n_ctx {n_ctx})")
    peers = {t: LlamaCppBench(model, t, n_ctx, args.batch_size, args.flash_attn == "on", args.seed) for t in threads}
    call_ns = peers[threads[0]].ctypes_call_ns()
    for t in threads:
        for p, g, d in tests:
            peers[t].run(p, g, d)  # warm-up

    ours: dict[tuple, list[float]] = {}
    theirs: dict[tuple, list[float]] = {}
    meta: dict[tuple, dict] = {}
    for rep in range(args.repetitions):
        order = ["llama.cpp", "swiftkt"] if rep % 2 == 0 else ["swiftkt", "llama.cpp"]
        for engine in order:
            if engine == "llama.cpp":
                for t in threads:
                    for p, g, d in tests:
                        ns = peers[t].run(p, g, d)
                        ts = (p + g) * 1e9 / ns
                        theirs.setdefault((t, p, g, d), []).append(ts)
                        log(f"rep {rep + 1}/{args.repetitions} llama.cpp t={t} {name(p, g, d)}: {ts:.2f} t/s")
            else:
                for row in swiftkt_run(args.swiftkt, model, prompts, gens, threads, args.batch_size, args.swiftkt_warmup == "on",
                                       depths, args.rules):
                    key = (row["n_threads"], row["n_prompt"], row["n_gen"], row.get("n_depth", 0))
                    ours.setdefault(key, []).extend(row["samples_ts"])
                    meta[key] = row
                    log(f"rep {rep + 1}/{args.repetitions} swiftkt   t={key[0]} {row['test']}: {row['avg_ts']:.2f} t/s")

    def fmt(xs: list[float]) -> str:
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.mean(xs):.2f} ± {sd:.2f}"

    first = next(iter(meta.values()))
    print(f"machine: {machine_line()}; load average before {load_before}, after {load_average()}")
    print(f"swiftkt {first['build_commit']} (kernels {first['kernels']}, warm-up {args.swiftkt_warmup}); llama.cpp via llama-cpp-python "
          f"{llama_cpp.__version__} (flash-attn {args.flash_attn}, ctypes call {call_ns * 1e-3:.2f} µs); "
          f"script at {git_commit()}; {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}")
    print(f"model: {os.path.basename(model)} ({first['model_type']}, {first['model_size'] / 1048576:.2f} MiB, "
          f"{first['model_n_params'] / 1e6:.2f} M params); {args.repetitions} repetitions, alternating engines\n")
    print("| model | threads | test | llama.cpp t/s | swiftkt t/s | swiftkt / llama.cpp |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for t in threads:
        for p, g, d in tests:
            key = (t, p, g, d)
            ratio = statistics.mean(ours[key]) / statistics.mean(theirs[key])
            print(f"| {first['model_type']} | {t} | {name(p, g, d)} | {fmt(theirs[key])} "
                  f"| {fmt(ours[key])} | {ratio:.2f} |")
    print()
    for t in threads:
        row = next(r for k, r in meta.items() if k[0] == t)
        mib = lambda b: f"{b / 1048576:.1f} MiB" if b is not None else "n/a"
        print(f"swiftkt memory t={t}: file {mib(row['file_size'])}, RSS after load {mib(row['rss_after_load_bytes'])}, "
              f"after runs {mib(row['rss_after_runs_bytes'])}, KV cache {mib(row['kv_cache_bytes'])} (n_ctx {row['n_ctx']})")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": model, "machine": machine_line(), "llama_cpp_python": llama_cpp.__version__,
                       "flash_attn": args.flash_attn, "ctypes_call_ns": call_ns,
                       "results": [{"n_threads": t, "n_prompt": p, "n_gen": g, "n_depth": d,
                                    "llama_cpp_samples_ts": theirs[(t, p, g, d)], "swiftkt_samples_ts": ours[(t, p, g, d)],
                                    "swiftkt": meta[(t, p, g, d)]} for t in threads for p, g, d in tests]}, f, indent=1)


if __name__ == "__main__":
    main()
