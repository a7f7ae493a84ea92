// The real models against llama.cpp's greedy goldens (../shared/reference, copied to Fixtures/).
//
// Our default kernels reproduce llama.cpp's x86 CPU numerics bit for bit (docs/numerics.md): the
// same 8-bit activation blocks, the same SIMD lane structure and fused multiply-adds in every
// quantized dot product, ggml's expf/GELU table/RoPE rounding and its f16 flash attention. So the
// goldens must match exactly: identical prompt tokens, the step-0 top-5 logits equal to the
// golden's printed 4 decimals, and every one of the 32 greedy tokens identical.
// (scripts/peer/dump_llamacpp_tensors.py + compare_traces.py find the first differing tensor
// when this breaks.)
import Engine
import Foundation
import XCTest

final class RealModelTests: XCTestCase {
    /// The goldens print logits with 4 decimals.
    static let logitTolerance: Float = 0.0001

    private func check(_ modelName: String, _ golden: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let g = try LlamaCppGolden.load(golden)
        XCTAssertEqual(g.top5.count, 5, "golden file parse", file: file, line: line)
        let model = try TestModels.load(modelName)
        XCTAssertEqual(model.tokenize(g.prompt), g.promptIDs, "prompt tokenization differs from llama.cpp", file: file, line: line)

        let session = model.makeSession()
        let recorder = LogitsRecorder()
        var p = GenerationParameters()
        p.maxTokens = g.generatedIDs.count
        p.sampling = .greedy
        p.stopAtEndOfGeneration = false
        p.logitsObserver = { recorder.append($0) }
        var generated: [Int32] = []
        try session.generate(prompt: g.promptIDs, parameters: p) { event in
            if case let .token(id, _) = event, id >= 0 { generated.append(id) }
            return true
        }
        let steps = recorder.rows
        XCTAssertEqual(steps.count, g.generatedIDs.count, file: file, line: line)
        let first = steps[0]
        for (id, expected) in g.top5 {
            XCTAssertEqual(first[Int(id)], expected, accuracy: Self.logitTolerance, "step-0 logit of token \(id)",
                           file: file, line: line)
        }
        XCTAssertEqual(generated, g.generatedIDs, "greedy tokens differ from llama.cpp's", file: file, line: line)
        if let i = zip(generated, g.generatedIDs).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            let sorted = steps[i].sorted(by: >)
            print("\(golden): first difference at step \(i) (our top-1/top-2 margin \(sorted[0] - sorted[1]))")
        }
    }

    func testSmolLM2RawPrompt() throws { try check("smollm2-135m-instruct", "smollm2_p1_raw.txt") }
    func testSmolLM2ChatPrompt() throws { try check("smollm2-135m-instruct", "smollm2_p2_chat.txt") }
    func testGemma3RawPrompt() throws { try check("gemma3-270m", "gemma3_p1_raw.txt") }

    func testReferenceKernelsAgreeWithQuantizedKernels() throws {
        var options = LoadOptions()
        options.kernels = "reference"
        options.threads = 2
        let reference = try LoadedModel(path: try TestModels.path("smollm2-135m-instruct"), options: options)
        let fast = try TestModels.load("smollm2-135m-instruct")
        let ids: [Int32] = [504, 3575, 282, 4649, 314]
        let a = try reference.makeSession().evaluate(ids)
        let b = try fast.makeSession().evaluate(ids)
        XCTAssertEqual(Sampler.argmax(a), Sampler.argmax(b))
        var worst: Float = 0
        for i in a.indices { worst = max(worst, abs(a[i] - b[i])) }
        XCTAssertLessThan(worst, 1.0, "8-bit activations move logits by at most a few tenths")
    }

    /// A 300-token prompt takes llama.cpp's other paths (tiled flash attention from 64 queries,
    /// tiled k-quant matmuls from 8 tokens, the last layer's feed-forward on the output row
    /// only): fixtures from scripts/peer/make_long_goldens.py.
    private func checkLong(_ modelName: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let golden = try JSONSerialization.jsonObject(
            with: Data(contentsOf: fixtures.appendingPathComponent("long_golden_\(modelName).json"))) as! [String: Any]
        let text = String(try String(contentsOf: fixtures.appendingPathComponent("perplexity.txt"), encoding: .utf8).prefix(1500))
        let model = try TestModels.load(modelName)
        let ids = (golden["prompt_ids"] as! [Int]).map(Int32.init)
        XCTAssertEqual(model.tokenize(text), ids, "prompt tokenization", file: file, line: line)
        let recorder = LogitsRecorder()
        var p = GenerationParameters()
        p.maxTokens = 16
        p.sampling = .greedy
        p.stopAtEndOfGeneration = false
        p.logitsObserver = { recorder.append($0) }
        var generated: [Int] = []
        try model.makeSession().generate(prompt: ids, parameters: p) { event in
            if case let .token(id, _) = event, id >= 0 { generated.append(Int(id)) }
            return true
        }
        for pair in golden["top5"] as! [[Double]] {
            XCTAssertEqual(recorder.rows[0][Int(pair[0])], Float(pair[1]), "step-0 logit of \(Int(pair[0])) (bit-identical)",
                           file: file, line: line)
        }
        XCTAssertEqual(generated, golden["generated_ids"] as! [Int], "greedy tokens", file: file, line: line)
    }

    func testSmolLM2LongPromptBitIdentical() throws { try checkLong("smollm2-135m-instruct") }
    func testGemma3LongPromptBitIdentical() throws { try checkLong("gemma3-270m") }

    func testLogitsDoNotDependOnThreadCount() throws {
        var logits: [[Float]] = []
        for threads in [1, 2, 3] {
            var options = LoadOptions()
            options.threads = threads
            let model = try LoadedModel(path: try TestModels.path("gemma3-270m"), options: options)
            logits.append(try model.makeSession().evaluate([2, 818, 5279, 529, 7001, 563, 506, 5279]))
        }
        XCTAssertEqual(logits[0], logits[1], "1 vs 2 threads")
        XCTAssertEqual(logits[0], logits[2], "1 vs 3 threads")
    }

    func testPromptLongerThanContextIsAClearError() throws {
        var options = LoadOptions()
        options.contextSize = 8
        options.threads = 1
        let model = try LoadedModel(path: try TestModels.path("smollm2-135m-instruct"), options: options)
        let session = model.makeSession()
        XCTAssertThrowsError(try session.evaluate(Array(repeating: 504, count: 9))) { error in
            XCTAssertTrue("\(error)".contains("context holds 8"), "\(error)")
        }
    }
}

final class LogitsRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var rows: [[Float]] = []
    func append(_ row: [Float]) { lock.lock(); rows.append(row); lock.unlock() }
}
