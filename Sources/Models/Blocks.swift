// Shared building blocks of decoder-only transformers, composed by the architecture files:
// a linear layer (weight + optional bias), self-attention with RoPE and a KV cache, and the
// gated MLP (SwiGLU / GeGLU). No block names a device or a quant type: each block knows its
// module name (ModuleNames.swift) and runs the operator the placement bound to that name in
// `ForwardContext.operators`, the prefill or generate one by the chunk's token count.
//
// Activation shapes: x [tokens, embedding] row-major float; q [tokens, heads, headDim];
// k, v [tokens, kvHeads, headDim].
import Core
import CPUKernels
import Operators

// MARK: - Linear

public struct Linear: Sendable {
    /// Module name ("model.layers.3.self_attn.q_proj", "lm_head").
    public let name: String
    /// [out, in]
    public let weight: WeightMatrix
    /// [out]
    public let bias: [Float]?

    public init(name: String = "", weight: WeightMatrix, bias: [Float]? = nil) {
        self.name = name; self.weight = weight; self.bias = bias
    }

    public var inFeatures: Int { weight.cols }
    public var outFeatures: Int { weight.rows }

    /// y [tokens, out] = x [tokens, in] · Wᵀ + b.
    public func callAsFunction(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens: Int, context: ForwardContext) {
        context.operators.linear(name, tokens: tokens).run(weight, x: x, y: y, tokens: tokens, pool: context.pool)
        if let b = bias {
            for t in 0..<tokens { Ops.add(y + t * outFeatures, b, count: outFeatures) }
        }
    }
}

extension Linear {
    /// Layers that read the same input x, in one pass when the placement binds them to the same
    /// operator (`LinearOperator.runMany`); otherwise one after another. Same results either way.
    public static func many(_ layers: [Linear], _ x: UnsafePointer<Float>, _ ys: [UnsafeMutablePointer<Float>], tokens: Int,
                            context: ForwardContext) {
        let ops = layers.map { context.operators.linear($0.name, tokens: tokens) }
        guard ops.allSatisfy({ $0.name == ops[0].name }) else {
            for (layer, y) in zip(layers, ys) { layer(x, y, tokens: tokens, context: context) }
            return
        }
        ops[0].runMany(layers.map(\.weight), x: x, ys: ys, tokens: tokens, pool: context.pool)
        for (layer, y) in zip(layers, ys) {
            if let b = layer.bias {
                for t in 0..<tokens { Ops.add(y + t * layer.outFeatures, b, count: layer.outFeatures) }
            }
        }
    }
}

/// A uniform choice of kernels and numerics for every module: `--kernels auto|reference`.
/// Placement plans supersede it (a kernel set is the binding a one-rule file would give);
/// it stays as a shorthand and for `cacheElement`, which sessions read.
public struct KernelSet: Sendable {
    public var name: String
    public var matmul: @Sendable (WeightMatrix, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, ThreadPool) -> Void
    /// KV cache element type: f16 selects flash-attention numerics, f32 exact attention.
    public var cacheElement: CacheElement
    /// GELU through llama.cpp's f16 table (true) or computed in float (false).
    public var geluTable: Bool

    /// Exact float numerics everywhere: weights dequantized to float, f32 KV cache, exact
    /// softmax and GELU. Slow; the yardstick for the other sets and for the numpy reference.
    public static let reference = KernelSet(
        name: "reference",
        matmul: { w, x, y, tokens, pool in Matmul.reference(w, x: x, y: y, tokens: tokens, pool: pool) },
        cacheElement: .f32, geluTable: false)

    /// llama.cpp's CPU numerics: activations quantized to 8 bits per block with integer dot
    /// products, f16 KV cache with flash-attention accumulation, table GELU.
    public static let quantized = KernelSet(
        name: "quantized",
        matmul: { w, x, y, tokens, pool in Matmul.quantized(w, x: x, y: y, tokens: tokens, pool: pool) },
        cacheElement: .f16, geluTable: true)

    /// The same choice as an operator binding.
    public var binding: OperatorBinding {
        cacheElement == .f32
            ? OperatorBinding(linear: LinearCPUReference(), attention: AttentionCPUExact(), mlp: MLPCPU(geluTable: geluTable))
            : OperatorBinding(linear: LinearCPUQuantized(), attention: AttentionCPUFlashF16(), mlp: MLPCPU(geluTable: geluTable))
    }
}

/// What every block needs during a forward pass.
public struct ForwardContext: @unchecked Sendable {
    public let pool: ThreadPool
    /// Summary of the numerics (KV cache element); blocks run `operators`.
    public let kernels: KernelSet
    /// Module name → operators, from the placement plan.
    public let operators: OperatorBinding

    public init(pool: ThreadPool, kernels: KernelSet) {
        self.pool = pool; self.kernels = kernels; operators = kernels.binding
    }

