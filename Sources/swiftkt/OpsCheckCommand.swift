// `swiftkt ops-check`: every CUDA operator against the CPU reference on random inputs (and,
// with --perf, timed on model-sized shapes). Exit status 1 when any case exceeds its bound.
import ArgumentParser
import CUDA
import Engine
import Foundation

struct OpsCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops-check",
        abstract: "Check every CUDA operator against the CPU reference (and time them with --perf).",
        discussion: "Errors are normalized: ‖gpu − reference‖ / ‖reference‖, one bound per case. Needs a CUDA device and NVRTC.")

    @Option(name: .long, help: "CUDA device index.")
    var device = 0

    @Flag(help: "Also time the decode kernels (µs, GB/s) on model-sized shapes.")
    var perf = false

    @Option(name: [.short, .long], help: "Output: md (table) or json.")
    var output = "md"

    @Option(name: [.short, .long], help: "Also compare a model end to end, GPU against the CPU path: logits at every prompt position and 16 greedy tokens (repeatable).")
    var model: [String] = []

    @Option(help: "Rules file for the GPU side of the end-to-end comparison (default: the shipped rules on a GPU machine).")
    var rules: String?

    @Option(name: .customLong("prompt-tokens"), help: "Prompt length of the end-to-end comparison (one chunk; 32+ runs prompt-sized paths: GEMM, experts on the GPU).")
    var promptTokens = 24

    func validate() throws {
        guard ["md", "json"].contains(output) else { throw ValidationError("-o must be md or json, got '\(output)'") }
        guard (1...512).contains(promptTokens) else { throw ValidationError("--prompt-tokens must be 1 ... 512, got \(promptTokens)") }
    }

    func run() throws {
        let gpu: GPU
        do { gpu = try GPU(ordinal: device) } catch { throw CUDAError.invalidArgument("no usable CUDA device: \(error)") }
        let commit = BuildInfo.commit()
        let date = ISO8601DateFormatter().string(from: Date())
        try? FileHandle.standardError.write(contentsOf: Data("cuda:\(device) \(gpu.device.name) (\(gpu.device.architecture)), commit \(commit), \(date)\n".utf8))
        let results = try OpsCheck.run(gpu: gpu) { r in
            try? FileHandle.standardError.write(contentsOf: Data("\(r.passed ? "ok  " : "FAIL") \(r.op) \(r.shape): \(String(format: "%.2e", r.error))\n".utf8))
        }
        let timings = perf ? try OpsCheck.perf(gpu: gpu) { r in
            try? FileHandle.standardError.write(contentsOf: Data(String(format: "perf %@ %@: %.1f µs, %.0f GB/s\n", r.op, r.shape, r.microseconds, r.gbPerSecond).utf8))
        } : []
        var comparisons: [ModelComparison] = []
        for m in model {
            let c = try OpsCheck.compare(modelAt: try ModelStore.resolve(m), promptTokens: promptTokens, gpuRules: rules)
            comparisons.append(c)
            try? FileHandle.standardError.write(contentsOf: Data(String(format: "model %@: max logits error %.2e, %d/%d greedy tokens alike\n", c.model,
                                                       c.logitErrors.max() ?? 0, c.agreeing, c.cpuTokens.count).utf8))
        }
        let failed = results.filter { !$0.passed }
        if output == "json" {
            let object: [String: Any] = [
                "device": gpu.device.name, "architecture": gpu.device.architecture, "commit": commit, "date": date,
                "checks": results.map { ["op": $0.op, "shape": $0.shape, "error": $0.error, "bound": $0.bound, "passed": $0.passed] },
                "models": comparisons.map { ["model": $0.model, "logit_errors": $0.logitErrors, "cpu_tokens": $0.cpuTokens.map(Int.init),
                                              "gpu_tokens": $0.gpuTokens.map(Int.init), "agreeing": $0.agreeing] },
                "perf": timings.map { ["op": $0.op, "shape": $0.shape, "us": $0.microseconds, "bytes": $0.bytes, "gb_s": $0.gbPerSecond] },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("| op | shape | normalized error | bound | |\n|---|---|---|---|---|")
            for r in results {
                print("| \(r.op) | \(r.shape) | \(String(format: "%.2e", r.error)) | \(String(format: "%.0e", r.bound)) | \(r.passed ? "ok" : "**FAIL**") |")
            }
            if !timings.isEmpty {
                let copy = timings[0].gbPerSecond
                print("\n| kernel | shape | µs | GB/s | of copy bandwidth |\n|---|---|---|---|---|")
                for t in timings {
                    print(String(format: "| %@ | %@ | %.1f | %.0f | %.0f %% |", t.op, t.shape, t.microseconds, t.gbPerSecond, 100 * t.gbPerSecond / copy))
                }
            }
            if !comparisons.isEmpty {
                print("\n| model (GPU vs CPU path) | max logits error (\(promptTokens) positions) | mean | greedy tokens alike |\n|---|---|---|---|")
                for c in comparisons {
                    let mean = c.logitErrors.reduce(0, +) / Double(max(c.logitErrors.count, 1))
                    print(String(format: "| %@ | %.2e | %.2e | %d / %d |", c.model, c.logitErrors.max() ?? 0, mean, c.agreeing, c.cpuTokens.count))
                }
            }
            print("\n\(results.count - failed.count)/\(results.count) checks passed on \(gpu.device.name) (\(gpu.device.architecture)), commit \(commit)")
        }
        if !failed.isEmpty { throw ExitCode.failure }
    }
}
