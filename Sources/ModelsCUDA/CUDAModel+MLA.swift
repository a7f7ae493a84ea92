// deepseek2's multi-head latent attention on the GPU (Models/MLA.swift's `attn_kv_b` path, the
// layout of DeepSeek-V2, V2-Lite and older V3 conversions): the cache holds full keys and values
// per head as on the CPU — key [k_nope (qkNope) | k_pe (qkRope)], value [v (vDim) | zeros], both
// qkNope + qkRope (192) wide, f16 — so the attention kernels run unchanged, with kvHeads = heads
// and head width 192 (which the CPU-numerics one-kernel short form and split-K take; the tiled
// and fused-quantization forms are for 32/64/128/256). Per layer, from h = attnNorm(x):
//
//   q, ca  = attn_q · h (or attn_q_b · rmsnorm(attn_q_a · h)),  attn_kv_a_mqa · h   [T, heads·192], [T, rank + 64]
//   mla_rope:   q's rope part and ca's shared k_pe rotated (YaRN); c = ca's first rank values
//   c      = rmsnorm_kva(c)  (quantized for kv_b on the way),  kv = attn_kv_b · c     [T, heads · (128 + 128)]
//   mla_store:  keys [k_nope_h | k_pe] and values [v_h | 0] to the caches at the positions
//   attn   = attention(q, K, V)  as the other layers choose it                       [T, heads, 192]
//   mla_merge:  each head's first vDim values → attn_output → o
//
// Files with split attn_k_b / attn_v_b (absorbed MLA: one shared key of kv_lora_rank + qkRope =
// 576 values per token, values 512) are refused with a message: that width needs attention
// kernels with separate key and value widths beyond 256, which are not built.
import Core
import CUDA
import Foundation
import Models

extension GPUOps.Yarn {
    /// The GPU's parameters of `rope`, computed as the CPU computes them (YarnRope's properties).
    public init(_ rope: YarnRope) {
        let corr = rope.correctionDims
        self.init(dimensions: rope.dimensions, thetaScale: rope.thetaScale, freqScale: rope.freqScale, extFactor: rope.extFactor,
                  correctionLow: corr.0, correctionHigh: corr.1, magnitude: rope.magnitude)
    }
}

extension CUDAModel {
    /// The dimensions of an MLA layer the GPU runs.
    public struct LatentShape: Sendable, Equatable {
        public let heads: Int, qkNope: Int, qkRope: Int, vDim: Int
        /// kv_lora_rank (the compressed kv's width) and q_lora_rank (0: attn_q, no q LoRA).
        public let rank: Int, qLoraRank: Int
        public let rope: GPUOps.Yarn
        /// The softmax scale (MultiLatentAttention.scale: YaRN's mscale² / √192).
        public let scale: Float
        /// Query and key width per head, and the cache's (padded) value width.
        public var headDim: Int { qkNope + qkRope }
    }

    /// An MLA layer in Layer's roles (q: attn_q or attn_q_a, k: attn_kv_a_mqa, v: attn_kv_b,
    /// o: attn_output) with its other parts, checked by `latentPlan`.
    struct LatentPlan {
        let q: Linear, k: Linear, v: Linear, o: Linear
        let qANorm: RMSNorm?, qB: Linear?, kvANorm: RMSNorm
        let ropeBase: Float
        let shape: LatentShape
        /// The layer's matrices (Layer.attentionLins' order: q, k, v, o, then q LoRA's attn_q_b).
        var linears: [Linear] { [q, k, v, o] + (qB.map { [$0] } ?? []) }
    }

    /// What an MLA layer holds on the device beyond Layer's q, k, v and o.
    struct LatentAttention {
        /// attn_q_a_norm [qLoraRank] and attn_q_b [heads · headDim, qLoraRank] (q LoRA; nil with attn_q).
        let qANorm: Norm?, qB: Lin?
        /// attn_kv_a_norm [rank].
        let kvANorm: Norm
        let shape: LatentShape
    }

    /// The GPU's plan for layer `i`'s MLA, or why it cannot run there: split attn_k_b / attn_v_b
    /// (absorbed) files, head widths the attention kernels do not take, inconsistent matrices.
    static func latentPlan(_ a: MultiLatentAttention, layer i: Int) throws -> LatentPlan {
        func refuse(_ why: String) -> CUDAModelError { .unsupported("layer \(i)'s multi-head latent attention: " + why) }
        guard case let .kvB(kvB) = a.decompression else {
            throw refuse("this file has split attn_k_b / attn_v_b (absorbed MLA, one shared \(a.kvLoraRank + a.qkRope)-wide latent "
                         + "key per token), which the GPU attention kernels (head widths up to 256) do not take; run it on the CPU "
                         + "(rules/cpu.yaml) or use a conversion with attn_kv_b")
        }
        let hd = a.qkNope + a.qkRope, r = a.kvLoraRank, heads = a.heads
        guard hd % 32 == 0, hd <= 256, a.qkRope > 0, a.qkRope % 2 == 0, a.rope.dimensions == a.qkRope, a.vDim > 0, a.vDim <= hd else {
            throw refuse("qk_nope \(a.qkNope) + qk_rope \(a.qkRope), values of \(a.vDim): the GPU attention takes head widths that "
                         + "are multiples of 32 up to 256, an even rope part and values no wider than the keys")
        }
        let q: Linear, qB: Linear?
        if let direct = a.q {
            q = direct; qB = nil
        } else if let qA = a.qA, let b = a.qB, let norm = a.qANorm, b.inFeatures == qA.outFeatures, norm.weight.count == qA.outFeatures {
            q = qA; qB = b
        } else {
            throw refuse("neither attn_q nor a consistent q LoRA (attn_q_a, attn_q_a_norm, attn_q_b)")
        }
        guard (qB ?? q).outFeatures == heads * hd, a.kvA.outFeatures == r + a.qkRope, a.kvA.inFeatures == q.inFeatures,
              kvB.outFeatures == heads * (a.qkNope + a.vDim), kvB.inFeatures == r, a.kvANorm.weight.count == r,
              a.o.inFeatures == heads * a.vDim else {
            throw refuse("matrix shapes do not fit \(heads) heads × (\(a.qkNope) + \(a.qkRope)), values \(a.vDim), rank \(r)")
        }
        let shape = LatentShape(heads: heads, qkNope: a.qkNope, qkRope: a.qkRope, vDim: a.vDim, rank: r,
                                qLoraRank: qB?.inFeatures ?? 0, rope: GPUOps.Yarn(a.rope), scale: a.scale)
        return LatentPlan(q: q, k: a.kvA, v: kvB, o: a.o, qANorm: a.qANorm, qB: qB, kvANorm: a.kvANorm, ropeBase: a.rope.base,
                          shape: shape)
    }

