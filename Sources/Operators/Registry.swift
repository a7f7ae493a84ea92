// The operator registry: every implementation by name, with the devices and module kinds it
// runs and the schema of its kwargs. Rule files name operators from here; the placement checks
// a rule against it and builds operator instances through `make`. Adding an operator is one
// `OperatorDescriptor` in `OperatorRegistry.builtin` (or `register` at run time): no change to
// rules, placement or model code (docs/writing-rules.md, "Adding an operator").

import CPUKernels

// MARK: - Kwargs

/// A kwarg value after validation against its spec.
public enum KwargValue: Sendable, Equatable, CustomStringConvertible {
    case string(String), int(Int), bool(Bool), device(Device)

    public var description: String {
        switch self {
        case let .string(s): return s
        case let .int(i): return String(i)
        case let .bool(b): return String(b)
        case let .device(d): return d.description
        }
    }
}

public struct KwargSpec: Sendable {
    public enum ValueType: Sendable {
        case string(choices: [String])
        case int(min: Int)
        case bool
        case device
    }
    public let name: String
    public let type: ValueType
    public let defaultValue: KwargValue?
    public let help: String

    public init(_ name: String, _ type: ValueType, default defaultValue: KwargValue? = nil, help: String) {
        self.name = name; self.type = type; self.defaultValue = defaultValue; self.help = help
    }

    /// Checks a scalar's text against the spec; the error text says what is accepted.
    public func parse(_ text: String) -> Result<KwargValue, KwargError> {
        switch type {
        case let .string(choices):
            if choices.isEmpty || choices.contains(text) { return .success(.string(text)) }
            return .failure(KwargError(message: "'\(text)' is not a valid \(name); valid: \(choices.joined(separator: ", "))"
                                       + didYouMean(text, in: choices)))
        case let .int(min):
            guard let i = Int(text), i >= min else { return .failure(KwargError(message: "\(name) must be an integer ≥ \(min), got '\(text)'")) }
            return .success(.int(i))
        case .bool:
            switch text.lowercased() {
            case "true", "yes", "on": return .success(.bool(true))
            case "false", "no", "off": return .success(.bool(false))
            default: return .failure(KwargError(message: "\(name) must be true or false, got '\(text)'"))
            }
        case .device:
            guard let d = Device(parsing: text) else {
                return .failure(KwargError(message: "unknown device '\(text)' for \(name); valid: \(Device.spellings.joined(separator: ", "))"
                                           + didYouMean(text, in: ["cpu", "cuda:0"])))
            }
            return .success(.device(d))
        }
    }
}

public struct KwargError: Error, Sendable { public let message: String }

// MARK: - Descriptors

public struct OperatorDescriptor: Sendable {
    public let name: String
    public let summary: String
    /// Module kinds it runs.
    public let kinds: Set<ModuleKind>
    public let devices: Set<Device.Kind>
    /// Operator-specific kwargs (the common ones — devices, ops, threshold — are the rules').
    public let kwargs: [KwargSpec]
    /// Builds an instance from validated kwargs (defaults filled in); nil for operators that
    /// only place weights (the block runs its built-in code).
    public let make: @Sendable ([String: KwargValue]) -> (any ModuleOperator)?

    public init(name: String, summary: String, kinds: Set<ModuleKind>, devices: Set<Device.Kind>, kwargs: [KwargSpec] = [],
                make: @escaping @Sendable ([String: KwargValue]) -> (any ModuleOperator)? = { _ in nil }) {
        self.name = name; self.summary = summary; self.kinds = kinds; self.devices = devices
        self.kwargs = kwargs; self.make = make
    }

    /// The kwargs with defaults filled in for those `given` leaves out.
    public func resolved(_ given: [String: KwargValue]) -> [String: KwargValue] {
        var out = given
        for spec in kwargs where out[spec.name] == nil { if let d = spec.defaultValue { out[spec.name] = d } }
        return out
    }
}

// MARK: - Registry

public struct OperatorRegistry: Sendable {
    public private(set) var descriptors: [OperatorDescriptor]
    /// The operator `class: default` and unmatched modules get, per kind and device kind.
    public private(set) var defaults: [ModuleKind: [Device.Kind: String]]

    public init(descriptors: [OperatorDescriptor], defaults: [ModuleKind: [Device.Kind: String]]) {
        self.descriptors = descriptors; self.defaults = defaults
    }

    public mutating func register(_ d: OperatorDescriptor, defaultFor kinds: [ModuleKind] = []) {
        descriptors.removeAll { $0.name == d.name }
        descriptors.append(d)
        for k in kinds { for dev in d.devices { defaults[k, default: [:]][dev] = d.name } }
    }

