// Each pre-tokenizer's splits against Python's `regex` module running llama.cpp's regexes
// (Fixtures/pretokenizers.json), plus a few hand-checked splits that read as a spec.
@testable import Tokenizer
import XCTest

final class PreTokenizerTests: XCTestCase {
    func testAllKindsMatchReferenceSplits() throws {
        let fixtures = try Fixtures.preTokenizers()
        XCTAssertEqual(Set(fixtures.keys), Set(PreTokenizerKind.allCases.map(\.rawValue)))
        for kind in PreTokenizerKind.allCases {
            let cases = try XCTUnwrap(fixtures[kind.rawValue], kind.rawValue)
            var failures = 0
            for c in cases {
                let words = PreTokenizer.split(c.text, kind: kind)
                if words != c.words {
                    failures += 1
                    XCTFail("\(kind.rawValue) \(show(c.text)):\n  got       \(words)\n  reference \(c.words)")
                }
            }
            XCTAssertEqual(failures, 0, "\(kind.rawValue): \(failures) of \(cases.count) splits differ")
        }
    }

    func testGPT2() {
        XCTAssertEqual(PreTokenizer.split("Hello world's  end", kind: .gpt2), ["Hello", " world", "'s", " ", " end"])
        XCTAssertEqual(PreTokenizer.split("a123 b", kind: .gpt2), ["a", "123", " b"])
    }

    func testSmolLMSplitsDigits() {
        XCTAssertEqual(PreTokenizer.split("x 2024!", kind: .smollm), ["x", " ", "2", "0", "2", "4", "!"])
    }

    func testLlama3() {
        XCTAssertEqual(PreTokenizer.split("I'M 1234567 ok\n\n  x", kind: .llama3),
                       ["I", "'M", " ", "123", "456", "7", " ok", "\n\n", " ", " x"])
        XCTAssertEqual(PreTokenizer.split("(hi)...\n", kind: .llama3), ["(hi", ")...\n"])
    }

    func testQwen2() {
        XCTAssertEqual(PreTokenizer.split("v12 DON'T", kind: .qwen2), ["v", "1", "2", " DON", "'T"])
    }

    func testDeepSeekLLM() {
        XCTAssertEqual(PreTokenizer.split("Hi 中文 42!\n", kind: .deepseekLLM), ["Hi", " ", "中文", " ", "42", "!", "\n"])
    }

    func testDeepSeekV3() {
        XCTAssertEqual(PreTokenizer.split("12345 .net café カナ", kind: .deepseekV3),
                       ["123", "45", " .", "net", " café", " ", "カナ"])
    }

    func testUnknownPreTokenizerIsAnError() {
        XCTAssertNil(PreTokenizerKind(preName: "no-such-pre"))
        XCTAssertEqual(PreTokenizerKind(preName: nil), .defaultBPE)
        let config = TokenizerConfig(model: "gpt2", pre: "no-such-pre", tokens: ["a"], merges: [])
        XCTAssertThrowsError(try Tokenizer(config: config))
    }
}
