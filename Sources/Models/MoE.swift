// Mixture-of-experts feed-forward layers, shared by mixtral, qwen2moe and qwen3moe (llama.cpp's
// build_moe_ffn with softmax gating):
//
//   probs   = softmax(router · x)                              [experts] per token, router = ffn_gate_inp
//   ids     = the `used` experts of highest probability          (ties: the lower index)
//   weights = probs[ids], divided by their sum when the architecture normalizes them
//             (mixtral, qwen3moe; not qwen2moe), times `expert_weights_scale` where read
//   out     = Σ_j weights[j] · down_ids[j](silu(gate_ids[j] · x) · up_ids[j] · x)
//           + sigmoid(shared_gate · x) · shared(x)               (qwen2moe's shared expert)
//
// The routed experts are stacked in three 3-D GGUF tensors (`ffn_gate_exps` [embedding,
// expertFF, experts] …; one expert per slice) and run by the `ExpertsOperator` the placement
// bound to `model.layers.N.mlp.experts` (ExpertsCPU: tokens grouped by expert, one matmul per
// expert on the quantized weights). The router is a Linear module (`mlp.gate`, usually F32);
// turning its logits into routing is the architecture's, here.
import Core
import CPUKernels
import Foundation
import GGUF
import Operators

// MARK: - Hyperparameters

/// The MoE keys of a GGUF (`{arch}.expert_count` …), checked.
public struct MoEHyperparameters: Sendable {
    public var expertCount: Int
    /// Experts per token (top-k).
    public var expertUsedCount: Int
    /// Intermediate width of one routed expert.
    public var expertFeedForward: Int
    /// Intermediate width of the shared expert (qwen2moe).
    public var sharedFeedForward: Int

    /// `expertFeedForward`: `{arch}.expert_feed_forward_length` when `readsExpertLength`, else
    /// (and when absent) the fallback llama.cpp uses (llama: `feed_forward_length`; qwen MoE:
    /// `feed_forward_length / expert_used_count`).
    public init(file: GGUFFile, hyperparameters hp: Hyperparameters, readsExpertLength: Bool) throws {
        let arch = hp.architecture
        func count(_ key: GGUFKey) throws -> Int {
            guard let v = try file.checkedInt(key) else { throw ModelError.missingKey(key.resolved(architecture: arch)) }
            return v
        }
        expertCount = try count(.expertCount)
        expertUsedCount = try count(.expertUsedCount)
        guard expertUsedCount <= expertCount else {
            throw ModelError.invalidHyperparameter(key: GGUFKey.expertUsedCount.resolved(architecture: arch), value: "\(expertUsedCount)",
                                                   reason: "more than expert_count \(expertCount)")
        }
        if readsExpertLength {
            expertFeedForward = file.int(.expertFeedForwardLength).flatMap { $0 > 0 ? $0 : nil } ?? hp.feedForward / expertUsedCount
        } else {
            expertFeedForward = hp.feedForward
        }
        sharedFeedForward = file.int(.expertSharedFeedForwardLength).flatMap { $0 > 0 ? $0 : nil } ?? hp.feedForward
    }
}

// MARK: - The MoE block

public struct MoEFeedForward: FeedForward {
    /// Module name ("model.layers.3.mlp").
    public let name: String
    /// [experts, embedding] ("…mlp.gate").
    public let router: Linear
    /// Module name of the routed experts ("…mlp.experts").
    public let expertsName: String
    public let experts: ExpertWeights
    public let used: Int
    /// Divide the selected probabilities by their sum (mixtral, qwen3moe).
    public let normalizeWeights: Bool
    /// Multiplies the weights when not 0 or 1 (llama.cpp's `expert_weights_scale`).
    public let weightsScale: Float
    /// Qwen2-MoE: an always-on expert ("…mlp.shared_expert") and its sigmoid gate [1, embedding].
    public let shared: GatedMLP?
    public let sharedGate: Linear?
    /// DeepSeek: the gating function, the selection bias (`exp_probs_b`, V3) and group-limited
    /// selection (`expert_group_count` groups, the best `expert_group_used_count` of them).
    public let gating: MoERouting.Gating
    public let selectionBias: [Float]?
    public let groups: Int, groupsUsed: Int

