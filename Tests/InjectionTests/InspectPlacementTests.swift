// `swiftkt inspect --placement` and `--rules` driven as a user would: the plan on stdout, the
// rule choice on stderr, a typo in a rules file ends in a message that says what to change.
import Foundation
import XCTest

final class InspectPlacementTests: XCTestCase {
    static var binary: URL {
        let bundle = Bundle(for: InspectPlacementTests.self).bundleURL
        let candidates = [bundle.appendingPathComponent("swiftkt"),
                          bundle.deletingLastPathComponent().appendingPathComponent("swiftkt")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    func swiftkt(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: Self.binary.path), "swiftkt not built at \(Self.binary.path)")
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = arguments
        let outFile = FileManager.default.temporaryDirectory.appendingPathComponent("inj-out-\(UUID().uuidString)")
        let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("inj-err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outFile); try? FileManager.default.removeItem(at: errFile) }
        p.standardOutput = try FileHandle(forWritingTo: outFile)
        p.standardError = try FileHandle(forWritingTo: errFile)
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, try String(contentsOf: outFile, encoding: .utf8), try String(contentsOf: errFile, encoding: .utf8))
    }

    func testPlacementOfTheShippedRules() throws {
        let r = try swiftkt(["inspect", "-m", try Tiny.path("qwen3"), "--placement"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("rules: rules/cpu.yaml (shipped default for qwen3 on cpu)"), r.stderr)
        XCTAssertTrue(r.stdout.contains("model.layers.1.self_attn.k_norm"), r.stdout)
        XCTAssertTrue(r.stdout.contains("Totals per device"), r.stdout)
    }

    func testPlacementAsJSON() throws {
        let r = try swiftkt(["inspect", "-m", try Tiny.path("llama"), "--placement", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let modules = try XCTUnwrap(object?["modules"] as? [[String: Any]])
        let head = try XCTUnwrap(modules.first { $0["name"] as? String == "lm_head" })
        XCTAssertEqual(head["generateOp"] as? String, "LinearCPUQuantized")
        XCTAssertEqual(head["kind"] as? String, "LMHead")
        let totals = try XCTUnwrap(object?["totals"] as? [[String: Any]])
        XCTAssertEqual(totals.first?["device"] as? String, "cpu")
    }

    func testTypoInARulesFileSaysWhatToChange() throws {
        let rules = FileManager.default.temporaryDirectory.appendingPathComponent("typo-\(UUID().uuidString).yaml")
        try "- match: {class: Linear}\n  replace: {class: LinearCPURefrence}\n".write(to: rules, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: rules) }
        let r = try swiftkt(["inspect", "-m", try Tiny.path("llama"), "--placement", "--rules", rules.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("\(rules.path):2: unknown operator 'LinearCPURefrence'"), r.stderr)
        XCTAssertTrue(r.stderr.contains("did you mean 'LinearCPUReference'?"), r.stderr)
    }

    /// Without a GPU (CI), the CUDA paths end in a message and a non-zero status, not a crash.
    func testCUDAPathsWithoutAGPUSayWhy() throws {
        try XCTSkipIf(ProcessInfo.processInfo.environment["SWIFTKT_TEST_HAS_GPU"] == "1", "this machine has a GPU")
        let model = try Tiny.path("llama")
        let run = try swiftkt(["run", "-m", model, "-p", "hi", "-n", "2", "--temp", "0", "--rules",
                                 ShippedRuleTests.repoRoot.appendingPathComponent("rules/cuda.yaml").path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("cuda:0") && run.stderr.contains("no such CUDA device here"), run.stderr)
        let check = try swiftkt(["ops-check"])
        XCTAssertNotEqual(check.status, 0)
        XCTAssertTrue(check.stderr.contains("no usable CUDA device"), check.stderr)
        let devices = try swiftkt(["devices"])
        XCTAssertEqual(devices.status, 0, devices.stderr)
        XCTAssertTrue(devices.stdout.contains("cuda    not available"), devices.stdout)
    }
}
