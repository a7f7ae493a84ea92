// A model, in Swift, of the short attention kernel's two forms (KernelSource+Decode
// `attn_short_impl`): the walk, which finds each key's softmax factors as it goes, and the factor
// scan (the default; `SWIFTKT_CUDA_ATTN_SCAN=0` walks), which takes them from a warp's inclusive
// scan of the chunk's scores first. The kernel claims they give the same bits; this checks the
// claim on the machine without a GPU, on scores with ties, signed zeros, NaN and infinities, over
// chunks of 32 keys with a short last one. Both sides use the same expf, so what is tested is the
// algorithm. Also the score phase's reduce-scatter against warp_sum's butterfly.
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
    /// earlier unless the later is greater), the maximum before each key, the factors and the
    /// ballot of keys that raise it; then the walk with only the multiply-adds (the rescale
    /// skipped when ms is 1), eight keys at a time with sum + w when the ballot has none of them.
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
            var ups: UInt32 = 0
            for lane in 0..<32 {
                var before = inclusive ? x[lane] : lane == 0 ? x[0] : x[lane - 1]
                before = (lane == 0 && !inclusive) || !(before > m) ? m : before
                let up = s[lane] > before
                ms[lane] = up ? expf(before - s[lane]) : 1
                w[lane] = up ? 1 : expf(s[lane] - before)
                if up { ups |= 1 << UInt32(lane) }
            }
            if x[31] > m { m = x[31] }
            var k8 = 0
            while k8 < n {
                if k8 + 8 <= n && (ups >> UInt32(k8)) & 0xff == 0 {
                    for u in k8..<(k8 + 8) {
                        acc = f16(fmaf(values[k0 + u], w[u], acc))
                        sum = sum + w[u]
                    }
                } else {
                    for u in k8..<min(k8 + 8, n) {
                        if ms[u] != 1 { acc = f16(acc * ms[u]) }
                        acc = f16(fmaf(values[k0 + u], w[u], acc))
                        sum = fmaf(sum, ms[u], w[u])
                    }
                }
                k8 += 8
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
            let count = 1 + Int(next() % 150)
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
            let a = walk(scores, values), b = scanned(scores, values)
            if a.acc.bitPattern != b.acc.bitPattern || a.sum.bitPattern != b.sum.bitPattern {
                mismatches += 1
                if mismatches < 4 { XCTFail("trial \(trial): walk \(a), scan \(b), \(count) keys") }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    /// The score phase's reduce-scatter (attn_short_impl) over 32 lanes holding KPW keys' partial
    /// sums each: at partner distance o, while a lane holds h ≥ 1 keys' sums it keeps half (the
    /// upper half when its bit o is set) and adds its partner's values of them, then plain xor
    /// steps. Returns each lane's final value. `keepWrongHalf` plants a bug.
    private func reduceScatter(_ parts: [[Float]], keepWrongHalf: Bool = false) -> [Float] {
        let kpw = parts[0].count
        var v = parts
        for lvl in 0..<5 {
            let o = 16 >> lvl, h = kpw >> (lvl + 1), before = v
            for lane in 0..<32 {
                let partner = lane ^ o
                if h >= 1 {
                    let hi = (lane & o != 0) != keepWrongHalf, partnerHi = (partner & o != 0) != keepWrongHalf
                    for i in 0..<h {
                        let keep = hi ? before[lane][i + h] : before[lane][i]
                        let received = partnerHi ? before[partner][i] : before[partner][i + h]
                        v[lane][i] = keep + received
                    }
                } else {
                    v[lane][0] = before[lane][0] + before[partner][0]
                }
            }
        }
        return v.map { $0[0] }
    }

    /// warp_sum's butterfly (16, 8, 4, 2, 1) per key: lane 0's sums (every lane's are the same bits).
    private func butterfly(_ parts: [[Float]]) -> [Float] {
        var b = parts
        for o in [16, 8, 4, 2, 1] {
            let before = b
            for lane in 0..<32 { for u in 0..<b[0].count { b[lane][u] = before[lane][u] + before[lane ^ o][u] } }
        }
        return b[0]
    }

    private func randomParts(kpw: Int, _ next: () -> UInt64) -> [[Float]] {
        (0..<32).map { _ in (0..<kpw).map { _ in Float(Int64(next() % 20_000) - 10_000) / 7 * Float(1 << Int(next() % 12)) } }
    }

    /// Every key's sum from the reduce-scatter is warp_sum's bit for bit, in the lanes the kernel
    /// stores it from (lane / (32 / KPW)), for the kernel's KPW of 4, 8, 16 and 32.
    func testReduceScatterGivesTheButterflysBits() {
        var seed: UInt64 = 0xB17
        func next() -> UInt64 { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return seed >> 11 }
        for kpw in [4, 8, 16, 32] {
            for _ in 0..<200 {
                let parts = randomParts(kpw: kpw, next)
                let want = butterfly(parts), got = reduceScatter(parts)
                for lane in 0..<32 {
                    let key = lane / (32 / kpw)
                    XCTAssertEqual(got[lane].bitPattern, want[key].bitPattern, "KPW \(kpw), lane \(lane), key \(key)")
                }
            }
        }
    }

    /// The comparison can fail: keeping the other half at each level sums other keys' values.
    func testAPlantedReduceScatterBugDiffers() {
        var seed: UInt64 = 0xBAD
        func next() -> UInt64 { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return seed >> 11 }
        for kpw in [4, 8, 16, 32] {
            let parts = randomParts(kpw: kpw, next)
            let want = butterfly(parts), got = reduceScatter(parts, keepWrongHalf: true)
            XCTAssertTrue((0..<32).contains { got[$0].bitPattern != want[$0 / (32 / kpw)].bitPattern }, "KPW \(kpw)")
        }
    }

    /// The comparison can fail: a scan that counts each key's own score in the maximum before
    /// it gives other bits.
    func testAPlantedScanBugDiffers() {
        let scores: [Float] = [1, 2, 0.5, 7, 3], values: [Float] = [1, 0.5, 0.25, 2, 1].map(f16)
        let a = walk(scores, values), b = scanned(scores, values, inclusive: true)
        XCTAssertNotEqual(a.acc.bitPattern, b.acc.bitPattern)
        XCTAssertEqual(walk(scores, values).acc.bitPattern, scanned(scores, values).acc.bitPattern)
    }
}
