// The endpoints on the real SmolLM2 model, through the router (in memory) and through a socket:
// greedy answers equal the command line's and llama.cpp's golden, streams add up to the whole
// answers, and bad requests get a 4xx that names what is wrong.
import Engine
import Foundation
@testable import Server
import XCTest

enum ServerTestModel {
    nonisolated(unsafe) private static var cache: [Int: ServedModel] = [:]
    private static let lock = NSLock()

    /// SmolLM2-135M-Instruct from the model cache (scripts/test.sh pulls it), context `context`.
    static func smollm2(context: Int = 2048) throws -> ServedModel {
        lock.lock(); defer { lock.unlock() }
        if let m = cache[context] { return m }
        let url = ModelStore.path(forName: "smollm2-135m-instruct")
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("model smollm2-135m-instruct is not in \(url.path): run scripts/test.sh (or `swiftkt pull smollm2-135m-instruct`) first")
            throw XCTSkip("missing model")
        }
        var options = LoadOptions()
        options.threads = 2
        options.contextSize = context
        var defaults = GenerationParameters()
        defaults.maxTokens = 16
        let m = ServedModel(model: try LoadedModel(path: url.path, options: options), name: "smollm2", defaults: defaults)
        cache[context] = m
        return m
    }
}

struct Reply {
    var status: Int
    var head: String
    var body: String
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
    /// The `error.message` (OpenAI) or `error` (Ollama) of an error reply.
    var error: String? {
        if let e = json["error"] as? [String: Any] { return e["message"] as? String }
        return json["error"] as? String
    }
}

/// Splits raw response bytes into status, head and (de-chunked) body.
func reply(_ raw: String) -> Reply {
    guard let split = raw.range(of: "\r\n\r\n") else { return Reply(status: 0, head: raw, body: "") }
    let head = String(raw[..<split.lowerBound]), rest = String(raw[split.upperBound...])
    let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
    guard head.lowercased().contains("transfer-encoding: chunked") else { return Reply(status: status, head: head, body: rest) }
    var body = [UInt8](), bytes = Array(rest.utf8), i = 0
    while i + 1 < bytes.count, let lineEnd = (i..<bytes.count - 1).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }),
          let size = Int(String(decoding: bytes[i..<lineEnd], as: UTF8.self), radix: 16), size > 0,
          lineEnd + 2 + size <= bytes.count {
        body += bytes[(lineEnd + 2)..<(lineEnd + 2 + size)]
        i = lineEnd + 2 + size + 2
    }
    return Reply(status: status, head: head, body: String(decoding: body, as: UTF8.self))
}

final class APITests: XCTestCase {
    func call(_ router: APIRouter, _ method: String, _ path: String, _ body: String? = nil, sink: MemorySink = MemorySink()) -> Reply {
        let request = HTTPRequest(method: method, path: path, headers: [("host", "x")], body: Array((body ?? "").utf8))
        router.handle(request, ResponseWriter(sink: sink, version: "HTTP/1.1", method: method))
        return reply(sink.text)
    }

