// Session: one conversation's state over a LoadedModel: the KV cache, the tokens it holds,
// chunked prefill and single-token decode, and the generation loop with sampling, stop
// conditions and statistics. A session is used from one thread at a time.
import CPUKernels
import CUDA
import Foundation
import Models

public struct GenerationParameters: Sendable {
    public var maxTokens: Int = 128
    public var sampling = SamplingParameters()
    /// Generation stops before any of these strings; they are not part of the output.
    public var stopStrings: [String] = []
    /// Stop at end-of-generation tokens (EOS, EOT…).
    public var stopAtEndOfGeneration = true
    /// Called with every logits row before sampling (debugging: `swiftkt run --show-top K`).
    public var logitsObserver: (@Sendable ([Float]) -> Void)?
    /// On a GPU backend, pick tokens on the device (only the id comes back) unless a logits
    /// observer wants the rows or the sampler's settings are beyond the GPU sampler's
    /// (top-k off or above 1024 with temperature > 0). `SWIFTKT_GPU_SAMPLING=0` turns it off.
    public var sampleOnDevice = ProcessInfo.processInfo.environment["SWIFTKT_GPU_SAMPLING"] != "0"

    public init() {}
}

public enum StopReason: String, Sendable { case endOfGeneration = "eos", maxTokens = "length", stopString = "stop", contextFull = "context" }

public struct GenerationStats: Sendable {
    public var promptTokens = 0
    public var generatedTokens = 0
    public var prefillSeconds: Double = 0
    public var decodeSeconds: Double = 0
    public var stopReason: StopReason = .maxTokens

    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    /// Tokens after the first, per second of decode (the first comes out of prefill).
    public var decodeTokensPerSecond: Double {
        decodeSeconds > 0 ? Double(max(generatedTokens - 1, 0)) / decodeSeconds : 0
    }
}

public enum GenerationEvent: Sendable {
    /// A generated token and the text it completes (may be empty while UTF-8 is incomplete).
    case token(id: Int32, text: String)
    case done(GenerationStats)
}

public final class Session: @unchecked Sendable {
    public let model: LoadedModel
    public private(set) var tokens: [Int32] = []
    /// Built on first use (a GPU session allocates its cache and workspace then).
    private var backendStorage: ForwardBackend?

    init(model: LoadedModel) {
        self.model = model
    }

    private func backend() throws -> ForwardBackend {
        if let b = backendStorage { return b }
        let b = try model.makeBackend()
        backendStorage = b
        return b
    }

    /// Tests: runs the session's passes on `backend` instead of the model's own.
    func use(backend: ForwardBackend) { backendStorage = backend }

    public var contextSize: Int { model.contextSize }

    /// Forgets the conversation (the cache is reused).
    public func reset() { tokens.removeAll() }

    /// Keeps only the first `count` tokens; later positions of the cache are overwritten next.
    public func rewind(to count: Int) {
        if count < tokens.count { tokens.removeLast(tokens.count - max(count, 0)) }
    }

    /// Appends `newTokens`, running them through the model in chunks; returns logits for the
    /// positions `mode` asks for, counted within `newTokens` ([count, vocab] for .all,
    /// [vocab] for .last, [count − i, vocab] for .from(i)).
    @discardableResult
    public func evaluate(_ newTokens: [Int32], mode: LogitsMode = .last) throws -> [Float] {
        guard !newTokens.isEmpty else { return [] }
        guard tokens.count + newTokens.count <= contextSize else {
            throw EngineError.promptTooLong(tokens: tokens.count + newTokens.count, context: contextSize)
        }
        let backend = try backend()
        let firstWanted: Int
        switch mode {
        case .none: firstWanted = newTokens.count
        case .last: firstWanted = newTokens.count - 1
        case .all: firstWanted = 0
        case let .from(i): firstWanted = min(max(i, 0), newTokens.count - 1)
        }
        var result: [Float] = []
        var start = 0
        let batch = model.options.batchSize
        while start < newTokens.count {
            let end = min(start + batch, newTokens.count)
            let chunk = Array(newTokens[start..<end])
            let chunkMode: LogitsMode = end <= firstWanted ? .none : .from(max(firstWanted - start, 0))
            let logits = try backend.forward(tokens: chunk, startPosition: tokens.count, mode: chunkMode)
            tokens += chunk
            if result.isEmpty { result = logits } else { result += logits }
            start = end
        }
        return result
    }

    /// `evaluate(newTokens)` on a backend that samples on the device: the last chunk's next
    /// token is picked there from `request`.
    private func evaluateSampling(_ newTokens: [Int32], device: DeviceSamplingBackend, request: GPUSampling) throws -> Int32 {
        guard tokens.count + newTokens.count <= contextSize else {
            throw EngineError.promptTooLong(tokens: tokens.count + newTokens.count, context: contextSize)
        }
        let batch = model.options.batchSize
        var start = 0
        while newTokens.count - start > batch {
            let chunk = Array(newTokens[start..<start + batch])
            _ = try device.forward(tokens: chunk, startPosition: tokens.count, mode: .none)
            tokens += chunk
            start += batch
        }
        let last = Array(newTokens[start...])
        let next = try device.forwardSampling(tokens: last, startPosition: tokens.count, sampling: request)
        tokens += last
        return next
    }