    /// `latentPlan`'s shape: whether (and how) the GPU runs this attention, without a GPU.
    public static func latentShape(_ a: MultiLatentAttention, layer i: Int) throws -> LatentShape {
        try latentPlan(a, layer: i).shape
    }
}

/// A decoder's MLA intermediates, for chunks of up to `tokens`, sized for the widest MLA layer.
struct LatentBuffers {
    /// kv_a's output [tokens, rank + qkRope] (k_pe rotated in place), the compressed kv [tokens, rank].
    let ca: DeviceBuffer, c: DeviceBuffer
    /// kv_b's output [tokens, heads · (qkNope + vDim)].
    let kv: DeviceBuffer
    /// q LoRA's low-rank queries [tokens, qLoraRank] (one float without q LoRA).
    let qLow: DeviceBuffer
    /// The heads' real output values [tokens, heads · vDim], attn_output's input.
    let merged: DeviceBuffer

    /// nil when no layer is MLA.
    init?(layers: [CUDAModel.Layer], tokens b: Int, allocator: CachingAllocator) throws {
        let shapes = layers.compactMap { $0.mla?.shape }
        guard !shapes.isEmpty else { return nil }
        func floats(_ width: (CUDAModel.LatentShape) -> Int) throws -> DeviceBuffer {
            try allocator.allocate(max(1, b * (shapes.map(width).max() ?? 0)) * 4)
        }
        ca = try floats { $0.rank + $0.qkRope }
        c = try floats(\.rank)
        kv = try floats { $0.heads * ($0.qkNope + $0.vDim) }
        qLow = try floats(\.qLoraRank)
        merged = try floats { $0.heads * $0.vDim }
    }
}

extension CUDADecoder {
    /// An MLA layer's attention (the file's header): h → queries and kv_a, rope and c split
    /// off, c normalized → kv_b, keys and values into the cache, attention over it, the heads'
    /// values merged, the output projection into o. Never the rope-in-GEMV or rope-in-attention
    /// forms, and no quantization fused into the attention (its output is not o's input).
    func latentAttention(_ L: CUDAModel.Layer, _ mla: CUDAModel.LatentAttention, layer index: Int, tokens n: Int,
                         maxKeys: Int) throws {
        guard let latent else { throw CUDAModelError.unsupported("layer \(index)'s MLA without its buffers") }
        let s = mla.shape
        if let qB = mla.qB, let qANorm = mla.qANorm {
            try linears([(L.q, latent.qLow.pointer), (L.k, latent.ca.pointer)], input: h.pointer, tokens: n)
            try norm(qANorm, latent.qLow.pointer, latent.qLow.pointer, rows: n, feeding: qB.matrix)
            try linears([(qB, qb.pointer)], input: latent.qLow.pointer, tokens: n)
        } else {
            try linears([(L.q, qb.pointer), (L.k, latent.ca.pointer)], input: h.pointer, tokens: n)
        }
        try GPUOps.mlaRope(gpu, q: qb.pointer, ca: latent.ca.pointer, c: latent.c.pointer, positions: positions.pointer, tokens: n,
                           heads: s.heads, qkNope: s.qkNope, rank: s.rank, yarn: s.rope)
        try norm(mla.kvANorm, latent.c.pointer, latent.c.pointer, rows: n, feeding: L.v.matrix)
        try linears([(L.v, latent.kv.pointer)], input: latent.c.pointer, tokens: n)
        try GPUOps.mlaStore(gpu, kv: latent.kv.pointer, ca: latent.ca.pointer, keyCache: keys[index].pointer,
                            valueCache: values[index].pointer, positions: positions.pointer, tokens: n, heads: s.heads,
                            qkNope: s.qkNope, qkRope: s.qkRope, vDim: s.vDim, rank: s.rank)
        _ = try attend(L, layer: index, tokens: n, visible: maxKeys, quantize: nil)
        try GPUOps.mlaMerge(gpu, attention: attn.pointer, out: latent.merged.pointer, tokens: n, heads: s.heads, headDim: s.headDim,
                            vDim: s.vDim)
        prequantized = nil
        try linears([(L.o, o.pointer)], input: latent.merged.pointer, tokens: n)
    }
}
