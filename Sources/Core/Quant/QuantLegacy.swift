// QuantLegacy.swift: ggml's original 32-weight block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1
// (ggml-common.h `block_q4_0` … `block_q8_1`). Each block type below documents its byte layout; the
// dequantizers follow gguf-py `gguf/quants.py` operation for operation (f32 arithmetic, no fused
// multiply-add) so results are bit-exact with it, and the quantizers implement the same reference
// rules as gguf-py / ggml's `quantize_row_*_ref` (bit-exact with gguf-py for Q4_0…Q8_0).
// Shape convention: a row of `n` weights is `n / 32` consecutive blocks; weight `i` of a block is
// element `block * 32 + i` of the row. All multi-byte fields are little-endian and unaligned.

// MARK: - Block layouts

/// Q4_0: 32 weights in 18 bytes, symmetric 4-bit.
/// ```
/// off  size  field
///  0    2    d    f16 scale
///  2   16    qs   byte j: bits 0-3 = q[j], bits 4-7 = q[j+16]   (q in 0...15)
/// weight[i] = d * (q[i] - 8)
/// ```
enum BlockQ4_0 {
    static let d = 0, qs = 2, size = 18
}

/// Q4_1: 32 weights in 20 bytes, 4-bit with a minimum.
/// ```
/// off  size  field
///  0    2    d    f16 scale
///  2    2    m    f16 minimum
///  4   16    qs   byte j: bits 0-3 = q[j], bits 4-7 = q[j+16]   (q in 0...15)
/// weight[i] = d * q[i] + m
/// ```
enum BlockQ4_1 {
    static let d = 0, m = 2, qs = 4, size = 20
}

/// Q5_0: 32 weights in 22 bytes, symmetric 5-bit.
/// ```
/// off  size  field
///  0    2    d    f16 scale
///  2    4    qh   u32, bit i = bit 4 of q[i]
///  6   16    qs   byte j: bits 0-3 = low 4 bits of q[j], bits 4-7 = low 4 bits of q[j+16]
/// weight[i] = d * (q[i] - 16)                               (q in 0...31)
/// ```
enum BlockQ5_0 {
    static let d = 0, qh = 2, qs = 6, size = 22
}

/// Q5_1: 32 weights in 24 bytes, 5-bit with a minimum.
/// ```
/// off  size  field
///  0    2    d    f16 scale
///  2    2    m    f16 minimum
///  4    4    qh   u32, bit i = bit 4 of q[i]
///  8   16    qs   as Q5_0
/// weight[i] = d * q[i] + m                                  (q in 0...31)
/// ```
enum BlockQ5_1 {
    static let d = 0, m = 2, qh = 4, qs = 8, size = 24
}

/// Q8_0: 32 weights in 34 bytes, symmetric 8-bit.
/// ```
/// off  size  field
///  0    2    d    f16 scale
///  2   32    qs   i8 q[i]
/// weight[i] = d * q[i]
/// ```
enum BlockQ8_0 {
    static let d = 0, qs = 2, size = 34
}

/// Q8_1: 32 weights in 36 bytes; Q8_0 plus a precomputed sum (an activation format for dot
/// products with Q4_1 / Q5_1 weights; not in gguf-py).
/// ```
/// off  size  field
///  0    2    d    f16 scale
///  2    2    s    f16, d * Σ q[i]  (computed with the f32 d before rounding)
///  4   32    qs   i8 q[i]
/// weight[i] = d * q[i]
/// ```
enum BlockQ8_1 {
    static let d = 0, s = 2, qs = 4, size = 36
}

enum QuantLegacy {
    // MARK: - Dequantize

