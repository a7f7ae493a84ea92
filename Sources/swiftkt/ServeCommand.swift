// `swiftkt serve`: the model behind OpenAI- and Ollama-compatible HTTP APIs (docs/server.md).
import ArgumentParser
import Engine
import Foundation
import Server

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model over OpenAI- and Ollama-compatible HTTP APIs, with a chat page at /.",
        discussion: """
        Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models (OpenAI);
        POST /api/chat, POST /api/generate, GET /api/tags, /api/ps, /api/version, POST /api/show
        (Ollama); GET /health; GET / (a chat page). Requests take turns on the one model; a
        request's sampling fields override the command line's, which are the defaults.
        Examples:
          swiftkt serve -m smollm2-135m-instruct --port 8080
          curl http://127.0.0.1:8080/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hi"}]}'
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions

    @Option(help: "Address to listen on (0.0.0.0: every interface).")
    var host: String = "127.0.0.1"

    @Option(help: "TCP port (Ollama's clients expect 11434).")
    var port: Int = 8080

    @Option(help: "The model's name in responses and listings (default: the -m argument without .gguf).")
    var name: String?

    @Option(name: .customLong("allow-origin"), help: "An origin whose browser pages may call the API (repeatable; * for any). Pages from localhost always may.")
    var allowOrigin: [String] = []

    @Option(name: .customLong("api-key"), help: "Require Authorization: Bearer KEY on the API (also $SWIFTKT_API_KEY); the chat page takes it as /#key=KEY.")
    var apiKey: String?

    @Flag(help: "Log nothing per request.")
    var quiet = false

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0…65535, got \(port)") }
        if let n = name, n.isEmpty { throw ValidationError("--name must not be empty") }
        if let k = apiKey, k.isEmpty { throw ValidationError("--api-key must not be empty") }
    }

    func run() throws {
        let defaults = try sampling.parameters(defaultTokens: -1)
        let model = try modelOptions.load()
        let shown = name ?? ((modelOptions.model as NSString).lastPathComponent as NSString).deletingPathExtension
        let served = ServedModel(model: model, name: shown, defaults: defaults)
        let router = APIRouter(model: served)
        router.allowedOrigins = allowOrigin
        router.apiKey = apiKey ?? ProcessInfo.processInfo.environment["SWIFTKT_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        if !quiet {
            served.log = { log($0) }
            router.log = { log($0) }
        }
        let listener = try HTTPListener(host: host, port: port) { request, writer in router.handle(request, writer) }
        let shownHost = host.contains(":") ? "[\(host)]" : host
        log("serving \(shown) at http://\(shownHost):\(listener.port)/ (OpenAI: /v1, Ollama: /api; Ctrl-C stops)")
        listener.run()
    }
}
