// Routes a request to its endpoint and turns what goes wrong into an error response: a 400 that
// names the field, a 404 that lists the endpoints, a 405 with Allow, a 500 for the unexpected.
import Foundation

public final class APIRouter: @unchecked Sendable {
    public let model: ServedModel
    public var log: @Sendable (String) -> Void = { _ in }
    /// Origins of browser pages that may call the API besides this machine's own (`*`: any);
    /// pages from http(s)://localhost, 127.0.0.1 and [::1] always may, as Ollama's defaults.
    public var allowedOrigins: [String] = []
    /// When set, every endpoint but the chat page and /health wants `Authorization: Bearer KEY`
    /// (what the OpenAI clients send; `X-API-Key: KEY` also does).
    public var apiKey: String?

    public init(model: ServedModel) { self.model = model }

    typealias Endpoint = @Sendable (ServedModel, HTTPRequest, ResponseWriter) throws -> Void

    /// (path, method) → endpoint; GET also answers HEAD.
    static let routes: [String: [String: Endpoint]] = [
        "/": ["GET": { _, _, w in try w.send(status: 200, contentType: "text/html; charset=utf-8", body: Array(WebUI.page.utf8)) }],
        "/health": ["GET": { _, _, w in try w.send(status: 200, contentType: "application/json", body: JSON.encode(["status": "ok"])) }],
        "/v1/models": ["GET": { m, _, w in try OpenAI.models(m, w) }],
        "/v1/chat/completions": ["POST": OpenAI.chatCompletions],
        "/v1/completions": ["POST": OpenAI.completions],
        "/api/generate": ["POST": Ollama.generate],
        "/api/chat": ["POST": Ollama.chat],
        "/api/tags": ["GET": { m, _, w in try Ollama.tags(m, w) }],
        "/api/ps": ["GET": { m, _, w in try Ollama.ps(m, w) }],
        "/api/show": ["POST": Ollama.show],
        "/api/version": ["GET": { _, _, w in try w.send(status: 200, contentType: "application/json", body: JSON.encode(["version": Ollama.version])) }],
    ]

    public var endpoints: [String] {
        Self.routes.keys.sorted().flatMap { path in Self.routes[path]!.keys.sorted().map { "\($0) \(path)" } }
    }

    /// Whether the request carries `key` (compared in time independent of where they differ).
    static func authorized(_ r: HTTPRequest, key: String) -> Bool {
        var given = r.header("x-api-key")
        if let auth = r.header("authorization"), auth.lowercased().hasPrefix("bearer ") {
            given = String(auth.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        }
        guard let g = given else { return false }
        let a = Array(g.utf8), b = Array(key.utf8)
        var diff = a.count ^ b.count
        for i in 0..<max(a.count, b.count) { diff |= Int((i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)) }
        return diff == 0
    }

    /// Whether a page from `origin` may read the answers.
    func allows(origin: String) -> Bool {
        if allowedOrigins.contains("*") || allowedOrigins.contains(origin) { return true }
        guard let url = URL(string: origin), ["http", "https"].contains(url.scheme ?? ""), let host = url.host else { return false }
        return ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host)
    }

    public func handle(_ r: HTTPRequest, _ w: ResponseWriter) {
        let started = Date()
        // "/v1/chat/completions/" and "//v1/models" are the same endpoints.
        var path = r.path.replacingOccurrences(of: "//", with: "/")
        if path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        let ollama = path.hasPrefix("/api/")
        func fail(_ status: Int, _ message: String, headers: [(String, String)] = []) {
            guard !w.started else { return }
            let body = ollama ? JSON.encode(["error": message]) : errorBody(message, type: status >= 500 ? "server_error" : "invalid_request_error")
            try? w.send(status: status, contentType: "application/json", body: body, headers: headers)
        }
        defer {
            log(String(format: "%@ %@ → %d (%.3f s)", r.method, String(r.path.prefix(80)), w.status ?? 0, Date().timeIntervalSince(started)))
        }
        if let origin = r.header("origin"), allows(origin: origin) { w.allowOrigin = origin }
        if r.method == "OPTIONS" {
            // CORS preflight.
            try? w.send(status: 204, contentType: "", body: [], headers: [
                ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                ("Access-Control-Allow-Headers", r.header("access-control-request-headers") ?? "Content-Type, Authorization"),
                ("Access-Control-Max-Age", "86400")])
            return
        }
        guard let methods = Self.routes[path] else {
            fail(404, "no endpoint \(String(r.path.prefix(80))); this server has: \(endpoints.joined(separator: ", "))")
            return
        }
        if let key = apiKey, path != "/", path != "/health", !Self.authorized(r, key: key) {
            fail(401, "this server wants an API key: send the header Authorization: Bearer KEY", headers: [("WWW-Authenticate", "Bearer")])
            return
        }
        let method = r.method == "HEAD" ? "GET" : r.method
        guard let endpoint = methods[method] else {
            let allow = methods.keys.sorted().joined(separator: ", ")
            fail(405, "\(r.method) is not allowed on \(path) (allowed: \(allow))", headers: [("Allow", allow)])
            return
        }
        // (Any Content-Type: `curl -d` sends form encoding, and Ollama's clients rely on that.)
        do {
            try endpoint(model, r, w)
        } catch let e as HTTPError {
            fail(e.status, e.message)
        } catch {
            fail(500, "\(error)")
        }
    }
}
