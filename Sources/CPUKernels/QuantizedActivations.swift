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

    public var blocksPerRow: Int { n / format.blockSize }
    public var sumsPerRow: Int { format == .q8_K ? n / 16 : n / 32 }

    public init(format: ActivationFormat, n: Int, rows: Int) {
        precondition(n % format.blockSize == 0, "row of \(n) is not a whole number of \(format) blocks")
        self.format = format; self.n = n; self.rows = rows
        qs = .allocate(capacity: rows * n)
        scales = .allocate(capacity: rows * (n / format.blockSize))
        sums = .allocate(capacity: rows * (format == .q8_K ? n / 16 : n / 32))
    }

    deinit { qs.deallocate(); scales.deallocate(); sums.deallocate() }

    /// Quantizes `rows` rows of `x` [rows, n].
    public func quantize(_ x: UnsafePointer<Float>) {
        for r in 0..<rows { quantizeRow(x + r * n, row: r) }
    }

    /// Quantizes `rows` rows of `x` [rows, n], rows split across the pool.
    public func quantize(_ x: UnsafePointer<Float>, pool: ThreadPool) {
        let xs = UnsafeSendable(x)
        if rows == 1 { quantizeRow(x, row: 0); return }
        pool.parallelFor(rows) { range in
            for r in range { self.quantizeRow(xs.pointer + r * self.n, row: r) }
        }
    }

    public func quantizeRow(_ x: UnsafePointer<Float>, row r: Int) {
        let q = qs + r * n
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
                    continue
                }
                let iscale = -127 / mx
                for i in 0..<256 { qb[i] = Int8(min(127, (iscale * xb[i]).rounded(.toNearestOrEven))) }
                for j in 0..<16 {
                    var s: Int32 = 0
                    for i in 0..<16 { s += Int32(qb[j * 16 + i]) }
                    sums[sumBase + j] = Float(s)
                }
                scales[r * (n / 256) + b] = 1 / iscale
            }
        }
    }
}
