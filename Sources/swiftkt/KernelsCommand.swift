// `swiftkt kernels`: the CPU matmul kernels alone, on random matrices of GGUF quant types —
// microseconds per call, weight bytes per second and integer ops per second. For kernel work:
// the model benchmark (`swiftkt bench`) is what users compare.
import ArgumentParser
import CPUKernels
import Core
import Foundation

struct KernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Time the CPU quantized matmul kernels on random weights (GEMV and GEMM).",
        discussion: """
        Each test cycles through enough [rows, cols] matrices to hold about --working-set MiB, so
        decode-sized calls read their weights from memory as a model's decode step does.
        Activations are quantized inside each call, as in a forward pass.
        Example: swiftkt kernels --types q4_1,q8_0 --rows 2048 --cols 2048 --tokens 1,64 -t 1,2
        """)

    @Option(help: "Weight types, comma-separated.")
    var types = "q4_0,q4_1,q5_0,q8_0,q4_K,q6_K"

    @Option(help: "Output features (rows) per matrix.")
    var rows = 2048

    @Option(help: "Input features (columns) per matrix; a multiple of each type's block (32, or 256 for k-quants).")
    var cols = 2048

    @Option(help: "Tokens per call, comma-separated (1 = decode GEMV).")
    var tokens = "1,64"

    @Option(name: .shortAndLong, help: "Thread counts, comma-separated.")
    var threads = "1"

    @Option(help: "Working set in MiB (matrices are cycled through).")
    var workingSet = 96

    @Option(help: "Seconds per measurement (at least).")
    var seconds = 1.0

    @Option(help: "Kernel ISA: best, amx, tuned, avx512, avx2 or baseline (tuned: per type and batch, whichever of AVX-512 and AVX2 measured faster; the default on AVX-512 machines; amx: tuned with AMX tiles for q4_K batches, the default on AMX machines unless SWIFTKT_AMX=0).")
    var isa = "best"

    @Flag(help: "Instead of timing: check every kernel ISA of this CPU against the scalar reference, bit for bit (odd shapes, 1–35 tokens, 1 and 2 threads); non-zero exit on a mismatch.")
    var check = false

    func run() throws {
        if check { return try runCheck() }
        let typeList = try types.split(separator: ",").map { name -> GGMLType in
            guard let t = GGMLType.allCases.first(where: { $0.name.lowercased() == name.lowercased() }),
                  QuantizedDot.supports(t) || t == .f16 || t == .bf16 || t == .f32 else {
                throw ValidationError("unknown or unsupported type '\(name)'; kernels exist for q4_0 q4_1 q5_0 q5_1 q8_0 q4_K q5_K q6_K f16 bf16 f32")
            }
            return t
        }
        let tokenList = try parseList(tokens, "--tokens"), threadList = try parseList(threads, "-t")
        guard rows > 0, cols > 0 else { throw ValidationError("--rows and --cols must be positive") }
        guard rows <= 1 << 20, cols <= 1 << 20 else { throw ValidationError("--rows and --cols must be at most 1048576") }
        guard (1...65_536).contains(workingSet) else { throw ValidationError("--working-set must be 1…65536 MiB, got \(workingSet)") }
        guard seconds.isFinite, seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600], got \(seconds)") }
        guard !typeList.isEmpty else { throw ValidationError("--types names no type") }
        guard tokenList.allSatisfy({ (1...4096).contains($0) }) else { throw ValidationError("--tokens must each be 1…4096") }
        guard threadList.allSatisfy({ (1...ThreadPool.maxThreads).contains($0) }) else {
            throw ValidationError("-t must each be 1…\(ThreadPool.maxThreads) (this machine has \(ProcessInfo.processInfo.activeProcessorCount) cores)")
        }
        // The working set's bytes must fit this machine's memory (matrices and activations).
        let need = UInt64(workingSet) << 20 + UInt64(tokenList.max() ?? 1) * UInt64(rows + cols) * 4
        guard need < ProcessInfo.processInfo.physicalMemory / 2 else {
            throw ValidationError("--working-set \(workingSet) MiB with these shapes needs more than half of this machine's memory")
        }
        for t in typeList where cols % t.blockSize != 0 {
            throw ValidationError("--cols \(cols) is not a multiple of \(t.name)'s block of \(t.blockSize)")
        }
        let chosen: KernelISA
        if isa == "best" { chosen = .best } else {
            guard let i = KernelISA.available.first(where: { "\($0)" == isa }) else {
                let hint = isa == "amx" ? "; amx needs a CPU with AMX-TILE and AMX-INT8, and SWIFTKT_AMX not 0" : ""
                throw ValidationError("--isa \(isa) is not available here (available: \(KernelISA.available.map { "\($0)" }.joined(separator: ", "))\(hint))")
            }
            chosen = i
        }
        print("| type | rows × cols | tokens | threads | isa | µs/call | weight GB/s | GOP/s |")
        print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
        var rng = SeededGenerator(seed: 1)
        for type in typeList {
            let bytes = type.byteCount(elements: cols) * rows
            let count = max(1, (workingSet << 20) / bytes)
            var storage: [UnsafeMutableRawPointer] = []
            defer { storage.forEach { $0.deallocate() } }
            var matrices: [WeightMatrix] = []
            for _ in 0..<count {
                let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
                fillRandomBlocks(p, type: type, blocks: rows * cols / type.blockSize, rng: &rng)
                storage.append(p)
                matrices.append(WeightMatrix(type: type, rows: rows, cols: cols, data: p))
            }
            for t in threadList {
                let pool = ThreadPool(threads: t)
                for n in tokenList {
                    let x = (0..<(n * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
                    var y = [Float](repeating: 0, count: n * rows)
                    // Warm-up: packs every matrix and touches the pages.
                    for m in matrices { Matmul.quantized(m, x: x, y: &y, tokens: n, pool: pool, isa: chosen) }
                    var calls = 0
                    let start = DispatchTime.now().uptimeNanoseconds
                    var elapsed = 0.0
                    repeat {
                        for m in matrices { Matmul.quantized(m, x: x, y: &y, tokens: n, pool: pool, isa: chosen) }
                        calls += matrices.count
                        elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    } while elapsed < seconds
                    let perCall = elapsed / Double(calls)
                    print(String(format: "| %@ | %d × %d | %d | %d | %@ | %.1f | %.1f | %.1f |", type.name, rows, cols, n, t, "\(chosen)",
                                 perCall * 1e6, Double(bytes) / perCall / 1e9, 2 * Double(rows * cols * n) / perCall / 1e9))
                }
            }
        }
    }

    /// Every available ISA's `Matmul.quantized` against `Matmul.quantizedReference` (the scalar
    /// per-row dot product) on random blocks: the unit test's check, for machines without Swift.
    private func runCheck() throws {
        let typeList = types.split(separator: ",").compactMap { GGMLType(name: String($0)) }.filter(QuantizedDot.supports)
        var rng = SeededGenerator(seed: 42)
        var checked = 0, failures: [String] = []
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            for type in typeList {
                for cols in type.blockSize == 256 ? [256, 768] : [32, 96, 576] {
                    for rows in [1, 5, 13, 17] {
                        let bytes = UnsafeMutableRawPointer.allocate(byteCount: type.byteCount(elements: cols) * rows, alignment: 64)
                        defer { bytes.deallocate() }
                        fillRandomBlocks(bytes, type: type, blocks: rows * cols / type.blockSize, rng: &rng)
                        let w = WeightMatrix(type: type, rows: rows, cols: cols, data: bytes)
                        for tokens in [1, 2, 3, 4, 5, 8, 9, 13, 17, 20, 35] {
                            let x = (0..<(tokens * cols)).map { _ in rng.nextNormal() }
                            var slow = [Float](repeating: .nan, count: tokens * rows)
                            Matmul.quantizedReference(w, x: x, y: &slow, tokens: tokens, pool: pool)
                            for isa in KernelISA.available {
                                var fast = [Float](repeating: .nan, count: tokens * rows)
                                Matmul.quantized(w, x: x, y: &fast, tokens: tokens, pool: pool, isa: isa)
                                checked += 1
                                if let i = fast.indices.first(where: { fast[$0].bitPattern != slow[$0].bitPattern }) {
                                    failures.append("\(isa) \(type.name) [\(rows), \(cols)] tokens \(tokens) threads \(threads): y[\(i)] = \(fast[i]) vs \(slow[i])")
                                }
                            }
                        }
                    }
                }
            }
        }
        print("kernel check: ISAs \(KernelISA.available.map { "\($0)" }.joined(separator: ", ")); \(checked) matmuls, \(failures.count) mismatches")
        for f in failures.prefix(20) { print("  " + f) }
        if !failures.isEmpty { throw ExitCode.failure }
    }

    private func parseList(_ text: String, _ flag: String) throws -> [Int] {
        let values = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count == text.split(separator: ",").count, values.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("\(flag) takes positive integers separated by commas, got '\(text)'")
        }
        return values
    }

    /// Random quant bytes with moderate f16 scales (d, and m/dmin where the block has them).
    private func fillRandomBlocks(_ p: UnsafeMutableRawPointer, type: GGMLType, blocks: Int, rng: inout SeededGenerator) {
        let size = type.typeSize
        for i in 0..<(blocks * size) { p.storeBytes(of: UInt8.random(in: 0...255, using: &rng), toByteOffset: i, as: UInt8.self) }
        if type == .f16 || type == .bf16 || type == .f32 {
            for e in 0..<(blocks * type.blockSize) {
                let v = Float.random(in: -1...1, using: &rng)
                if type == .f16 { p.storeBytes(of: floatToHalf(v), toByteOffset: 2 * e, as: UInt16.self) }
                else if type == .bf16 { p.storeBytes(of: floatToBF16(v), toByteOffset: 2 * e, as: UInt16.self) }
                else { p.storeBytes(of: v, toByteOffset: 4 * e, as: Float.self) }
            }
            return
        }
        let fields: [Int]
        switch type {
        case .q4_1, .q5_1, .q4_K, .q5_K: fields = [0, 2]
        case .q6_K: fields = [208]
        default: fields = [0]
        }
        for b in 0..<blocks {
            for f in fields {
                p.storeBytes(of: floatToHalf(Float.random(in: -0.05...0.05, using: &rng)), toByteOffset: b * size + f, as: UInt16.self)
            }
        }
    }
}
