// qwen2: Qwen2 / Qwen2.5 dense models. Llama's block with biases on q, k and v (loaded
// automatically when `attn_q.bias` … exist) and neox-style rope (rotate halves).
import GGUF

public enum Qwen2: Architecture {
    public static let names = ["qwen2"]

    public static func load(file: GGUFFile) throws -> DecoderModel {
        let hp = try Hyperparameters(file: file)
        let w = TensorLoader(file: file)
        let rope = RopeSettings(base: hp.ropeBase, dimensions: hp.ropeDim, scale: hp.ropeScale, neox: true)
        let layers = try (0..<hp.blockCount).map { i in
            try StandardLayer.load(w, hp, layer: i, rope: rope, activation: .silu)
        }
        return try StandardLayer.assemble(w, hp, layers: layers)
    }
}
