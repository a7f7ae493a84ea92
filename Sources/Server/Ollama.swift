// Ollama-compatible endpoints: /api/generate and /api/chat (streamed as JSON lines by default,
// or whole with "stream": false), /api/tags, /api/ps, /api/show and /api/version. Sampling comes
// from "options" (temperature, top_k, top_p, min_p, seed, num_predict, stop, repeat_penalty,
// repeat_last_n, presence_penalty, frequency_penalty); options that need a reload (num_ctx,
// num_gpu…) are ignored, as Ollama ignores those it does not know.
import ChatTemplate
import Engine
import Foundation

enum Ollama {
    /// The version reported to clients that check for a minimum Ollama version.
    static let version = "0.5.0"

    static func timestamp(_ date: Date = Date()) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    static func details(_ m: ServedModel) -> [String: Any] {
        let h = m.model.model.hyperparameters, d = ModelDescription(file: m.model.file)
        return ["format": "gguf", "family": h.architecture, "families": [h.architecture], "parameter_size": d.size,
                "quantization_level": d.fileType, "parent_model": ""]
    }

    static func fileSize(_ m: ServedModel) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: m.model.path)[.size]) as? NSNumber)?.intValue ?? 0
    }

    static func tags(_ m: ServedModel, _ w: ResponseWriter) throws {
        let entry: [String: Any] = ["name": m.name, "model": m.name, "modified_at": timestamp(m.loadedAt), "size": fileSize(m),
                                    "digest": "", "details": details(m)]
        try w.send(status: 200, contentType: "application/json", body: JSON.encode(["models": [entry]]))
    }

    static func ps(_ m: ServedModel, _ w: ResponseWriter) throws {
        let entry: [String: Any] = ["name": m.name, "model": m.name, "size": fileSize(m), "digest": "", "details": details(m),
                                    "expires_at": "0001-01-01T00:00:00Z", "size_vram": 0]
        try w.send(status: 200, contentType: "application/json", body: JSON.encode(["models": [entry]]))
    }

    static func show(_ m: ServedModel, _ r: HTTPRequest, _ w: ResponseWriter) throws {
        let h = m.model.model.hyperparameters
        let info: [String: Any] = ["general.architecture": h.architecture, "\(h.architecture).block_count": h.blockCount,
                                   "\(h.architecture).context_length": m.contextSize]
        let body: [String: Any] = ["modelfile": "", "parameters": "", "template": "", "details": details(m), "model_info": info,
                                   "capabilities": m.model.chatTemplate != nil ? ["completion", "chat"] : ["completion"],
                                   "modified_at": timestamp(m.loadedAt)]
        try w.send(status: 200, contentType: "application/json", body: JSON.encode(body))
    }

    static func refuseUnsupported(_ f: Fields) throws {
        if let images = f.value("images") as? [Any], !images.isEmpty { throw HTTPError(400, "'images' are not supported") }
        if let tools = f.value("tools") as? [Any], !tools.isEmpty { throw HTTPError(400, "'tools' are not supported") }
        // Empty values are as good as absent (older clients send "" for every field).
        if let format = f.value("format"), !((format as? String)?.isEmpty ?? false) {
            throw HTTPError(400, "'format' (structured output) is not supported")
        }
        if let suffix = try f.string("suffix"), !suffix.isEmpty { throw HTTPError(400, "'suffix' is not supported") }
        if let template = try f.string("template"), !template.isEmpty {
            throw HTTPError(400, "'template' is not supported; the model's own chat template is used")
        }
    }

    static func parameters(_ m: ServedModel, _ f: Fields) throws -> GenerationParameters {
        let options = try f.object("options") ?? Fields([:], path: "options")
        return try m.parameters(options, maxTokensKeys: ["num_predict"])
    }

    static func generate(_ m: ServedModel, _ r: HTTPRequest, _ w: ResponseWriter) throws {
        let f = try JSON.object(r.body)
        try refuseUnsupported(f)
        let text = try f.string("prompt") ?? ""
        let parameters = try Self.parameters(m, f)
        let stream = try f.bool("stream") ?? true
        guard !text.isEmpty else {
            // An empty prompt loads the model (it is loaded already).
            let body: [String: Any] = ["model": m.name, "created_at": timestamp(), "response": "", "done": true, "done_reason": "load"]
            try w.send(status: 200, contentType: "application/json", body: JSON.encode(body))
            return
        }
        let prompt: String
        let system = try f.string("system").flatMap { $0.isEmpty ? nil : $0 }
        if try f.bool("raw") == true || m.model.chatTemplate == nil {
            prompt = system.map { $0 + "\n\n" + text } ?? text
        } else {
            var messages: [ChatMessage] = []
            if let s = system { messages.append(ChatMessage(role: "system", content: s)) }
            messages.append(ChatMessage(role: "user", content: text))
            prompt = try m.render(messages)
        }
        try respond(m, w, prompt: prompt, parameters: parameters, stream: stream) { ["response": $0] }
    }

    static func chat(_ m: ServedModel, _ r: HTTPRequest, _ w: ResponseWriter) throws {
        let f = try JSON.object(r.body)
        try refuseUnsupported(f)
        guard let list = try f.array("messages") else { throw HTTPError(400, "'messages' is required") }
        let parameters = try Self.parameters(m, f)
        let stream = try f.bool("stream") ?? true
        guard !list.isEmpty else {
            let body: [String: Any] = ["model": m.name, "created_at": timestamp(), "message": ["role": "assistant", "content": ""],
                                       "done": true, "done_reason": "load"]
            try w.send(status: 200, contentType: "application/json", body: JSON.encode(body))
            return
        }
        let messages: [ChatMessage] = try list.enumerated().map { i, v in
            let e = try Fields.element(v, of: "messages", at: i)
            guard let role = try e.string("role") else { throw HTTPError(400, "'messages[\(i)].role' is required") }
            guard ["system", "user", "assistant"].contains(role) else {
                throw HTTPError(400, "'messages[\(i)].role' is '\(role)'; this server takes system, user and assistant")
            }
            if let images = e.value("images") as? [Any], !images.isEmpty { throw HTTPError(400, "'messages[\(i)].images' are not supported") }
            return ChatMessage(role: role, content: try e.string("content") ?? "")
        }
        let prompt = try m.render(messages)
        try respond(m, w, prompt: prompt, parameters: parameters, stream: stream) { ["message": ["role": "assistant", "content": $0]] }
    }

    /// Streams JSON lines (`fields(piece)` with done false each, then `fields("")` with done true
    /// and the statistics), or sends one object with the whole text.
    static func respond(_ m: ServedModel, _ w: ResponseWriter, prompt: String, parameters: GenerationParameters, stream: Bool,
                        fields: (String) -> [String: Any]) throws {
        let started = Date()
        func final(_ o: ServedModel.Outcome, text: String) -> [String: Any] {
            var d = fields(text)
            d["model"] = m.name
            d["created_at"] = timestamp()
            d["done"] = true
            d["done_reason"] = o.stats.stopReason.finishReason
            let ns = { (s: Double) in Int(s * 1e9) }
            d["total_duration"] = ns(Date().timeIntervalSince(started))
            d["load_duration"] = 0
            d["prompt_eval_count"] = o.promptTokens
            d["prompt_eval_duration"] = ns(o.stats.prefillSeconds)
            d["eval_count"] = o.stats.generatedTokens
            d["eval_duration"] = ns(o.stats.decodeSeconds)
            return d
        }
        if !stream {
            var text = ""
            let o = try m.generate(prompt: prompt, parseSpecial: true, parameters: parameters, cancelled: { w.peerGone }) {
                text += $0; return true
            }
            try w.send(status: 200, contentType: "application/json", body: JSON.encode(final(o, text: text)))
            return
        }
        // The head goes out once the prompt is accepted (a refused one gets its own status).
        // A failed write means the client is gone: the generation stops and nothing more is written.
        var gone = false
        do {
            let o = try m.generate(prompt: prompt, parseSpecial: true, parameters: parameters, cancelled: { w.peerGone },
                                   onStart: { try w.start(status: 200, contentType: "application/x-ndjson") }) { piece in
                var d = fields(piece)
                d["model"] = m.name
                d["created_at"] = timestamp()
                d["done"] = false
                gone = (try? w.chunk(JSON.encode(d) + [10])) == nil
                return !gone
            }
            if gone { return }
            try w.chunk(JSON.encode(final(o, text: "")) + [10])
        } catch let e as HTTPError where e.status != 499 && w.started {
            try w.chunk(JSON.encode(["error": e.message]) + [10])
        }
        try w.finish()
    }
}
