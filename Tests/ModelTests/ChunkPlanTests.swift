// How a GPU run is cut into chunks (CUDADecoder.chunks, shared by one-GPU decoders and the pieces
// of a split model): every token once, in order, at most maxBatch per chunk, and the logits rows
// each mode asks for, placed in the right chunk.
import Models
@testable import ModelsCUDA
import XCTest

final class ChunkPlanTests: XCTestCase {
    func testChunksCoverTheTokensAndPlaceTheLogitRows() {
        func plan(_ n: Int, _ b: Int, _ mode: LogitsMode) -> [[Int]] {
            CUDADecoder.chunks(count: n, maxBatch: b, mode: mode).map { [$0.start, $0.end, $0.first, $0.rows] }
        }
        // 10 tokens in chunks of 4: 0..<4, 4..<8, 8..<10.
        XCTAssertEqual(plan(10, 4, .none), [[0, 4, 0, 0], [4, 8, 0, 0], [8, 10, 0, 0]])
        XCTAssertEqual(plan(10, 4, .last), [[0, 4, 0, 0], [4, 8, 0, 0], [8, 10, 1, 1]])
        XCTAssertEqual(plan(10, 4, .all), [[0, 4, 0, 4], [4, 8, 0, 4], [8, 10, 0, 2]])
        // From token 5: rows 5, 6, 7 in the second chunk (from its row 1), 8 and 9 in the third.
        XCTAssertEqual(plan(10, 4, .from(5)), [[0, 4, 0, 0], [4, 8, 1, 3], [8, 10, 0, 2]])
        // From a chunk's first token, and from beyond the end (clamped to the last token).
        XCTAssertEqual(plan(10, 4, .from(4)), [[0, 4, 0, 0], [4, 8, 0, 4], [8, 10, 0, 2]])
        XCTAssertEqual(plan(10, 4, .from(99)), [[0, 4, 0, 0], [4, 8, 0, 0], [8, 10, 1, 1]])
        // One decode token; an exact multiple of the batch.
        XCTAssertEqual(plan(1, 512, .last), [[0, 1, 0, 1]])
        XCTAssertEqual(plan(8, 4, .last), [[0, 4, 0, 0], [4, 8, 3, 1]])
        XCTAssertTrue(plan(0, 4, .all).isEmpty)
    }
}
