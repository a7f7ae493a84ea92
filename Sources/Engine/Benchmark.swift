// Benchmark: throughput tests with llama-bench's definitions, so that our numbers and
// llama.cpp's can sit in one table (STYLE.md item 13, "benchmarks are programs").
//
//   pp N  prompt processing: N tokens (BOS first when the model adds one, the rest random)
//         evaluated from an empty cache in one call, chunked by the batch size; the LM head
//         runs for the last token only. Rate = N / time.
//   tg N  text generation: N single-token forward passes from an empty cache, starting from
//         BOS (or a random token) and then random tokens; every step runs the LM head (no
//         sampling). Rate = N / time.
//   @ dD  (llama-bench's -d / n_depth) either test after D random tokens already in the cache,
//         evaluated before the clock starts: the speed at a long context.
//
// Each test runs once untimed (warm-up), then `repetitions` timed times; the reported rate
// is the mean ± sample standard deviation (n − 1) of the per-repetition rates, as
// llama-bench computes avg_ts / stddev_ts. The model is loaded once per thread count
// (threads are fixed at load) with a context of max(all N) tokens.
import Core
import Foundation
import GGUF
import Models

public struct BenchmarkOptions: Sendable {
    /// Prompt lengths of the pp tests (0 entries are dropped).
    public var promptLengths: [Int] = [512]
    /// Generated lengths of the tg tests (0 entries are dropped).
    public var generationLengths: [Int] = [128]
    /// Tokens already in the cache when each test starts (llama-bench's n_depth).
    public var depths: [Int] = [0]
    public var threads: [Int] = [ProcessInfo.processInfo.activeProcessorCount]
    public var repetitions = 5
    public var batchSize = 512
    public var kernels = "auto"
    /// A rules file choosing each module's operator (nil = the shipped default).
    public var rules: String?
    public var warmup = true
    /// Seed of the random prompt and generation tokens.
    public var seed: UInt64 = 1234

    public init() {}

    /// The tests in llama-bench's order: every pp, then every tg, each at every depth.
    public var tests: [BenchmarkTest] {
        promptLengths.filter { $0 > 0 }.flatMap { n in depths.map { BenchmarkTest(nPrompt: n, nGen: 0, depth: $0) } }
            + generationLengths.filter { $0 > 0 }.flatMap { n in depths.map { BenchmarkTest(nPrompt: 0, nGen: n, depth: $0) } }
    }

    func validate() throws {
        if promptLengths.contains(where: { $0 < 0 }) || generationLengths.contains(where: { $0 < 0 }) {
            throw EngineError.invalidOption("-p and -n take lengths ≥ 0")
        }
        if depths.isEmpty || depths.contains(where: { $0 < 0 }) { throw EngineError.invalidOption("-d takes depths ≥ 0") }
        if tests.isEmpty { throw EngineError.invalidOption("nothing to run: every -p and -n length is 0") }
        if threads.isEmpty || threads.contains(where: { $0 < 1 }) {
            throw EngineError.invalidOption("-t takes thread counts ≥ 1")
        }
        if repetitions < 1 { throw EngineError.invalidOption("-r must be at least 1") }
    }
}

/// One test: exactly one of the two lengths is non-zero.
public struct BenchmarkTest: Sendable, Equatable {
    public var nPrompt: Int
    public var nGen: Int
    /// Tokens in the cache before the test (untimed).
    public var depth: Int
    public init(nPrompt: Int, nGen: Int, depth: Int = 0) { self.nPrompt = nPrompt; self.nGen = nGen; self.depth = depth }
    /// llama-bench's test name: pp512, tg128, tg128 @ d4096.
    public var name: String { (nPrompt > 0 ? "pp\(nPrompt)" : "tg\(nGen)") + (depth > 0 ? " @ d\(depth)" : "") }
    /// Tokens timed.
    public var tokens: Int { nPrompt + nGen }
}