    public init(name: String, router: Linear, expertsName: String, experts: ExpertWeights, used: Int, normalizeWeights: Bool,
                weightsScale: Float = 1, shared: GatedMLP? = nil, sharedGate: Linear? = nil, gating: MoERouting.Gating = .softmax,
                selectionBias: [Float]? = nil, groups: Int = 0, groupsUsed: Int = 0) {
        self.name = name; self.router = router; self.expertsName = expertsName; self.experts = experts; self.used = used
        self.normalizeWeights = normalizeWeights; self.weightsScale = weightsScale; self.shared = shared; self.sharedGate = sharedGate
        self.gating = gating; self.selectionBias = selectionBias; self.groups = groups; self.groupsUsed = groupsUsed
    }

    public func callAsFunction(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, tokens: Int, context: ForwardContext) {
        let ids = UnsafeMutablePointer<Int32>.allocate(capacity: tokens * used)
        let weights = UnsafeMutablePointer<Float>.allocate(capacity: tokens * used)
        defer { ids.deallocate(); weights.deallocate() }
        route(x, tokens: tokens, ids: ids, weights: weights, context: context)
        runExperts(x, out, tokens: tokens, ids: ids, weights: weights, context: context)
    }

    /// The block after routing: the chosen experts (ids, weights [tokens, used]) and, with
    /// `shared` (unless a GPU computes it: CUDAModel), the shared expert, into out.
    public func runExperts(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, tokens: Int, ids: UnsafePointer<Int32>,
                           weights: UnsafePointer<Float>, context: ForwardContext, shared: Bool = true) {
        context.operators.experts(expertsName, tokens: tokens)
            .run(experts, x: x, routing: ExpertRouting(tokens: tokens, used: used, ids: ids, weights: weights), out: out,
                 pool: context.pool)
        if shared { addShared(x, out, tokens: tokens, context: context) }
    }

    /// The router and the routing function: each token's `used` experts and their weights into
    /// ids, weights [tokens, used] (slot order as ranked).
    public func route(_ x: UnsafePointer<Float>, tokens: Int, ids: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>,
                      context: ForwardContext) {
        let e = experts.count
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: tokens * e)
        defer { logits.deallocate() }
        router(x, logits, tokens: tokens, context: context)
        select(logits: logits, tokens: tokens, ids: ids, weights: weights)
    }

    /// The routing function alone, on router logits [tokens, experts] computed elsewhere (the
    /// GPU's exact router): each token's `used` experts and their weights.
    public func select(logits: UnsafeMutablePointer<Float>, tokens: Int, ids: UnsafeMutablePointer<Int32>,
                       weights: UnsafeMutablePointer<Float>) {
        let e = experts.count
        if gating == .softmax && selectionBias == nil && groups <= 1 {
            MoERouting.softmaxTopK(logits: logits, tokens: tokens, experts: e, used: used, normalize: normalizeWeights,
                                   scale: weightsScale, ids: ids, weights: weights)
        } else {
            MoERouting.grouped(logits: logits, tokens: tokens, experts: e, used: used, gating: gating, bias: selectionBias,
                               groups: groups, groupsUsed: groupsUsed, normalize: normalizeWeights, scale: weightsScale,
                               ids: ids, weights: weights)
        }
    }

    /// out += the shared expert's output (times its sigmoid gate), when the block has one.
    public func addShared(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, tokens: Int, context: ForwardContext) {
        guard let shared else { return }
        let d = experts.embedding
        let s = UnsafeMutablePointer<Float>.allocate(capacity: tokens * d)
        let g = UnsafeMutablePointer<Float>.allocate(capacity: tokens)
        defer { s.deallocate(); g.deallocate() }
        shared(x, s, tokens: tokens, context: context)
        if let sharedGate { sharedGate(x, g, tokens: tokens, context: context) }
        for t in 0..<tokens {
            let gate: Float = sharedGate == nil ? 1 : 1 / (1 + exp(-g[t]))
            let o = out + t * d, st = s + t * d
            for i in 0..<d { o[i] += st[i] * gate }
        }
    }
}

// MARK: - Routing

public enum MoERouting {
    /// llama.cpp's `expert_gating_func`: 1 softmax, 2 sigmoid.
    public enum Gating: Int, Sendable { case softmax = 1, sigmoid = 2 }

