// The one table between GGUF tensor names and Hugging Face-style module names:
//
//   token_embd          ↔ model.embed_tokens                       Embedding
//   rope_freqs          ↔ model.rotary_emb                         RotaryEmbedding
//   blk.N.attn_norm     ↔ model.layers.N.input_layernorm           RMSNorm
//   blk.N.attn_q        ↔ model.layers.N.self_attn.q_proj          Linear   (k_proj, v_proj, o_proj alike)
//   blk.N.attn_q_norm   ↔ model.layers.N.self_attn.q_norm          RMSNorm  (Qwen3, Gemma 3)
//   blk.N.ffn_norm      ↔ model.layers.N.post_attention_layernorm  RMSNorm  (llama naming)
//                       ↔ model.layers.N.pre_feedforward_layernorm          (Gemma naming)
//   blk.N.ffn_gate      ↔ model.layers.N.mlp.gate_proj             Linear   (up_proj, down_proj alike)
//   blk.N.attn_q_a, attn_q_a_norm, attn_q_b, attn_kv_a_mqa, attn_kv_a_norm, attn_kv_b, attn_k_b, attn_v_b
//                       ↔ model.layers.N.self_attn.{q_a_proj, q_a_layernorm, q_b_proj, kv_a_proj_with_mqa,
//                         kv_a_layernorm, kv_b_proj, k_b_proj, v_b_proj}  (DeepSeek MLA; k_b/v_b: one module
//                         per layer holding every head's slice)
//   blk.N.ffn_gate_inp  ↔ model.layers.N.mlp.gate                  Router   (MoE layers; mlp is then MoE;
//                         DeepSeek-V3's exp_probs_b.bias is a second tensor of it)
//   blk.N.ffn_{gate,up,down}_exps ↔ model.layers.N.mlp.experts     Experts  (three stacked tensors, one module)
//   blk.N.ffn_gate_shexp ↔ model.layers.N.mlp.shared_expert.gate_proj  Linear (up, down alike; the
//                                                                   shared_expert module is an MLP)
//   blk.N.ffn_gate_inp_shexp ↔ model.layers.N.mlp.shared_expert_gate  Linear (Qwen2-MoE's sigmoid gate)
//   output_norm         ↔ model.norm                               RMSNorm
//   output              ↔ lm_head                                  LMHead   (tied: token_embd)
//
// Container modules (model, model.layers.N, self_attn, mlp) hold no tensors of their own.
// Tensors carry a `.weight` / `.bias` suffix after the base name in the table. MoE module names
// follow Qwen2-MoE / Qwen3-MoE in Hugging Face (Mixtral's `block_sparse_moe` is spelled `mlp`
// too, so that one rule file fits every MoE architecture).
import Operators

public enum ModuleNames {
    /// Gemma names its four per-layer norms differently from llama (HF's Gemma3DecoderLayer).
    public enum Naming: Sendable { case llama, gemma }

    public struct Entry: Sendable {
        /// GGUF base name (per-layer entries without the `blk.N.` prefix).
        public let gguf: String
        /// Module name (per-layer entries without the `model.layers.N.` prefix).
        public let module: String
        public let kind: ModuleKind
    }

    public static let global: [Entry] = [
        Entry(gguf: "token_embd", module: "model.embed_tokens", kind: .embedding),
        Entry(gguf: "rope_freqs", module: "model.rotary_emb", kind: .rotaryEmbedding),
        Entry(gguf: "output_norm", module: "model.norm", kind: .rmsNorm),
        Entry(gguf: "output", module: "lm_head", kind: .lmHead),
    ]

