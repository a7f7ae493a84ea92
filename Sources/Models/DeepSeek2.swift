// deepseek2: DeepSeek-V2, V2-Lite, V3 and R1 (llama.cpp's `deepseek2`, src/models/deepseek2.cpp).
//
// Attention is multi-head latent attention (MLA.swift): queries through attn_q or a q LoRA
// (attn_q_a → attn_q_a_norm → attn_q_b, when `attention.q_lora_rank` > 0), a compressed kv of
// `attention.kv_lora_rank` plus a shared rope key from attn_kv_a_mqa, normal (GPT-J) rope with
// YaRN on the last `rope.dimension_count` values of each head, keys and values from attn_kv_b
// (or attn_k_b / attn_v_b when the file has `attention.key_length_mla`). The softmax scale is
// llama.cpp's: mscale² / √(key width), mscale = attn_factor_org · (1 + 0.1 · yarn_log_multiplier ·
// ln(1/freq_scale)) — DeepSeek's YaRN magnitude correction moved from the rope into the scale.
//
// Feed-forward: the first `leading_dense_block_count` layers are dense SwiGLU MLPs of
// `feed_forward_length`; the others are mixtures of experts of `expert_feed_forward_length`:
// router `ffn_gate_inp`, softmax (V2) or sigmoid (V3, `expert_gating_func` = 2) gating, V3's
// selection bias `exp_probs_b`, group-limited selection (`expert_group_count`,
// `expert_group_used_count`), weights renormalized when `expert_weights_norm` and scaled by
// `expert_weights_scale`, plus `expert_shared_count` always-on shared experts fused into one
// SwiGLU MLP (`ffn_*_shexp`, width expert_ff · shared count, no gate). Multi-token-prediction
// (nextn) layers are not read.
import Foundation
import GGUF
import Operators

public enum DeepSeek2: Architecture {
    public static let names = ["deepseek2"]

    /// The MLA and routing hyperparameters of a deepseek2 file.
    public struct Settings: Sendable {
        public var qLoraRank: Int
        public var kvLoraRank: Int
        public var qkNope: Int, qkRope: Int, vDim: Int
        /// Split attn_k_b / attn_v_b (the file has key_length_mla / value_length_mla).
        public var splitKV: Bool
        public var leadingDense: Int
        public var sharedCount: Int
        public var gating: MoERouting.Gating
        public var normalizeWeights: Bool
        public var weightsScale: Float
        public var groups: Int, groupsUsed: Int
        public var rope: YarnRope
        public var attentionScale: Float

