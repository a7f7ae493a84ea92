// Parser: tokens → template AST, recursive descent after Jinja2's `parser.py`. Expression
// precedence, loosest first: `a if c else b`, `or`, `and`, `not`, comparisons (`== != < <= > >=
// in`, `not in`, chained), `+ -`, `~`, `* / // %`, `**`, unary `- +`, then primary with postfix
// `.attr`, `[index]`, `[a:b:c]`, `(call)` and the filter/test chain (`| f(...)`, `is [not] t`).
// So `'a' + x | trim` is `'a' + (x|trim)`, as in Jinja. Statements: if/elif/else, for (with
// `if` filter, `else`, unpacking), set (name, tuple, `ns.attr`, block set), macro, filter
// blocks, break/continue, and HF's `{% generation %}` (rendered as a plain block).
// Every node carries its source position; nesting depth is capped so hostile input cannot
// overflow the stack.

// MARK: - Parser

struct Parser {
    private let tokens: [Token]
    private let lexer: Lexer
    private var index = 0
    private var depth = 0
    private var loopDepth = 0
    private static let maxDepth = 200

    init(source: String) throws {
        var lexer = Lexer(source: source)
        self.tokens = try lexer.tokenize()
        self.lexer = lexer
    }

    // MARK: Token helpers

    private var current: Token { tokens[index] }
    private func position(_ token: Token) -> SourcePosition { lexer.map.position(of: token.offset) }
    private func error(_ message: String, _ token: Token? = nil) -> ChatTemplateError {
        lexer.syntaxError(message, at: (token ?? current).offset)
    }
    private mutating func advance() -> Token {
        defer { if index < tokens.count - 1 { index += 1 } }
        return tokens[index]
    }
    private func isOp(_ op: String) -> Bool { current.kind == .op(op) }
    private func isName(_ name: String) -> Bool { current.kind == .name(name) }
    private mutating func expectOp(_ op: String) throws {
        guard isOp(op) else { throw error("expected '\(op)', got \(describe(current))") }
        _ = advance()
    }
    private mutating func expectName() throws -> String {
        guard case .name(let n) = current.kind else { throw error("expected a name, got \(describe(current))") }
        _ = advance()
        return n
    }
    private mutating func expectBlockEnd() throws {
        guard current.kind == .blockEnd else { throw error("expected end of statement '%}', got \(describe(current))") }
        _ = advance()
    }
    private func describe(_ t: Token) -> String {
        switch t.kind {
        case .text: return "template text"
        case .variableBegin, .blockBegin: return "a tag opener"
        case .variableEnd: return "'}}'"
        case .blockEnd: return "'%}'"
        case .name(let n): return "'\(n)'"
        case .string: return "a string"
        case .integer, .float: return "a number"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }
    /// Counts one more operator of a left-deep chain (`a + b + c ...`) against the depth limit.
    private mutating func chained(_ count: inout Int) throws {
        count += 1
        if count > Parser.maxDepth { throw error("expression too long") }
    }
    private mutating func enter() throws {
        depth += 1
        if depth > Parser.maxDepth { throw error("template nested too deeply") }
    }

    // MARK: Statements

    mutating func parseTemplate() throws -> [Node] {
        let (body, end) = try parseBody(until: [])
        if let end { throw error("unexpected '\(end)'") }
        return body
    }

    /// Parses nodes until a block tag whose keyword is in `enders` (left unconsumed after the
    /// keyword) or the end of the template (returns nil as the ender).
    private mutating func parseBody(until enders: Set<String>) throws -> ([Node], String?) {
        try enter()
        defer { depth -= 1 }
        var nodes: [Node] = []
        while true {
            let token = current
            switch token.kind {
            case .eof:
                if !enders.isEmpty { throw error("unexpected end of template, expected one of: \(enders.sorted().joined(separator: ", "))") }
                return (nodes, nil)
            case .text(let s):
                _ = advance()
                nodes.append(.text(s))
            case .variableBegin:
                _ = advance()
                let e = try parseExpression()
                guard current.kind == .variableEnd else { throw error("expected '}}', got \(describe(current))") }
                _ = advance()
                nodes.append(.output(e))
            case .blockBegin:
                _ = advance()
                guard case .name(let keyword) = current.kind else { throw error("expected a statement name, got \(describe(current))") }
                if enders.contains(keyword) { _ = advance(); return (nodes, keyword) }
                nodes.append(try parseStatement(keyword))
            default:
                throw error("unexpected \(describe(token))")
            }
        }
    }

    private mutating func parseStatement(_ keyword: String) throws -> Node {
        let start = advance()
        switch keyword {
        case "if": return try parseIf()
        case "for": return try parseFor(start)
        case "set": return try parseSet(start)
        case "macro": return try parseMacro()
        case "filter":
            let filters = try parseFilterChainForBlock()
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endfilter"])
            try expectBlockEnd()
            return .filterBlock(filters: filters, body: body)
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectBlockEnd()
            return .filterBlock(filters: [], body: body)
        case "break", "continue":
            guard loopDepth > 0 else { throw error("'\(keyword)' outside of a loop", start) }
            try expectBlockEnd()
            return keyword == "break" ? .loopBreak : .loopContinue
        default:
            throw error("unknown or unsupported statement '\(keyword)'", start)
        }
    }

    private mutating func parseIf() throws -> Node {
        var branches: [(Expr, [Node])] = []
        var condition = try parseExpression()
        while true {
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["elif", "else", "endif"])
            branches.append((condition, body))
            switch end {
            case "elif":
                condition = try parseExpression()
            case "else":
                try expectBlockEnd()
                let (otherwise, _) = try parseBody(until: ["endif"])
                try expectBlockEnd()
                return .conditional(branches, otherwise: otherwise)
            default:
                try expectBlockEnd()
                return .conditional(branches, otherwise: [])
            }
        }
    }

