// Shipped rule files, compiled in so that the binary is self-contained. Generated from rules/*.yaml
// by scripts/gen_shipped_rules.py; InjectionTests checks that both agree. Do not edit by hand.

enum ShippedRuleTexts {
    static let files: [String: String] = [
        "cpu-long-context.yaml": #"""
# Long contexts on the CPU: rules/cpu.yaml with block-sparse decode attention
# (AttentionCPUBlockSparse, docs/long-context.md) from the third layer on (the first two stay
# dense, KTransformers' dense_layer_num: 2). A decode step attends to the first 64 keys, the last
# 512 and the 16 blocks of 64 keys between them whose anchors (per-channel min and max of the
# keys) score highest: 1 600 keys however long the context, instead of all of them. Prompts run
# dense; a context of up to 1 600 keys is exactly rules/cpu.yaml's. Sliding-window layers (Gemma 3's
# local ones) stay dense: their window already bounds them.
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
    name: "^model\\.layers\\.[01]\\.self_attn$"
    class: Attention
  replace:
    class: AttentionCPUFlashF16
    kwargs:
      device: cpu
- match:
    class: Attention
  replace:
    class: AttentionCPUBlockSparse
    kwargs:
      device: cpu
      block_size: 64
      init_tokens: 64
      local_tokens: 512
      second_select_num: 16
      anchor: quest
  optional: true  # (a model of two layers has none)
- match:
    class: MLP
  replace:
    class: MLPCPU
    kwargs:
      device: cpu
      gelu: table
  optional: true
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
- match:
    class: Router
  replace:
    class: LinearCPUQuantized
    kwargs:
      device: cpu
  optional: true
- match:
    class: Experts
  replace:
    class: ExpertsCPU
    kwargs:
      device: cpu
  optional: true
"""#,
        "cpu-reference.yaml": #"""
# Exact float numerics on the CPU (what `--kernels reference` selects): weight rows dequantized
# to float with float dot products, f32 KV cache with exact softmax, GELU by its tanh formula,
# routed experts with float matmuls. Slow; the yardstick for the other rule files and for the
# numpy reference.
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
  optional: true
- match:
    class: Router
  replace:
    class: LinearCPUReference
  optional: true
- match:
    class: Experts
  replace:
    class: ExpertsCPUReference
  optional: true
"""#,
        "cpu.yaml": #"""
# Default placement on the CPU for every architecture, dense (llama, qwen2, qwen3, gemma3) and
# mixture of experts (mixtral, qwen2moe, qwen3moe, deepseek2): llama.cpp's CPU numerics. Linear layers
# quantize activations to 8 bits per block and use integer dot products on the GGUF weights;
# attention keeps an f16 KV cache with flash-attention accumulation; GELU goes through
# llama.cpp's f16 table; routed experts run on their quantized weights, tokens grouped by expert.
# Every module on the CPU in both phases. Rules for modules only some models have are optional.
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
  optional: true
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
- match:
    class: Router
  replace:
    class: LinearCPUQuantized
    kwargs:
      device: cpu
  optional: true
- match:
    class: Experts
  replace:
    class: ExpertsCPU
    kwargs:
      device: cpu
  optional: true
"""#,
        "cuda-fast.yaml": #"""
# rules/cuda.yaml tuned for speed over agreement with the CPU path: short prompt chunks (2-64
# tokens) through the Marlin-class 4-bit tensor-core GEMM (f16 activations instead of the CPU's
# 8-bit ones) and f32 attention everywhere. Logits stay within the CPU path's spread from the
# exact float reference, but greedy tokens may take the other side of a near tie.
- match:
    class: Linear
  replace:
    class: LinearCUDA
    kwargs:
      device: "cuda:0"
      # Chunks of 2-64 tokens: q4_0/q4_1/q4_K weights through the Marlin-class tensor-core GEMM
      # on a copy repacked at load (+5/8 byte per weight; skipped when VRAM is short).
      marlin_max_tokens: 64
- match:
    class: LMHead
  replace:
    class: LinearCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: Attention
  replace:
    class: AttentionCUDA
    kwargs:
      device: "cuda:0"
      # f32 attention (not llama.cpp's CPU f16 numerics): chunks below 16 tokens in one kernel up
      # to 128 keys, split-K flash decoding beyond (+23 % over cuda.yaml at 8B tg1024, H100);
      # tiles for longer prompt chunks.
      numerics: fast
- match:
    class: MLP
  replace:
    class: MLPCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: RMSNorm
  replace:
    class: RMSNormCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: RotaryEmbedding
  replace:
    class: RoPECUDA
    kwargs:
      device: "cuda:0"
- match:
    class: Embedding
  replace:
    class: EmbeddingCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: DecoderLayer
  replace:
    class: DecoderLayerCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: Model
  replace:
    class: ModelCUDA
    kwargs:
      device: "cuda:0"
"""#,
        "cuda-moe.yaml": #"""
# A mixture of experts (mixtral, qwen2moe, qwen3moe, deepseek2) on the first GPU and the CPU,
# KTransformers' set-up: each MoE block's router and routed experts on the CPU, straight on the
# GGUF weights in DRAM (tokens grouped by expert, all cores); the shared expert and its gate
# (qwen2moe, deepseek2), attention (deepseek2's MLA included), norms and the LM head on cuda:0 as
# in cuda.yaml. Each layer's normalized hidden state goes to page-locked host memory; the GPU
# computes the shared expert, the CPU the routed ones, whose sum comes back and is
# added. (A rule placing `\.mlp\.shared_expert` and its linears on the CPU keeps the whole block
# there, as before session 10.) Prompt-sized chunks can run the routed experts on the GPU instead
# (stream_to_gpu_min_tokens). This is the default with a GPU for every mixture of experts whose
# attention the GPU runs: deepseek2 files with attn_kv_b included, but not those with split attn_k_b /
# attn_v_b (absorbed MLA), which have no GPU attention kernels and default to rules/cpu.yaml.
- match:
    class: MoE
  replace:
    class: MoECPU
    kwargs:
      device: cpu
  optional: true
- match:
    class: Router
  replace:
    class: LinearCPUQuantized
    kwargs:
      device: cpu
  optional: true
- match:
    class: Experts
  replace:
    class: ExpertsCPU
    kwargs:
      device: cpu
      # Prompt chunks of at least this many tokens copy each layer's expert weights to the GPU
      # (two layers ahead, over PCIe) and run the experts there; decode keeps them on the CPU.
      # Qwen3-30B-A3B shape on an H100 host: pp128 422 t/s streamed vs 165 with the experts on
      # the CPU; break-even ~50 tokens (docs/moe.md). 0: never.
      stream_to_gpu_min_tokens: 64
  optional: true
- match:
    class: Linear
  replace:
    class: LinearCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: LMHead
  replace:
    class: LinearCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: Attention
  replace:
    class: AttentionCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: MLP
  replace:
    class: MLPCUDA
    kwargs:
      device: "cuda:0"
  optional: true
- match:
    class: RMSNorm
  replace:
    class: RMSNormCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: RotaryEmbedding
  replace:
    class: RoPECUDA
    kwargs:
      device: "cuda:0"
- match:
    class: Embedding
  replace:
    class: EmbeddingCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: DecoderLayer
  replace:
    class: DecoderLayerCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: Model
  replace:
    class: ModelCUDA
    kwargs:
      device: "cuda:0"
"""#,
        "cuda.yaml": #"""
# A dense model (llama, qwen2, qwen3, gemma3) entirely on the first GPU: weights uploaded in
# their GGUF blocks, linear layers as integer dot products on 8-bit activations, an f16 KV
# cache with attention in llama.cpp's CPU numerics, decode steps replayed as a CUDA graph;
# long prompt chunks through f16 cuBLAS. Numerics follow the CPU path (same greedy tokens);
# rules/cuda-fast.yaml trades that for speed. Mixtures of experts keep their experts on the CPU
# (rules/cuda-moe.yaml).
- match:
    class: Linear
  replace:
    class: LinearCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: LMHead
  replace:
    class: LinearCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: Attention
  replace:
    class: AttentionCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: MLP
  replace:
    class: MLPCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: RMSNorm
  replace:
    class: RMSNormCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: RotaryEmbedding
  replace:
    class: RoPECUDA
    kwargs:
      device: "cuda:0"
- match:
    class: Embedding
  replace:
    class: EmbeddingCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: DecoderLayer
  replace:
    class: DecoderLayerCUDA
    kwargs:
      device: "cuda:0"
- match:
    class: Model
  replace:
    class: ModelCUDA
    kwargs:
      device: "cuda:0"
"""#,
    ]
}
