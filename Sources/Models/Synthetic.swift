// Synthetic models: valid GGUF files for an architecture and a shape preset, with seeded random
// weights in a chosen quant type and a small byte-level BPE tokenizer, complete enough that
// llama.cpp loads them. Tests use the tiny presets; benchmarks use real-model shapes on machines
// where the real weights cannot be carried (the GPU machine receives at most 64 MiB per call).
//
// Weights: matrices ~ N(0, 1/√cols) (activations stay O(1) through the stack), norms ~ 1 ± 0.1,
// biases ~ N(0, 0.02). Large tensors quantize a pool of 64 random rows and draw each row from
// the pool (same bytes per token as real weights, seconds instead of minutes to generate);
// tensors up to 4 M elements are quantized row by row.
import Core
import Foundation
import GGUF

public struct SyntheticShape: Sendable, Equatable {
    public var name: String
    public var blockCount: Int
    public var embedding: Int
    public var headCount: Int
    public var headCountKV: Int
    public var headDim: Int
    public var feedForward: Int
    public var vocab: Int
    public var contextLength: Int = 4096
    public var ropeBase: Float = 10_000
    public var slidingWindow: Int? = nil
    /// Mixture of experts (0: dense): routed experts, experts per token, one expert's width, the
    /// shared expert's width (qwen2moe).
    public var expertCount: Int = 0
    public var expertUsedCount: Int = 0
    public var expertFeedForward: Int = 0
    public var sharedFeedForward: Int = 0
    /// DeepSeek (deepseek2): MLA and routing.
    public var deepseek: DeepSeekShape? = nil

    public init(name: String, blockCount: Int, embedding: Int, headCount: Int, headCountKV: Int, headDim: Int,
                feedForward: Int, vocab: Int, contextLength: Int = 4096, ropeBase: Float = 10_000, slidingWindow: Int? = nil,
                expertCount: Int = 0, expertUsedCount: Int = 0, expertFeedForward: Int = 0, sharedFeedForward: Int = 0,
                deepseek: DeepSeekShape? = nil) {
        self.name = name; self.blockCount = blockCount; self.embedding = embedding; self.headCount = headCount
        self.headCountKV = headCountKV; self.headDim = headDim; self.feedForward = feedForward; self.vocab = vocab
        self.contextLength = contextLength; self.ropeBase = ropeBase; self.slidingWindow = slidingWindow
        self.expertCount = expertCount; self.expertUsedCount = expertUsedCount; self.expertFeedForward = expertFeedForward
        self.sharedFeedForward = sharedFeedForward; self.deepseek = deepseek
    }
}

/// The deepseek2-specific part of a synthetic shape.
public struct DeepSeekShape: Sendable, Equatable {
    /// 0: attn_q, no q LoRA.
    public var qLoraRank: Int
    public var kvLoraRank: Int
    public var qkNope: Int, qkRope: Int, vDim: Int
    /// Write attn_k_b / attn_v_b and key_length_mla (newer GGUFs) instead of attn_kv_b.
    public var splitKV: Bool
    public var leadingDense: Int
    public var sharedCount: Int
    /// 1 softmax (V2), 2 sigmoid with exp_probs_b (V3).
    public var gating: Int
    public var groups: Int = 0, groupsUsed: Int = 0
    public var weightsNorm: Bool
    public var weightsScale: Float
    /// YaRN (factor 0: none): rope.scaling.factor, original_context_length, yarn_log_multiplier.
    public var yarnFactor: Float = 0
    public var yarnOriginalContext: Int = 0
    public var yarnLogMultiplier: Float = 0
}

public enum SyntheticError: Error, CustomStringConvertible {
    case unknownArchitecture(String, known: [String])
    case unknownShape(String, architecture: String, known: [String])
    case unsupportedType(GGMLType)

    public var description: String {
        switch self {
        case let .unknownArchitecture(a, known): return "no synthetic presets for architecture '\(a)'; known: \(known.joined(separator: ", "))"
        case let .unknownShape(s, a, known): return "unknown shape '\(s)' for \(a); known: \(known.joined(separator: ", "))"
        case let .unsupportedType(t): return "type \(t) cannot be quantized"
        }
    }
}

