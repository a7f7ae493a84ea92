// Options shared by the commands that load a model (llama.cpp-style short flags).
import ArgumentParser
import Engine
import Foundation

struct ModelOptions: ParsableArguments {
    @Option(name: [.customShort("m"), .long], help: "A GGUF path or a pulled model name (see `swiftkt list`).")
    var model: String = "smollm2-135m-instruct"

    @Option(name: [.customShort("t"), .long], help: "Threads (default: all cores).")
    var threads: Int?

    @Option(name: [.customShort("c"), .customLong("ctx-size")], help: "Context size in tokens (default: min(trained, 4096)).")
    var contextSize: Int?

    @Option(name: [.customShort("b"), .customLong("batch-size")], help: "Prompt tokens per forward pass.")
    var batchSize: Int = 512

    @Option(help: "Kernel set: auto or reference (scalar, for debugging); shorthand for rules/cpu.yaml or rules/cpu-reference.yaml.")
    var kernels: String = "auto"

    @Option(help: "Rules file (YAML) choosing each module's operator and device (default: shipped rules for the architecture).")
    var rules: String?

    @Flag(name: .customLong("strict-rules"), help: "A rule that matches no module is an error, not a warning.")
    var strictRules = false

    func load() throws -> LoadedModel {
        let path = try ModelStore.resolve(model)
        var options = LoadOptions()
        if let t = threads { options.threads = t }
        options.contextSize = contextSize
        options.batchSize = batchSize
        options.kernels = kernels
        options.rules = rules
        options.strictRules = strictRules
        let started = Date()
        let loaded = try LoadedModel(path: path, options: options, progress: { log($0) })
        let h = loaded.model.hyperparameters
        log(String(format: "loaded %@ (%@, %d layers, %d threads, ctx %d, kernels %@) in %.2f s",
                   (path as NSString).lastPathComponent, h.architecture, h.blockCount, options.threads,
                   loaded.contextSize, options.kernels, Date().timeIntervalSince(started)))
        log("rules: \(loaded.rulesDescription); runs on \(loaded.backendDescription)")
        for w in loaded.placement.warnings { log("warning: \(w)") }
        return loaded
    }
}

struct SamplingOptions: ParsableArguments {
    @Option(name: [.customShort("n"), .customLong("n-predict")], parsing: .unconditional,
            help: "Tokens to generate (default 128; serve: a request's default, no limit; -1 = until the end of generation or a full context).")
    var nPredict: Int?

    @Option(name: .customLong("temp"), parsing: .unconditional, help: "Temperature; 0 is greedy.")
    var temperature: Float = 0.8

    @Option(name: .customLong("top-k"), parsing: .unconditional, help: "Top-k (0 = off).")
    var topK: Int = 40

    @Option(name: .customLong("top-p"), parsing: .unconditional, help: "Top-p (1 = off).")
    var topP: Float = 0.95

    @Option(name: .customLong("min-p"), parsing: .unconditional, help: "Min-p (0 = off).")
    var minP: Float = 0.05

    @Option(name: .customLong("repeat-penalty"), parsing: .unconditional, help: "Repetition penalty (1 = off).")
    var repeatPenalty: Float = 1.0

    @Option(name: .customLong("repeat-last-n"), parsing: .unconditional, help: "Tokens the penalties look back over (-1 = all).")
    var repeatLastN: Int = 64

    @Option(name: .customLong("presence-penalty"), parsing: .unconditional, help: "Presence penalty.")
    var presencePenalty: Float = 0

    @Option(name: .customLong("frequency-penalty"), parsing: .unconditional, help: "Frequency penalty.")
    var frequencyPenalty: Float = 0

    @Option(name: .customLong("seed"), help: "Random seed (same seed, same output).")
    var seed: UInt64 = 0xDEC0DE

    @Option(name: .customLong("stop"), help: "Stop string (repeatable).")
    var stop: [String] = []

    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past end-of-generation tokens.")
    var ignoreEOS = false

