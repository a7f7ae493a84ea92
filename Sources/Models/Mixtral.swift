// mixtral: Mixtral 8x7B / 8x22B and other llama-family MoE models. In GGUF these are
// `general.architecture = llama` with `llama.expert_count` > 0 (llama.cpp has no separate
// "mixtral" architecture), so this file claims llama files that have experts and `Llama` the
// rest. Llama's attention (normal rope on permuted q/k rows, optional `rope_freqs`) and, in
// every layer, a mixture of experts: softmax router, top-`expert_used_count` experts whose
// width is `feed_forward_length`, selected weights renormalized to sum 1 (llama.cpp: norm_w =
// true; `expert_weights_scale` is not read for llama).
import GGUF

public enum Mixtral: Architecture {
    public static let names = ["llama"]
    /// How this file is named where it matters (synthetic presets, messages).
    public static let displayName = "mixtral"

    public static func accepts(_ file: GGUFFile) -> Bool {
        file.architecture == "llama" && (file.int(.expertCount) ?? 0) > 0
    }

    public static func load(file: GGUFFile) throws -> DecoderModel {
        let hp = try Hyperparameters(file: file)
        let moe = try MoEHyperparameters(file: file, hyperparameters: hp, readsExpertLength: false)
        let w = TensorLoader(file: file)
        let ropeFactors = try w.optionalVector("rope_freqs.weight", count: hp.ropeDim / 2)
        let rope = RopeSettings(base: hp.ropeBase, dimensions: hp.ropeDim, scale: hp.ropeScale, neox: false,
                                frequencyFactors: ropeFactors)
        let layers = try (0..<hp.blockCount).map { i in
            try MoELayer.load(w, hp, moe, layer: i, rope: rope, qkNorm: false, normalizeWeights: true, sharedExpert: false)
        }
        return try StandardLayer.assemble(w, hp, layers: layers)
    }
}
