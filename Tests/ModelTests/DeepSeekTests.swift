// deepseek2 (DeepSeek-V2/V3; Models/DeepSeek2.swift, MLA.swift, the grouped routing of MoE.swift):
//   - tiny synthetic models against the numpy reference (scripts/reference/forward.py, which
//     decompresses MLA without weight absorption and routes independently): logits at every
//     position within 1e-3 of their scale with the reference kernels, prefill in chunks and
//     one token at a time; `tiny` is V3-like (q LoRA, split attn_k_b / attn_v_b absorbed,
//     sigmoid gating with exp_probs_b, groups, scaled weights, YaRN), `tiny-lite` V2-Lite-like
//     (attn_q, attn_kv_b, softmax, YaRN);
//   - the default kernels stay close to it; the routing function; the module tree and placement;
//     hyperparameters of the V2-Lite preset.
import Core
import CPUKernels
import Engine
import Foundation
import GGUF
@testable import Injection
@testable import Models
import Operators
import XCTest

final class DeepSeekTests: XCTestCase {
    let tokens: [Int32] = [1, 300, 301, 77, 500, 12, 640 - 1, 42, 42, 3, 250, 99, 7]

    static func make(_ shape: String, type: GGMLType = .q8_0, seed: UInt64 = 7) throws -> String {
        let s = try SyntheticModel.shape(architecture: "deepseek2", name: shape)
        let writer = try SyntheticModel.build(architecture: "deepseek2", shape: s, type: type, seed: seed)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-deepseek2-\(shape)-\(type)-\(seed)-\(getpid()).gguf").path
        try writer.write(to: path)
        return path
    }

    /// Max |ours − numpy| over all logits, relative to the largest |numpy logit|.
    func relativeError(_ shape: String, type: GGMLType = .q8_0, kernels: String = "reference", batchSize: Int = 5,
                       seed: UInt64 = 7) throws -> Float {
        let path = try Self.make(shape, type: type, seed: seed)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var options = LoadOptions()
        options.threads = 2
        options.batchSize = batchSize
        options.kernels = kernels
        let model = try LoadedModel(path: path, options: options)
        XCTAssertEqual(model.placement.warnings, [], shape)
        let ours = try model.makeSession().evaluate(tokens, mode: .all)
        let reference = try SyntheticTests.referenceLogits(model: path, tokens: tokens)
        XCTAssertEqual(ours.count, reference.count)
        let scale = reference.map { abs($0) }.max() ?? 1
        var worst: Float = 0
        for i in 0..<min(ours.count, reference.count) { worst = max(worst, abs(ours[i] - reference[i])) }
        print("deepseek2 \(shape) \(type) \(kernels) batch \(batchSize): max |Δ| / scale = \(worst / scale)")
        return worst / scale
    }

    func testTinyV3MatchesNumpyReference() throws { XCTAssertLessThanOrEqual(try relativeError("tiny"), 1e-3) }
    func testTinyLiteMatchesNumpyReference() throws { XCTAssertLessThanOrEqual(try relativeError("tiny-lite"), 1e-3) }
    func testTinyQ4KMatchesNumpyReference() throws {
        XCTAssertLessThanOrEqual(try relativeError("tiny", type: .q4_K), 1e-3)
        XCTAssertLessThanOrEqual(try relativeError("tiny-lite", type: .q4_K), 1e-3)
    }
    /// One token per forward pass: every step is a decode step over the cache.
    func testDecodeStepsMatchNumpyReference() throws {
        XCTAssertLessThanOrEqual(try relativeError("tiny", batchSize: 1), 1e-3)
        XCTAssertLessThanOrEqual(try relativeError("tiny-lite", batchSize: 1), 1e-3)
    }
}
