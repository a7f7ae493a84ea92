// ModuleTree: a model's modules with Hugging Face-style dotted names and a kind each, built
// from a GGUF's tensor index and hyperparameters alone (no tensor data is touched), through the
// table in ModuleNames.swift. Rules match against it; the placement plan annotates it.
//
//   model                                   Model
//   ├─ model.embed_tokens                   Embedding       token_embd.weight
//   ├─ model.rotary_emb                     RotaryEmbedding rope_freqs.weight (Llama 3 only)
//   ├─ model.layers.N                       DecoderLayer
//   │  ├─ …input_layernorm                  RMSNorm
//   │  ├─ …self_attn                        Attention       (q_proj k_proj v_proj o_proj [q_norm k_norm])
//   │  ├─ …post_attention_layernorm …       RMSNorm
//   │  └─ …mlp                              MLP             (gate_proj up_proj down_proj)
//   │     or, in an MoE layer,                MoE
//   │        ├─ …mlp.gate                     Router          ffn_gate_inp
//   │        ├─ …mlp.experts                  Experts         ffn_gate_exps ffn_up_exps ffn_down_exps
//   │        ├─ …mlp.shared_expert            MLP             (gate_proj up_proj down_proj: ffn_*_shexp)
//   │        └─ …mlp.shared_expert_gate       Linear          ffn_gate_inp_shexp (Qwen2-MoE)
//   └─ model.norm                           RMSNorm
//   lm_head                                 LMHead          output.weight, or token_embd.weight when tied
import Core
import GGUF
import Operators

public struct ModuleTensor: Sendable, Equatable {
    public let name: String
    public let type: GGMLType
    /// ggml order, ne0 first.
    public let shape: [Int]
    public let bytes: Int
}

public struct ModuleNode: Sendable {
    public let name: String
    public let kind: ModuleKind
    public let tensors: [ModuleTensor]
    public var children: [ModuleNode]
    /// True when the tensors are another module's (lm_head tied to the token embedding).
    public let tied: Bool

    public init(name: String, kind: ModuleKind, tensors: [ModuleTensor] = [], children: [ModuleNode] = [], tied: Bool = false) {
        self.name = name; self.kind = kind; self.tensors = tensors; self.children = children; self.tied = tied
    }

    /// Type of the `.weight` tensor (or the first tensor).
    public var weightType: GGMLType? {
        (tensors.first { $0.name.hasSuffix(".weight") } ?? tensors.first)?.type
    }

    public var bytes: Int { tensors.reduce(0) { $0 + $1.bytes } }
}

public struct ModuleTree: Sendable {
    public let architecture: String
    /// The hyperparameters the tree was built with (KV cache geometry for placement totals).
    public let hyperparameters: Hyperparameters
    public let roots: [ModuleNode]
    /// GGUF tensors the name table does not know (shown by `inspect --placement`).
    public let unmappedTensors: [String]

    /// Every module in pre-order with its depth and parent's name.
    /// Whether any module is of `kind` (a mixture of experts has .experts modules).
    public func contains(_ kind: ModuleKind) -> Bool { flattened.contains { $0.node.kind == kind } }

    public var flattened: [(node: ModuleNode, depth: Int, parent: String?)] {
        var out: [(ModuleNode, Int, String?)] = []
        func walk(_ n: ModuleNode, _ depth: Int, _ parent: String?) {
            out.append((n, depth, parent))
            for c in n.children { walk(c, depth + 1, n.name) }
        }
        roots.forEach { walk($0, 0, nil) }
        return out.map { (node: $0.0, depth: $0.1, parent: $0.2) }
    }

    public func module(named name: String) -> ModuleNode? { flattened.first { $0.node.name == name }?.node }

    /// True when some layer is a mixture of experts (its `mlp` is a MoE module).
    public var isMixtureOfExperts: Bool { flattened.contains { $0.node.kind == .moe } }

