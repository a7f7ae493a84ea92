// `swiftkt run`: one prompt in, the generated text streamed to stdout.
import ArgumentParser
import ChatTemplate
import Engine
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Generate text from a prompt; only the generated text goes to stdout.",
        discussion: """
        Examples:
          swiftkt run -m smollm2-135m-instruct -p "The capital of France is" -n 32 --temp 0
          swiftkt run -m model.gguf --chat --system "Be brief." -p "Why is the sky blue?"
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions

    @Option(name: [.customShort("p"), .long], help: "The prompt text.")
    var prompt: String?

    @Option(name: [.customShort("f"), .customLong("prompt-file")], help: "Read the prompt from a file.")
    var promptFile: String?

    @Flag(help: "Wrap the prompt as a user message in the model's chat template.")
    var chat = false

    @Option(help: "System prompt (with --chat).")
    var system: String?

    @Flag(name: .customLong("no-special"), help: "Do not parse special tokens written in the prompt.")
    var noSpecial = false

    @Flag(name: .customLong("echo"), help: "Also print the prompt before the generated text.")
    var echo = false

    @Option(name: .customLong("show-top"), parsing: .unconditional, help: "Log the top K candidates of every step to stderr (debugging).")
    var showTop: Int = 0

    func validate() throws {
        if prompt == nil && promptFile == nil { throw ValidationError("give a prompt with -p TEXT or --prompt-file FILE") }
        if prompt != nil && promptFile != nil { throw ValidationError("-p and --prompt-file are mutually exclusive") }
        if system != nil && !chat { throw ValidationError("--system needs --chat") }
        if showTop < 0 { throw ValidationError("--show-top must be ≥ 0, got \(showTop)") }
    }

    func run() throws {
        var text = prompt ?? ""
        if let f = promptFile {
            let s = try readText(f, "prompt file")
            text = s
        }
        let model = try modelOptions.load()
        if chat {
            var messages: [ChatMessage] = []
            if let s = system { messages.append(ChatMessage(role: "system", content: s)) }
            messages.append(ChatMessage(role: "user", content: text))
            text = try model.renderChat(messages)
        }
        let ids = model.tokenize(text, parseSpecial: !noSpecial)
        guard !ids.isEmpty else { throw EngineError.emptyPrompt }
        if ids.count >= model.contextSize { throw EngineError.promptTooLong(tokens: ids.count, context: model.contextSize) }
        if echo { writeOut(text) }
        let session = model.makeSession()
        var parameters = try sampling.parameters()
        if showTop > 0 {
            let k = showTop, tokenizer = model.tokenizer
            parameters.logitsObserver = { logits in
                let top = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(k)
                log(top.map { String(format: "%d(%@)=%.4f", $0, tokenizer.decode([Int32($0)]).debugDescription, logits[$0]) }
                    .joined(separator: " "))
            }
        }
        let stats = try session.generate(prompt: ids, parameters: parameters) { event in
            if case let .token(_, piece) = event { writeOut(piece) }
            return true
        }
        writeOut("\n")
        log(formatStats(stats))
    }
}