    /// A context running `operators`; `name` labels the numerics (e.g. the rule file).
    public init(pool: ThreadPool, operators: OperatorBinding, name: String) {
        self.pool = pool; self.operators = operators
        let f32 = operators.kvStorage == .f32
        kernels = KernelSet(name: name, matmul: f32 ? KernelSet.reference.matmul : KernelSet.quantized.matmul,
                            cacheElement: f32 ? .f32 : .f16, geluTable: !f32)
    }
}

// MARK: - RMSNorm

public struct RMSNorm: Sendable {
    /// [n]
    public let weight: [Float]
    public let epsilon: Float

    public init(weight: [Float], epsilon: Float) { self.weight = weight; self.epsilon = epsilon }

    /// Normalizes `rows` rows of weight.count elements from x into out (may alias); rows split
    /// over `pool` when given (each row's arithmetic is the same).
    public func callAsFunction(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, pool: ThreadPool? = nil) {
        weight.withUnsafeBufferPointer { w in
            guard let pool, rows > 1, pool.threadCount > 1 else {
                Ops.rmsNorm(x, weight: w.baseAddress!, out: out, rows: rows, n: w.count, eps: epsilon)
                return
            }
            let n = w.count, xs = UnsafeSendable(x), os = UnsafeSendable(out), ws = UnsafeSendable(w.baseAddress!), eps = epsilon
            pool.parallelFor(rows) { r in
                Ops.rmsNorm(xs.pointer + r.lowerBound * n, weight: ws.pointer, out: os.pointer + r.lowerBound * n, rows: r.count, n: n, eps: eps)
            }
        }
    }
}

// MARK: - Attention

/// Rotary embedding settings of one attention layer.
public struct RopeSettings: Sendable {
    public var base: Float
    public var dimensions: Int
    public var scale: Float = 1
    public var neox: Bool
    /// Per-pair frequency divisors (Llama 3 `rope_freqs.weight`).
    public var frequencyFactors: [Float]?

    public init(base: Float, dimensions: Int, scale: Float = 1, neox: Bool, frequencyFactors: [Float]? = nil) {
        self.base = base; self.dimensions = dimensions; self.scale = scale; self.neox = neox
        self.frequencyFactors = frequencyFactors
    }
}

public struct SelfAttention: Sendable {
    /// Module name ("model.layers.3.self_attn").
    public let name: String
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    public let q: Linear, k: Linear, v: Linear, o: Linear
    /// Per-head RMSNorm of queries and keys (Qwen3, Gemma 3), [headDim].
    public let qNorm: RMSNorm?, kNorm: RMSNorm?
    public let rope: RopeSettings
    /// Sliding window in tokens, nil for global attention.
    public let window: Int?
    public let scale: Float
    /// Multiply the rotated queries by `scale` before attention (which then scales by 1), as
    /// llama.cpp's Gemma graphs do; the same value except where f16 rounding of small queries differs.
    public let scaleQueries: Bool

    public init(name: String = "", heads: Int, kvHeads: Int, headDim: Int, q: Linear, k: Linear, v: Linear, o: Linear,
                qNorm: RMSNorm? = nil, kNorm: RMSNorm? = nil, rope: RopeSettings, window: Int? = nil, scale: Float? = nil,
                scaleQueries: Bool = false) {
        self.name = name; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        self.q = q; self.k = k; self.v = v; self.o = o; self.qNorm = qNorm; self.kNorm = kNorm
        self.rope = rope; self.window = window
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
        self.scaleQueries = scaleQueries
    }

