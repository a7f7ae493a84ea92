// Multi-head latent attention's own steps (KernelSource+MLA): YaRN rope of queries and the shared
// rope key with the compressed kv split off, the full keys and zero-padded values into the f16
// caches, and the heads' real output values gathered for the output projection. Shapes as in
// Models/MLA.swift: per head qkNope + qkRope query/key values and vDim values; rank is the
// compressed kv's width (kv_lora_rank).
import Core
import Foundation

extension GPUOps {
    /// YaRN rope parameters, derived on the host as Models' YarnRope does (thetaScale,
    /// correctionDims, magnitude), so that both sides use the same floats.
    public struct Yarn: Sendable, Equatable {
        /// Rotated values per head (qkRope): pairs (2i, 2i + 1), i < dimensions / 2.
        public var dimensions: Int
        /// θ's factor from one pair to the next: base^(−2 / dimensions).
        public var thetaScale: Float
        public var freqScale: Float
        public var extFactor: Float
        /// The correction dims (ggml_rope_yarn_corr_dims): the ramp runs from low to high.
        public var correctionLow: Float, correctionHigh: Float
        /// cos and sin are multiplied by this (attnFactor, with YaRN's 1 + 0.1·ln(1/freqScale)).
        public var magnitude: Float

        public init(dimensions: Int, thetaScale: Float, freqScale: Float, extFactor: Float, correctionLow: Float,
                    correctionHigh: Float, magnitude: Float) {
            self.dimensions = dimensions; self.thetaScale = thetaScale; self.freqScale = freqScale; self.extFactor = extFactor
            self.correctionLow = correctionLow; self.correctionHigh = correctionHigh; self.magnitude = magnitude
        }
    }

    /// A chunk's MLA rope and split in one launch (`mla_rope`): the last `yarn.dimensions` values
    /// of every query head of q [tokens, heads, qkNope + dims] rotated in place; the compressed kv
    /// c [tokens, rank] copied out of kv_a's output ca [tokens, rank + dims], whose last dims
    /// values (the shared rope key) are rotated in place.
    public static func mlaRope(_ gpu: GPU, q: CUdeviceptr, ca: CUdeviceptr, c: CUdeviceptr, positions: CUdeviceptr, tokens: Int,
                               heads: Int, qkNope: Int, rank: Int, yarn: Yarn) throws {
        let rot = yarn.dimensions
        guard rot > 0, rot % 2 == 0, rot / 2 <= 1024, qkNope >= 0, rank > 0, heads > 0, heads < 65535, tokens > 0 else {
            throw CUDAError.invalidArgument("MLA rope over \(rot) values after \(qkNope) per head, \(heads) heads, rank \(rank), "
                                            + "\(tokens) tokens: needs an even rope width up to 2048, heads < 65535, rank and tokens > 0")
        }
        // One thread per pair (at least 128 for the copy of c).
        let threads = max(128, (rot / 2 + 31) / 32 * 32)
        try gpu.launch("mla_rope", grid: (tokens, heads + 1, 1), block: threads,
                       [.pointer(q), .pointer(ca), .pointer(c), .pointer(positions), .int(Int32(heads)), .int(Int32(qkNope)),
                        .int(Int32(rot)), .int(Int32(rank)), .float(yarn.thetaScale), .float(yarn.freqScale), .float(yarn.extFactor),
                        .float(yarn.correctionLow), .float(yarn.correctionHigh), .float(yarn.magnitude)])
    }

    /// Every head's key [k_nope | k_pe] and value [v | zeros] (qkNope + qkRope wide) into the f16
    /// caches [capacity, heads · (qkNope + qkRope)] at the tokens' positions (`mla_store`): from
    /// kv_b's output kv [tokens, heads, qkNope + vDim] and the rotated shared key, the last qkRope
    /// values of each row of ca [tokens, rank + qkRope].
    public static func mlaStore(_ gpu: GPU, kv: CUdeviceptr, ca: CUdeviceptr, keyCache: CUdeviceptr, valueCache: CUdeviceptr,
                                positions: CUdeviceptr, tokens: Int, heads: Int, qkNope: Int, qkRope: Int, vDim: Int, rank: Int) throws {
        guard qkNope >= 0, qkRope > 0, vDim > 0, vDim <= qkNope + qkRope, rank > 0, heads > 0, heads < 65535, tokens > 0 else {
            throw CUDAError.invalidArgument("MLA cache store of \(heads) heads × (\(qkNope) + \(qkRope)) with values of \(vDim), "
                                            + "rank \(rank), \(tokens) tokens: values must fit the key width, heads < 65535")
        }
        try gpu.launch("mla_store", grid: (tokens, heads, 1), block: 128,
                       [.pointer(kv), .pointer(ca), .pointer(keyCache), .pointer(valueCache), .pointer(positions), .int(Int32(heads)),
                        .int(Int32(qkNope)), .int(Int32(qkRope)), .int(Int32(vDim)), .int(Int32(rank))])
    }

    /// out [tokens, heads · vDim] = the first vDim values of each head of the attention output
    /// attention [tokens, heads, headDim] (`mla_merge`; the rest are the padded values' zeros).
    public static func mlaMerge(_ gpu: GPU, attention: CUdeviceptr, out: CUdeviceptr, tokens: Int, heads: Int, headDim: Int,
                                vDim: Int) throws {
        guard vDim > 0, vDim <= headDim, heads > 0, tokens > 0 else {
            throw CUDAError.invalidArgument("MLA merge of \(vDim) values from \(heads) heads of \(headDim), \(tokens) tokens")
        }
        let count = tokens * heads * vDim
        try gpu.launch("mla_merge", grid: (blocks(count, 256), 1, 1), block: 256,
                       [.pointer(attention), .pointer(out), .int(Int32(headDim)), .int(Int32(vDim)), .u64(UInt64(count))])
    }
}
