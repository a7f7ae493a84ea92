// OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions (whole or streamed as
// server-sent events) and /v1/models. Fields beyond the engine's reach (n > 1, tools, images,
// logprobs, suffix, echo) are refused with a 400 that names them, rather than ignored.
import ChatTemplate
import Engine
import Foundation

enum OpenAI {
    static func models(_ m: ServedModel, _ w: ResponseWriter) throws {
        let entry: [String: Any] = ["id": m.name, "object": "model", "created": Int(m.loadedAt.timeIntervalSince1970), "owned_by": "swiftkt"]
        try w.send(status: 200, contentType: "application/json", body: JSON.encode(["object": "list", "data": [entry]]))
    }

    /// The chat messages of a request: `content` a string or an array of text parts.
    static func messages(_ f: Fields) throws -> [ChatMessage] {
        guard let list = try f.array("messages") else { throw HTTPError(400, "'messages' is required") }
        guard !list.isEmpty else { throw HTTPError(400, "'messages' is empty") }
        return try list.enumerated().map { i, v in
            let m = try Fields.element(v, of: "messages", at: i)
            guard let role = try m.string("role") else { throw HTTPError(400, "'messages[\(i)].role' is required") }
            guard ["system", "user", "assistant", "developer"].contains(role) else {
                throw HTTPError(400, "'messages[\(i)].role' is '\(role)'; this server takes system, developer, user and assistant")
            }
            if m.value("tool_calls") != nil { throw HTTPError(400, "'messages[\(i)].tool_calls': tools are not supported") }
            var text = ""
            if let s = m.value("content") as? String {
                text = s
            } else if let parts = m.value("content") as? [Any] {
                for (j, part) in parts.enumerated() {
                    let p = try Fields.element(part, of: "messages[\(i)].content", at: j)
                    guard try p.string("type") == "text", let t = try p.string("text") else {
                        throw HTTPError(400, "'messages[\(i)].content[\(j)]' is not a text part (images and audio are not supported)")
                    }
                    text += t
                }
            } else if m.value("content") != nil {
                throw HTTPError(400, "'messages[\(i)].content' must be a string or an array of text parts")
            } else if role != "assistant" {
                throw HTTPError(400, "'messages[\(i)].content' is required")
            }
            return ChatMessage(role: role == "developer" ? "system" : role, content: text)
        }
    }

    static func refuseUnsupported(_ f: Fields) throws {
        if let n = try f.integer("n", in: 0...128), n != 1 { throw HTTPError(400, "'n' must be 1: one choice per request") }
        if let tools = f.value("tools") as? [Any], !tools.isEmpty { throw HTTPError(400, "'tools': tool calls are not supported") }
        if try f.bool("logprobs") == true || (try f.integer("top_logprobs", in: 0...100) ?? 0) > 0 {
            throw HTTPError(400, "'logprobs' is not supported")
        }
        if let format = try f.object("response_format"), let type = try format.string("type"), type != "text" {
            throw HTTPError(400, "'response_format' \(type) is not supported (only text)")
        }
    }

    static func chatCompletions(_ m: ServedModel, _ r: HTTPRequest, _ w: ResponseWriter) throws {
        let f = try JSON.object(r.body)
        try refuseUnsupported(f)
        let prompt = try m.render(try messages(f))
        try complete(m, f, w, prompt: prompt, chat: true)
    }

    static func completions(_ m: ServedModel, _ r: HTTPRequest, _ w: ResponseWriter) throws {
        let f = try JSON.object(r.body)
        try refuseUnsupported(f)
        if try f.bool("echo") == true { throw HTTPError(400, "'echo' is not supported") }
        if let suffix = try f.string("suffix"), !suffix.isEmpty { throw HTTPError(400, "'suffix' is not supported") }
        let prompt: String
        if let s = f.value("prompt") as? String {
            prompt = s
        } else if let a = f.value("prompt") as? [Any], a.count == 1, let s = a[0] as? String {
            prompt = s
        } else if f.value("prompt") == nil {
            throw HTTPError(400, "'prompt' is required")
        } else {
            throw HTTPError(400, "'prompt' must be a string (or an array of one string)")
        }
        try complete(m, f, w, prompt: prompt, chat: false)
    }

