import XCTest

final class SmokeGGUFTests: XCTestCase {
    func testPackageBuilds() { XCTAssertTrue(true) }
}
