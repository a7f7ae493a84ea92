// Multi-head latent attention (MLA), DeepSeek-V2/V3's attention, as llama.cpp's deepseek2 graph
// computes it (src/models/deepseek2.cpp). Per token x (after attn_norm), per head h:
//
//   q        = attn_q · x                       or attn_q_b · rmsnorm_qa(attn_q_a · x)   (q LoRA)
//   q_h      = [q_nope (qkNope) | q_pe (qkRope)]
//   c, k_pe  = attn_kv_a_mqa · x                 c: the compressed kv [kvLoraRank], k_pe [qkRope] shared by all heads
//   c        = rmsnorm_kva(c)
//   q_pe, k_pe rotated (normal rope: consecutive pairs, YaRN)
//   scores   = (q_nope · k_nope + q_pe · k_pe) · scale,  scale = mscale² / √(qkNope + qkRope)
//   out      = attn_output · concat_h(softmax(scores) · v_h)
//
// Two ways to get k_nope and v from c, by what the file holds:
//   - `attn_kv_b` [heads · (qkNope + vDim), kvLoraRank] (older GGUFs; llama.cpp's non-MLA path):
//     k_nope_h, v_h = kv_b_h · c. The cache holds full keys [heads, qkNope + qkRope] and values;
//     attention is ordinary multi-head attention.
//   - `attn_k_b` [heads][kvLoraRank, qkNope] and `attn_v_b` [heads][vDim, kvLoraRank] (newer
//     GGUFs, with `attention.key_length_mla` / `value_length_mla`; llama.cpp's MLA path): the
//     weights are absorbed into the query and the output: q_abs_h = attn_k_b_h · q_nope_h
//     [kvLoraRank], so that q_abs_h · c = q_nope_h · k_nope_h;
//     the cache holds one shared key [c | k_pe] per token (multi-query attention, one KV head)
//     and the value is c itself; each head's output [kvLoraRank] goes through attn_v_b_h.
//
// Both run the attention operator the placement bound to `…self_attn` (exact or llama.cpp's
// flash attention) unchanged: that operator reads keys and values of one width, so values are
// stored zero-padded to the key width (the padding contributes exact zeros, the first vDim
// output columns are those of an attention with narrower values). This costs cache memory
// (values padded from 128 to 192, or 512 to 576, per head / token); a kernel with separate key
// and value widths, and absorbed decode for kv_b files, are later optimizations.
//
// The CUDA backend runs the kv_b path with the same cache rows (ModelsCUDA/CUDAModel+MLA.swift;
// `cacheRows` and `mergeHeads` below are what its ops check compares with).
import Core
import CPUKernels
import Foundation
import GGUF
import Operators

/// The attention half of a decoder layer: reads x [tokens, embedding], appends this chunk's keys
/// and values to its cache, writes out [tokens, embedding].
public protocol AttentionBlock: Sendable {
    /// Key and value widths per cache row (per token).
    var cacheKeyWidth: Int { get }
    var cacheValueWidth: Int { get }
    func callAsFunction(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, tokens: Int,
                        positions: UnsafePointer<Int32>, cache: LayerCache, context: ForwardContext)
}

extension SelfAttention: AttentionBlock {
    public var cacheKeyWidth: Int { kvHeads * headDim }
    public var cacheValueWidth: Int { kvHeads * headDim }
}

/// Rotary embedding with YaRN, ggml's `ggml_rope_ext` in normal (GPT-J) mode on `dimensions`
/// values starting at `offset` of each head: θ_i = p · base^(−2i/dims) (advanced by repeated
/// multiplication, as ggml), interpolated by `freqScale` and, with `extFactor` ≠ 0, mixed back
/// towards extrapolation below the correction dims; cos and sin scaled by `attnFactor` (times
/// 1 + 0.1·ln(1/freqScale) under YaRN).
public struct YarnRope: Sendable {
    public var base: Float
    public var dimensions: Int
    public var freqScale: Float = 1
    public var extFactor: Float = 0
    public var attnFactor: Float = 1
    public var betaFast: Float = 32
    public var betaSlow: Float = 1
    public var originalContext: Int = 0

    public init(base: Float, dimensions: Int, freqScale: Float = 1, extFactor: Float = 0, attnFactor: Float = 1,
                betaFast: Float = 32, betaSlow: Float = 1, originalContext: Int = 0) {
        self.base = base; self.dimensions = dimensions; self.freqScale = freqScale; self.extFactor = extFactor
        self.attnFactor = attnFactor; self.betaFast = betaFast; self.betaSlow = betaSlow; self.originalContext = originalContext
    }