    private mutating func parseFor(_ start: Token) throws -> Node {
        var targets = [try expectName()]
        while isOp(",") { _ = advance(); targets.append(try expectName()) }
        guard isName("in") else { throw error("expected 'in' in for loop, got \(describe(current))") }
        _ = advance()
        let iterable = try parseExpression(allowConditional: false)
        var filter: Expr? = nil
        if isName("if") { _ = advance(); filter = try parseExpression() }
        if isName("recursive") { throw error("recursive loops are not supported") }
        try expectBlockEnd()
        loopDepth += 1
        let (body, end) = try parseBody(until: ["else", "endfor"])
        loopDepth -= 1
        var otherwise: [Node] = []
        if end == "else" {
            try expectBlockEnd()
            (otherwise, _) = try parseBody(until: ["endfor"])
        }
        try expectBlockEnd()
        return .forLoop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise, position(start))
    }

    private mutating func parseSet(_ start: Token) throws -> Node {
        let first = try expectName()
        if isOp(".") {
            _ = advance()
            let attribute = try expectName()
            try expectOp("=")
            let value = try parseExpression()
            try expectBlockEnd()
            return .set(.attribute(first, attribute), value, position(start))
        }
        var names = [first]
        while isOp(",") { _ = advance(); names.append(try expectName()) }
        if isOp("=") {
            _ = advance()
            let value = try parseTupleOrExpression()
            try expectBlockEnd()
            return .set(.names(names), value, position(start))
        }
        guard names.count == 1 else { throw error("expected '='") }
        let filters = try parseFilterChainForBlock()
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endset"])
        try expectBlockEnd()
        return .setBlock(first, filters: filters, body: body)
    }

    private mutating func parseMacro() throws -> Node {
        let name = try expectName()
        try expectOp("(")
        var params: [(name: String, defaultValue: Expr?)] = []
        while !isOp(")") {
            if !params.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let p = try expectName()
            var d: Expr? = nil
            if isOp("=") { _ = advance(); d = try parseExpression() }
            params.append((p, d))
        }
        try expectOp(")")
        try expectBlockEnd()
        let savedLoop = loopDepth
        loopDepth = 0
        let (body, _) = try parseBody(until: ["endmacro"])
        loopDepth = savedLoop
        if case .name = current.kind { _ = advance() }
        try expectBlockEnd()
        return .macro(MacroDefinition(name: name, parameters: params, body: body))
    }

    /// `| f(args) | g` after `{% filter` or `{% set x`.
    private mutating func parseFilterChainForBlock() throws -> [(String, [Expr], [Keyword], SourcePosition)] {
        var filters: [(String, [Expr], [Keyword], SourcePosition)] = []
        if current.kind != .blockEnd && !isOp("|") {
            let t = current
            let name = try expectName()
            let (args, kwargs) = isOp("(") ? try parseCallArguments() : ([], [])
            filters.append((name, args, kwargs, position(t)))
        }
        while isOp("|") {
            _ = advance()
            let t = current
            let name = try expectName()
            let (args, kwargs) = isOp("(") ? try parseCallArguments() : ([], [])
            filters.append((name, args, kwargs, position(t)))
        }
        return filters
    }

    // MARK: Expressions

    private mutating func parseTupleOrExpression() throws -> Expr {
        let start = current
        let first = try parseExpression()
        guard isOp(",") else { return first }
        var items = [first]
        while isOp(",") {
            _ = advance()
            if current.kind == .blockEnd || current.kind == .variableEnd { break }
            items.append(try parseExpression())
        }
        return .tuple(items, position(start))
    }

    mutating func parseExpression(allowConditional: Bool = true) throws -> Expr {
        try enter()
        defer { depth -= 1 }
        let start = current
        let value = try parseOr()
        guard allowConditional, isName("if") else { return value }
        _ = advance()
        let test = try parseOr()
        var otherwise: Expr? = nil
        if isName("else") { _ = advance(); otherwise = try parseExpression() }
        return .conditional(then: value, test: test, otherwise: otherwise, position(start))
    }

    private mutating func parseOr() throws -> Expr {
        var left = try parseAnd()
        var count = 0
        while isName("or") {
            try chained(&count)
            let t = advance()
            left = .binary("or", left, try parseAnd(), position(t))
        }
        return left
    }

    private mutating func parseAnd() throws -> Expr {
        var left = try parseNot()
        var count = 0
        while isName("and") {
            try chained(&count)
            let t = advance()
            left = .binary("and", left, try parseNot(), position(t))
        }
        return left
    }

    private mutating func parseNot() throws -> Expr {
        if isName("not") {
            let t = advance()
            try enter()
            defer { depth -= 1 }
            return .unary("not", try parseNot(), position(t))
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> Expr {
        let start = current
        let left = try parseMath1()
        var ops: [(String, Expr)] = []
        while true {
            if case .op(let o) = current.kind, ["==", "!=", "<", "<=", ">", ">="].contains(o) {
                _ = advance()
                ops.append((o, try parseMath1()))
            } else if isName("in") {
                _ = advance()
                ops.append(("in", try parseMath1()))
            } else if isName("not"), index + 1 < tokens.count, tokens[index + 1].kind == .name("in") {
                _ = advance(); _ = advance()
                ops.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? left : .compare(left, ops, position(start))
    }

    private mutating func parseMath1() throws -> Expr {
        var left = try parseConcat()
        var count = 0
        while isOp("+") || isOp("-") {
            try chained(&count)
            let t = advance()
            guard case .op(let o) = t.kind else { break }
            left = .binary(o, left, try parseConcat(), position(t))
        }
        return left
    }

    private mutating func parseConcat() throws -> Expr {
        var left = try parseMath2()
        var count = 0
        while isOp("~") {
            try chained(&count)
            let t = advance()
            left = .binary("~", left, try parseMath2(), position(t))
        }
        return left
    }

    private mutating func parseMath2() throws -> Expr {
        var left = try parsePow()
        var count = 0
        while isOp("*") || isOp("/") || isOp("//") || isOp("%") {
            try chained(&count)
            let t = advance()
            guard case .op(let o) = t.kind else { break }
            left = .binary(o, left, try parsePow(), position(t))
        }
        return left
    }

    private mutating func parsePow() throws -> Expr {
        var left = try parseUnary(withFilter: true)
        var count = 0
        while isOp("**") {
            try chained(&count)
            let t = advance()
            left = .binary("**", left, try parseUnary(withFilter: true), position(t))
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool) throws -> Expr {
        try enter()
        defer { depth -= 1 }
        var node: Expr
        if isOp("-") || isOp("+") {
            let t = advance()
            guard case .op(let o) = t.kind else { throw error("internal") }
            node = .unary(o, try parseUnary(withFilter: false), position(t))
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpression(node) }
        return node
    }

    private mutating func parsePrimary() throws -> Expr {
        let t = current
        let p = position(t)
        switch t.kind {
        case .name(let n):
            _ = advance()
            switch n {
            case "true", "True": return .literal(.bool(true), p)
            case "false", "False": return .literal(.bool(false), p)
            case "none", "None": return .literal(.none, p)
            default: return .name(n, p)
            }
        case .string(var s):
            _ = advance()
            while case .string(let more) = current.kind { s += more; _ = advance() }
            return .literal(.string(s), p)
        case .integer(let i):
            _ = advance()
            return .literal(.int(i), p)
        case .float(let d):
            _ = advance()
            return .literal(.double(d), p)
        case .op("("):
            _ = advance()
            if isOp(")") { _ = advance(); return .tuple([], p) }
            let first = try parseExpression()
            if isOp(")") { _ = advance(); return first }
            var items = [first]
            while isOp(",") {
                _ = advance()
                if isOp(")") { break }
                items.append(try parseExpression())
            }
            try expectOp(")")
            return .tuple(items, p)
        case .op("["):
            _ = advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return .list(items, p)
        case .op("{"):
            _ = advance()
            var pairs: [(Expr, Expr)] = []
            while !isOp("}") {
                if !pairs.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let k = try parseExpression()
                try expectOp(":")
                pairs.append((k, try parseExpression()))
            }
            try expectOp("}")
            return .dict(pairs, p)
        default:
            throw error("unexpected \(describe(t))")
        }
    }

    private mutating func parsePostfix(_ base: Expr) throws -> Expr {
        var node = base
        var steps = 0
        while true {
            steps += 1
            if steps > Parser.maxDepth { throw error("expression too long") }
            let t = current
            if isOp(".") {
                _ = advance()
                if case .integer(let i) = current.kind {
                    _ = advance()
                    node = .item(node, .literal(.int(i), position(t)), position(t))
                } else {
                    node = .attribute(node, try expectName(), position(t))
                }
            } else if isOp("[") {
                _ = advance()
                node = try parseSubscript(node, position(t))
            } else if isOp("(") {
                let (args, kwargs) = try parseCallArguments()
                node = .call(node, args, kwargs, position(t))
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ base: Expr, _ p: SourcePosition) throws -> Expr {
        var parts: [Expr?] = [nil]
        var isSlice = false
        if !isOp(":") { parts[0] = try parseExpression() }
        while isOp(":") {
            isSlice = true
            _ = advance()
            if parts.count == 3 { throw error("too many ':' in slice") }
            parts.append(isOp(":") || isOp("]") ? nil : try parseExpression())
        }
        try expectOp("]")
        if !isSlice {
            guard let index = parts[0] else { throw error("expected an index") }
            return .item(base, index, p)
        }
        while parts.count < 3 { parts.append(nil) }
        return .slice(base, parts[0], parts[1], parts[2], p)
    }

    private mutating func parseCallArguments() throws -> ([Expr], [Keyword]) {
        try expectOp("(")
        var args: [Expr] = []
        var kwargs: [Keyword] = []
        while !isOp(")") {
            if !(args.isEmpty && kwargs.isEmpty) { try expectOp(",") }
            if isOp(")") { break }
            if case .name(let n) = current.kind, index + 1 < tokens.count, tokens[index + 1].kind == .op("=") {
                _ = advance(); _ = advance()
                kwargs.append(Keyword(name: n, value: try parseExpression()))
            } else {
                if !kwargs.isEmpty { throw error("positional argument after keyword argument") }
                args.append(try parseExpression())
            }
        }
        try expectOp(")")
        return (args, kwargs)
    }

    private mutating func parseFilterExpression(_ base: Expr) throws -> Expr {
        var node = base
        var steps = 0
        while true {
            steps += 1
            if steps > Parser.maxDepth { throw error("expression too long") }
            let t = current
            if isOp("|") {
                _ = advance()
                let name = try expectName()
                let (args, kwargs) = isOp("(") ? try parseCallArguments() : ([], [])
                node = .filter(node, name, args, kwargs, position(t))
            } else if isName("is") {
                _ = advance()
                var negated = false
                if isName("not") { _ = advance(); negated = true }
                var name = try expectName()
                // Tests named after keywords/operators: `is none`, `is true`, `is in`...
                if name == "none" || name == "None" { name = "none" }
                var args: [Expr] = []
                if isOp("(") {
                    let (a, _) = try parseCallArguments()
                    args = a
                } else {
                    switch current.kind {
                    case .string, .integer, .float, .op("["), .op("{"), .op("("):
                        args = [try parsePostfix(try parsePrimary())]
                    case .name(let n) where !["else", "or", "and", "if", "is", "in", "not"].contains(n):
                        args = [try parsePostfix(try parsePrimary())]
                    default: break
                    }
                }
                node = .test(node, name, args, negated: negated, position(t))
            } else {
                return node
            }
        }
    }
}
