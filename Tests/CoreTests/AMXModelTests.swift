// The AMX q4_K kernel (CPUKernelsAMX, `KernelISA.amx`) must equal the scalar reference bit for
// bit. Machines without AMX run it on CPUKernelsAMX's software model of the tile registers
// (the same C body with the tile instructions modelled), so the packing of the lane panels into
// tiles, the remainder-token padding, the odd last panel and the scaling around the tiles are
// checked everywhere; `swiftkt kernels --check` checks the tile unit itself on AMX machines (the
// H200 machine's host, session 12: 0 mismatches, the padded last group included).
#if os(Linux) && arch(x86_64)
import XCTest
import Core
@testable import CPUKernels

final class AMXModelTests: XCTestCase {
    func testTileModelMatchesReferenceBitForBit() throws {
        try XCTSkipUnless(KernelISA.available.contains(.avx2), "the AMX path's other tokens run AVX2's lane kernel")
        var rng = SeededRNG(seed: 11)
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            for cols in [256, 768] {
                // 13 rows: one pair of panels, partly valid; 17: a pair and an odd panel; 40: two pairs and an odd one.
                for rows in [13, 17, 40] {
                    let bytes = QuantizedDotTests.randomWeights(.q4_K, rows: rows, cols: cols, rng: &rng)
                    // 20: a last group of fewer than 16 tokens (padded); 17, 35: tokens after the whole groups of 4
                    // (AVX2's kernel); 16, 32 (in 35): whole tiles; 4, 8, 9, 13: below Matmul.amxMinTokens.
                    for tokens in [4, 8, 9, 13, 16, 17, 20, 35] {
                        let x = QuantizedDotTests.randomActivations(tokens * cols, rng: &rng)
                        let expectAMX = tokens - tokens % 4 >= Matmul.amxMinTokens
                        XCTAssertEqual(Matmul.panelKernel(for: .q4_K, isa: .amx, tokens: tokens) == .amxLanes, expectAMX, "tokens \(tokens)")
                        var slow = [Float](repeating: .nan, count: tokens * rows), fast = slow
                        bytes.withUnsafeBytes { w in
                            let m = WeightMatrix(type: .q4_K, rows: rows, cols: cols, data: w.baseAddress!)
                            x.withUnsafeBufferPointer { xp in
                                Matmul.quantizedReference(m, x: xp.baseAddress!, y: &slow, tokens: tokens, pool: pool)
                                let act = QuantizedActivations(format: .q8_K, n: cols, rows: tokens)
                                act.quantize(xp.baseAddress!, pool: pool)
                                fast.withUnsafeMutableBufferPointer { y in
                                    Matmul.quantized([Matmul.PreparedMatmul(m, act, y: y.baseAddress!, tokens: tokens)], pool: pool, isa: .amx,
                                                     dynamic: false, tiles: .model)
                                }
                            }
                        }
                        let mismatch = fast.indices.first { fast[$0].bitPattern != slow[$0].bitPattern }
                        XCTAssertNil(mismatch, "rows=\(rows) cols=\(cols) tokens=\(tokens) threads=\(threads): "
                                     + "\(mismatch.map { "y[\($0)] = \(fast[$0]) vs \(slow[$0])" } ?? "")")
                    }
                }
            }
        }
    }
}
#endif