    /// θ's factor from one pair to the next: base^(−2/dims).
    public var thetaScale: Float { powf(base, -2 / Float(dimensions)) }

    /// The factor on cos and sin: attnFactor, times 1 + 0.1·ln(1/freqScale) under YaRN (extFactor ≠ 0).
    public var magnitude: Float { extFactor != 0 ? attnFactor * (1 + 0.1 * logf(1 / freqScale)) : attnFactor }

    /// ggml_rope_yarn_corr_dims: the pairs between which the ramp mixes interpolation and extrapolation.
    public var correctionDims: (Float, Float) {
        func dim(_ rot: Float) -> Float {
            Float(dimensions) * logf(Float(originalContext) / (rot * 2 * Float.pi)) / (2 * logf(base))
        }
        let start = floorf(dim(betaFast)), end = ceilf(dim(betaSlow))
        return (max(0, start), min(Float(dimensions - 1), end))
    }

    /// cos, sin per pair for position p (the GPU's `yarn_cos_sin`, KernelSource+MLA.swift, takes the same steps).
    func table(position p: Int32, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        let thetaScale = self.thetaScale, corr = correctionDims, mscale = magnitude
        var theta = Float(p)
        for i in 0..<(dimensions / 2) {
            let interp = freqScale * theta
            var t = interp
            if extFactor != 0 {
                let y = (Float(i) - corr.0) / max(0.001, corr.1 - corr.0)
                let ramp = (1 - min(1, max(0, y))) * extFactor
                t = interp * (1 - ramp) + theta * ramp
            }
            cos[i] = cosf(t) * mscale
            sin[i] = sinf(t) * mscale
            theta *= thetaScale
        }
    }

    /// Rotates x [tokens, heads, stride] in place at `offset ..< offset + dimensions` of each head.
    public func apply(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, stride: Int, offset: Int,
                      positions: UnsafePointer<Int32>) {
        let half = dimensions / 2
        let c = UnsafeMutablePointer<Float>.allocate(capacity: half), s = UnsafeMutablePointer<Float>.allocate(capacity: half)
        defer { c.deallocate(); s.deallocate() }
        for t in 0..<tokens {
            table(position: positions[t], cos: c, sin: s)
            for h in 0..<heads {
                let v = x + (t * heads + h) * stride + offset
                for i in 0..<half {
                    let x0 = v[2 * i], x1 = v[2 * i + 1]
                    // ggml's rotation as GCC contracts it (as Ops.rope).
                    v[2 * i] = (-(x1 * s[i])).addingProduct(x0, c[i])
                    v[2 * i + 1] = (x1 * c[i]).addingProduct(x0, s[i])
                }
            }
        }
    }
}

public struct MultiLatentAttention: AttentionBlock {
    /// How keys and values come out of the compressed kv.
    public enum Decompression: Sendable {
        /// `attn_kv_b` [heads · (qkNope + vDim), kvLoraRank].
        case kvB(Linear)
        /// `attn_k_b` per head [kvLoraRank, qkNope], `attn_v_b` per head [vDim, kvLoraRank] (absorbed).
        case split(kB: [Linear], vB: [Linear])
    }

    /// Module name ("model.layers.3.self_attn").
    public let name: String
    public let heads: Int
    public let qkNope: Int, qkRope: Int, vDim: Int, kvLoraRank: Int
    /// attn_q, or nil with q LoRA.
    public let q: Linear?
    /// attn_q_a, attn_q_a_norm, attn_q_b (q LoRA).
    public let qA: Linear?, qANorm: RMSNorm?, qB: Linear?
    /// attn_kv_a_mqa [kvLoraRank + qkRope, embedding], attn_kv_a_norm [kvLoraRank].
    public let kvA: Linear
    public let kvANorm: RMSNorm
    public let decompression: Decompression
    /// attn_output [embedding, heads · vDim].
    public let o: Linear
    public let rope: YarnRope
    public let scale: Float

    public init(name: String, heads: Int, qkNope: Int, qkRope: Int, vDim: Int, kvLoraRank: Int, q: Linear?, qA: Linear?,
                qANorm: RMSNorm?, qB: Linear?, kvA: Linear, kvANorm: RMSNorm, decompression: Decompression, o: Linear,
                rope: YarnRope, scale: Float) {
        self.name = name; self.heads = heads; self.qkNope = qkNope; self.qkRope = qkRope; self.vDim = vDim
        self.kvLoraRank = kvLoraRank; self.q = q; self.qA = qA; self.qANorm = qANorm; self.qB = qB; self.kvA = kvA
        self.kvANorm = kvANorm; self.decompression = decompression; self.o = o; self.rope = rope; self.scale = scale
    }