public enum SyntheticModel {
    /// Shape presets per architecture. `tiny` is for tests (every dimension a multiple of 256
    /// so that every quant type applies); the others copy real models' shapes.
    public static let presets: [String: [SyntheticShape]] = [
        "llama": [
            SyntheticShape(name: "tiny", blockCount: 2, embedding: 256, headCount: 4, headCountKV: 2, headDim: 64,
                           feedForward: 512, vocab: 640, contextLength: 512),
            SyntheticShape(name: "smollm2-135m", blockCount: 30, embedding: 576, headCount: 9, headCountKV: 3, headDim: 64,
                           feedForward: 1536, vocab: 49152, contextLength: 8192, ropeBase: 100_000),
            SyntheticShape(name: "llama3-8b", blockCount: 32, embedding: 4096, headCount: 32, headCountKV: 8, headDim: 128,
                           feedForward: 14336, vocab: 128_256, contextLength: 8192, ropeBase: 500_000),
        ],
        "qwen2": [
            SyntheticShape(name: "tiny", blockCount: 2, embedding: 256, headCount: 4, headCountKV: 2, headDim: 64,
                           feedForward: 512, vocab: 640, contextLength: 512, ropeBase: 1_000_000),
        ],
        "qwen3": [
            SyntheticShape(name: "tiny", blockCount: 2, embedding: 256, headCount: 4, headCountKV: 2, headDim: 128,
                           feedForward: 512, vocab: 640, contextLength: 512, ropeBase: 1_000_000),
        ],
        "gemma3": [
            SyntheticShape(name: "tiny", blockCount: 6, embedding: 256, headCount: 4, headCountKV: 1, headDim: 256,
                           feedForward: 512, vocab: 640, contextLength: 512, ropeBase: 1_000_000, slidingWindow: 8),
            SyntheticShape(name: "gemma3-270m", blockCount: 18, embedding: 640, headCount: 4, headCountKV: 1, headDim: 256,
                           feedForward: 2048, vocab: 262_144, contextLength: 32768, ropeBase: 1_000_000, slidingWindow: 512),
        ],
        // Mixture of experts (MoE.swift). "mixtral" files are `general.architecture = llama` with
        // experts, as llama.cpp expects; feed_forward_length is then one expert's width.
        "mixtral": [
            SyntheticShape(name: "tiny", blockCount: 2, embedding: 256, headCount: 4, headCountKV: 2, headDim: 64,
                           feedForward: 256, vocab: 640, contextLength: 512, ropeBase: 1_000_000,
                           expertCount: 4, expertUsedCount: 2, expertFeedForward: 256),
            // Mixtral 8x7B at half its width and depth (8 experts, top-2): 5.9 B parameters, 1.7 B active.
            SyntheticShape(name: "mixtral-8x1b", blockCount: 16, embedding: 2048, headCount: 16, headCountKV: 4, headDim: 128,
                           feedForward: 7168, vocab: 32000, contextLength: 32768, ropeBase: 1_000_000,
                           expertCount: 8, expertUsedCount: 2, expertFeedForward: 7168),
        ],
        "qwen2moe": [
            SyntheticShape(name: "tiny", blockCount: 2, embedding: 256, headCount: 4, headCountKV: 2, headDim: 64,
                           feedForward: 512, vocab: 640, contextLength: 512, ropeBase: 1_000_000,
                           expertCount: 8, expertUsedCount: 2, expertFeedForward: 256, sharedFeedForward: 512),
            SyntheticShape(name: "qwen1.5-moe-a2.7b", blockCount: 24, embedding: 2048, headCount: 16, headCountKV: 16, headDim: 128,
                           feedForward: 5632, vocab: 151_936, contextLength: 8192, ropeBase: 1_000_000,
                           expertCount: 60, expertUsedCount: 4, expertFeedForward: 1408, sharedFeedForward: 5632),
        ],
        "qwen3moe": [
            SyntheticShape(name: "tiny", blockCount: 2, embedding: 256, headCount: 4, headCountKV: 2, headDim: 128,
                           feedForward: 512, vocab: 640, contextLength: 512, ropeBase: 1_000_000,
                           expertCount: 8, expertUsedCount: 3, expertFeedForward: 256),
            SyntheticShape(name: "qwen3-30b-a3b", blockCount: 48, embedding: 2048, headCount: 32, headCountKV: 4, headDim: 128,
                           feedForward: 6144, vocab: 151_936, contextLength: 40960, ropeBase: 1_000_000,
                           expertCount: 128, expertUsedCount: 8, expertFeedForward: 768),
        ],
        // DeepSeek (DeepSeek2.swift, MLA.swift). `tiny` is V3-like: q LoRA, split attn_k_b /
        // attn_v_b, sigmoid gating with exp_probs_b, 4 groups of 2 experts (2 used), normalized
        // weights scaled by 2.5, YaRN; `tiny-lite` is V2-Lite-like: attn_q, attn_kv_b, softmax
        // top-k, no groups, YaRN; `tiny-v2` has DeepSeek-V2's attention layout (q LoRA with
        // attn_kv_b) with softmax gating over 4 groups of 2 experts, its q LoRA and kv ranks (768, 512)
        // unlike every other width so that a buffer sized for the wrong one shows. All: layer 0
        // dense, 2 shared experts.
        "deepseek2": [
            SyntheticShape(name: "tiny", blockCount: 3, embedding: 256, headCount: 2, headCountKV: 2, headDim: 192,
                           feedForward: 512, vocab: 640, contextLength: 512, ropeBase: 10_000,
                           expertCount: 8, expertUsedCount: 3, expertFeedForward: 256,
                           deepseek: DeepSeekShape(qLoraRank: 256, kvLoraRank: 256, qkNope: 128, qkRope: 64, vDim: 128,
                                                   splitKV: true, leadingDense: 1, sharedCount: 2, gating: 2, groups: 4,
                                                   groupsUsed: 2, weightsNorm: true, weightsScale: 2.5, yarnFactor: 4,
                                                   yarnOriginalContext: 128, yarnLogMultiplier: 0.1)),
            SyntheticShape(name: "tiny-lite", blockCount: 3, embedding: 256, headCount: 2, headCountKV: 2, headDim: 192,
                           feedForward: 512, vocab: 640, contextLength: 512, ropeBase: 10_000,
                           expertCount: 8, expertUsedCount: 3, expertFeedForward: 256,
                           deepseek: DeepSeekShape(qLoraRank: 0, kvLoraRank: 256, qkNope: 128, qkRope: 64, vDim: 128,
                                                   splitKV: false, leadingDense: 1, sharedCount: 2, gating: 1,
                                                   weightsNorm: false, weightsScale: 1, yarnFactor: 40,
                                                   yarnOriginalContext: 64, yarnLogMultiplier: 0.0707)),
            SyntheticShape(name: "tiny-v2", blockCount: 3, embedding: 256, headCount: 2, headCountKV: 2, headDim: 192,
                           feedForward: 512, vocab: 640, contextLength: 512, ropeBase: 10_000,
                           expertCount: 8, expertUsedCount: 3, expertFeedForward: 256,
                           deepseek: DeepSeekShape(qLoraRank: 768, kvLoraRank: 512, qkNope: 128, qkRope: 64, vDim: 128,
                                                   splitKV: false, leadingDense: 1, sharedCount: 2, gating: 1, groups: 4,
                                                   groupsUsed: 2, weightsNorm: false, weightsScale: 1, yarnFactor: 40,
                                                   yarnOriginalContext: 4096, yarnLogMultiplier: 0.0707)),
            // DeepSeek-V2-Lite (15.7 B parameters, 2.4 B active): 27 layers, the first dense.
            SyntheticShape(name: "deepseek-v2-lite", blockCount: 27, embedding: 2048, headCount: 16, headCountKV: 16, headDim: 192,
                           feedForward: 10944, vocab: 102_400, contextLength: 163_840, ropeBase: 10_000,
                           expertCount: 64, expertUsedCount: 6, expertFeedForward: 1408,
                           deepseek: DeepSeekShape(qLoraRank: 0, kvLoraRank: 512, qkNope: 128, qkRope: 64, vDim: 128,
                                                   splitKV: false, leadingDense: 1, sharedCount: 2, gating: 1,
                                                   weightsNorm: false, weightsScale: 1, yarnFactor: 40,
                                                   yarnOriginalContext: 4096, yarnLogMultiplier: 0.0707)),
        ],
    ]

