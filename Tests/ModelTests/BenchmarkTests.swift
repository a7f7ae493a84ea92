// `swiftkt bench` on a tiny synthetic llama: the structure of the results (one row per test
// and thread count, one sample per repetition, positive rates, llama-bench's JSON field
// names). Never timing thresholds: the machine is shared.
import Core
@testable import Engine
import Foundation
import GGUF
import Models
import XCTest

final class BenchmarkTests: XCTestCase {
    static func makeTinyLlama() throws -> String {
        let shape = try SyntheticModel.shape(architecture: "llama", name: "tiny")
        let writer = try SyntheticModel.build(architecture: "llama", shape: shape, type: .q4_0, seed: 1)
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("swiftkt-bench-llama-q4_0-\(getpid()).gguf").path
        try writer.write(to: path)
        return path
    }

    /// The size LoadedModel checks a context against is the size of the cache it then builds.
    func testCacheByteCountIsTheBuiltCachesSize() throws {
        let path = try Self.makeTinyLlama()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try Architectures.load(file: try GGUFFile.open(path))
        for element in [CacheElement.f16, .f32] {
            XCTAssertEqual(model.cacheByteCount(capacity: 37, element: element), model.makeCache(capacity: 37, element: element).byteCount)
        }
        XCTAssertNil(model.cacheByteCount(capacity: Int.max / 2, element: .f16), "past Int")
    }

    func testResultsHaveOneRowPerTestAndThreadCount() throws {
        let path = try Self.makeTinyLlama()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var options = BenchmarkOptions()
        options.promptLengths = [16, 0, 8]   // 0 disables, as in llama-bench
        options.generationLengths = [4]
        options.threads = [1, 2]
        options.repetitions = 3
        options.batchSize = 8                // pp16 runs as two chunks
        var progress: [String] = []
        let results = try Benchmark.run(path: path, options: options) { progress.append($0) }

        XCTAssertEqual(results.map(\.test.name), ["pp16", "pp8", "tg4", "pp16", "pp8", "tg4"])
        XCTAssertEqual(results.map(\.threads), [1, 1, 1, 2, 2, 2])
        // (Loading may also report the repacking of weights for the CPU's SIMD kernels.)
        XCTAssertEqual(progress.filter { !$0.hasPrefix("repacked") }.count, 2 + 3 * 3 * 2,
                       "one load line per thread count, one line per repetition")
        for r in results {
            XCTAssertEqual(r.samplesNs.count, 3)
            XCTAssertEqual(r.samplesTs.count, 3)
            XCTAssertTrue(r.samplesTs.allSatisfy { $0 > 0 && $0.isFinite })
            XCTAssertGreaterThan(r.avgTs, 0)
            XCTAssertGreaterThanOrEqual(r.stddevTs, 0)
            XCTAssertEqual(r.contextSize, 16, "context = the longest test")
            XCTAssertGreaterThan(r.kvCacheBytes, 0)
            XCTAssertGreaterThan(r.modelNParams, 0)
            XCTAssertGreaterThan(r.modelSize, 0)
            XCTAssertTrue(r.modelType.hasPrefix("llama "), r.modelType)
            XCTAssertFalse(r.cpuInfo.isEmpty)
            XCTAssertFalse(r.buildCommit.isEmpty)
#if os(Linux)
            XCTAssertGreaterThan(r.rssAfterLoad ?? 0, 0)
            XCTAssertGreaterThan(r.rssAfterRuns ?? 0, 0)
#endif
        }
        XCTAssertEqual(results[0].test, BenchmarkTest(nPrompt: 16, nGen: 0))
        XCTAssertEqual(results[2].test, BenchmarkTest(nPrompt: 0, nGen: 4))
    }

