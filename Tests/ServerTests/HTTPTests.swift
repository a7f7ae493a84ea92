// The HTTP layer alone: request parsing (every limit and malformed part, any split of the bytes),
// a fuzz that must end every input in a request or an HTTPError, and the response framing.
import Foundation
@testable import Server
import XCTest

/// Bytes from memory, `step` at a time (1: the slowest client).
struct MemorySource: ByteSource {
    var bytes: [UInt8]
    var step: Int = 1 << 20
    var position = 0
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(step, buffer.count, bytes.count - position)
        guard n > 0 else { return 0 }
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes.withUnsafeBytes { $0 }[position..<position + n]))
        position += n
        return n
    }
}

extension UnsafeRawBufferPointer {
    init(rebasing slice: Slice<UnsafeRawBufferPointer>) { self = UnsafeRawBufferPointer(start: slice.base.baseAddress! + slice.startIndex, count: slice.count) }
}

/// Collects what a response writes; `failAfter` writes it throws (a client that went away).
final class MemorySink: ByteSink, @unchecked Sendable {
    var bytes: [UInt8] = []
    var writes = 0
    var failAfter = Int.max
    func write(_ b: [UInt8]) throws {
        writes += 1
        if writes > failAfter { throw HTTPError(499, "gone") }
        bytes += b
    }
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

func parse(_ text: String, step: Int = 1 << 20, limits: HTTPLimits = HTTPLimits(), interim: () throws -> Void = {}) throws -> HTTPRequest? {
    var reader = HTTPRequestReader(source: MemorySource(bytes: Array(text.utf8), step: step), limits: limits)
    return try reader.next(interim: interim)
}

func status(of text: String, limits: HTTPLimits = HTTPLimits()) -> Int? {
    do { _ = try parse(text, limits: limits); return nil } catch let e as HTTPError { return e.status } catch { return -1 }
}

final class HTTPTests: XCTestCase {
    func testRequestWithContentLengthAnyHowTheBytesArrive() throws {
        let body = #"{"messages":[{"role":"user","content":"é"}]}"#
        let text = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        for step in [1, 2, 3, 7, 64, 1 << 20] {
            let r = try XCTUnwrap(try parse(text, step: step))
            XCTAssertEqual(r.method, "POST")
            XCTAssertEqual(r.path, "/v1/chat/completions")
            XCTAssertEqual(r.query, "x=1")
            XCTAssertEqual(r.header("CONTENT-TYPE"), "application/json")
            XCTAssertEqual(String(decoding: r.body, as: UTF8.self), body, "step \(step)")
        }
    }

    func testChunkedBodyAndContinue() throws {
        let text = "POST /api/chat HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n"
        for step in [1, 5, 1 << 20] {
            var continued = 0
            let r = try XCTUnwrap(try parse(text, step: step) { continued += 1 })
            XCTAssertEqual(String(decoding: r.body, as: UTF8.self), "Wikipedia in\r\n\r\nchunks.")
            XCTAssertEqual(continued, 1)
        }
    }

    func testHTTP10WithoutHostAndAbsoluteTarget() throws {
        let r = try XCTUnwrap(try parse("GET /health HTTP/1.0\r\n\r\n"))
        XCTAssertEqual(r.version, "HTTP/1.0")
        let a = try XCTUnwrap(try parse("GET http://example.com:8080/v1/models?a HTTP/1.1\r\nHost: x\r\n\r\n"))
        XCTAssertEqual(a.path, "/v1/models")
        XCTAssertEqual(a.query, "a")
    }

    /// Review findings (session 22): sizes that overflow, framing that never ends, a trickle, bare LF.
    func testOverflowsFramingFloodsTricklesAndBareLineFeeds() throws {
        // A chunk size near Int.max after a first chunk: a 413, not an overflow trap.
        XCTAssertEqual(status(of: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n7FFFFFFFFFFFFFFF\r\n"), 413)
        // Chunk framing that carries almost no body counts against the bytes a request may take.
        var limits = HTTPLimits()
        limits.headerBytes = 1024
        limits.bodyBytes = 4096
        var flood = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        for _ in 0..<2000 { flood += "1;" + String(repeating: "e", count: 200) + "\r\na\r\n" }
        XCTAssertEqual(status(of: flood, limits: limits), 413)
        // Chunk extensions are bounded per line.
        XCTAssertEqual(status(of: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: 300) + "\r\na\r\n0\r\n\r\n"), 400)
        // A request that trickles in past the deadline: 408.
        struct Slow: ByteSource {
            var sent = 0
            mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
                usleep(20_000)
                sent += 1
                buffer[0] = UInt8(ascii: "a")
                return 1
            }
        }
        limits = HTTPLimits()
        limits.seconds = 0.2
        var reader = HTTPRequestReader(source: Slow(), limits: limits)
        XCTAssertThrowsError(try reader.next()) { XCTAssertEqual(($0 as? HTTPError)?.status, 408) }
        // Bare LF line ends are accepted.
        let r = try XCTUnwrap(try parse("POST /api/chat HTTP/1.1\nHost: a\nContent-Length: 2\n\n{}"))
        XCTAssertEqual(r.path, "/api/chat")
        XCTAssertEqual(r.header("host"), "a")
        XCTAssertEqual(r.body, Array("{}".utf8))
        // An HTTP/1.0 client gets no interim 100 Continue.
        var continued = 0
        _ = try parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx") { continued += 1 }
        XCTAssertEqual(continued, 0)
    }