    public static func shape(architecture: String, name: String) throws -> SyntheticShape {
        guard let list = presets[architecture] else {
            throw SyntheticError.unknownArchitecture(architecture, known: presets.keys.sorted())
        }
        guard let s = list.first(where: { $0.name == name }) else {
            throw SyntheticError.unknownShape(name, architecture: architecture, known: list.map(\.name))
        }
        return s
    }

    /// Builds the GGUF in memory. `type` is used for every 2-D weight whose rows fit its block
    /// size (others fall back to Q8_0, then F16); `downType`, when given, for the down
    /// projections instead (dense, routed and shared: Q4_K with Q6_K down is a Q4_K_M-like mix);
    /// norms and biases stay F32.
    public static func build(architecture arch: String, shape s: SyntheticShape, type: GGMLType, downType: GGMLType? = nil,
                             seed: UInt64, progress: (String) -> Void = { _ in }) throws -> GGUFWriter {
        guard presets[arch] != nil else { throw SyntheticError.unknownArchitecture(arch, known: presets.keys.sorted()) }
        guard Quant.canQuantize(type) else { throw SyntheticError.unsupportedType(type) }
        if let downType, !Quant.canQuantize(downType) { throw SyntheticError.unsupportedType(downType) }
        var rng = SeededGenerator(seed: seed)
        var w = GGUFWriter()
        func meta(_ key: String, _ v: GGUFValue) { w.set(key, v) }
        let name = arch
        let arch = arch == Mixtral.displayName ? "llama" : arch   // general.architecture
        meta("general.architecture", .string(arch))
        meta("general.name", .string("synthetic \(name) \(s.name) \(type)\(downType.map { " + \($0) down" } ?? "")"))
        meta("general.file_type", .uint32(type == .q4_K && downType == .q6_K ? 15 : fileType(type)))   // 15: Q4_K_M
        meta("\(arch).context_length", .uint32(UInt32(s.contextLength)))
        meta("\(arch).embedding_length", .uint32(UInt32(s.embedding)))
        meta("\(arch).block_count", .uint32(UInt32(s.blockCount)))
        meta("\(arch).feed_forward_length", .uint32(UInt32(s.feedForward)))
        meta("\(arch).attention.head_count", .uint32(UInt32(s.headCount)))
        // MLA files (split k_b / v_b) cache one shared latent key per token: head_count_kv = 1.
        meta("\(arch).attention.head_count_kv", .uint32(UInt32(s.deepseek?.splitKV == true ? 1 : s.headCountKV)))
        if let ds = s.deepseek {
            // MLA files (split k_b / v_b) describe the compressed cache in key/value_length.
            meta("\(arch).attention.key_length", .uint32(UInt32(ds.splitKV ? ds.kvLoraRank + ds.qkRope : ds.qkNope + ds.qkRope)))
            meta("\(arch).attention.value_length", .uint32(UInt32(ds.splitKV ? ds.kvLoraRank : ds.vDim)))
            if ds.splitKV {
                meta("\(arch).attention.key_length_mla", .uint32(UInt32(ds.qkNope + ds.qkRope)))
                meta("\(arch).attention.value_length_mla", .uint32(UInt32(ds.vDim)))
            }
        } else {
            meta("\(arch).attention.key_length", .uint32(UInt32(s.headDim)))
            meta("\(arch).attention.value_length", .uint32(UInt32(s.headDim)))
        }
        meta("\(arch).attention.layer_norm_rms_epsilon", .float32(arch == "gemma3" ? 1e-6 : 1e-5))
        meta("\(arch).rope.freq_base", .float32(s.ropeBase))
        meta("\(arch).rope.dimension_count", .uint32(UInt32(s.deepseek?.qkRope ?? s.headDim)))
        meta("\(arch).vocab_size", .uint32(UInt32(s.vocab)))
        if let window = s.slidingWindow { meta("\(arch).attention.sliding_window", .uint32(UInt32(window))) }
        let moe = s.expertCount > 0
        if moe {
            meta("\(arch).expert_count", .uint32(UInt32(s.expertCount)))
            meta("\(arch).expert_used_count", .uint32(UInt32(s.expertUsedCount)))
            if arch != "llama" { meta("\(arch).expert_feed_forward_length", .uint32(UInt32(s.expertFeedForward))) }
            if s.sharedFeedForward > 0 {
                meta("\(arch).expert_shared_feed_forward_length", .uint32(UInt32(s.sharedFeedForward)))
            }
        }
        if let ds = s.deepseek {
            // llama.cpp requires q_lora_rank except for V2-Lite-sized files (27 layers), where it
            // ignores it; 0 means attn_q.
            if ds.qLoraRank > 0 || s.blockCount != 27 { meta("\(arch).attention.q_lora_rank", .uint32(UInt32(ds.qLoraRank))) }
            meta("\(arch).attention.kv_lora_rank", .uint32(UInt32(ds.kvLoraRank)))
            meta("\(arch).leading_dense_block_count", .uint32(UInt32(ds.leadingDense)))
            meta("\(arch).expert_shared_count", .uint32(UInt32(ds.sharedCount)))
            meta("\(arch).expert_weights_scale", .float32(ds.weightsScale))
            meta("\(arch).expert_weights_norm", .bool(ds.weightsNorm))
            meta("\(arch).expert_gating_func", .uint32(UInt32(ds.gating)))
            if ds.groups > 1 {
                meta("\(arch).expert_group_count", .uint32(UInt32(ds.groups)))
                meta("\(arch).expert_group_used_count", .uint32(UInt32(ds.groupsUsed)))
            }
            if ds.yarnFactor > 0 {
                meta("\(arch).rope.scaling.type", .string("yarn"))
                meta("\(arch).rope.scaling.factor", .float32(ds.yarnFactor))
                meta("\(arch).rope.scaling.original_context_length", .uint32(UInt32(ds.yarnOriginalContext)))
                meta("\(arch).rope.scaling.yarn_log_multiplier", .float32(ds.yarnLogMultiplier))
            }
        }
        SyntheticTokenizer.add(to: &w, vocab: s.vocab)

        let q = s.headCount * s.headDim, kv = s.headCountKV * s.headDim
        func matrix(_ name: String, rows: Int, cols: Int, std: Float? = nil, as wanted: GGMLType? = nil) throws {
            let type = wanted ?? type
            let t = cols % type.blockSize == 0 ? type : (cols % 32 == 0 ? .q8_0 : .f16)
            let bytes = try quantizedRandom(rows: rows, cols: cols, type: t, std: std ?? 1 / Float(cols).squareRoot(), rng: &rng)
            try w.addTensor(name: name, type: t, shape: [cols, rows], data: bytes)
        }
        /// `count` stacked [rows, cols] matrices: ggml shape [cols, rows, count], one expert per slice.
        func experts(_ name: String, count: Int, rows: Int, cols: Int, as wanted: GGMLType? = nil) throws {
            let type = wanted ?? type
            let t = cols % type.blockSize == 0 ? type : (cols % 32 == 0 ? .q8_0 : .f16)
            let bytes = try quantizedRandom(rows: count * rows, cols: cols, type: t, std: 1 / Float(cols).squareRoot(), rng: &rng)
            try w.addTensor(name: name, type: t, shape: [cols, rows, count], data: bytes)
        }
        /// Routers stay F32, as llama.cpp's converter and quantizer leave them.
        func router(_ name: String, shape: [Int]) throws {
            let n = shape.reduce(1, *)
            var v = [Float](repeating: 0, count: n)
            let std = 1 / Float(shape[0]).squareRoot()
            for i in 0..<n { v[i] = std * rng.nextNormal() }
            try w.addTensor(name: name, type: .f32, shape: shape, data: v.withUnsafeBytes { Array($0) })
        }
        func vector(_ name: String, _ n: Int, mean: Float, std: Float) throws {
            var v = [Float](repeating: 0, count: n)
            for i in 0..<n { v[i] = mean + std * rng.nextNormal() }
            try w.addTensor(name: name, type: .f32, shape: [n], data: v.withUnsafeBytes { Array($0) })
        }
        progress("token_embd")
        try matrix("token_embd.weight", rows: s.vocab, cols: s.embedding, std: 1)
        for i in 0..<s.blockCount {
            progress("layer \(i + 1)/\(s.blockCount)")
            let p = "blk.\(i)."
            try vector(p + "attn_norm.weight", s.embedding, mean: 1, std: 0.1)
            if let ds = s.deepseek {
                let h = s.headCount, kDim = ds.qkNope + ds.qkRope
                if ds.qLoraRank > 0 {
                    try matrix(p + "attn_q_a.weight", rows: ds.qLoraRank, cols: s.embedding)
                    try vector(p + "attn_q_a_norm.weight", ds.qLoraRank, mean: 1, std: 0.1)
                    try matrix(p + "attn_q_b.weight", rows: h * kDim, cols: ds.qLoraRank)
                } else {
                    try matrix(p + "attn_q.weight", rows: h * kDim, cols: s.embedding)
                }
                try matrix(p + "attn_kv_a_mqa.weight", rows: ds.kvLoraRank + ds.qkRope, cols: s.embedding)
                try vector(p + "attn_kv_a_norm.weight", ds.kvLoraRank, mean: 1, std: 0.1)
                if ds.splitKV {
                    try experts(p + "attn_k_b.weight", count: h, rows: ds.kvLoraRank, cols: ds.qkNope)
                    try experts(p + "attn_v_b.weight", count: h, rows: ds.vDim, cols: ds.kvLoraRank)
                } else {
                    try matrix(p + "attn_kv_b.weight", rows: h * (ds.qkNope + ds.vDim), cols: ds.kvLoraRank)
                }
                try matrix(p + "attn_output.weight", rows: s.embedding, cols: h * ds.vDim)
            } else {
                try matrix(p + "attn_q.weight", rows: q, cols: s.embedding)
                try matrix(p + "attn_k.weight", rows: kv, cols: s.embedding)
                try matrix(p + "attn_v.weight", rows: kv, cols: s.embedding)
                try matrix(p + "attn_output.weight", rows: s.embedding, cols: q)
            }
            if arch == "qwen2" || arch == "qwen2moe" {
                try vector(p + "attn_q.bias", q, mean: 0, std: 0.02)
                try vector(p + "attn_k.bias", kv, mean: 0, std: 0.02)
                try vector(p + "attn_v.bias", kv, mean: 0, std: 0.02)
            }
            if arch == "qwen3" || arch == "qwen3moe" || arch == "gemma3" {
                try vector(p + "attn_q_norm.weight", s.headDim, mean: 1, std: 0.1)
                try vector(p + "attn_k_norm.weight", s.headDim, mean: 1, std: 0.1)
            }
            if arch == "gemma3" {
                try vector(p + "post_attention_norm.weight", s.embedding, mean: 1, std: 0.1)
                try vector(p + "post_ffw_norm.weight", s.embedding, mean: 1, std: 0.1)
            }
            try vector(p + "ffn_norm.weight", s.embedding, mean: 1, std: 0.1)
            if moe && i >= (s.deepseek?.leadingDense ?? 0) {
                let e = s.expertCount, ff = s.expertFeedForward
                try router(p + "ffn_gate_inp.weight", shape: [s.embedding, e])
                if s.deepseek?.gating == 2 {
                    // V3's selection bias, of the size of sigmoid scores' spread.
                    var b = [Float](repeating: 0, count: e)
                    for j in 0..<e { b[j] = 0.05 * rng.nextNormal() }
                    try w.addTensor(name: p + "exp_probs_b.bias", type: .f32, shape: [e], data: b.withUnsafeBytes { Array($0) })
                }
                try experts(p + "ffn_gate_exps.weight", count: e, rows: ff, cols: s.embedding)
                try experts(p + "ffn_up_exps.weight", count: e, rows: ff, cols: s.embedding)
                try experts(p + "ffn_down_exps.weight", count: e, rows: s.embedding, cols: ff, as: downType)
                if let ds = s.deepseek, ds.sharedCount > 0 {
                    let sf = ff * ds.sharedCount
                    try matrix(p + "ffn_gate_shexp.weight", rows: sf, cols: s.embedding)
                    try matrix(p + "ffn_up_shexp.weight", rows: sf, cols: s.embedding)
                    try matrix(p + "ffn_down_shexp.weight", rows: s.embedding, cols: sf, as: downType)
                } else if s.sharedFeedForward > 0 {
                    try router(p + "ffn_gate_inp_shexp.weight", shape: [s.embedding])
                    try matrix(p + "ffn_gate_shexp.weight", rows: s.sharedFeedForward, cols: s.embedding)
                    try matrix(p + "ffn_up_shexp.weight", rows: s.sharedFeedForward, cols: s.embedding)
                    try matrix(p + "ffn_down_shexp.weight", rows: s.embedding, cols: s.sharedFeedForward, as: downType)
                }
            } else {
                try matrix(p + "ffn_gate.weight", rows: s.feedForward, cols: s.embedding)
                try matrix(p + "ffn_up.weight", rows: s.feedForward, cols: s.embedding)
                try matrix(p + "ffn_down.weight", rows: s.embedding, cols: s.feedForward, as: downType)
            }
        }
        try vector("output_norm.weight", s.embedding, mean: 1, std: 0.1)
        if arch != "gemma3" {
            try matrix("output.weight", rows: s.vocab, cols: s.embedding)
        }
        return w
    }

