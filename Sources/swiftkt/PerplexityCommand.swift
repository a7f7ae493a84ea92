// `swiftkt perplexity`: llama.cpp's perplexity method on a text file.
import ArgumentParser
import Engine
import Foundation

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity of a text file, scored as llama.cpp does (second half of each chunk).",
        discussion: "Example: swiftkt perplexity -m smollm2-135m-instruct -f wiki.txt -c 512")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: [.customShort("f"), .long], help: "Text file to score.")
    var file: String

    @Flag(help: "Print the result as JSON on stdout.")
    var json = false

    func run() throws {
        guard modelOptions.batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        let text = try readText(file, "text file")
        var options = modelOptions
        let chunk = modelOptions.contextSize ?? 512
        options.contextSize = chunk
        options.batchSize = max(options.batchSize, chunk)
        let model = try options.load()
        let result = try Perplexity.run(model: model, text: text, contextSize: chunk) { done, total, ppl in
            log(String(format: "[%d/%d] %.4f", done, total, ppl))
        }
        if json {
            let obj: [String: Any] = ["perplexity": result.perplexity, "chunks": result.chunks, "n_ctx": chunk,
                                      "scored_tokens": result.scoredTokens, "seconds": result.seconds]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            writeOut(String(decoding: data, as: UTF8.self) + "\n")
        } else {
            writeOut(String(format: "Final estimate: PPL = %.4f (%d chunks of %d, %d tokens scored, %.1f s)\n",
                            result.perplexity, result.chunks, chunk, result.scoredTokens, result.seconds))
        }
    }
}
