// The value model of the Jinja subset: what templates compute with and what callers pass in.
// It follows Python's data model as Jinja2 (and so Hugging Face's chat-template renderer) sees
// it: None / bool / int / float / str / list / dict plus Jinja's Undefined, a `namespace()`
// object and callables. Dicts keep insertion order (Python 3.7+), because `tojson` and
// `dict.items()` output depends on it. `pyStr`/`pyRepr` print values the way Python's
// `str()`/`repr()` do, which is what `{{ value }}` renders; `truthy` is Python's `bool()`;
// `==` is Python equality (1 == 1.0 == True).

import Foundation

// MARK: - Ordered dictionary

/// A string-keyed dictionary that remembers insertion order, like a Python 3 dict.
public struct JinjaDict: Sendable, Equatable {
    public private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    public init() {}
    public init(_ pairs: [(String, JinjaValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let value = newValue {
                if storage.updateValue(value, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }
    public var pairs: [(String, JinjaValue)] { keys.map { ($0, storage[$0]!) } }
    public var values: [JinjaValue] { keys.map { storage[$0]! } }

    public static func == (lhs: JinjaDict, rhs: JinjaDict) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for (key, value) in lhs.storage {
            guard let other = rhs.storage[key], value == other else { return false }
        }
        return true
    }
}

// MARK: - Reference objects

/// The mutable object made by `namespace(...)`; `{% set ns.x = ... %}` writes through it.
/// Only ever touched by the single render that created it.
public final class JinjaNamespace: @unchecked Sendable {
    var attributes: JinjaDict
    init(_ attributes: JinjaDict) { self.attributes = attributes }
}

/// A callable value: a builtin global, a macro, a bound method or `loop.cycle`.
public final class JinjaFunction: Sendable {
    enum Kind: Sendable {
        case builtin(String)
        case macro(MacroDefinition)
        case method(JinjaValue, String)
        case cycle(Int)
    }
    let kind: Kind
    init(_ kind: Kind) { self.kind = kind }
}

// MARK: - Value

public enum JinjaValue: Sendable {
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    case dict(JinjaDict)
    case namespace(JinjaNamespace)
    case function(JinjaFunction)

    /// Python truthiness (`bool(x)`); Undefined is false.
    public var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .function: return true
        }
    }

    public var isUndefined: Bool { if case .undefined = self { return true } else { return false } }
    public var isNone: Bool { if case .none = self { return true } else { return false } }

    /// The value as a Python number (bools count as ints), if it is one.
    var number: Double? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// The value as a Python int (bools count), if it is one.
    var integer: Int? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return i
        default: return nil
        }
    }

    var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }

    /// Python's type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array: return "list"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .function: return "function"
        }
    }

    // MARK: Printing

    /// Python `str(value)`; Undefined prints as the empty string, as in Jinja.
    public var pyStr: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return pyRepr
        }
    }

    /// Python `repr(value)`.
    public var pyRepr: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return pythonFloatRepr(d)
        case .string(let s): return pythonStringRepr(s)
        case .array(let a): return "[" + a.map(\.pyRepr).joined(separator: ", ") + "]"
        case .dict(let d):
            return "{" + d.pairs.map { pythonStringRepr($0.0) + ": " + $0.1.pyRepr }.joined(separator: ", ") + "}"
        case .namespace(let ns): return "<Namespace " + JinjaValue.dict(ns.attributes).pyRepr + ">"
        case .function: return "<function>"
        }
    }
}

// MARK: - Equality (Python semantics)

extension JinjaValue: Equatable {
    public static func == (lhs: JinjaValue, rhs: JinjaValue) -> Bool {
        switch (lhs, rhs) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.dict(let a), .dict(let b)): return a == b
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.function(let a), .function(let b)): return a === b
        default:
            if let a = lhs.integer, let b = rhs.integer { return a == b }
            if let a = lhs.number, let b = rhs.number { return a == b }
            return false
        }
    }
}

// MARK: - Literals

extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) { self = .dict(JinjaDict(elements)) }
    public init(nilLiteral: ()) { self = .none }
}

// MARK: - Python number and string formatting

/// Python `repr(float)`: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16.
func pythonFloatRepr(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value < 0 ? "-inf" : "inf" }
    if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
    // Split Swift's shortest round-trip description into digits and a decimal exponent.
    var text = "\(abs(value))"
    var exponent = 0
    if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        exponent = Int(text[text.index(after: e)...]) ?? 0
        text = String(text[..<e])
    }
    var intPart = text
    var fracPart = ""
    if let dot = text.firstIndex(of: ".") {
        intPart = String(text[..<dot])
        fracPart = String(text[text.index(after: dot)...])
    }
    var digits = intPart + fracPart
    var pointPos = intPart.count + exponent  // digits[0..<pointPos] are the integer part
    while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); pointPos -= 1 }
    while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
    let sci = pointPos - 1  // exponent in d.ddd × 10^sci
    let sign = value < 0 ? "-" : ""
    if sci < -4 || sci >= 16 {
        var mantissa = String(digits.prefix(1))
        if digits.count > 1 { mantissa += "." + digits.dropFirst() }
        let expText = abs(sci) < 10 ? "0\(abs(sci))" : "\(abs(sci))"
        return sign + mantissa + "e" + (sci < 0 ? "-" : "+") + expText
    }
    if pointPos <= 0 {
        return sign + "0." + String(repeating: "0", count: -pointPos) + digits
    }
    if pointPos >= digits.count {
        return sign + digits + String(repeating: "0", count: pointPos - digits.count) + ".0"
    }
    let idx = digits.index(digits.startIndex, offsetBy: pointPos)
    return sign + digits[..<idx] + "." + digits[idx...]
}

/// Python `repr(str)`: single quotes unless the text has ' and no ".
func pythonStringRepr(_ s: String) -> String {
    let quote: Character = (s.contains("'") && !s.contains("\"")) ? "\"" : "'"
    var out = String(quote)
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if Character(scalar) == quote {
                out += "\\" + String(quote)
            } else if scalar.value < 0x20 || scalar.value == 0x7f {
                out += String(format: "\\x%02x", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    out.append(quote)
    return out
}
