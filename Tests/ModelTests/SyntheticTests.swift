// Tiny synthetic models of every architecture against the independent numpy reference
// (scripts/reference/forward.py, reading the same GGUF through the `gguf` package):
// logits at every position agree within 1e-3 relative to their scale.
import Core
import Engine
import Foundation
import GGUF
import Models
import XCTest

struct ReferenceFailure: Error, CustomStringConvertible { var message: String; var description: String { message } }

final class SyntheticTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Writes the tiny preset of `arch` in `type` to a temp file and returns its path.
    static func makeTiny(_ arch: String, type: GGMLType = .q8_0, seed: UInt64 = 7) throws -> String {
        let shape = try SyntheticModel.shape(architecture: arch, name: "tiny")
        let writer = try SyntheticModel.build(architecture: arch, shape: shape, type: type, seed: seed)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-\(arch)-\(type)-\(seed)-\(getpid()).gguf").path
        try writer.write(to: path)
        return path
    }

    /// Runs the numpy reference; returns logits [tokens, vocab].
    static func referenceLogits(model: String, tokens: [Int32]) throws -> [Float] {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ref-\(UUID().uuidString).npy").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repoRoot.appendingPathComponent("scripts/reference/forward.py").path, model,
                       "--tokens", tokens.map(String.init).joined(separator: ","), "--out", out]
        let err = Pipe()
        p.standardError = err
        try p.run()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw ReferenceFailure(message: "numpy reference failed (scripts/test.sh installs gguf+numpy): "
                                   + String(decoding: errData, as: UTF8.self))
        }
        return try loadNpyFloat32(out)
    }

    /// Minimal .npy reader for little-endian float32 C-order arrays.
    static func loadNpyFloat32(_ path: String) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLen = Int(data[8]) | Int(data[9]) << 8
        let header = String(decoding: data[10..<(10 + headerLen)], as: UTF8.self)
        precondition(header.contains("'<f4'") && header.contains("'fortran_order': False"), "unexpected npy header \(header)")
        let body = data[(10 + headerLen)...]
        return body.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func checkAgainstReference(_ arch: String, type: GGMLType = .q8_0, kernels: String = "reference",
                               bound: Float = 1e-3) throws {
        let path = try Self.makeTiny(arch, type: type)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var options = LoadOptions()
        options.threads = 2
        options.batchSize = 5  // several chunks, so the cache path is exercised
        options.kernels = kernels
        let model = try LoadedModel(path: path, options: options)
        let tokens: [Int32] = [1, 300, 301, 77, 500, 12, 640 - 1, 42, 42, 3, 250, 99, 7]
        let ours = try model.makeSession().evaluate(tokens, mode: .all)
        let reference = try Self.referenceLogits(model: path, tokens: tokens)
        XCTAssertEqual(ours.count, reference.count)
        let scale = reference.map { abs($0) }.max() ?? 1
        var worst: Float = 0
        for i in 0..<min(ours.count, reference.count) { worst = max(worst, abs(ours[i] - reference[i])) }
        XCTAssertLessThanOrEqual(worst / scale, bound, "\(arch) \(kernels): max |Δ| \(worst) vs scale \(scale)")
    }

    func testLlamaMatchesNumpyReference() throws { try checkAgainstReference("llama") }
    func testQwen2MatchesNumpyReference() throws { try checkAgainstReference("qwen2") }
    func testQwen3MatchesNumpyReference() throws { try checkAgainstReference("qwen3") }
    func testGemma3MatchesNumpyReference() throws { try checkAgainstReference("gemma3") }
    func testLlamaQ4KMatchesNumpyReference() throws { try checkAgainstReference("llama", type: .q4_K) }

    /// The default kernels (8-bit activations, f16 KV cache) stay close to exact numerics.
    func testQuantizedKernelsStayCloseToNumpyReference() throws {
        for arch in ["llama", "qwen2", "qwen3", "gemma3"] {
            try checkAgainstReference(arch, type: .q4_K, kernels: "auto", bound: 3e-2)
        }
    }

    func testSyntheticFileIsDeterministic() throws {
        let shape = try SyntheticModel.shape(architecture: "llama", name: "tiny")
        let a = try SyntheticModel.build(architecture: "llama", shape: shape, type: .q4_0, seed: 3).serialized()
        let b = try SyntheticModel.build(architecture: "llama", shape: shape, type: .q4_0, seed: 3).serialized()
        let c = try SyntheticModel.build(architecture: "llama", shape: shape, type: .q4_0, seed: 4).serialized()
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
    }

    /// `--down-type`: the down projections (routed here) in their own type, the rest in `type`.
    func testDownTypeMixesLikeQ4KM() throws {
        let shape = try SyntheticModel.shape(architecture: "qwen3moe", name: "tiny")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-q4km-\(getpid()).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SyntheticModel.build(architecture: "qwen3moe", shape: shape, type: .q4_K, downType: .q6_K, seed: 7).write(to: path)
        let file = try GGUFFile.open(path)
        XCTAssertEqual(file.tensor(named: "blk.0.ffn_down_exps.weight")?.type, .q6_K)
        XCTAssertEqual(file.tensor(named: "blk.0.ffn_gate_exps.weight")?.type, .q4_K)
        XCTAssertEqual(file.tensor(named: "blk.0.attn_q.weight")?.type, .q4_K)
    }

    func testUnknownPresetErrorsListChoices() {
        XCTAssertThrowsError(try SyntheticModel.shape(architecture: "llama", name: "huge")) { error in
            XCTAssertTrue("\(error)".contains("tiny"), "\(error)")
        }
        XCTAssertThrowsError(try SyntheticModel.shape(architecture: "gpt-j", name: "tiny")) { error in
            XCTAssertTrue("\(error)".contains("gemma3"), "\(error)")
        }
    }
}
