// Activations quantized to 8 bits per block, the way llama.cpp feeds its integer dot products:
// each weight type names an activation format (ggml's `vec_dot_type`) and the dot product of
// a weight row with a quantized activation row is computed per block in integers, then scaled.
//
//   weight type                      activation   per-block activation fields
//   q4_0, q5_0, q8_0, iq4_nl   →     q8_0         d = f16(amax/127), 32 × int8
//   q4_1, q5_1                 →     q8_1         d as q8_0, s = f16(d · Σq)
//   q2_K … q6_K, iq4_xs        →     q8_K         d = 1/(−127/max) (f32), 256 × int8, 16 sums of 16
//
// Rounding follows llama.cpp's x86 code, so that our logits match its to float precision:
// q8_0/q8_1 multiply by 127/amax and round half to even (`_mm256_round_ps`); q8_K uses
// −127/max (max = the element of largest magnitude, signed) and round half to even.
// Storage is struct-of-arrays: `qs` [n] int8, `scales` [n / block] float (d), `sums`
// [n / block] float (q8_1: s) or [n / 16] float (q8_K: bsums).
import Core
import Foundation
#if os(Linux) && arch(x86_64)
import CPUKernelsAVX2
#endif

public enum ActivationFormat: Sendable {
    case q8_0, q8_1, q8_K

    public var blockSize: Int { self == .q8_K ? 256 : 32 }

    /// The activation format llama.cpp uses for dot products with `type` weights, if integer.
    public static func `for`(_ type: GGMLType) -> ActivationFormat? {
        switch type {
        case .q4_0, .q5_0, .q8_0, .iq4_nl: return .q8_0
        case .q4_1, .q5_1: return .q8_1
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_xs: return .q8_K
        default: return nil
        }
    }
}

/// One or more rows of quantized activations (rows of `n` elements each).
public final class QuantizedActivations: @unchecked Sendable {
    public let format: ActivationFormat
    public let n: Int
    public let rows: Int
    /// [rows, n]
    public let qs: UnsafeMutablePointer<Int8>
    /// [rows, n / blockSize]
    public let scales: UnsafeMutablePointer<Float>
    /// q8_1: [rows, n / 32] (s); q8_K: [rows, n / 16] (bsums); q8_0: unused.
    public let sums: UnsafeMutablePointer<Float>
    /// q8_K: [rows, n / 64] the sums of the two 32-element sub-blocks of every 64 elements as
    /// one word of two int16 (low: the first); the q4_K kernels' min terms. Other formats: unused.
    public let pairSums: UnsafeMutablePointer<Int32>

    public var blocksPerRow: Int { n / format.blockSize }
    public var sumsPerRow: Int { format == .q8_K ? n / 16 : n / 32 }

    public init(format: ActivationFormat, n: Int, rows: Int) {
        precondition(n % format.blockSize == 0, "row of \(n) is not a whole number of \(format) blocks")
        self.format = format; self.n = n; self.rows = rows
        qs = .allocate(capacity: rows * n)
        scales = .allocate(capacity: rows * (n / format.blockSize))
        sums = .allocate(capacity: rows * (format == .q8_K ? n / 16 : n / 32))
        pairSums = .allocate(capacity: format == .q8_K ? rows * n / 64 : 1)
    }

    deinit { qs.deallocate(); scales.deallocate(); sums.deallocate(); pairSums.deallocate() }

    /// Copies row `source` of `other` (same format and width) into row `r`: every field.
    public func copyRow(_ source: Int, of other: QuantizedActivations, to r: Int) {
        precondition(other.format == format && other.n == n, "\(other.format) rows of \(other.n) into \(format) rows of \(n)")
        (qs + r * n).update(from: other.qs + source * n, count: n)
        (scales + r * blocksPerRow).update(from: other.scales + source * blocksPerRow, count: blocksPerRow)
        (sums + r * sumsPerRow).update(from: other.sums + source * sumsPerRow, count: sumsPerRow)
        if format == .q8_K { (pairSums + r * (n / 64)).update(from: other.pairSums + source * (n / 64), count: n / 64) }
    }

