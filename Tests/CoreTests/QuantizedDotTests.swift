// The SIMD matmul on quantized weights (`Matmul.quantized`, QuantizedPanels.swift) must equal the
// scalar reference (`Matmul.quantizedReference`, one `QuantizedDot.dotReference` per row and
// token) bit for bit: integer block sums are exact and the float operations per block are the
// same, in the same order. Weights are random bytes with moderate f16 scales, so every code
// (q8_0's −128, all nibbles and high bits) occurs; row counts are odd so the last four-row
// panel is partial. The activation quantizer is checked against a slow re-implementation.

import XCTest
import Core
import CPUKernels

final class QuantizedDotTests: XCTestCase {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]

    /// Byte offsets of a block's f16 scale fields (d, m, dmin).
    static func halfFields(_ type: GGMLType) -> [Int] {
        switch type {
        case .q4_1, .q5_1, .q4_K, .q5_K: return [0, 2]
        case .q6_K: return [208]
        default: return [0]
        }
    }

    /// Random blocks of `type` for a [rows, cols] matrix.
    static func randomWeights(_ type: GGMLType, rows: Int, cols: Int, rng: inout SeededRNG) -> [UInt8] {
        var bytes = rng.bytes(type.byteCount(elements: cols) * rows)
        let blocks = rows * cols / type.blockSize
        for b in 0..<blocks {
            for field in halfFields(type) {
                // Mostly moderate scales; every seventh block any finite f16 (subnormals, ±65504).
                let h = b % 7 == 3 ? rng.finiteHalfBits() : floatToHalf(Float.random(in: -0.05...0.05, using: &rng))
                bytes[b * type.typeSize + field] = UInt8(h & 0xFF)
                bytes[b * type.typeSize + field + 1] = UInt8(h >> 8)
            }
        }
        return bytes
    }

    static func randomActivations(_ count: Int, rng: inout SeededRNG) -> [Float] {
        var x = rng.gaussians(count)
        // An all-zero block (d = 0) and a block dominated by one negative value.
        for i in 0..<min(32, count) { x[i] = 0 }
        if count > 64 { x[40] = -30 }
        return x
    }

    func testSIMDMatchesReferenceBitForBit() {
        XCTAssertEqual(KernelISA.available.first, .baseline)
        var rng = SeededRNG(seed: 42)
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            for type in Self.types {
                let colsChoices = type.blockSize == 256 ? [256, 768] : [32, 96, 576]
                for cols in colsChoices {
                    for rows in [1, 3, 5, 13] {
                        let bytes = Self.randomWeights(type, rows: rows, cols: cols, rng: &rng)
                        for tokens in [1, 2, 3, 4, 5, 6, 8, 9, 13, 17, 35] {
                            let x = Self.randomActivations(tokens * cols, rng: &rng)
                            var slow = [Float](repeating: .nan, count: tokens * rows)
                            bytes.withUnsafeBytes { w in
                                let m = WeightMatrix(type: type, rows: rows, cols: cols, data: w.baseAddress!)
                                x.withUnsafeBufferPointer { xp in
                                    Matmul.quantizedReference(m, x: xp.baseAddress!, y: &slow, tokens: tokens, pool: pool)
                                }
                            }
                            for isa in KernelISA.available {
                                var fast = [Float](repeating: .nan, count: tokens * rows)
                                bytes.withUnsafeBytes { w in
                                    let m = WeightMatrix(type: type, rows: rows, cols: cols, data: w.baseAddress!)
                                    x.withUnsafeBufferPointer { xp in
                                        Matmul.quantized(m, x: xp.baseAddress!, y: &fast, tokens: tokens, pool: pool, isa: isa)
                                    }
                                }
                                let mismatch = fast.indices.first { fast[$0].bitPattern != slow[$0].bitPattern }
                                XCTAssertNil(mismatch, "\(isa) type=\(type) rows=\(rows) cols=\(cols) tokens=\(tokens) "
                                             + "threads=\(threads): \(mismatch.map { "y[\($0)] = \(fast[$0]) vs \(slow[$0])" } ?? "")")
                            }
                        }
                    }
                }
            }
        }
    }

    func testManyEqualsSeparateCalls() {
        var rng = SeededRNG(seed: 9)
        let pool = ThreadPool(threads: 2)
        for group in [[GGMLType.q4_1, .q4_1, .q4_1], [.q5_0, .q8_0, .q4_0], [.q4_K, .q6_K], [.q4_K, .q8_0]] {
            let cols = 512
            let rows = [13, 8, 21].prefix(group.count)
            let bytes = zip(group, rows).map { Self.randomWeights($0, rows: $1, cols: cols, rng: &rng) }
            for tokens in [1, 5, 9] {
                let x = Self.randomActivations(tokens * cols, rng: &rng)
                for isa in KernelISA.available {
                    var separate: [[Float]] = [], together: [[Float]] = rows.map { [Float](repeating: .nan, count: tokens * $0) }
                    let matrices = zip(zip(group, rows), bytes).map { pair -> WeightMatrix in
                        pair.1.withUnsafeBytes { WeightMatrix(type: pair.0.0, rows: pair.0.1, cols: cols, data: $0.baseAddress!) }
                    }
                    withExtendedLifetime(bytes) {
                        for m in matrices {
                            var y = [Float](repeating: .nan, count: tokens * m.rows)
                            x.withUnsafeBufferPointer { Matmul.quantized(m, x: $0.baseAddress!, y: &y, tokens: tokens, pool: pool, isa: isa) }
                            separate.append(y)
                        }
                        let outs = together.indices.map { i in UnsafeMutablePointer<Float>.allocate(capacity: together[i].count) }
                        defer { outs.forEach { $0.deallocate() } }
                        x.withUnsafeBufferPointer { Matmul.quantizedMany(matrices, x: $0.baseAddress!, ys: outs, tokens: tokens, pool: pool, isa: isa) }
                        for i in together.indices { together[i] = Array(UnsafeBufferPointer(start: outs[i], count: together[i].count)) }
                        // Panels handed out in slices as threads finish (SWIFTKT_CPU_DYNAMIC): the same bits.
                        for (i, o) in outs.enumerated() { o.update(repeating: .nan, count: together[i].count) }
                        x.withUnsafeBufferPointer {
                            Matmul.quantizedMany(matrices, x: $0.baseAddress!, ys: outs, tokens: tokens, pool: pool, isa: isa, dynamic: true)
                        }
                        for i in together.indices {
                            XCTAssertEqual(UnsafeBufferPointer(start: outs[i], count: together[i].count).map(\.bitPattern), together[i].map(\.bitPattern),
                                           "dynamic shares, \(isa) \(group) tokens \(tokens)")
                        }
                    }
                    XCTAssertEqual(separate.map { $0.map(\.bitPattern) }, together.map { $0.map(\.bitPattern) }, "\(isa) \(group) tokens \(tokens)")
                }
            }
        }
    }

    /// F16, BF16 and F32 weights: llama.cpp's tinyBLAS order (16 lanes, one fma per element in its
    /// lane, `_mm512_reduce_add_ps`), written out in scalar code, on every ISA.
    func testFloatWeightsFollowTinyBLAS() {
        var rng = SeededRNG(seed: 9)
        let pool = ThreadPool(threads: 2)
        for type in [GGMLType.f16, .bf16, .f32] {
            for (rows, cols) in [(1, 16), (7, 48), (13, 576)] {
                let wf = (0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
                var bytes = [UInt8]()
                if type == .f16 || type == .bf16 {
                    for v in wf { let h = type == .f16 ? floatToHalf(v) : floatToBF16(v); bytes += [UInt8(h & 0xFF), UInt8(h >> 8)] }
                } else {
                    for v in wf { let b = v.bitPattern; bytes += [0, 8, 16, 24].map { UInt8((b >> UInt32($0)) & 0xFF) } }
                }
                func rounded(_ v: Float) -> Float {
                    type == .f16 ? halfToFloat(floatToHalf(v)) : type == .bf16 ? bf16ToFloat(floatToBF16(v)) : v
                }
                let weight = wf.map(rounded)
                // 9 and 17 tokens on 2 threads: split by tokens (few rows), the same dot products.
                for tokens in [1, 2, 3, 5, 9, 17] {
                    let x = (0..<(tokens * cols)).map { _ in Float.random(in: -2...2, using: &rng) }
                    var expected = [Float](repeating: 0, count: tokens * rows)
                    for t in 0..<tokens {
                        for r in 0..<rows {
                            var lanes = [Float](repeating: 0, count: 16)
                            for l in 0..<cols {
                                let xv = rounded(x[t * cols + l])
                                lanes[l % 16] = lanes[l % 16].addingProduct(weight[r * cols + l], xv)
                            }
                            let h8 = (0..<8).map { lanes[8 + $0] + lanes[$0] }, h4 = (0..<4).map { h8[4 + $0] + h8[$0] }
                            expected[t * rows + r] = (h4[0] + h4[2]) + (h4[1] + h4[3])
                        }
                    }
                    for isa in KernelISA.available {
                        var y = [Float](repeating: .nan, count: tokens * rows)
                        bytes.withUnsafeBytes { b in
                            Matmul.quantized(WeightMatrix(type: type, rows: rows, cols: cols, data: b.baseAddress!), x: x, y: &y,
                                             tokens: tokens, pool: pool, isa: isa)
                        }
                        XCTAssertEqual(y.map(\.bitPattern), expected.map(\.bitPattern), "\(isa) \(type) [\(rows), \(cols)] tokens \(tokens)")
                    }
                }
            }
        }
    }

    /// Once a matrix is repacked, `dequantizeRow` reads the packed copy (a tied embedding's
    /// lookups must not fault the file back in): the same floats as from the GGUF bytes.
    func testRowsFromThePackedCopyEqualTheFileRows() {
        var rng = SeededRNG(seed: 3)
        for type in Self.types {
            let cols = type.blockSize == 256 ? 512 : 96, rows = 13
            let bytes = Self.randomWeights(type, rows: rows, cols: cols, rng: &rng)
            bytes.withUnsafeBytes { w in
                let m = WeightMatrix(type: type, rows: rows, cols: cols, data: w.baseAddress!)
                var before = [[Float]](), after = [[Float]]()
                for r in 0..<rows { var out = [Float](repeating: .nan, count: cols); m.dequantizeRow(r, into: &out); before.append(out) }
                Matmul.prepare(m)
                for r in 0..<rows { var out = [Float](repeating: .nan, count: cols); m.dequantizeRow(r, into: &out); after.append(out) }
                XCTAssertEqual(before.map { $0.map(\.bitPattern) }, after.map { $0.map(\.bitPattern) }, "\(type)")
            }
        }
    }

    // MARK: - Activation quantizer

    /// Round half to even computed in Double (exact for the products of two floats' range here).
    static func roundEven(_ v: Float) -> Float { Float(Double(v).rounded(.toNearestOrEven)) }

    func testActivationQuantizerMatchesSlowVersion() {
        var rng = SeededRNG(seed: 7)
        let n = 512, rows = 3
        let x = Self.randomActivations(rows * n, rng: &rng)
        for isa in KernelISA.available {
        for format in [ActivationFormat.q8_0, .q8_1, .q8_K] {
            let a = QuantizedActivations(format: format, n: n, rows: rows)
            x.withUnsafeBufferPointer { a.quantize($0.baseAddress!, pool: ThreadPool(threads: 2), isa: isa) }
            for r in 0..<rows {
                let row = Array(x[(r * n)..<((r + 1) * n)])
                let bs = format.blockSize
                for b in 0..<(n / bs) {
                    let block = Array(row[(b * bs)..<((b + 1) * bs)])
                    var q = [Int8](repeating: 0, count: bs)
                    var d: Float = 0
                    if format == .q8_K {
                        // The element of largest magnitude (first one on ties), with its sign.
                        var mx: Float = 0
                        for v in block where abs(v) > abs(mx) { mx = v }
                        if mx != 0 {
                            let iscale = -127 / mx
                            q = block.map { Int8(min(127, Self.roundEven(iscale * $0))) }
                            d = 1 / iscale
                        }
                        for j in 0..<16 {
                            let s = q[(j * 16)..<((j + 1) * 16)].reduce(0) { $0 + Int($1) }
                            XCTAssertEqual(a.sums[r * (n / 16) + b * 16 + j], Float(s), "\(isa) \(format) bsum row \(r) block \(b)")
                        }
                        for c in 0..<4 {
                            let lo = q[(64 * c)..<(64 * c + 32)].reduce(0) { $0 + Int($1) }, hi = q[(64 * c + 32)..<(64 * c + 64)].reduce(0) { $0 + Int($1) }
                            let word = a.pairSums[r * (n / 64) + 4 * b + c]
                            XCTAssertEqual([Int(Int16(truncatingIfNeeded: word)), Int(Int16(truncatingIfNeeded: word >> 16))], [lo, hi],
                                           "\(isa) pair sums row \(r) block \(b) chunk \(c)")
                        }
                        XCTAssertEqual(a.scales[r * (n / 256) + b].bitPattern, d.bitPattern, "\(format) d row \(r) block \(b)")
                    } else {
                        let amax = block.map { abs($0) }.max()!
                        let id: Float = amax == 0 ? 0 : 127 / amax
                        q = block.map { Int8(Self.roundEven($0 * id)) }
                        d = halfToFloat(floatToHalf(amax / 127))
                        XCTAssertEqual(a.scales[r * (n / 32) + b].bitPattern, d.bitPattern, "\(format) d row \(r) block \(b)")
                        if format == .q8_1 {
                            let s = halfToFloat(floatToHalf(amax / 127 * Float(q.reduce(0) { $0 + Int($1) })))
                            XCTAssertEqual(a.sums[r * (n / 32) + b].bitPattern, s.bitPattern, "\(format) s row \(r) block \(b)")
                        }
                    }
                    for i in 0..<bs {
                        XCTAssertEqual(a.qs[r * n + b * bs + i], q[i], "\(isa) \(format) q row \(r) element \(b * bs + i)")
                    }
                }
            }
        }
        }
    }
}
