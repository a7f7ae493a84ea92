// Shared helpers of the tokenizer tests: the real models (loaded once), fixture loading.
// Fixtures are written by scripts/gen_tokenizer_fixtures.py from llama.cpp (llama-cpp-python).
import Foundation
import GGUF
import Tokenizer
import XCTest

enum RealModels {
    static var home: String {
        if let h = ProcessInfo.processInfo.environment["SWIFTKT_HOME"], !h.isEmpty { return h }
        return NSHomeDirectory() + "/.cache/swiftkt"
    }

    static let smolLM2File = "smollm2-135m-instruct.gguf"
    static let gemma3File = "gemma3-270m.gguf"

    static let smolLM2: Result<Tokenizer, Error> = load(smolLM2File)
    static let gemma3: Result<Tokenizer, Error> = load(gemma3File)

    static func load(_ file: String) -> Result<Tokenizer, Error> {
        Result { try Tokenizer(ggufPath: home + "/models/" + file) }
    }

    /// The tokenizer of a real model; a missing model fails the test (never skips).
    static func tokenizer(
        _ which: Result<Tokenizer, Error>, _ file: String, file f: StaticString = #filePath, line: UInt = #line
    ) throws -> Tokenizer {
        let path = home + "/models/" + file
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("missing \(path): download the real models first (`swiftkt pull smollm2-135m-instruct gemma3-270m`, or scripts/test.sh)", file: f, line: line)
            throw XCTSkip("unreachable")
        }
        return try which.get()
    }
}

struct ModelFixture: Decodable {
    struct Case: Decodable {
        let text: String
        let ids: [Int32]
        let ids_no_special: [Int32]
        let decoded: String
        let decoded_no_special: String
    }
    let model: String
    let vocab_size: Int
    let bos: Int32?
    let eos: Int32?
    let eot: Int32?
    let eog: [Int32]
    let cases: [Case]
}

struct PreTokenizerCase: Decodable {
    let text: String
    let words: [String]
}

enum Fixtures {
    static func url(_ name: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures") else {
            throw NSError(domain: "TokenizerTests", code: 1, userInfo: [NSLocalizedDescriptionKey: "fixture \(name).json missing: run scripts/gen_tokenizer_fixtures.py"])
        }
        return url
    }

    static func model(_ name: String) throws -> ModelFixture {
        try JSONDecoder().decode(ModelFixture.self, from: Data(contentsOf: url(name)))
    }

    static func preTokenizers() throws -> [String: [PreTokenizerCase]] {
        try JSONDecoder().decode([String: [PreTokenizerCase]].self, from: Data(contentsOf: url("pretokenizers")))
    }
}

/// Readable form of a string for failure messages.
func show(_ s: String) -> String { s.debugDescription }
