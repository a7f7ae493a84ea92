#!/usr/bin/env python3
"""Generate tokenizer fixtures for Tests/TokenizerTests from llama.cpp (via llama-cpp-python).

For each real model (SmolLM2-135M-Instruct: byte-level BPE, pre "smollm"; Gemma 3 270M:
SentencePiece) it tokenizes a varied corpus with llama.cpp and records the ids (special tokens
parsed and not), the detokenized text, and the model's special ids. It also records the
pre-tokenizer splits of llama.cpp's regexes for every pre type we implement, computed with
Python's `regex` module using llama.cpp's multi-regex scheme (each regex splits every fragment
left by the previous one into matches and gaps), so pre-tokenizers whose vocabularies we do not
ship (llama-bpe, qwen2, deepseek-*) are still checked.

Usage:
    pip install llama-cpp-python==0.3.36 regex
    SWIFTKT_HOME=~/.cache/swiftkt python3 scripts/gen_tokenizer_fixtures.py

Writes Tests/TokenizerTests/Fixtures/{smollm2,gemma3}.json and pretokenizers.json.
"""

import json
import os
import sys

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "TokenizerTests", "Fixtures")
HOME = os.environ.get("SWIFTKT_HOME", os.path.expanduser("~/.cache/swiftkt"))
MODELS = {
    "smollm2": os.path.join(HOME, "models", "smollm2-135m-instruct.gguf"),
    "gemma3": os.path.join(HOME, "models", "gemma3-270m.gguf"),
}

# ---------------------------------------------------------------------------------------------
# Corpus

CORPUS = [
    "",
    " ",
    "  ",
    "\n",
    "\t",
    "Hello",
    "Hello world",
    " Hello world",
    "  Hello  world  ",
    "Hello, world! How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you're right, they've said we'll go and he'd've known it's John's.",
    "DON'T SHOUT, I'M HERE. IT'S FINE'S",
    "'s 't 're 've 'm 'll 'd",
    "rock'n'roll o'clock y'all",
    "0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
    "3.14159 2,718 -17 +3e10 0x1F 1_000_000",
    "Version 2.0.1-beta released on 2024-03-15 at 10:30am",
    "Prices: $5.99, €12, £7.50, ¥1000",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "if x != y && (z >= 10 || w <= -5) { return x->next; }",
    "<html><body class=\"main\"><p>Hi &amp; bye</p></body></html>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
    "https://example.com/path?query=1&other=two#frag",
    "user@example.com, admin+tag@mail.co.uk",
    "café naïve résumé façade coöperate Ångström",
    "e\u0301 vs \u00e9 (combining acute vs precomposed)",
    "Straße, Œuvre, Æsir, ĳssel, ﬁne",
    "Привет, как дела? Всё хорошо.",
    "Γειά σου Κόσμε — ελληνικά",
    "日本語のテキストです。東京は大きい。",
    "中文测试：你好，世界！",
    "한국어 텍스트 안녕하세요",
    "مرحبا بالعالم، كيف حالك؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "ภาษาไทยไม่มีช่องว่าง",
    "עברית מימין לשמאל",
    "Emoji: 😀 😂 🎉 🚀 ❤️ 👍🏽",
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👩🏾‍💻 coder",
    "🇫🇷🇯🇵🇺🇸 flags",
    "Mixed: hello世界123abc😀!",
    "∑(i=1→n) i² = n(n+1)/2 ≈ ∞ ≠ π",
    "→ ← ↑ ↓ ★ ☆ ♠ ♣ © ® ™ § ¶ †",
    "a\tb\t\tc\t\t\td",
    "line1\nline2\n\nline4\n\n\n\nline8",
    "windows\r\nline\r\nendings\r\n",
    "   leading spaces",
    "trailing spaces   ",
    "many          spaces          here",
    " \n \n\t\n  \t  ",
    "\n\n\n\n\n\n\n\n\n\n\n\n",
    "word\u00a0nbsp\u2003emspace\u3000ideographic",
    "zero\u200bwidth\u200djoiner\u200cnon",
    "control\u0001chars\u0007here\u001f",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<|im_start|><|im_end|><|im_start|>",
    "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
    "<bos><eos><pad><unk>",
    "<unused0> <unused99> [multimodal]",
    "<|not_a_token|> <im_start> <|im_start",
    "A sentence with <b>bold</b> and <i>italic</i> tags.",
    "ALLCAPS lowercase MiXeDcAsE camelCaseWord snake_case_word kebab-case-word",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...,,,;;;:::",
    "((([[[{{{}}}]]])))",
    "----====____****####",
    "The year 1999 vs 2000: 1,000,000 people; pi=3.14159265358979",
    "Ünïcödé ünd ÄÖÜ äöü ß",
    "I said \"hello\" and she said 'goodbye'.",
    "Tab\tseparated\tvalues\nand\tmore",
    "  \t mixed \t whitespace \t  ",
    "ﾊﾝｶｸ half-width katakana and ｆｕｌｌｗｉｄｔｈ",
    "x" * 3 + " " * 17 + "y",
    "Σ σ ς ΐ ΰ ﬀ ﬃ",
    "\u2581already\u2581escaped\u2581spaces",
    "<0x41> <0xFF> byte-token-looking text",
]

