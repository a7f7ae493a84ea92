// The template syntax tree the Parser builds and the Interpreter walks. Expressions and nodes
// are plain Sendable values (a parsed ChatTemplate is shared freely across threads); every
// expression keeps the 1-based source position used in runtime error messages.

// MARK: - AST

struct Keyword: Sendable {
    let name: String
    let value: Expr
}

indirect enum Expr: Sendable {
    case literal(JinjaValue, SourcePosition)
    case name(String, SourcePosition)
    case list([Expr], SourcePosition)
    case tuple([Expr], SourcePosition)
    case dict([(Expr, Expr)], SourcePosition)
    case attribute(Expr, String, SourcePosition)
    case item(Expr, Expr, SourcePosition)
    case slice(Expr, Expr?, Expr?, Expr?, SourcePosition)
    case call(Expr, [Expr], [Keyword], SourcePosition)
    case filter(Expr, String, [Expr], [Keyword], SourcePosition)
    case test(Expr, String, [Expr], negated: Bool, SourcePosition)
    case unary(String, Expr, SourcePosition)
    case binary(String, Expr, Expr, SourcePosition)
    case compare(Expr, [(String, Expr)], SourcePosition)
    case conditional(then: Expr, test: Expr, otherwise: Expr?, SourcePosition)

    var position: SourcePosition {
        switch self {
        case .literal(_, let p), .name(_, let p), .list(_, let p), .tuple(_, let p), .dict(_, let p),
             .attribute(_, _, let p), .item(_, _, let p), .slice(_, _, _, _, let p), .call(_, _, _, let p),
             .filter(_, _, _, _, let p), .test(_, _, _, _, let p), .unary(_, _, let p), .binary(_, _, _, let p),
             .compare(_, _, let p), .conditional(_, _, _, let p):
            return p
        }
    }
}

struct MacroDefinition: Sendable {
    let name: String
    let parameters: [(name: String, defaultValue: Expr?)]
    let body: [Node]
}

enum SetTarget: Sendable {
    case names([String])
    case attribute(String, String)  // namespace variable, attribute
}

indirect enum Node: Sendable {
    case text(String)
    case output(Expr)
    case conditional([(Expr, [Node])], otherwise: [Node])
    case forLoop(targets: [String], iterable: Expr, filter: Expr?, body: [Node], otherwise: [Node], SourcePosition)
    case set(SetTarget, Expr, SourcePosition)
    case setBlock(String, filters: [(String, [Expr], [Keyword], SourcePosition)], body: [Node])
    case macro(MacroDefinition)
    case filterBlock(filters: [(String, [Expr], [Keyword], SourcePosition)], body: [Node])
    case loopBreak, loopContinue
}