    /// out [tokens, embedding] = attention over the cache after appending this chunk's keys/values.
    public func callAsFunction(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, tokens: Int,
                               positions: UnsafePointer<Int32>, cache: LayerCache, context: ForwardContext) {
        let qWidth = heads * headDim, kvWidth = kvHeads * headDim
        let qb = UnsafeMutablePointer<Float>.allocate(capacity: tokens * qWidth)
        let kb = UnsafeMutablePointer<Float>.allocate(capacity: tokens * kvWidth)
        let vb = UnsafeMutablePointer<Float>.allocate(capacity: tokens * kvWidth)
        let attn = UnsafeMutablePointer<Float>.allocate(capacity: tokens * qWidth)
        defer { qb.deallocate(); kb.deallocate(); vb.deallocate(); attn.deallocate() }

        Linear.many([q, k, v], x, [qb, kb, vb], tokens: tokens, context: context)
        qNorm?(qb, qb, rows: tokens * heads)
        kNorm?(kb, kb, rows: tokens * kvHeads)
        applyRope(qb, tokens: tokens, heads: heads, positions: positions, pool: context.pool)
        applyRope(kb, tokens: tokens, heads: kvHeads, positions: positions, pool: context.pool)
        if Trace.enabled {
            let layer = name.split(separator: ".").first(where: { Int($0) != nil }).map(String.init) ?? "?"
            Trace.record("Qcur-\(layer)", qb, rows: tokens, cols: qWidth)
            Trace.record("Kcur-\(layer)", kb, rows: tokens, cols: kvWidth)
            Trace.record("Vcur-\(layer)", vb, rows: tokens, cols: kvWidth)
        }
        for t in 0..<tokens {
            cache.store(position: Int(positions[t]), keys: kb + t * kvWidth, values: vb + t * kvWidth)
        }
        if scaleQueries { for i in 0..<tokens * qWidth { qb[i] *= scale } }
        let op = context.operators.attention(name, tokens: tokens)
        precondition((op.storage == .f16) == (cache.element == .f16),
                     "\(op.name) reads a \(op.storage) KV cache but the session's is \(cache.element)")
        op.run(q: qb, keys: cache.keys, values: cache.values, out: attn,
               shape: AttentionShape(tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim, window: window,
                                     scale: scaleQueries ? 1 : scale),
               positions: positions, pool: context.pool)
        if Trace.enabled {
            let layer = name.split(separator: ".").first(where: { Int($0) != nil }).map(String.init) ?? "?"
            Trace.record("kqv_out-\(layer)", attn, rows: tokens, cols: qWidth)
        }
        o(attn, out, tokens: tokens, context: context)
    }

    private func applyRope(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, positions: UnsafePointer<Int32>, pool: ThreadPool) {
        if tokens > 1 && pool.threadCount > 1 {
            // Token by token over the pool (each token's rotation is independent).
            let xs = UnsafeSendable(x), ps = UnsafeSendable(positions), width = heads * headDim
            pool.parallelFor(tokens) { t in
                applyRope(xs.pointer + t.lowerBound * width, tokens: t.count, heads: heads, positions: ps.pointer + t.lowerBound)
            }
            return
        }
        applyRope(x, tokens: tokens, heads: heads, positions: positions)
    }

    private func applyRope(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, positions: UnsafePointer<Int32>) {
        if let ff = rope.frequencyFactors {
            ff.withUnsafeBufferPointer { f in
                Ops.rope(x, tokens: tokens, heads: heads, headDim: headDim, rotDim: rope.dimensions, positions: positions,
                         base: rope.base, scale: rope.scale, freqFactors: f.baseAddress, neox: rope.neox)
            }
        } else {
            Ops.rope(x, tokens: tokens, heads: heads, headDim: headDim, rotDim: rope.dimensions, positions: positions,
                     base: rope.base, scale: rope.scale, neox: rope.neox)
        }
    }
}

// MARK: - Gated MLP

public struct GatedMLP: Sendable {
    public enum Activation: Sendable { case silu, geluTanh }
    /// Module name ("model.layers.3.mlp").
    public let name: String
    public let gate: Linear, up: Linear, down: Linear
    public let activation: Activation

    public init(name: String = "", gate: Linear, up: Linear, down: Linear, activation: Activation) {
        self.name = name; self.gate = gate; self.up = up; self.down = down; self.activation = activation
    }

    /// out [tokens, embedding] = down(act(gate(x)) · up(x)).
    public func callAsFunction(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, tokens: Int, context: ForwardContext) {
        let ff = gate.outFeatures
        let g = UnsafeMutablePointer<Float>.allocate(capacity: tokens * ff)
        let u = UnsafeMutablePointer<Float>.allocate(capacity: tokens * ff)
        defer { g.deallocate(); u.deallocate() }
        Linear.many([gate, up], x, [g, u], tokens: tokens, context: context)
        let layer = Trace.enabled ? name.split(separator: ".").first(where: { Int($0) != nil }).map(String.init) ?? "?" : ""
        if Trace.enabled {
            Trace.record("ffn_gate-\(layer)", g, rows: tokens, cols: ff)
            Trace.record("ffn_up-\(layer)", u, rows: tokens, cols: ff)
        }
        // Elementwise, row by row over the pool (one row per token: the same operations as one call).
        let op = context.operators.mlp(name, tokens: tokens), gelu = activation == .geluTanh
        let gs = UnsafeSendable(g), us = UnsafeSendable(UnsafePointer(u))
        if tokens > 1 {
            context.pool.parallelFor(tokens) { rows in
                op.activate(gate: gs.pointer + rows.lowerBound * ff, up: us.pointer + rows.lowerBound * ff, count: rows.count * ff, gelu: gelu)
            }
        } else {
            op.activate(gate: g, up: u, count: ff, gelu: gelu)
        }
        if Trace.enabled { Trace.record((activation == .geluTanh ? "ffn_geglu-" : "ffn_swiglu-") + layer, g, rows: tokens, cols: ff) }
        down(g, out, tokens: tokens, context: context)
    }
}
