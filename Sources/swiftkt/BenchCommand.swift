// `swiftkt bench`: llama-bench's pp/tg throughput tests (definitions in Engine/Benchmark.swift);
// a markdown table or llama-bench-style JSON on stdout, progress on stderr.
import ArgumentParser
import Engine
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Prompt-processing and generation throughput, measured as llama-bench does.",
        discussion: """
        pp N: N prompt tokens from an empty cache in one batch (LM head for the last token only).
        tg N: N single-token steps from an empty cache (each with the LM head).
        -d D: each test after D tokens already in the cache ("tg128 @ d4096"; llama-bench's -d).
        Each test runs once untimed, then -r times; t/s is mean ± stddev over the repetitions.
        Examples:
          swiftkt bench -m smollm2-135m-instruct -p 512 -n 128 -t 1,2 -r 5
          swiftkt bench -m model.gguf -p 128,512 -n 0 -o json
          swiftkt bench -p 0 -n 64 -d 0,4096 --rules rules/cpu-long-context.yaml
        """)

    @Option(name: [.customShort("m"), .long], help: "A GGUF path or a pulled model name (see `swiftkt list`).")
    var model: String = "smollm2-135m-instruct"

    @Option(name: [.customShort("p"), .customLong("n-prompt")], help: "Prompt lengths, comma-separated (0 = no pp test).")
    var nPrompt: String = "512"

    @Option(name: [.customShort("n"), .customLong("n-gen")], help: "Generation lengths, comma-separated (0 = no tg test).")
    var nGen: String = "128"

    @Option(name: [.customShort("d"), .customLong("n-depth")], help: "Tokens in the cache before each test, comma-separated.")
    var nDepth: String = "0"

    @Option(name: [.customShort("t"), .long], help: "Thread counts, comma-separated (default: all cores).")
    var threads: String?

    @Option(name: [.customShort("r"), .long], help: "Timed repetitions of each test.")
    var repetitions: Int = 5

    @Option(name: [.customShort("b"), .customLong("batch-size")], help: "Prompt tokens per forward pass.")
    var batchSize: Int = 512

    @Option(help: "Kernel set: auto or reference (scalar, for debugging).")
    var kernels: String = "auto"

    @Option(help: "Rules file (YAML) choosing each module's operator (default: shipped rules for the architecture).")
    var rules: String?

    @Option(name: [.customShort("o"), .customLong("output")], help: "Output format: md or json.")
    var output: String = "md"

    @Flag(name: .customLong("no-warmup"), help: "Skip the untimed warm-up run of each test.")
    var noWarmup = false

    func validate() throws {
        guard ["md", "json"].contains(output) else { throw ValidationError("-o takes md or json") }
        for (text, flag) in [(nPrompt, "-p"), (nGen, "-n"), (nDepth, "-d")] {
            guard try Self.list(text, flag).allSatisfy({ $0 <= 1 << 24 }) else {
                throw ValidationError("\(flag) takes token counts up to \(1 << 24), got '\(text)'")
            }
        }
        if let threads { _ = try Self.list(threads, "-t") }
    }

    /// "128,512" → [128, 512]; "1-4" → [1, 2, 3, 4] (llama-bench accepts both).
    static func list(_ text: String, _ flag: String) throws -> [Int] {
        var values: [Int] = []
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-", maxSplits: 1).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !bounds.isEmpty, bounds.allSatisfy({ $0 != nil && $0! >= 0 }) else {
                throw ValidationError("\(flag) takes comma-separated numbers ≥ 0, got '\(text)'")
            }
            if bounds.count == 2 {
                guard bounds[0]! <= bounds[1]! else { throw ValidationError("\(flag): empty range '\(part)'") }
                values += Array(bounds[0]!...bounds[1]!)
            } else {
                values.append(bounds[0]!)
            }
        }
        guard !values.isEmpty else { throw ValidationError("\(flag) needs at least one value") }
        return values
    }

    func run() throws {
        let path = try ModelStore.resolve(model)
        var options = BenchmarkOptions()
        options.promptLengths = try Self.list(nPrompt, "-p")
        options.generationLengths = try Self.list(nGen, "-n")
        options.depths = try Self.list(nDepth, "-d")
        if let threads { options.threads = try Self.list(threads, "-t") }
        options.repetitions = repetitions
        options.batchSize = batchSize
        options.kernels = kernels
        options.rules = rules
        options.warmup = !noWarmup
        let results = try Benchmark.run(path: path, options: options) { log($0) }
        writeOut(output == "json" ? try Benchmark.json(results) : Benchmark.markdown(results))
    }
}
