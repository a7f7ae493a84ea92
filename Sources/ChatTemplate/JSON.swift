// JSON in and out of `JinjaValue`, keeping key order. Serialization follows Python's
// `json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)`, which is what
// Hugging Face's `tojson` filter calls: `", "`/`": "` separators without indent, `","`/`": "`
// with it, non-ASCII text kept as is, floats printed like Python's repr. Parsing is a small
// RFC 8259 reader (depth-limited) used by callers that receive tools or extra context as JSON.

import Foundation

// MARK: - Serialization

struct JSONOptions {
    var indent: String? = nil
    var itemSeparator: String? = nil
    var keySeparator: String = ": "
    var sortKeys = false
}

extension JinjaValue {
    /// Python `json.dumps` of the value; Undefined, namespaces and functions are not serializable.
    func toJSON(_ options: JSONOptions = JSONOptions()) throws -> String {
        var out = ""
        try writeJSON(into: &out, options: options, level: 0)
        return out
    }

    private func writeJSON(into out: inout String, options: JSONOptions, level: Int) throws {
        guard level < 512 else { throw RuntimeFailure("tojson: value nested too deeply") }
        let itemSep = options.itemSeparator ?? (options.indent == nil ? ", " : ",")
        switch self {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else { out += pythonFloatRepr(d) }
        case .string(let s): out += jsonQuote(s)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += itemSep }
                if let indent = options.indent { out += "\n" + String(repeating: indent, count: level + 1) }
                try item.writeJSON(into: &out, options: options, level: level + 1)
            }
            if let indent = options.indent { out += "\n" + String(repeating: indent, count: level) }
            out += "]"
        case .dict(let dict):
            if dict.isEmpty { out += "{}"; return }
            out += "{"
            let keys = options.sortKeys ? dict.keys.sorted() : dict.keys
            for (i, key) in keys.enumerated() {
                if i > 0 { out += itemSep }
                if let indent = options.indent { out += "\n" + String(repeating: indent, count: level + 1) }
                out += jsonQuote(key) + options.keySeparator
                try dict[key]!.writeJSON(into: &out, options: options, level: level + 1)
            }
            if let indent = options.indent { out += "\n" + String(repeating: indent, count: level) }
            out += "}"
        case .undefined, .namespace, .function:
            throw RuntimeFailure("Object of type \(typeName) is not JSON serializable")
        }
    }
}

func jsonQuote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        default:
            if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}

// MARK: - Parsing

extension JinjaValue {
    /// Parses JSON text, keeping object key order. Throws `ChatTemplateError.runtime` on bad input.
    public init(json text: String) throws {
        var parser = JSONReader(scalars: Array(text.unicodeScalars))
        do {
            self = try parser.parseDocument()
        } catch let failure as RuntimeFailure {
            throw ChatTemplateError.runtime(message: "invalid JSON: " + failure.message, line: 1, column: parser.pos + 1)
        }
    }
}

private struct JSONReader {
    let scalars: [Unicode.Scalar]
    var pos = 0

    init(scalars: [Unicode.Scalar]) { self.scalars = scalars }

    mutating func parseDocument() throws -> JinjaValue {
        let value = try parseValue(depth: 0)
        skipSpace()
        guard pos == scalars.count else { throw RuntimeFailure("trailing characters") }
        return value
    }

    mutating func skipSpace() {
        while pos < scalars.count, [" ", "\n", "\r", "\t"].contains(scalars[pos]) { pos += 1 }
    }

    mutating func expect(_ word: String) throws {
        for s in word.unicodeScalars {
            guard pos < scalars.count, scalars[pos] == s else { throw RuntimeFailure("expected \(word)") }
            pos += 1
        }
    }

    mutating func parseValue(depth: Int) throws -> JinjaValue {
        guard depth < 512 else { throw RuntimeFailure("nested too deeply") }
        skipSpace()
        guard pos < scalars.count else { throw RuntimeFailure("unexpected end") }
        switch scalars[pos] {
        case "{":
            pos += 1
            var dict = JinjaDict()
            skipSpace()
            if pos < scalars.count, scalars[pos] == "}" { pos += 1; return .dict(dict) }
            while true {
                skipSpace()
                let key = try parseString()
                skipSpace()
                try expect(":")
                dict[key] = try parseValue(depth: depth + 1)
                skipSpace()
                guard pos < scalars.count else { throw RuntimeFailure("unterminated object") }
                if scalars[pos] == "," { pos += 1; continue }
                if scalars[pos] == "}" { pos += 1; return .dict(dict) }
                throw RuntimeFailure("expected , or }")
            }
        case "[":
            pos += 1
            var items: [JinjaValue] = []
            skipSpace()
            if pos < scalars.count, scalars[pos] == "]" { pos += 1; return .array(items) }
            while true {
                items.append(try parseValue(depth: depth + 1))
                skipSpace()
                guard pos < scalars.count else { throw RuntimeFailure("unterminated array") }
                if scalars[pos] == "," { pos += 1; continue }
                if scalars[pos] == "]" { pos += 1; return .array(items) }
                throw RuntimeFailure("expected , or ]")
            }
        case "\"": return .string(try parseString())
        case "t": try expect("true"); return .bool(true)
        case "f": try expect("false"); return .bool(false)
        case "n": try expect("null"); return .none
        default: return try parseNumber()
        }
    }

    mutating func parseNumber() throws -> JinjaValue {
        let start = pos
        var isFloat = false
        while pos < scalars.count {
            let c = scalars[pos]
            if ("0"..."9").contains(c) || c == "-" || c == "+" {
                pos += 1
            } else if c == "." || c == "e" || c == "E" {
                isFloat = true
                pos += 1
            } else {
                break
            }
        }
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars[start..<pos])
        if !isFloat, let i = Int(text) { return .int(i) }
        guard !text.isEmpty, let d = Double(text) else { throw RuntimeFailure("bad number") }
        return .double(d)
    }

    mutating func parseString() throws -> String {
        guard pos < scalars.count, scalars[pos] == "\"" else { throw RuntimeFailure("expected string") }
        pos += 1
        var out = String.UnicodeScalarView()
        while pos < scalars.count {
            let c = scalars[pos]
            pos += 1
            if c == "\"" { return String(out) }
            if c != "\\" { out.append(c); continue }
            guard pos < scalars.count else { break }
            let e = scalars[pos]
            pos += 1
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "u":
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code), pos + 1 < scalars.count, scalars[pos] == "\\", scalars[pos + 1] == "u" {
                    pos += 2
                    let low = try hex4()
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                out.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: out.append(e)
            }
        }
        throw RuntimeFailure("unterminated string")
    }

    mutating func hex4() throws -> UInt32 {
        guard pos + 4 <= scalars.count else { throw RuntimeFailure("bad \\u escape") }
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars[pos..<pos + 4])
        guard let v = UInt32(text, radix: 16) else { throw RuntimeFailure("bad \\u escape") }
        pos += 4
        return v
    }
}
