// Quantize → dequantize error for every supported type against its named ceiling
// (Quant.roundTripCeiling), on seeded N(0,1) rows and on odd rows: all zeros, constants, one huge
// outlier, tiny and large scales, sparse rows. Also: zero rows decode to exact zeros, and
// non-finite input never traps.

import XCTest
@testable import Core

final class QuantRoundTripTests: XCTestCase {
    static let types: [GGMLType] = GGMLType.allCases.filter { Quant.canQuantize($0) }

    func testGaussianRoundTripWithinCeiling() throws {
        var report: [String] = []
        for type in Self.types {
            var rng = SeededRNG(seed: 42 &+ UInt64(type.rawValue))
            let x = rng.gaussians(32768)
            let (_, y) = try QuantTest.roundTrip(type, x)
            let err = QuantTest.normalizedMSE(x, y)
            report.append("\(type) \(String(format: "%.3e", err))")
            XCTAssertLessThanOrEqual(err, Quant.roundTripCeiling(type), "\(type) normalized MSE \(err)")
            XCTAssertFalse(y.contains { !$0.isFinite }, "\(type): non-finite output")
        }
        print("quant round-trip normalized MSE (N(0,1), 32768 values): " + report.joined(separator: ", "))
    }

    /// Rows with structure the Gaussian test never shows.
    static func oddRows() -> [(String, [Float])] {
        var rng = SeededRNG(seed: 7)
        let n = 1024
        var outlier = rng.gaussians(n); outlier[300] = 10_000
        var negOutlier = rng.gaussians(n); negOutlier[5] = -30_000
        let sparse = (0..<n).map { i -> Float in i % 10 == 3 ? rng.gaussian() : 0 }
        let ramp = (0..<n).map { Float($0 % 256) / 255 - 0.5 }
        let positive = rng.gaussians(n).map { abs($0) + 0.1 }
        return [
            ("constant 0.3", [Float](repeating: 0.3, count: n)),
            ("constant -1.7", [Float](repeating: -1.7, count: n)),
            ("one huge outlier", outlier),
            ("huge negative outlier", negOutlier),
            ("scale 1e-3", rng.gaussians(n, scale: 1e-3)),
            ("scale 1e3", rng.gaussians(n, scale: 1e3)),
            ("sparse", sparse),
            ("ramp", ramp),
            ("all positive", positive),
        ]
    }

    func testOddRowsWithinCeiling() throws {
        for (name, x) in Self.oddRows() {
            for type in Self.types {
                let (_, y) = try QuantTest.roundTrip(type, x)
                let err = QuantTest.normalizedMSE(x, y)
                XCTAssertLessThanOrEqual(err, Quant.roundTripCeiling(type), "\(type) on \(name): normalized MSE \(err)")
                XCTAssertFalse(y.contains { !$0.isFinite }, "\(type) on \(name): non-finite output")
            }
        }
    }

    func testZeroRowsQuantizeToZeros() throws {
        for type in Self.types {
            let x = [Float](repeating: 0, count: 512)
            let (bytes, y) = try QuantTest.roundTrip(type, x)
            XCTAssertTrue(y.allSatisfy { $0 == 0 }, "\(type): zeros decode to \(y.first { $0 != 0 } ?? 0)")
            XCTAssertFalse(y.contains { $0.isNaN }, "\(type): NaN from a zero row")
            // Re-quantizing is deterministic: same input, same bytes.
            XCTAssertEqual(try QuantTest.roundTrip(type, x).bytes, bytes, "\(type): not deterministic")
        }
    }

    func testNonFiniteInputDoesNotTrap() throws {
        var rng = SeededRNG(seed: 9)
        var x = rng.gaussians(512)
        x[3] = .nan; x[40] = .infinity; x[300] = -.infinity; x[301] = .greatestFiniteMagnitude
        for type in Self.types {
            _ = try QuantTest.roundTrip(type, x)          // must return, whatever it produces
            _ = try QuantTest.roundTrip(type, [Float](repeating: .nan, count: 256))
        }
    }

    func testReQuantizingDecodedDataIsNearlyStable() throws {
        // Decoding then re-encoding a quantized row should not drift far: it is already on the grid.
        var rng = SeededRNG(seed: 11)
        let x = rng.gaussians(4096)
        for type in Self.types where type.isQuantized {
            let (_, y) = try QuantTest.roundTrip(type, x)
            let (_, z) = try QuantTest.roundTrip(type, y)
            let drift = QuantTest.normalizedMSE(y, z)
            XCTAssertLessThanOrEqual(drift, Quant.roundTripCeiling(type), "\(type): re-quantization drift \(drift)")
        }
    }
}
