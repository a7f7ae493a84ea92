// The decode step's L2 prefetch plan: which weight bytes each GEMV launch asks for.
import CUDA
import Core
@testable import ModelsCUDA
import XCTest

final class WeightPrefetchTests: XCTestCase {
    /// q8_0 rows of 32 columns are 34 bytes: `rows` such rows.
    private func matrix(_ pointer: CUdeviceptr, rows: Int) -> DeviceMatrix {
        DeviceMatrix(type: .q8_0, rows: rows, cols: 32, pointer: pointer)
    }

    func testEachLaunchAsksForTheWindowAheadOnceAndTheHeadWrapsToTheFirstLayer() {
        // Four matrices of 3 400, 1 700, 6 800 and 3 400 bytes at distinct 64 KiB-aligned addresses.
        let a = matrix(0x10000, rows: 100), b = matrix(0x20000, rows: 50), c = matrix(0x30000, rows: 200), head = matrix(0x50000, rows: 100)
        var plan = WeightPrefetch(matrices: [a, b, c, head], window: 4000)
        XCTAssertEqual(plan.total, 15_300)
        plan.beginStep()
        // The previous step's head asked for the first 4 000 bytes (a and b's first 600). After a
        // (ends at 3 400): up to 7 400 — the rest of b and c's first 2 300 bytes.
        let first = plan.ranges(after: [a])
        XCTAssertEqual(first.map(\.pointer), [0x20000 + 608, 0x30000])
        XCTAssertEqual(first.map(\.bytes), [1696 - 608, 2288], "whole 16-byte units inside each matrix")
        // After b (ends at 5 100): up to 9 100, of which 7 400 ..< 9 100 is new (c from 2 300 to 4 000).
        let second = plan.ranges(after: [b])
        XCTAssertEqual(second.map(\.pointer), [0x30000 + 2304])
        XCTAssertEqual(second.map(\.bytes), [4000 - 2304])
        // After c (ends at 11 900): the head, then past the end of the step the next step's a.
        // (c's own last bytes are read by c's launch: not asked for.)
        let third = plan.ranges(after: [c])
        XCTAssertEqual(third.map(\.pointer), [0x50000, 0x10000])
        XCTAssertEqual(third.map(\.bytes), [3392, 592])
        // The head (ends at 15 300) asks for the next step up to 4 000 bytes past its end.
        let wrap = plan.ranges(after: [head])
        XCTAssertEqual(wrap.map(\.pointer), [0x10000 + 608, 0x20000])
        XCTAssertEqual(wrap.map(\.bytes), [3392 - 608, 592])
        for r in first + second + third + wrap {
            XCTAssertEqual(r.pointer % 16, 0); XCTAssertEqual(r.bytes % 16, 0); XCTAssertGreaterThan(r.bytes, 0)
        }
        // The same step again asks for the same ranges (a captured graph replays one step).
        plan.beginStep()
        XCTAssertEqual(plan.ranges(after: [a]).map(\.bytes), [1696 - 608, 2288])
    }

    func testOffUnknownMatricesTiedWeightsAndSmallModels() {
        let a = matrix(0x10000, rows: 100), b = matrix(0x20000, rows: 50)
        var off = WeightPrefetch(matrices: [a, b], window: 0)
        off.beginStep()
        XCTAssertTrue(off.ranges(after: [a]).isEmpty)
        // A matrix outside the order (an expert's) asks for nothing.
        var plan = WeightPrefetch(matrices: [a, b, a], window: 1 << 20)
        XCTAssertEqual(plan.pieces.count, 2, "tied weights are read (and prefetched) once")
        plan.beginStep()
        XCTAssertTrue(plan.ranges(after: [matrix(0x90000, rows: 4)]).isEmpty)
        // A window larger than the model is capped at the whole order: nothing is asked twice.
        XCTAssertEqual(plan.window, 5100)
        // The previous step asked for all of it; after a, the next step's a; after b, its b.
        let r = plan.ranges(after: [a])
        XCTAssertEqual(r.map(\.pointer), [0x10000])
        XCTAssertEqual(r.map(\.bytes), [3392])
        XCTAssertEqual(plan.ranges(after: [b]).map(\.pointer), [0x20000])
        // At most three ranges per launch.
        let many = (0..<8).map { matrix(CUdeviceptr(0x100000 * ($0 + 1)), rows: 10) }
        var small = WeightPrefetch(matrices: many, window: 3000)
        XCTAssertEqual(small.ranges(after: [many[0]]).count, 3)
    }
}
