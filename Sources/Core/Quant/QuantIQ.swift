// QuantIQ.swift: the non-linear 4-bit formats IQ4_NL (32-weight blocks) and IQ4_XS (256-weight
// super-blocks with 6-bit sub-block scales) from ggml-common.h `block_iq4_nl` / `block_iq4_xs`.
// A 4-bit code indexes the fixed table `kvalues_iq4nl` (KSearch.iq4Values) instead of a uniform
// grid. Dequantizers follow gguf-py `gguf/quants.py` (bit-exact); quantizers follow the spirit of
// ggml's `quantize_row_iq4_nl_impl` without an importance matrix (weights σ² + x²).
// Shapes: a row of `n` weights is `n / 32` IQ4_NL blocks or `n / 256` IQ4_XS super-blocks.

// MARK: - Block layouts

/// IQ4_NL: 32 weights in 18 bytes.
/// ```
/// off  size  field
///  0    2    d    f16 scale
///  2   16    qs   byte j: bits 0-3 = code[j], bits 4-7 = code[j+16]
/// weight[i] = d · kvalues[code[i]]
/// ```
enum BlockIQ4_NL {
    static let d = 0, qs = 2, size = 18
}

/// IQ4_XS: 256 weights in 136 bytes (4.25 bits/weight); 8 sub-blocks of 32.
/// ```
/// off  size  field
///  0    2    d         f16 super-scale
///  2    2    scalesH   u16, bits 2j..2j+1 = high 2 bits of sub-block j's 6-bit scale code
///  4    4    scalesL   byte j/2, nibble j%2 = low 4 bits of sub-block j's scale code
///  8  128    qs        weight i = j·32 + h·16 + l: (qs[j·16 + l] >> 4h) & 15
/// weight[i] = (d · (code_j − 32)) · kvalues[q[i]]
/// ```
enum BlockIQ4_XS {
    static let d = 0, scalesH = 2, scalesL = 4, qs = 8, size = 136
}

enum QuantIQ {
    // MARK: - Dequantize

    static func dequantizeIQ4_NL(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        KSearch.iq4Values.withUnsafeBufferPointer { kv in
            for b in 0..<blocks {
                let blk = src + b * BlockIQ4_NL.size, y = dst + b * 32
                let d = blk.loadHalf(BlockIQ4_NL.d)
                for j in 0..<16 {
                    let byte = blk.loadU8(BlockIQ4_NL.qs + j)
                    y[j] = d * Float(kv[Int(byte & 0x0F)])
                    y[j + 16] = d * Float(kv[Int(byte >> 4)])
                }
            }
        }
    }

    static func dequantizeIQ4_XS(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        KSearch.iq4Values.withUnsafeBufferPointer { kv in
            for b in 0..<blocks {
                let blk = src + b * BlockIQ4_XS.size, y = dst + b * 256
                let d = blk.loadHalf(BlockIQ4_XS.d)
                let sh = blk.loadU16(BlockIQ4_XS.scalesH)
                for j in 0..<8 {
                    let low = (blk.loadU8(BlockIQ4_XS.scalesL + j / 2) &>> UInt8(4 * (j % 2))) & 0x0F
                    let high = UInt8(truncatingIfNeeded: sh >> UInt16(2 * j)) & 3
                    let dl = d * Float(Int32(low | high << 4) - 32)
                    for l in 0..<16 {
                        let byte = blk.loadU8(BlockIQ4_XS.qs + j * 16 + l)
                        y[j * 32 + l] = dl * Float(kv[Int(byte & 0x0F)])
                        y[j * 32 + 16 + l] = dl * Float(kv[Int(byte >> 4)])
                    }
                }
            }
        }
    }

    // MARK: - Quantize

    /// Importances σ² + x² over `n` weights (σ² = mean square of the group).
    @inline(__always)
    static func fillWeights(_ x: UnsafePointer<Float>, _ n: Int, _ w: UnsafeMutablePointer<Float>) {
        var s: Float = 0
        for i in 0..<n { s += x[i] * x[i] }
        let sigma2 = s / Float(n)
        for i in 0..<n { w[i] = sigma2 + x[i] * x[i] }
    }

    /// Codes for x / dl (the IQ4 table index nearest to it), or the code of ~0 when dl is 0.
    @inline(__always)
    static func encode(_ x: UnsafePointer<Float>, _ n: Int, _ dl: Float, _ codes: UnsafeMutablePointer<UInt8>) {
        for i in 0..<n { codes[i] = dl != 0 ? UInt8(KSearch.nearestIQ4(x[i] / dl)) : 8 }
    }

    static func quantizeIQ4_NL(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        KScratch.with { k in
            for b in 0..<blocks {
                let x = src + b * 32, blk = dst + b * BlockIQ4_NL.size
                fillWeights(x, 32, k.w)
                let dFull = KSearch.fitIQ4(x, k.w, n: 32, tries: 7, codes: k.codes)
                blk.storeHalf(dFull, BlockIQ4_NL.d)
                encode(x, 32, halfToFloat(floatToHalf(dFull)), k.codes)
                for j in 0..<16 { blk.storeU8(k.codes[j] | k.codes[j + 16] << 4, BlockIQ4_NL.qs + j) }
            }
        }
    }

    static func quantizeIQ4_XS(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        KScratch.with { k in
            for b in 0..<blocks {
                let x = src + b * 256, blk = dst + b * BlockIQ4_XS.size
                blk.initializeMemory(as: UInt8.self, repeating: 0, count: BlockIQ4_XS.size)
                fillWeights(x, 256, k.w)
                for j in 0..<8 {
                    k.scales[j] = KSearch.fitIQ4(x + 32 * j, k.w + 32 * j, n: 32, tries: 7, codes: k.codes + 32 * j)
                }
                let maxScale = QuantKEncode.signedMax(k.scales, 8)
                let dFull = -maxScale / 32
                let id: Float = dFull != 0 ? 1 / dFull : 0
                blk.storeHalf(dFull, BlockIQ4_XS.d)
                let d = halfToFloat(floatToHalf(dFull))
                var sh: UInt16 = 0
                for j in 0..<8 {
                    let l = quantRound(id * k.scales[j], -32, 31)
                    let c = UInt8(l + 32)
                    let at = BlockIQ4_XS.scalesL + j / 2
                    blk.storeU8(blk.loadU8(at) | (c & 15) << UInt8(4 * (j % 2)), at)
                    sh |= UInt16(c >> 4) << UInt16(2 * j)
                    encode(x + 32 * j, 32, d * Float(l), k.codes + 32 * j)
                    for i in 0..<16 {
                        blk.storeU8(k.codes[32 * j + i] | k.codes[32 * j + 16 + i] << 4, BlockIQ4_XS.qs + 16 * j + i)
                    }
                }
                blk.storeU16(sh, BlockIQ4_XS.scalesH)
            }
        }
    }
}
