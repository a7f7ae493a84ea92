// Shared helpers of the GGUF tests: real-model paths, RSS, temporary files, a small fixture.
import Core
import GGUF
import XCTest
#if canImport(Glibc)
import Glibc
#endif

enum TestModels {
    static var home: String {
        if let h = getenv("SWIFTKT_HOME").map({ String(cString: $0) }), !h.isEmpty { return h }
        let user = getenv("HOME").map { String(cString: $0) } ?? "/root"
        return user + "/.cache/swiftkt"
    }

    static let smolLM2 = "smollm2-135m-instruct.gguf"
    static let gemma3 = "gemma3-270m.gguf"

    /// The path of a real model; fails the test (never skips) when it is missing.
    static func path(_ file: String, file f: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = home + "/models/" + file
        guard access(p, R_OK) == 0 else {
            XCTFail("missing \(p): run the model setup step (download the real models into $SWIFTKT_HOME/models) first", file: f, line: line)
            throw XCTSkip("unreachable")
        }
        return p
    }
}

/// Resident set size of this process in bytes (/proc/self/statm: second field × page size).
func residentBytes() -> Int {
    guard let f = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(f) }
    var buf = [UInt8](repeating: 0, count: 256)
    let n = fread(&buf, 1, 255, f)
    let fields = String(decoding: buf[0..<max(n, 0)], as: UTF8.self).split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return 0 }
    return pages * sysconf(Int32(_SC_PAGESIZE))
}

/// A fresh temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) -> String {
    var template = Array("/tmp/gguf-test-XXXXXX".utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { buf -> String in
        guard let base = buf.baseAddress, let p = mkdtemp(base) else { return "/tmp" }
        return String(cString: p)
    }
    test.addTeardownBlock { _ = system_rm(dir) }
    return dir
}

private func system_rm(_ dir: String) -> Int32 {
    guard let d = opendir(dir) else { return -1 }
    while let e = readdir(d) {
        let name = withUnsafePointer(to: e.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
        if name != "." && name != ".." { unlink(dir + "/" + name) }
    }
    closedir(d)
    return rmdir(dir)
}

func readFile(_ path: String) -> [UInt8] {
    guard let f = fopen(path, "rb") else { return [] }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    guard let f = fopen(path, "wb") else { return }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    fclose(f)
}

/// Parses bytes held in memory (the file must not escape `body`).
@discardableResult
func withParsed<R>(_ bytes: [UInt8], _ body: (GGUFFile) throws -> R) throws -> R {
    try bytes.withUnsafeBytes { try body(GGUFFile.parse($0)) }
}

/// Parses bytes held in memory, for assertions on the thrown error.
func parse(_ bytes: [UInt8]) throws {
    try withParsed(bytes) { _ in () }
}

/// Asserts that `body` throws exactly `expected`.
func assertThrows(_ expected: GGUFError, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Any) {
    do {
        _ = try body()
        XCTFail("expected \(expected), but it succeeded", file: file, line: line)
    } catch let e as GGUFError {
        XCTAssertEqual(e, expected, "\n got: \(e)\nwant: \(expected)", file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}