    public var absorbed: Bool { if case .split = decompression { return true } else { return false } }
    /// Query / key width per head in the attention the operator runs.
    var attentionHeadDim: Int { absorbed ? kvLoraRank + qkRope : qkNope + qkRope }
    var attentionKVHeads: Int { absorbed ? 1 : heads }
    public var cacheKeyWidth: Int { attentionKVHeads * attentionHeadDim }
    public var cacheValueWidth: Int { cacheKeyWidth }

    public func callAsFunction(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, tokens: Int,
                               positions: UnsafePointer<Int32>, cache: LayerCache, context: ForwardContext) {
        let kDim = qkNope + qkRope, qWidth = heads * kDim
        let r = kvLoraRank, aWidth = r + qkRope
        let hd = attentionHeadDim, kvw = cacheKeyWidth
        let qb = UnsafeMutablePointer<Float>.allocate(capacity: tokens * qWidth)
        let ca = UnsafeMutablePointer<Float>.allocate(capacity: tokens * aWidth)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: tokens * r)
        let qAtt = UnsafeMutablePointer<Float>.allocate(capacity: tokens * heads * hd)
        let kRows = UnsafeMutablePointer<Float>.allocate(capacity: tokens * kvw)
        let vRows = UnsafeMutablePointer<Float>.allocate(capacity: tokens * kvw)
        let attn = UnsafeMutablePointer<Float>.allocate(capacity: tokens * heads * hd)
        let merged = UnsafeMutablePointer<Float>.allocate(capacity: tokens * heads * vDim)
        defer {
            qb.deallocate(); ca.deallocate(); c.deallocate(); qAtt.deallocate(); kRows.deallocate(); vRows.deallocate()
            attn.deallocate(); merged.deallocate()
        }

        // Queries.
        if let q {
            q(x, qb, tokens: tokens, context: context)
        } else if let qA, let qANorm, let qB {
            let low = UnsafeMutablePointer<Float>.allocate(capacity: tokens * qA.outFeatures)
            defer { low.deallocate() }
            qA(x, low, tokens: tokens, context: context)
            qANorm(low, low, rows: tokens)
            qB(low, qb, tokens: tokens, context: context)
        }
        rope.apply(qb, tokens: tokens, heads: heads, stride: kDim, offset: qkNope, positions: positions)

        // Compressed kv and the shared rope key.
        kvA(x, ca, tokens: tokens, context: context)
        for t in 0..<tokens { (c + t * r).update(from: ca + t * aWidth, count: r) }
        kvANorm(c, c, rows: tokens)
        let kpe = UnsafeMutablePointer<Float>.allocate(capacity: tokens * qkRope)
        defer { kpe.deallocate() }
        for t in 0..<tokens { (kpe + t * qkRope).update(from: ca + t * aWidth + r, count: qkRope) }
        rope.apply(kpe, tokens: tokens, heads: 1, stride: qkRope, offset: 0, positions: positions)

