// Layer ranges on several GPUs: the plan's transfer points (where the hidden state changes
// device along the trunk) and its per-GPU totals — planned as if cuda:0 and cuda:1 were here.
@testable import Engine
import Foundation
import CPUKernels
import GGUF
@testable import Injection
import Models
import ModelsCUDA
import Operators
import XCTest

final class TransferPointTests: XCTestCase {
    let twoGPUs = """
    - match: {name: "^model\\\\.embed_tokens$"}
      replace: {kwargs: {device: "cuda:0"}}
    - match: {layers: "0"}
      replace: {kwargs: {device: "cuda:0"}}
    - match: {layers: "1"}
      replace: {kwargs: {device: "cuda:1"}}
    - match: {name: "^(model\\\\.norm|lm_head|model\\\\.rotary_emb)$"}
      replace: {kwargs: {device: "cuda:1"}}
    - match: {class: Model}
      replace: {kwargs: {device: "cuda:0"}}
    """

    func testLayerRangesOnTwoGPUsGiveOneTransferPoint() throws {
        let p = try plan(twoGPUs, devices: [.cpu, .cuda(0), .cuda(1)])
        XCTAssertEqual(p.module("model.layers.0.self_attn.q_proj")?.generateDevice, .cuda(0))
        XCTAssertEqual(p.module("model.layers.1.mlp.down_proj")?.generateDevice, .cuda(1))
        XCTAssertEqual(p.transferPoints, [TransferPoint(module: "model.layers.1", from: .cuda(0), to: .cuda(1), phase: "both")])
        let text = p.text
        XCTAssertTrue(text.contains("Transfer points (the hidden state changes device)\n  before model.layers.1: cuda:0 → cuda:1\n"), text)
        // Each GPU's own weights and KV cache.
        let totals = Dictionary(uniqueKeysWithValues: p.totals.map { ($0.device, $0) })
        XCTAssertGreaterThan(totals[.cuda(0)]?.vram ?? 0, 0)
        XCTAssertGreaterThan(totals[.cuda(1)]?.vram ?? 0, 0)
        XCTAssertGreaterThan(totals[.cuda(0)]?.kvCache ?? 0, 0, "layer 0's cache on cuda:0")
        XCTAssertGreaterThan(totals[.cuda(1)]?.kvCache ?? 0, 0, "layer 1's cache on cuda:1")
        let json = try JSONSerialization.jsonObject(with: Data(try p.json().utf8)) as? [String: Any]
        let transfers = try XCTUnwrap(json?["transfers"] as? [[String: Any]])
        XCTAssertEqual(transfers.first?["before"] as? String, "model.layers.1")
        XCTAssertEqual(transfers.first?["to"] as? String, "cuda:1")
    }

    func testOneDeviceHasNoTransferPoints() throws {
        let p = try plan("- match: {class: Linear}\n  replace: {class: LinearCPUQuantized}\n")
        XCTAssertEqual(p.transferPoints, [])
        XCTAssertFalse(p.text.contains("Transfer points"))
        let json = try JSONSerialization.jsonObject(with: Data(try p.json().utf8)) as? [String: Any]
        XCTAssertNil(json?["transfers"], "no transfers key when the trunk stays on one device")
    }

    // The CUDA backend's split by layer ranges (LoadedModel.splitOverGPUs): what it refuses
    // before opening any GPU, and how layers group into pieces.
    func testSplitOverGPUsRefusesLayersAndTrunkEndsItCannotRun() throws {
        let model = try Architectures.load(file: try GGUFFile.open(try Tiny.path("llama")))
        let devices: [Device] = [.cpu, .cuda(0), .cuda(1)]
        func message(_ yaml: String) throws -> String {
            let p = try plan(yaml, devices: devices)
            do { _ = try LoadedModel.splitOverGPUs(model, p, numerics: CUDANumerics(), progress: { _ in }) } catch { return "\(error)" }
            return "no error"
        }
        // Layer 1's MLP on cuda:0 while its attention is on cuda:1.
        let layerSplit = try message("- match: {name: \"^model\\\\.layers\\\\.1\\\\.mlp\"}\n  replace: {kwargs: {device: \"cuda:0\"}}\n" + twoGPUs)
        XCTAssertTrue(layerSplit.contains("model.layers.1 on cuda:0 and cuda:1") && layerSplit.contains("whole on one GPU"), layerSplit)
        // The LM head away from the last layer.
        let head = try message("- match: {name: \"^lm_head$\"}\n  replace: {kwargs: {device: \"cuda:0\"}}\n" + twoGPUs)
        XCTAssertTrue(head.contains("lm_head on cuda:0") && head.contains("with the last layer (cuda:1)"), head)
    }

    // A mixture of experts on one GPU and the CPU (LoadedModel.placeOnGPU): the shared experts
    // may sit on the GPU (cuda-moe.yaml) or the CPU, but not split between them or on another
    // GPU — refused before any GPU is opened.
    func testPlaceOnGPURefusesSharedExpertsSplitFromTheirGPU() throws {
        let model = try Architectures.load(file: try GGUFFile.open(try Tiny.path("qwen2moe")))
        let moe = try XCTUnwrap(ShippedRules.text("cuda-moe.yaml"))
        let devices: [Device] = [.cpu, .cuda(0), .cuda(1)]
        func message(_ yaml: String) throws -> String {
            let p = try plan(yaml + moe, arch: "qwen2moe", devices: devices)
            let context = ForwardContext(pool: ThreadPool(threads: 1), kernels: .quantized)
            do { _ = try LoadedModel.placeOnGPU(model, p, cpuContext: context, progress: { _ in }) } catch { return "\(error)" }
            return "no error"
        }
        // The shared expert's MLP on the CPU, its linears on the GPU (cuda-moe.yaml's Linear rule).
        let split = try message("- match: {name: \"\\\\.mlp\\\\.shared_expert$\"}\n  replace: {class: MLPCPU, kwargs: {device: cpu}}\n")
        XCTAssertTrue(split.contains("some of the shared experts' modules on the CPU and some on a GPU"), split)
        // The shared experts on a second GPU.
        let other = try message("- match: {name: \"\\\\.mlp\\\\.shared_expert\"}\n  replace: {kwargs: {device: \"cuda:1\"}}\n")
        XCTAssertTrue(other.contains("the shared experts go on cuda:0"), other)
    }

    func testSplitPiecesAreRunsOfConsecutiveLayers() {
        let pieces = CUDASplitDecoder.pieces(layerDevices: [0, 0, 0, 1, 1, 0])
        XCTAssertEqual(pieces.map(\.device), [0, 1, 0])
        XCTAssertEqual(pieces.map(\.layers), [0..<3, 3..<5, 5..<6])
        XCTAssertEqual(CUDASplitDecoder.pieces(layerDevices: [2, 2]).map(\.layers), [0..<2])
        XCTAssertTrue(CUDASplitDecoder.pieces(layerDevices: [Int]()).isEmpty)
    }
}
