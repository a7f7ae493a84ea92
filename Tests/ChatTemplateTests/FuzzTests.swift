// Seeded fuzzing: thousands of random mutations (deletions, duplications, swaps, inserted
// template syntax) of the real templates are parsed and rendered. Any outcome is fine except
// crashing, hanging, or throwing something other than ChatTemplateError.

import ChatTemplate
import XCTest

/// SplitMix64, so every run mutates the same way.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class FuzzTests: XCTestCase {
    static let fragments = ["{%", "%}", "{{", "}}", "{#", "#}", "-", "+", "(", ")", "[", "]", "{", "}", "'", "\"", "\\",
                            "endfor", "endif", "else", "elif", "for x in", "if", "set", "|", "is", "not", "in", "loop",
                            "ns", ".", ",", ":", "::", "-1", "0", "9223372036854775807", "*", "**", "//", "%", "~",
                            "\n", " ", "raise_exception('boom')", "range(99999999)", "namespace(", "|tojson", "[::-1]",
                            "messages", "none", "true", "{% raw %}", "{% endraw %}", "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"]

    func testRandomMutationsOfRealTemplatesNeverCrash() throws {
        var rng = SeededGenerator(state: 0x5EED_C4A7)
        let messages = [ChatMessage(role: "system", content: "S"), ChatMessage(role: "user", content: "U"),
                        ChatMessage(role: "assistant", content: "<think>r</think>A"), ChatMessage(role: "user", content: "V")]
        var parsed = 0, rendered = 0, total = 0
        for name in try Fixtures.templateNames() {
            let original = Array(try Fixtures.templateSource(name).unicodeScalars)
            for _ in 0..<250 {
                var s = original
                for _ in 0..<Int.random(in: 1...4, using: &rng) { mutate(&s, &rng) }
                var text = String.UnicodeScalarView()
                text.append(contentsOf: s)
                total += 1
                do {
                    let template = try ChatTemplate(source: String(text))
                    parsed += 1
                    _ = try template.render(messages: messages, addGenerationPrompt: Bool.random(using: &rng),
                                            bosToken: "<s>", eosToken: "</s>", extra: ["tools": [["type": "function"]]])
                    rendered += 1
                } catch is ChatTemplateError {
                    // expected for most mutations
                } catch {
                    XCTFail("\(name): non-ChatTemplateError \(error) for mutated template:\n\(String(text))")
                }
            }
        }
        XCTAssertGreaterThan(total, 3000)
        XCTAssertGreaterThan(parsed, total / 20, "mutations should leave some templates parseable")
        print("fuzz: \(total) mutants, \(parsed) parsed, \(rendered) rendered")
    }

    private func mutate(_ s: inout [Unicode.Scalar], _ rng: inout SeededGenerator) {
        guard !s.isEmpty else { s = Array(FuzzTests.fragments.randomElement(using: &rng)!.unicodeScalars); return }
        let a = Int.random(in: 0..<s.count, using: &rng)
        let len = Int.random(in: 1...min(40, s.count - a), using: &rng)
        switch Int.random(in: 0..<5, using: &rng) {
        case 0: s.removeSubrange(a..<a + len)
        case 1: s.insert(contentsOf: s[a..<a + len], at: Int.random(in: 0...s.count, using: &rng))
        case 2:
            let b = Int.random(in: 0..<s.count, using: &rng)
            s.swapAt(a, b)
        case 3: s.insert(contentsOf: FuzzTests.fragments.randomElement(using: &rng)!.unicodeScalars, at: a)
        default: s.replaceSubrange(a..<a + len, with: FuzzTests.fragments.randomElement(using: &rng)!.unicodeScalars)
        }
    }
}
