// The host side of routed experts on the GPU: a chunk's (token, slot) pairs grouped by expert.
import Core
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
}
