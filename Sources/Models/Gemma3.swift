// gemma3: Gemma 3 text models (270M … 27B).
// - Layers alternate sliding-window (local) and global attention: with pattern 6, layer i is
//   global iff (i + 1) % 6 == 0 (llama.cpp's swa pattern); local layers see the last
//   `attention.sliding_window` positions and use rope base 10 000, global layers use
//   `rope.freq_base` (1e6) and the linear rope scaling factor when the GGUF sets one.
// - Neox rope; per-head q/k RMSNorm; pre- and post-norms around attention and MLP; GeGLU
//   with tanh-approximate GELU; embeddings scaled by √embedding; final logit soft-capping
//   when `final_logit_softcapping` is set. The GGUF's norm weights already include Gemma's +1.
// - Attention scale 1/√headDim (query_pre_attn_scalar = head_dim for the released sizes).
import GGUF

public enum Gemma3: Architecture {
    public static let names = ["gemma3"]
    public static let naming = ModuleNames.Naming.gemma
    static let slidingWindowPattern = 6
    static let localRopeBase: Float = 10_000

    public static func load(file: GGUFFile) throws -> DecoderModel {
        let hp = try Hyperparameters(file: file)
        let w = TensorLoader(file: file)
        let window = try file.checkedInt(.slidingWindow)
        let global = RopeSettings(base: hp.ropeBase, dimensions: hp.ropeDim, scale: hp.ropeScale, neox: true)
        let local = RopeSettings(base: localRopeBase, dimensions: hp.ropeDim, neox: true)
        let layers = try (0..<hp.blockCount).map { i in
            let isGlobal = window == nil || (i + 1) % slidingWindowPattern == 0
            return try StandardLayer.load(w, hp, layer: i, rope: isGlobal ? global : local, activation: .geluTanh,
                                          qkNorm: true, window: isGlobal ? nil : window, postNorms: true,
                                          scaleQueries: true)
        }
        return try StandardLayer.assemble(w, hp, layers: layers, embeddingScale: Float(hp.embedding).squareRoot(),
                                          finalLogitSoftcap: try file.checkedFloat(.finalLogitSoftcapping, positive: true))
    }
}