    /// Builds the tree of `file` with `naming` (the architecture's, see `Architectures.moduleTree`).
    public static func build(file: GGUFFile, naming: ModuleNames.Naming) throws -> ModuleTree {
        let hp = try Hyperparameters(file: file)
        var used = Set<String>()
        func tensors(_ base: String) -> [ModuleTensor] {
            [".weight", ".bias"].compactMap { suffix in
                guard let t = file.tensor(named: base + suffix) else { return nil }
                used.insert(t.name)
                return ModuleTensor(name: t.name, type: t.type, shape: t.shape, bytes: t.byteCount)
            }
        }
        func leaf(_ name: String, _ kind: ModuleKind, _ base: String) -> ModuleNode? {
            let ts = tensors(base)
            return ts.isEmpty ? nil : ModuleNode(name: name, kind: kind, tensors: ts)
        }

        var model = ModuleNode(name: "model", kind: .model)
        let embed = leaf("model.embed_tokens", .embedding, "token_embd")
        if let embed { model.children.append(embed) }
        model.children.append(leaf("model.rotary_emb", .rotaryEmbedding, "rope_freqs")
                              ?? ModuleNode(name: "model.rotary_emb", kind: .rotaryEmbedding))
        let table = ModuleNames.layer(naming)
        for i in 0..<hp.blockCount {
            let prefix = ModuleNames.layerPrefix + "\(i)"
            var layer = ModuleNode(name: prefix, kind: .decoderLayer)
            var attention = ModuleNode(name: prefix + ".self_attn", kind: .attention)
            let moe = file.tensor(named: "blk.\(i).ffn_gate_inp.weight") != nil
            var mlp = ModuleNode(name: prefix + ".mlp", kind: moe ? .moe : .mlp)
            var shared = ModuleNode(name: prefix + ".mlp.shared_expert", kind: .mlp)
            var norms: [(after: String, node: ModuleNode)] = []
            // Several GGUF tensors may form one module (the stacked experts): merge them in table order.
            var merged: [(entry: ModuleNames.Entry, tensors: [ModuleTensor])] = []
            for e in table {
                let ts = tensors("blk.\(i).\(e.gguf)")
                guard !ts.isEmpty else { continue }
                if let j = merged.firstIndex(where: { $0.entry.module == e.module }) { merged[j].tensors += ts }
                else { merged.append((e, ts)) }
            }
            for (e, ts) in merged {
                let node = ModuleNode(name: prefix + "." + e.module, kind: e.kind, tensors: ts)
                if e.module.hasPrefix("self_attn.") { attention.children.append(node) }
                else if e.module.hasPrefix("mlp.shared_expert.") { shared.children.append(node) }
                else if e.module.hasPrefix("mlp.") { mlp.children.append(node) }
                else { norms.append((e.gguf, node)) }
            }
            if !shared.children.isEmpty {  // after the routed experts, before its gate
                let at = (mlp.children.firstIndex { $0.kind == .experts }).map { $0 + 1 } ?? mlp.children.count
                mlp.children.insert(shared, at: at)
            }
            // Forward order: input norm, attention, post-attention norm(s), MLP, post-MLP norm.
            func norm(_ gguf: String) -> ModuleNode? { norms.first { $0.after == gguf }?.node }
            layer.children = [norm("attn_norm"), attention, norm("post_attention_norm"), norm("ffn_norm"), mlp,
                              norm("post_ffw_norm")].compactMap { $0 }
            model.children.append(layer)
        }
        if let n = leaf("model.norm", .rmsNorm, "output_norm") { model.children.append(n) }
        let head = leaf("lm_head", .lmHead, "output")
            ?? ModuleNode(name: "lm_head", kind: .lmHead, tensors: embed?.tensors ?? [], tied: true)
        let unmapped = file.tensors.map(\.name).filter { !used.contains($0) }
        return ModuleTree(architecture: hp.architecture, hyperparameters: hp, roots: [model, head], unmappedTensors: unmapped)
    }
}