        public init(file: GGUFFile, hyperparameters hp: Hyperparameters) throws {
            let arch = hp.architecture
            func invalid(_ key: GGUFKey, _ v: Any, _ why: String) -> ModelError {
                ModelError.invalidHyperparameter(key: key.resolved(architecture: arch), value: "\(v)", reason: why)
            }
            qLoraRank = file.int(.qLoraRank) ?? 0
            guard let kv = try file.checkedInt(.kvLoraRank) else { throw ModelError.missingKey(GGUFKey.kvLoraRank.resolved(architecture: arch)) }
            kvLoraRank = kv
            let kMLA = file.int(.keyLengthMLA) ?? 0, vMLA = file.int(.valueLengthMLA) ?? 0
            splitKV = kMLA > 0 && vMLA > 0
            let kDim = splitKV ? kMLA : hp.headDim
            vDim = splitKV ? vMLA : hp.valueDim
            qkRope = hp.ropeDim
            qkNope = kDim - qkRope
            guard qkNope >= 1 else { throw invalid(.ropeDimensionCount, qkRope, "must be less than the key width \(kDim)") }
            if splitKV {
                guard hp.headDim == kvLoraRank + qkRope, hp.valueDim == kvLoraRank else {
                    throw invalid(.keyLength, hp.headDim, "an MLA file (key_length_mla set) needs key_length = kv_lora_rank + "
                                  + "rope dims = \(kvLoraRank + qkRope) and value_length = kv_lora_rank")
                }
            }
            leadingDense = file.int(.leadingDenseBlockCount) ?? 0
            sharedCount = file.int(.expertSharedCount) ?? 0
            let g = file.int(.expertGatingFunc) ?? 0
            switch g {
            case 0, 1: gating = .softmax     // absent: softmax, as llama.cpp for V2 files
            case 2: gating = .sigmoid
            default: throw invalid(.expertGatingFunc, g, "only 1 (softmax) and 2 (sigmoid) are implemented")
            }
            normalizeWeights = file.bool(.expertWeightsNorm) ?? false
            weightsScale = file.float(.expertWeightsScale) ?? 0
            groups = file.int(.expertGroupCount) ?? 0
            groupsUsed = file.int(.expertGroupUsedCount) ?? 0
            if groups > 1 {
                guard let experts = try file.checkedInt(.expertCount) else { throw ModelError.missingKey(GGUFKey.expertCount.resolved(architecture: arch)) }
                guard experts % groups == 0, groups < experts else {
                    throw invalid(.expertGroupCount, groups, "must divide expert_count \(experts)")
                }
                guard groupsUsed > 0, groupsUsed < groups else {
                    throw invalid(.expertGroupUsedCount, groupsUsed, "must be in 1..<expert_group_count \(groups)")
                }
            }

            // Rope and YaRN as llama.cpp sets them up (llama-model.cpp, llama-context.cpp with
            // default context parameters, deepseek2.cpp).
            let scalingType = file.string(.ropeScalingType) ?? "linear"
            let factor = file.float(.ropeScalingFactor) ?? 0
            var freqScale: Float = factor == 0 ? 1 : 1 / factor
            if scalingType == "none" { freqScale = 1 }
            let extFactor: Float = scalingType == "yarn" ? 1 : 0
            // The converter stores 0.1 · mscale_all_dim; llama.cpp cancels the 0.1.
            let logMul = file.float(.ropeScalingYarnLogMul).map { $0 / 0.1 } ?? 0
            var attnFactor: Float = 1
            if extFactor != 0 {
                func mscale(_ scale: Float, _ m: Float) -> Float { scale <= 1 ? 1 : 0.1 * m * logf(scale) + 1 }
                let f = 1 / freqScale
                if logMul != 0 {
                    let m: Float = logMul != 1 ? logMul : 1
                    attnFactor = mscale(f, m) / mscale(f, logMul)
                } else {
                    attnFactor = mscale(f, 1)
                }
                attnFactor *= 1 / (1 + 0.1 * logf(f))
            }
            attnFactor *= file.float(.ropeScalingAttnFactor) ?? 1
            rope = YarnRope(base: hp.ropeBase, dimensions: qkRope, freqScale: freqScale, extFactor: extFactor,
                            attnFactor: attnFactor, originalContext: file.int(.ropeScalingOriginalContextLength) ?? hp.contextLength)
            let attnFactorOrg = attnFactor * (1 + 0.1 * logf(1 / freqScale))
            let m = attnFactorOrg * (1 + 0.1 * logMul * logf(1 / freqScale))
            attentionScale = 1 * m * m / sqrtf(Float(kDim))
        }
    }