    /// llama.cpp's build_moe_ffn in full, for DeepSeek: per token, probs = softmax or sigmoid of
    /// the logits; selection scores = probs + `bias` (V3's `exp_probs_b`, else probs); with
    /// `groups` > 1, the experts form `groups` consecutive groups, each scored by the sum of its two
    /// best selection scores, and only the `groupsUsed` best groups stay eligible (ties: the lower
    /// group); then the `used` best eligible experts (ties: the lower id), weighted by their
    /// unbiased probs — divided by their sum (clamped at 6.1e-5) when `normalize` — times `scale`
    /// unless 0 or 1.
    public static func grouped(logits: UnsafeMutablePointer<Float>, tokens: Int, experts: Int, used: Int, gating: Gating,
                               bias: [Float]?, groups: Int, groupsUsed: Int, normalize: Bool, scale: Float,
                               ids: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>) {
        var selection = [Float](repeating: 0, count: experts)
        var taken = [Bool](repeating: false, count: experts)
        let perGroup = groups > 1 ? experts / groups : experts
        for t in 0..<tokens {
            let p = logits + t * experts
            switch gating {
            case .softmax:
                var m = -Float.infinity
                for i in 0..<experts { m = max(m, p[i]) }
                var sum = 0.0
                for i in 0..<experts { p[i] = exp(p[i] - m); sum += Double(p[i]) }
                let inv = Float(1 / sum)
                for i in 0..<experts { p[i] *= inv }
            case .sigmoid:
                for i in 0..<experts { p[i] = 1 / (1 + exp(-p[i])) }
            }
            for i in 0..<experts { selection[i] = bias.map { p[i] + $0[i] } ?? p[i] }
            if groups > 1 {
                var scores = [Float](repeating: 0, count: groups)
                for g in 0..<groups {
                    var a = -Float.infinity, b = -Float.infinity   // the two best of the group
                    for i in (g * perGroup)..<((g + 1) * perGroup) {
                        let v = selection[i]
                        if v > a { b = a; a = v } else if v > b { b = v }
                    }
                    scores[g] = a + b
                }
                var keep = [Bool](repeating: false, count: groups)
                for _ in 0..<groupsUsed {
                    var best = -1
                    for g in 0..<groups where !keep[g] && (best < 0 || scores[g] > scores[best]) { best = g }
                    keep[best] = true
                }
                for g in 0..<groups where !keep[g] {
                    for i in (g * perGroup)..<((g + 1) * perGroup) { selection[i] = -.infinity }
                }
            }
            for i in 0..<experts { taken[i] = false }
            var total: Float = 0
            for j in 0..<used {
                var best = -1
                for i in 0..<experts where !taken[i] && (best < 0 || selection[i] > selection[best]) { best = i }
                taken[best] = true
                ids[t * used + j] = Int32(best)
                weights[t * used + j] = p[best]
                total += p[best]
            }
            if normalize {
                let divisor = max(total, 6.103515625e-5)
                for j in 0..<used { weights[t * used + j] /= divisor }
            }
            if scale != 0, scale != 1 {
                for j in 0..<used { weights[t * used + j] *= scale }
            }
        }
    }

    /// Per token: probabilities = softmax(logits) (max-subtracted, sum in double as ggml does),
    /// the `used` highest in descending order (ties: the lower expert id), their probabilities
    /// as weights — divided by their sum (clamped below at 6.1e-5, as llama.cpp) when
    /// `normalize` — times `scale` unless it is 0 or 1. logits [tokens, experts];
    /// ids, weights [tokens, used].
    public static func softmaxTopK(logits: UnsafeMutablePointer<Float>, tokens: Int, experts: Int, used: Int, normalize: Bool,
                                   scale: Float, ids: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>) {
        grouped(logits: logits, tokens: tokens, experts: experts, used: used, gating: .softmax, bias: nil, groups: 1,
                groupsUsed: 1, normalize: normalize, scale: scale, ids: ids, weights: weights)
    }
}

// MARK: - Loading

