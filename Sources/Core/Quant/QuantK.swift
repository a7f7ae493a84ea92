// QuantK.swift: ggml's "K-quants", 256-weight super-blocks split into 16 or 32-weight sub-blocks
// whose scales (and minimums) are themselves quantized against one or two f16 super-scales:
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the activation format Q8_K (ggml-common.h `block_q2_K` …
// `block_q8_K`). Byte layouts are documented on each block type. Dequantizers follow gguf-py
// `gguf/quants.py` operation for operation (f32, no fused multiply-add) and are bit-exact with it;
// quantizers follow the spirit of ggml's `quantize_row_q*_K_ref` using the searches in
// QuantKSearch.swift. Shapes: a row of `n` weights is `n / 256` consecutive super-blocks.

// MARK: - Block layouts

/// Q2_K: 256 weights in 84 bytes (2.625 bits/weight); 16 sub-blocks of 16.
/// ```
/// off  size  field
///  0   16    scales  byte j: bits 0-3 = scale code of sub-block j, bits 4-7 = its min code
/// 16   64    qs      weight i = h·128 + s·32 + l  (h 0..1, s 0..3, l 0..31):
///                    2 bits at (qs[h·32 + l] >> 2s) & 3
/// 80    2    d       f16 super-scale for scales
/// 82    2    dmin    f16 super-scale for mins
/// weight[i] = (d·sc[i/16])·q[i] − (dmin·mn[i/16])
/// ```
enum BlockQ2_K {
    static let scales = 0, qs = 16, d = 80, dmin = 82, size = 84
}

/// Q3_K: 256 weights in 110 bytes (3.4375 bits/weight); 16 sub-blocks of 16, signed 6-bit scales.
/// ```
/// off  size  field
///  0   32    hmask   weight i: bit (i/32) of hmask[i%32]; a CLEAR bit subtracts 4
/// 32   64    qs      weight i = h·128 + s·32 + l: low 2 bits at (qs[h·32 + l] >> 2s) & 3
/// 96   12    scales  6-bit codes c[0..15]: low 4 bits: c[j] = scales[j] & 15 (j<8),
///                    scales[j-8] >> 4 (j≥8); high 2 bits: (scales[8 + j%4] >> 2·(j/4)) & 3
/// 108   2    d       f16 super-scale
/// weight[i] = (d·(c[i/16] − 32))·(low2 − (hbit ? 0 : 4))
/// ```
enum BlockQ3_K {
    static let hmask = 0, qs = 32, scales = 96, d = 108, size = 110
}

/// Q4_K: 256 weights in 144 bytes (4.5 bits/weight); 8 sub-blocks of 32, 6-bit scales and mins.
/// ```
/// off  size  field
///  0    2    d       f16 super-scale for scales
///  2    2    dmin    f16 super-scale for mins
///  4   12    scales  sc/mn 6-bit codes (bytes s0..s11):
///                    j<4:  sc = s[j] & 63,                    mn = s[j+4] & 63
///                    j≥4:  sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4,  mn = (s[j+4] >> 4) | (s[j] >> 6) << 4
/// 16  128    qs      weight i = c·64 + h·32 + l: (qs[c·32 + l] >> 4h) & 15
/// weight[i] = (d·sc[i/32])·q[i] − (dmin·mn[i/32])
/// ```
enum BlockQ4_K {
    static let d = 0, dmin = 2, scales = 4, qs = 16, size = 144
}

/// Q5_K: 256 weights in 176 bytes (5.5 bits/weight); Q4_K plus a fifth bit.
/// ```
/// off  size  field
///  0    2    d, 2 dmin, 4 scales (12): as Q4_K
/// 16   32    qh      weight i: bit (i/32) of qh[i%32] is bit 4 of q[i]
/// 48  128    qs      low 4 bits, as Q4_K
/// weight[i] = (d·sc[i/32])·q[i] − (dmin·mn[i/32])
/// ```
enum BlockQ5_K {
    static let d = 0, dmin = 2, scales = 4, qh = 16, qs = 48, size = 176
}

/// Q6_K: 256 weights in 210 bytes (6.5625 bits/weight); 16 sub-blocks of 16, i8 scales.
/// ```
/// off  size  field
///  0  128    ql      weight i = h·128 + r (r 0..127): (ql[h·64 + r%64] >> 4·(r/64)) & 15
/// 128  64    qh      high 2 bits: (qh[h·32 + r%32] >> 2·(r/32)) & 3
/// 192  16    scales  i8 per sub-block
/// 208   2    d       f16 super-scale
/// weight[i] = (d·scales[i/16])·(q[i] − 32)
/// ```
enum BlockQ6_K {
    static let ql = 0, qh = 128, scales = 192, d = 208, size = 210
}

/// Q8_K: 256 weights in 292 bytes; the activation format for K-quant dot products (not in gguf-py).
/// ```
/// off  size  field
///  0    4    d       f32 scale
///  4  256    qs      i8 q[i]
/// 260  32    bsums   16 × i16, bsums[j] = Σ q[16j ..< 16j+16]
/// weight[i] = d·q[i]
/// ```
enum BlockQ8_K {
    static let d = 0, qs = 4, bsums = 260, size = 292
}

public enum QuantK {
    // MARK: - Scale unpacking

    /// Q3_K's 6-bit scale code j (0...63, before subtracting 32).
    @inline(__always)
    static func q3Scale(_ blk: UnsafeRawPointer, _ j: Int) -> Int32 {
        let s = BlockQ3_K.scales
        let low = j < 8 ? blk.loadU8(s + j) & 0x0F : blk.loadU8(s + j - 8) >> 4
        let high = (blk.loadU8(s + 8 + j % 4) >> UInt8(2 * (j / 4))) & 3
        return Int32(low | high << 4)
    }

    /// Q4_K / Q5_K scale and min codes of sub-block j (0...7) from the 12 packed bytes at `at`.
    @inline(__always)
    public static func scaleMin(_ blk: UnsafeRawPointer, _ at: Int, _ j: Int) -> (UInt8, UInt8) {
        if j < 4 { return (blk.loadU8(at + j) & 63, blk.loadU8(at + j + 4) & 63) }
        let sc = (blk.loadU8(at + j + 4) & 0x0F) | (blk.loadU8(at + j - 4) >> 6) << 4
        let mn = (blk.loadU8(at + j + 4) >> 4) | (blk.loadU8(at + j) >> 6) << 4
        return (sc, mn)
    }

    // MARK: - Dequantize

    static func dequantizeQ2_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ2_K.size, y = dst + b * 256
            let d = blk.loadHalf(BlockQ2_K.d), dmin = blk.loadHalf(BlockQ2_K.dmin)
            for h in 0..<2 { for s in 0..<4 { for part in 0..<2 {
                let base = h * 128 + s * 32 + part * 16
                let sc = blk.loadU8(BlockQ2_K.scales + base / 16)
                let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                for l in (part * 16)..<(part * 16 + 16) {
                    let q = (blk.loadU8(BlockQ2_K.qs + h * 32 + l) &>> UInt8(2 * s)) & 3
                    y[h * 128 + s * 32 + l] = dl * Float(q) - ml
                }
            } } }
        }
    }

    static func dequantizeQ3_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ3_K.size, y = dst + b * 256
            let d = blk.loadHalf(BlockQ3_K.d)
            for h in 0..<2 { for s in 0..<4 { for part in 0..<2 {
                let base = h * 128 + s * 32 + part * 16
                let dl = d * Float(q3Scale(blk, base / 16) - 32)
                let bit = UInt8(base / 32)
                for l in (part * 16)..<(part * 16 + 16) {
                    let low = Int32((blk.loadU8(BlockQ3_K.qs + h * 32 + l) &>> UInt8(2 * s)) & 3)
                    let hb = (blk.loadU8(BlockQ3_K.hmask + l) &>> bit) & 1
                    y[h * 128 + s * 32 + l] = dl * Float(low - (hb == 0 ? 4 : 0))
                }
            } } }
        }
    }

    static func dequantizeQ4_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ4_K.size, y = dst + b * 256
            let d = blk.loadHalf(BlockQ4_K.d), dmin = blk.loadHalf(BlockQ4_K.dmin)
            for j in 0..<8 {
                let (sc, mn) = scaleMin(blk, BlockQ4_K.scales, j)
                let dl = d * Float(sc), ml = dmin * Float(mn)
                let c = j / 2, shift = UInt8(4 * (j % 2))
                for l in 0..<32 {
                    let q = (blk.loadU8(BlockQ4_K.qs + c * 32 + l) &>> shift) & 0x0F
                    y[j * 32 + l] = dl * Float(q) - ml
                }
            }
        }
    }

    static func dequantizeQ5_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ5_K.size, y = dst + b * 256
            let d = blk.loadHalf(BlockQ5_K.d), dmin = blk.loadHalf(BlockQ5_K.dmin)
            for j in 0..<8 {
                let (sc, mn) = scaleMin(blk, BlockQ5_K.scales, j)
                let dl = d * Float(sc), ml = dmin * Float(mn)
                let c = j / 2, shift = UInt8(4 * (j % 2)), bit = UInt8(j)
                for l in 0..<32 {
                    let lo = (blk.loadU8(BlockQ5_K.qs + c * 32 + l) &>> shift) & 0x0F
                    let hi = (blk.loadU8(BlockQ5_K.qh + l) &>> bit) & 1
                    y[j * 32 + l] = dl * Float(lo | hi << 4) - ml
                }
            }
        }
    }

    static func dequantizeQ6_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ6_K.size, y = dst + b * 256
            let d = blk.loadHalf(BlockQ6_K.d)
            for h in 0..<2 {
                let yh = y + h * 128, sc = BlockQ6_K.scales + h * 8
                for l in 0..<32 {
                    // One ql pair and one qh byte feed weights l, l+32, l+64, l+96 of this half.
                    let lo0 = blk.loadU8(BlockQ6_K.ql + h * 64 + l), lo1 = blk.loadU8(BlockQ6_K.ql + h * 64 + l + 32)
                    let hi = blk.loadU8(BlockQ6_K.qh + h * 32 + l)
                    let q0 = Int32((lo0 & 0x0F) | (hi & 3) << 4) - 32
                    let q1 = Int32((lo1 & 0x0F) | ((hi >> 2) & 3) << 4) - 32
                    let q2 = Int32((lo0 >> 4) | ((hi >> 4) & 3) << 4) - 32
                    let q3 = Int32((lo1 >> 4) | (hi >> 6) << 4) - 32
                    let s = l / 16
                    yh[l] = d * Float(blk.loadI8(sc + s)) * Float(q0)
                    yh[l + 32] = d * Float(blk.loadI8(sc + s + 2)) * Float(q1)
                    yh[l + 64] = d * Float(blk.loadI8(sc + s + 4)) * Float(q2)
                    yh[l + 96] = d * Float(blk.loadI8(sc + s + 6)) * Float(q3)
                }
            }
        }
    }

    static func dequantizeQ8_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ8_K.size, y = dst + b * 256
            let d = blk.loadF32(BlockQ8_K.d)
            for i in 0..<256 { y[i] = Float(blk.loadI8(BlockQ8_K.qs + i)) * d }
        }
    }
}
