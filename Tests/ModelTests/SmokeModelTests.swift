import XCTest

final class SmokeModelTests: XCTestCase {
    func testPackageBuilds() { XCTAssertTrue(true) }
}
