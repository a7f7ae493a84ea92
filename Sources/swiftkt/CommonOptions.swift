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
    @Option(name: [.customShort("n"), .customLong("n-predict")], help: "Tokens to generate.")
    var nPredict: Int = 128

    @Option(name: .customLong("temp"), help: "Temperature; 0 is greedy.")
    var temperature: Float = 0.8

    @Option(name: .customLong("top-k"), help: "Top-k (0 = off).")
    var topK: Int = 40

    @Option(name: .customLong("top-p"), help: "Top-p (1 = off).")
    var topP: Float = 0.95

    @Option(name: .customLong("min-p"), help: "Min-p (0 = off).")
    var minP: Float = 0.05

    @Option(name: .customLong("repeat-penalty"), help: "Repetition penalty (1 = off).")
    var repeatPenalty: Float = 1.0

    @Option(name: .customLong("repeat-last-n"), help: "Tokens the penalties look back over.")
    var repeatLastN: Int = 64

    @Option(name: .customLong("presence-penalty"), help: "Presence penalty.")
    var presencePenalty: Float = 0

    @Option(name: .customLong("frequency-penalty"), help: "Frequency penalty.")
    var frequencyPenalty: Float = 0

    @Option(name: .customLong("seed"), help: "Random seed (same seed, same output).")
    var seed: UInt64 = 0xDEC0DE

    @Option(name: .customLong("stop"), help: "Stop string (repeatable).")
    var stop: [String] = []

    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past end-of-generation tokens.")
    var ignoreEOS = false

    func parameters() throws -> GenerationParameters {
        guard nPredict >= 0 else { throw ValidationError("-n must be ≥ 0") }
        var p = GenerationParameters()
        p.maxTokens = nPredict
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
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

func writeOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

func formatStats(_ s: GenerationStats) -> String {
    String(format: "prompt: %d tokens, %.1f t/s | generated: %d tokens, %.1f t/s | stop: %@",
           s.promptTokens, s.prefillTokensPerSecond, s.generatedTokens, s.decodeTokensPerSecond, s.stopReason.rawValue)
}
