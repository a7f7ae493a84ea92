// Sampler: turns a logits row into the next token id, as llama.cpp's default chain does:
// penalties (repetition, presence, frequency over the last `penaltyLastN` tokens) → top-k →
// top-p → min-p → temperature → draw from the softmax with a seeded generator.
// `temperature <= 0` is greedy (argmax after penalties). Same seed, same output.
import Core
import Foundation

public struct SamplingParameters: Sendable, Equatable {
    public var temperature: Float = 0.8
    public var topK: Int = 40
    public var topP: Float = 0.95
    public var minP: Float = 0.05
    public var repeatPenalty: Float = 1.0
    public var presencePenalty: Float = 0
    public var frequencyPenalty: Float = 0
    /// How many recent tokens the penalties look at (llama.cpp's --repeat-last-n).
    public var penaltyLastN: Int = 64
    public var seed: UInt64 = 0xDEC0DE

    public init() {}

    public static var greedy: SamplingParameters { var p = SamplingParameters(); p.temperature = 0; return p }
}

public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var rng: SeededGenerator

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = SeededGenerator(seed: parameters.seed)
    }

    /// Picks the next token from `logits` given the tokens seen so far (prompt + generated).
    public mutating func sample(_ logits: [Float], history: [Int32]) -> Int32 {
        var logits = logits
        applyPenalties(&logits, history: history)
        let p = parameters
        if p.temperature <= 0 { return Int32(Sampler.argmax(logits)) }

        // Candidates sorted by logit, cut by top-k.
        var ids = Array(0..<logits.count)
        let k = p.topK > 0 ? min(p.topK, ids.count) : ids.count
        if k < ids.count {
            ids = Array(ids.sorted { logits[$0] > logits[$1] }.prefix(k))
        } else {
            ids.sort { logits[$0] > logits[$1] }
        }
        // Softmax over the candidates (before temperature, as llama.cpp's top-p/min-p see it).
        var probs = softmax(ids.map { logits[$0] })
        // top-p: the smallest prefix whose mass reaches topP.
        if p.topP < 1 {
            var mass: Float = 0, keep = probs.count
            for (i, q) in probs.enumerated() { mass += q; if mass >= p.topP { keep = i + 1; break } }
            ids = Array(ids.prefix(keep)); probs = Array(probs.prefix(keep))
        }
        // min-p: drop candidates below minP × the best probability.
        if p.minP > 0, let best = probs.first {
            let keep = max(1, probs.prefix { $0 >= p.minP * best }.count)
            ids = Array(ids.prefix(keep))
        }
        // Temperature, then draw.
        let scaled = softmax(ids.map { logits[$0] / p.temperature })
        let r = Float(rng.nextUnit())
        var acc: Float = 0
        for (i, q) in scaled.enumerated() {
            acc += q
            if r < acc { return Int32(ids[i]) }
        }
        return Int32(ids[ids.count - 1])
    }

    private func applyPenalties(_ logits: inout [Float], history: [Int32]) {
        let p = parameters
        guard p.repeatPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0 else { return }
        let window = p.penaltyLastN < 0 ? history : Array(history.suffix(p.penaltyLastN))
        var counts: [Int32: Int] = [:]
        for t in window { counts[t, default: 0] += 1 }
        for (t, c) in counts where t >= 0 && Int(t) < logits.count {
            var l = logits[Int(t)]
            if p.repeatPenalty != 1 { l = l > 0 ? l / p.repeatPenalty : l * p.repeatPenalty }
            l -= Float(c) * p.frequencyPenalty + p.presencePenalty
            logits[Int(t)] = l
        }
    }

    public static func argmax(_ x: [Float]) -> Int {
        var best = 0
        for i in 1..<x.count where x[i] > x[best] { best = i }
        return best
    }

    private func softmax(_ x: [Float]) -> [Float] {
        guard let m = x.max() else { return [] }
        let e = x.map { exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }
}
