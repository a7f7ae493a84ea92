// qwen2moe: Qwen1.5-MoE / Qwen2-MoE. Qwen2's attention (q/k/v biases, neox rope) and, in every
// layer, a mixture of experts: softmax router, top-`expert_used_count` experts of
// `expert_feed_forward_length` whose weights are the softmax probabilities as they are (not
// renormalized: llama.cpp passes norm_w = false), plus a shared expert of
// `expert_shared_feed_forward_length` (`ffn_{gate,up,down}_shexp`) scaled by
// sigmoid(`ffn_gate_inp_shexp` · x) and added to the routed experts' sum.
import GGUF

public enum Qwen2MoE: Architecture {
    public static let names = ["qwen2moe"]

    public static func load(file: GGUFFile) throws -> DecoderModel {
        let hp = try Hyperparameters(file: file)
        let moe = try MoEHyperparameters(file: file, hyperparameters: hp, readsExpertLength: true)
        let w = TensorLoader(file: file)
        let rope = RopeSettings(base: hp.ropeBase, dimensions: hp.ropeDim, scale: hp.ropeScale, neox: true)
        let layers = try (0..<hp.blockCount).map { i in
            try MoELayer.load(w, hp, moe, layer: i, rope: rope, qkNorm: false, normalizeWeights: false, sharedExpert: true)
        }
        return try StandardLayer.assemble(w, hp, layers: layers)
    }
}
