// Language features one at a time: the snippets of scripts/gen_chat_template_fixtures.py
// (expected output from Python jinja2, Fixtures/expected/_snippets.json), then a few
// hand-written specs for the value model and the public API.

import ChatTemplate
import Foundation
import XCTest

final class LanguageTests: XCTestCase {
    func testSnippetsMatchJinja2() throws {
        let url = Fixtures.root.appendingPathComponent("expected/_snippets.json")
        guard case .dict(let doc) = try JinjaValue(json: try String(contentsOf: url, encoding: .utf8)),
              case .dict(let context)? = doc["context"], case .array(let snippets)? = doc["snippets"] else {
            return XCTFail("bad _snippets.json")
        }
        var extra: [String: JinjaValue] = [:]
        for (k, v) in context.pairs where k != "messages" { extra[k] = v }
        guard case .array(let msgs)? = context["messages"] else { return XCTFail("no messages") }
        XCTAssertGreaterThan(snippets.count, 30)
        for snippet in snippets {
            guard case .dict(let s) = snippet, let source = s["template"]?.stringValueForTests,
                  let expected = s["expected"]?.stringValueForTests else { return XCTFail("bad snippet") }
            do {
                var template = try ChatTemplate(source: source)
                template.now = Date(timeIntervalSince1970: 1_741_530_605)  // 2025-03-09 14:30:05 UTC
                template.timeZone = TimeZone(identifier: "UTC")!
                var ctx = extra
                ctx["messages"] = .array(msgs)
                let out = try template.render(context: ctx, addGenerationPrompt: false)
                XCTAssertEqual(out, expected, "template: \(source)")
            } catch {
                XCTFail("\(source): \(error)")
            }
        }
    }

    private func render(_ source: String, _ extra: [String: JinjaValue] = [:]) throws -> String {
        try ChatTemplate(source: source).render(messages: [], addGenerationPrompt: false, extra: extra)
    }

    func testExtraValuesAndDefaults() throws {
        XCTAssertEqual(try render("{{ tools is none }} {{ documents is none }} {{ custom }}", ["custom": "v"]), "True True v")
        XCTAssertEqual(try render("{{ tools|length }}", ["tools": [["type": "function"]]]), "1")
        let t = try ChatTemplate(source: "{{ bos_token }}{{ add_generation_prompt }}{{ eos_token }}")
        XCTAssertEqual(try t.render(messages: [], addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>"), "<s>True</s>")
    }

    func testDictsKeepInsertionOrderThroughJSON() throws {
        let v = try JinjaValue(json: #"{"z": 1, "a": {"y": [1, 2.5, null, true]}, "m": "é\n"}"#)
        XCTAssertEqual(try render("{{ v|tojson }}", ["v": v]), #"{"z": 1, "a": {"y": [1, 2.5, null, true]}, "m": "é\n"}"#)
    }

    func testPythonFloatFormatting() throws {
        XCTAssertEqual(try render("{{ a }} {{ b }} {{ c }} {{ d }} {{ e }}", ["a": 1.0, "b": 1e16, "c": 1234567890123456.0, "d": 0.0001, "e": 1.5e-7]),
                       "1.0 1e+16 1234567890123456.0 0.0001 1.5e-07")
    }

    func testBuiltinTemplatesParseAndRender() throws {
        let msgs = [ChatMessage(role: "system", content: "S"), ChatMessage(role: "user", content: "U"),
                    ChatMessage(role: "assistant", content: "A"), ChatMessage(role: "user", content: "V")]
        for name in BuiltinChatTemplates.names {
            let source = try XCTUnwrap(BuiltinChatTemplates.template(named: name), name)
            let out = try ChatTemplate(source: source).render(messages: msgs, addGenerationPrompt: true, bosToken: "<B>", eosToken: "<E>")
            XCTAssertTrue(out.contains("U") && out.contains("V"), "\(name): \(out)")
        }
        XCTAssertNil(BuiltinChatTemplates.template(named: "nope"))
        XCTAssertEqual(BuiltinChatTemplates.defaultName(forArchitecture: "gemma3", modelName: "Gemma 3 270m"), "gemma")
        XCTAssertEqual(BuiltinChatTemplates.defaultName(forArchitecture: "llama", modelName: "SmolLM2 135M Instruct"), "chatml")
        XCTAssertEqual(BuiltinChatTemplates.defaultName(forArchitecture: "llama", modelName: "Meta Llama 3.1 8B"), "llama3")
        XCTAssertEqual(BuiltinChatTemplates.defaultName(forArchitecture: "llama", modelName: "Mixtral 8x7B"), "mistral")
        XCTAssertEqual(BuiltinChatTemplates.defaultName(forArchitecture: "qwen2", modelName: nil), "chatml")
        XCTAssertEqual(BuiltinChatTemplates.defaultName(forArchitecture: "deepseek2", modelName: "DeepSeek R1"), "deepseek-r1")
        XCTAssertNil(BuiltinChatTemplates.defaultName(forArchitecture: "bert", modelName: nil))
    }

    func testGemmaBuiltinMatchesGemma3Fixture() throws {
        XCTAssertEqual(BuiltinChatTemplates.template(named: "gemma"),
                       try Fixtures.templateSource("gemma3").trimmingCharacters(in: .newlines))
    }
}
