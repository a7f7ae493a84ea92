// The `swiftkt` binary driven as a person (or a script) would: interactive chat through stdin,
// generation, and bad input that must end in a clear message and a non-zero exit.
import Foundation
import XCTest

final class CLITests: XCTestCase {
    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// The swiftkt binary built beside the test bundle (Linux: the bundle URL is the build
    /// directory; elsewhere it is the .xctest inside it).
    static var binary: URL {
        let bundle = Bundle(for: CLITests.self).bundleURL
        let candidates = [bundle.appendingPathComponent("swiftkt"),
                          bundle.deletingLastPathComponent().appendingPathComponent("swiftkt")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    func swiftkt(_ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 120) throws -> Result {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build swiftkt first: \(Self.binary.path)")
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = arguments
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out; p.standardError = err; p.standardInput = input
        try p.run()
        if let s = stdin { input.fileHandleForWriting.write(Data(s.utf8)) }
        try input.fileHandleForWriting.close()
        // Read both pipes concurrently so a full pipe never blocks the child.
        nonisolated(unsafe) var errData = Data()
        let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning { p.terminate(); XCTFail("swiftkt \(arguments) did not finish in \(timeout) s") }
        p.waitUntilExit()
        while reader.isExecuting { Thread.sleep(forTimeInterval: 0.01) }
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    func testChatThroughStdin() throws {
        let model = try TestModels.path("smollm2-135m-instruct")
        let script = "/help\nWhat is the capital of France?\n/clear\nSay hello.\n/exit\n"
        let r = try swiftkt(["chat", "-m", model, "--temp", "0", "-n", "24"], stdin: script)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("/clear"), "help text: \(r.stdout)")
        XCTAssertTrue(r.stdout.contains("(conversation cleared)"), r.stdout)
        // The rendered conversation is llama.cpp's golden chat prompt (smollm2_p2_chat.txt), whose
        // greedy answer starts "L'Étoile, la …".
        XCTAssertTrue(r.stdout.contains("> L'Étoile"), "greedy answer: \(r.stdout)")
        XCTAssertTrue(r.stdout.contains("Hello"), "second answer after /clear: \(r.stdout)")
        // One statistics line per answer on stderr.
        XCTAssertEqual(r.stderr.components(separatedBy: "generated:").count - 1, 2, r.stderr)
    }

    func testChatEndsCleanlyAtEndOfInput() throws {
        let model = try TestModels.path("smollm2-135m-instruct")
        let r = try swiftkt(["chat", "-m", model, "--temp", "0", "-n", "4"], stdin: "Hi\n")
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testRunStreamsOnlyGeneratedTextToStdout() throws {
        let model = try TestModels.path("smollm2-135m-instruct")
        let r = try swiftkt(["run", "-m", model, "-p", "The capital of France is", "-n", "4", "--temp", "0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix(" Paris"), r.stdout)
        XCTAssertFalse(r.stdout.contains("t/s"), "statistics belong on stderr")
        XCTAssertTrue(r.stderr.contains("t/s"), r.stderr)
    }

    func testBadInputGivesAClearErrorAndNonZeroExit() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-cli-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let garbage = dir.appendingPathComponent("garbage.gguf")
        try Data("definitely not a gguf file".utf8).write(to: garbage)
        let truncated = dir.appendingPathComponent("truncated.gguf")
        let real = try Data(contentsOf: URL(fileURLWithPath: try TestModels.path("smollm2-135m-instruct")), options: .alwaysMapped)
        try real.prefix(100_000).write(to: truncated)

        let cases: [([String], String)] = [
            (["run", "-m", garbage.path, "-p", "x"], "magic"),
            (["run", "-m", truncated.path, "-p", "x"], "offset"),
            (["run", "-m", "no-such-model", "-p", "x"], "smollm2-135m-instruct"),
            (["run", "-m", garbage.path], "prompt"),
            (["run", "-m", try TestModels.path("smollm2-135m-instruct"), "-c", "8", "-p", String(repeating: "word ", count: 50)], "context"),
            (["run", "-m", try TestModels.path("smollm2-135m-instruct"), "-p", "x", "--kernels", "turbo"], "reference"),
            (["inspect", "-m", truncated.path], "offset"),
        ]
        for (args, needle) in cases {
            let r = try swiftkt(args)
            XCTAssertNotEqual(r.status, 0, "\(args) should fail")
            XCTAssertFalse(r.status == 134 || r.status == 132 || r.status == 139, "\(args) crashed (status \(r.status))")
            XCTAssertTrue(r.stderr.lowercased().contains(needle.lowercased()), "\(args): expected '\(needle)' in: \(r.stderr)")
        }
    }
}
