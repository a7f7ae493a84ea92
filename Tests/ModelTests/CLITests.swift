// The `swiftkt` binary driven as a person (or a script) would: interactive chat through stdin,
// generation, and bad input that must end in a clear message and a non-zero exit.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GGUF
import Models
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

    /// Inputs a robustness sweep (session 20) found crashing, hanging or exiting 0: a block count,
    /// epsilon, sliding window or key type a file gets wrong; a context whose KV cache cannot fit;
    /// absurd thread counts, sampling options, benchmark lengths and kernel timings; a rules file
    /// nested thousands deep; a missing prompt file.
    func testCorruptHyperparametersAndAbsurdOptionsFailCleanly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-cli-bad-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func model(_ arch: String, _ name: String, _ edit: (inout GGUFWriter) -> Void = { _ in }) throws -> String {
            var w = try SyntheticModel.build(architecture: arch, shape: try SyntheticModel.shape(architecture: arch, name: "tiny"),
                                             type: .q8_0, seed: 1)
            edit(&w)
            let path = dir.appendingPathComponent(name + ".gguf").path
            try w.write(to: path)
            return path
        }
        let good = try model("llama", "good")
        let deep = dir.appendingPathComponent("deep.yaml")
        try Data(String(repeating: "[", count: 5000).utf8).write(to: deep)
        let dashes = dir.appendingPathComponent("dashes.yaml")
        try Data((String(repeating: "- ", count: 5000) + "x\n").utf8).write(to: dashes)
        let cases: [([String], String)] = [
            (["run", "-m", try model("llama", "blocks") { $0.set("llama.block_count", .uint32(UInt32(Int32.max))) }, "-p", "x"],
             "no tensors of layer"),
            (["run", "-m", try model("llama", "eps") { $0.set("llama.attention.layer_norm_rms_epsilon", .float32(.nan)) }, "-p", "x"],
             "layer_norm_rms_epsilon"),
            (["run", "-m", try model("llama", "base") { $0.set("llama.rope.freq_base", .float32(0)) }, "-p", "x"], "freq_base"),
            (["run", "-m", try model("llama", "width") { $0.set("llama.embedding_length", .string("256")) }, "-p", "x"],
             "must be an integer"),
            (["run", "-m", try model("llama", "ctx") { $0.set("llama.context_length", .int32(-1)) }, "-p", "x"], "context_length"),
            (["run", "-m", try model("gemma3", "window") { $0.set("gemma3.attention.sliding_window", .uint32(0)) }, "-p", "x"],
             "sliding_window"),
            (["run", "-m", good, "-p", "x", "-c", "1000000000"], "KV cache"),
            (["run", "-m", good, "-p", "x", "-t", "100000"], "--threads"),
            (["run", "-m", good, "-p", "x", "--temp", "-1"], "--temp"),
            (["run", "-m", good, "-p", "x", "--temp", "nan"], "--temp"),
            (["run", "-m", good, "-p", "x", "--top-p", "2"], "--top-p"),
            (["run", "-m", good, "-p", "x", "--repeat-penalty", "0"], "--repeat-penalty"),
            (["run", "-m", good, "--prompt-file", dir.appendingPathComponent("none.txt").path], "does not exist"),
            (["inspect", "-m", good, "--placement", "--rules", deep.path], "nests too deeply"),
            (["inspect", "-m", good, "--placement", "--rules", dashes.path], "nests too deeply"),
            (["bench", "-m", good, "-p", "9223372036854775807", "-n", "0"], "-p"),
            (["perplexity", "-m", good, "-f", good, "-b", "0"], "--batch-size"),
            (["kernels", "--seconds", "inf"], "--seconds"),
            (["kernels", "--rows", "99999999999"], "--rows"),
        ]
        for (args, needle) in cases {
            let r = try swiftkt(args, timeout: 60)
            XCTAssertNotEqual(r.status, 0, "\(args) should fail")
            XCTAssertFalse(r.status == 134 || r.status == 132 || r.status == 139, "\(args) crashed (status \(r.status))")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): expected '\(needle)' in: \(r.stderr)")
        }
        // Names from the file reach the terminal as text, not as escape sequences.
        let escaped = try model("llama", "escape") { try? $0.addTensor(name: "evil\u{1B}[2J", type: .f32, shape: [4], data: [UInt8](repeating: 0, count: 16)) }
        let listing = try swiftkt(["inspect", "-m", escaped], timeout: 60)
        XCTAssertEqual(listing.status, 0, listing.stderr)
        XCTAssertFalse(listing.stdout.contains("\u{1B}"), "a raw escape in the listing")
        XCTAssertTrue(listing.stdout.contains("evil\\u{1B}[2J"), listing.stdout)
        // A full standard output is an error (exit 74), not a trap or a silent exit 0.
        for args in [["run", "-m", good, "-p", "x", "-n", "8", "--temp", "0"], ["inspect", "-m", good]] {
            let p = Process()
            p.executableURL = Self.binary
            p.arguments = args
            guard let full = FileHandle(forWritingAtPath: "/dev/full") else { continue }
            p.standardOutput = full; p.standardError = FileHandle.nullDevice
            try p.run(); p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 74, "\(args) > /dev/full")
        }
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
            (["serve", "-m", garbage.path, "--port", "70000"], "port"),
            (["serve", "-m", try TestModels.path("smollm2-135m-instruct"), "--host", "no.such.host.invalid", "--port", "0"], "cannot resolve"),
            (["run", "-m", garbage.path, "-p", "x", "-n", "-2"], "-1 for no limit"),
        ]
        for (args, needle) in cases {
            let r = try swiftkt(args)
            XCTAssertNotEqual(r.status, 0, "\(args) should fail")
            XCTAssertFalse(r.status == 134 || r.status == 132 || r.status == 139, "\(args) crashed (status \(r.status))")
            XCTAssertTrue(r.stderr.lowercased().contains(needle.lowercased()), "\(args): expected '\(needle)' in: \(r.stderr)")
        }
    }

    /// `swiftkt serve` as a user starts it: it prints where it listens, answers an OpenAI request
    /// with the greedy text, and stops on SIGTERM.
    func testServeAnswersOverHTTP() throws {
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = ["serve", "-m", try TestModels.path("smollm2-135m-instruct"), "--port", "0", "-t", "2"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() }; p.waitUntilExit() }
        // The log line "serving NAME at http://127.0.0.1:PORT/ …" names the port the system chose.
        var log = ""
        let deadline = Date().addingTimeInterval(60)
        while !log.contains("serving "), Date() < deadline, p.isRunning {
            log += String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
        }
        let port = try XCTUnwrap(log.range(of: #"127\.0\.0\.1:(\d+)/"#, options: .regularExpression)
            .map { log[$0].dropFirst("127.0.0.1:".count).dropLast() }, log)
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/completions")!)
        request.httpMethod = "POST"
        request.httpBody = Data(#"{"prompt": "The capital of France is", "temperature": 0, "max_tokens": 4}"#.utf8)
        nonisolated(unsafe) var body: Data?
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, _, _ in body = data; done.signal() }.resume()
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: XCTUnwrap(body)) as? [String: Any])
        XCTAssertEqual((json["choices"] as? [[String: Any]])?.first?["text"] as? String, " Paris.\n\n")
        p.terminate()
        p.waitUntilExit()
        XCTAssertFalse(p.isRunning)
    }
}
