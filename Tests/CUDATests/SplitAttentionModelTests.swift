// A model, in Swift, of split-K attention (`numerics: fast`; KernelSource `attn_split_<D>`),
// its splits cut from the query's position: split s of S takes the
// visible keys [lo + s·len, lo + (s + 1)·len) with len = ⌈(p + 1 − lo) / S⌉; warp w of the
// split's block the keys begin + w + 4i, four at a time (k0, k0 + 4, k0 + 8, k0 + 12) with one
// maximum per group; the block merges its warps and `attn_combine` the splits. Checked on the
// machine without a GPU: every visible key is taken exactly once for any position, window and
// split count (also when splits outnumber the keys), and the merged result equals softmax · v
// in double. A planted bug (len from ⌊ ⌋ instead of ⌈ ⌉, which drops the last keys) must be
// caught. The kernel itself is checked against the exact reference by `swiftkt ops-check`.
import Core
import Foundation
import XCTest

final class SplitAttentionModelTests: XCTestCase {
    /// The keys (k) each (split, warp) takes, in the kernel's order, for the query at position p.
    private func partition(p: Int, window: Int, splits: Int, roundUp: Bool = true) -> [[[Int]]] {
        let lo = window > 0 ? max(0, p - window + 1) : 0, n = p + 1 - lo
        let len = roundUp ? (n + splits - 1) / splits : max(n / splits, 1)
        return (0..<splits).map { s in
            let begin = lo + s * len, end = min(p + 1, begin + len)
            return (0..<4).map { w in
                var keys: [Int] = []
                var k0 = begin + w
                while k0 < end {
                    for u in 0..<4 where k0 + 4 * u < end { keys.append(k0 + 4 * u) }
                    k0 += 16
                }
                return keys
            }
        }
    }

    /// One warp's (m, l, acc) over its keys, groups of four as the kernel.
    private func warp(_ keys: [Int], _ scores: [Float], _ values: [Float]) -> (m: Float, l: Float, acc: Float) {
        var m = -Float.infinity, l: Float = 0, acc: Float = 0
        var i = 0
        while i < keys.count {
            let group = Array(keys[i..<min(i + 4, keys.count)])
            let mn = max(m, group.map { scores[$0] }.max()!)
            let corr = expf(m - mn)
            l *= corr; acc *= corr
            for k in group {
                let pr = expf(scores[k] - mn)
                l += pr; acc = fmaf(pr, values[k], acc)
            }
            m = mn
            i += 4
        }
        return (m, l, acc)
    }

    /// Partials merged as `attn_split_store` (warps) and `attn_combine` (splits) do, in one
    /// level (the same sums up to rounding): acc / sum.
    private func merged(_ parts: [(m: Float, l: Float, acc: Float)]) -> Double {
        let mx = parts.map(\.m).max()!
        var l: Float = 0, acc: Float = 0
        for part in parts where part.m != -Float.infinity {
            let f = expf(part.m - mx)
            l += part.l * f; acc += part.acc * f
        }
        return Double(acc / l)
    }

    func testEveryVisibleKeyOnceAndExactResult() {
        var rng = SeededGenerator(seed: 29)
        for p in [0, 1, 3, 15, 16, 17, 63, 64, 100, 257, 1_023, 2_500] {
            for window in [0, 1, 16, 100] {
                for splits in [1, 2, 7, 8, 9, 64] {
                    let lo = window > 0 ? max(0, p - window + 1) : 0
                    let taken = partition(p: p, window: window, splits: splits).flatMap { $0.flatMap { $0 } }
                    XCTAssertEqual(taken.sorted(), Array(lo...p), "p \(p), window \(window), \(splits) splits")
                    let scores = (0...p).map { _ in Float.random(in: -20...20, using: &rng) }
                    let values = (0...p).map { _ in Float(Float16(Float.random(in: -2...2, using: &rng))) }
                    let warps = partition(p: p, window: window, splits: splits).flatMap { $0.map { warp($0, scores, values) } }
                    let got = merged(warps)
                    let mx = Double(scores[lo...p].max()!)
                    let e = (lo...p).map { exp(Double(scores[$0]) - mx) }
                    let want = zip(e, lo...p).map { $0 * Double(values[$1]) }.reduce(0, +) / e.reduce(0, +)
                    XCTAssertLessThan(abs(got - want) / max(1, abs(want)), 1e-5, "p \(p), window \(window), \(splits) splits")
                }
            }
        }
    }

    func testPlantedBugIsCaught() {
        // ⌊ ⌋ leaves the last (p + 1) mod S keys to no split.
        let taken = partition(p: 99, window: 0, splits: 8, roundUp: false).flatMap { $0.flatMap { $0 } }
        XCTAssertNotEqual(taken.sorted(), Array(0...99))
    }
}
