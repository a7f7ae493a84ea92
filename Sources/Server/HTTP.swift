// HTTP/1.1 messages, as much as a local API server needs: one request per connection read from a
// byte source (a socket, or a buffer in tests) with limits on every part, bodies by
// Content-Length or chunked transfer coding, and responses written whole or streamed in chunks.
// Anything malformed becomes an `HTTPError` with the status to answer, never a crash or a wait
// without end (the socket's read timeout bounds every read).
import Foundation

public struct HTTPRequest: Sendable {
    public var method: String
    /// The target's path, percent-decoding left to the router (the API's paths are plain ASCII).
    public var path: String
    public var query: String
    /// "HTTP/1.1" or "HTTP/1.0".
    public var version: String
    /// Header names in lower case, in arrival order.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, path: String, query: String = "", version: String = "HTTP/1.1",
                headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method; self.path = path; self.query = query; self.version = version
        self.headers = headers; self.body = body
    }

    /// The first value of header `name` (any case).
    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.name == n }?.value
    }
}

/// A request that cannot be served: the status and a message for the client.
public struct HTTPError: Error, CustomStringConvertible, Equatable {
    public var status: Int
    public var message: String
    public init(_ status: Int, _ message: String) { self.status = status; self.message = message }
    public var description: String { "\(status) \(HTTPStatus.reason(status)): \(message)" }
}

public enum HTTPStatus {
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }
}

/// Where request bytes come from. `read` returns 0 at the end of the stream and throws
/// `HTTPError(408, …)` when the peer is too slow.
public protocol ByteSource {
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// Where response bytes go; a failed write means the client is gone.
public protocol ByteSink: AnyObject {
    func write(_ bytes: [UInt8]) throws
    /// Whether the client has closed its end (checked without waiting), for work that writes
    /// nothing until it is done.
    var peerGone: Bool { get }
}

extension ByteSink {
    public var peerGone: Bool { false }
}

public struct HTTPLimits: Sendable {
    /// Request line and headers together.
    public var headerBytes = 64 << 10
    public var headerCount = 100
    public var bodyBytes = 16 << 20
    /// Seconds for the whole request (head and body) to arrive, however it trickles in.
    public var seconds: Double = 60
    public init() {}

    /// Every byte a request may take on the wire: head, body, chunk framing and trailers.
    var wireBytes: Int { 2 * headerBytes + bodyBytes + bodyBytes / 8 + (64 << 10) }
}

/// Reads one request from a byte source.
public struct HTTPRequestReader<Source: ByteSource> {
    public var source: Source
    public let limits: HTTPLimits
    private var buffer: [UInt8] = []
    private var position = 0
    private var ended = false
    private var wireBytes = 0
    private var deadline: Date?

    public init(source: Source, limits: HTTPLimits = HTTPLimits()) {
        self.source = source
        self.limits = limits
    }

    /// The next request, or nil when the stream ends before its first byte. `interim` is called
    /// with "100 Continue" before the body of a request that asks for it (`Expect: 100-continue`).
    public mutating func next(interim: () throws -> Void = {}) throws -> HTTPRequest? {
        guard let (headEnd, terminator) = try readHead() else { return nil }
        let head = Array(buffer[position..<headEnd])
        position = headEnd + terminator
        compact()
        var request = try Self.parseHead(head, limits: limits)
        let contentLength = try Self.contentLength(request, limits: limits)
        let chunked = try Self.isChunked(request)
        if chunked && contentLength != nil {
            throw HTTPError(400, "a request may not carry both Content-Length and Transfer-Encoding")
        }
        if let expect = request.header("expect") {
            guard expect.lowercased() == "100-continue" else { throw HTTPError(417, "unsupported Expect: \(expect)") }
            if request.version == "HTTP/1.1" && (chunked || (contentLength ?? 0) > 0) { try interim() }
        }
        if chunked {
            request.body = try readChunkedBody()
        } else if let n = contentLength, n > 0 {
            request.body = try readExactly(n)
        }
        return request
    }

    // MARK: reading

    private mutating func fill() throws -> Bool {
        if ended { return false }
        // The deadline runs from the first byte asked for: a client trickling a byte at a time
        // cannot hold a connection for longer.
        let now = Date()
        if deadline == nil { deadline = now.addingTimeInterval(limits.seconds) }
        if now > deadline! { throw HTTPError(408, "the request took longer than \(Int(limits.seconds)) s to arrive") }
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0) }
        if n <= 0 { ended = true; return false }
        wireBytes += n
        if wireBytes > limits.wireBytes { throw HTTPError(413, "the request exceeds \(limits.wireBytes) bytes on the wire") }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// Drops the bytes already consumed (between reads only: the searches keep indices into the buffer).
    private mutating func compact() {
        if position > 0 { buffer.removeFirst(position); position = 0 }
    }