    /// Per-layer entries in forward order.
    public static func layer(_ naming: Naming) -> [Entry] {
        let gemma = naming == .gemma
        return [
            Entry(gguf: "attn_norm", module: "input_layernorm", kind: .rmsNorm),
            Entry(gguf: "attn_q", module: "self_attn.q_proj", kind: .linear),
            Entry(gguf: "attn_k", module: "self_attn.k_proj", kind: .linear),
            Entry(gguf: "attn_v", module: "self_attn.v_proj", kind: .linear),
            // DeepSeek's MLA (deepseek2; Hugging Face's DeepseekV2Attention names).
            Entry(gguf: "attn_q_a", module: "self_attn.q_a_proj", kind: .linear),
            Entry(gguf: "attn_q_a_norm", module: "self_attn.q_a_layernorm", kind: .rmsNorm),
            Entry(gguf: "attn_q_b", module: "self_attn.q_b_proj", kind: .linear),
            Entry(gguf: "attn_kv_a_mqa", module: "self_attn.kv_a_proj_with_mqa", kind: .linear),
            Entry(gguf: "attn_kv_a_norm", module: "self_attn.kv_a_layernorm", kind: .rmsNorm),
            Entry(gguf: "attn_kv_b", module: "self_attn.kv_b_proj", kind: .linear),
            Entry(gguf: "attn_k_b", module: "self_attn.k_b_proj", kind: .linear),
            Entry(gguf: "attn_v_b", module: "self_attn.v_b_proj", kind: .linear),
            Entry(gguf: "attn_output", module: "self_attn.o_proj", kind: .linear),
            Entry(gguf: "attn_q_norm", module: "self_attn.q_norm", kind: .rmsNorm),
            Entry(gguf: "attn_k_norm", module: "self_attn.k_norm", kind: .rmsNorm),
            Entry(gguf: "post_attention_norm", module: "post_attention_layernorm", kind: .rmsNorm),
            Entry(gguf: "ffn_norm", module: gemma ? "pre_feedforward_layernorm" : "post_attention_layernorm", kind: .rmsNorm),
            Entry(gguf: "ffn_gate", module: "mlp.gate_proj", kind: .linear),
            Entry(gguf: "ffn_up", module: "mlp.up_proj", kind: .linear),
            Entry(gguf: "ffn_down", module: "mlp.down_proj", kind: .linear),
            Entry(gguf: "ffn_gate_inp", module: "mlp.gate", kind: .router),
            Entry(gguf: "exp_probs_b", module: "mlp.gate", kind: .router),   // DeepSeek-V3's e_score_correction_bias
            Entry(gguf: "ffn_gate_exps", module: "mlp.experts", kind: .experts),
            Entry(gguf: "ffn_up_exps", module: "mlp.experts", kind: .experts),
            Entry(gguf: "ffn_down_exps", module: "mlp.experts", kind: .experts),
            Entry(gguf: "ffn_gate_shexp", module: "mlp.shared_expert.gate_proj", kind: .linear),
            Entry(gguf: "ffn_up_shexp", module: "mlp.shared_expert.up_proj", kind: .linear),
            Entry(gguf: "ffn_down_shexp", module: "mlp.shared_expert.down_proj", kind: .linear),
            Entry(gguf: "ffn_gate_inp_shexp", module: "mlp.shared_expert_gate", kind: .linear),
            Entry(gguf: "post_ffw_norm", module: "post_feedforward_layernorm", kind: .rmsNorm),
        ]
    }

    public static let layerPrefix = "model.layers."

    /// "model.layers.3.self_attn.q_proj" for layer 3, GGUF base "attn_q".
    public static func layerModule(_ layer: Int, _ gguf: String, naming: Naming = .llama) -> String {
        guard let e = self.layer(naming).first(where: { $0.gguf == gguf }) else {
            preconditionFailure("no module name for GGUF tensor blk.\(layer).\(gguf); add it to ModuleNames")
        }
        return layerPrefix + "\(layer)." + e.module
    }

    /// Module name and kind for a GGUF tensor name ("blk.3.attn_q.weight"); nil if the table lacks it.
    public static func module(forTensor tensor: String, naming: Naming = .llama) -> (name: String, kind: ModuleKind)? {
        var base = tensor
        for suffix in [".weight", ".bias"] where base.hasSuffix(suffix) { base = String(base.dropLast(suffix.count)) }
        if let e = global.first(where: { $0.gguf == base }) { return (e.module, e.kind) }
        let parts = base.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let i = Int(parts[1]),
              let e = layer(naming).first(where: { $0.gguf == parts[2] }) else { return nil }
        return (layerPrefix + "\(i)." + e.module, e.kind)
    }

    /// GGUF base name for a module name ("model.layers.3.self_attn.q_proj" → "blk.3.attn_q"); for
    /// `mlp.experts`, which holds three tensors, the first ("blk.3.ffn_gate_exps").
    public static func tensorBase(forModule module: String, naming: Naming = .llama) -> String? {
        if let e = global.first(where: { $0.module == module }) { return e.gguf }
        guard module.hasPrefix(layerPrefix) else { return nil }
        let rest = module.dropFirst(layerPrefix.count)
        guard let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]) else { return nil }
        let suffix = String(rest[rest.index(after: dot)...])
        guard let e = layer(naming).first(where: { $0.module == suffix }) else { return nil }
        return "blk.\(i).\(e.gguf)"
    }

    /// The layer index of "model.layers.N…", nil for other modules.
    public static func layerIndex(of module: String) -> Int? {
        guard module.hasPrefix(layerPrefix) else { return nil }
        return Int(module.dropFirst(layerPrefix.count).prefix { $0.isNumber })
    }
}
