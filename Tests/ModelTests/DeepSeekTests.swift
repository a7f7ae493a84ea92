// deepseek2 (DeepSeek-V2/V3; Models/DeepSeek2.swift, MLA.swift, the grouped routing of MoE.swift):
//   - tiny synthetic models against the numpy reference (scripts/reference/forward.py, which
//     decompresses MLA without weight absorption and routes independently): logits at every
//     position within 1e-3 of their scale with the reference kernels, prefill in chunks and
//     one token at a time; `tiny` is V3-like (q LoRA, split attn_k_b / attn_v_b absorbed,
//     sigmoid gating with exp_probs_b, groups, scaled weights, YaRN), `tiny-lite` V2-Lite-like
//     (attn_q, attn_kv_b, softmax, YaRN);
//   - the default kernels stay close to it; the routing function; the module tree and placement;
//     hyperparameters of the V2-Lite preset; what the CUDA backend makes of each MLA layout.
import Core
import CPUKernels
import CUDA
import Engine
import Foundation
import GGUF
@testable import Injection
@testable import Models
import ModelsCUDA
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

    /// Default kernels (8-bit activations, f16 cache): near exact numerics where no routing decision
    /// is a near tie (seed 7 of tiny-lite has none closer than 8-bit noise).
    func testQuantizedKernelsStayCloseToNumpyReference() throws {
        XCTAssertLessThanOrEqual(try relativeError("tiny-lite", type: .q4_K, kernels: "auto"), 3e-2)
    }

    func testGroupedRouting() {
        // 8 experts in 4 groups of 2, sigmoid gating, 2 groups kept, top-2, normalized, scale 2.
        var logits: [Float] = [3, -3, 0, 0, 2, 2, -1, 2.5]
        let bias: [Float] = [0, 0, 0, 0, 0, 0, 0, 0]
        var ids = [Int32](repeating: -1, count: 2), w = [Float](repeating: 0, count: 2)
        MoERouting.grouped(logits: &logits, tokens: 1, experts: 8, used: 2, gating: .sigmoid, bias: bias, groups: 4, groupsUsed: 2,
                           normalize: true, scale: 2, ids: &ids, weights: &w)
        // Group scores (sum of the two best sigmoids): g2 (2, 2) is best, then g3 (−1, 2.5) vs g0 (3, −3):
        // σ(−1) + σ(2.5) = 1.1957 > σ(3) + σ(−3) = 1. So expert 0 (the single best) is excluded.
        XCTAssertEqual(ids, [7, 4])
        let a = 1 / (1 + exp(Float(-2.5))), b = 1 / (1 + exp(Float(-2)))
        XCTAssertEqual(w[0], 2 * a / (a + b), accuracy: 1e-6)
        XCTAssertEqual(w[1], 2 * b / (a + b), accuracy: 1e-6)
        // A selection bias changes which experts are chosen, not their weights.
        logits = [0, 0, 0, 0, 0, 0, 0, 0]
        MoERouting.grouped(logits: &logits, tokens: 1, experts: 8, used: 2, gating: .softmax, bias: [0, 0, 0, 0.1, 0, 0.2, 0, 0],
                           groups: 0, groupsUsed: 0, normalize: false, scale: 0, ids: &ids, weights: &w)
        XCTAssertEqual(ids, [5, 3])
        XCTAssertEqual(w, [0.125, 0.125])
    }

    func testModuleTreeAndHyperparameters() throws {
        for shape in ["tiny", "tiny-lite"] {
            let path = try Self.make(shape)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let file = try GGUFFile.open(path)
            let tree = try Architectures.moduleTree(file: file)
            XCTAssertEqual(tree.unmappedTensors, [], shape)
            XCTAssertEqual(tree.module(named: "model.layers.0.mlp")?.kind, .mlp)
            XCTAssertEqual(tree.module(named: "model.layers.1.mlp")?.kind, .moe)
            XCTAssertEqual(tree.module(named: "model.layers.1.mlp.shared_expert")?.children.count, 3)
            let hp = try Hyperparameters(file: file)
            let s = try DeepSeek2.Settings(file: file, hyperparameters: hp)
            XCTAssertEqual([s.qkNope, s.qkRope, s.vDim, s.kvLoraRank], [128, 64, 128, 256])
            XCTAssertEqual(s.rope.extFactor, 1)
            let model = try Architectures.load(file: file)
            let mla = try XCTUnwrap(model.layers[0].attention as? MultiLatentAttention)
            if shape == "tiny" {
                XCTAssertTrue(s.splitKV && mla.absorbed)
                XCTAssertEqual(tree.module(named: "model.layers.1.mlp.gate")?.tensors.map(\.name),
                               ["blk.1.ffn_gate_inp.weight", "blk.1.exp_probs_b.bias"])
                XCTAssertEqual(s.gating, .sigmoid)
                XCTAssertEqual([s.groups, s.groupsUsed], [4, 2])
                XCTAssertEqual(mla.cacheKeyWidth, 256 + 64)              // one shared latent key
                // yarn_log_multiplier 0.1 → mscale_all_dim 1: attn_factor 1/(1 + 0.1 ln 4), scale mscale²/√192.
                let m = 1 + 0.1 * logf(4)
                XCTAssertEqual(s.attentionScale, m * m / Float(192).squareRoot(), accuracy: 1e-6)
            } else {
                XCTAssertTrue(!s.splitKV && !mla.absorbed && mla.q != nil)
                XCTAssertNotNil(tree.module(named: "model.layers.0.self_attn.kv_b_proj"))
                XCTAssertEqual(s.gating, .softmax)
                XCTAssertEqual(mla.cacheKeyWidth, 2 * 192)
            }
        }
    }

    /// The CUDA backend's MLA (CUDAModel+MLA.swift), checked without a GPU: files with attn_kv_b
    /// (with attn_q, or q LoRA) give its layer plan; the absorbed layout is refused by name.
    func testCUDAPlanTakesKVBFilesAndRefusesAbsorbed() throws {
        for shape in ["tiny-lite", "tiny-v2", "tiny"] {
            let path = try Self.make(shape)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let model = try Architectures.load(file: try GGUFFile.open(path))
            for (i, layer) in model.layers.enumerated() {
                let mla = try XCTUnwrap(layer.attention as? MultiLatentAttention)
                if shape == "tiny" {
                    XCTAssertThrowsError(try CUDAModel.latentShape(mla, layer: i)) {
                        XCTAssertTrue("\($0)".contains("split attn_k_b / attn_v_b") && "\($0)".contains("rules/cpu.yaml"), "\($0)")
                    }
                    continue
                }
                let s = try CUDAModel.latentShape(mla, layer: i)
                XCTAssertEqual([s.heads, s.qkNope, s.qkRope, s.vDim, s.rank, s.headDim], [2, 128, 64, 128, shape == "tiny-v2" ? 512 : 256, 192], shape)
                XCTAssertEqual(s.qLoraRank, shape == "tiny-v2" ? 768 : 0, shape)
                XCTAssertEqual(s.scale, mla.scale)
                // The GPU's YaRN parameters are the CPU's (V2-Lite's factor 40: freqScale 1/40, the ramp on).
                XCTAssertEqual(s.rope, GPUOps.Yarn(dimensions: 64, thetaScale: mla.rope.thetaScale, freqScale: 1 / 40, extFactor: 1,
                                                   correctionLow: mla.rope.correctionDims.0, correctionHigh: mla.rope.correctionDims.1,
                                                   magnitude: mla.rope.magnitude))
                XCTAssertEqual(mla.rope.magnitude, mla.rope.attnFactor * (1 + 0.1 * logf(40)))
            }
        }
    }

    func testV2LitePreset() throws {
        let s = try SyntheticModel.shape(architecture: "deepseek2", name: "deepseek-v2-lite")
        let ds = try XCTUnwrap(s.deepseek)
        XCTAssertEqual([s.blockCount, s.embedding, s.headCount, s.expertCount, s.expertUsedCount, s.expertFeedForward, s.feedForward, s.vocab],
                       [27, 2048, 16, 64, 6, 1408, 10944, 102_400])
        XCTAssertEqual([ds.qLoraRank, ds.kvLoraRank, ds.qkNope, ds.qkRope, ds.vDim, ds.leadingDense, ds.sharedCount],
                       [0, 512, 128, 64, 128, 1, 2])
    }
}
