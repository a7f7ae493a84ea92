import XCTest

final class SmokeChatTemplateTests: XCTestCase {
    func testPackageBuilds() { XCTAssertTrue(true) }
}