# ---------------------------------------------------------------------------------------------
# llama.cpp pre-tokenizer regexes (src/llama-vocab.cpp, llm_tokenizer_bpe)

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
         r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# deepseek-llm's letter class, as code point ranges (the source spells them as literal characters).
DEEPSEEK_LETTERS = [
    (0x41, 0x5A), (0x61, 0x7A), (0xB5, 0xB5), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x1BA), (0x1BC, 0x1BF),
    (0x1C4, 0x293), (0x295, 0x2AF), (0x370, 0x373), (0x376, 0x377), (0x37B, 0x37D), (0x37F, 0x37F),
    (0x386, 0x386), (0x388, 0x38A), (0x38C, 0x38C), (0x38E, 0x3A1), (0x3A3, 0x3F5), (0x3F7, 0x481),
    (0x48A, 0x52F), (0x531, 0x556), (0x10A0, 0x10C5), (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1C90, 0x1CBA),
    (0x1CBD, 0x1CBF), (0x1D00, 0x1D2B), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1F15),
    (0x1F18, 0x1F1D), (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57), (0x1F59, 0x1F59),
    (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC),
    (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB),
    (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2102, 0x2102), (0x2107, 0x2107),
    (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126),
    (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2134), (0x2139, 0x2139), (0x213C, 0x213F),
    (0x2145, 0x2149), (0x214E, 0x214E), (0x2183, 0x2184), (0x2C00, 0x2C7B), (0x2C7E, 0x2CE4),
    (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF3), (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F),
    (0xA771, 0xA787), (0xA78B, 0xA78E), (0xAB70, 0xABBF), (0xFB00, 0xFB06), (0xFB13, 0xFB17),
    (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0x10400, 0x1044F), (0x104B0, 0x104D3), (0x104D8, 0x104FB),
    (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x118A0, 0x118DF), (0x1E900, 0x1E943),
]


def char_class(ranges):
    return "[" + "".join("\\U%08x-\\U%08x" % r for r in ranges) + "]"


