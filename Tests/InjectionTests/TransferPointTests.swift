// Layer ranges on several GPUs: the plan's transfer points (where the hidden state changes
// device along the trunk) and its per-GPU totals — planned as if cuda:0 and cuda:1 were here.
import Foundation
@testable import Injection
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
}
