// The host side of routed experts on the GPU: a chunk's (token, slot) pairs grouped by expert, and a
// layer's experts gathered into one upload buffer.
import CPUKernels
import Core
import Foundation
@testable import ModelsCUDA
import XCTest

final class ExpertStreamingTests: XCTestCase {
    func testPairsGroupedByExpertKeepTokenOrderAndSlotRows() throws {
        // 3 tokens, 2 slots each, 4 experts.
        let ids: [Int32] = [2, 0, 0, 3, 2, 1], weights: [Float] = [0.6, 0.4, 0.7, 0.3, 0.5, 0.5]
        let n = 3, k = 2, pairs = n * k
        let token = UnsafeMutablePointer<Int32>.allocate(capacity: pairs), dest = UnsafeMutablePointer<Int32>.allocate(capacity: pairs)
        let weight = UnsafeMutablePointer<Float>.allocate(capacity: pairs)
        defer { token.deallocate(); dest.deallocate(); weight.deallocate() }
        let start = try CUDADecoder.groupPairs(ids: ids, weights: weights, tokens: n, used: k, experts: 4,
                                               token: token, destination: dest, weight: weight)
        XCTAssertEqual(start, [0, 2, 3, 5, 6])
        XCTAssertEqual((0..<pairs).map { token[$0] }, [0, 1, 2, 0, 2, 1], "expert 0: tokens 0, 1; 1: 2; 2: 0, 2; 3: 1")
        // Destination rows j · n + t: token 0 slot 1 → 3, token 1 slot 0 → 1, …
        XCTAssertEqual((0..<pairs).map { dest[$0] }, [3, 1, 5, 0, 2, 4])
        XCTAssertEqual((0..<pairs).map { weight[$0] }, [0.4, 0.7, 0.5, 0.6, 0.5, 0.3])
        // Every slot row written once.
        XCTAssertEqual(Set((0..<pairs).map { dest[$0] }).count, pairs)
        XCTAssertThrowsError(try CUDADecoder.groupPairs(ids: [4, 0], weights: [1, 1], tokens: 1, used: 2, experts: 4,
                                                        token: token, destination: dest, weight: weight))
    }

    func testLayerGatheredAsGateUpDownWithScatteredExperts() {
        // Three experts of q8_0 [2, 32] (68 bytes each): gate contiguous, up and down scattered.
        let matrixBytes = 68, experts = 3
        let source = UnsafeMutableRawPointer.allocate(byteCount: 9 * matrixBytes + 64, alignment: 16)
        defer { source.deallocate() }
        for i in 0..<(9 * matrixBytes + 64) { source.storeBytes(of: UInt8(truncatingIfNeeded: i * 7 + 3), toByteOffset: i, as: UInt8.self) }
        func family(_ offsets: [Int]) -> ExpertStreamer.Family {
            ExpertStreamer.Family(type: .q8_0, rows: 2, cols: 32, count: experts, hosts: offsets.map { UnsafeRawPointer(source + $0) })
        }
        let gate = family([0, 68, 136]), up = family([400, 204, 272]), down = family([340, 476, 544 + 64])
        XCTAssertTrue(gate.contiguous)
        XCTAssertFalse(up.contiguous)
        let layer = ExpertStreamer.Layer(gate: gate, up: up, down: down)
        XCTAssertEqual(layer.bytes, 9 * matrixBytes)
        let out = UnsafeMutableRawPointer.allocate(byteCount: layer.bytes, alignment: 16)
        defer { out.deallocate() }
        ExpertStreamer.gather(layer, into: out, pool: ThreadPool(threads: 2))
        // Gate experts 0…2, then up's, then down's, each expert's bytes as in its own place.
        for (f, family) in [gate, up, down].enumerated() {
            for e in 0..<experts {
                let at = out + (f * experts + e) * matrixBytes
                XCTAssertEqual(memcmp(at, family.hosts[e], matrixBytes), 0, "family \(f), expert \(e)")
            }
        }
        XCTAssertNotNil(ExpertStreamer.availableMemory(), "MemAvailable from /proc/meminfo")
    }
}