    /// Index of the empty line ending the head and the length of its terminator ("\r\n\r\n"; a
    /// bare "\n\n" too, which RFC 9112 lets a recipient accept), or nil at a clean end of stream.
    private mutating func readHead() throws -> (end: Int, terminator: Int)? {
        var searchFrom = position
        while true {
            if buffer.count - position >= 2 {
                var i = max(searchFrom, position)
                while i + 1 < buffer.count {
                    if buffer[i] == 10 && (buffer[i + 1] == 10 || (buffer[i + 1] == 13 && i + 2 < buffer.count && buffer[i + 2] == 10)) {
                        let start = i > position && buffer[i - 1] == 13 ? i - 1 : i
                        if start - position > limits.headerBytes {
                            throw HTTPError(431, "the request line and headers exceed \(limits.headerBytes) bytes")
                        }
                        return (start, (buffer[i + 1] == 10 ? i + 2 : i + 3) - start)
                    }
                    i += 1
                }
                searchFrom = max(position, buffer.count - 2)
            }
            if buffer.count - position > limits.headerBytes {
                throw HTTPError(431, "the request line and headers exceed \(limits.headerBytes) bytes")
            }
            guard try fill() else {
                if buffer.count == position { return nil }
                throw HTTPError(400, "the connection ended inside the request headers")
            }
        }
    }

    private mutating func readExactly(_ n: Int) throws -> [UInt8] {
        while buffer.count - position < n {
            guard try fill() else { throw HTTPError(400, "the connection ended after \(buffer.count - position) of \(n) body bytes") }
        }
        defer { position += n }
        return Array(buffer[position..<position + n])
    }

    /// One CRLF-terminated line (without it), at most `limit` bytes.
    private mutating func readLine(limit: Int, what: String) throws -> [UInt8] {
        var searchFrom = position
        while true {
            var i = searchFrom
            while i + 1 < buffer.count {
                if buffer[i] == 13 && buffer[i + 1] == 10 {
                    if i - position > limit { throw HTTPError(400, "\(what) is longer than \(limit) bytes") }
                    defer { position = i + 2 }
                    return Array(buffer[position..<i])
                }
                i += 1
            }
            searchFrom = max(position, buffer.count - 1)
            if buffer.count - position > limit { throw HTTPError(400, "\(what) is longer than \(limit) bytes") }
            guard try fill() else { throw HTTPError(400, "the connection ended inside \(what)") }
        }
    }