    /// llama.cpp's `llama_ftype` for a file whose 2-D weights are `type` (`general.file_type`;
    /// llama.cpp only prints it, but it should not claim F16 for a Q4_K file).
    static func fileType(_ type: GGMLType) -> UInt32 {
        switch type {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .q2_K: return 10
        case .q3_K: return 11   // Q3_K_S
        case .q4_K: return 14   // Q4_K_S
        case .q5_K: return 16   // Q5_K_S
        case .q6_K: return 18
        case .iq4_nl: return 25
        case .iq4_xs: return 30
        case .bf16: return 32
        default: return 1024    // LLAMA_FTYPE_GUESSED
        }
    }

    /// Random N(0, std²) rows quantized to `type` (pooled for large tensors, see the banner).
    static func quantizedRandom(rows: Int, cols: Int, type: GGMLType, std: Float, rng: inout SeededGenerator) throws -> [UInt8] {
        let rowBytes = type.byteCount(elements: cols)
        let poolRows = rows * cols <= 4 << 20 ? rows : min(rows, 64)
        var pool = [UInt8](repeating: 0, count: poolRows * rowBytes)
        var row = [Float](repeating: 0, count: cols)
        try pool.withUnsafeMutableBytes { out in
            for r in 0..<poolRows {
                for i in 0..<cols { row[i] = std * rng.nextNormal() }
                try row.withUnsafeBufferPointer { src in
                    try Quant.quantize(type, from: src.baseAddress!, to: out.baseAddress! + r * rowBytes, count: cols)
                }
            }
        }
        if poolRows == rows { return pool }
        var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
        bytes.withUnsafeMutableBytes { out in
            pool.withUnsafeBytes { src in
                for r in 0..<rows {
                    let pick = Int(rng.next() % UInt64(poolRows))
                    (out.baseAddress! + r * rowBytes).copyMemory(from: src.baseAddress! + pick * rowBytes, byteCount: rowBytes)
                }
            }
        }
        return bytes
    }
}

