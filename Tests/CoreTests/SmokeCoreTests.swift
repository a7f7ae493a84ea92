import XCTest

final class SmokeCoreTests: XCTestCase {
    func testPackageBuilds() { XCTAssertTrue(true) }
}
