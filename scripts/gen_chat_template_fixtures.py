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


# Small templates exercising one language feature each (Python tuples are not printed: the
# Swift value model has lists only, so `{{ (1, 2) }}` would print "[1, 2]"); rendered with the same environment and
# the context {"messages": SNIPPET_MESSAGES, "xs": [3, 1, 2], "d": {"b": 1, "a": [1, 2]}, "s": "  Hello World  "}.
SNIPPET_MESSAGES = [m("system", "sys"), m("user", "hi"), m("assistant", "yo")]
SNIPPETS = [
    "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}|{% endfor %}",
    "{% for x in [] %}a{% else %}empty{% endfor %}",
    "{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
    "{% for k in d %}{{ k }}{% endfor %}",
    "{% for x in xs %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{% for x in xs %}{{ loop.cycle('a', 'b') }}{{ loop.previtem }}{% endfor %}",
    "{% if 0 %}a{% elif none %}b{% elif 'x' %}c{% else %}d{% endif %}",
    "{% set x = 1 %}{% for i in xs %}{% set x = i %}{% endfor %}{{ x }}",
    "{% set ns = namespace(n=0, s='') %}{% for i in xs %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
    "{% set a, b = [1, 2] %}{{ a }}{{ b }}",
    "{% set block %}  inner {{ 1 + 1 }} {% endset %}[{{ block }}]",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}",
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 1.5 + 1 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 10 / 4 }}",
    "{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 'x' + 'y' }}",
    "{{ 'ell' in 'hello' }} {{ 2 in xs }} {{ 5 not in xs }} {{ 'a' in d }} {{ not 1 }} {{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }}",
    "{{ none }}|{{ true }}|{{ undefined_var }}|{{ xs }}|{{ d }}|{{ 'it''s' }}|{{ [\"it's\", 'a\"b'] }}|{{ 3.0 }}",
    "{{ s|trim }}|{{ s|length }}|{{ s|upper }}|{{ s|lower }}|{{ s|title }}|{{ 'hELLO wORLD'|capitalize }}|{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|",
    "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a-b-c'.split('-', 1) }} {{ 'xxhixx'.strip('x') }} {{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'a.b'.replace('.', '::') }}",
    "{{ xs|first }} {{ xs|last }} {{ xs|join('-') }} {{ xs|reverse|list }} {{ 'abc'|reverse }} {{ xs|sort }} {{ xs|sum }} {{ xs|min }} {{ xs|max }} {{ [1, 1, 2]|unique|list }}",
    "{{ messages|map(attribute='role')|join(',') }} {{ messages|selectattr('role', 'equalto', 'user')|list|length }} {{ messages|rejectattr('role', 'eq', 'user')|map(attribute='content')|list }}",
    "{{ xs|select('odd')|list }} {{ xs|reject('odd')|list }} {{ ['a', 'code_interpreter']|reject('equalto', 'code_interpreter')|join(', ') }} {{ ['a','b']|map('upper')|list }}",
    "{{ undefined_var|default('dflt') }} {{ none|default('dflt') }} {{ ''|default('dflt', true) }} {{ undefined_var|d('x') }}",
    "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 3.9|int }} {{ '2.5'|float }} {{ 5|string ~ '!' }} {{ 'ab'|list }} {% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}",
    "{{ d|tojson }} {{ d|tojson(indent=2) }} {{ 'é\"\\n'|tojson }} {{ [1.0, none, true]|tojson }} {{ {'x': {}}|tojson }} {{ [[]]|tojson(indent=1) }}",
    "{{ 'line1\nline2\n\nline4'|indent(2) }}|{{ 'a\nb'|indent(4, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}",
    "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 7) }} {{ d.keys()|list }} {{ d.values()|list }} {{ d['a'][1] }} {{ d.a[0] }} {{ d.missing is defined }}",
    "{{ xs[::-1] }} {{ xs[1:] }} {{ xs[:1] }} {{ xs[-1] }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ xs[0:10:2] }} {{ messages[-1].content }}",
    "{{ none is none }} {{ 1 is number }} {{ 'a' is string }} {{ d is mapping }} {{ xs is sequence }} {{ 'a' is iterable }} {{ true is true }} {{ 0 is false }} {{ x is undefined }} {{ 3 is odd }} {{ 4 is divisibleby 2 }} {{ 1 is integer }} {{ 1.0 is float }} {{ xs is not none }}",
    "{{ 'yes' if xs else 'no' }} {{ 'yes' if [] else 'no' }} [{{ 'only' if false }}] {{ (1, 2)|length }} {{ [1, 2][0] }} {{ {'k': 'v'}['k'] }} {{ range(3)|list }} {{ range(1, 7, 2)|list }}",
    "  {% if true %}\n    indented\n  {% endif %}\nafter\n{# comment #}\nend",
    "a  {%- if true -%}  b  {%- endif -%}  c {{- ' d ' -}} e\n{%+ if true %}x{% endif +%}\ny",
    "{% raw %}{{ not rendered }}{% endraw %} {{ '{{' }}",
    "{{ 'A' \n 'B' }}{{ \"\\u00e9\\x41\\t|\" }}",
    "{% filter upper %}shout {{ 'it' }}{% endfilter %}",
    "{{ strftime_now('%Y-%m-%d %H:%M:%S %b %B %a %A %d %-d %j %p %I %y') }}",
    "{{ messages[0]['role']|upper }}{{ messages|length }}{{ messages[1:]|map(attribute='role')|list }}",
]


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
    ctx = {"messages": SNIPPET_MESSAGES, "xs": [3, 1, 2], "d": {"b": 1, "a": [1, 2]}, "s": "  Hello World  "}
    snippets = [{"template": src, "expected": env.from_string(src).render(**ctx)} for src in SNIPPETS]
    with open(os.path.join(odir, "_snippets.json"), "w", encoding="utf-8") as f:
        json.dump({"now": NOW.strftime("%Y-%m-%dT%H:%M:%S"), "context": ctx, "snippets": snippets}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"_snippets: {len(snippets)} language-feature cases")


if __name__ == "__main__":
    main()
