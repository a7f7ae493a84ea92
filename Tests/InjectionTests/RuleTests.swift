import XCTest
@testable import Injection
import Operators

final class RuleTests: XCTestCase {
    func testPlaceholder() throws { XCTAssertNotNil(ShippedRules.text("cpu.yaml")) }
}
