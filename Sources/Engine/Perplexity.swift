// Perplexity with llama.cpp's method (tools/perplexity): the text is tokenized once (with BOS
// when the model adds one), cut into chunks of `contextSize` tokens; each chunk is evaluated
// from an empty cache with its first token replaced by BOS when the model adds one, and only
// the second half of each chunk is scored: for i in [n/2, n−1), −log p(token[i+1] | …token[i]).
// PPL = exp(mean of those negative log-likelihoods).
import Foundation
import Models

public struct PerplexityResult: Sendable {
    public var chunks: Int
    public var scoredTokens: Int
    public var perplexity: Double
    /// Running estimate after each chunk (llama.cpp prints these as [1]x,[2]y,…).
    public var perChunk: [Double]
    public var seconds: Double
}

public enum Perplexity {
    public static func run(model: LoadedModel, text: String, contextSize: Int,
                           progress: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> PerplexityResult {
        guard contextSize >= 4, contextSize <= model.contextSize else {
            throw EngineError.invalidOption("-c must be between 4 and the loaded context (\(model.contextSize))")
        }
        let tokenizer = model.tokenizer
        let tokens = tokenizer.encode(text, addSpecial: true, parseSpecial: false)
        // llama-perplexity refuses fewer than 2 chunks; one chunk is enough here.
        let chunks = tokens.count / contextSize
        guard chunks > 0 else {
            throw EngineError.invalidOption("the text has \(tokens.count) tokens; at least \(contextSize) are needed for one chunk of -c \(contextSize)")
        }
        let addBOS = tokenizer.addBOS
        let started = Date()
        var nll = 0.0, count = 0
        var perChunk: [Double] = []
        let session = model.makeSession()
        for c in 0..<chunks {
            session.reset()
            var chunk = Array(tokens[(c * contextSize)..<((c + 1) * contextSize)])
            if addBOS, let bos = tokenizer.bosID { chunk[0] = bos }
            let firstScored = contextSize / 2
            let logits = try session.evaluate(chunk, mode: .from(firstScored))
            let vocab = logits.count / (contextSize - firstScored)
            for i in firstScored..<(contextSize - 1) {
                let row = logits[((i - firstScored) * vocab)..<((i - firstScored + 1) * vocab)]
                nll -= logSoftmax(row, at: Int(chunk[i + 1]))
                count += 1
            }
            perChunk.append(exp(nll / Double(count)))
            progress(c + 1, chunks, perChunk.last!)
        }
        return PerplexityResult(chunks: chunks, scoredTokens: count, perplexity: exp(nll / Double(count)),
                                perChunk: perChunk, seconds: Date().timeIntervalSince(started))
    }

    /// log softmax(row)[index], computed in double.
    static func logSoftmax(_ row: ArraySlice<Float>, at index: Int) -> Double {
        let m = Double(row.max() ?? 0)
        var sum = 0.0
        for v in row { sum += exp(Double(v) - m) }
        return Double(row[row.startIndex + index]) - m - log(sum)
    }
}
