// Block layouts as data (sizes, field offsets), input validation, and the structural invariants
// of the two activation formats gguf-py does not cover: Q8_1 (s = d·Σq) and Q8_K (bsums).

import XCTest
@testable import Core

final class QuantLayoutTests: XCTestCase {
    static let supported: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1,
                                        .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq4_nl, .iq4_xs]

    func testSupportedSet() {
        XCTAssertEqual(Set(GGMLType.allCases.filter(Quant.canDequantize)), Set(Self.supported))
        XCTAssertEqual(Set(GGMLType.allCases.filter(Quant.canQuantize)), Set(Self.supported))
        for t in Self.supported { XCTAssertTrue(Quant.roundTripCeiling(t).isFinite, "\(t) has no ceiling") }
    }

    func testBlockSizesMatchTypeTable() {
        let expected: [GGMLType: (Int, Int)] = [
            .f32: (1, 4), .f16: (1, 2), .bf16: (1, 2), .q4_0: (32, 18), .q4_1: (32, 20), .q5_0: (32, 22),
            .q5_1: (32, 24), .q8_0: (32, 34), .q8_1: (32, 36), .q2_K: (256, 84), .q3_K: (256, 110),
            .q4_K: (256, 144), .q5_K: (256, 176), .q6_K: (256, 210), .q8_K: (256, 292),
            .iq4_nl: (32, 18), .iq4_xs: (256, 136),
        ]
        for t in Self.supported {
            let (block, bytes) = expected[t]!
            XCTAssertEqual(t.blockSize, block, "\(t) block size")
            XCTAssertEqual(t.typeSize, bytes, "\(t) type size")
            if t.isQuantized { XCTAssertEqual(Quant.declaredBlockSize(t), bytes, "\(t): Block* enum size") }
            guard let layout = Quant.layout(t) else { XCTFail("\(t) has no layout"); continue }
            XCTAssertEqual(layout.type, t)
            XCTAssertEqual(layout.size, bytes, "\(t): layout covers \(layout.size) bytes")
            var next = 0
            for f in layout.fields {
                XCTAssertEqual(f.offset, next, "\(t).\(f.name) is not contiguous")
                next = f.offset + f.bytes
            }
        }
        // Bits per weight sanity: e.g. Q4_K is 4.5 bpw, Q6_K 6.5625, IQ4_XS 4.25.
        XCTAssertEqual(Double(GGMLType.q4_K.typeSize * 8) / 256, 4.5)
        XCTAssertEqual(Double(GGMLType.q6_K.typeSize * 8) / 256, 6.5625)
        XCTAssertEqual(Double(GGMLType.iq4_xs.typeSize * 8) / 256, 4.25)
        XCTAssertEqual(MemoryLayout<UInt16>.size, 2, "f16 fields are stored as UInt16")
    }

    func testUnsupportedTypesThrow() throws {
        var src = [Float](repeating: 1, count: 256)
        var bytes = [UInt8](repeating: 0, count: 4096)
        for t in GGMLType.allCases where !Quant.canDequantize(t) {
            XCTAssertNil(Quant.layout(t))
            try bytes.withUnsafeMutableBytes { raw in
                try src.withUnsafeMutableBufferPointer { f in
                    XCTAssertThrowsError(try Quant.dequantize(t, from: raw.baseAddress!, to: f.baseAddress!, count: 256)) {
                        XCTAssertEqual($0 as? CoreError, .unsupportedType(t, operation: "dequantize"))
                    }
                    XCTAssertThrowsError(try Quant.quantize(t, from: f.baseAddress!, to: raw.baseAddress!, count: 256)) {
                        XCTAssertEqual($0 as? CoreError, .unsupportedType(t, operation: "quantize"))
                    }
                }
            }
        }
    }

    func testRaggedCountsThrow() throws {
        var f = [Float](repeating: 1, count: 512)
        var bytes = [UInt8](repeating: 0, count: 4096)
        let cases: [(GGMLType, Int)] = [(.q4_0, 31), (.q4_0, 48), (.q4_K, 100), (.q4_K, 32), (.iq4_xs, 255), (.q8_0, -32), (.f32, -1)]
        for (t, n) in cases {
            try bytes.withUnsafeMutableBytes { raw in
                try f.withUnsafeMutableBufferPointer { fp in
                    XCTAssertThrowsError(try Quant.dequantize(t, from: raw.baseAddress!, to: fp.baseAddress!, count: n)) {
                        XCTAssertEqual($0 as? CoreError, .notBlockAligned(type: t, count: n))
                    }
                    XCTAssertThrowsError(try Quant.quantize(t, from: fp.baseAddress!, to: raw.baseAddress!, count: n)) {
                        XCTAssertEqual($0 as? CoreError, .notBlockAligned(type: t, count: n))
                    }
                }
            }
        }
        // Zero elements is fine and touches nothing.
        XCTAssertNoThrow(try QuantTest.roundTrip(.q4_K, []))
    }

    // MARK: - Q8_1 / Q8_K

    func testQ8_1IsQ8_0PlusScaledSum() throws {
        var rng = SeededRNG(seed: 81)
        let x = rng.gaussians(32 * 64) + [Float](repeating: 0, count: 32)
        let q81 = try QuantTest.roundTrip(.q8_1, x), q80 = try QuantTest.roundTrip(.q8_0, x)
        XCTAssertEqual(q81.y, q80.y, "Q8_1 decodes like Q8_0")
        for b in 0..<(x.count / 32) {
            let blk = Array(q81.bytes[(b * 36)..<(b * 36 + 36)])
            let d16 = UInt16(blk[0]) | UInt16(blk[1]) << 8, s16 = UInt16(blk[2]) | UInt16(blk[3]) << 8
            let qs = blk[4...].map { Int(Int8(bitPattern: $0)) }
            XCTAssertEqual(Array(q80.bytes[(b * 34)..<(b * 34 + 2)]), Array(blk[0..<2]), "block \(b): d differs from Q8_0")
            XCTAssertEqual(q80.bytes[(b * 34 + 2)..<(b * 34 + 34)].map { Int(Int8(bitPattern: $0)) }, qs, "block \(b): qs")
            let sum = qs.reduce(0, +)
            let dFull = x[(b * 32)..<(b * 32 + 32)].map(abs).max()! / 127
            XCTAssertEqual(s16, floatToHalf(Float(sum) * dFull), "block \(b): s = f16(d·Σq)")
            let approx = halfToFloat(d16) * Float(sum), s = halfToFloat(s16)
            XCTAssertEqual(s, approx, accuracy: max(1e-3 * abs(approx), 1e-6), "block \(b): s ≈ d·Σq")
            XCTAssertLessThanOrEqual(qs.map(abs).max()!, 127)
        }
    }

    func testQ8_KBlockSumsAndScale() throws {
        var rng = SeededRNG(seed: 88)
        var x = rng.gaussians(256 * 8)
        x[700] = -9                                         // a negative extreme in block 2
        x += [Float](repeating: 0, count: 256)              // an all-zero block
        let (bytes, y) = try QuantTest.roundTrip(.q8_K, x)
        for b in 0..<(x.count / 256) {
            let blk = Array(bytes[(b * 292)..<(b * 292 + 292)])
            let d = Float(bitPattern: UInt32(blk[0]) | UInt32(blk[1]) << 8 | UInt32(blk[2]) << 16 | UInt32(blk[3]) << 24)
            let qs = blk[4..<260].map { Int(Int8(bitPattern: $0)) }
            for j in 0..<16 {
                let bsum = Int(Int16(bitPattern: UInt16(blk[260 + 2 * j]) | UInt16(blk[261 + 2 * j]) << 8))
                XCTAssertEqual(bsum, qs[(16 * j)..<(16 * j + 16)].reduce(0, +), "block \(b) bsums[\(j)]")
            }
            let xs = Array(x[(b * 256)..<(b * 256 + 256)])
            let amax = xs.map(abs).max()!
            if amax == 0 {
                XCTAssertEqual(d, 0); XCTAssertTrue(qs.allSatisfy { $0 == 0 })
            } else {
                let iMax = xs.firstIndex { abs($0) == amax }!
                XCTAssertEqual(qs[iMax], -127, "block \(b): the extreme maps to -127 (d carries the sign)")
                XCTAssertEqual(d * Float(qs[iMax]), xs[iMax], accuracy: 1e-6 * amax)
                XCTAssertEqual(abs(d), amax / 127, accuracy: 1e-6 * amax)
            }
            for i in 0..<256 { XCTAssertEqual(y[b * 256 + i], Float(qs[i]) * d, "block \(b) weight \(i) = d·q") }
        }
    }
}
