// qwen3: Qwen3 dense models. Llama's block with per-head RMSNorm of queries and keys
// (`attn_q_norm`, `attn_k_norm`, [headDim]) before rope, neox-style rope, no q/k/v biases,
// head dimension from `attention.key_length` (128, independent of embedding / heads).
import GGUF

public enum Qwen3: Architecture {
    public static let names = ["qwen3"]

    public static func load(file: GGUFFile) throws -> DecoderModel {
        let hp = try Hyperparameters(file: file)
        let w = TensorLoader(file: file)
        let rope = RopeSettings(base: hp.ropeBase, dimensions: hp.ropeDim, scale: hp.ropeScale, neox: true)
        let layers = try (0..<hp.blockCount).map { i in
            try StandardLayer.load(w, hp, layer: i, rope: rope, activation: .silu, qkNorm: true)
        }
        return try StandardLayer.assemble(w, hp, layers: layers)
    }
}