    /// Quantizes `rows` rows of `x` [rows, n].
    public func quantize(_ x: UnsafePointer<Float>, isa: KernelISA = .best) {
        for r in 0..<rows { quantizeRow(x + r * n, row: r, isa: isa) }
    }

    /// Quantizes the first `count` rows (all by default) of `x` [count, n], rows split across the pool.
    public func quantize(_ x: UnsafePointer<Float>, rows count: Int? = nil, pool: ThreadPool, isa: KernelISA = .best) {
        let xs = UnsafeSendable(x)
        let count = count ?? rows
        precondition(count <= rows, "\(count) rows into \(rows)")
        if count == 1 { quantizeRow(x, row: 0, isa: isa); return }
        pool.parallelFor(count) { range in
            for r in range { self.quantizeRow(xs.pointer + r * self.n, row: r, isa: isa) }
        }
    }

    /// Quantizes row `r` from `x` (n floats); every ISA gives the same bytes.
    public func quantizeRow(_ x: UnsafePointer<Float>, row r: Int, isa: KernelISA = .best) {
        let q = qs + r * n
        #if os(Linux) && arch(x86_64)
        if isa != .baseline {
            switch format {
            case .q8_0, .q8_1:
                QuantizeAVX2.q8Row(x, n: n, qs: q, scales: scales + r * (n / 32), sums: format == .q8_1 ? sums + r * (n / 32) : nil)
            case .q8_K:
                QuantizeAVX2.q8KRow(x, n: n, qs: q, scales: scales + r * (n / 256), bsums: sums + r * (n / 16), pairSums: pairSums + r * (n / 64))
            }
            return
        }
        #endif
        switch format {
        case .q8_0, .q8_1:
            for b in 0..<(n / 32) {
                let xb = x + b * 32, qb = q + b * 32
                var amax: Float = 0
                for i in 0..<32 { amax = max(amax, abs(xb[i])) }
                let d = amax / 127
                let id: Float = amax != 0 ? 127 / amax : 0
                var sum: Int32 = 0
                for i in 0..<32 {
                    let v = Int8((xb[i] * id).rounded(.toNearestOrEven))
                    qb[i] = v
                    sum += Int32(v)
                }
                scales[r * (n / 32) + b] = halfToFloat(floatToHalf(d))
                if format == .q8_1 { sums[r * (n / 32) + b] = halfToFloat(floatToHalf(d * Float(sum))) }
            }
        case .q8_K:
            for b in 0..<(n / 256) {
                let xb = x + b * 256, qb = q + b * 256
                var amax: Float = 0, mx: Float = 0
                for i in 0..<256 where abs(xb[i]) > amax { amax = abs(xb[i]); mx = xb[i] }
                let sumBase = r * (n / 16) + b * 16
                if amax == 0 {
                    scales[r * (n / 256) + b] = 0
                    for i in 0..<256 { qb[i] = 0 }
                    for j in 0..<16 { sums[sumBase + j] = 0 }
                    for c in 0..<4 { pairSums[r * (n / 64) + 4 * b + c] = 0 }
                    continue
                }
                let iscale = -127 / mx
                for i in 0..<256 { qb[i] = Int8(min(127, (iscale * xb[i]).rounded(.toNearestOrEven))) }
                var sub = [Int32](repeating: 0, count: 8)
                for j in 0..<16 {
                    var s: Int32 = 0
                    for i in 0..<16 { s += Int32(qb[j * 16 + i]) }
                    sums[sumBase + j] = Float(s)
                    sub[j / 2] += s
                }
                for c in 0..<4 {
                    pairSums[r * (n / 64) + 4 * b + c] = Int32(bitPattern: UInt32(UInt16(truncatingIfNeeded: sub[2 * c]))
                                                               | UInt32(UInt16(truncatingIfNeeded: sub[2 * c + 1])) << 16)
                }
                scales[r * (n / 256) + b] = 1 / iscale
            }
        }
    }
}
