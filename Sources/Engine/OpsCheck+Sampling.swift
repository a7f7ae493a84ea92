// ops-check's sampling cases: the GPU sampler (CUDA/GPUSampler.swift) against Engine's host
// Sampler on the same logits, history and draws.
import Core
import CUDA
import Foundation

extension OpsCheck {
    /// Each case draws with two samplers of one seed, one on the host and one through
    /// `deviceRequest` on the GPU, and counts the picks that differ (the error; bound 0).
    static func samplingChecks(gpu: GPU, rng: inout SeededGenerator, record: (String, String, Double, Double) -> Void) throws {
        struct Case { let name: String; let temperature: Float; let topK: Int; let topP: Float; let minP: Float; let penalties: Bool; let ties: Bool }
        let cases = [
            Case(name: "greedy + penalties", temperature: 0, topK: 40, topP: 0.95, minP: 0.05, penalties: true, ties: false),
            Case(name: "greedy, tied maxima", temperature: 0, topK: 40, topP: 1, minP: 0, penalties: false, ties: true),
            Case(name: "defaults (T 0.8, k 40, p 0.95, min-p 0.05)", temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, penalties: false, ties: false),
            Case(name: "T 1.5, k 1024", temperature: 1.5, topK: 1024, topP: 1, minP: 0, penalties: false, ties: false),
            Case(name: "T 1, k 300, p 0.9, tied logits", temperature: 1, topK: 300, topP: 0.9, minP: 0, penalties: false, ties: true),
            Case(name: "T 0.7, k 1 + penalties", temperature: 0.7, topK: 1, topP: 1, minP: 0, penalties: true, ties: false),
            Case(name: "T 2, k 64, min-p 0.2 + penalties", temperature: 2, topK: 64, topP: 1, minP: 0.2, penalties: true, ties: true),
        ]
        for n in [1000, 49_152, 128_256, 262_144] {
            let sampler = try GPUSampler(gpu: gpu, vocabulary: n)
            let dl = try gpu.allocator.allocate(n * 4)
            for c in cases {
                var p = SamplingParameters()
                p.temperature = c.temperature; p.topK = c.topK; p.topP = c.topP; p.minP = c.minP
                if c.penalties { p.repeatPenalty = 1.3; p.presencePenalty = 0.2; p.frequencyPenalty = 0.1 }
                p.seed = rng.next()
                var host = Sampler(p), device = Sampler(p)
                var differ = 0, draws = 0
                for _ in 0..<8 {
                    // Logits spread like a model's (a few large, a long tail); ties: quarter steps.
                    var logits = (0..<n).map { _ in Float.random(in: -4...4, using: &rng) + (Float.random(in: 0...1, using: &rng) < 0.01 ? 6 : 0) }
                    if c.ties { logits = logits.map { ($0 * 4).rounded() / 4 } }
                    let history = (0..<48).map { _ in Int32.random(in: 0..<Int32(min(n, 64)), using: &rng) }
                    try logits.withUnsafeBytes { try gpu.copy(toDevice: dl.pointer, from: $0.baseAddress!, bytes: $0.count) }
                    guard let request = device.deviceRequest(history: history, vocabulary: n) else {
                        record("sampling " + c.name, "vocab \(n)", 1, 0)  // every case is within the GPU sampler's limits
                        continue
                    }
                    let gpuPick = try sampler.sample(logits: dl.pointer, request)
                    let hostPick = host.sample(logits, history: history)
                    if gpuPick != hostPick { differ += 1 }
                    draws += 1
                }
                record("sampling " + c.name + " vs host", "vocab \(n), \(draws) draws", Double(differ), 0)
            }
        }
    }
}
