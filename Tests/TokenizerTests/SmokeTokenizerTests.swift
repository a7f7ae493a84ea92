import XCTest

final class SmokeTokenizerTests: XCTestCase {
    func testPackageBuilds() { XCTAssertTrue(true) }
}
