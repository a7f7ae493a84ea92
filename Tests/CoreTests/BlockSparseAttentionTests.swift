// Block-sparse attention: which keys a query reads (the windows always, the blocks whose anchors
// score highest between them), the output against exact attention over those keys on every ISA,
// the dense kernel's bits whenever nothing is skipped, and anchors that follow rewritten rows.
import Core
@testable import CPUKernels
import XCTest

final class BlockSparseAttentionTests: XCTestCase {
    struct Cache {
        var k: [UInt16], v: [UInt16]
        init(rows: Int, width: Int, rng: inout SeededGenerator) {
            k = (0..<(rows * width)).map { _ in floatToHalf(rng.nextNormal()) }
            v = (0..<(rows * width)).map { _ in floatToHalf(rng.nextNormal()) }
        }
    }

    func anchors(_ cache: Cache, kvHeads: Int, headDim: Int, blockSize: Int, through last: Int) -> BlockAnchors {
        let a = BlockAnchors(kvHeads: kvHeads, headDim: headDim, blockSize: blockSize)
        cache.k.withUnsafeBufferPointer { a.extend(k: $0.baseAddress!, through: last) }
        return a
    }

    func testRangesKeepTheWindowsAndFindAPlantedBlock() {
        var rng = SeededGenerator(seed: 3)
        let headDim = 32, rows = 2000
        var cache = Cache(rows: rows, width: headDim, rng: &rng)
        let q = (0..<headDim).map { _ in rng.nextNormal() }
        // Block 20 (rows 1280…1343) holds keys along q: the highest quest score.
        for r in 1280..<1344 { for d in 0..<headDim { cache.k[r * headDim + d] = floatToHalf(4 * q[d]) } }
        let config = BlockSparseConfig(blockSize: 64, initTokens: 16, localTokens: 100, selectBlocks: 3)
        let a = anchors(cache, kvHeads: 1, headDim: headDim, blockSize: 64, through: rows - 1)
        let r = q.withUnsafeBufferPointer {
            BlockSparseAttention.ranges(position: rows - 1, kvHead: 0, queries: $0.baseAddress!, group: 1, anchors: a, config: config)
        }
        // Ascending, disjoint, within 0…position.
        XCTAssertEqual(r.count % 2, 0)
        for i in Swift.stride(from: 0, to: r.count, by: 2) {
            XCTAssertLessThanOrEqual(r[i], r[i + 1])
            if i > 0 { XCTAssertGreaterThan(r[i], r[i - 1] + 1, "\(r)") }
        }
        XCTAssertEqual(r.first, 0)
        XCTAssertEqual(r.last, rows - 1)
        XCTAssertTrue(Swift.stride(from: 0, to: r.count, by: 2).contains { r[$0] <= 1280 && r[$0 + 1] >= 1343 }, "planted block: \(r)")
        var keys = 0
        for i in Swift.stride(from: 0, to: r.count, by: 2) { keys += r[i + 1] - r[i] + 1 }
        // The first block overlaps the initial window (rows 16…63 count); at most 3 blocks between.
        XCTAssertLessThanOrEqual(keys, 16 + 100 + 3 * 64)
        XCTAssertGreaterThan(keys, 16 + 100 + 2 * 64 - 48)

        // A short context, or one whose middle has no more blocks than are chosen: everything.
        for position in [10, 200, 250] {
            let all = q.withUnsafeBufferPointer {
                BlockSparseAttention.ranges(position: position, kvHead: 0, queries: $0.baseAddress!, group: 1, anchors: a, config: config)
            }
            XCTAssertEqual(all, [0, position], "position \(position)")
        }
    }