public struct BenchmarkResult: Sendable {
    public var modelFilename: String
    /// "llama 135M Q4_1": architecture, parameter count, file type.
    public var modelType: String
    /// Bytes of tensor data (llama-bench's model_size).
    public var modelSize: Int
    public var modelNParams: Int
    public var fileSize: Int
    public var kernels: String
    public var threads: Int
    public var batchSize: Int
    public var contextSize: Int
    public var test: BenchmarkTest
    /// Wall time of each timed repetition.
    public var samplesNs: [UInt64]
    /// When the test started (ISO 8601, UTC).
    public var testTime: String
    public var buildCommit: String
    public var cpuInfo: String
    /// Resident set after loading the model and creating the session (KV cache allocated).
    public var rssAfterLoad: Int?
    /// Resident set after this thread count's tests (weights paged in by now).
    public var rssAfterRuns: Int?
    public var kvCacheBytes: Int
    /// "CPU", or "CUDA (NVIDIA H100 …)" when the model ran on a GPU.
    public var backend: String = "CPU"

    public var samplesTs: [Double] { samplesNs.map { Double(test.tokens) * 1e9 / Double(max($0, 1)) } }
    public var avgTs: Double { Benchmark.mean(samplesTs) }
    public var stddevTs: Double { Benchmark.stddev(samplesTs) }
    public var avgNs: Double { Benchmark.mean(samplesNs.map { Double($0) }) }
    public var stddevNs: Double { Benchmark.stddev(samplesNs.map { Double($0) }) }
}

public enum Benchmark {
    /// Runs every test at every thread count on the model at `path`. `progress` gets one line
    /// per event (load, each repetition).
    public static func run(path: String, options: BenchmarkOptions,
                           progress: (String) -> Void = { _ in }) throws -> [BenchmarkResult] {
        try options.validate()
        let tests = options.tests
        let machine = MachineInfo.current()
        let commit = BuildInfo.commit()
        var results: [BenchmarkResult] = []
        for threads in options.threads {
            var load = LoadOptions()
            load.threads = threads
            load.kernels = options.kernels
            load.rules = options.rules
            load.batchSize = options.batchSize
            load.contextSize = tests.map { $0.tokens + $0.depth }.max()!
            let started = Date()
            let model = try LoadedModel(path: path, options: load, progress: progress)
            // The session's cache size, as makeCache will allocate it (checked by a test).
            let kvBytes = model.model.cacheByteCount(capacity: model.contextSize,
                                                     element: model.context.kernels.cacheElement) ?? 0
            let session = model.makeSession()
            let rssLoad = MachineInfo.residentBytes()
            progress(String(format: "loaded %@ with %d threads in %.2f s; RSS %.1f MiB, KV cache %.1f MiB",
                            (path as NSString).lastPathComponent, threads, Date().timeIntervalSince(started),
                            Double(rssLoad ?? 0) / 1048576, Double(kvBytes) / 1048576))
            let description = ModelDescription(file: model.file)
            var rng = SeededGenerator(seed: options.seed)
            var first = results.count
            for test in tests {
                let testTime = ISO8601DateFormatter().string(from: Date())
                if options.warmup {
                    _ = try measure(session: session, test: test, rng: &rng)
                }
                var samples: [UInt64] = []
                for rep in 0..<options.repetitions {
                    let ns = try measure(session: session, test: test, rng: &rng)
                    samples.append(ns)
                    progress(String(format: "t=%d %@ rep %d/%d: %.2f t/s", threads, test.name, rep + 1,
                                    options.repetitions, Double(test.tokens) * 1e9 / Double(max(ns, 1))))
                }
                results.append(BenchmarkResult(
                    modelFilename: path, modelType: description.type, modelSize: description.tensorBytes,
                    modelNParams: description.parameters, fileSize: model.file.totalFileSize,
                    kernels: options.rules.map { "rules " + ($0 as NSString).lastPathComponent } ?? options.kernels,
                    threads: threads, batchSize: options.batchSize, contextSize: model.contextSize, test: test,
                    samplesNs: samples, testTime: testTime, buildCommit: commit, cpuInfo: machine.cpu,
                    rssAfterLoad: rssLoad, rssAfterRuns: nil, kvCacheBytes: kvBytes,
                    backend: model.cuda.map { "CUDA (\($0.gpu.device.name))" } ?? "CPU"))
            }
            // What stays resident once the runs are done (the allocator's free blocks given back).
            LoadedModel.releaseFreeMemory()
            let rssEnd = MachineInfo.residentBytes()
            while first < results.count { results[first].rssAfterRuns = rssEnd; first += 1 }
        }
        return results
    }

