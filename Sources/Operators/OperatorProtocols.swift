// Operator protocols: what a model block calls to run a module, whichever implementation the
// placement chose. Shapes follow Models/Blocks.swift: x [tokens, in], y [tokens, out] row-major
// float; q [tokens, heads, headDim]; the KV cache [capacity, kvHeads · headDim] per layer.
//
// An `OperatorBinding` holds, per module name, the prefill and generate operators and the
// threshold between them: a forward chunk of more than `prefillThreshold` tokens runs the
// prefill operator, otherwise the generate operator.
import CPUKernels

// MARK: - Protocols

/// Any operator instance; the registry builds them from a rule's kwargs.
public protocol ModuleOperator: Sendable {
    /// The registry name ("LinearCPUQuantized").
    var name: String { get }
}

/// y [tokens, out] = x [tokens, in] · Wᵀ (the bias is added by the block).
public protocol LinearOperator: ModuleOperator {
    func run(_ w: WeightMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, tokens: Int, pool: ThreadPool)
}

/// Element type of the KV cache an attention operator reads.
public enum KVStorage: String, Sendable { case f16, f32 }

/// Geometry of one attention call.
public struct AttentionShape: Sendable {
    public var tokens: Int, heads: Int, kvHeads: Int, headDim: Int
    /// Sliding window in tokens, nil for global attention.
    public var window: Int?
    public var scale: Float
    public init(tokens: Int, heads: Int, kvHeads: Int, headDim: Int, window: Int?, scale: Float) {
        self.tokens = tokens; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        self.window = window; self.scale = scale
    }
}

/// out [tokens, heads, headDim] = softmax(q · Kᵀ · scale, causal) · V over the cache.
public protocol AttentionOperator: ModuleOperator {
    var storage: KVStorage { get }
    func run(q: UnsafePointer<Float>, keys: UnsafeRawPointer, values: UnsafeRawPointer, out: UnsafeMutablePointer<Float>,
             shape: AttentionShape, positions: UnsafePointer<Int32>, pool: ThreadPool)
}

/// The gated MLP's activation step: gate ← act(gate) · up. (The projections are Linear modules
/// with operators of their own.)
public protocol MLPOperator: ModuleOperator {
    func activate(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int, gelu: Bool)
}

// MARK: - Binding

/// The operators of one module for both phases.
public struct PhaseOperators<Op: Sendable>: Sendable {
    public let prefill: Op
    public let generate: Op
    /// Chunks of more than this many tokens run `prefill`.
    public let prefillThreshold: Int

    public init(prefill: Op, generate: Op, prefillThreshold: Int) {
        self.prefill = prefill; self.generate = generate; self.prefillThreshold = prefillThreshold
    }

    public init(_ op: Op) { self.init(prefill: op, generate: op, prefillThreshold: 1) }

    @inline(__always) public func pick(tokens: Int) -> Op { tokens > prefillThreshold ? prefill : generate }
}

/// Module name → operators, built from a placement plan at load. Modules without an entry run
/// the fallbacks (what the default rules choose).
public struct OperatorBinding: Sendable {
    public var linear: [String: PhaseOperators<any LinearOperator>] = [:]
    public var attention: [String: PhaseOperators<any AttentionOperator>] = [:]
    public var mlp: [String: PhaseOperators<any MLPOperator>] = [:]
    public var fallbackLinear: PhaseOperators<any LinearOperator>
    public var fallbackAttention: PhaseOperators<any AttentionOperator>
    public var fallbackMLP: PhaseOperators<any MLPOperator>

    public init(linear: any LinearOperator, attention: any AttentionOperator, mlp: any MLPOperator) {
        fallbackLinear = PhaseOperators(linear)
        fallbackAttention = PhaseOperators(attention)
        fallbackMLP = PhaseOperators(mlp)
    }

    @inline(__always) public func linear(_ module: String, tokens: Int) -> any LinearOperator {
        (linear[module] ?? fallbackLinear).pick(tokens: tokens)
    }

    @inline(__always) public func attention(_ module: String, tokens: Int) -> any AttentionOperator {
        (attention[module] ?? fallbackAttention).pick(tokens: tokens)
    }

    @inline(__always) public func mlp(_ module: String, tokens: Int) -> any MLPOperator {
        (mlp[module] ?? fallbackMLP).pick(tokens: tokens)
    }

    /// The KV cache element every attention operator of the binding agrees on; nil when they
    /// disagree (the placement rejects such plans).
    public var kvStorage: KVStorage? {
        var all = [fallbackAttention.prefill.storage, fallbackAttention.generate.storage]
        if !attention.isEmpty { all = [] }
        for p in attention.values { all.append(p.prefill.storage); all.append(p.generate.storage) }
        return Set(all.map(\.rawValue)).count == 1 ? all.first : nil
    }
}
