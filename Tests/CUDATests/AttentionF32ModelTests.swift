// A model, in Swift, of the short attention kernel's f32 form (KernelSource+Decode
// `attn_short_impl` with MODE 2, `attn_short_f32_<D>`, `numerics: fast`): per chunk of 32 keys
// the head's maximum over the chunk's lanes, each key's factor exp(s − m) (0 past the chunk's
// last key) and their sum, the rescaling of what came before exp(m_before − m) (0 on the first
// chunk, whose m_before is −∞), then per output element its products in four chains added to
// the rescaled accumulator. Checked on the machine without a GPU against softmax(s) · v in
// double, over 1 – 1 100 keys (short last chunks) and score ranges wide enough that an
// unscaled exp would overflow; a planted bug (the rescaling left out) must be caught. The
// kernel itself is checked against the exact reference by `swiftkt ops-check` on a GPU.
import Core
import Foundation
import XCTest

final class AttentionF32ModelTests: XCTestCase {
    /// The kernel's recurrence for one head and one output element: (acc, sum); the output is
    /// acc / sum. `rescale: false` plants a bug.
    private func chunked(_ scores: [Float], _ values: [Float], rescale: Bool = true) -> (acc: Float, sum: Float) {
        var m = -Float.infinity, acc: Float = 0, sum: Float = 0
        var k0 = 0
        while k0 < scores.count {
            let n = min(32, scores.count - k0)
            let s = (0..<32).map { $0 < n ? scores[k0 + $0] : -Float.infinity }
            let cm = s.max()!
            let mn = max(m, cm)
            let w = (0..<32).map { $0 < n ? expf(s[$0] - mn) : 0 }
            let ws = w.reduce(0, +)
            let r: Float = m == -Float.infinity ? 0 : (rescale ? expf(m - mn) : 1)
            m = mn
            var c: [Float] = [0, 0, 0, 0]
            var k = 0
            while k + 4 <= n {
                for j in 0..<4 { c[j] = fmaf(w[k + j], values[k0 + k + j], c[j]) }
                k += 4
            }
            while k < n { c[0] = fmaf(w[k], values[k0 + k], c[0]); k += 1 }
            acc = fmaf(acc, r, (c[0] + c[1]) + (c[2] + c[3]))
            sum = fmaf(sum, r, ws)
            k0 += 32
        }
        return (acc, sum)
    }

    private func exact(_ scores: [Float], _ values: [Float]) -> Double {
        let mx = Double(scores.max()!)
        let e = scores.map { exp(Double($0) - mx) }
        return zip(e, values).map { $0 * Double($1) }.reduce(0, +) / e.reduce(0, +)
    }

    func testChunkedOnlineSoftmaxMatchesExact() {
        var rng = SeededGenerator(seed: 17)
        for count in [1, 2, 5, 31, 32, 33, 63, 64, 65, 100, 257, 1_100] {
            for spread in [Float(1), 30, 200] {
                // Scores rising over the keys too, so that later chunks raise the maximum.
                let scores = (0..<count).map { Float.random(in: -spread...spread, using: &rng) + Float($0) * spread / 64 }
                let values = (0..<count).map { _ in Float(Float16(Float.random(in: -2...2, using: &rng))) }
                let (acc, sum) = chunked(scores, values)
                let got = Double(acc / sum), want = exact(scores, values)
                let err = abs(got - want) / max(1, abs(want))
                XCTAssertLessThan(err, 1e-5, "\(count) keys, spread \(spread): \(got) against \(want)")
            }
        }
    }

    func testPlantedBugIsCaught() {
        // Without the rescaling, a later chunk with a higher maximum mixes differently scaled terms.
        let scores = (0..<96).map { Float($0) / 4 }, values = (0..<96).map { Float($0 % 7) - 3 }
        let (acc, sum) = chunked(scores, values, rescale: false)
        XCTAssertGreaterThan(abs(Double(acc / sum) - exact(scores, values)), 1e-3)
    }
}