    private mutating func readChunkedBody() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            compact()
            let line = try readLine(limit: 256, what: "a chunk size line")
            let sizeText = String(decoding: line.prefix { $0 != UInt8(ascii: ";") }, as: UTF8.self)
                .trimmingCharacters(in: .whitespaces)
            guard !sizeText.isEmpty, sizeText.count <= 16, sizeText.allSatisfy(\.isHexDigit),
                  let size = Int(sizeText, radix: 16) else {
                throw HTTPError(400, "bad chunk size '\(String(sizeText.prefix(32)))'")
            }
            if size == 0 {
                // Trailer fields (ignored) up to the empty line.
                var trailers = 0
                while !(try readLine(limit: limits.headerBytes, what: "a trailer field")).isEmpty {
                    trailers += 1
                    if trailers > limits.headerCount { throw HTTPError(431, "more than \(limits.headerCount) trailer fields") }
                }
                return body
            }
            guard size <= limits.bodyBytes - body.count else {
                throw HTTPError(413, "the request body exceeds \(limits.bodyBytes) bytes")
            }
            body += try readExactly(size)
            guard try readLine(limit: 2, what: "a chunk's end").isEmpty else { throw HTTPError(400, "a chunk is longer than its size") }
        }
    }

    // MARK: parsing

    static func isToken(_ s: Substring) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }

    static func parseHead(_ head: [UInt8], limits: HTTPLimits) throws -> HTTPRequest {
        guard let text = String(validatingUTF8CString: head) else { throw HTTPError(400, "the request head is not UTF-8 text") }
        // Lines end in CRLF, or a bare LF (accepted); a CR elsewhere is refused below as a control character.
        // ("\r\n" is one Character in Swift.)
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\r\n" || $0 == "\n" })
        // Tolerate empty lines before the request line (RFC 9112 §2.2).
        while let first = lines.first, first.isEmpty { lines.removeFirst() }
        guard let requestLine = lines.first else { throw HTTPError(400, "no request line") }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, isToken(parts[0]), !parts[1].isEmpty else {
            throw HTTPError(400, "malformed request line '\(String(requestLine.prefix(80)))'")
        }
        let version = String(parts[2])
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            throw HTTPError(version.hasPrefix("HTTP/") ? 505 : 400, "unsupported protocol '\(String(version.prefix(20)))'")
        }
        var target = parts[1]
        // Absolute form (a proxy's): keep the path.
        if target.hasPrefix("http://") || target.hasPrefix("https://") {
            let afterScheme = target[target.index(target.firstIndex(of: ":")!, offsetBy: 3)...]
            target = afterScheme.firstIndex(of: "/").map { afterScheme[$0...] } ?? "/"
        }
        guard target.hasPrefix("/") || target == "*" else { throw HTTPError(400, "bad request target '\(String(target.prefix(80)))'") }
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw HTTPError(400, "the request target has spaces or control characters") }
        let (path, query): (Substring, Substring) = {
            if let q = target.firstIndex(of: "?") { return (target[..<q], target[target.index(after: q)...]) }
            return (target, "")
        }()
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else {
                throw HTTPError(400, "malformed header line '\(String(line.prefix(80)))'")
            }
            let name = line[..<colon]
            // No white space before the colon, no obsolete line folding (RFC 9112 §5).
            guard isToken(name) else { throw HTTPError(400, "malformed header name '\(String(name.prefix(80)))'") }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
            guard !value.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F }) else {
                throw HTTPError(400, "header \(name) has control characters")
            }
            headers.append((name.lowercased(), value))
            if headers.count > limits.headerCount { throw HTTPError(431, "more than \(limits.headerCount) header fields") }
        }
        if version == "HTTP/1.1" && !headers.contains(where: { $0.name == "host" }) {
            throw HTTPError(400, "an HTTP/1.1 request needs a Host header")
        }
        return HTTPRequest(method: String(parts[0]), path: String(path), query: String(query), version: version,
                           headers: headers, body: [])
    }

    static func contentLength(_ r: HTTPRequest, limits: HTTPLimits) throws -> Int? {
        let values = r.headers.filter { $0.name == "content-length" }.flatMap { $0.value.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard let first = values.first else { return nil }
        guard values.allSatisfy({ $0 == first }) else { throw HTTPError(400, "conflicting Content-Length values") }
        guard !first.isEmpty, first.count <= 18, first.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(first) else {
            throw HTTPError(400, "bad Content-Length '\(String(first.prefix(32)))'")
        }
        guard n <= limits.bodyBytes else { throw HTTPError(413, "the request body (\(n) bytes) exceeds \(limits.bodyBytes) bytes") }
        return n
    }

    static func isChunked(_ r: HTTPRequest) throws -> Bool {
        let codings = r.headers.filter { $0.name == "transfer-encoding" }.flatMap { $0.value.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if codings.isEmpty { return false }
        guard codings == ["chunked"] else {
            throw HTTPError(501, "unsupported Transfer-Encoding '\(codings.joined(separator: ", "))' (only chunked)")
        }
        return true
    }
}

extension String {
    /// `bytes` as UTF-8 (nil when invalid or when it holds a NUL byte).
    init?(validatingUTF8CString bytes: [UInt8]) {
        guard !bytes.contains(0), let s = String(bytes: bytes, encoding: .utf8) else { return nil }
        self = s
    }
}

/// Writes one response: whole (`send`) or streamed (`start` + `chunk`… + `finish`), chunked for
/// HTTP/1.1 clients and delimited by the connection's close for HTTP/1.0 ones. Every response
/// closes the connection (`Connection: close`): one request per connection keeps the server
/// simple, and clients open another.
public final class ResponseWriter {
    let sink: ByteSink
    let chunked: Bool
    let isHead: Bool
    public private(set) var status: Int?
    private var streaming = false
    /// Headers every response carries.
    static let common: [(String, String)] = [("Server", "swiftkt"), ("Connection", "close")]
    /// The origin a browser page may read this response from (CORS), set by the router.
    public var allowOrigin: String?

    public init(sink: ByteSink, version: String = "HTTP/1.1", method: String = "GET") {
        self.sink = sink
        self.chunked = version == "HTTP/1.1"
        self.isHead = method == "HEAD"
    }

    /// Whether a response (or its head) has been written.
    public var started: Bool { status != nil }

    /// Whether the client has gone away (closed its connection).
    public var peerGone: Bool { sink.peerGone }

    private func head(_ status: Int, _ headers: [(String, String)]) -> [UInt8] {
        var s = "HTTP/1.1 \(status) \(HTTPStatus.reason(status))\r\n"
        var all = Self.common + headers
        if let o = allowOrigin { all += [("Access-Control-Allow-Origin", o), ("Vary", "Origin")] }
        for (n, v) in all { s += "\(n): \(v)\r\n" }
        return Array((s + "\r\n").utf8)
    }

    public func send(status: Int, contentType: String, body: [UInt8], headers: [(String, String)] = []) throws {
        precondition(!started, "a response was already written")
        self.status = status
        var all = headers
        if status != 204 { all = [("Content-Type", contentType), ("Content-Length", "\(body.count)")] + headers }
        try sink.write(head(status, all) + (isHead ? [] : body))
    }

    public func start(status: Int, contentType: String, headers: [(String, String)] = []) throws {
        precondition(!started, "a response was already written")
        self.status = status
        streaming = true
        var all = [("Content-Type", contentType), ("Cache-Control", "no-cache")] + headers
        if chunked { all.append(("Transfer-Encoding", "chunked")) }
        try sink.write(head(status, all))
    }

    public func chunk(_ bytes: [UInt8]) throws {
        precondition(streaming, "chunk before start")
        guard !bytes.isEmpty, !isHead else { return }
        if chunked {
            try sink.write(Array((String(bytes.count, radix: 16) + "\r\n").utf8) + bytes + [13, 10])
        } else {
            try sink.write(bytes)
        }
    }

    public func finish() throws {
        precondition(streaming, "finish before start")
        streaming = false
        if chunked && !isHead { try sink.write(Array("0\r\n\r\n".utf8)) }
    }
}
