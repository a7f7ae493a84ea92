#!/usr/bin/env python3
"""Regenerates Sources/Injection/ShippedRuleTexts.swift from rules/*.yaml (run from the repo root)."""
import os

names = sorted(f for f in os.listdir("rules") if f.endswith(".yaml"))
out = ["""// Shipped rule files, compiled in so that the binary is self-contained. Generated from rules/*.yaml
// by scripts/gen_shipped_rules.py; InjectionTests checks that both agree. Do not edit by hand.

enum ShippedRuleTexts {
    static let files: [String: String] = ["""]
for n in names:
    text = open(os.path.join("rules", n)).read()
    out.append(f'        "{n}": #"""\n{text}"""#,')
out.append("    ]\n}\n")
open("Sources/Injection/ShippedRuleTexts.swift", "w").write("\n".join(out))
