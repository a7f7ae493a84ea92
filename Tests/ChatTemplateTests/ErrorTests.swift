// Error cases: syntax errors name line and column, raise_exception becomes
// ChatTemplateError.raised with its message, unknown filters/tests name themselves, runtime
// type errors carry a position, and the limits stop runaway templates.

import ChatTemplate
import XCTest

final class ErrorTests: XCTestCase {
    private func syntaxPosition(_ source: String) -> (Int, Int)? {
        do {
            _ = try ChatTemplate(source: source)
        } catch ChatTemplateError.syntax(_, let line, let column) {
            return (line, column)
        } catch {
            XCTFail("unexpected error \(error)")
        }
        return nil
    }

    func testSyntaxErrorNamesLineAndColumn() {
        let p = syntaxPosition("Hello\n{% if x %}\n{{ x + }}\n{% endif %}")
        XCTAssertEqual(p?.0, 3)
        XCTAssertEqual(p?.1, 8)
        XCTAssertEqual(syntaxPosition("{% if x %}abc").map { [$0.0, $0.1] }, [1, 14])
        XCTAssertEqual(syntaxPosition("a\n  {% include 'x' %}").map { [$0.0, $0.1] }, [2, 6])
        XCTAssertEqual(syntaxPosition("{{ 'unterminated }}").map { [$0.0, $0.1] }, [1, 4])
        XCTAssertEqual(syntaxPosition("{% for x in xs %}{% endif %}").map { [$0.0, $0.1] }, [1, 21])
        XCTAssertNotNil(syntaxPosition("{{ x $ y }}"))
        XCTAssertNotNil(syntaxPosition("{# never closed"))
        XCTAssertNotNil(syntaxPosition("{% break %}"))
        XCTAssertNotNil(syntaxPosition("{{ " + String(repeating: "(", count: 5000) + "1 }}"))
        XCTAssertNotNil(syntaxPosition("{{ 1" + String(repeating: " + 1", count: 5000) + " }}"))
        XCTAssertNotNil(syntaxPosition(String(repeating: "{% if x %}", count: 5000)))
        let description = ChatTemplateError.syntax(message: "m", line: 3, column: 8).description
        XCTAssertTrue(description.contains("line 3") && description.contains("column 8"))
    }

    func testRaiseExceptionBecomesThrownErrorWithItsMessage() throws {
        let template = try ChatTemplate(source: try Fixtures.templateSource("mistral-v1"))
        let msgs = [ChatMessage(role: "user", content: "a"), ChatMessage(role: "user", content: "b")]
        XCTAssertThrowsError(try template.render(messages: msgs, addGenerationPrompt: true)) { error in
            XCTAssertEqual(error as? ChatTemplateError,
                           .raised(message: "After the optional system message, conversation roles must alternate user/assistant/user/assistant/..."))
        }
        let gemma2 = try ChatTemplate(source: try Fixtures.templateSource("gemma2"))
        XCTAssertThrowsError(try gemma2.render(messages: [ChatMessage(role: "system", content: "s")], addGenerationPrompt: true)) {
            XCTAssertEqual("\($0)", "System role not supported")
        }
    }

    func testUnknownFilterAndTest() throws {
        let t = try ChatTemplate(source: "ok\n{{ x | frobnicate }}")
        XCTAssertThrowsError(try t.render(messages: [], addGenerationPrompt: false)) {
            XCTAssertEqual($0 as? ChatTemplateError, .unknownFilter(name: "frobnicate", line: 2, column: 6))
        }
        let u = try ChatTemplate(source: "{{ x is frobnicated }}")
        XCTAssertThrowsError(try u.render(messages: [], addGenerationPrompt: false)) {
            XCTAssertEqual($0 as? ChatTemplateError, .unknownTest(name: "frobnicated", line: 1, column: 6))
        }
    }

    func testRuntimeErrorsCarryAPosition() throws {
        func runtime(_ source: String) -> ChatTemplateError? {
            do {
                _ = try ChatTemplate(source: source).render(messages: [], addGenerationPrompt: false)
                XCTFail("expected an error from \(source)")
            } catch let e as ChatTemplateError {
                return e
            } catch {
                XCTFail("\(error)")
            }
            return nil
        }
        guard case .runtime(_, 1, 6)? = runtime("{{ 1 + 'a' }}") else { return XCTFail("type error position") }
        guard case .runtime? = runtime("{{ undefined_thing.attr }}") else { return XCTFail("undefined attribute") }
        guard case .runtime? = runtime("{{ 1 // 0 }}") else { return XCTFail("division by zero") }
        guard case .runtime? = runtime("{{ 9223372036854775807 + 1 }}") else { return XCTFail("overflow") }
        guard case .runtime? = runtime("{{ 'x' * 100000000 }}") else { return XCTFail("size limit") }
        guard case .runtime? = runtime("{{ range(100000000)|length }}") else { return XCTFail("range limit") }
        guard case .runtime? = runtime("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}") else { return XCTFail("recursion") }
        guard case .runtime? = runtime("{% set x = 1 %}{% set x.y = 2 %}") else { return XCTFail("set attribute") }
        guard case .runtime? = runtime("{{ [1][::0] }}") else { return XCTFail("slice step") }
        guard case .runtime? = runtime("{{ x|tojson }}") else { return XCTFail("undefined to json") }
    }
}