PRE_TOKENIZERS = {
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "gpt2": [GPT2],
    "smollm": [r"\p{N}", GPT2],
    "llama-bpe": [LLAMA3],
    "qwen2": [QWEN2],
    "deepseek-llm": [
        r"[\r\n]",
        r"\s?" + char_class(DEEPSEEK_LETTERS) + "+",
        r"\s?" + char_class([(0x21, 0x2F), (0x3A, 0x7E), (0xFF01, 0xFF0F), (0xFF1A, 0xFF5E),
                             (0x2018, 0x201F), (0x3000, 0x3002)]) + "+",
        r"\s+\Z",  # llama.cpp's "\s+$" (std::regex: end of fragment only)
        char_class([(0x4E00, 0x9FA5), (0x0800, 0x4E00), (0xAC00, 0xD7FF)]) + "+",
        r"\p{N}+",
    ],
    "deepseek-v3": [
        r"\p{N}{1,3}",
        char_class([(0x4E00, 0x9FA5), (0x3040, 0x309F), (0x30A0, 0x30FF)]) + "+",
        r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
        r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    ],
}

PRE_EXTRA = [
    "Hello world", "I'M here, you're there; THEY'VE gone", "abc123def4567", "  a  b   c    ",
    "x\n\ny\r\n\r\nz", "   \n   ", "tab\t\tsep", "ümlaut ÄÖÜ", "CJK 中文字符 かなカナ 한글", "12345678",
    "a1b22c333d4444", "..!!??", " ...hello", "'hello' \"world\"", "foo.bar(baz)", "e\u0301\u0301x",
    "مرحبا 123", "😀😀 🚀", "\u00a0nbsp", "end  ", "αβγ δεζ", "x=1;y=22;z=333", "ＡＢＣ ａｂｃ",
    "‘quoted’ “double”", "a　b", "\u0903\u0905", "$100 +5 <tag> ^~|", "1 2  3   4",
]


def pre_split(text, regexes):
    fragments = [text] if text else []
    for expr in regexes:
        out = []
        for f in fragments:
            pos = 0
            for m in regex.finditer(expr, f):
                if m.start() > pos:
                    out.append(f[pos:m.start()])
                if m.end() > m.start():
                    out.append(m.group())
                pos = m.end()
            if pos < len(f):
                out.append(f[pos:])
        fragments = out
    return fragments


# ---------------------------------------------------------------------------------------------

def model_fixture(name, path):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    n = llama_cpp.llama_vocab_n_tokens(vocab)

    def opt(v):
        return None if v < 0 else v

    cases = []
    for text in CORPUS:
        b = text.encode("utf-8")
        ids = llm.tokenize(b, add_bos=True, special=True)
        plain = llm.tokenize(b, add_bos=False, special=False)
        decoded = llm.detokenize(ids, special=True).decode("utf-8")
        decoded_plain = llm.detokenize(plain, special=False).decode("utf-8")
        cases.append({
            "text": text,
            "ids": ids,
            "ids_no_special": plain,
            "decoded": decoded,
            "decoded_no_special": decoded_plain,
        })
    return {
        "model": name,
        "gguf": os.path.basename(path),
        "vocab_size": n,
        "bos": opt(llama_cpp.llama_vocab_bos(vocab)),
        "eos": opt(llama_cpp.llama_vocab_eos(vocab)),
        "eot": opt(llama_cpp.llama_vocab_eot(vocab)),
        "eog": [i for i in range(n) if llama_cpp.llama_vocab_is_eog(vocab, i)],
        "cases": cases,
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, path in MODELS.items():
        if not os.path.exists(path):
            sys.exit(f"missing model {path}")
        fx = model_fixture(name, path)
        with open(os.path.join(OUT, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(fx, f, ensure_ascii=False, indent=1)
        print(f"{name}: {len(fx['cases'])} cases")

    texts = [t for t in CORPUS if t] + PRE_EXTRA
    pre = {kind: [{"text": t, "words": pre_split(t, exprs)} for t in texts]
           for kind, exprs in PRE_TOKENIZERS.items()}
    with open(os.path.join(OUT, "pretokenizers.json"), "w", encoding="utf-8") as f:
        json.dump(pre, f, ensure_ascii=False, indent=1)
    print(f"pretokenizers: {len(PRE_TOKENIZERS)} kinds x {len(texts)} texts")


if __name__ == "__main__":
    main()
