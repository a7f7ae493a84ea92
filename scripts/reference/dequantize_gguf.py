#!/usr/bin/env python3
"""Writes an all-F32 copy of a GGUF file (same metadata, every tensor dequantized).

Used to check the reference forward pass against llama.cpp without llama.cpp's activation
quantization: with F32 weights ggml multiplies in float32, so llama.cpp (KV cache set to F32)
and forward.py should agree to about 1e-3 on every logit. See README.md in this directory.

    python3 scripts/reference/dequantize_gguf.py IN.gguf OUT.gguf [KEY=INT ...]

Trailing KEY=INT arguments replace integer metadata values (e.g.
`gemma3.attention.sliding_window=4`, to exercise the sliding window with a short prompt).
"""

import sys

import numpy as np
import gguf
from gguf.quants import dequantize


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    src, dst = sys.argv[1:3]
    overrides = {k: int(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst, arch)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue
        if field.name == "general.file_type":
            writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = overrides.pop(field.name, field.contents())
        writer.add_key_value(field.name, value, vtype, sub_type=sub)
    if overrides:
        raise SystemExit(f"not in {src}: {', '.join(overrides)}")
    for t in reader.tensors:
        data = dequantize(t.data, t.tensor_type).astype(np.float32)
        writer.add_tensor(t.name, data.reshape(tuple(int(d) for d in reversed(t.shape))))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
