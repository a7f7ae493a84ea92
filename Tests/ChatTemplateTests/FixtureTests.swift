// Renders every real template in Fixtures/templates with the conversations of
// scripts/gen_chat_template_fixtures.py and compares byte for byte with Python jinja2's output
// (Fixtures/expected/<name>.json). A case where jinja2 raised must raise the same message.

import ChatTemplate
import Foundation
import XCTest

struct FixtureCase {
    let name: String
    let messages: [ChatMessage]
    let addGenerationPrompt: Bool
    let bosToken: String
    let eosToken: String
    let extra: [String: JinjaValue]
    let expected: String?
    let error: String?
}

enum Fixtures {
    static var root: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }

    static func templateNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("templates").path)
            .filter { $0.hasSuffix(".jinja") }.map { String($0.dropLast(6)) }.sorted()
    }

    static func templateSource(_ name: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent("templates/\(name).jinja"), encoding: .utf8)
    }

    /// The fixed "now" of the generator, parsed as a UTC wall-clock time.
    static func load(_ name: String) throws -> (now: Date, cases: [FixtureCase]) {
        let text = try String(contentsOf: root.appendingPathComponent("expected/\(name).json"), encoding: .utf8)
        guard case .dict(let doc) = try JinjaValue(json: text), case .string(let nowText)? = doc["now"],
              case .array(let cases)? = doc["cases"] else { throw CocoaError(.fileReadCorruptFile) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withDashSeparatorInDate]
        formatter.timeZone = TimeZone(identifier: "UTC")
        guard let now = formatter.date(from: nowText) else { throw CocoaError(.fileReadCorruptFile) }
        return (now, try cases.map(parseCase))
    }

    private static func parseCase(_ value: JinjaValue) throws -> FixtureCase {
        guard case .dict(let c) = value, case .string(let name)? = c["name"], case .array(let msgs)? = c["messages"],
              case .bool(let agp)? = c["add_generation_prompt"], case .string(let bos)? = c["bos_token"],
              case .string(let eos)? = c["eos_token"], case .dict(let extra)? = c["extra"] else {
            throw CocoaError(.fileReadCorruptFile)
        }
        let messages = msgs.compactMap { m -> ChatMessage? in
            guard case .dict(let d) = m, case .string(let role)? = d["role"], case .string(let content)? = d["content"] else { return nil }
            return ChatMessage(role: role, content: content)
        }
        var extras: [String: JinjaValue] = [:]
        for (k, v) in extra.pairs { extras[k] = v }
        return FixtureCase(name: name, messages: messages, addGenerationPrompt: agp, bosToken: bos, eosToken: eos,
                           extra: extras, expected: c["expected"]?.stringValueForTests, error: c["error"]?.stringValueForTests)
    }
}

extension JinjaValue {
    var stringValueForTests: String? { if case .string(let s) = self { return s } else { return nil } }
}

final class FixtureTests: XCTestCase {
    func testAllRealTemplatesMatchJinja2() throws {
        let names = try Fixtures.templateNames()
        XCTAssertGreaterThanOrEqual(names.count, 15)
        var failures: [String] = []
        var checked = 0
        for name in names {
            var template = try ChatTemplate(source: try Fixtures.templateSource(name))
            let (now, cases) = try Fixtures.load(name)
            template.now = now
            template.timeZone = TimeZone(identifier: "UTC")!
            for c in cases {
                checked += 1
                do {
                    let out = try template.render(messages: c.messages, addGenerationPrompt: c.addGenerationPrompt,
                                                  bosToken: c.bosToken, eosToken: c.eosToken, extra: c.extra)
                    if let expected = c.expected {
                        if out != expected { failures.append("\(name) [\(c.name)]\n  expected: \(expected.debugDescription)\n  got:      \(out.debugDescription)") }
                    } else {
                        failures.append("\(name) [\(c.name)]: expected error \(c.error ?? "?"), got output")
                    }
                } catch ChatTemplateError.raised(let message) {
                    if message != c.error { failures.append("\(name) [\(c.name)]: raised \(message), expected \(c.error ?? "output")") }
                } catch {
                    failures.append("\(name) [\(c.name)]: \(error)")
                }
            }
        }
        XCTAssertGreaterThan(checked, 200)
        XCTAssert(failures.isEmpty, "\(failures.count) of \(checked) cases differ:\n" + failures.joined(separator: "\n"))
    }

    func testSmolLM2TemplateFromTheRealModel() throws {
        let template = try ChatTemplate(source: try Fixtures.templateSource("smollm2"))
        let out = try template.render(messages: [ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true)
        XCTAssertEqual(out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }
}
