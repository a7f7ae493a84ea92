// Filters (`value | name(args)`) and tests (`value is name(args)`) of the Jinja subset, with
// Jinja2's semantics and argument names (`default(value, boolean=false)`, `join(d, attribute)`,
// `indent(width, first, blank)`, `tojson(indent)` as Hugging Face defines it, `map(attribute=)` or
// `map('filter')`, `selectattr(attr, test, arg)` ...). An unknown filter or test is reported
// with its name and position when it is evaluated.

import Foundation

extension Interpreter {
    // MARK: Filters

    func applyFilter(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)],
                     _ p: SourcePosition) throws -> JinjaValue {
        func arg(_ i: Int, _ key: String) -> JinjaValue? {
            if i < args.count { return args[i] }
            return kwargs.first { $0.0 == key }?.1
        }
        func text(_ v: JinjaValue) -> String { v.pyStr }
        switch name {
        case "safe": return value
        case "string": return value.isUndefined ? .string("") : .string(value.pyStr)
        case "trim":
            return .string(pyStrip(text(value), chars: arg(0, "chars").flatMap(\.stringValue), left: true, right: true))
        case "upper": return .string(text(value).uppercased())
        case "lower": return .string(text(value).lowercased())
        case "title": return .string(pyTitle(text(value)))
        case "capitalize": return .string(pyCapitalize(text(value)))
        case "length", "count":
            switch value {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .array(let a): return .int(a.count)
            case .dict(let d): return .int(d.count)
            case .namespace(let ns): return .int(ns.attributes.count)
            case .undefined: return .int(0)
            default: throw RuntimeFailure("object of type '\(value.typeName)' has no len()")
            }
        case "default", "d":
            let fallback = arg(0, "default_value") ?? .string("")
            let boolean = arg(1, "boolean")?.truthy ?? false
            if value.isUndefined || (boolean && !value.truthy) { return fallback }
            return value
        case "first":
            let items = try iterate(value)
            return items.first ?? .undefined
        case "last":
            let items = try iterate(value)
            return items.last ?? .undefined
        case "join":
            var items = try iterate(value)
            if let attribute = arg(1, "attribute") { items = try items.map { try getAttributeOrItem($0, attribute) } }
            return .string(items.map(\.pyStr).joined(separator: arg(0, "d").map(text) ?? ""))
        case "replace":
            guard let old = arg(0, "old"), let new = arg(1, "new") else { throw RuntimeFailure("replace needs 2 arguments") }
            return .string(pyReplace(text(value), text(old), text(new), count: arg(2, "count")?.integer ?? -1))
        case "int":
            let fallback = arg(0, "default") ?? .int(0)
            switch value {
            case .int, .bool: return .int(value.integer!)
            case .double(let d): return d.isFinite && abs(d) < 9.2e18 ? .int(Int(d)) : fallback
            case .string(let s):
                let t = pyStrip(s, chars: nil, left: true, right: true).replacingOccurrences(of: "_", with: "")
                let base = arg(1, "base")?.integer ?? 10
                if let i = Int(t, radix: base) { return .int(i) }
                if base == 10, let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
                return fallback
            default: return fallback
            }
        case "float":
            let fallback = arg(0, "default") ?? .double(0)
            if let n = value.number { return .double(n) }
            if case .string(let s) = value, let d = Double(pyStrip(s, chars: nil, left: true, right: true)) { return .double(d) }
            return fallback
        case "abs":
            if case .int(let i) = value, i != Int.min { return .int(abs(i)) }
            if let n = value.number { return .double(abs(n)) }
            throw RuntimeFailure("bad operand type for abs(): '\(value.typeName)'")
        case "round":
            guard let n = value.number else { throw RuntimeFailure("round needs a number") }
            let precision = arg(0, "precision")?.integer ?? 0
            let method = arg(1, "method")?.stringValue ?? "common"
            let scale = pow(10.0, Double(max(-300, min(300, precision))))
            let rule: FloatingPointRoundingRule = method == "ceil" ? .up : (method == "floor" ? .down : .toNearestOrAwayFromZero)
            return .double((n * scale).rounded(rule) / scale)
        case "list": return .array(try iterate(value))
        case "reverse":
            if case .string(let s) = value { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
            return .array(try iterate(value).reversed())
        case "items":
            switch value {
            case .dict(let d): return .array(d.pairs.map { .array([.string($0.0), $0.1]) })
            case .undefined: return .array([])
            default: throw RuntimeFailure("items filter needs a mapping, got \(value.typeName)")
            }
        case "dictsort":
            guard case .dict(let d) = value else { throw RuntimeFailure("dictsort needs a mapping") }
            let byValue = arg(1, "by")?.stringValue == "value"
            let pairs = try d.pairs.sorted { a, b in
                try byValue ? compare("<", a.1, b.1) : a.0.lowercased() < b.0.lowercased()
            }
            return .array(pairs.map { .array([.string($0.0), $0.1]) })
        case "tojson":
            var options = JSONOptions()
            if let indent = arg(0, "indent"), !indent.isNone {
                if let n = indent.integer { options.indent = String(repeating: " ", count: max(0, min(n, 64))) } else { options.indent = indent.pyStr }
            }
            if case .array(let seps)? = arg(2, "separators"), seps.count == 2 {
                options.itemSeparator = seps[0].pyStr
                options.keySeparator = seps[1].pyStr
            }
            options.sortKeys = arg(3, "sort_keys")?.truthy ?? false
            return .string(try value.toJSON(options))
        case "indent":
            let width = arg(0, "width") ?? .int(4)
            let indentation = width.integer.map { String(repeating: " ", count: max(0, min($0, 1024))) } ?? width.pyStr
            let first = arg(1, "first")?.truthy ?? false
            let blank = arg(2, "blank")?.truthy ?? false
            var lines = text(value).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var trailing = false
            if lines.count > 1, lines.last == "" { lines.removeLast(); trailing = true }
            var rv = lines.isEmpty ? "" : lines[0]
            for line in lines.dropFirst() { rv += "\n" + (blank || !line.isEmpty ? indentation + line : line) }
            if trailing { rv += "\n" }
            return .string(first ? indentation + rv : rv)
        case "map":
            let items = try iterate(value)
            if let attribute = kwargs.first(where: { $0.0 == "attribute" })?.1 {
                let fallback = kwargs.first { $0.0 == "default" }?.1
                return .array(try items.map { item in
                    let v = try getAttributeOrItem(item, attribute)
                    return v.isUndefined ? (fallback ?? v) : v
                })
            }
            guard case .string(let filterName)? = args.first else { throw RuntimeFailure("map needs a filter name or attribute=") }
            return .array(try items.map { try applyFilter(filterName, $0, Array(args.dropFirst()), [], p) })
        case "select", "reject":
            let items = try iterate(value)
            let keep = name == "select"
            return .array(try items.filter { item in
                guard case .string(let test)? = args.first else { return item.truthy == keep }
                return try applyTest(test, item, Array(args.dropFirst()), p) == keep
            })
        case "selectattr", "rejectattr":
            let items = try iterate(value)
            guard let attribute = args.first else { throw RuntimeFailure("\(name) needs an attribute name") }
            let keep = name == "selectattr"
            return .array(try items.filter { item in
                let v = try getAttributeOrItem(item, attribute)
                guard args.count > 1, case .string(let test) = args[1] else { return v.truthy == keep }
                return try applyTest(test, v, Array(args.dropFirst(2)), p) == keep
            })
        case "unique":
            var seen: [JinjaValue] = []
            for item in try iterate(value) where !seen.contains(item) { seen.append(item) }
            return .array(seen)
        case "sort":
            let reverse = arg(0, "reverse")?.truthy ?? false
            let attribute = arg(2, "attribute")
            let items = try iterate(value)
            let keys = try items.map { item -> JinjaValue in
                var k = attribute == nil ? item : try getAttributeOrItem(item, attribute!)
                if case .string(let s) = k { k = .string(s.lowercased()) }
                return k
            }
            let order = try Array(items.indices).sorted { try compare("<", keys[$0], keys[$1]) }
            return .array((reverse ? order.reversed() : order).map { items[$0] })
        case "sum":
            var total: JinjaValue = arg(1, "start") ?? .int(0)
            for item in try iterate(value) {
                let v = try arg(0, "attribute").map { try getAttributeOrItem(item, $0) } ?? item
                total = try binary("+", total, v)
            }
            return total
        case "min", "max":
            let items = try iterate(value)
            guard var best = items.first else { return .undefined }
            for item in items.dropFirst() where try compare(name == "min" ? "<" : ">", item, best) { best = item }
            return best
        case "wordcount": return .int(try pySplit(text(value), separator: nil, maxsplit: -1, fromRight: false).count)
        case "center":
            let width = min(arg(0, "width")?.integer ?? 80, Limits.maxCollection)
            let s = text(value)
            let pad = max(0, width - s.unicodeScalars.count)
            let left = pad / 2 + (pad & width & 1)
            return .string(String(repeating: " ", count: left) + s + String(repeating: " ", count: pad - left))
        case "e", "escape", "forceescape":
            var out = ""
            for c in text(value) {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                default: out.append(c)
                }
            }
            return .string(out)
        case "batch", "slice", "groupby", "format", "pprint", "urlencode", "wordwrap", "xmlattr", "filesizeformat", "truncate", "striptags", "urlize":
            throw RuntimeFailure("filter '\(name)' is not supported")
        default:
            throw ChatTemplateError.unknownFilter(name: name, line: p.line, column: p.column)
        }
    }

    /// `attribute=` of map/selectattr/join/sort: dotted paths and integer indices, like Jinja's.
    private func getAttributeOrItem(_ item: JinjaValue, _ attribute: JinjaValue) throws -> JinjaValue {
        if let i = attribute.integer { return try getItem(item, .int(i)) }
        var v = item
        for part in attribute.pyStr.split(separator: ".", omittingEmptySubsequences: false) {
            if v.isUndefined { return .undefined }
            if let i = Int(part) { v = try getItem(v, .int(i)) } else { v = try getItem(v, .string(String(part))) }
        }
        return v
    }

    // MARK: Tests

    func applyTest(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], _ p: SourcePosition) throws -> Bool {
        func other() throws -> JinjaValue {
            guard let a = args.first else { throw RuntimeFailure("test '\(name)' needs an argument") }
            return a
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNone
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "string": return value.stringValue != nil
        case "number": return value.number != nil
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "mapping": if case .dict = value { return true } else { return false }
        case "sequence":
            switch value { case .string, .array, .dict: return true; default: return false }
        case "iterable":
            switch value { case .string, .array, .dict, .namespace, .undefined: return true; default: return false }
        case "callable": if case .function = value { return true } else { return false }
        case "odd", "even":
            guard let i = value.integer else { throw RuntimeFailure("test '\(name)' needs an integer") }
            return (i % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard let i = value.integer, let n = try other().integer, n != 0 else { throw RuntimeFailure("divisibleby needs nonzero integers") }
            return i % n == 0
        case "eq", "equalto", "==": return value == (try other())
        case "ne", "!=": return value != (try other())
        case "lt", "lessthan", "<": return try compare("<", value, try other())
        case "le", "<=": return try compare("<=", value, try other())
        case "gt", "greaterthan", ">": return try compare(">", value, try other())
        case "ge", ">=": return try compare(">=", value, try other())
        case "in": return try contains(try other(), value)
        case "sameas":
            let o = try other()
            switch (value, o) {
            case (.none, .none), (.undefined, .undefined): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.namespace(let a), .namespace(let b)): return a === b
            default: return false
            }
        case "lower": return value.stringValue.map { $0 == $0.lowercased() } ?? false
        case "upper": return value.stringValue.map { $0 == $0.uppercased() } ?? false
        case "escaped": return false
        case "filter", "test": return false
        default:
            throw ChatTemplateError.unknownTest(name: name, line: p.line, column: p.column)
        }
    }
}