    /// Sparse output = exact softmax attention over the chosen keys (within f16 numerics), the
    /// same bits on every ISA, and the dense kernel's bits where all keys are chosen.
    func testSparseAttentionIsAttentionOverTheChosenKeys() {
        var rng = SeededGenerator(seed: 8)
        for (heads, kvHeads, headDim, tokens, position) in [(4, 2, 64, 1, 1500), (9, 3, 64, 3, 1200), (2, 1, 128, 1, 900)] {
            let width = kvHeads * headDim, rows = position + tokens
            let cache = Cache(rows: rows, width: width, rng: &rng)
            let q = (0..<(tokens * heads * headDim)).map { _ in 2 * rng.nextNormal() }
            let positions = (0..<tokens).map { Int32(position + $0) }
            let config = BlockSparseConfig(blockSize: 32, initTokens: 8, localTokens: 64, selectBlocks: 4)
            let pool = ThreadPool(threads: 2)
            var outs: [[Float]] = []
            for isa in KernelISA.available {
                var out = [Float](repeating: .nan, count: q.count)
                // A fresh cache address each time would start fresh anchors; the same one reuses them.
                BlockSparseAttention.run(q: q, k: cache.k, v: cache.v, out: &out, tokens: tokens, heads: heads, kvHeads: kvHeads,
                                         headDim: headDim, positions: positions, window: nil, scale: 0.125, config: config,
                                         pool: pool, isa: isa)
                outs.append(out)
            }
            for (i, o) in outs.enumerated() { XCTAssertEqual(o.map(\.bitPattern), outs[0].map(\.bitPattern), "ISA \(KernelISA.available[i])") }
            // Exact attention over each (token, head)'s chosen rows.
            let a = anchors(cache, kvHeads: kvHeads, headDim: headDim, blockSize: 32, through: rows - 1)
            let group = heads / kvHeads
            var worst: Float = 0, scale: Float = 0
            for t in 0..<tokens {
                for h in 0..<heads {
                    let kvh = h / group
                    let r = q.withUnsafeBufferPointer {
                        BlockSparseAttention.ranges(position: position + t, kvHead: kvh, queries: $0.baseAddress! + (t * heads + kvh * group) * headDim,
                                                    group: group, anchors: a, config: config)
                    }
                    XCTAssertLessThan(r.count, 2 * (4 + 2) + 1, "sparse: \(r)")
                    var rowsChosen: [Int] = []
                    for i in Swift.stride(from: 0, to: r.count, by: 2) { rowsChosen += Array(r[i]...r[i + 1]) }
                    let qh = (0..<headDim).map { Double(q[(t * heads + h) * headDim + $0]) }
                    var scores: [Double] = []
                    for p in rowsChosen {
                        var s = 0.0
                        for d in 0..<headDim { s += qh[d] * Double(halfToFloat(cache.k[p * width + kvh * headDim + d])) }
                        scores.append(s * 0.125)
                    }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }, sum = e.reduce(0, +)
                    for d in 0..<headDim {
                        var acc = 0.0
                        for (p, w) in zip(rowsChosen, e) { acc += w * Double(halfToFloat(cache.v[p * width + kvh * headDim + d])) }
                        let exact = acc / sum
                        let got = outs[0][(t * heads + h) * headDim + d]
                        worst = max(worst, abs(got - Float(exact)))
                        scale = max(scale, abs(Float(exact)))
                    }
                }
            }
            XCTAssertLessThan(worst, 0.01 * scale, "heads \(heads) tokens \(tokens)")

            // Every block chosen: the dense kernel's bits.
            var dense = [Float](repeating: .nan, count: q.count), all = dense
            Attention.flashF16(q: q, k: cache.k, v: cache.v, out: &dense, tokens: tokens, heads: heads, kvHeads: kvHeads,
                               headDim: headDim, positions: positions, window: nil, scale: 0.125, pool: pool)
            var everything = config
            everything.selectBlocks = rows / 32 + 1
            BlockSparseAttention.run(q: q, k: cache.k, v: cache.v, out: &all, tokens: tokens, heads: heads, kvHeads: kvHeads,
                                     headDim: headDim, positions: positions, window: nil, scale: 0.125, config: everything, pool: pool)
            XCTAssertEqual(all.map(\.bitPattern), dense.map(\.bitPattern), "all blocks = dense, heads \(heads) tokens \(tokens)")
        }
    }

    /// Anchors follow the cache: rows rewritten from p (a rewound session) are re-read.
    func testAnchorsFollowRewrittenRows() {
        var rng = SeededGenerator(seed: 21)
        let headDim = 16, blockSize = 8
        var cache = Cache(rows: 100, width: headDim, rng: &rng)
        let a = anchors(cache, kvHeads: 1, headDim: headDim, blockSize: blockSize, through: 79)
        XCTAssertEqual(a.rows, 80)
        // Rows 37… rewritten: anchors drop to block 4's start and are rebuilt from the new rows.
        for i in (37 * headDim)..<(100 * headDim) { cache.k[i] = floatToHalf(rng.nextNormal() * 3) }
        a.invalidate(from: 37)
        XCTAssertEqual(a.rows, 32)
        cache.k.withUnsafeBufferPointer { a.extend(k: $0.baseAddress!, through: 90) }
        let fresh = anchors(cache, kvHeads: 1, headDim: headDim, blockSize: blockSize, through: 90)
        XCTAssertEqual(a.minimum[0..<(12 * headDim)], fresh.minimum[0..<(12 * headDim)])
        XCTAssertEqual(a.maximum[0..<(12 * headDim)], fresh.maximum[0..<(12 * headDim)])
        XCTAssertEqual(a.sum[0..<(12 * headDim)], fresh.sum[0..<(12 * headDim)])
    }
}
