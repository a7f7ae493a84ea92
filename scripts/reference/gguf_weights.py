"""GGUF access for the numpy reference forward pass.

Reads metadata and tensors with the `gguf` package (GGUFReader) and dequantizes each tensor once
with `gguf.quants.dequantize`, caching the float array. Shapes follow numpy (row-major) order:
a GGUF weight listed as [in, out] (ggml's ne0 first) comes back as a [out, in] matrix, so a
linear layer is `x @ W.T` with x: [tokens, in].
"""

from __future__ import annotations

import numpy as np
import gguf
from gguf.quants import dequantize


class GGUFWeights:
    def __init__(self, path: str, dtype=np.float32):
        self.path = path
        self.dtype = np.dtype(dtype)
        self.reader = gguf.GGUFReader(path)
        self.tensors = {t.name: t for t in self.reader.tensors}
        self._cache: dict[str, np.ndarray] = {}
        self.arch = self.get("general.architecture")

    # MARK: metadata

    def get(self, key: str, default=None):
        field = self.reader.fields.get(key)
        if field is None:
            return default
        return field.contents()

    def hp(self, key: str, default=None):
        """An architecture-scoped key: `hp("attention.head_count")` reads `<arch>.attention.head_count`."""
        return self.get(f"{self.arch}.{key}", default)

    def require(self, key: str):
        value = self.hp(key)
        if value is None:
            raise KeyError(f"{self.path}: missing metadata key {self.arch}.{key}")
        return value

    # MARK: tensors

    def has(self, name: str) -> bool:
        return name in self.tensors

    def tensor(self, name: str) -> np.ndarray:
        """The dequantized tensor in numpy order (reversed ggml dims), cached."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        t = self.tensors.get(name)
        if t is None:
            raise KeyError(f"{self.path}: no tensor {name}")
        data = dequantize(t.data, t.tensor_type)
        shape = tuple(int(d) for d in reversed(t.shape))
        array = np.ascontiguousarray(np.asarray(data).reshape(shape), dtype=self.dtype)
        self._cache[name] = array
        return array

    def optional(self, name: str) -> np.ndarray | None:
        return self.tensor(name) if self.has(name) else None

    # MARK: vocabulary (for printing)

    def token_text(self, token_id: int) -> str:
        tokens = self.reader.fields.get("tokenizer.ggml.tokens")
        if tokens is None:
            return f"<{token_id}>"
        text = tokens.contents(token_id)
        model = self.get("tokenizer.ggml.model")
        if model == "gpt2":  # byte-level BPE: map the printable stand-ins back to bytes
            table = _gpt2_byte_decoder()
            try:
                return bytes(table[c] for c in text).decode("utf-8", errors="replace")
            except KeyError:
                return text
        return text.replace("\u2581", " ")


_BYTE_DECODER: dict[str, int] | None = None


def _gpt2_byte_decoder() -> dict[str, int]:
    global _BYTE_DECODER
    if _BYTE_DECODER is None:
        visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
        codes = visible[:]
        n = 0
        for b in range(256):
            if b not in visible:
                visible.append(b)
                codes.append(256 + n)
                n += 1
        _BYTE_DECODER = {chr(c): b for b, c in zip(visible, codes)}
    return _BYTE_DECODER
