// Block-sparse attention on the real SmolLM2 (rules/cpu-long-context.yaml): a pass key hidden in
// ~3 000 tokens of filler is found as with dense attention while each decode step reads 1 600
// keys, and a context short enough to attend everything gives the dense rules' tokens exactly.
import Engine
import Foundation
import XCTest

final class LongContextTests: XCTestCase {
    static let filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "

    /// The pass-key prompt (as in the "passkey retrieval" test of the long-context literature).
    static func passkeyPrompt(repeats: Int, depth: Double, key: String) -> String {
        let before = Int(Double(repeats) * depth)
        return "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
            + "I will quiz you about the important information there.\n"
            + String(repeating: filler, count: before) + "The pass key is \(key). Remember it. \(key) is the pass key. "
            + String(repeating: filler, count: repeats - before) + "\nWhat is the pass key? The pass key is"
    }

    func greedy(_ prompt: String, rules: String, tokens: Int) throws -> (text: String, promptTokens: Int) {
        var options = LoadOptions()
        options.threads = 2
        options.contextSize = 4096
        options.rules = rules
        let model = try LoadedModel(path: try TestModels.path("smollm2-135m-instruct"), options: options)
        let ids = model.tokenize(prompt)
        var p = GenerationParameters()
        p.maxTokens = tokens
        p.sampling.temperature = 0
        var text = ""
        try model.makeSession().generate(prompt: ids, parameters: p) { event in
            if case let .token(_, piece) = event { text += piece }
            return true
        }
        return (text, ids.count)
    }

    func testPasskeyFoundWithBlockSparseAttention() throws {
        for (repeats, depth, key) in [(120, 0.5, "68491"), (120, 0.2, "30752")] {
            let prompt = Self.passkeyPrompt(repeats: repeats, depth: depth, key: key)
            let dense = try greedy(prompt, rules: "rules/cpu.yaml", tokens: 6)
            let sparse = try greedy(prompt, rules: "rules/cpu-long-context.yaml", tokens: 6)
            XCTAssertGreaterThan(dense.promptTokens, 1600 + 1300, "long enough that most keys are skipped")
            XCTAssertTrue(dense.text.hasPrefix(" \(key)"), "dense: \(dense.text)")
            XCTAssertTrue(sparse.text.hasPrefix(" \(key)"), "sparse: \(sparse.text)")
        }
    }

    func testShortContextIsTheDenseRulesExactly() throws {
        let prompt = "The capital of France is"
        XCTAssertEqual(try greedy(prompt, rules: "rules/cpu-long-context.yaml", tokens: 32).text,
                       try greedy(prompt, rules: "rules/cpu.yaml", tokens: 32).text)
    }
}
