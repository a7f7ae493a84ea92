// Shipped rule files, compiled in so that the binary is self-contained. Generated from rules/*.yaml
// by scripts/gen_shipped_rules.py; InjectionTests checks that both agree. Do not edit by hand.

enum ShippedRuleTexts {
    static let files: [String: String] = [
        "cpu-reference.yaml": #"""
# Exact float numerics on the CPU (what `--kernels reference` selects): weight rows dequantized
# to float with float dot products, f32 KV cache with exact softmax, GELU by its tanh formula.
# Slow; the yardstick for the other rule files and for the numpy reference.
- match:
    class: Linear
  replace:
    class: LinearCPUReference
- match:
    class: LMHead
  replace:
    class: LinearCPUReference
- match:
    class: Attention
  replace:
    class: AttentionCPUExact
- match:
    class: MLP
  replace:
    class: MLPCPU
    kwargs:
      gelu: exact
"""#,
        "cpu.yaml": #"""
# Default placement for dense models (llama, qwen2, qwen3, gemma3) on the CPU: llama.cpp's CPU
# numerics. Linear layers quantize activations to 8 bits per block and use integer dot products
# on the GGUF weights; attention keeps an f16 KV cache with flash-attention accumulation; GELU
# goes through llama.cpp's f16 table. Every module on the CPU in both phases.
- match:
    class: Linear
  replace:
    class: LinearCPUQuantized
    kwargs:
      device: cpu
- match:
    class: LMHead
  replace:
    class: LinearCPUQuantized
    kwargs:
      device: cpu
- match:
    class: Attention
  replace:
    class: AttentionCPUFlashF16
    kwargs:
      device: cpu
- match:
    class: MLP
  replace:
    class: MLPCPU
    kwargs:
      device: cpu
      gelu: table
- match:
    class: RMSNorm
  replace:
    class: RMSNormCPU
- match:
    class: RotaryEmbedding
  replace:
    class: RoPECPU
- match:
    class: Embedding
  replace:
    class: EmbeddingCPU
    kwargs:
      device: cpu
"""#,
    ]
}