/// Decoder layers whose attention follows the llama-family tensor table and whose feed-forward
/// part is a mixture of experts.
enum MoELayer {
    static func load(_ w: TensorLoader, _ hp: Hyperparameters, _ moe: MoEHyperparameters, layer i: Int, rope: RopeSettings,
                     qkNorm: Bool, normalizeWeights: Bool, sharedExpert: Bool) throws -> DecoderLayer {
        let p = "blk.\(i).", d = hp.embedding
        func linear(_ name: String, _ rows: Int, _ cols: Int) throws -> Linear {
            Linear(name: ModuleNames.layerModule(i, name), weight: try w.matrix(p + name + ".weight", rows: rows, cols: cols),
                   bias: try w.optionalVector(p + name + ".bias", count: rows))
        }
        func norm(_ name: String, _ n: Int) throws -> RMSNorm {
            RMSNorm(weight: try w.vector(p + name + ".weight", count: n), epsilon: hp.rmsEpsilon)
        }
        let qw = hp.headCount * hp.headDim, kw = hp.headCountKV * hp.headDim, vw = hp.headCountKV * hp.valueDim
        let attention = SelfAttention(
            name: ModuleNames.layerPrefix + "\(i).self_attn", heads: hp.headCount, kvHeads: hp.headCountKV, headDim: hp.headDim,
            q: try linear("attn_q", qw, d), k: try linear("attn_k", kw, d), v: try linear("attn_v", vw, d),
            o: try linear("attn_output", d, hp.headCount * hp.valueDim),
            qNorm: qkNorm ? try norm("attn_q_norm", hp.headDim) : nil,
            kNorm: qkNorm ? try norm("attn_k_norm", hp.headDim) : nil,
            rope: rope)

        let ff = moe.expertFeedForward, n = moe.expertCount
        let experts = ExpertWeights(gate: try w.experts(p + "ffn_gate_exps.weight", count: n, rows: ff, cols: d),
                                    up: try w.experts(p + "ffn_up_exps.weight", count: n, rows: ff, cols: d),
                                    down: try w.experts(p + "ffn_down_exps.weight", count: n, rows: d, cols: ff))
        var shared: GatedMLP?, sharedGate: Linear?
        if sharedExpert {
            let sf = moe.sharedFeedForward
            shared = GatedMLP(name: ModuleNames.layerPrefix + "\(i).mlp.shared_expert",
                              gate: try linear("ffn_gate_shexp", sf, d), up: try linear("ffn_up_shexp", sf, d),
                              down: try linear("ffn_down_shexp", d, sf), activation: .silu)
            sharedGate = Linear(name: ModuleNames.layerModule(i, "ffn_gate_inp_shexp"),
                                weight: try w.rowVector(p + "ffn_gate_inp_shexp.weight", count: d))
        }
        let mlp = MoEFeedForward(name: ModuleNames.layerPrefix + "\(i).mlp", router: try linear("ffn_gate_inp", n, d),
                                 expertsName: ModuleNames.layerModule(i, "ffn_gate_exps"), experts: experts,
                                 used: moe.expertUsedCount, normalizeWeights: normalizeWeights,
                                 shared: shared, sharedGate: sharedGate)
        return DecoderLayer(attentionNorm: try norm("attn_norm", d), attention: attention, ffnNorm: try norm("ffn_norm", d), mlp: mlp)
    }
}

extension TensorLoader {
    /// A stacked 3-D tensor (ggml shape [cols, rows, count]) as `count` [rows, cols] matrices,
    /// each a view of its slice.
    func experts(_ name: String, count: Int, rows: Int, cols: Int) throws -> [WeightMatrix] {
        guard let t = file.tensor(named: name) else {
            // Old conversions stored one 2-D tensor per expert: blk.N.ffn_gate.0.weight …
            let perExpert = name.replacingOccurrences(of: "_exps.weight", with: ".0.weight")
            if has(perExpert) {
                throw ModelError.unsupportedLayout("missing tensor '\(name)': this file stores one tensor per expert "
                                                   + "('\(perExpert)' …), an old conversion; convert the model again with a current llama.cpp")
            }
            throw ModelError.missingTensor(name)
        }
        guard t.shape == [cols, rows, count] else {
            throw ModelError.shapeMismatch(tensor: name, expected: [cols, rows, count], actual: t.shape)
        }
        guard Quant.canDequantize(t.type) else { throw ModelError.unsupportedTensorType(tensor: name, type: t.type) }
        let base = file.data(for: t).baseAddress!
        let sliceBytes = rows * t.type.byteCount(elements: cols)
        return (0..<count).map { WeightMatrix(type: t.type, rows: rows, cols: cols, data: base + $0 * sliceBytes,
                                                    fileMapped: file.isFileMapped) }
    }

    /// A 1-D weight of `count` elements (ggml [count], or [count, 1]) as a [1, count] matrix.
    func rowVector(_ name: String, count: Int) throws -> WeightMatrix {
        guard let t = file.tensor(named: name) else { throw ModelError.missingTensor(name) }
        guard t.shape == [count] || t.shape == [count, 1] else {
            throw ModelError.shapeMismatch(tensor: name, expected: [count], actual: t.shape)
        }
        guard Quant.canDequantize(t.type) else { throw ModelError.unsupportedTensorType(tensor: name, type: t.type) }
        return WeightMatrix(type: t.type, rows: 1, cols: count, data: file.data(for: t).baseAddress!)
    }
}