    public var names: [String] { descriptors.map(\.name) }

    public func descriptor(_ name: String) -> OperatorDescriptor? { descriptors.first { $0.name == name } }

    public func defaultOperator(for kind: ModuleKind, on device: Device) -> OperatorDescriptor? {
        defaults[kind]?[device.kind].flatMap(descriptor)
    }

    /// The CPU operators of today.
    public static let builtin: OperatorRegistry = {
        // A router (an MoE layer's gate) is a linear layer; the model turns its logits into routing.
        let linearKinds: Set<ModuleKind> = [.linear, .lmHead, .router]
        var r = OperatorRegistry(descriptors: [], defaults: [:])
        r.register(OperatorDescriptor(
            name: "LinearCPUQuantized", summary: "8-bit per-block activations, integer dot products on GGUF weights",
            kinds: linearKinds, devices: [.cpu], make: { _ in LinearCPUQuantized() }), defaultFor: [.linear, .lmHead, .router])
        r.register(OperatorDescriptor(
            name: "LinearCPUReference", summary: "weight rows dequantized to float, float dot (exact)",
            kinds: linearKinds, devices: [.cpu], make: { _ in LinearCPUReference() }))
        r.register(OperatorDescriptor(
            name: "AttentionCPUFlashF16", summary: "f16 KV cache, flash-attention numerics of llama.cpp's CPU backend",
            kinds: [.attention], devices: [.cpu], make: { _ in AttentionCPUFlashF16() }), defaultFor: [.attention])
        r.register(OperatorDescriptor(
            name: "AttentionCPUExact", summary: "f32 KV cache, float scores, exact softmax",
            kinds: [.attention], devices: [.cpu], make: { _ in AttentionCPUExact() }))
        r.register(OperatorDescriptor(
            name: "AttentionCPUBlockSparse",
            summary: "long contexts: decode attends to the first and last keys and the best-scoring blocks between (f16 cache)",
            kinds: [.attention], devices: [.cpu],
            kwargs: [KwargSpec("block_size", .int(min: 1), default: .int(64), help: "keys per block"),
                     KwargSpec("init_tokens", .int(min: 0), default: .int(64), help: "the first keys, always attended"),
                     KwargSpec("local_tokens", .int(min: 1), default: .int(512), help: "the last keys, always attended"),
                     KwargSpec("second_select_num", .int(min: 0), default: .int(16),
                               help: "blocks chosen between the two windows by anchor score"),
                     KwargSpec("anchor", .string(choices: BlockSparseConfig.Anchor.allCases.map(\.rawValue)), default: .string("quest"),
                               help: "quest: per-channel min and max of the block's keys (score Σ max(q·min, q·max)); mean: their mean")],
            make: { kw in
                func int(_ key: String, _ fallback: Int) -> Int { if case let .int(i)? = kw[key] { return i }; return fallback }
                var anchor = BlockSparseConfig.Anchor.quest
                if case let .string(a)? = kw["anchor"], let parsed = BlockSparseConfig.Anchor(rawValue: a) { anchor = parsed }
                return AttentionCPUBlockSparse(config: BlockSparseConfig(
                    blockSize: int("block_size", 64), initTokens: int("init_tokens", 64), localTokens: int("local_tokens", 512),
                    selectBlocks: int("second_select_num", 16), anchor: anchor))
            }))
        r.register(OperatorDescriptor(
            name: "MLPCPU", summary: "gated MLP (SwiGLU / GeGLU) activation",
            kinds: [.mlp], devices: [.cpu],
            kwargs: [KwargSpec("gelu", .string(choices: ["table", "exact"]), default: .string("table"),
                               help: "GELU by llama.cpp's f16 table or the exact tanh formula")],
            make: { kw in MLPCPU(geluTable: kw["gelu"] != .string("exact")) }), defaultFor: [.mlp])
        r.register(OperatorDescriptor(
            name: "ExpertsCPU", summary: "routed experts on GGUF weights, tokens grouped by expert, 8-bit activations",
            kinds: [.experts], devices: [.cpu],
            kwargs: [KwargSpec("stream_to_gpu_min_tokens", .int(min: 0), default: .int(0),
                               help: "when the rest of the model is on a GPU (rules/cuda-moe.yaml): chunks of at least this many "
                                   + "tokens copy each layer's expert weights to the GPU and run the experts there (0: never)")],
            make: { _ in ExpertsCPU.quantized }), defaultFor: [.experts])
        r.register(OperatorDescriptor(
            name: "ExpertsCPUReference", summary: "routed experts with weight rows dequantized to float (exact)",
            kinds: [.experts], devices: [.cpu], make: { _ in ExpertsCPU.reference }))
        r.register(OperatorDescriptor(name: "MoECPU", summary: "mixture of experts: router, routed and shared experts (composes its children)",
                                      kinds: [.moe], devices: [.cpu]), defaultFor: [.moe])
        r.register(OperatorDescriptor(name: "RMSNormCPU", summary: "RMS normalization in float",
                                      kinds: [.rmsNorm], devices: [.cpu]), defaultFor: [.rmsNorm])
        r.register(OperatorDescriptor(name: "RoPECPU", summary: "rotary embedding (normal / neox), float",
                                      kinds: [.rotaryEmbedding], devices: [.cpu]), defaultFor: [.rotaryEmbedding])
        r.register(OperatorDescriptor(name: "EmbeddingCPU", summary: "rows of the GGUF token embedding dequantized to float",
                                      kinds: [.embedding], devices: [.cpu]), defaultFor: [.embedding])
        r.register(OperatorDescriptor(name: "DecoderLayerCPU", summary: "pre-norm decoder layer (composes its children)",
                                      kinds: [.decoderLayer], devices: [.cpu]), defaultFor: [.decoderLayer])
        r.register(OperatorDescriptor(name: "ModelCPU", summary: "decoder stack (composes its children)",
                                      kinds: [.model], devices: [.cpu]), defaultFor: [.model])
        // CUDA operators: they place modules on a GPU; the CUDA backend (ModelsCUDA) runs the
        // whole dense decoder there with the kernels of CUDA/KernelSource.swift.
        let cuda: [(String, String, Set<ModuleKind>, [KwargSpec])] = [
            ("LinearCUDA", "GGUF-quantized weights on the GPU: 8-bit activations with dp4a GEMV; f16 cuBLAS GEMM for long chunks", linearKinds,
             [KwargSpec("gemm_min_tokens", .int(min: 0), default: .int(32),
                        help: "chunks of at least this many tokens dequantize the weights to f16 and run a cuBLAS GEMM (0: never)"),
              KwargSpec("marlin_max_tokens", .int(min: 0), default: .int(0),
                        help: "chunks of 2 up to this many tokens (at most 64) run q4_0/q4_1/q4_K weights with the Marlin-class "
                            + "tensor-core GEMM on a copy repacked at load (0: off)")]),
            ("AttentionCUDA", "f16 KV cache on the GPU; split-K online-softmax attention, or the CPU's numerics", [.attention],
             [KwargSpec("numerics", .string(choices: ["cpu", "fast"]), default: .string("cpu"),
                        help: "cpu: below 64 tokens per chunk, llama.cpp's CPU flash-attention numerics (f16 query and accumulator, "
                            + "keys in order), so GPU and CPU give the same tokens; fast: split-K f32 flash decoding throughout")]),
            ("MLPCUDA", "gated MLP (SwiGLU / GeGLU) on the GPU", [.mlp],
             [KwargSpec("gelu", .string(choices: ["table", "exact"]), default: .string("table"),
                        help: "GELU rounded through f16 as llama.cpp's CPU table, or the exact tanh formula")]),
            ("RMSNormCUDA", "RMS normalization on the GPU", [.rmsNorm], []),
            ("RoPECUDA", "rotary embedding (normal / neox, frequency factors) on the GPU", [.rotaryEmbedding], []),
            ("EmbeddingCUDA", "token embedding rows dequantized on the GPU", [.embedding], []),
            ("DecoderLayerCUDA", "pre-norm decoder layer on the GPU (composes its children)", [.decoderLayer], []),
            ("ModelCUDA", "decoder stack on the GPU (composes its children)", [.model], []),
        ]
        for (name, summary, kinds, kwargs) in cuda {
            r.register(OperatorDescriptor(name: name, summary: summary, kinds: kinds, devices: [.cuda], kwargs: kwargs),
                       defaultFor: Array(kinds))
        }
        return r
    }()
}

// MARK: - Suggestions

/// " (did you mean 'X'?)" for the closest of `choices` within a small edit distance, else "".
public func didYouMean(_ text: String, in choices: [String]) -> String {
    guard let best = closest(text, in: choices) else { return "" }
    return " (did you mean '\(best)'?)"
}

public func closest(_ text: String, in choices: [String]) -> String? {
    let a = Array(text.lowercased())
    var best: (String, Int)?
    for c in choices {
        let d = editDistance(a, Array(c.lowercased()))
        if best == nil || d < best!.1 { best = (c, d) }
    }
    guard let (name, d) = best, d <= max(2, a.count / 3) else { return nil }
    return name
}

private func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count), cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}
