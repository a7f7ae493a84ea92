// Today's CPU operators, thin wrappers over CPUKernels. Each is registered by name in
// Registry.swift; their numerics are described in docs/numerics.md.
//
//   LinearCPUQuantized   activations quantized per block to 8 bits, integer dot products (default)
//   LinearCPUReference   each weight row dequantized to float, float dot (the yardstick)
//   AttentionCPUFlashF16 f16 KV cache, llama.cpp's flash-attention accumulation (default)
//   AttentionCPUExact    f32 KV cache, float scores, max-subtracted softmax
//   AttentionCPUBlockSparse  f16 KV cache; long-context decode over chosen blocks of keys
//   MLPCPU               gated MLP activation, GELU by llama.cpp's f16 table or exact formula
import CPUKernels

public struct LinearCPUQuantized: LinearOperator {
    public let name = "LinearCPUQuantized"
    public init() {}
    public func run(_ w: WeightMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, tokens: Int, pool: ThreadPool) {
        Matmul.quantized(w, x: x, y: y, tokens: tokens, pool: pool)
    }
    public func runMany(_ ws: [WeightMatrix], x: UnsafePointer<Float>, ys: [UnsafeMutablePointer<Float>], tokens: Int, pool: ThreadPool) {
        Matmul.quantizedMany(ws, x: x, ys: ys, tokens: tokens, pool: pool)
    }
    public func prepare(_ w: WeightMatrix) -> Int { Matmul.prepare(w) }
}

public struct LinearCPUReference: LinearOperator {
    public let name = "LinearCPUReference"
    public init() {}
    public func run(_ w: WeightMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, tokens: Int, pool: ThreadPool) {
        Matmul.reference(w, x: x, y: y, tokens: tokens, pool: pool)
    }
}

public struct AttentionCPUFlashF16: AttentionOperator {
    public let name = "AttentionCPUFlashF16"
    public let storage = KVStorage.f16
    public init() {}
    public func run(q: UnsafePointer<Float>, keys: UnsafeRawPointer, values: UnsafeRawPointer, out: UnsafeMutablePointer<Float>,
                    shape s: AttentionShape, positions: UnsafePointer<Int32>, pool: ThreadPool) {
        Attention.flashF16(q: q, k: keys.assumingMemoryBound(to: UInt16.self), v: values.assumingMemoryBound(to: UInt16.self),
                           out: out, tokens: s.tokens, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
                           positions: positions, window: s.window, scale: s.scale, pool: pool)
    }
}

/// Block-sparse attention for long contexts (CPUKernels/BlockSparseAttention.swift): decode
/// steps attend to the first and last keys and the blocks between them whose anchors score
/// highest; prefill chunks, sliding windows and short contexts run `AttentionCPUFlashF16`'s kernel.
public struct AttentionCPUBlockSparse: AttentionOperator {
    public let name = "AttentionCPUBlockSparse"
    public let storage = KVStorage.f16
    public let config: BlockSparseConfig
    public init(config: BlockSparseConfig = BlockSparseConfig()) { self.config = config }
    public func run(q: UnsafePointer<Float>, keys: UnsafeRawPointer, values: UnsafeRawPointer, out: UnsafeMutablePointer<Float>,
                    shape s: AttentionShape, positions: UnsafePointer<Int32>, pool: ThreadPool) {
        BlockSparseAttention.run(q: q, k: keys.assumingMemoryBound(to: UInt16.self), v: values.assumingMemoryBound(to: UInt16.self),
                                 out: out, tokens: s.tokens, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
                                 positions: positions, window: s.window, scale: s.scale, config: config, pool: pool)
    }
}

public struct AttentionCPUExact: AttentionOperator {
    public let name = "AttentionCPUExact"
    public let storage = KVStorage.f32
    public init() {}
    public func run(q: UnsafePointer<Float>, keys: UnsafeRawPointer, values: UnsafeRawPointer, out: UnsafeMutablePointer<Float>,
                    shape s: AttentionShape, positions: UnsafePointer<Int32>, pool: ThreadPool) {
        Attention.reference(q: q, k: keys.assumingMemoryBound(to: Float.self), v: values.assumingMemoryBound(to: Float.self),
                            out: out, tokens: s.tokens, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
                            positions: positions, window: s.window, scale: s.scale, pool: pool)
    }
}

public struct MLPCPU: MLPOperator {
    public let name = "MLPCPU"
    /// llama.cpp's activation numerics (true: GELU through its f16 table, SiLU through ggml's
    /// vectorized expf) or plain float formulas (false).
    public let geluTable: Bool
    public init(geluTable: Bool = true) { self.geluTable = geluTable }
    public func activate(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int, gelu: Bool) {
        Ops.gatedActivation(gate: gate, up: up, count: count, activation: gelu ? (geluTable ? .geluTable : .gelu) : (geluTable ? .siluGGML : .silu))
    }
}