    /// llama-bench's -d: each test after D tokens already in the cache, named "tg4 @ d8".
    func testDepth() throws {
        let path = try Self.makeTinyLlama()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var options = BenchmarkOptions()
        options.promptLengths = [4]
        options.generationLengths = [2]
        options.depths = [0, 8]
        options.threads = [1]
        options.repetitions = 1
        let results = try Benchmark.run(path: path, options: options)
        XCTAssertEqual(results.map(\.test.name), ["pp4", "pp4 @ d8", "tg2", "tg2 @ d8"])
        XCTAssertEqual(results[0].contextSize, 12, "context = the longest test and its depth")
        XCTAssertTrue(try Benchmark.json(results).contains("\"n_depth\" : 8"))
        options.depths = [-1]
        XCTAssertThrowsError(try Benchmark.run(path: path, options: options))
    }

    func testJSONUsesLlamaBenchFieldNames() throws {
        let path = try Self.makeTinyLlama()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var options = BenchmarkOptions()
        options.promptLengths = [8]
        options.generationLengths = [2]
        options.threads = [1]
        options.repetitions = 2
        let results = try Benchmark.run(path: path, options: options)
        let json = try Benchmark.json(results)
        let array = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        XCTAssertEqual(array.count, 2)
        let required = ["n_prompt", "n_gen", "n_threads", "avg_ts", "stddev_ts", "samples_ts", "samples_ns",
                        "model_filename", "model_type", "model_size", "model_n_params", "build_commit", "cpu_info",
                        "test_time", "kernels", "kv_cache_bytes", "rss_after_load_bytes", "rss_after_runs_bytes"]
        for object in array {
            for key in required { XCTAssertNotNil(object[key], "missing \(key)") }
            XCTAssertEqual((object["samples_ts"] as? [Double])?.count, 2)
        }
        XCTAssertEqual(array[0]["n_prompt"] as? Int, 8)
        XCTAssertEqual(array[0]["n_gen"] as? Int, 0)
        XCTAssertEqual(array[1]["n_prompt"] as? Int, 0)
        XCTAssertEqual(array[1]["n_gen"] as? Int, 2)
        XCTAssertEqual(array[0]["n_threads"] as? Int, 1)
        XCTAssertEqual(array[0]["model_filename"] as? String, path)

        let table = Benchmark.markdown(results)
        XCTAssertTrue(table.contains("| model | size | params | backend | kernels | threads | test | t/s |"))
        XCTAssertTrue(table.contains("| pp8 |") && table.contains("| tg2 |"))
        XCTAssertTrue(table.contains("machine: ") && table.contains("build: swiftkt ") && table.contains("memory ("))
    }

    func testStandardDeviationIsTheSampleOne() {
        XCTAssertEqual(Benchmark.mean([1, 2, 3, 4]), 2.5)
        XCTAssertEqual(Benchmark.stddev([2, 4, 4, 4, 5, 5, 7, 9]), (32.0 / 7).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(Benchmark.stddev([5]), 0)
    }

    func testRejectsEmptyOrInvalidTests() throws {
        var options = BenchmarkOptions()
        options.promptLengths = [0]
        options.generationLengths = [0]
        XCTAssertThrowsError(try Benchmark.run(path: "/nonexistent.gguf", options: options))
        options.promptLengths = [8]
        options.threads = [0]
        XCTAssertThrowsError(try Benchmark.run(path: "/nonexistent.gguf", options: options))
    }

    func testCommitNameFromEnvironmentThenFileBesideTheBinary() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-commit-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let exe = dir.appendingPathComponent("swiftkt").path
        try "abc1234\nbuilt from a dirty tree\n".write(toFile: exe + ".commit", atomically: true, encoding: .utf8)
        XCTAssertEqual(BuildInfo.commit(environment: [:], executable: exe), "abc1234")
        XCTAssertEqual(BuildInfo.commit(environment: ["SWIFTKT_COMMIT": "fff0000"], executable: exe), "fff0000")
        // An empty file falls through to git (or "unknown"), never to an empty name.
        try "\n".write(toFile: exe + ".commit", atomically: true, encoding: .utf8)
        XCTAssertFalse(BuildInfo.commit(environment: [:], executable: exe).isEmpty)
        XCTAssertNotEqual(BuildInfo.commit(environment: [:], executable: exe), "abc1234")
    }
}
