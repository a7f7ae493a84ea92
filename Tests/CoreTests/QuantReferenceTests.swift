// Bit-exactness against gguf-py (scripts/quant_reference.py): every type gguf-py can dequantize is
// decoded from seeded random blocks by both sides and compared bit for bit; the legacy quantizers
// and the f16 / bf16 encoders, whose reference rules gguf-py implements exactly, are compared too.
// A missing python3 or gguf package FAILS these tests (see QuantTest.setupHint); they never skip.

import XCTest
@testable import Core

final class QuantReferenceTests: XCTestCase {
    /// Types in our list that gguf-py 0.19.0 dequantizes (Q8_1 and Q8_K are not among them).
    static let ggufTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0,
                                        .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_nl, .iq4_xs]

    /// Seeded random blocks of `type`; f16 scale fields ("d", "m", "dmin") hold finite random values
    /// (normal or subnormal). F16/BF16 get all 65 536 bit patterns; F32 random bits incl. NaNs.
    static func randomInput(_ type: GGMLType, rng: inout SeededRNG) -> (bytes: [UInt8], count: Int) {
        switch type {
        case .f16, .bf16:
            return ((0...UInt16.max).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }, 65536)
        case .f32:
            return (rng.bytes(4 * 4096), 4096)
        default:
            let blocks = 96
            var bytes = rng.bytes(blocks * type.typeSize)
            let scaleFields = Quant.layout(type)!.fields.filter { ["d", "m", "dmin"].contains($0.name) }
            for b in 0..<blocks {
                for f in scaleFields {
                    precondition(f.bytes == 2)
                    let h = rng.finiteHalfBits()
                    bytes[b * type.typeSize + f.offset] = UInt8(h & 0xFF)
                    bytes[b * type.typeSize + f.offset + 1] = UInt8(h >> 8)
                }
            }
            return (bytes, blocks * type.blockSize)
        }
    }

    func testDequantizeMatchesGGUFBitExactly() throws {
        var rng = SeededRNG(seed: 0x5157_4B54)
        let inputs = Self.ggufTypes.map { Self.randomInput($0, rng: &rng) }
        let jobs = zip(Self.ggufTypes, inputs).map { QuantTest.Job(op: "dequantize", type: $0, input: $1.bytes) }
        guard let outputs = try QuantTest.runReference(jobs) else { return }
        for (i, type) in Self.ggufTypes.enumerated() {
            let expected = QuantTest.bytesToFloats(outputs[i])
            var ours = [Float](repeating: 0, count: inputs[i].count)
            try QuantTest.dequantize(type, inputs[i].bytes, into: &ours)
            XCTAssertEqual(expected.count, ours.count, "\(type): element count")
            var mismatches = 0
            for j in 0..<min(expected.count, ours.count) where expected[j].bitPattern != ours[j].bitPattern {
                if mismatches < 3 {
                    XCTFail("\(type) element \(j) (block \(j / type.blockSize)): gguf \(expected[j]) "
                        + "0x\(String(expected[j].bitPattern, radix: 16)), ours \(ours[j]) 0x\(String(ours[j].bitPattern, radix: 16))")
                }
                mismatches += 1
            }
            XCTAssertEqual(mismatches, 0, "\(type): \(mismatches) of \(ours.count) elements differ from gguf-py")
        }
    }

    /// Floats that probe the f16 / bf16 encoders: overflow and underflow edges, ties, specials.
    static var edgeFloats: [Float] {
        var v: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, 65536, 1e10, -1e10, .infinity, -.infinity,
                          .nan, -Float.nan, Float(bitPattern: 0x7FC0_1234), Float(bitPattern: 0x7F80_0001),
                          Float(bitPattern: 0x7FA0_0000), Float(bitPattern: 0xFF80_2000),
                          0x1p-14, 0x1p-24, 0x1p-25, 0x1.000002p-25, 0x1.8p-24, 0x1p-26, 0x1.ffcp-15, 0x1.ffep-15,
                          Float.leastNonzeroMagnitude, Float.greatestFiniteMagnitude, -Float.greatestFiniteMagnitude,
                          1.00048828125, 1.000732421875, 1.0009765625, 3.4e38]
        for k in 0..<64 { v.append(Float(bitPattern: 0x3380_0000 &+ UInt32(k) &* 0x0004_0001)) }   // subnormal half range
        while v.count % 32 != 0 { v.append(0.5) }
        return v
    }

    func testLegacyQuantizersMatchGGUFBitExactly() throws {
        var rng = SeededRNG(seed: 0xF16)
        let types: [GGMLType] = [.f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0]
        var blocksData = rng.gaussians(32 * 128)
        blocksData += rng.gaussians(32 * 32, scale: 1e-3) + rng.gaussians(32 * 32, scale: 300)
        blocksData += [Float](repeating: 0, count: 32) + [Float](repeating: 0.75, count: 32) + [Float](repeating: -2, count: 32)
        var outlier = rng.gaussians(32); outlier[7] = 5000; blocksData += outlier
        var tie = rng.gaussians(32); tie[3] = 4; tie[20] = -4; blocksData += tie        // equal magnitudes: first wins
        var inputs: [[Float]] = []
        for type in types {
            if type == .f16 || type == .bf16 {
                let bits = (0..<8192).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng)) }
                inputs.append(blocksData + Self.edgeFloats + bits)
            } else {
                inputs.append(blocksData)
            }
        }
        let jobs = zip(types, inputs).map { QuantTest.Job(op: "quantize", type: $0, input: QuantTest.floatsToBytes($1)) }
        guard let outputs = try QuantTest.runReference(jobs) else { return }
        for (i, type) in types.enumerated() {
            var ours = [UInt8](repeating: 0, count: type.byteCount(elements: inputs[i].count))
            try inputs[i].withUnsafeBufferPointer { xs in
                try ours.withUnsafeMutableBytes { try Quant.quantize(type, from: xs.baseAddress!, to: $0.baseAddress!, count: xs.count) }
            }
            XCTAssertEqual(outputs[i].count, ours.count, "\(type): byte count")
            if let j = ours.indices.first(where: { j in j >= outputs[i].count || outputs[i][j] != ours[j] }) {
                let unit = type.isQuantized ? type.typeSize : 2
                let element = type.isQuantized ? j / unit * 32 : j / 2
                XCTFail("\(type): first differing byte \(j) (block \(j / unit), input[\(element)] = \(inputs[i][element])): "
                    + "gguf \(outputs[i][j]), ours \(ours[j])")
            }
        }
    }

    /// halfToFloat over all 65 536 patterns agrees with floatToHalf (every finite value and ±inf
    /// round-trips; NaNs stay NaN with their payload).
    func testHalfRoundTripsEveryPattern() {
        for h in 0...UInt16.max {
            let f = halfToFloat(h)
            if f.isNaN {
                XCTAssertEqual(floatToHalf(f), h, "NaN payload 0x\(String(h, radix: 16))")
            } else {
                XCTAssertEqual(floatToHalf(f), h, "0x\(String(h, radix: 16)) -> \(f)")
            }
            XCTAssertEqual(floatToBF16(bf16ToFloat(h)), bf16ToFloat(h).isNaN ? h | 0x40 : h)
        }
    }
}
