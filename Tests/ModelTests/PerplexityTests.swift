// Perplexity (llama.cpp's method, Sources/Engine/Perplexity.swift) on the committed essay
// Fixtures/perplexity.txt against llama.cpp's own figures in Fixtures/perplexity_llamacpp.json
// (scripts/peer/llamacpp_perplexity.py, llama-cpp-python 0.3.36): -c 512, 2 chunks, 510 scored
// tokens per model. Our default kernels use llama.cpp's numerics (8-bit activations, f16 KV cache,
// flash-attention), so the comparison is with llama.cpp's flash-attention figure — also the default
// of llama-perplexity on the CPU; llama.cpp's two attention paths themselves differ by 0.3–0.6 %.
import Engine
import Foundation
import XCTest

final class PerplexityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    // Our kernels reproduce llama.cpp's arithmetic (docs/numerics.md), so the figure agrees to the
    // last digits printed; the issue asks for 1 %. (log-softmax sums in double may differ in ulps.)
    static let tolerance = 1e-5

    struct Peer {
        var flashAttnOn: Double
        var flashAttnOff: Double
        var tokens: Int
    }

    static func peer(_ model: String) throws -> Peer {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("perplexity_llamacpp.json"))
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let models = try XCTUnwrap(root["models"] as? [String: Any])
        let m = try XCTUnwrap(models[model] as? [String: Any], "no llama.cpp figure for \(model)")
        let on = try XCTUnwrap((m["flash_attn_on"] as? [String: Any])?["perplexity"] as? Double)
        let off = try XCTUnwrap((m["flash_attn_off"] as? [String: Any])?["perplexity"] as? Double)
        return Peer(flashAttnOn: on, flashAttnOff: off, tokens: try XCTUnwrap(m["tokens"] as? Int))
    }

    static func load(_ name: String, kernels: String = "auto") throws -> LoadedModel {
        var options = LoadOptions()
        options.threads = 2
        options.contextSize = 512
        options.batchSize = 512
        options.kernels = kernels
        return try LoadedModel(path: try TestModels.path(name), options: options)
    }

    private func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let peer = try Self.peer(name)
        let text = try String(contentsOf: Self.fixtures.appendingPathComponent("perplexity.txt"), encoding: .utf8)
        let model = try Self.load(name)
        XCTAssertEqual(model.tokenizer.encode(text, addSpecial: true, parseSpecial: false).count, peer.tokens,
                       "the whole-file tokenization differs from llama.cpp's", file: file, line: line)
        let r = try Perplexity.run(model: model, text: text, contextSize: 512)
        XCTAssertEqual(r.chunks, 2, file: file, line: line)
        XCTAssertEqual(r.scoredTokens, 510, file: file, line: line)
        let dOn = r.perplexity / peer.flashAttnOn - 1, dOff = r.perplexity / peer.flashAttnOff - 1
        print(String(format: "perplexity %@: ours %.4f (chunks %@, %.1f s); llama.cpp FA on %.4f (%+.2f %%), FA off %.4f (%+.2f %%)",
                     name, r.perplexity, r.perChunk.map { String(format: "%.4f", $0) }.joined(separator: ","), r.seconds,
                     peer.flashAttnOn, 100 * dOn, peer.flashAttnOff, 100 * dOff))
        XCTAssertLessThanOrEqual(abs(dOn), Self.tolerance,
                                 "\(name): PPL \(r.perplexity) vs llama.cpp \(peer.flashAttnOn) (flash attention on)",
                                 file: file, line: line)
    }

    func testSmolLM2MatchesLlamaCpp() throws { try check("smollm2-135m-instruct") }
    func testGemma3MatchesLlamaCpp() throws { try check("gemma3-270m") }

    func testTextShorterThanOneChunkIsAClearError() throws {
        let path = try SyntheticTests.makeTiny("llama")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var options = LoadOptions()
        options.threads = 1
        options.contextSize = 64
        options.batchSize = 64
        let model = try LoadedModel(path: path, options: options)
        XCTAssertThrowsError(try Perplexity.run(model: model, text: "Rivers made cities.", contextSize: 64)) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains("tokens") && message.contains("64"), "unclear error: \(message)")
        }
        // A context larger than the loaded one is refused too, before any work.
        XCTAssertThrowsError(try Perplexity.run(model: model, text: String(repeating: "river ", count: 400), contextSize: 128))
        // So is a degenerate one (it used to divide by zero before the check).
        XCTAssertThrowsError(try Perplexity.run(model: model, text: "Rivers made cities.", contextSize: 0))
    }
}
