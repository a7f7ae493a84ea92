// The real models against llama.cpp's greedy goldens (../shared/reference, copied to Fixtures/).
//
// How close is close: these small quantized models amplify rounding. llama.cpp quantizes
// activations to 8 bits per block, so a last-bit difference upstream can flip an int8 value and
// move logits by tenths; llama.cpp itself gives " Paris" 17.5692 with flash attention (the
// goldens) and 17.3441 without it on the same file; on Gemma 3 its " the" ranges over
// 19.00–19.31 across its own attention / KV-cache settings. We use the same 8-bit activation
// numerics and require (1) identical prompt tokens, (2) the golden top-5 logits within 0.3,
// (3) the same top-1 wherever the golden top-1/top-2 margin exceeds that noise, and (4) the
// same greedy tokens up to the first step where our own top-1/top-2 margin is within the noise
// (0.3); the test prints where that happened.
import Engine
import Foundation
import XCTest

final class RealModelTests: XCTestCase {
    static let logitTolerance: Float = 0.3
    static let decisionNoise: Float = 0.3

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
        if g.top5[0].1 - g.top5[1].1 > Self.logitTolerance {
            XCTAssertEqual(generated.first, g.top5[0].0, "top-1 differs where llama.cpp's margin is clear", file: file, line: line)
        }
        for (i, (ours, theirs)) in zip(generated, g.generatedIDs).enumerated() where ours != theirs {
            let sorted = steps[i].sorted(by: >)
            let margin = sorted[0] - sorted[1]
            XCTAssertLessThan(margin, Self.decisionNoise,
                              "greedy token \(i) differs (\(ours) vs llama.cpp's \(theirs)) although our top-1 margin is \(margin)",
                              file: file, line: line)
            print("\(golden): identical for \(i) tokens; step \(i) is a near tie (margin \(margin))")
            return
        }
        print("\(golden): all \(generated.count) greedy tokens identical to llama.cpp")
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