    /// Checked before a model loads (ArgumentParser calls it after parsing).
    func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ValidationError(message) } }
        try check((nPredict ?? 0) >= -1, "-n must be ≥ 0, or -1 for no limit, got \(nPredict ?? 0)")
        try check(temperature.isFinite && temperature >= 0, "--temp must be a finite number ≥ 0 (0 is greedy), got \(temperature)")
        try check(topK >= 0, "--top-k must be ≥ 0 (0 = off), got \(topK)")
        try check(topP >= 0 && topP <= 1, "--top-p must be in 0…1 (1 = off), got \(topP)")
        try check(minP >= 0 && minP <= 1, "--min-p must be in 0…1 (0 = off), got \(minP)")
        try check(repeatPenalty.isFinite && repeatPenalty > 0, "--repeat-penalty must be a finite number > 0 (1 = off), got \(repeatPenalty)")
        try check(repeatLastN >= -1, "--repeat-last-n must be ≥ -1 (-1 = all), got \(repeatLastN)")
        try check(presencePenalty.isFinite, "--presence-penalty must be finite, got \(presencePenalty)")
        try check(frequencyPenalty.isFinite, "--frequency-penalty must be finite, got \(frequencyPenalty)")
    }

    /// `defaultTokens`: the command's length when -n is not given (-1: no limit).
    func parameters(defaultTokens: Int = 128) throws -> GenerationParameters {
        try validate()
        var p = GenerationParameters()
        let n = nPredict ?? defaultTokens
        p.maxTokens = n < 0 ? Int(Int32.max) : n
        p.stopStrings = stop
        p.stopAtEndOfGeneration = !ignoreEOS
        var s = SamplingParameters()
        s.temperature = temperature; s.topK = topK; s.topP = topP; s.minP = minP
        s.repeatPenalty = repeatPenalty; s.penaltyLastN = repeatLastN
        s.presencePenalty = presencePenalty; s.frequencyPenalty = frequencyPenalty; s.seed = seed
        p.sampling = s
        return p
    }
}

/// Logs and statistics go to stderr; stdout carries only generated text.
func log(_ message: String) {
    try? FileHandle.standardError.write(contentsOf: Data((message + "\n").utf8))
}

/// Generated text to stdout; a failed write (a full disk, a closed pipe's reader) ends the
/// command with a message and exit status 74 (EX_IOERR) rather than a trap.
func writeOut(_ text: String) {
    do { try FileHandle.standardOutput.write(contentsOf: Data(text.utf8)) } catch { failedOutput(error) }
}

func failedOutput(_ error: Error) -> Never {
    log("swiftkt: cannot write to standard output: \(error)")
    exit(74)
}

func formatStats(_ s: GenerationStats) -> String {
    String(format: "prompt: %d tokens, %.1f t/s | generated: %d tokens, %.1f t/s | stop: %@",
           s.promptTokens, s.prefillTokensPerSecond, s.generatedTokens, s.decodeTokensPerSecond, s.stopReason.rawValue)
}

/// An error of the command line's own (printed as `Error: …` without the usage text).
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A text file the user named (prompt, perplexity text), read whole; the error says whether it
/// is missing, a directory, unreadable or not UTF-8.
func readText(_ path: String, _ what: String) throws -> String {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw CommandError("\(what) '\(path)' does not exist")
    }
    guard !isDirectory.boolValue else { throw CommandError("\(what) '\(path)' is a directory") }
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw CommandError("cannot read \(what) '\(path)': \(error.localizedDescription)")
    }
    guard let text = String(data: data, encoding: .utf8) else { throw CommandError("\(what) '\(path)' is not UTF-8 text") }
    return text
}

/// `text` with control characters other than newline and tab escaped (`\u{1B}`): names and
/// strings from a model file reach the terminal as text, never as escape sequences.
func printable(_ text: String) -> String {
    func control(_ u: Unicode.Scalar) -> Bool { u.value < 0x20 && u != "\n" && u != "\t" || u.value == 0x7F }
    guard text.unicodeScalars.contains(where: control) else { return text }
    var out = String.UnicodeScalarView()
    for u in text.unicodeScalars {
        if control(u) {
            out.append(contentsOf: "\\u{\(String(u.value, radix: 16, uppercase: true))}".unicodeScalars)
        } else {
            out.append(u)
        }
    }
    return String(out)
}
