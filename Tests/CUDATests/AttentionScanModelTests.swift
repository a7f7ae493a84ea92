// A model, in Swift, of the short attention kernel's two forms (KernelSource+Decode
// `attn_short_impl`): the walk, which finds each key's softmax factors as it goes, and the factor
// scan (`SWIFTKT_CUDA_ATTN_SCAN=1`), which takes them from a warp's inclusive scan of the chunk's
// scores first. The kernel claims they give the same bits; this checks the claim on the machine
// without a GPU, on scores with ties, signed zeros, NaN and infinities, over chunks of 32 keys
// with a short last one; and the phased form (`attn_phased_*`: pieces scanned apart, then joined).
// Both sides use the same expf, so what is tested is the algorithm.
import Foundation
import XCTest

final class AttentionScanModelTests: XCTestCase {
    private func f16(_ x: Float) -> Float { Float(Float16(x)) }

    /// The walk: per key, a new maximum rescales acc (rounded to f16), else the key's weight.
    private func walk(_ scores: [Float], _ values: [Float]) -> (acc: Float, sum: Float) {
        var m = -Float.infinity, sum: Float = 0, acc: Float = 0
        for (s, v) in zip(scores, values) {
            var ms: Float = 1, w: Float = 1
            if s > m { ms = expf(m - s); m = s; acc = f16(acc * ms) } else { w = expf(s - m) }
            acc = f16(fmaf(v, w, acc))
            sum = fmaf(sum, ms, w)
        }
        return (acc, sum)
    }

    /// The scan form: per chunk of 32, lane k's score, the kernel's shfl_up scan (take the
    /// earlier unless the later is greater), the maximum before each key, the factors; then the
    /// walk with only the multiply-adds (the rescale skipped when ms is 1).
    /// `inclusive` plants a bug (each key's own score in "the maximum before it").
    private func scanned(_ scores: [Float], _ values: [Float], inclusive: Bool = false) -> (acc: Float, sum: Float) {
        var m = -Float.infinity, sum: Float = 0, acc: Float = 0
        var k0 = 0
        while k0 < scores.count {
            let n = min(32, scores.count - k0)
            let s = (0..<32).map { $0 < n ? scores[k0 + $0] : -Float.infinity }
            var x = s.map { $0 > -Float.infinity ? $0 : -Float.infinity }
            var o = 1
            while o < 32 {
                let before = x
                for lane in 0..<32 where lane >= o {
                    let y = before[lane - o]
                    if !(before[lane] > y) { x[lane] = y }
                }
                o <<= 1
            }
            var ms = [Float](repeating: 1, count: 32), w = [Float](repeating: 1, count: 32)
            for lane in 0..<32 {
                var before = inclusive ? x[lane] : lane == 0 ? x[0] : x[lane - 1]
                before = (lane == 0 && !inclusive) || !(before > m) ? m : before
                let up = s[lane] > before
                ms[lane] = up ? expf(before - s[lane]) : 1
                w[lane] = up ? 1 : expf(s[lane] - before)
            }
            if x[31] > m { m = x[31] }
            for u in 0..<n {
                if ms[u] != 1 { acc = f16(acc * ms[u]) }
                acc = f16(fmaf(values[k0 + u], w[u], acc))
                sum = fmaf(sum, ms[u], w[u])
            }
            k0 += n
        }
        return (acc, sum)
    }

    /// The kernel's warp scan of 32 lanes (shfl_up by 1, 2, 4, 8, 16; take the earlier unless
    /// the later is greater).
    private func laneScan(_ v: [Float]) -> [Float] {
        var x = v, o = 1
        while o < 32 {
            let before = x
            for lane in o..<32 where !(before[lane] > before[lane - o]) { x[lane] = before[lane - o] }
            o <<= 1
        }
        return x
    }

