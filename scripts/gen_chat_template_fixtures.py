#!/usr/bin/env python3
"""Generate expected chat-template renderings for the ChatTemplate tests.

Renders every Tests/ChatTemplateTests/Fixtures/templates/<name>.jinja with Python's jinja2 the
way Hugging Face transformers does (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, raise_exception, strftime_now, tojson with ensure_ascii=False) over a fixed set of
conversations, and writes Tests/ChatTemplateTests/Fixtures/expected/<name>.json. A case whose
render raises records the error message instead of the output.

Usage: python3 scripts/gen_chat_template_fixtures.py   (needs jinja2 >= 3.1)
"""
import json
import os
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ChatTemplateTests", "Fixtures")
NOW = datetime(2025, 3, 9, 14, 30, 5)  # the fixed "now" for strftime_now; the Swift test uses the same


class TemplateRaised(Exception):
    pass


def make_env():
    def raise_exception(message):
        raise TemplateRaised(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city — «quoted» \"text\"",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"},
                           "days": {"type": "integer", "minimum": 1, "maximum": 7.5}},
            "required": ["city"],
        },
    },
}]


def m(role, content):
    return {"role": role, "content": content}


SYS = m("system", "You are a helpful assistant.")
CONVERSATIONS = {
    "sys_multi": [SYS, m("user", "Hello"), m("assistant", "   I am an assistant   "), m("user", "Who are you?")],
    "nosys_multi": [m("user", "Hi there"), m("assistant", "Hello! How can I help?"), m("user", "Tell me a joke."),
                    m("assistant", "Why did the chicken cross the road?"), m("user", "Why?")],
    "nosys_ends_assistant": [m("user", "2+2?"), m("assistant", "4")],
    "single_user": [m("user", "  Spaces around, ünïcödé 世界 and \"quotes\" \\ backslash  \n")],
    "think": [m("user", "Solve x+1=2"), m("assistant", "<think>\nx = 2 - 1\n</think>\n\nx = 1"), m("user", "Thanks")],
    "two_systems": [SYS, m("user", "A"), m("system", "Second system"), m("assistant", "B"), m("user", "C")],
    "bad_order": [m("user", "one"), m("user", "two")],
    "system_only": [SYS],
}

CASES = []
for conv_name, msgs in CONVERSATIONS.items():
    for agp in (True, False):
        CASES.append({"name": f"{conv_name}/agp={str(agp).lower()}", "messages": msgs, "add_generation_prompt": agp,
                      "bos_token": "<BOS>", "eos_token": "<EOS>", "extra": {}})
CASES.append({"name": "sys_multi/tools", "messages": CONVERSATIONS["sys_multi"], "add_generation_prompt": True,
              "bos_token": "<BOS>", "eos_token": "<EOS>", "extra": {"tools": TOOLS}})
CASES.append({"name": "nosys_multi/tools", "messages": CONVERSATIONS["nosys_multi"], "add_generation_prompt": True,
              "bos_token": "<BOS>", "eos_token": "<EOS>", "extra": {"tools": TOOLS}})
CASES.append({"name": "sys_multi/extra_kwargs", "messages": CONVERSATIONS["sys_multi"], "add_generation_prompt": True,
              "bos_token": "", "eos_token": "", "extra": {"date_string": "01 Jan 2025", "enable_thinking": False,
                                                          "tools_in_user_message": False, "tools": TOOLS}})
CASES.append({"name": "think/enable_thinking=false", "messages": CONVERSATIONS["think"], "add_generation_prompt": True,
              "bos_token": "<s>", "eos_token": "</s>", "extra": {"enable_thinking": False}})


def render(env, template, case):
    ctx = {"messages": case["messages"], "tools": None, "documents": None,
           "add_generation_prompt": case["add_generation_prompt"],
           "bos_token": case["bos_token"], "eos_token": case["eos_token"]}
    ctx.update(case["extra"])
    return template.render(**ctx)


def main():
    env = make_env()
    tdir = os.path.join(ROOT, "templates")
    odir = os.path.join(ROOT, "expected")
    os.makedirs(odir, exist_ok=True)
    for fname in sorted(os.listdir(tdir)):
        if not fname.endswith(".jinja"):
            continue
        name = fname[:-len(".jinja")]
        with open(os.path.join(tdir, fname), encoding="utf-8") as f:
            template = env.from_string(f.read())
        out_cases = []
        for case in CASES:
            entry = dict(case)
            try:
                entry["expected"] = render(env, template, case)
            except TemplateRaised as e:
                entry["error"] = str(e)
            except jinja2.TemplateError as e:
                entry["error"] = f"{type(e).__name__}: {e}"
            except TypeError as e:
                entry["error"] = f"TypeError: {e}"
            out_cases.append(entry)
        doc = {"template": name, "now": NOW.strftime("%Y-%m-%dT%H:%M:%S"), "cases": out_cases}
        with open(os.path.join(odir, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        errors = sum(1 for c in out_cases if "error" in c)
        print(f"{name}: {len(out_cases)} cases, {errors} raise")


if __name__ == "__main__":
    main()