    /// The prompt is tokenized with the special tokens written in it (as llama.cpp's server):
    /// the chat template's markers, or those a text completion spells out.
    static func complete(_ m: ServedModel, _ f: Fields, _ w: ResponseWriter, prompt: String, chat: Bool) throws {
        let parameters = try m.parameters(f, maxTokensKeys: ["max_completion_tokens", "max_tokens"])
        let stream = try f.bool("stream") ?? false
        let includeUsage = try f.object("stream_options")?.bool("include_usage") ?? false
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
        let created = Int(Date().timeIntervalSince1970)
        let object = chat ? "chat.completion" : "text_completion"
        func usage(_ o: ServedModel.Outcome) -> [String: Any] {
            ["prompt_tokens": o.promptTokens, "completion_tokens": o.stats.generatedTokens,
             "total_tokens": o.promptTokens + o.stats.generatedTokens]
        }
        if !stream {
            var text = ""
            let outcome = try m.generate(prompt: prompt, parseSpecial: true, parameters: parameters,
                                         cancelled: { w.peerGone }) { text += $0; return true }
            var choice: [String: Any] = ["index": 0, "finish_reason": outcome.stats.stopReason.finishReason]
            if chat {
                choice["message"] = ["role": "assistant", "content": text]
            } else {
                choice["text"] = text
                choice["logprobs"] = NSNull()
            }
            let body: [String: Any] = ["id": id, "object": object, "created": created, "model": m.name,
                                       "choices": [choice], "usage": usage(outcome)]
            try w.send(status: 200, contentType: "application/json", body: JSON.encode(body))
            return
        }
        // Server-sent events: a chunk a piece of text, the finish reason in the last, then [DONE].
        func event(_ delta: [String: Any]?, text: String?, finish: String?) -> [UInt8] {
            var choice: [String: Any] = ["index": 0, "finish_reason": finish.map { $0 as Any } ?? NSNull()]
            if chat { choice["delta"] = delta ?? [:] } else { choice["text"] = text ?? ""; choice["logprobs"] = NSNull() }
            let chunk: [String: Any] = ["id": id, "object": chat ? "chat.completion.chunk" : "text_completion", "created": created,
                                        "model": m.name, "choices": [choice]]
            return Array("data: ".utf8) + JSON.encode(chunk) + Array("\n\n".utf8)
        }
        // The head goes out once the prompt is accepted (a refused one gets its own status).
        // A failed write means the client is gone: the generation stops and nothing more is written.
        var gone = false
        do {
            let outcome = try m.generate(prompt: prompt, parseSpecial: true, parameters: parameters, cancelled: { w.peerGone },
                                         onStart: {
                try w.start(status: 200, contentType: "text/event-stream")
                if chat { try w.chunk(event(["role": "assistant", "content": ""], text: nil, finish: nil)) }
            }) { piece in
                gone = (try? w.chunk(event(["content": piece], text: piece, finish: nil))) == nil
                return !gone
            }
            if gone { return }
            try w.chunk(event([:], text: "", finish: outcome.stats.stopReason.finishReason))
            if includeUsage {
                let last: [String: Any] = ["id": id, "object": chat ? "chat.completion.chunk" : "text_completion", "created": created,
                                           "model": m.name, "choices": [] as [Any], "usage": usage(outcome)]
                try w.chunk(Array("data: ".utf8) + JSON.encode(last) + Array("\n\n".utf8))
            }
        } catch let e as HTTPError where e.status != 499 && w.started {
            // The status line is gone; the error travels as an event, as OpenAI's do.
            try w.chunk(Array("data: ".utf8) + errorBody(e.message, type: e.status >= 500 ? "server_error" : "invalid_request_error") + Array("\n\n".utf8))
        }
        try w.chunk(Array("data: [DONE]\n\n".utf8))
        try w.finish()
    }
}
