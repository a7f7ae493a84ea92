// qwen3moe: Qwen3 MoE models (Qwen3-30B-A3B, Qwen3-235B-A22B). Qwen3's attention (per-head
// q/k RMSNorm before neox rope, head dimension from `attention.key_length`) and, in every layer,
// a mixture of experts instead of the MLP: softmax router, top-`expert_used_count` experts of
// `expert_feed_forward_length`, selected weights renormalized to sum 1 (llama.cpp passes
// norm_w = true for this architecture and reads no `expert_weights_norm` / `_scale` key).
import GGUF

public enum Qwen3MoE: Architecture {
    public static let names = ["qwen3moe"]

    public static func load(file: GGUFFile) throws -> DecoderModel {
        let hp = try Hyperparameters(file: file)
        let moe = try MoEHyperparameters(file: file, hyperparameters: hp, readsExpertLength: true)
        let w = TensorLoader(file: file)
        let rope = RopeSettings(base: hp.ropeBase, dimensions: hp.ropeDim, scale: hp.ropeScale, neox: true)
        let layers = try (0..<hp.blockCount).map { i in
            try MoELayer.load(w, hp, moe, layer: i, rope: rope, qkNorm: true, normalizeWeights: true, sharedExpert: false)
        }
        return try StandardLayer.assemble(w, hp, layers: layers)
    }
}
