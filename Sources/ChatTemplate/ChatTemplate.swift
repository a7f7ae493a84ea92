// The public face of the module: parse a GGUF `tokenizer.chat_template` once, render it for a
// conversation. Rendering matches Hugging Face's `apply_chat_template` (jinja2
// ImmutableSandboxedEnvironment with trim_blocks + lstrip_blocks + loopcontrols): the context
// holds `messages` (list of {role, content} dicts), `add_generation_prompt`, `bos_token`,
// `eos_token`, `tools` and `documents` (none unless given in `extra`), the globals
// `raise_exception` and `strftime_now`, and any extra values, which override the defaults.
// See Lexer.swift → Parser.swift → Interpreter.swift (+ Builtins, Filters) for the engine.

import Foundation

public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

public enum ChatTemplateError: Error, CustomStringConvertible, Equatable {
    /// The template does not parse; line and column are 1-based, counted in unicode scalars.
    case syntax(message: String, line: Int, column: Int)
    /// The template called `raise_exception(message)` (e.g. bad role order).
    case raised(message: String)
    case unknownFilter(name: String, line: Int, column: Int)
    case unknownTest(name: String, line: Int, column: Int)
    /// Anything else that fails while rendering (type errors, undefined access, limits).
    case runtime(message: String, line: Int, column: Int)

    public var description: String {
        switch self {
        case .syntax(let m, let l, let c): return "chat template syntax error at line \(l), column \(c): \(m)"
        case .raised(let m): return m
        case .unknownFilter(let n, let l, let c): return "chat template: no filter named '\(n)' (line \(l), column \(c))"
        case .unknownTest(let n, let l, let c): return "chat template: no test named '\(n)' (line \(l), column \(c))"
        case .runtime(let m, let l, let c): return "chat template error at line \(l), column \(c): \(m)"
        }
    }
}

public struct ChatTemplate: Sendable {
    /// The template text as given.
    public let source: String
    private let program: [Node]

    /// The moment `strftime_now` formats; nil means the wall clock at render time.
    public var now: Date? = nil
    /// The time zone `strftime_now` uses (Python's `datetime.now()` is local time).
    public var timeZone: TimeZone = .current

    /// Parses the template once; throws `ChatTemplateError.syntax` with a line and column.
    public init(source: String) throws {
        self.source = source
        var parser = try Parser(source: source)
        program = try parser.parseTemplate()
    }

    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String = "", eosToken: String = "",
                       extra: [String: JinjaValue] = [:]) throws -> String {
        let list: [JinjaValue] = messages.map { .dict(JinjaDict([("role", .string($0.role)), ("content", .string($0.content))])) }
        return try render(context: ["messages": .array(list)], addGenerationPrompt: addGenerationPrompt,
                          bosToken: bosToken, eosToken: eosToken, extra: extra)
    }

    /// Renders with `messages` given as values, for callers that carry tool calls or structured
    /// content (pass `["messages": .array([...])]` as `context`).
    public func render(context: [String: JinjaValue], addGenerationPrompt: Bool, bosToken: String = "",
                       eosToken: String = "", extra: [String: JinjaValue] = [:]) throws -> String {
        var globals: [String: JinjaValue] = [
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
            "tools": .none,
            "documents": .none,
            "raise_exception": .function(JinjaFunction(.builtin("raise_exception"))),
            "strftime_now": .function(JinjaFunction(.builtin("strftime_now"))),
            "namespace": .function(JinjaFunction(.builtin("namespace"))),
            "range": .function(JinjaFunction(.builtin("range"))),
            "dict": .function(JinjaFunction(.builtin("dict"))),
        ]
        for (k, v) in context { globals[k] = v }
        for (k, v) in extra { globals[k] = v }
        let interpreter = Interpreter(globals: globals, now: now ?? Date(), timeZone: timeZone)
        do {
            return try interpreter.run(program)
        } catch let raised as RaisedException {
            throw ChatTemplateError.raised(message: raised.message)
        } catch let failure as RuntimeFailure {
            throw ChatTemplateError.runtime(message: failure.message, line: 0, column: 0)
        }
    }
}
