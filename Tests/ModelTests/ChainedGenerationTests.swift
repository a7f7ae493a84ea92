// Session.generate with chained device steps (the steps of token n and of the token after it
// queued before the host handles token n, ChainedSamplingBackend) against the same generation one step at a time: the
// same tokens, text, stop reason, session tokens, the same sampler draws in the same order and
// the same token at every position the session keeps, under every way a generation stops. The
// backend is a scripted stand-in for the GPU (no device here): its "model" picks the next token
// from the last one and its position.
import CUDA
@testable import Engine
import Foundation
import Models
import XCTest

/// A device-sampling backend whose pick after token t at position p is `script(t, p)`.
final class ScriptedChainBackend: ChainedSamplingBackend {
    let capacity: Int
    let chains: Bool
    let vocab: Int
    let script: (Int32, Int) -> Int32
    /// Position → the token last run there; the draws of every pick, in order.
    private(set) var evaluated: [Int: Int32] = [:]
    private(set) var draws: [Float] = []
    private(set) var chainedSteps = 0
    private var pick: Int32?
    private var queue: [Int32] = []
    /// Attempts to chain (counted from 0) that fail as a device error would, changing nothing.
    var failing: Set<Int> = []
    private var attempts = 0

    init(capacity: Int, vocab: Int, chains: Bool, script: @escaping (Int32, Int) -> Int32) {
        self.capacity = capacity; self.vocab = vocab; self.chains = chains; self.script = script
    }

    private func run(_ tokens: [Int32], _ start: Int) -> Int32 {
        queue.removeAll()
        for (i, t) in tokens.enumerated() { evaluated[start + i] = t }
        return script(tokens.last!, start + tokens.count - 1)
    }

    func forward(tokens: [Int32], startPosition: Int, mode: LogitsMode) throws -> [Float] {
        let next = run(tokens, startPosition)
        pick = nil
        var logits = [Float](repeating: -10, count: vocab)
        logits[Int(next)] = 10
        return logits
    }

    func forwardSampling(tokens: [Int32], startPosition: Int, sampling: GPUSampling) throws -> Int32 {
        let next = run(tokens, startPosition)
        draws.append(sampling.draw)
        pick = next
        return next
    }

    var canChain: Bool { chains && pick != nil }

    func enqueueChained(position: Int, sampling: GPUSampling) throws {
        attempts += 1
        if failing.contains(attempts - 1) { throw EngineError.invalidOption("planted failure") }
        guard let t = pick, queue.count < 2, position < capacity else { throw EngineError.invalidOption("bad chained step") }
        evaluated[position] = t
        draws.append(sampling.draw)
        pick = script(t, position)
        queue.append(pick!)
        chainedSteps += 1
    }

    func takeChained() throws -> Int32 {
        guard !queue.isEmpty else { throw EngineError.invalidOption("nothing queued") }
        return queue.removeFirst()
    }
}

final class ChainedGenerationTests: XCTestCase {
    nonisolated(unsafe) static var modelPath: String?
    nonisolated(unsafe) static var model: LoadedModel?

    override class func tearDown() {
        if let p = modelPath { try? FileManager.default.removeItem(atPath: p) }
    }

    func loaded() throws -> LoadedModel {
        if let m = Self.model { return m }
        let path = try SyntheticTests.makeTiny("llama", type: .q4_0, seed: 3)
        Self.modelPath = path
        var options = LoadOptions()
        options.contextSize = 48
        let m = try LoadedModel(path: path, options: options)
        Self.model = m
        return m
    }

    struct Outcome: Equatable {
        var ids: [Int32] = []
        var text = ""
        var reason: StopReason = .maxTokens
        var sessionTokens: [Int32] = []
        var draws: [Float] = []
        var kept: [Int32] = []
    }

    /// One generation with the scripted backend, chained or not.
    func generate(chains: Bool, prompt: [Int32] = [1, 5, 9], parameters: GenerationParameters,
                  stopAfter: Int? = nil, failing: Set<Int> = [], script: @escaping (Int32, Int) -> Int32) throws -> (Outcome, ScriptedChainBackend) {
        let model = try loaded()
        let session = model.makeSession()
        let backend = ScriptedChainBackend(capacity: model.contextSize, vocab: model.model.vocab, chains: chains, script: script)
        backend.failing = failing
        session.use(backend: backend)
        var out = Outcome()
        let stats = try session.generate(prompt: prompt, parameters: parameters) { event in
            if case let .token(id, text) = event {
                if id >= 0 { out.ids.append(id) }
                out.text += text
                if let stopAfter, out.ids.count >= stopAfter { return false }
            }
            return true
        }
        out.reason = stats.stopReason
        out.sessionTokens = session.tokens
        out.draws = backend.draws
        out.kept = (0..<session.tokens.count).map { backend.evaluated[$0] ?? -1 }
        return (out, backend)
    }

    /// A script that walks the ordinary vocabulary, away from special tokens.
    func walk(_ model: LoadedModel) -> (Int32, Int) -> Int32 {
        let v = Int32(model.model.vocab)
        return { t, p in 40 + (t &* 7 &+ Int32(p) &* 3) % (v - 60) }
    }

