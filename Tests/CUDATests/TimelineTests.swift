// KernelTimeline (SWIFTKT_CUDA_TIMELINE's report) on hand-made warp records: grouping by grid in
// launch order, the names used only when their count matches, busy time and hand-over.
@testable import CUDA
import XCTest

final class TimelineTests: XCTestCase {
    // {grid, start, release, end} per warp, ns; grid 7 launched before grid 9, records shuffled.
    let records: [UInt64] = [
        9, 1_500, 4_000, 6_000,
        7, 1_000, 1_200, 2_500,
        9, 1_600, 4_200, 7_000,
        7, 1_100, 1_300, 3_000,
    ]

    func testGroupsByGridInLaunchOrder() {
        let t = records.withUnsafeBufferPointer { KernelTimeline(records: $0, names: ["norm", "gemv"]) }
        XCTAssertEqual(t.grids.map(\.id), [7, 9])
        XCTAssertEqual(t.grids.map(\.warps), [2, 2])
        XCTAssertEqual(t.grids[0].start, 1_000)
        XCTAssertEqual(t.grids[0].firstRelease, 1_200)
        XCTAssertEqual(t.grids[0].lastRelease, 1_300)
        XCTAssertEqual(t.grids[0].end, 3_000)
        XCTAssertEqual(t.grids[1].firstRelease, 4_000)
        XCTAssertEqual(t.grids[1].end, 7_000)
        XCTAssertEqual(t.names ?? [], ["norm", "gemv"])
        let report = t.report(step: 3)
        XCTAssertTrue(report.contains("2 launches"), report)
        XCTAssertTrue(report.contains("6.0 µs from the first warp's start"), report)
        // gemv: busy 7.0 − 4.0 = 3.00 µs, hand-over 4.0 − 3.0 = 1.00 µs.
        let gemv = report.split(separator: "\n").filter { $0.contains("gemv") }
        XCTAssertEqual(gemv.count, 2, report)
        XCTAssertTrue(gemv.allSatisfy { $0.contains("3.00") && $0.contains("1.00") }, report)
        XCTAssertTrue(report.contains("busy 4.8 µs, hand-overs 1.0 µs"), report)
    }

    func testNamesOfAnotherCountAreNotUsed() {
        let t = records.withUnsafeBufferPointer { KernelTimeline(records: $0, names: ["only one"]) }
        XCTAssertNil(t.names)
        XCTAssertTrue(t.report(step: 1).contains("grid 9"))
    }

    func testNoRecordsSaysSo() {
        let t = [UInt64]().withUnsafeBufferPointer { KernelTimeline(records: $0, names: nil) }
        XCTAssertTrue(t.report(step: 5).contains("no records"))
    }
}