    public static func load(file: GGUFFile) throws -> DecoderModel {
        let hp = try Hyperparameters(file: file)
        let s = try Settings(file: file, hyperparameters: hp)
        let moe = try MoEHyperparameters(file: file, hyperparameters: hp, readsExpertLength: true)
        let w = TensorLoader(file: file)
        let d = hp.embedding, heads = hp.headCount, kDim = s.qkNope + s.qkRope
        let layers = try (0..<hp.blockCount).map { i -> DecoderLayer in
            let p = "blk.\(i)."
            func linear(_ name: String, _ rows: Int, _ cols: Int) throws -> Linear {
                Linear(name: ModuleNames.layerModule(i, name), weight: try w.matrix(p + name + ".weight", rows: rows, cols: cols))
            }
            func norm(_ name: String, _ n: Int) throws -> RMSNorm {
                RMSNorm(weight: try w.vector(p + name + ".weight", count: n), epsilon: hp.rmsEpsilon)
            }
            let qLora = s.qLoraRank > 0
            let decompression: MultiLatentAttention.Decompression
            if s.splitKV {
                let kB = try w.experts(p + "attn_k_b.weight", count: heads, rows: s.kvLoraRank, cols: s.qkNope)
                let vB = try w.experts(p + "attn_v_b.weight", count: heads, rows: s.vDim, cols: s.kvLoraRank)
                decompression = .split(kB: kB.map { Linear(name: ModuleNames.layerModule(i, "attn_k_b"), weight: $0) },
                                       vB: vB.map { Linear(name: ModuleNames.layerModule(i, "attn_v_b"), weight: $0) })
            } else {
                if !w.has(p + "attn_kv_b.weight") && w.has(p + "attn_k_b.weight") {
                    throw ModelError.unsupportedLayout("missing tensor '\(p)attn_kv_b.weight': this file has split attn_k_b / attn_v_b "
                                                       + "but no attention.key_length_mla / value_length_mla")
                }
                decompression = .kvB(try linear("attn_kv_b", heads * (s.qkNope + s.vDim), s.kvLoraRank))
            }
            let attention = MultiLatentAttention(
                name: ModuleNames.layerPrefix + "\(i).self_attn", heads: heads, qkNope: s.qkNope, qkRope: s.qkRope, vDim: s.vDim,
                kvLoraRank: s.kvLoraRank,
                q: qLora ? nil : try linear("attn_q", heads * kDim, d),
                qA: qLora ? try linear("attn_q_a", s.qLoraRank, d) : nil,
                qANorm: qLora ? try norm("attn_q_a_norm", s.qLoraRank) : nil,
                qB: qLora ? try linear("attn_q_b", heads * kDim, s.qLoraRank) : nil,
                kvA: try linear("attn_kv_a_mqa", s.kvLoraRank + s.qkRope, d), kvANorm: try norm("attn_kv_a_norm", s.kvLoraRank),
                decompression: decompression, o: try linear("attn_output", d, heads * s.vDim), rope: s.rope, scale: s.attentionScale)

            let mlp: any FeedForward
            if i < s.leadingDense {
                mlp = GatedMLP(name: ModuleNames.layerPrefix + "\(i).mlp", gate: try linear("ffn_gate", hp.feedForward, d),
                               up: try linear("ffn_up", hp.feedForward, d), down: try linear("ffn_down", d, hp.feedForward),
                               activation: .silu)
            } else {
                let ff = moe.expertFeedForward, n = moe.expertCount
                let experts = ExpertWeights(gate: try w.experts(p + "ffn_gate_exps.weight", count: n, rows: ff, cols: d),
                                            up: try w.experts(p + "ffn_up_exps.weight", count: n, rows: ff, cols: d),
                                            down: try w.experts(p + "ffn_down_exps.weight", count: n, rows: d, cols: ff))
                var shared: GatedMLP?
                if s.sharedCount > 0 {
                    let sf = ff * s.sharedCount
                    shared = GatedMLP(name: ModuleNames.layerPrefix + "\(i).mlp.shared_expert",
                                      gate: try linear("ffn_gate_shexp", sf, d), up: try linear("ffn_up_shexp", sf, d),
                                      down: try linear("ffn_down_shexp", d, sf), activation: .silu)
                }
                mlp = MoEFeedForward(name: ModuleNames.layerPrefix + "\(i).mlp", router: try linear("ffn_gate_inp", n, d),
                                     expertsName: ModuleNames.layerModule(i, "ffn_gate_exps"), experts: experts,
                                     used: moe.expertUsedCount, normalizeWeights: s.normalizeWeights, weightsScale: s.weightsScale,
                                     shared: shared, gating: s.gating,
                                     selectionBias: try w.optionalVector(p + "exp_probs_b.bias", count: n),
                                     groups: s.groups, groupsUsed: s.groupsUsed)
            }
            return DecoderLayer(attentionNorm: try norm("attn_norm", d), attention: attention, ffnNorm: try norm("ffn_norm", d), mlp: mlp)
        }
        return try StandardLayer.assemble(w, hp, layers: layers)
    }
}
