// Sampler: turns a logits row into the next token id, as llama.cpp's default chain does:
// penalties (repetition, presence, frequency over the last `penaltyLastN` tokens) → top-k →
// top-p → min-p → temperature → draw from the softmax with a seeded generator.
// `temperature <= 0` is greedy (argmax after penalties). Same seed, same output. Candidates are
// ordered by logit, then by token id (ties go to the lower id), and top-k is a partial selection
// (a k-entry heap), not a sort of the whole vocabulary. On a CUDA backend the same chain runs on
// the GPU (`deviceRequest` carries the parameters, the penalties and this sampler's draw).
import Core
import CUDA
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

    /// Whether any penalty reads the history.
    public var hasPenalties: Bool { repeatPenalty != 1 || presencePenalty != 0 || frequencyPenalty != 0 }
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

        // Candidates sorted by logit (then id), cut by top-k.
        var ids = Sampler.topCandidates(logits, k: p.topK > 0 ? min(p.topK, logits.count) : logits.count)
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

    /// The same choice made on the GPU: the parameters, the penalized tokens and this step's
    /// draw (taken from the generator exactly when `sample` would take it); nil where the GPU
    /// sampler does not take the parameters (temperature > 0 with top-k off or above its limit).
    public mutating func deviceRequest(history: [Int32], vocabulary: Int) -> GPUSampling? {
        let p = parameters
        if p.temperature > 0 {
            let k = p.topK > 0 ? min(p.topK, vocabulary) : vocabulary
            guard k <= GPUSampling.maxTopK else { return nil }
        }
        var request = GPUSampling()
        request.temperature = p.temperature
        request.topK = p.topK > 0 ? min(p.topK, vocabulary) : vocabulary
        request.topP = p.topP; request.minP = p.minP
        request.repeatPenalty = p.repeatPenalty; request.frequencyPenalty = p.frequencyPenalty
        request.presencePenalty = p.presencePenalty
        request.penalties = penaltyCounts(history: history, vocabulary: vocabulary).map { (Int32($0.key), Int32($0.value)) }
            .sorted { $0.0 < $1.0 }
        request.draw = p.temperature > 0 ? Float(rng.nextUnit()) : 0
        return request
    }

    /// Tokens of the penalty window and how often each occurs (none when penalties are off).
    private func penaltyCounts(history: [Int32], vocabulary: Int) -> [Int32: Int] {
        let p = parameters
        guard p.hasPenalties else { return [:] }
        let window = p.penaltyLastN < 0 ? history[...] : history.suffix(p.penaltyLastN)
        var counts: [Int32: Int] = [:]
        for t in window where t >= 0 && Int(t) < vocabulary { counts[t, default: 0] += 1 }
        return counts
    }

    private func applyPenalties(_ logits: inout [Float], history: [Int32]) {
        let p = parameters
        for (t, c) in penaltyCounts(history: history, vocabulary: logits.count) {
            var l = logits[Int(t)]
            if p.repeatPenalty != 1 { l = l > 0 ? l / p.repeatPenalty : l * p.repeatPenalty }
            l -= Float(c) * p.frequencyPenalty + p.presencePenalty
            logits[Int(t)] = l
        }
    }

    /// The `k` best token ids by logit, ties to the lower id, in that order: a heap of the k best
    /// so far over one pass (O(n log k)), then a sort of those k.
    static func topCandidates(_ logits: [Float], k: Int) -> [Int] {
        @inline(__always) func better(_ a: Int, _ b: Int) -> Bool {
            logits[a] > logits[b] || (logits[a] == logits[b] && a < b)
        }
        guard k < logits.count else { return Array(logits.indices).sorted(by: better) }
        guard k > 0 else { return [] }
        // Min-heap on "better": the root is the worst of the k kept.
        var heap: [Int] = []
        heap.reserveCapacity(k)
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var worst = i
                if l < heap.count, better(heap[worst], heap[l]) { worst = l }
                if r < heap.count, better(heap[worst], heap[r]) { worst = r }
                if worst == i { return }
                heap.swapAt(i, worst); i = worst
            }
        }
        for i in logits.indices {
            if heap.count < k {
                heap.append(i)
                var c = heap.count - 1
                while c > 0, better(heap[(c - 1) / 2], heap[c]) { heap.swapAt(c, (c - 1) / 2); c = (c - 1) / 2 }
            } else if better(i, heap[0]) {
                heap[0] = i
                siftDown(0)
            }
        }
        return heap.sorted(by: better)
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
