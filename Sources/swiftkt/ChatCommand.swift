// `swiftkt chat`: interactive multi-turn chat with the model's template, streamed.
// Reads one user message per line from stdin (a terminal or a pipe). Commands: /clear, /exit, /help.
// The KV cache is reused across turns: only the part of the rendered conversation that the
// session has not seen yet is evaluated.
import ArgumentParser
import ChatTemplate
import Engine
import Foundation

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Interactive chat in the terminal (/help for commands).",
        discussion: "Example: swiftkt chat -m smollm2-135m-instruct --temp 0.7")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions

    @Option(help: "System prompt.")
    var system: String?

    @Option(name: [.customShort("f"), .customLong("prompt-file")], help: "Read the system prompt from a file.")
    var promptFile: String?

    static let help = """
    Commands:
      /clear   forget the conversation (keeps the system prompt)
      /exit    quit (also Ctrl-D)
      /help    this text
    """

    func run() throws {
        var systemPrompt = system
        if let f = promptFile {
            let s = try readText(f, "prompt file")
            systemPrompt = s.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let model = try modelOptions.load()
        guard model.chatTemplate != nil else { throw EngineError.noChatTemplate(architecture: model.file.architecture ?? "?") }
        let parameters = try sampling.parameters()
        let session = model.makeSession()
        var messages: [ChatMessage] = []
        if let s = systemPrompt { messages.append(ChatMessage(role: "system", content: s)) }
        log("chat with \((model.path as NSString).lastPathComponent) — /help for commands, /exit or Ctrl-D to quit")

        while true {
            writeOut("\n> ")
            guard let line = readLine(strippingNewline: true) else { writeOut("\n"); break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            switch input {
            case "/exit", "/quit": return
            case "/help": writeOut(ChatCommand.help + "\n"); continue
            case "/clear":
                messages.removeAll { $0.role != "system" }
                session.reset()
                writeOut("(conversation cleared)\n")
                continue
            default:
                if input.hasPrefix("/") { writeOut("unknown command \(input)\n" + ChatCommand.help + "\n"); continue }
            }
            messages.append(ChatMessage(role: "user", content: input))
            let text = try model.renderChat(messages)
            let ids = model.tokenize(text)
            // Reuse the cached prefix; evaluate only what is new.
            let common = zip(session.tokens, ids).prefix { $0 == $1 }.count
            session.rewind(to: min(common, ids.count - 1))
            let fresh = Array(ids[session.tokens.count...])
            // Room for the whole answer (-n -1: for one token; the answer then ends where the context does).
            let room = parameters.maxTokens >= Int(Int32.max) ? 1 : parameters.maxTokens
            if ids.count + room > session.contextSize {
                writeOut("(the conversation no longer fits in the context of \(session.contextSize) tokens; /clear to start over)\n")
                messages.removeLast()
                continue
            }
            var answer = ""
            let stats = try session.generate(prompt: fresh, parameters: parameters) { event in
                if case let .token(_, piece) = event { answer += piece; writeOut(piece) }
                return true
            }
            writeOut("\n")
            messages.append(ChatMessage(role: "assistant", content: answer.trimmingCharacters(in: .whitespacesAndNewlines)))
            log(formatStats(stats))
        }
    }
}
