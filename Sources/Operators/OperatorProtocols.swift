// Operator protocols: what a model block calls to run a module, whichever implementation the
// placement chose. Shapes follow Models/Blocks.swift: x [tokens, in], y [tokens, out] row-major
// float; q [tokens, heads, headDim]; the KV cache [capacity, kvHeads · headDim] per layer.
//
// Routed experts (`ExpertsOperator`) take the routing the model's router resolved.
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
    /// Several matrices reading the same input; the default runs them one after another.
    func runMany(_ ws: [WeightMatrix], x: UnsafePointer<Float>, ys: [UnsafeMutablePointer<Float>], tokens: Int, pool: ThreadPool)
    /// Builds what `run` needs for `w` ahead of the first call (a repacked layout); returns the
    /// bytes it allocated. The default does nothing.
    func prepare(_ w: WeightMatrix) -> Int
}

extension LinearOperator {
    public func runMany(_ ws: [WeightMatrix], x: UnsafePointer<Float>, ys: [UnsafeMutablePointer<Float>], tokens: Int, pool: ThreadPool) {
        for (w, y) in zip(ws, ys) { run(w, x: x, y: y, tokens: tokens, pool: pool) }
    }
    public func prepare(_ w: WeightMatrix) -> Int { 0 }
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

/// The routed experts of one MoE layer, stacked as GGUF stores them (`ffn_gate_exps` …: one
/// expert per slice of a 3-D tensor): expert e's gate and up are [feedForward, embedding], its
/// down [embedding, feedForward], each a view into the mapped file.
public struct ExpertWeights: Sendable {
    public let gate: [WeightMatrix], up: [WeightMatrix], down: [WeightMatrix]

    public init(gate: [WeightMatrix], up: [WeightMatrix], down: [WeightMatrix]) {
        precondition(gate.count == up.count && up.count == down.count && !gate.isEmpty, "one gate, up and down per expert")
        self.gate = gate; self.up = up; self.down = down
    }

    public var count: Int { gate.count }
    public var embedding: Int { gate[0].cols }
    public var feedForward: Int { gate[0].rows }
}

/// The experts each token goes to and their weights, resolved for the whole chunk by the
/// router (model code): ids and weights are [tokens, used], slot order as the router ranks them.
public struct ExpertRouting {
    public let tokens: Int
    public let used: Int
    public let ids: UnsafePointer<Int32>
    public let weights: UnsafePointer<Float>

    public init(tokens: Int, used: Int, ids: UnsafePointer<Int32>, weights: UnsafePointer<Float>) {
        self.tokens = tokens; self.used = used; self.ids = ids; self.weights = weights
    }
}

/// The routed experts of an MoE layer: out[t] = Σ_j weights[t, j] · FFN_{ids[t, j]}(x[t]), with
/// FFN_e(x) = down_e(silu(gate_e·x) · up_e·x), summed in slot order (as ggml's graph adds them).
/// x, out [tokens, embedding].
public protocol ExpertsOperator: ModuleOperator {
    func run(_ experts: ExpertWeights, x: UnsafePointer<Float>, routing: ExpertRouting, out: UnsafeMutablePointer<Float>,
             pool: ThreadPool)
    /// Builds what `run` needs for one weight matrix of the experts ahead of the first call;
    /// returns the bytes it allocated. The default does nothing.
    func prepare(_ w: WeightMatrix) -> Int
}

extension ExpertsOperator {
    public func prepare(_ w: WeightMatrix) -> Int { 0 }
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
    public var experts: [String: PhaseOperators<any ExpertsOperator>] = [:]
    public var fallbackLinear: PhaseOperators<any LinearOperator>
    public var fallbackAttention: PhaseOperators<any AttentionOperator>
    public var fallbackMLP: PhaseOperators<any MLPOperator>
    public var fallbackExperts: PhaseOperators<any ExpertsOperator>

    /// Experts fall back to the numerics of `linear` (exact experts beside exact linear layers).
    public init(linear: any LinearOperator, attention: any AttentionOperator, mlp: any MLPOperator) {
        fallbackLinear = PhaseOperators(linear)
        fallbackAttention = PhaseOperators(attention)
        fallbackMLP = PhaseOperators(mlp)
        fallbackExperts = PhaseOperators(linear is LinearCPUReference ? ExpertsCPU.reference : ExpertsCPU.quantized)
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

    @inline(__always) public func experts(_ module: String, tokens: Int) -> any ExpertsOperator {
        (experts[module] ?? fallbackExperts).pick(tokens: tokens)
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
