// Shared helpers for model tests: locating the real models and reading llama.cpp goldens.
import Engine
import Foundation
import XCTest

enum TestModels {
    /// The cached real model `name`; fails (not skips) when it is missing, naming the set-up step.
    static func path(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let url = ModelStore.path(forName: name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("model \(name) is not in \(url.path): run scripts/test.sh (or `swiftkt pull \(name)`) first",
                    file: file, line: line)
            throw XCTSkip("missing model")
        }
        return url.path
    }

    /// Models are shared across tests in a process: loading is cheap (mmap) but not free.
    nonisolated(unsafe) private static var cache: [String: LoadedModel] = [:]
    private static let lock = NSLock()

    static func load(_ name: String, threads: Int = 2) throws -> LoadedModel {
        lock.lock(); defer { lock.unlock() }
        if let m = cache[name] { return m }
        var options = LoadOptions()
        options.threads = threads
        let m = try LoadedModel(path: try path(name), options: options)
        cache[name] = m
        return m
    }
}

/// One llama.cpp golden file (../shared/reference/*.txt, copied into Fixtures/).
struct LlamaCppGolden {
    var prompt: String
    var promptIDs: [Int32]
    /// (token id, logit) of the first generated position, best first.
    var top5: [(Int32, Float)]
    var generatedIDs: [Int32]

    static func load(_ fileName: String) throws -> LlamaCppGolden {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(fileName)")
        let text = try String(contentsOf: url, encoding: .utf8)
        var g = LlamaCppGolden(prompt: "", promptIDs: [], top5: [], generatedIDs: [])
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("prompt: ") {
                let json = "[" + line.dropFirst("prompt: ".count) + "]"
                g.prompt = (try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String])[0]
            } else if line.hasPrefix("prompt_ids") {
                g.promptIDs = ids(after: line)
            } else if line.hasPrefix("generated_ids") {
                g.generatedIDs = ids(after: line)
            } else if line.hasPrefix("step0_top5: ") {
                // 7042(" Paris")=17.5692 260(" the")=15.0329 …
                let regex = try NSRegularExpression(pattern: #"(\d+)\((?:"(?:[^"\\]|\\.)*")\)=(-?[0-9.]+)"#)
                let s = String(line)
                for m in regex.matches(in: s, range: NSRange(s.startIndex..., in: s)) {
                    let id = Int32(s[Range(m.range(at: 1), in: s)!])!
                    let logit = Float(s[Range(m.range(at: 2), in: s)!])!
                    g.top5.append((id, logit))
                }
            }
        }
        return g
    }

    private static func ids(after line: Substring) -> [Int32] {
        guard let colon = line.firstIndex(of: ":") else { return [] }
        return line[line.index(after: colon)...].split(separator: " ").compactMap { Int32($0) }
    }
}
