// The model behind the API: one loaded model and one session, used by one request at a time
// (others wait their turn). A request's prompt that starts with what the session already holds
// (a conversation's earlier turns, as chat clients send them) reuses that part of the KV cache.
import ChatTemplate
import Engine
import Foundation

public final class ServedModel: @unchecked Sendable {
    public let model: LoadedModel
    /// The name clients see (`model` in responses, /v1/models, /api/tags).
    public let name: String
    /// Sampling and length settings for fields a request leaves out (the command line's).
    public let defaults: GenerationParameters
    public let loadedAt = Date()
    private let session: Session
    private let lock = NSLock()
    public var log: @Sendable (String) -> Void = { _ in }

    public init(model: LoadedModel, name: String, defaults: GenerationParameters) {
        self.model = model
        self.name = name
        self.defaults = defaults
        self.session = model.makeSession()
    }

    public var contextSize: Int { model.contextSize }

    /// The chat messages in the model's template, ready to generate the assistant's turn.
    public func render(_ messages: [ChatMessage]) throws -> String {
        do {
            return try model.renderChat(messages)
        } catch let e as EngineError {
            throw HTTPError(400, e.description)
        } catch let e as ChatTemplateError {
            throw HTTPError(400, "the model's chat template rejected the messages: \(e)")
        }
    }

    public struct Outcome {
        /// The whole prompt's tokens (the reused prefix included).
        public var promptTokens: Int
        public var stats: GenerationStats
    }

    /// Generates from `prompt`, handing `onText` each piece of text as it is decoded; `onText`
    /// returns false to stop (a client that went away). Waits while another request generates.
    /// `onStart` runs once the prompt is accepted, before the first token (a stream's head goes
    /// out there, so that a refused prompt still gets its status); `cancelled` is asked before
    /// the wait ends and every 16 tokens (a client that left a request that streams nothing).
    public func generate(prompt: String, parseSpecial: Bool, parameters: GenerationParameters,
                         cancelled: () -> Bool = { false }, onStart: () throws -> Void = {},
                         onText: (String) -> Bool) throws -> Outcome {
        lock.lock()
        defer { lock.unlock() }
        if cancelled() { throw HTTPError(499, "the client went away before its turn") }
        let ids = model.tokenize(prompt, parseSpecial: parseSpecial)
        guard !ids.isEmpty else { throw HTTPError(400, "the prompt is empty") }
        guard ids.count < contextSize else {
            throw HTTPError(400, "the prompt is \(ids.count) tokens but the context holds \(contextSize) (start the server with a larger --ctx-size or shorten the prompt)")
        }
        try onStart()
        var p = parameters
        // What is left of the context bounds the answer (finish_reason "length" there).
        p.maxTokens = min(p.maxTokens, contextSize - ids.count)
        // Reuse the cached prefix; evaluate only what is new (at least the last token, whose
        // logits pick the first answer token).
        let common = zip(session.tokens, ids).prefix { $0 == $1 }.count
        session.rewind(to: min(common, ids.count - 1))
        let fresh = Array(ids[session.tokens.count...])
        let started = Date()
        let stats: GenerationStats
        var tokens = 0, clientGone = false
        do {
            stats = try session.generate(prompt: fresh, parameters: p) { event in
                guard case let .token(_, text) = event else { return true }
                tokens += 1
                if (!text.isEmpty && !onText(text)) || (tokens % 16 == 0 && cancelled()) { clientGone = true; return false }
                return true
            }
        } catch let e as EngineError {
            session.reset()
            throw HTTPError(400, e.description)
        } catch {
            // The cache may hold a partial pass: start the next request from nothing.
            session.reset()
            throw HTTPError(500, "generation failed: \(error)")
        }
        log(String(format: "%d prompt tokens (%d reused), %d generated in %.2f s (%.1f t/s), stop: %@",
                   ids.count, ids.count - fresh.count, stats.generatedTokens, Date().timeIntervalSince(started),
                   stats.decodeTokensPerSecond, clientGone ? "the client went away" : stats.stopReason.rawValue))
        return Outcome(promptTokens: ids.count, stats: stats)
    }

    /// Sampling fields shared by both APIs (names as OpenAI's, with llama.cpp's extensions),
    /// over the server's defaults; errors name the field.
    func parameters(_ f: Fields, maxTokensKeys: [String]) throws -> GenerationParameters {
        var p = defaults
        var s = p.sampling
        if let t = try f.number("temperature", in: 0...100) { s.temperature = Float(t) }
        if let v = try f.number("top_p", in: 0...1) { s.topP = Float(v) }
        if let v = try f.integer("top_k", in: 0...1_000_000) { s.topK = v }
        if let v = try f.number("min_p", in: 0...1) { s.minP = Float(v) }
        if let v = try f.number("presence_penalty", in: -2...2) { s.presencePenalty = Float(v) }
        if let v = try f.number("frequency_penalty", in: -2...2) { s.frequencyPenalty = Float(v) }
        if let v = try f.number("repeat_penalty", in: 0.000001...100) { s.repeatPenalty = Float(v) }
        if let v = try f.integer("repeat_last_n", in: -1...1_000_000) { s.penaltyLastN = v }
        // A request without a seed gets a fresh one (as OpenAI's and Ollama's); same seed, same text.
        if let v = try f.seed("seed") {
            s.seed = v
        } else {
            s.seed = UInt64.random(in: 0...UInt64.max)
        }
        p.sampling = s
        for key in maxTokensKeys {
            if let n = try f.integer(key, in: -2...Int(Int32.max)) {
                // Ollama's num_predict: -1 without end, -2 until the context is full.
                p.maxTokens = n < 0 ? Int(Int32.max) : n
                break
            }
        }
        if let stops = try f.strings("stop") { p.stopStrings = stops }
        return p
    }
}

extension StopReason {
    /// OpenAI's finish_reason and Ollama's done_reason.
    var finishReason: String {
        switch self {
        case .endOfGeneration, .stopString: return "stop"
        case .maxTokens, .contextFull: return "length"
        }
    }
}