    /// One timed run of `test` from an empty cache (or one holding `test.depth` tokens);
    /// returns nanoseconds. Tokens are drawn, and the depth evaluated, before the clock starts.
    static func measure(session: Session, test: BenchmarkTest, rng: inout SeededGenerator) throws -> UInt64 {
        session.reset()
        let model = session.model
        let vocab = UInt64(model.model.tokenEmbedding.rows)
        let bos: Int32? = model.tokenizer.addBOS ? model.tokenizer.bosID : nil
        var prefix = (0..<test.depth).map { _ in Int32(truncatingIfNeeded: rng.next() % vocab) }
        var tokens = (0..<test.tokens).map { _ in Int32(truncatingIfNeeded: rng.next() % vocab) }
        if let bos { if prefix.isEmpty { tokens[0] = bos } else { prefix[0] = bos } }
        if !prefix.isEmpty { try session.evaluate(prefix, mode: .none) }
        if test.nPrompt > 0 {
            let start = DispatchTime.now().uptimeNanoseconds
            try session.evaluate(tokens, mode: .last)
            return DispatchTime.now().uptimeNanoseconds - start
        }
        let start = DispatchTime.now().uptimeNanoseconds
        for token in tokens { try session.evaluate([token], mode: .last) }
        return DispatchTime.now().uptimeNanoseconds - start
    }

    static func mean(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count) }

    /// Sample standard deviation (n − 1), 0 for fewer than two samples.
    static func stddev(_ xs: [Double]) -> Double {
        guard xs.count > 1 else { return 0 }
        let m = mean(xs)
        return (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)).squareRoot()
    }

    // MARK: - Output

    /// llama-bench's JSON field names, plus our memory fields. Keys are sorted.
    public static func jsonObjects(_ results: [BenchmarkResult]) -> [[String: Any]] {
        results.map { r in
            var o: [String: Any] = [
                "model_filename": r.modelFilename, "model_type": r.modelType, "model_size": r.modelSize,
                "model_n_params": r.modelNParams, "file_size": r.fileSize, "backends": r.backend, "kernels": r.kernels,
                "n_threads": r.threads, "n_batch": r.batchSize, "n_ubatch": r.batchSize, "n_ctx": r.contextSize,
                "n_prompt": r.test.nPrompt, "n_gen": r.test.nGen, "n_depth": r.test.depth, "test": r.test.name,
                "test_time": r.testTime, "build_commit": r.buildCommit, "cpu_info": r.cpuInfo,
                "avg_ns": r.avgNs, "stddev_ns": r.stddevNs, "samples_ns": r.samplesNs.map { Int($0) },
                "avg_ts": r.avgTs, "stddev_ts": r.stddevTs, "samples_ts": r.samplesTs,
                "kv_cache_bytes": r.kvCacheBytes,
            ]
            o["rss_after_load_bytes"] = r.rssAfterLoad.map { $0 as Any } ?? NSNull()
            o["rss_after_runs_bytes"] = r.rssAfterRuns.map { $0 as Any } ?? NSNull()
            return o
        }
    }

    public static func json(_ results: [BenchmarkResult]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: jsonObjects(results), options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// A markdown table in llama-bench's layout, with machine and build lines before it and
    /// one memory line per thread count after it.
    public static func markdown(_ results: [BenchmarkResult], machine: MachineInfo = .current()) -> String {
        var out = ""
        let commit = results.first?.buildCommit ?? BuildInfo.commit()
        out += "machine: \(machine.cpu), \(machine.cores) cores, \(mib(machine.memoryBytes, giB: true)) memory\n"
        out += "build: swiftkt \(commit); date: \(ISO8601DateFormatter().string(from: Date()))\n\n"
        out += "| model | size | params | backend | kernels | threads | test | t/s |\n"
        out += "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: |\n"
        for r in results {
            out += "| \(r.modelType) | \(mib(r.modelSize)) | \(parameters(r.modelNParams)) | \(r.backend) | \(r.kernels) | \(r.threads) "
                + "| \(r.test.name) | \(String(format: "%.2f ± %.2f", r.avgTs, r.stddevTs)) |\n"
        }
        out += "\n"
        var seen = Set<String>()
        for r in results where seen.insert("\(r.modelFilename)|\(r.threads)").inserted {
            let rssLoad = r.rssAfterLoad.map { mib($0) } ?? "n/a", rssEnd = r.rssAfterRuns.map { mib($0) } ?? "n/a"
            out += "memory (\((r.modelFilename as NSString).lastPathComponent), t=\(r.threads)): file \(mib(r.fileSize)), "
                + "RSS after load \(rssLoad), after runs \(rssEnd), KV cache \(mib(r.kvCacheBytes)) (n_ctx \(r.contextSize))\n"
        }
        return out
    }

    static func mib(_ bytes: Int, giB: Bool = false) -> String {
        giB ? String(format: "%.2f GiB", Double(bytes) / 1073741824) : String(format: "%.2f MiB", Double(bytes) / 1048576)
    }

    static func parameters(_ n: Int) -> String {
        n >= 1_000_000_000 ? String(format: "%.2f B", Double(n) / 1e9) : String(format: "%.2f M", Double(n) / 1e6)
    }
}