    /// Generates from `prompt` (appended to what the session already holds), calling `onEvent`
    /// for every token; return false from it to stop early.
    @discardableResult
    public func generate(prompt: [Int32], parameters: GenerationParameters,
                         onEvent: (GenerationEvent) throws -> Bool) throws -> GenerationStats {
        var stats = GenerationStats()
        stats.promptTokens = prompt.count
        let started = Date()
        var sampler = Sampler(parameters.sampling)
        let device = parameters.sampleOnDevice && parameters.logitsObserver == nil ? try backend() as? DeviceSamplingBackend : nil
        // Runs newTokens and picks the token after them: on the device where it can, else from
        // the downloaded logits; both draw from `sampler` at the same point.
        func step(_ newTokens: [Int32]) throws -> Int32 {
            // (The history is copied only for the penalties that read it.)
            let history = parameters.sampling.hasPenalties ? tokens + newTokens : []
            if let device, let request = sampler.deviceRequest(history: history, vocabulary: model.model.vocab) {
                return try evaluateSampling(newTokens, device: device, request: request)
            }
            let logits = try evaluate(newTokens)
            parameters.logitsObserver?(logits)
            return sampler.sample(logits, history: tokens)
        }
        // Chained steps: when the picks need no history (no penalties) and the first one was made
        // on the device, the device runs the step of token n while the host handles n, with the
        // step of n + 1 — whose token the device picks itself — already queued behind it, so it
        // never waits for the host between tokens.
        // A step that cannot be queued is run one at a time instead, where a failure surfaces at
        // the point it would have without chaining (after the token before has been handed out).
        let chain = device as? ChainedSamplingBackend
        var sampledAhead: GPUSampling?
        func queueNext(position: Int) -> Bool {
            guard let chain, chain.canChain, !parameters.sampling.hasPenalties,
                  let request = sampledAhead ?? sampler.deviceRequest(history: [], vocabulary: model.model.vocab) else { return false }
            do {
                try chain.enqueueChained(position: position, sampling: request)
                sampledAhead = nil
                return true
            } catch {
                sampledAhead = request  // (its draw is the next step's, whichever way it runs)
                return false
            }
        }
        guard !prompt.isEmpty else { throw EngineError.emptyPrompt }
        var next = try step(prompt)
        stats.prefillSeconds = Date().timeIntervalSince(started)
        let decodeStart = Date()
        var decoder = model.tokenizer.makeStreamDecoder()
        var stops = StopStringFilter(parameters.stopStrings)
        var finished = false
        var ahead = false  // the step of `next` is queued (chained)
        while !finished {
            if stats.generatedTokens >= parameters.maxTokens { stats.stopReason = .maxTokens; break }
            if parameters.stopAtEndOfGeneration && model.tokenizer.isEndOfGeneration(next) {
                stats.stopReason = .endOfGeneration; break
            }
            stats.generatedTokens += 1
            // The steps of `next` and of the token after it go to the device now where steps will
            // follow unless the text or the caller stops the generation (then they are abandoned:
            // their cache rows lie past `tokens`, to be overwritten).
            let counted = stats.generatedTokens
            if !ahead, tokens.count < contextSize, counted < parameters.maxTokens { ahead = queueNext(position: tokens.count) }
            let aheadOfNext = ahead && tokens.count + 1 < contextSize && counted + 1 < parameters.maxTokens
                && queueNext(position: tokens.count + 1)
            let (text, hitStop) = stops.feed(decoder.append(next))
            if !(try onEvent(.token(id: next, text: text))) { break }
            if hitStop { stats.stopReason = .stopString; finished = true; break }
            if tokens.count >= contextSize { stats.stopReason = .contextFull; break }
            if stats.generatedTokens >= parameters.maxTokens { stats.stopReason = .maxTokens; break }
            if ahead {
                tokens.append(next)
                next = try chain!.takeChained()
                ahead = aheadOfNext
            } else if let request = sampledAhead, let device {
                // A chained step failed to queue: this step one at a time, with the draw it took.
                sampledAhead = nil
                next = try evaluateSampling([next], device: device, request: request)
            } else {
                next = try step([next])
            }
        }
        if !finished {
            let tail = stops.finish(decoder.flush())
            if !tail.isEmpty { _ = try onEvent(.token(id: -1, text: tail)) }
        }
        stats.decodeSeconds = Date().timeIntervalSince(decodeStart)
        _ = try onEvent(.done(stats))
        return stats
    }

    /// The same generation as an async stream of events (runs on a background thread).
    public func stream(prompt: [Int32], parameters: GenerationParameters) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { continuation in
            let thread = Thread { [self] in
                do {
                    try self.generate(prompt: prompt, parameters: parameters) { event in
                        if case .terminated = continuation.yield(event) { return false }
                        return true
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }
}

/// Holds back text that might be the start of a stop string; cuts the output at the first stop.
struct StopStringFilter {
    let stops: [String]
    private var pending = ""

    init(_ stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// Returns the text safe to emit and whether a stop string was reached.
    mutating func feed(_ piece: String) -> (String, Bool) {
        guard !stops.isEmpty else { return (piece, false) }
        pending += piece
        if let cut = stops.compactMap({ pending.range(of: $0)?.lowerBound }).min() {
            let out = String(pending[..<cut])
            pending = ""
            return (out, true)
        }
        // Keep the longest suffix of `pending` that is a proper prefix of some stop string.
        var hold = 0
        for stop in stops {
            for length in stride(from: min(stop.count - 1, pending.count), to: 0, by: -1)
            where pending.hasSuffix(stop.prefix(length)) {
                hold = max(hold, length); break
            }
        }
        let out = String(pending.dropLast(hold))
        pending = String(pending.suffix(hold))
        return (out, false)
    }

    mutating func finish(_ tail: String) -> String {
        let (text, hit) = feed(tail)
        if hit { return text }
        defer { pending = "" }
        return text + pending
    }
}
