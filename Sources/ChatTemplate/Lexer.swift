// Lexer: template source → tokens. It reproduces Jinja2's lexer with the settings Hugging Face
// uses for chat templates (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
// newlines normalized to "\n" and one trailing newline dropped; `{{- / -}}`, `{%- / -%}`,
// `{#- / -#}` strip all whitespace on that side; `{%+` / `+%}` turn lstrip / trim off for one tag;
// lstrip_blocks removes spaces and tabs before a `{%` or `{#` that starts its line; trim_blocks
// removes the first newline after `%}` or `#}`. Comments vanish here, `{% raw %}` becomes text.
// Positions are unicode-scalar offsets into the normalized source; `SourceMap` turns them into
// 1-based line and column numbers for error messages.

// MARK: - Tokens

enum TokenKind: Equatable {
    case text(String)
    case variableBegin, variableEnd, blockBegin, blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
    case eof
}

struct Token {
    let kind: TokenKind
    let offset: Int
}

/// 1-based line and column of a scalar offset.
struct SourcePosition: Sendable, Equatable {
    let line: Int
    let column: Int
}

struct SourceMap {
    private let lineStarts: [Int]
    init(_ scalars: [Unicode.Scalar]) {
        var starts = [0]
        for (i, s) in scalars.enumerated() where s == "\n" { starts.append(i + 1) }
        lineStarts = starts
    }
    func position(of offset: Int) -> SourcePosition {
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return SourcePosition(line: lo + 1, column: offset - lineStarts[lo] + 1)
    }
}

/// Python `str.isspace()` for one scalar (what `\s` matches in Jinja's regexes).
func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
    switch s.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0: return true
    default: return s.properties.isWhitespace
    }
}

// MARK: - Lexer

struct Lexer {
    let src: [Unicode.Scalar]
    let map: SourceMap
    private var pos = 0
    private var tokens: [Token] = []

    /// Normalizes newlines like Jinja2 (and drops one trailing newline).
    static func normalize(_ source: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(source.unicodeScalars.count)
        var previousCR = false
        for s in source.unicodeScalars {
            if s == "\r" { out.append("\n"); previousCR = true; continue }
            if s == "\n" && previousCR { previousCR = false; continue }
            previousCR = false
            out.append(s)
        }
        if out.last == "\n" { out.removeLast() }
        return out
    }

    init(source: String) {
        src = Lexer.normalize(source)
        map = SourceMap(src)
    }

    func syntaxError(_ message: String, at offset: Int) -> ChatTemplateError {
        let p = map.position(of: min(offset, src.count))
        return .syntax(message: message, line: p.line, column: p.column)
    }

    private func starts(with text: String, at i: Int) -> Bool {
        var k = i
        for s in text.unicodeScalars {
            guard k < src.count, src[k] == s else { return false }
            k += 1
        }
        return true
    }