// MARK: - Model description

/// llama-bench's model_type ("llama 135M Q4_1"), parameter count and tensor bytes.
public struct ModelDescription: Sendable {
    public var type: String
    public var parameters: Int
    public var tensorBytes: Int
    /// "135M", "8.0B".
    public var size: String
    /// llama.cpp's file type name ("Q4_K - Medium").
    public var fileType: String

    public init(file: GGUFFile) {
        parameters = file.tensors.reduce(0) { $0 + $1.elementCount }
        tensorBytes = file.tensors.reduce(0) { $0 + $1.byteCount }
        size = parameters >= 1_000_000_000 ? String(format: "%.1fB", Double(parameters) / 1e9)
            : String(format: "%.0fM", Double(parameters) / 1e6)
        fileType = file.int(.fileType).flatMap { Self.fileTypeNames[$0] } ?? Self.dominantType(file)
        type = "\(file.architecture ?? "?") \(size) \(fileType)"
    }

    /// llama.cpp's `llama_ftype` names (general.file_type).
    static let fileTypeNames: [Int: String] = [
        0: "all F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K - Medium",
        11: "Q3_K - Small", 12: "Q3_K - Medium", 13: "Q3_K - Large", 14: "Q4_K - Small", 15: "Q4_K - Medium",
        16: "Q5_K - Small", 17: "Q5_K - Medium", 18: "Q6_K", 32: "BF16",
    ]

    /// Without general.file_type: the tensor type holding the most bytes.
    static func dominantType(_ file: GGUFFile) -> String {
        file.bytesByType.max { $0.bytes < $1.bytes }.map { "\($0.type)" } ?? "?"
    }
}

// MARK: - Machine and build

public struct MachineInfo: Sendable {
    /// CPU model name from /proc/cpuinfo.
    public var cpu: String
    public var cores: Int
    public var memoryBytes: Int

    public static func current() -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let cpu = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        return MachineInfo(cpu: cpu, cores: ProcessInfo.processInfo.activeProcessorCount,
                           memoryBytes: Int(ProcessInfo.processInfo.physicalMemory))
    }

    /// VmRSS from /proc/self/status, in bytes; nil where there is no procfs.
    public static func residentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kB = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return kB * 1024
    }
}

public enum BuildInfo {
    /// The commit reports name: `SWIFTKT_COMMIT` if set; else the first line of a file
    /// `<executable>.commit` beside the binary (`swiftkt.commit`: written where the binary is
    /// built, so that a copy run on another machine names its source); else `git rev-parse
    /// --short HEAD` of the repository holding the executable or of the working directory, read
    /// at run time (the binary may have been built from a working tree that differs from it);
    /// "unknown" without any of these.
    public static func commit() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first ?? "."
        return commit(environment: ProcessInfo.processInfo.environment, executable: exe)
    }

    static func commit(environment: [String: String], executable: String) -> String {
        if let c = environment["SWIFTKT_COMMIT"], !c.isEmpty { return c }
        if let text = try? String(contentsOfFile: executable + ".commit", encoding: .utf8),
           let line = text.split(whereSeparator: \.isNewline).first?.trimmingCharacters(in: .whitespaces), !line.isEmpty {
            return line
        }
        let exeDir = URL(fileURLWithPath: executable).deletingLastPathComponent().path
        for dir in [exeDir, FileManager.default.currentDirectoryPath] {
            if let hash = git(["-C", dir, "rev-parse", "--short", "HEAD"]), !hash.isEmpty { return hash }
        }
        return "unknown"
    }

    static func git(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
