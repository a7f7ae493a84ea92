#!/usr/bin/env python3
"""Sums an `ncu --csv --metrics gpu__time_duration.sum` log by kernel name: per-token time,
launches and share. A decode step starts with one embedding lookup, so per-step figures
divide by the number of `embed_*` launches in the window."""
import csv, sys, collections

rows = []
with open(sys.argv[1], newline="") as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    v = float(r["Metric Value"].replace(",", ""))
    unit = r.get("Metric Unit", "")
    us = v / 1000 if unit in ("nsecond", "ns") else v * 1000 if unit in ("msecond", "ms") else v
    rows.append((r["Kernel Name"], r.get("Grid Size", ""), us))
if not rows:
    print("no kernels in the log"); sys.exit(1)
steps = max(1, sum(1 for k, _, _ in rows if k.startswith("embed_")))
by = collections.defaultdict(lambda: [0, 0.0])
for k, g, us in rows:
    key = f"{k} {g}"
    by[key][0] += 1; by[key][1] += us
total = sum(us for _, _, us in rows)
print(f"{len(rows)} kernels, {steps} steps (embedding launches), GPU time {total:.1f} µs = {total / steps:.1f} µs per step")
print("| kernel grid | launches/step | µs/step | µs each | share |\n|---|---:|---:|---:|---:|")
for key, (n, us) in sorted(by.items(), key=lambda kv: -kv[1][1])[:25]:
    print(f"| {key} | {n / steps:.1f} | {us / steps:.1f} | {us / n:.2f} | {100 * us / total:.1f} % |")