    func testEndOfStreamBeforeARequestIsNil() throws {
        XCTAssertNil(try parse(""))
    }

    func testMalformedRequestsGetTheirStatus() {
        var small = HTTPLimits()
        small.headerBytes = 256
        small.bodyBytes = 100
        small.headerCount = 3
        let cases: [(String, Int, HTTPLimits)] = [
            ("GET\r\n\r\n", 400, HTTPLimits()),
            ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, HTTPLimits()),
            ("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, HTTPLimits()),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, HTTPLimits()),
            ("GET / FTP/1.1\r\nHost: a\r\n\r\n", 400, HTTPLimits()),
            ("GET relative HTTP/1.1\r\nHost: a\r\n\r\n", 400, HTTPLimits()),
            ("GET / HTTP/1.1\r\n\r\n", 400, HTTPLimits()),  // no Host
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, HTTPLimits()),  // space before the colon
            ("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400, HTTPLimits()),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\u{01}b\r\n\r\n", 400, HTTPLimits()),
            ("GET / HTTP/1.1\r\nHost: a\r\nbroken\r\n\r\n", 400, HTTPLimits()),
            ("GET /\u{7F} HTTP/1.1\r\nHost: a\r\n\r\n", 400, HTTPLimits()),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, HTTPLimits()),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", 400, HTTPLimits()),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, HTTPLimits()),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, HTTPLimits()),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 413, small),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort", 400, HTTPLimits()),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, HTTPLimits()),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, HTTPLimits()),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 400, HTTPLimits()),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 413, small),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 400, HTTPLimits()),
            ("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417, HTTPLimits()),
            ("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, small),
            ("GET / HTTP/1.1\r\nHost: " + String(repeating: "a", count: 300) + "\r\n\r\n", 431, small),
            ("GET / HTTP/1.1\r\nHost: a\r\n", 400, HTTPLimits()),  // ends inside the head
        ]
        for (text, expected, limits) in cases {
            XCTAssertEqual(status(of: text, limits: limits), expected, text.debugDescription)
        }
        // A NUL byte and invalid UTF-8 in the head.
        var reader = HTTPRequestReader(source: MemorySource(bytes: Array("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n".utf8)))
        XCTAssertThrowsError(try reader.next()) { XCTAssertEqual(($0 as? HTTPError)?.status, 400) }
        reader = HTTPRequestReader(source: MemorySource(bytes: Array("GET / HTTP/1.1\r\nHost: ".utf8) + [0xFF, 0xFE] + Array("\r\n\r\n".utf8)))
        XCTAssertThrowsError(try reader.next()) { XCTAssertEqual(($0 as? HTTPError)?.status, 400) }
    }

    /// Random edits of valid requests: each ends in a request or an HTTPError with a 4xx/5xx
    /// status, never a trap or a read past the input.
    func testFuzzedRequestsEndInARequestOrAnError() {
        let seeds = [
            "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n{\"messages\": [] }",
            "POST /api/chat HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\n\r\n",
            "GET /v1/models HTTP/1.0\r\nUser-Agent: x\r\n\r\n",
        ].map { Array($0.utf8) }
        var rng = SystemRandomNumberGenerator()
        var limits = HTTPLimits()
        limits.headerBytes = 512
        limits.bodyBytes = 1024
        let alphabet: [UInt8] = Array("\r\n :0123456789abcdefABCDEF-;\t\u{0}\u{7F}".utf8) + [0xC3, 0xFF]
        let cases = 3000 * max(1, Int(ProcessInfo.processInfo.environment["SWIFTKT_FUZZ_CASES"] ?? "1") ?? 1)
        var requests = 0, errors = 0
        for _ in 0..<cases {
            var b = seeds.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0...b.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: if i < b.count { b[i] = alphabet.randomElement(using: &rng)! }
                case 1: b.insert(alphabet.randomElement(using: &rng)!, at: i)
                case 2: if i < b.count { b.remove(at: i) }
                default: b = Array(b[0..<i])
                }
            }
            var reader = HTTPRequestReader(source: MemorySource(bytes: b, step: Int.random(in: 1...64, using: &rng)), limits: limits)
            do {
                if let r = try reader.next() { requests += 1; XCTAssertLessThanOrEqual(r.body.count, 1024) }
            } catch let e as HTTPError {
                errors += 1
                XCTAssertTrue((400..<600).contains(e.status), "\(e) for \(String(decoding: b, as: UTF8.self).debugDescription)")
            } catch {
                XCTFail("unexpected \(error)")
            }
        }
        XCTAssertGreaterThan(requests, 0)
        XCTAssertGreaterThan(errors, 0)
    }

    func testResponseFraming() throws {
        let sink = MemorySink()
        let w = ResponseWriter(sink: sink, version: "HTTP/1.1", method: "POST")
        try w.start(status: 200, contentType: "text/event-stream")
        try w.chunk(Array("data: hello\n\n".utf8))
        try w.chunk([])
        try w.finish()
        XCTAssertTrue(sink.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertTrue(sink.text.contains("Transfer-Encoding: chunked\r\n"))
        XCTAssertTrue(sink.text.hasSuffix("\r\n\r\nd\r\ndata: hello\n\n\r\n0\r\n\r\n"), sink.text.debugDescription)

        // HTTP/1.0: no chunks, the close ends the body.
        let old = MemorySink()
        let w10 = ResponseWriter(sink: old, version: "HTTP/1.0", method: "GET")
        try w10.start(status: 200, contentType: "application/x-ndjson")
        try w10.chunk(Array("{}\n".utf8))
        try w10.finish()
        XCTAssertFalse(old.text.contains("chunked"))
        XCTAssertTrue(old.text.hasSuffix("\r\n\r\n{}\n"))

        // HEAD: the head alone, with the length of the body it would have had.
        let head = MemorySink()
        try ResponseWriter(sink: head, method: "HEAD").send(status: 200, contentType: "text/plain", body: Array("abc".utf8))
        XCTAssertTrue(head.text.hasSuffix("Content-Length: 3\r\n\r\n"), head.text)
    }

    func testJSONFields() throws {
        let f = try JSON.object(Array(#"{"t": 0.5, "b": true, "n": 3, "s": "x", "o": {"k": 1}, "a": ["p", "q"], "z": null, "one": 1}"#.utf8))
        XCTAssertEqual(try f.number("t"), 0.5)
        XCTAssertEqual(try f.bool("b"), true)
        XCTAssertEqual(try f.integer("n", in: 0...10), 3)
        XCTAssertEqual(try f.string("s"), "x")
        XCTAssertEqual(try f.strings("a"), ["p", "q"])
        XCTAssertEqual(try f.strings("s"), ["x"])
        XCTAssertNil(try f.number("z"))
        XCTAssertNil(try f.number("absent"))
        XCTAssertEqual(try f.object("o")?.integer("k", in: 0...1), 1)
        func message(_ body: () throws -> Any?) -> String? {
            do { _ = try body(); return nil } catch let e as HTTPError { XCTAssertEqual(e.status, 400); return e.message } catch { return "\(error)" }
        }
        XCTAssertEqual(message { try f.bool("one") }, "'one' must be true or false")
        XCTAssertEqual(message { try f.number("b") }, "'b' must be a number")
        XCTAssertEqual(message { try f.integer("t", in: 0...10) }, "'t' must be a whole number in 0…10, got 0.5")
        XCTAssertEqual(message { try f.number("n", in: 0...2) }, "'n' must be in 0.0…2.0, got 3.0")
        XCTAssertEqual(message { try f.object("o")?.string("k") }, "'o.k' must be a string")
        XCTAssertEqual(message { try f.strings("n") }, "'n' must be a string or an array of strings")
        // Whole numbers at and past 2^63 are refused rather than trapped on; seeds take all 64 bits.
        let big = try JSON.object(Array(#"{"a": 9223372036854775807, "b": 9223372036854775808, "c": 18446744073709551615, "d": -1, "e": 1e300, "f": 2.5}"#.utf8))
        XCTAssertNotNil(message { try big.integer("a", in: 0...Int.max) })
        XCTAssertNotNil(message { try big.integer("e", in: Int.min...Int.max) })
        XCTAssertEqual(try big.seed("a"), UInt64(Int64.max))
        XCTAssertEqual(try big.seed("c"), UInt64.max)
        XCTAssertEqual(try big.seed("d"), UInt64.max)
        XCTAssertNotNil(message { try big.seed("e") })
        XCTAssertNotNil(message { try big.seed("f") })
        for bad in ["", "[1]", "{", "nul", "\"s\""] {
            XCTAssertNotNil(message { try JSON.object(Array(bad.utf8)) }, bad)
        }
    }
}