    private func string(_ range: Range<Int>) -> String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: src[range])
        return String(s)
    }

    mutating func tokenize() throws -> [Token] {
        var lineStarting = true
        while pos < src.count {
            // Find the next tag opener.
            var j = pos
            var opener: Unicode.Scalar? = nil
            while j + 1 < src.count {
                if src[j] == "{", src[j + 1] == "{" || src[j + 1] == "%" || src[j + 1] == "#" { opener = src[j + 1]; break }
                j += 1
            }
            guard let kind = opener else {
                tokens.append(Token(kind: .text(string(pos..<src.count)), offset: pos))
                pos = src.count
                break
            }
            let modifier: Unicode.Scalar? = j + 2 < src.count && (src[j + 2] == "-" || src[j + 2] == "+") ? src[j + 2] : nil
            var textEnd = j
            if modifier == "-" {
                while textEnd > pos, isPythonSpace(src[textEnd - 1]) { textEnd -= 1 }
            } else if modifier != "+" && kind != "{" {
                // lstrip_blocks: drop spaces before a block/comment tag that starts its line.
                var lineStart = textEnd
                while lineStart > pos, src[lineStart - 1] != "\n" { lineStart -= 1 }
                if (lineStart > pos || lineStarting), lineStart < textEnd,
                   src[lineStart..<textEnd].allSatisfy(isPythonSpace) {
                    textEnd = lineStart
                }
            }
            if textEnd > pos { tokens.append(Token(kind: .text(string(pos..<textEnd)), offset: pos)) }
            let tagStart = j
            pos = j + 2 + (modifier == nil ? 0 : 1)
            switch kind {
            case "#": try skipComment(tagStart: tagStart)
            case "{": try lexTag(closer: "}}", begin: .variableBegin, end: .variableEnd, tagStart: tagStart)
            default:
                if try lexRaw(tagStart: tagStart) { break }
                try lexTag(closer: "%}", begin: .blockBegin, end: .blockEnd, tagStart: tagStart)
            }
            lineStarting = pos > 0 && src[pos - 1] == "\n"
        }
        tokens.append(Token(kind: .eof, offset: src.count))
        return tokens
    }

    /// After a closing delimiter: `-` eats all whitespace, otherwise trim_blocks eats one newline.
    private mutating func afterClose(strip: Bool, keep: Bool, trims: Bool) {
        if strip {
            while pos < src.count, isPythonSpace(src[pos]) { pos += 1 }
        } else if trims && !keep, pos < src.count, src[pos] == "\n" {
            pos += 1
        }
    }

    private mutating func skipComment(tagStart: Int) throws {
        while pos + 1 < src.count {
            if src[pos] == "#", src[pos + 1] == "}" {
                let strip = pos > 0 && src[pos - 1] == "-"
                pos += 2
                afterClose(strip: strip, keep: false, trims: true)
                return
            }
            pos += 1
        }
        throw syntaxError("unterminated comment", at: tagStart)
    }

    /// `{% raw %}...{% endraw %}`: the body is emitted as text, untouched.
    private mutating func lexRaw(tagStart: Int) throws -> Bool {
        var k = pos
        while k < src.count, isPythonSpace(src[k]) { k += 1 }
        guard starts(with: "raw", at: k) else { return false }
        k += 3
        while k < src.count, isPythonSpace(src[k]) { k += 1 }
        var stripAfter = false
        if k < src.count, src[k] == "-" { stripAfter = true; k += 1 }
        guard starts(with: "%}", at: k) else { return false }
        k += 2
        if stripAfter { while k < src.count, isPythonSpace(src[k]) { k += 1 } }
        // Find {% endraw %} (with optional whitespace control).
        var search = k
        while search + 1 < src.count {
            if src[search] == "{", src[search + 1] == "%" {
                var e = search + 2
                let stripBefore = e < src.count && src[e] == "-"
                if e < src.count, src[e] == "-" || src[e] == "+" { e += 1 }
                while e < src.count, isPythonSpace(src[e]) { e += 1 }
                if starts(with: "endraw", at: e) {
                    e += 6
                    while e < src.count, isPythonSpace(src[e]) { e += 1 }
                    var stripEnd = false
                    if e < src.count, src[e] == "-" || src[e] == "+" { stripEnd = src[e] == "-"; e += 1 }
                    if starts(with: "%}", at: e) {
                        var bodyEnd = search
                        if stripBefore { while bodyEnd > k, isPythonSpace(src[bodyEnd - 1]) { bodyEnd -= 1 } }
                        if bodyEnd > k { tokens.append(Token(kind: .text(string(k..<bodyEnd)), offset: k)) }
                        pos = e + 2
                        afterClose(strip: stripEnd, keep: false, trims: true)
                        return true
                    }
                }
            }
            search += 1
        }
        throw syntaxError("unterminated raw block", at: tagStart)
    }

    private mutating func lexTag(closer: String, begin: TokenKind, end: TokenKind, tagStart: Int) throws {
        tokens.append(Token(kind: begin, offset: tagStart))
        var depth = 0
        let isBlock = closer == "%}"
        while true {
            while pos < src.count, isPythonSpace(src[pos]) { pos += 1 }
            guard pos < src.count else { throw syntaxError("unexpected end of template, expected '\(closer)'", at: tagStart) }
            if depth == 0 {
                if (src[pos] == "-" || (isBlock && src[pos] == "+")) && starts(with: closer, at: pos + 1) {
                    let sign = src[pos]
                    tokens.append(Token(kind: end, offset: pos))
                    pos += 3
                    afterClose(strip: sign == "-", keep: sign == "+", trims: isBlock)
                    return
                }
                if starts(with: closer, at: pos) {
                    tokens.append(Token(kind: end, offset: pos))
                    pos += 2
                    afterClose(strip: false, keep: false, trims: isBlock)
                    return
                }
            }
            let c = src[pos]
            let start = pos
            if c == "_" || c.properties.isAlphabetic && c.isASCII {
                while pos < src.count, src[pos] == "_" || (src[pos].isASCII && (src[pos].properties.isAlphabetic || ("0"..."9").contains(src[pos]))) { pos += 1 }
                tokens.append(Token(kind: .name(string(start..<pos)), offset: start))
            } else if ("0"..."9").contains(c) {
                tokens.append(Token(kind: try lexNumber(), offset: start))
            } else if c == "'" || c == "\"" {
                tokens.append(Token(kind: .string(try lexString(quote: c)), offset: start))
            } else {
                let two = pos + 1 < src.count ? string(pos..<pos + 2) : ""
                if ["//", "**", "==", "!=", "<=", ">="].contains(two) {
                    tokens.append(Token(kind: .op(two), offset: start))
                    pos += 2
                } else if "+-*/%~<>=()[]{},.:|;".unicodeScalars.contains(c) {
                    if c == "(" || c == "[" || c == "{" { depth += 1 }
                    if c == ")" || c == "]" || c == "}" {
                        guard depth > 0 else { throw syntaxError("unexpected '\(Character(c))'", at: pos) }
                        depth -= 1
                    }
                    tokens.append(Token(kind: .op(String(Character(c))), offset: start))
                    pos += 1
                } else {
                    throw syntaxError("unexpected character '\(Character(c))'", at: pos)
                }
            }
        }
    }

    private mutating func lexNumber() throws -> TokenKind {
        let start = pos
        var isFloat = false
        func digits() { while pos < src.count, ("0"..."9").contains(src[pos]) || src[pos] == "_" { pos += 1 } }
        digits()
        if pos + 1 < src.count, src[pos] == ".", ("0"..."9").contains(src[pos + 1]) {
            isFloat = true
            pos += 1
            digits()
        }
        if pos < src.count, src[pos] == "e" || src[pos] == "E" {
            var k = pos + 1
            if k < src.count, src[k] == "+" || src[k] == "-" { k += 1 }
            if k < src.count, ("0"..."9").contains(src[k]) { isFloat = true; pos = k; digits() }
        }
        let text = string(start..<pos).replacingOccurrences(of: "_", with: "")
        if !isFloat, let i = Int(text) { return .integer(i) }
        guard let d = Double(text) else { throw syntaxError("invalid number '\(text)'", at: start) }
        return .float(d)
    }

    /// A quoted string with Python `unicode-escape` semantics (unknown escapes keep the backslash).
    private mutating func lexString(quote: Unicode.Scalar) throws -> String {
        let start = pos
        pos += 1
        var out = String.UnicodeScalarView()
        while pos < src.count {
            let c = src[pos]
            pos += 1
            if c == quote { return String(out) }
            guard c == "\\" else { out.append(c); continue }
            guard pos < src.count else { break }
            let e = src[pos]
            pos += 1
            switch e {
            case "\n": break
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "x", "u", "U":
                let width = e == "x" ? 2 : (e == "u" ? 4 : 8)
                guard pos + width <= src.count, let v = UInt32(string(pos..<pos + width), radix: 16),
                      let scalar = Unicode.Scalar(v) else {
                    throw syntaxError("invalid \\\(Character(e)) escape in string", at: pos - 2)
                }
                out.append(scalar)
                pos += width
            case "0"..."7":
                var v = e.value - 48
                var n = 1
                while n < 3, pos < src.count, ("0"..."7").contains(src[pos]) { v = v * 8 + src[pos].value - 48; pos += 1; n += 1 }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            default:
                out.append("\\")
                out.append(e)
            }
        }
        throw syntaxError("unterminated string", at: start)
    }
}