/// A byte-level BPE vocabulary of any size: three control tokens, the 256 byte symbols of GPT-2's
/// byte-to-unicode map, then tokens made by merging existing tokens with byte symbols, in a
/// fixed order, each with its merge rule.
enum SyntheticTokenizer {
    static func add(to w: inout GGUFWriter, vocab: Int) {
        var tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        var types: [GGUFValue] = [.int32(3), .int32(3), .int32(3)]
        let bytes = byteSymbols()
        var seen = Set(tokens)
        for b in bytes where tokens.count < vocab { tokens.append(b); types.append(.int32(1)); seen.insert(b) }
        var merges: [String] = []
        // Merge printable symbols first so that ordinary text gets multi-byte tokens.
        let printable = bytes.filter { $0.unicodeScalars.first!.value < 0x7F || $0 == "Ġ" || $0 == "Ċ" }
        var left = 3
        outer: while tokens.count < vocab {
            let base = tokens[left]
            for b in printable {
                if tokens.count >= vocab { break outer }
                let merged = base + b
                if seen.insert(merged).inserted {
                    tokens.append(merged); types.append(.int32(1)); merges.append("\(base) \(b)")
                }
            }
            left += 1
        }
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("default"))
        w.set("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(.int32, types))
        w.set("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(1))
        w.set("tokenizer.ggml.eos_token_id", .uint32(2))
        w.set("tokenizer.ggml.padding_token_id", .uint32(0))
        w.set("tokenizer.ggml.add_bos_token", .bool(false))
        w.set("tokenizer.chat_template", .string(chatML))
    }

    static let chatML = """
    {% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
    """

    /// GPT-2's byte-to-unicode table, in byte order.
    static func byteSymbols() -> [String] {
        var printable = Set<Int>()
        for r in [33...126, 161...172, 174...255] { for b in r { printable.insert(b) } }
        var next = 256
        return (0..<256).map { b in
            if printable.contains(b) { return String(UnicodeScalar(UInt8(b))) }
            defer { next += 1 }
            return String(UnicodeScalar(UInt32(next))!)
        }
    }
}