    /// The phased form (`attn_phased_*`): per super-chunk of `sc` keys, every 32-key piece scanned
    /// apart (B1), then each piece's carry from the maximum so far and the earlier pieces' maxima
    /// scanned across lanes (B2), each key's maximum before it and its factors; then the walk.
    private func phased(_ scores: [Float], _ values: [Float], sc: Int) -> (acc: Float, sum: Float) {
        var mrun = -Float.infinity, sum: Float = 0, acc: Float = 0
        var k0 = 0
        while k0 < scores.count {
            let n = min(sc, scores.count - k0), npc = (n + 31) / 32
            let s = (0..<(npc * 32)).map { $0 < n ? scores[k0 + $0] : -Float.infinity }
            var prefix: [[Float]] = [], pm: [Float] = []
            for pc in 0..<npc {
                let x = laneScan((0..<32).map { s[pc * 32 + $0] > -Float.infinity ? s[pc * 32 + $0] : -Float.infinity })
                prefix.append(x); pm.append(x[31])
            }
            var ms = [Float](repeating: 1, count: npc * 32), w = ms, next = mrun
            for pc in 0..<npc {
                let c = laneScan((0..<32).map { $0 < pc ? pm[$0] : -Float.infinity })
                let pre = c[max(pc - 1, 0)]
                let carry = pc > 0 && pre > mrun ? pre : mrun
                for lane in 0..<32 {
                    var before = lane == 0 ? prefix[pc][0] : prefix[pc][lane - 1]
                    before = lane == 0 || !(before > carry) ? carry : before
                    let k = pc * 32 + lane, up = s[k] > before
                    ms[k] = up ? expf(before - s[k]) : 1
                    w[k] = up ? 1 : expf(s[k] - before)
                }
                if pc == npc - 1 { next = prefix[pc][31] > carry ? prefix[pc][31] : carry }
            }
            mrun = next
            for u in 0..<n {
                if ms[u] != 1 { acc = f16(acc * ms[u]) }
                acc = f16(fmaf(values[k0 + u], w[u], acc))
                sum = fmaf(sum, ms[u], w[u])
            }
            k0 += n
        }
        return (acc, sum)
    }

    func testScanGivesTheWalksBits() {
        var seed: UInt64 = 0x5EED
        func next() -> UInt64 { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return seed >> 11 }
        let specials: [Float] = [0, -0.0, .nan, -.infinity, .infinity, 3, 3, -2, 40, 40]
        var mismatches = 0
        for trial in 0..<3000 {
            let count = 1 + Int(next() % 300)
            var scores: [Float] = [], values: [Float] = []
            for _ in 0..<count {
                let r = next() % 100
                // Mostly ordinary scores; ties, signed zeros, NaN and infinities now and then
                // (infinities and NaN only in some trials, as they poison the sums).
                if r < 8 { scores.append(specials[Int(next() % 5) + 5]) }
                else if r < 10 && trial % 3 == 0 { scores.append(specials[Int(next() % 5)]) }
                else { scores.append(Float(Int64(next() % 2000) - 1000) / 97) }
                values.append(f16(Float(Int64(next() % 2000) - 1000) / 311))
            }
            let a = walk(scores, values)
            // The scan chunk by chunk; the phased form with super-chunks of 64 and 128 keys (the
            // kernel's are 128 to 1 024: several super-chunks and pieces per super-chunk here).
            for (form, b) in [("scan", scanned(scores, values)), ("phased 64", phased(scores, values, sc: 64)),
                              ("phased 128", phased(scores, values, sc: 128))]
            where a.acc.bitPattern != b.acc.bitPattern || a.sum.bitPattern != b.sum.bitPattern {
                mismatches += 1
                if mismatches < 4 { XCTFail("trial \(trial): walk \(a), \(form) \(b), \(count) keys") }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    /// The comparison can fail: a scan that counts each key's own score in the maximum before
    /// it gives other bits.
    func testAPlantedScanBugDiffers() {
        let scores: [Float] = [1, 2, 0.5, 7, 3], values: [Float] = [1, 0.5, 0.25, 2, 1].map(f16)
        let a = walk(scores, values), b = scanned(scores, values, inclusive: true)
        XCTAssertNotEqual(a.acc.bitPattern, b.acc.bitPattern)
        XCTAssertEqual(walk(scores, values).acc.bitPattern, scanned(scores, values).acc.bitPattern)
    }

    /// A phased form that drops the carry of the maximum between super-chunks differs.
    func testAPhasedCarryBugDiffers() {
        let scores: [Float] = (0..<100).map { $0 == 3 ? 50 : Float($0 % 7) }, values: [Float] = (0..<100).map { f16(Float($0 % 5) / 4) }
        let a = walk(scores, values)
        XCTAssertEqual(a.acc.bitPattern, phased(scores, values, sc: 64).acc.bitPattern)
        // Each super-chunk on its own (a carry of -inf): the second one's keys are weighed against their own maximum.
        let first = phased(Array(scores[..<64]), Array(values[..<64]), sc: 64)
        let second = phased(Array(scores[64...]), Array(values[64...]), sc: 64)
        XCTAssertNotEqual(a.sum.bitPattern, (first.sum + second.sum).bitPattern)
    }
}
