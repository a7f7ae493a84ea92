// llama: SmolLM2, Llama 2/3.x, Mistral-style dense models.
// Pre-norm decoder, RMSNorm, SwiGLU MLP, rotary embedding on adjacent pairs ("normal" rope:
// GGUF conversion permutes q/k rows so that ggml's interleaved rotation applies), grouped-query
// attention, LM head tied to the token embedding when `output.weight` is absent. Llama 3.1+
// carries per-pair frequency divisors in `rope_freqs.weight`.
import Core
import GGUF

public enum Llama: Architecture {
    public static let names = ["llama"]

    public static func load(file: GGUFFile) throws -> DecoderModel {
        let hp = try Hyperparameters(file: file)
        let w = TensorLoader(file: file)
        let ropeFactors = try w.optionalVector("rope_freqs.weight", count: hp.ropeDim / 2)
        let rope = RopeSettings(base: hp.ropeBase, dimensions: hp.ropeDim, scale: hp.ropeScale, neox: false,
                                frequencyFactors: ropeFactors)
        let layers = try (0..<hp.blockCount).map { i in
            try StandardLayer.load(w, hp, layer: i, rope: rope, activation: .silu)
        }
        return try StandardLayer.assemble(w, hp, layers: layers)
    }
}

/// The tensor table and block wiring shared by llama-family files (blk.N.attn_q …).
enum StandardLayer {
    static func load(_ w: TensorLoader, _ hp: Hyperparameters, layer i: Int, rope: RopeSettings,
                     activation: GatedMLP.Activation, qkNorm: Bool = false, window: Int? = nil,
                     postNorms: Bool = false, scaleQueries: Bool = false) throws -> DecoderLayer {
        let p = "blk.\(i)."
        let d = hp.embedding, qw = hp.headCount * hp.headDim, kw = hp.headCountKV * hp.headDim
        let vw = hp.headCountKV * hp.valueDim
        func linear(_ name: String, _ rows: Int, _ cols: Int) throws -> Linear {
            Linear(name: ModuleNames.layerModule(i, name), weight: try w.matrix(p + name + ".weight", rows: rows, cols: cols),
                   bias: try w.optionalVector(p + name + ".bias", count: rows))
        }
        func norm(_ name: String, _ n: Int) throws -> RMSNorm {
            RMSNorm(weight: try w.vector(p + name + ".weight", count: n), epsilon: hp.rmsEpsilon)
        }
        let attention = SelfAttention(
            name: ModuleNames.layerPrefix + "\(i).self_attn", heads: hp.headCount, kvHeads: hp.headCountKV, headDim: hp.headDim,
            q: try linear("attn_q", qw, d), k: try linear("attn_k", kw, d), v: try linear("attn_v", vw, d),
            o: try linear("attn_output", d, hp.headCount * hp.valueDim),
            qNorm: qkNorm ? try norm("attn_q_norm", hp.headDim) : nil,
            kNorm: qkNorm ? try norm("attn_k_norm", hp.headDim) : nil,
            rope: rope, window: window, scaleQueries: scaleQueries)
        let mlp = GatedMLP(name: ModuleNames.layerPrefix + "\(i).mlp", gate: try linear("ffn_gate", hp.feedForward, d), up: try linear("ffn_up", hp.feedForward, d),
                           down: try linear("ffn_down", d, hp.feedForward), activation: activation)
        return DecoderLayer(attentionNorm: try norm("attn_norm", d), attention: attention,
                            postAttentionNorm: postNorms ? try norm("post_attention_norm", d) : nil,
                            ffnNorm: try norm("ffn_norm", d), mlp: mlp,
                            postFFNNorm: postNorms ? try norm("post_ffw_norm", d) : nil)
    }

    static func assemble(_ w: TensorLoader, _ hp: Hyperparameters, layers: [DecoderLayer],
                         embeddingScale: Float = 1, finalLogitSoftcap: Float? = nil) throws -> DecoderModel {
        let embed = try w.matrix("token_embd.weight", rows: hp.vocab, cols: hp.embedding)
        let head = try w.optionalMatrix("output.weight", rows: hp.vocab, cols: hp.embedding) ?? embed
        return DecoderModel(hyperparameters: hp, tokenEmbedding: embed, embeddingScale: embeddingScale, layers: layers,
                            outputNorm: RMSNorm(weight: try w.vector("output_norm.weight", count: hp.embedding),
                                                epsilon: hp.rmsEpsilon),
                            lmHead: Linear(name: "lm_head", weight: head), finalLogitSoftcap: finalLogitSoftcap)
    }
}