    static func dequantizeQ4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ4_0.size, y = dst + b * 32
            let d = blk.loadHalf(BlockQ4_0.d)
            for j in 0..<16 {
                let byte = blk.loadU8(BlockQ4_0.qs + j)
                y[j] = d * Float(Int32(byte & 0x0F) - 8)
                y[j + 16] = d * Float(Int32(byte >> 4) - 8)
            }
        }
    }

    static func dequantizeQ4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ4_1.size, y = dst + b * 32
            let d = blk.loadHalf(BlockQ4_1.d), m = blk.loadHalf(BlockQ4_1.m)
            for j in 0..<16 {
                let byte = blk.loadU8(BlockQ4_1.qs + j)
                y[j] = d * Float(byte & 0x0F) + m
                y[j + 16] = d * Float(byte >> 4) + m
            }
        }
    }

    static func dequantizeQ5_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ5_0.size, y = dst + b * 32
            let d = blk.loadHalf(BlockQ5_0.d), qh = blk.loadU32(BlockQ5_0.qh)
            for j in 0..<16 {
                let byte = UInt32(blk.loadU8(BlockQ5_0.qs + j))
                let lo = (byte & 0x0F) | (((qh >> UInt32(j)) & 1) << 4)
                let hi = (byte >> 4) | (((qh >> UInt32(j + 16)) & 1) << 4)
                y[j] = d * Float(Int32(lo) - 16)
                y[j + 16] = d * Float(Int32(hi) - 16)
            }
        }
    }

    static func dequantizeQ5_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ5_1.size, y = dst + b * 32
            let d = blk.loadHalf(BlockQ5_1.d), m = blk.loadHalf(BlockQ5_1.m), qh = blk.loadU32(BlockQ5_1.qh)
            for j in 0..<16 {
                let byte = UInt32(blk.loadU8(BlockQ5_1.qs + j))
                let lo = (byte & 0x0F) | (((qh >> UInt32(j)) & 1) << 4)
                let hi = (byte >> 4) | (((qh >> UInt32(j + 16)) & 1) << 4)
                y[j] = d * Float(lo) + m
                y[j + 16] = d * Float(hi) + m
            }
        }
    }

    static func dequantizeQ8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ8_0.size, y = dst + b * 32
            let d = blk.loadHalf(BlockQ8_0.d)
            for j in 0..<32 { y[j] = Float(blk.loadI8(BlockQ8_0.qs + j)) * d }
        }
    }

    static func dequantizeQ8_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let blk = src + b * BlockQ8_1.size, y = dst + b * 32
            let d = blk.loadHalf(BlockQ8_1.d)
            for j in 0..<32 { y[j] = Float(blk.loadI8(BlockQ8_1.qs + j)) * d }
        }
    }

    // MARK: - Quantize (reference rules)

    /// First element of largest magnitude (its signed value) and that magnitude.
    @inline(__always)
    static func signedAbsMax(_ x: UnsafePointer<Float>, _ n: Int) -> (value: Float, amax: Float) {
        var amax: Float = 0, value: Float = 0
        for i in 0..<n where abs(x[i]) > amax { amax = abs(x[i]); value = x[i] }
        return (value, amax)
    }

    /// Truncates `v` (expected ≥ 0) to an integer in 0...hi, like C's `(uint8_t)` cast then a clamp.
    @inline(__always)
    static func truncClamp(_ v: Float, _ hi: Int) -> Int {
        guard v > 0 else { return 0 }                 // also NaN
        return v >= Float(hi) ? hi : Int(v)
    }

    /// Packs 32 codes (0...15 or 0...31) as "byte j = q[j] | q[j+16] << 4" low nibbles and returns
    /// the fifth bits as a u32 (bit i = bit 4 of q[i]).
    @inline(__always)
    static func packNibbles(_ q: (Int) -> Int, _ out: UnsafeMutableRawPointer, _ at: Int) -> UInt32 {
        var qh: UInt32 = 0
        for j in 0..<16 {
            let lo = q(j), hi = q(j + 16)
            out.storeU8(UInt8((lo & 0x0F) | ((hi & 0x0F) << 4)), at + j)
            qh |= UInt32((lo >> 4) & 1) << UInt32(j)
            qh |= UInt32((hi >> 4) & 1) << UInt32(j + 16)
        }
        return qh
    }

    static func quantizeQ4_0(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let x = src + b * 32, blk = dst + b * BlockQ4_0.size
            let d = signedAbsMax(x, 32).value / -8
            let id: Float = d != 0 ? 1 / d : 0
            blk.storeHalf(d, BlockQ4_0.d)
            _ = packNibbles({ truncClamp(x[$0] * id + 8.5, 15) }, blk, BlockQ4_0.qs)
        }
    }

    static func quantizeQ4_1(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let x = src + b * 32, blk = dst + b * BlockQ4_1.size
            let (lo, hi) = minMax(x, 32)
            let d = (hi - lo) / 15
            let id: Float = d != 0 ? 1 / d : 0
            blk.storeHalf(d, BlockQ4_1.d)
            blk.storeHalf(lo, BlockQ4_1.m)
            _ = packNibbles({ truncClamp((x[$0] - lo) * id + 0.5, 15) }, blk, BlockQ4_1.qs)
        }
    }

    static func quantizeQ5_0(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let x = src + b * 32, blk = dst + b * BlockQ5_0.size
            let d = signedAbsMax(x, 32).value / -16
            let id: Float = d != 0 ? 1 / d : 0
            blk.storeHalf(d, BlockQ5_0.d)
            let qh = packNibbles({ truncClamp(x[$0] * id + 16.5, 31) }, blk, BlockQ5_0.qs)
            blk.storeU32(qh, BlockQ5_0.qh)
        }
    }

    static func quantizeQ5_1(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let x = src + b * 32, blk = dst + b * BlockQ5_1.size
            let (lo, hi) = minMax(x, 32)
            let d = (hi - lo) / 31
            let id: Float = d != 0 ? 1 / d : 0
            blk.storeHalf(d, BlockQ5_1.d)
            blk.storeHalf(lo, BlockQ5_1.m)
            let qh = packNibbles({ truncClamp((x[$0] - lo) * id + 0.5, 31) }, blk, BlockQ5_1.qs)
            blk.storeU32(qh, BlockQ5_1.qh)
        }
    }

    /// Q8_0 / Q8_1 core: d = amax / 127, q = round-half-away(x / d). Returns (d, Σq).
    @inline(__always)
    static func quantize8(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, _ at: Int) -> (Float, Int) {
        let d = signedAbsMax(x, 32).amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        var sum = 0
        for j in 0..<32 {
            let v = x[j] * id
            let q = v == v ? Int(max(-127, min(127, v.rounded(.toNearestOrAwayFromZero)))) : 0
            sum += q
            out.storeU8(UInt8(bitPattern: Int8(q)), at + j)
        }
        return (d, sum)
    }

    static func quantizeQ8_0(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let blk = dst + b * BlockQ8_0.size
            let (d, _) = quantize8(src + b * 32, blk, BlockQ8_0.qs)
            blk.storeHalf(d, BlockQ8_0.d)
        }
    }

    static func quantizeQ8_1(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let blk = dst + b * BlockQ8_1.size
            let (d, sum) = quantize8(src + b * 32, blk, BlockQ8_1.qs)
            blk.storeHalf(d, BlockQ8_1.d)
            blk.storeHalf(Float(sum) * d, BlockQ8_1.s)
        }
    }

    /// Smallest and largest element (NaN-blind: comparisons with NaN are false).
    @inline(__always)
    static func minMax(_ x: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
        var lo = x[0], hi = x[0]
        for i in 1..<n {
            if x[i] < lo { lo = x[i] }
            if x[i] > hi { hi = x[i] }
        }
        return (lo, hi)
    }
}