    func testChatCompletionIsTheGreedyAnswer() throws {
        let router = APIRouter(model: try ServerTestModel.smollm2())
        let body = #"{"model": "anything", "messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0, "max_tokens": 12}"#
        let r = call(router, "POST", "/v1/chat/completions", body)
        XCTAssertEqual(r.status, 200, r.body)
        let choice = try XCTUnwrap((r.json["choices"] as? [[String: Any]])?.first)
        let message = try XCTUnwrap(choice["message"] as? [String: Any])
        // llama.cpp's greedy answer to this conversation (smollm2_p2_chat.txt) starts "L'Étoile, la …".
        XCTAssertTrue((message["content"] as? String ?? "").hasPrefix("L'Étoile, la"), "\(message)")
        XCTAssertEqual(message["role"] as? String, "assistant")
        XCTAssertEqual(choice["finish_reason"] as? String, "length")
        XCTAssertEqual(r.json["object"] as? String, "chat.completion")
        XCTAssertEqual(r.json["model"] as? String, "smollm2")
        let usage = try XCTUnwrap(r.json["usage"] as? [String: Int])
        XCTAssertEqual(usage["completion_tokens"], 12)
        XCTAssertEqual(usage["total_tokens"], usage["prompt_tokens"]! + 12)

        // The same conversation streamed: the deltas add up to the same text; the last chunk has
        // the finish reason, the usage chunk comes when asked for, then [DONE].
        let streamed = call(router, "POST", "/v1/chat/completions",
                            String(body.dropLast()) + #", "stream": true, "stream_options": {"include_usage": true}}"#)
        XCTAssertEqual(streamed.status, 200)
        XCTAssertTrue(streamed.head.contains("text/event-stream"))
        let events = streamed.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        XCTAssertEqual(events.last, "data: [DONE]")
        let chunks = events.dropLast().map { try? JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8)) as? [String: Any] }
        var text = "", finish: String?
        for chunk in chunks {
            let c = try XCTUnwrap(chunk)
            for choice in c["choices"] as? [[String: Any]] ?? [] {
                text += (choice["delta"] as? [String: Any])?["content"] as? String ?? ""
                if let f = choice["finish_reason"] as? String { finish = f }
            }
        }
        XCTAssertEqual(text, message["content"] as? String)
        XCTAssertEqual(finish, "length")
        XCTAssertEqual((chunks.last??["usage"] as? [String: Int])?["completion_tokens"], 12)
    }

    func testCompletionContinuesThePrompt() throws {
        let router = APIRouter(model: try ServerTestModel.smollm2())
        // llama.cpp's greedy continuation (smollm2_p1_raw.txt): " Paris.\n\nThe United States has a population …".
        let r = call(router, "POST", "/v1/completions", #"{"prompt": "The capital of France is", "temperature": 0, "max_tokens": 8}"#)
        XCTAssertEqual(r.status, 200, r.body)
        let choice = try XCTUnwrap((r.json["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(choice["text"] as? String, " Paris.\n\nThe United States has")
        XCTAssertEqual(r.json["object"] as? String, "text_completion")
    }

    func testOllamaChatAndGenerate() throws {
        let router = APIRouter(model: try ServerTestModel.smollm2())
        let whole = call(router, "POST", "/api/chat",
                         #"{"model": "smollm2", "messages": [{"role": "user", "content": "What is the capital of France?"}], "stream": false, "options": {"temperature": 0, "num_predict": 12}}"#)
        XCTAssertEqual(whole.status, 200, whole.body)
        let answer = try XCTUnwrap((whole.json["message"] as? [String: Any])?["content"] as? String)
        XCTAssertTrue(answer.hasPrefix("L'Étoile, la"), answer)
        XCTAssertEqual(whole.json["done"] as? Bool, true)
        XCTAssertEqual(whole.json["eval_count"] as? Int, 12)
        XCTAssertEqual(whole.json["done_reason"] as? String, "length")

        // Streamed by default: one JSON object a line, the last with done and the counts.
        let lines = call(router, "POST", "/api/chat",
                         #"{"messages": [{"role": "user", "content": "What is the capital of France?"}], "options": {"temperature": 0, "num_predict": 12}}"#)
        XCTAssertTrue(lines.head.contains("application/x-ndjson"))
        let objects = lines.body.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(objects.map { ($0["message"] as? [String: Any])?["content"] as? String ?? "" }.joined(), answer)
        XCTAssertEqual(objects.last?["done"] as? Bool, true)
        XCTAssertEqual(objects.dropLast().allSatisfy { $0["done"] as? Bool == false }, true)

        // /api/generate wraps the prompt in the chat template (raw: false), as Ollama does: the same answer.
        let generated = call(router, "POST", "/api/generate",
                             #"{"prompt": "What is the capital of France?", "stream": false, "options": {"temperature": 0, "num_predict": 12}}"#)
        XCTAssertEqual(generated.json["response"] as? String, answer)
        let raw = call(router, "POST", "/api/generate",
                       #"{"prompt": "The capital of France is", "raw": true, "stream": false, "options": {"temperature": 0, "num_predict": 8}}"#)
        XCTAssertEqual(raw.json["response"] as? String, " Paris.\n\nThe United States has")
        // An empty prompt answers "loaded".
        XCTAssertEqual(call(router, "POST", "/api/generate", #"{"model": "smollm2"}"#).json["done_reason"] as? String, "load")
    }

    /// Browser pages may read answers only from this machine's origins, or those allowed.
    func testCrossOriginPages() throws {
        let router = APIRouter(model: try ServerTestModel.smollm2())
        func origin(_ o: String) -> String? {
            let sink = MemorySink()
            let r = HTTPRequest(method: "GET", path: "/v1/models", headers: [("host", "x"), ("origin", o)])
            router.handle(r, ResponseWriter(sink: sink))
            return sink.text.components(separatedBy: "\r\n").first { $0.hasPrefix("Access-Control-Allow-Origin: ") }?
                .dropFirst("Access-Control-Allow-Origin: ".count).description
        }
        XCTAssertEqual(origin("http://localhost:3000"), "http://localhost:3000")
        XCTAssertEqual(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080")
        XCTAssertNil(origin("https://evil.example"))
        router.allowedOrigins = ["https://ui.example"]
        XCTAssertEqual(origin("https://ui.example"), "https://ui.example")
        XCTAssertNil(origin("https://evil.example"))
        router.allowedOrigins = ["*"]
        XCTAssertEqual(origin("https://evil.example"), "https://evil.example")
    }

    func testAPIKey() throws {
        let router = APIRouter(model: try ServerTestModel.smollm2())
        router.apiKey = "s3cret"
        defer { router.apiKey = nil }
        func status(_ path: String, _ headers: [(String, String)]) -> Int {
            let sink = MemorySink()
            router.handle(HTTPRequest(method: "GET", path: path, headers: [("host", "x")] + headers), ResponseWriter(sink: sink))
            return reply(sink.text).status
        }
        XCTAssertEqual(status("/v1/models", []), 401)
        XCTAssertEqual(status("/v1/models", [("authorization", "Bearer wrong")]), 401)
        XCTAssertEqual(status("/v1/models", [("authorization", "Bearer s3cre")]), 401)
        XCTAssertEqual(status("/v1/models", [("authorization", "Bearer s3cret")]), 200)
        XCTAssertEqual(status("/api/tags", [("x-api-key", "s3cret")]), 200)
        XCTAssertEqual(status("/health", []), 200)
        XCTAssertEqual(status("/", []), 200)
    }

    func testListingsAndPages() throws {
        let router = APIRouter(model: try ServerTestModel.smollm2())
        XCTAssertEqual(((call(router, "GET", "/v1/models").json["data"] as? [[String: Any]])?.first)?["id"] as? String, "smollm2")
        let tags = call(router, "GET", "/api/tags").json["models"] as? [[String: Any]]
        XCTAssertEqual(tags?.first?["name"] as? String, "smollm2")
        XCTAssertEqual((tags?.first?["details"] as? [String: Any])?["quantization_level"] as? String, "Q4_1")
        XCTAssertEqual(call(router, "GET", "/api/version").json["version"] as? String, Ollama.version)
        XCTAssertEqual(call(router, "GET", "/health").json["status"] as? String, "ok")
        let page = call(router, "GET", "/")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.body.contains("/v1/chat/completions"))
        XCTAssertEqual(call(router, "OPTIONS", "/v1/chat/completions").status, 204)
        XCTAssertEqual(call(router, "GET", "/v1/models/").status, 200)
        XCTAssertEqual(call(router, "POST", "/api/show", "{}").json["capabilities"] as? [String], ["completion", "chat"])
    }

    func testBadRequestsNameTheProblem() throws {
        let router = APIRouter(model: try ServerTestModel.smollm2())
        let chat = "/v1/chat/completions"
        let user = #"[{"role": "user", "content": "Hi"}]"#
        let cases: [(String, String, String?, Int, String)] = [
            ("GET", "/v1/nothing", nil, 404, "no endpoint /v1/nothing"),
            ("GET", chat, nil, 405, "GET is not allowed"),
            ("POST", chat, nil, 400, "no body"),
            ("POST", chat, "{not json", 400, "not valid JSON"),
            ("POST", chat, "[1, 2]", 400, "must be a JSON object"),
            ("POST", chat, "{}", 400, "'messages' is required"),
            ("POST", chat, #"{"messages": []}"#, 400, "'messages' is empty"),
            ("POST", chat, #"{"messages": "hi"}"#, 400, "'messages' must be an array"),
            ("POST", chat, #"{"messages": [{"role": "wizard", "content": "x"}]}"#, 400, "'messages[0].role' is 'wizard'"),
            ("POST", chat, #"{"messages": [{"role": "user"}]}"#, 400, "'messages[0].content' is required"),
            ("POST", chat, #"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#, 400, "not a text part"),
            ("POST", chat, #"{"messages": \#(user), "temperature": -1}"#, 400, "'temperature' must be in"),
            ("POST", chat, #"{"messages": \#(user), "temperature": "hot"}"#, 400, "'temperature' must be a number"),
            ("POST", chat, #"{"messages": \#(user), "max_tokens": 1.5}"#, 400, "'max_tokens' must be a whole number"),
            ("POST", chat, #"{"messages": \#(user), "top_p": 2}"#, 400, "'top_p' must be in"),
            ("POST", chat, #"{"messages": \#(user), "stream": "yes"}"#, 400, "'stream' must be true or false"),
            ("POST", chat, #"{"messages": \#(user), "stop": 5}"#, 400, "'stop' must be a string or an array"),
            ("POST", chat, #"{"messages": \#(user), "n": 2}"#, 400, "'n' must be 1"),
            ("POST", chat, #"{"messages": \#(user), "tools": [{"type": "function"}]}"#, 400, "tool calls are not supported"),
            ("POST", chat, #"{"messages": \#(user), "response_format": {"type": "json_object"}}"#, 400, "not supported"),
            ("POST", "/v1/completions", #"{"prompt": 7}"#, 400, "'prompt' must be a string"),
            ("POST", "/v1/completions", #"{"prompt": ""}"#, 400, "the prompt is empty"),
            ("POST", "/api/chat", #"{"messages": [{"role": "user", "content": "x"}], "options": {"temperature": "x"}}"#, 400, "'options.temperature' must be a number"),
            ("POST", "/api/chat", #"{"messages": [{"role": "user", "content": "x", "images": ["AAAA"]}]}"#, 400, "images"),
            ("POST", "/api/generate", #"{"prompt": "x", "format": "json"}"#, 400, "'format'"),
            ("POST", "/api/generate", #"{"prompt": "x", "options": {"num_predict": -3}}"#, 400, "'options.num_predict' must be a whole number in -2"),
        ]
        for (method, path, body, status, text) in cases {
            let r = call(router, method, path, body)
            XCTAssertEqual(r.status, status, "\(method) \(path) \(body ?? ""): \(r.body)")
            XCTAssertTrue(r.error?.contains(text) == true, "\(method) \(path) \(body ?? ""): '\(r.error ?? r.body)' should say '\(text)'")
        }
        // Fields some clients always send, empty or off, are as good as absent; huge seeds are fine.
        for (path, body) in [("/api/generate", #"{"prompt": "Hi", "format": "", "suffix": "", "template": "", "system": "", "stream": false, "options": {"num_predict": 2, "seed": 9223372036854775807}}"#),
                             ("/v1/chat/completions", #"{"messages": \#(user), "logprobs": false, "top_logprobs": 0, "max_tokens": 2, "seed": 18446744073709551615}"#)] {
            let r = call(router, "POST", path, body)
            XCTAssertEqual(r.status, 200, "\(path): \(r.body)")
        }
        // Ollama's endpoints answer errors as {"error": "…"}, OpenAI's as {"error": {"message": …}}.
        XCTAssertNotNil(call(router, "POST", "/api/chat", "{").json["error"] as? String)
        XCTAssertNotNil(call(router, "POST", chat, "{").json["error"] as? [String: Any])
    }

    func testPromptLongerThanTheContext() throws {
        let router = APIRouter(model: try ServerTestModel.smollm2(context: 64))
        let long = String(repeating: "word ", count: 100)
        let r = call(router, "POST", "/v1/completions", #"{"prompt": "\#(long)", "max_tokens": 4}"#)
        XCTAssertEqual(r.status, 400)
        XCTAssertTrue(r.error?.contains("context holds 64") == true, r.body)
        // Streamed requests too get the 400 itself, before any event.
        for (path, body) in [("/v1/completions", #"{"prompt": "\#(long)", "stream": true}"#),
                             ("/api/generate", #"{"prompt": "\#(long)", "raw": true}"#)] {
            let s = call(router, "POST", path, body)
            XCTAssertEqual(s.status, 400, "\(path): \(s.body)")
            XCTAssertTrue(s.error?.contains("context holds 64") == true, s.body)
        }
        // A prompt that fits gets an answer cut where the context ends.
        let fits = call(router, "POST", "/v1/completions", #"{"prompt": "\#(String(repeating: "word ", count: 50))", "max_tokens": 100, "temperature": 0}"#)
        XCTAssertEqual(fits.status, 200, fits.body)
        let usage = try XCTUnwrap(fits.json["usage"] as? [String: Int])
        XCTAssertLessThanOrEqual(usage["total_tokens"]!, 64)
        XCTAssertEqual((fits.json["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String, "length")
    }

    /// A client that goes away mid-stream stops the generation, and the next request's answer is
    /// unaffected (the session's cache stays consistent).
    func testClientGoneMidStream() throws {
        let model = try ServerTestModel.smollm2()
        let router = APIRouter(model: model)
        nonisolated(unsafe) var lines: [String] = []
        model.log = { lines.append($0) }
        defer { model.log = { _ in } }
        for (path, body) in [("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 200, "stream": true, "temperature": 0}"#),
                             ("/api/chat", #"{"messages": [{"role": "user", "content": "Tell me a long story."}], "options": {"num_predict": 200, "temperature": 0}}"#)] {
            let sink = MemorySink()
            sink.failAfter = 3  // OpenAI: the head, the role chunk, one piece; Ollama: the head, two pieces
            _ = call(router, "POST", path, body, sink: sink)
            XCTAssertEqual(sink.writes, 4, path)  // the failed one, then nothing more
            // Generation stopped at the failed write (the log line: "… N generated …").
            XCTAssertTrue(lines.last?.contains(path == "/api/chat" ? " 3 generated" : " 2 generated") == true, "\(path): \(lines)")
        }
        let r = call(router, "POST", "/v1/completions", #"{"prompt": "The capital of France is", "temperature": 0, "max_tokens": 8}"#)
        XCTAssertEqual((r.json["choices"] as? [[String: Any]])?.first?["text"] as? String, " Paris.\n\nThe United States has")
    }

    /// A request that streams nothing stops when its client has gone (a closed connection).
    func testNonStreamedRequestStopsWhenTheClientLeaves() throws {
        final class Gone: ByteSink, @unchecked Sendable {
            var writes = 0
            func write(_ bytes: [UInt8]) throws { writes += 1; throw HTTPError(499, "gone") }
            var peerGone: Bool { true }
        }
        let model = try ServerTestModel.smollm2()
        let router = APIRouter(model: model)
        nonisolated(unsafe) var lines: [String] = []
        model.log = { lines.append($0) }
        defer { model.log = { _ in } }
        let request = HTTPRequest(method: "POST", path: "/v1/completions", headers: [("host", "x")],
                                  body: Array(#"{"prompt": "Once upon a time", "max_tokens": 500}"#.utf8))
        router.handle(request, ResponseWriter(sink: Gone()))
        XCTAssertTrue(lines.isEmpty, "gone before its turn: no generation (\(lines))")
    }

    // MARK: over a socket

    /// Sends `request` to 127.0.0.1:port and reads until the server closes.
    func exchange(port: Int, _ request: [UInt8], pauseAfter: Int? = nil) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        XCTAssertEqual(rc, 0)
        var tv = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var out = [UInt8](), buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func testOverASocket() throws {
        let router = APIRouter(model: try ServerTestModel.smollm2())
        let listener = try HTTPListener(host: "127.0.0.1", port: 0) { r, w in router.handle(r, w) }
        listener.timeout = 1
        listener.start()
        defer { listener.stop() }
        XCTAssertGreaterThan(listener.port, 0)
        let body = #"{"prompt": "The capital of France is", "temperature": 0, "max_tokens": 8, "stream": true}"#
        let raw = try exchange(port: listener.port, Array("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8))
        let r = reply(raw)
        XCTAssertEqual(r.status, 200, raw)
        let text = r.body.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: {") }
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8)) as? [String: Any] }
            .compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }.joined()
        XCTAssertEqual(text, " Paris.\n\nThe United States has")

        // Chunked request body with Expect: 100-continue (curl's way for large bodies).
        let chunked = try exchange(port: listener.port, Array("GET /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".utf8))
        XCTAssertTrue(chunked.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"), chunked)

        // Garbage and a silent client: an error status, not a hang (the 1 s timeout).
        XCTAssertTrue(try exchange(port: listener.port, Array("HELLO\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 400 "))
        let started = Date()
        XCTAssertTrue(try exchange(port: listener.port, Array("POST /v1/completions HTTP/1.1\r\nHost: x\r\n".utf8)).hasPrefix("HTTP/1.1 408 "))
        XCTAssertLessThan(Date().timeIntervalSince(started), 30)
    }
}