    func compare(_ parameters: GenerationParameters, prompt: [Int32] = [1, 5, 9], stopAfter: Int? = nil, failing: Set<Int> = [],
                 script: ((Int32, Int) -> Int32)? = nil, expectChained: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws -> Outcome {
        let s = try script ?? walk(loaded())
        let (plain, _) = try generate(chains: false, prompt: prompt, parameters: parameters, stopAfter: stopAfter, script: s)
        let (chained, backend) = try generate(chains: true, prompt: prompt, parameters: parameters, stopAfter: stopAfter, failing: failing,
                                              script: s)
        XCTAssertEqual(chained.ids, plain.ids, "tokens", file: file, line: line)
        XCTAssertEqual(chained.text, plain.text, "text", file: file, line: line)
        XCTAssertEqual(chained.reason, plain.reason, "stop reason", file: file, line: line)
        XCTAssertEqual(chained.sessionTokens, plain.sessionTokens, "session tokens", file: file, line: line)
        XCTAssertEqual(chained.kept, chained.sessionTokens, "the token at every kept position", file: file, line: line)
        XCTAssertEqual(plain.kept, plain.sessionTokens, file: file, line: line)
        // Chaining may draw for up to two steps it abandons; the draws before are the same.
        XCTAssertEqual(Array(chained.draws.prefix(plain.draws.count)), plain.draws, "draws", file: file, line: line)
        XCTAssertLessThanOrEqual(chained.draws.count, plain.draws.count + 2, file: file, line: line)
        if expectChained { XCTAssertGreaterThan(backend.chainedSteps, 0, "steps were chained", file: file, line: line) }
        else { XCTAssertEqual(backend.chainedSteps, 0, "no step was chained", file: file, line: line) }
        return plain
    }

    func testGreedyUpToMaxTokens() throws {
        var p = GenerationParameters()
        p.sampling = .greedy; p.maxTokens = 12
        let out = try compare(p)
        XCTAssertEqual(out.ids.count, 12)
        XCTAssertEqual(out.reason, .maxTokens)
    }

    func testSampledDrawsStayInOrder() throws {
        var p = GenerationParameters()
        p.sampling.temperature = 0.7; p.maxTokens = 9
        let out = try compare(p)
        XCTAssertEqual(out.draws.count, 9)
        XCTAssertTrue(out.draws.allSatisfy { $0 > 0 }, "temperature > 0 draws a number per pick")
    }

    func testEndOfGeneration() throws {
        let model = try loaded()
        guard let eog = (0..<Int32(model.model.vocab)).first(where: { model.tokenizer.isEndOfGeneration($0) }) else {
            throw XCTSkip("the synthetic vocabulary has no end-of-generation token")
        }
        let w = walk(model)
        var p = GenerationParameters()
        p.sampling = .greedy; p.maxTokens = 30
        let out = try compare(p, script: { t, pos in pos == 8 ? eog : w(t, pos) })
        XCTAssertEqual(out.reason, .endOfGeneration)
        XCTAssertEqual(out.ids.count, 6, "positions 3 ... 8 ran; the pick after 8 ends it")
    }

    func testCallerStops() throws {
        var p = GenerationParameters()
        p.sampling = .greedy; p.maxTokens = 30
        let out = try compare(p, stopAfter: 4)
        XCTAssertEqual(out.ids.count, 4)
    }

    func testContextFull() throws {
        var p = GenerationParameters()
        p.sampling = .greedy; p.maxTokens = 1000
        let out = try compare(p)
        XCTAssertEqual(out.reason, .contextFull)
        XCTAssertEqual(out.sessionTokens.count, try loaded().contextSize)
    }

    func testStopString() throws {
        let model = try loaded()
        var p = GenerationParameters()
        p.sampling = .greedy; p.maxTokens = 20
        let (free, _) = try generate(chains: false, parameters: p, script: walk(model))
        // The text of the fifth token onwards, as a stop string.
        let pieces = free.ids.map { model.tokenizer.decode([$0]) }
        guard let piece = pieces.dropFirst(4).first(where: { $0.trimmingCharacters(in: .whitespaces).count >= 2 }) else {
            throw XCTSkip("no usable piece of text in the synthetic vocabulary")
        }
        p.stopStrings = [piece.trimmingCharacters(in: .whitespaces)]
        let out = try compare(p)
        XCTAssertEqual(out.reason, .stopString)
        XCTAssertFalse(out.text.contains(p.stopStrings[0]))
    }

    // Steps that fail to queue (attempts 0, 3, 4 and 9: the step of the token in hand, the one
    // after it, both in a row) run one at a time with the draw they took: nothing changes.
    func testStepsThatFailToQueueRunOneAtATime() throws {
        var p = GenerationParameters()
        p.sampling.temperature = 0.7; p.maxTokens = 14
        let out = try compare(p, failing: [0, 3, 4, 9])
        XCTAssertEqual(out.ids.count, 14)
    }

    func testPenaltiesStepOneAtATime() throws {
        var p = GenerationParameters()
        p.sampling = .greedy; p.sampling.repeatPenalty = 1.1; p.maxTokens = 6
        _ = try compare(p, expectChained: false)
    }

    func testHostSamplingStepsOneAtATime() throws {
        var p = GenerationParameters()
        p.sampling = .greedy; p.maxTokens = 6; p.sampleOnDevice = false
        _ = try compare(p, expectChained: false)
    }
}
