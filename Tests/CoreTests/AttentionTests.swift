// The fast f16 flash attention against its scalar yardstick and against exact attention,
// on random queries and caches, with GQA, sliding windows and several chunk positions.
import Core
@testable import CPUKernels
import XCTest

final class AttentionTests: XCTestCase {
    func testRoundToHalfEqualsTheFullConversion() {
        var rng = SeededGenerator(seed: 5)
        var values: [Float] = [0, -0.0, 1, -1, 65504, 65519, 65520, 70000, 0x1p-14, 0x1p-15, 3e-8, .infinity, -.infinity]
        for _ in 0..<200_000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        for x in values where !x.isNaN {
            XCTAssertEqual(Attention.roundToHalf(x).bitPattern, halfToFloat(floatToHalf(x)).bitPattern, "\(x)")
        }
    }

    /// Decode steps take the query heads of a GQA group together (parts of up to four heads,
    /// split further to keep threads busy): every group size, part split and width (16-lane
    /// tails) gives the reference's bits on every ISA and thread count.
    func testGroupedDecodeMatchesReference() {
        var rng = SeededGenerator(seed: 17)
        for (heads, kvHeads, headDim, tokens, start) in [(14, 2, 48, 1, 300), (8, 1, 80, 2, 150), (7, 7, 64, 1, 90), (12, 3, 128, 3, 40),
                                                         (6, 1, 24, 1, 33), (16, 2, 64, 1, 500)] {
            let capacity = start + tokens, kvWidth = kvHeads * headDim
            let kh = (0..<(capacity * kvWidth)).map { _ in floatToHalf(rng.nextNormal()) }
            let vh = (0..<(capacity * kvWidth)).map { _ in floatToHalf(rng.nextNormal()) }
            let q = (0..<(tokens * heads * headDim)).map { _ in 2 * rng.nextNormal() }
            let positions = (0..<tokens).map { Int32(start + $0) }
            var slow = [Float](repeating: .nan, count: q.count)
            Attention.flashF16Reference(q: q, k: kh, v: vh, out: &slow, tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim,
                                        positions: positions, window: nil, scale: 0.1, pool: ThreadPool(threads: 1))
            for threads in [1, 2, 5] {
                let pool = ThreadPool(threads: threads)
                for isa in KernelISA.available {
                    var fast = [Float](repeating: .nan, count: q.count)
                    Attention.flashF16(q: q, k: kh, v: vh, out: &fast, tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim,
                                       positions: positions, window: nil, scale: 0.1, pool: pool, isa: isa)
                    XCTAssertEqual(fast.map(\.bitPattern), slow.map(\.bitPattern), "\(heads)/\(kvHeads)×\(headDim) t\(tokens) \(isa) threads \(threads)")
                }
            }
        }
        XCTAssertEqual(Attention.groupPart(group: 3, jobsPerHead: 3, threads: 2), 2)
        XCTAssertEqual(Attention.groupPart(group: 4, jobsPerHead: 1, threads: 2), 1)
        XCTAssertEqual(Attention.groupPart(group: 7, jobsPerHead: 8, threads: 2), 4)
    }

    func testFastFlashMatchesReferenceAndExact() {
        var rng = SeededGenerator(seed: 11)
        for (heads, kvHeads, headDim, window, start, tokens) in [(4, 2, 64, nil, 0, 7), (4, 1, 256, 5, 3, 9), (9, 3, 64, nil, 20, 1),
                                                                 (2, 2, 32, 3, 0, 6),
                                                                 // ≥ 64 queries: llama.cpp's tiled numerics, across KV tiles.
                                                                 (9, 3, 64, nil, 10, 130), (4, 1, 256, 70, 5, 100),
                                                                 // odd rows per tile (paired scores), a width off the 16-lane grid
                                                                 (3, 1, 128, nil, 2, 65), (3, 1, 40, 9, 0, 67),
                                                                 // groups of 1 and 2; windows that end before a tile starts
                                                                 (2, 2, 64, 3, 100, 70), (4, 2, 128, 10, 0, 130)]
                as [(Int, Int, Int, Int?, Int, Int)] {
            let capacity = start + tokens
            let kvWidth = kvHeads * headDim
            let kf = (0..<(capacity * kvWidth)).map { _ in rng.nextNormal() }
            let vf = (0..<(capacity * kvWidth)).map { _ in rng.nextNormal() }
            let kh = kf.map(floatToHalf), vh = vf.map(floatToHalf)
            let kr = kh.map(halfToFloat), vr = vh.map(halfToFloat)
            let q = (0..<(tokens * heads * headDim)).map { _ in 2 * rng.nextNormal() }
            let positions = (0..<tokens).map { Int32(start + $0) }
            var fast = [Float](repeating: .nan, count: q.count), slow = fast, exact = fast
            for threads in [1, 2] {
                let pool = ThreadPool(threads: threads)
                Attention.flashF16(q: q, k: kh, v: vh, out: &fast, tokens: tokens, heads: heads, kvHeads: kvHeads,
                                   headDim: headDim, positions: positions, window: window, scale: 0.125, pool: pool)
                Attention.flashF16Reference(q: q, k: kh, v: vh, out: &slow, tokens: tokens, heads: heads, kvHeads: kvHeads,
                                            headDim: headDim, positions: positions, window: window, scale: 0.125, pool: pool)
                Attention.reference(q: q, k: kr, v: vr, out: &exact, tokens: tokens, heads: heads, kvHeads: kvHeads,
                                    headDim: headDim, positions: positions, window: window, scale: 0.125, pool: pool)
                let scale = exact.map { abs($0) }.max()!
                var worstSlow: Float = 0, worstExact: Float = 0
                for i in 0..<q.count {
                    XCTAssertFalse(fast[i].isNaN, "output \(i) not written")
                    worstSlow = max(worstSlow, abs(fast[i] - slow[i]))
                    worstExact = max(worstExact, abs(fast[i] - exact[i]))
                }
                XCTAssertEqual(fast.map(\.bitPattern), slow.map(\.bitPattern), "bit-identical to flashF16Reference")
                for isa in KernelISA.available {
                    var other = [Float](repeating: .nan, count: q.count)
                    Attention.flashF16(q: q, k: kh, v: vh, out: &other, tokens: tokens, heads: heads, kvHeads: kvHeads,
                                       headDim: headDim, positions: positions, window: window, scale: 0.125, pool: pool, isa: isa)
                    XCTAssertEqual(other.map(\.bitPattern), slow.map(\.bitPattern), "\(isa) tokens \(tokens)")
                }
                XCTAssertEqual(worstSlow, 0)
                // f16 query and accumulator against exact float attention.
                XCTAssertLessThanOrEqual(worstExact / scale, 1e-2, "vs exact, heads \(heads) dim \(headDim)")
            }
        }
    }
}
