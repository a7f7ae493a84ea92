#!/usr/bin/env python3
"""Stall summary of an Nsight Compute report's exports (scripts/gpu/ncu_kernels.sh):
RAW.csv (`--page raw --csv`): per kernel launch, duration and the largest warp-stall reasons
(cycles per issued instruction); SASS.csv (`--page source --print-source sass --csv`): the
instructions with the most warp-stall samples.
Usage: summarize_ncu_stalls.py RAW.csv [SASS.csv] [TOP]"""
import csv, sys

def rows(path):
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    return list(csv.reader(lines))

raw = rows(sys.argv[1])
top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
if raw:
    head, data = raw[0], [r for r in raw[2:] if len(r) == len(raw[0])]
    col = {h: i for i, h in enumerate(head)}
    stall = [h for h in head if h.startswith("smsp__average_warps_issue_stalled_") and h.endswith("_per_issue_active.ratio")]
    for r in data:
        name = r[col.get("Kernel Name", 0)][:60]
        dur = r[col["gpu__time_duration.sum"]] if "gpu__time_duration.sum" in col else "?"
        grid = r[col["launch__grid_size"]] if "launch__grid_size" in col else "?"
        regs = r[col["launch__registers_per_thread"]] if "launch__registers_per_thread" in col else "?"
        vals = []
        for h in stall:
            try: vals.append((float(r[col[h]]), h[len("smsp__average_warps_issue_stalled_"):-len("_per_issue_active.ratio")]))
            except ValueError: pass
        vals.sort(reverse=True)
        print(f"{name}: {dur} ns, grid {grid}, {regs} regs; stalls (cycles per issue): "
              + ", ".join(f"{n} {v:.2f}" for v, n in vals[:7]))
if len(sys.argv) > 2:
    sass = rows(sys.argv[2])
    # Rows before the one that names the columns ("Address", "Source", …) name the kernel.
    while sass and "Source" not in sass[0]: sass = sass[1:]
    if sass:
        head = sass[0]
        try:
            s = next(i for i, h in enumerate(head) if "Sampling" in h and "All" in h)
            src = next(i for i, h in enumerate(head) if h.lower() in ("source", "sass"))
        except StopIteration:
            print("sass columns:", head[:12]); sys.exit(0)
        lines = []
        for i, r in enumerate(sass[1:]):
            try: lines.append((int(float(r[s] or 0)), i, r[src]))
            except (ValueError, IndexError): pass
        total = sum(v for v, _, _ in lines) or 1
        print(f"{total} stall samples; the {top} hottest instructions (sample share, index, SASS):")
        for v, i, t in sorted(lines, reverse=True)[:top]:
            print(f"  {100 * v / total:5.1f} %  #{i:4d}  {t}")
        # Executed instructions (warp level) by opcode.
        try:
            e = head.index("Instructions Executed")
            ops = {}
            for r in sass[1:]:
                try: n = int(float(r[e] or 0))
                except (ValueError, IndexError): continue
                op = r[src].split()[0] if r[src].split() else "?"
                if op.startswith("@"): op = r[src].split()[1] if len(r[src].split()) > 1 else op
                ops[op.split(".")[0]] = ops.get(op.split(".")[0], 0) + n
            allops = sum(ops.values()) or 1
            print(f"{allops} warp instructions executed; by opcode: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:16]))
        except ValueError:
            pass