        vRows.initialize(repeating: 0, count: tokens * kvw)
        switch decompression {
        case let .kvB(kvB):
            // Full keys [k_nope | k_pe] and values (zero-padded to the key width) per head.
            let kv = UnsafeMutablePointer<Float>.allocate(capacity: tokens * heads * (qkNope + vDim))
            defer { kv.deallocate() }
            kvB(c, kv, tokens: tokens, context: context)
            Self.cacheRows(kv: kv, kpe: kpe, kpeStride: qkRope, keys: kRows, values: vRows, tokens: tokens, heads: heads,
                           qkNope: qkNope, qkRope: qkRope, vDim: vDim)
            qAtt.update(from: qb, count: tokens * qWidth)
        case let .split(kB, _):
            // One shared key [c | k_pe] and value c; queries [k_b_h · q_nope_h | q_pe_h].
            for t in 0..<tokens {
                (kRows + t * hd).update(from: c + t * r, count: r)
                (kRows + t * hd + r).update(from: kpe + t * qkRope, count: qkRope)
                (vRows + t * hd).update(from: c + t * r, count: r)
            }
            let nope = UnsafeMutablePointer<Float>.allocate(capacity: tokens * qkNope)
            let absorbedQ = UnsafeMutablePointer<Float>.allocate(capacity: tokens * r)
            defer { nope.deallocate(); absorbedQ.deallocate() }
            for h in 0..<heads {
                for t in 0..<tokens { (nope + t * qkNope).update(from: qb + (t * heads + h) * kDim, count: qkNope) }
                kB[h](nope, absorbedQ, tokens: tokens, context: context)
                for t in 0..<tokens {
                    let dst = qAtt + (t * heads + h) * hd
                    dst.update(from: absorbedQ + t * r, count: r)
                    (dst + r).update(from: qb + (t * heads + h) * kDim + qkNope, count: qkRope)
                }
            }
        }
        for t in 0..<tokens {
            cache.store(position: Int(positions[t]), keys: kRows + t * kvw, values: vRows + t * kvw)
        }
        if Trace.enabled {
            let layer = name.split(separator: ".").first(where: { Int($0) != nil }).map(String.init) ?? "?"
            Trace.record("Qcur-\(layer)", qAtt, rows: tokens, cols: heads * hd)
            Trace.record("Kcur-\(layer)", kRows, rows: tokens, cols: kvw)
        }

        let op = context.operators.attention(name, tokens: tokens)
        precondition((op.storage == .f16) == (cache.element == .f16),
                     "\(op.name) reads a \(op.storage) KV cache but the session's is \(cache.element)")
        op.run(q: qAtt, keys: cache.keys, values: cache.values, out: attn,
               shape: AttentionShape(tokens: tokens, heads: heads, kvHeads: attentionKVHeads, headDim: hd, window: nil,
                                     scale: scale),
               positions: positions, pool: context.pool)

        switch decompression {
        case .kvB:
            Self.mergeHeads(attn, merged, tokens: tokens, heads: heads, headDim: hd, vDim: vDim)
        case let .split(_, vB):
            let lat = UnsafeMutablePointer<Float>.allocate(capacity: tokens * r)
            let vh = UnsafeMutablePointer<Float>.allocate(capacity: tokens * vDim)
            defer { lat.deallocate(); vh.deallocate() }
            for h in 0..<heads {
                for t in 0..<tokens { (lat + t * r).update(from: attn + (t * heads + h) * hd, count: r) }
                vB[h](lat, vh, tokens: tokens, context: context)
                for t in 0..<tokens { (merged + (t * heads + h) * vDim).update(from: vh + t * vDim, count: vDim) }
            }
        }
        if Trace.enabled {
            let layer = name.split(separator: ".").first(where: { Int($0) != nil }).map(String.init) ?? "?"
            Trace.record("kqv_out-\(layer)", merged, rows: tokens, cols: heads * vDim)
        }
        o(merged, out, tokens: tokens, context: context)
    }
}

extension MultiLatentAttention {
    /// The cache rows of a kv_b layer (the GPU's `mla_store` writes the same, rounded to f16): from
    /// kv_b's output kv [tokens, heads, qkNope + vDim] and the rotated shared key k_pe (row t at
    /// kpe + t · kpeStride), keys [tokens, heads, qkNope + qkRope] = [k_nope_h | k_pe] and values of
    /// the same width = [v_h | zeros].
    public static func cacheRows(kv: UnsafePointer<Float>, kpe: UnsafePointer<Float>, kpeStride: Int, keys: UnsafeMutablePointer<Float>,
                                 values: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, qkNope: Int, qkRope: Int, vDim: Int) {
        let kvWidth = qkNope + vDim, hd = qkNope + qkRope
        for t in 0..<tokens {
            for h in 0..<heads {
                let src = kv + (t * heads + h) * kvWidth, k = keys + (t * heads + h) * hd, v = values + (t * heads + h) * hd
                k.update(from: src, count: qkNope)
                (k + qkNope).update(from: kpe + t * kpeStride, count: qkRope)
                v.update(from: src + qkNope, count: vDim)
                (v + vDim).update(repeating: 0, count: hd - vDim)
            }
        }
    }

    /// The first vDim outputs of each head, the attention output's real values (the GPU's
    /// `mla_merge`): attn [tokens, heads, headDim] → out [tokens, heads · vDim].
    public static func mergeHeads(_ attn: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, tokens: Int, heads: Int,
                                  headDim: Int, vDim: Int) {
        for i in 0..<(tokens * heads) { (out + i * vDim).update(from: attn + i * headDim, count: vDim) }
    }
}
