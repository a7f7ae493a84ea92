// Sampling chain and stop strings, on hand-made logits (no model needed).
import Core
@testable import Engine
import XCTest

final class SamplerTests: XCTestCase {
    let logits: [Float] = [1.0, 3.0, 2.5, -1.0, 0.5, 2.9]

    func testGreedyIsArgmax() {
        var s = Sampler(.greedy)
        XCTAssertEqual(s.sample(logits, history: []), 1)
    }

    func testSameSeedSameSequenceOtherSeedDiffers() {
        var p = SamplingParameters()
        p.temperature = 1.5; p.topK = 0; p.topP = 1; p.minP = 0
        func draw(_ seed: UInt64) -> [Int32] {
            var q = p; q.seed = seed
            var s = Sampler(q)
            return (0..<200).map { _ in s.sample(logits, history: []) }
        }
        XCTAssertEqual(draw(7), draw(7))
        XCTAssertNotEqual(draw(7), draw(8))
        XCTAssertEqual(Set(draw(7)).count, 6, "temperature 1.5 with no cut-offs reaches every token")
    }

    func testTopKKeepsOnlyKBest() {
        var p = SamplingParameters()
        p.temperature = 5; p.topK = 2; p.topP = 1; p.minP = 0
        var s = Sampler(p)
        let seen = Set((0..<300).map { _ in s.sample(logits, history: []) })
        XCTAssertEqual(seen, [1, 5])
    }

    func testTopPCutsTheTail() {
        var p = SamplingParameters()
        p.temperature = 1; p.topK = 0; p.topP = 0.5; p.minP = 0
        var s = Sampler(p)
        // Probabilities: 3.0 → .33, 2.9 → .30: together ≥ 0.5, so only ids 1 and 5 remain.
        let seen = Set((0..<300).map { _ in s.sample(logits, history: []) })
        XCTAssertEqual(seen, [1, 5])
    }

    func testMinPDropsUnlikelyTokens() {
        var p = SamplingParameters()
        p.temperature = 1; p.topK = 0; p.topP = 1; p.minP = 0.5
        var s = Sampler(p)
        // Keeps tokens with p ≥ 0.5 · p(best): logits within ln 2 of 3.0 → ids 1, 2, 5.
        let seen = Set((0..<500).map { _ in s.sample(logits, history: []) })
        XCTAssertEqual(seen, [1, 2, 5])
    }

    func testRepetitionPenaltyChangesGreedyChoice() {
        var p = SamplingParameters.greedy
        p.repeatPenalty = 1.5
        var s = Sampler(p)
        XCTAssertEqual(s.sample(logits, history: [1]), 5, "3.0 / 1.5 = 2.0 < 2.9")
        p.repeatPenalty = 1; p.presencePenalty = 0.2
        s = Sampler(p)
        XCTAssertEqual(s.sample(logits, history: [1]), 5)
        p.presencePenalty = 0; p.frequencyPenalty = 0.3
        s = Sampler(p)
        XCTAssertEqual(s.sample(logits, history: [5, 5]), 1)
        XCTAssertEqual(s.sample(logits, history: [1]), 5)
    }

    func testPenaltiesOnlyLookAtTheLastN() {
        var p = SamplingParameters.greedy
        p.repeatPenalty = 2; p.penaltyLastN = 1
        var s = Sampler(p)
        XCTAssertEqual(s.sample(logits, history: [1, 4]), 1, "token 1 is outside the window")
    }

    func testTopCandidatesIsThePrefixOfTheFullOrder() {
        // The heap selection against a full sort by (logit desc, id asc), with many ties.
        var rng = SeededGenerator(seed: 11)
        for n in [1, 7, 100, 5000] {
            let logits = (0..<n).map { _ in (Float.random(in: -3...3, using: &rng) * 2).rounded() / 2 }
            let full = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            for k in [1, 2, 40, n - 1, n] where k >= 1 && k <= n {
                XCTAssertEqual(Sampler.topCandidates(logits, k: k), Array(full.prefix(k)), "n \(n), k \(k)")
            }
        }
    }

    func testTiedLogitsGoToTheLowerId() {
        var s = Sampler(.greedy)
        XCTAssertEqual(s.sample([1, 5, 2, 5], history: []), 1)
        var p = SamplingParameters()
        p.temperature = 1; p.topK = 1; p.topP = 1; p.minP = 0
        s = Sampler(p)
        XCTAssertEqual(s.sample([1, 5, 2, 5], history: []), 1, "top-1 of a tie keeps the lower id")
    }

    func testDeviceRequestDrawsLikeSample() {
        // The request carries the draw `sample` would take, so two samplers of one seed stay in step.
        var p = SamplingParameters()
        p.temperature = 0.9; p.repeatPenalty = 1.2
        var a = Sampler(p), b = Sampler(p)
        for _ in 0..<3 {
            _ = a.sample(logits, history: [1, 1, 2])
            let r = b.deviceRequest(history: [1, 1, 2], vocabulary: logits.count)
            XCTAssertNotNil(r)
            XCTAssertEqual(r?.penalties.map(\.0), [1, 2])
            XCTAssertEqual(r?.penalties.map(\.1), [2, 1])
            XCTAssertEqual(r?.topK, min(p.topK, logits.count))
        }
        XCTAssertEqual(a.sample(logits, history: []), b.sample(logits, history: []), "generators still in step")
        p.topK = 0
        var c = Sampler(p)
        XCTAssertNil(c.deviceRequest(history: [], vocabulary: 5000), "top-k off is beyond the GPU sampler")
        XCTAssertNotNil(c.deviceRequest(history: [], vocabulary: 500), "… unless the whole vocabulary fits its limit")
        p.temperature = 0
        c = Sampler(p)
        XCTAssertEqual(c.deviceRequest(history: [], vocabulary: 5000)?.temperature, 0, "greedy always fits")
    }

    // MARK: - Stop strings

    func testStopStringCutsOutputAndHoldsPartialMatches() {
        var f = StopStringFilter(["</s>", "User:"])
        var out = ""
        var stopped = false
        for piece in ["Hello", " wor", "ld</", "s> more"] {
            let (text, hit) = f.feed(piece)
            out += text
            if hit { stopped = true; break }
        }
        XCTAssertTrue(stopped)
        XCTAssertEqual(out, "Hello world")
    }

    func testHeldTextIsReleasedWhenItIsNotAStop() {
        var f = StopStringFilter(["User:"])
        let (a, hitA) = f.feed("Hi Us")
        XCTAssertEqual(a, "Hi "); XCTAssertFalse(hitA)
        let (b, hitB) = f.feed("e the tool")
        XCTAssertEqual(b, "Use the tool"); XCTAssertFalse(hitB)
        XCTAssertEqual(f.finish(" Use"), " Use")
    }

    func testNoStopStringsPassThrough() {
        var f = StopStringFilter([])
        XCTAssertEqual(f.feed("abc").0, "abc")
        XCTAssertEqual(f.finish("d"), "d")
    }
}
