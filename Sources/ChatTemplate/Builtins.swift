// Builtins: Python operators, global functions and the methods of str / dict / list that chat
// templates call. Globals are Jinja2's defaults (`range`, `dict`, `namespace`, `cycler`-free)
// plus Hugging Face's `raise_exception(msg)` and `strftime_now(fmt)`; the date comes from the
// render's `now` so tests can fix it. Methods mirror Python's (`.strip(chars)`, `.split(sep,
// maxsplit)`, `.startswith(str|tuple)`, `.get(k, default)`, `.items()` ...); mutating list/dict
// methods are refused like in HF's ImmutableSandboxedEnvironment.

import Foundation

let dictMethods: Set<String> = ["get", "items", "keys", "values", "copy"]
let listMethods: Set<String> = ["index", "count", "copy", "append", "pop", "extend", "insert", "remove", "sort", "reverse"]
let stringMethods: Set<String> = [
    "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "upper", "lower",
    "title", "capitalize", "replace", "find", "rfind", "count", "join", "isdigit", "isalpha", "isalnum",
    "isspace", "isupper", "islower", "swapcase", "zfill", "center", "ljust", "rjust", "casefold", "format",
]

extension Interpreter {
    // MARK: Operators

    func binary(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> JinjaValue {
        if op == "~" { return .string(l.pyStr + r.pyStr) }
        if l.isUndefined || r.isUndefined { throw RuntimeFailure("unsupported operand: undefined value in '\(op)'") }
        func mismatch() -> RuntimeFailure {
            RuntimeFailure("unsupported operand type(s) for \(op): '\(l.typeName)' and '\(r.typeName)'")
        }
        switch op {
        case "+":
            switch (l, r) {
            case (.string(let a), .string(let b)): return .string(a + b)
            case (.array(let a), .array(let b)):
                guard a.count + b.count <= Limits.maxCollection else { throw RuntimeFailure("list too large") }
                return .array(a + b)
            default: return try arithmetic(op, l, r) ?? { throw mismatch() }()
            }
        case "*":
            if let (text, n) = sequenceRepeat(l, r) {
                let length: Int
                switch text {
                case .string(let s): length = s.utf8.count
                case .array(let a): length = a.count
                default: length = 0
                }
                guard n <= 0 || length <= Limits.maxCollection / n else { throw RuntimeFailure("repeated value too large") }
                if case .string(let s) = text { return .string(n > 0 ? String(repeating: s, count: n) : "") }
                if case .array(let a) = text { return .array(n > 0 ? Array([[JinjaValue]](repeating: a, count: n).joined()) : []) }
            }
            return try arithmetic(op, l, r) ?? { throw mismatch() }()
        case "%":
            if case .string = l { throw RuntimeFailure("printf-style string formatting is not supported") }
            return try arithmetic(op, l, r) ?? { throw mismatch() }()
        default:
            return try arithmetic(op, l, r) ?? { throw mismatch() }()
        }
    }

    private func sequenceRepeat(_ l: JinjaValue, _ r: JinjaValue) -> (JinjaValue, Int)? {
        switch (l, r) {
        case (.string, _), (.array, _): if let n = r.integer { return (l, n) }
        case (_, .string), (_, .array): if let n = l.integer { return (r, n) }
        default: break
        }
        return nil
    }

    private func arithmetic(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> JinjaValue? {
        if let a = l.integer, let b = r.integer {
            switch op {
            case "+": return try checked(a.addingReportingOverflow(b))
            case "-": return try checked(a.subtractingReportingOverflow(b))
            case "*": return try checked(a.multipliedReportingOverflow(by: b))
            case "/":
                guard b != 0 else { throw RuntimeFailure("division by zero") }
                return .double(Double(a) / Double(b))
            case "//", "%":
                guard b != 0 else { throw RuntimeFailure("integer division or modulo by zero") }
                guard !(a == Int.min && b == -1) else { throw RuntimeFailure("integer overflow") }
                var q = a / b, m = a % b
                if m != 0 && ((m < 0) != (b < 0)) { q -= 1; m += b }
                return .int(op == "//" ? q : m)
            case "**":
                if b < 0 { return .double(pow(Double(a), Double(b))) }
                var result = 1, base = a, e = b
                while e > 0 {
                    if e & 1 == 1 { result = try checkedInt(result.multipliedReportingOverflow(by: base)) }
                    e >>= 1
                    if e > 0 { base = try checkedInt(base.multipliedReportingOverflow(by: base)) }
                }
                return .int(result)
            default: return nil
            }
        }
        guard let a = l.number, let b = r.number else { return nil }
        switch op {
        case "+": return .double(a + b)
        case "-": return .double(a - b)
        case "*": return .double(a * b)
        case "/":
            guard b != 0 else { throw RuntimeFailure("float division by zero") }
            return .double(a / b)
        case "//":
            guard b != 0 else { throw RuntimeFailure("float floor division by zero") }
            return .double((a / b).rounded(.down))
        case "%":
            guard b != 0 else { throw RuntimeFailure("float modulo") }
            let m = a.truncatingRemainder(dividingBy: b)
            return .double(m != 0 && ((m < 0) != (b < 0)) ? m + b : m)
        case "**": return .double(pow(a, b))
        default: return nil
        }
    }

    private func checked(_ r: (partialValue: Int, overflow: Bool)) throws -> JinjaValue { .int(try checkedInt(r)) }
    private func checkedInt(_ r: (partialValue: Int, overflow: Bool)) throws -> Int {
        guard !r.overflow else { throw RuntimeFailure("integer overflow") }
        return r.partialValue
    }

    func compare(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> Bool {
        switch op {
        case "==": return l == r
        case "!=": return l != r
        case "in": return try contains(r, l)
        case "notin": return !(try contains(r, l))
        default:
            let order: Int
            if let a = l.number, let b = r.number {
                order = a < b ? -1 : (a > b ? 1 : 0)
            } else if case .string(let a) = l, case .string(let b) = r {
                order = a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) ? -1 : (a == b ? 0 : 1)
            } else if case .array(let a) = l, case .array(let b) = r {
                order = try compareArrays(a, b)
            } else {
                throw RuntimeFailure("'\(op)' not supported between instances of '\(l.typeName)' and '\(r.typeName)'")
            }
            switch op {
            case "<": return order < 0
            case "<=": return order <= 0
            case ">": return order > 0
            default: return order >= 0
            }
        }
    }

    private func compareArrays(_ a: [JinjaValue], _ b: [JinjaValue]) throws -> Int {
        for (x, y) in zip(a, b) where x != y { return try compare("<", x, y) ? -1 : 1 }
        return a.count < b.count ? -1 : (a.count > b.count ? 1 : 0)
    }

    func contains(_ container: JinjaValue, _ item: JinjaValue) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let sub) = item else { throw RuntimeFailure("'in <string>' requires string as left operand, not \(item.typeName)") }
            return sub.isEmpty || s.contains(sub)
        case .array(let a): return a.contains(item)
        case .dict(let d): return d[item.pyStr] != nil && item.stringValue != nil
        case .namespace(let ns): return ns.attributes[item.pyStr] != nil
        case .undefined: return false
        default: throw RuntimeFailure("argument of type '\(container.typeName)' is not iterable")
        }
    }

    // MARK: Globals

    func callGlobal(_ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        switch name {
        case "raise_exception":
            throw RaisedException(message: (args.first ?? kwargs.first?.1 ?? .string("")).pyStr)
        case "strftime_now":
            guard case .string(let format)? = args.first else { throw RuntimeFailure("strftime_now() needs a format string") }
            return .string(strftime(format, now, timeZone))
        case "namespace", "dict":
            var d = JinjaDict()
            for arg in args {
                guard case .dict(let given) = arg else { throw RuntimeFailure("\(name)() positional argument must be a mapping") }
                for (k, v) in given.pairs { d[k] = v }
            }
            for (k, v) in kwargs { d[k] = v }
            return name == "dict" ? .dict(d) : .namespace(JinjaNamespace(d))
        case "range":
            let ints = try args.map { v -> Int in
                guard let i = v.integer else { throw RuntimeFailure("range() arguments must be integers") }
                return i
            }
            let (lo, hi, step): (Int, Int, Int)
            switch ints.count {
            case 1: (lo, hi, step) = (0, ints[0], 1)
            case 2: (lo, hi, step) = (ints[0], ints[1], 1)
            case 3: (lo, hi, step) = (ints[0], ints[1], ints[2])
            default: throw RuntimeFailure("range() takes 1 to 3 arguments")
            }
            guard step != 0 else { throw RuntimeFailure("range() arg 3 must not be zero") }
            guard (Double(hi) - Double(lo)) / Double(step) <= Double(Limits.maxCollection) else { throw RuntimeFailure("range() too large") }
            let count = step > 0 ? (hi > lo ? (hi - lo - 1) / step + 1 : 0) : (lo > hi ? (lo - hi - 1) / -step + 1 : 0)
            guard count <= Limits.maxCollection else { throw RuntimeFailure("range() too large") }
            return .array((0..<count).map { .int(lo + $0 * step) })
        default:
            throw RuntimeFailure("unknown function '\(name)'")
        }
    }

    // MARK: Methods

    /// Calls `receiver.name(...)` when the receiver's type has that method; nil otherwise.
    func callMethod(_ receiver: JinjaValue, _ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue? {
        func arg(_ i: Int, _ key: String) -> JinjaValue? {
            if i < args.count { return args[i] }
            return kwargs.first { $0.0 == key }?.1
        }
        switch receiver {
        case .dict(let d):
            switch name {
            case "get":
                guard let key = arg(0, "key") else { throw RuntimeFailure("get() needs a key") }
                return d[key.pyStr] ?? arg(1, "default") ?? JinjaValue.none
            case "items": return .array(d.pairs.map { .array([.string($0.0), $0.1]) })
            case "keys": return .array(d.keys.map { .string($0) })
            case "values": return .array(d.values)
            case "copy": return receiver
            default: return nil
            }
        case .array(let a):
            switch name {
            case "index":
                guard let x = arg(0, "value"), let i = a.firstIndex(of: x) else { throw RuntimeFailure("value is not in list") }
                return .int(i)
            case "count":
                guard let x = arg(0, "value") else { throw RuntimeFailure("count() needs a value") }
                return .int(a.filter { $0 == x }.count)
            case "copy": return receiver
            case "append", "pop", "extend", "insert", "remove", "sort", "reverse":
                throw RuntimeFailure("access to mutating list method '\(name)' is unsafe (immutable sandbox)")
            default: return nil
            }
        case .string(let s):
            guard stringMethods.contains(name) else { return nil }
            return try stringMethod(s, name, arg)
        default:
            return nil
        }
    }

    private func stringMethod(_ s: String, _ name: String, _ arg: (Int, String) -> JinjaValue?) throws -> JinjaValue {
        func str(_ i: Int, _ key: String) throws -> String? {
            guard let v = arg(i, key), !v.isNone else { return nil }
            guard case .string(let t) = v else { throw RuntimeFailure("\(name)() argument must be str, not \(v.typeName)") }
            return t
        }
        switch name {
        case "strip": return .string(pyStrip(s, chars: try str(0, "chars"), left: true, right: true))
        case "lstrip": return .string(pyStrip(s, chars: try str(0, "chars"), left: true, right: false))
        case "rstrip": return .string(pyStrip(s, chars: try str(0, "chars"), left: false, right: true))
        case "split", "rsplit":
            let maxsplit = arg(1, "maxsplit")?.integer ?? -1
            let parts = try pySplit(s, separator: try str(0, "sep"), maxsplit: maxsplit, fromRight: name == "rsplit")
            return .array(parts.map { .string($0) })
        case "splitlines":
            var lines = s.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if lines.last == "" { lines.removeLast() }
            return .array(lines.map { .string($0) })
        case "startswith", "endswith":
            guard let v = arg(0, "prefix") else { throw RuntimeFailure("\(name)() needs an argument") }
            let candidates: [JinjaValue]
            if case .array(let a) = v { candidates = a } else { candidates = [v] }
            for c in candidates {
                guard case .string(let t) = c else { throw RuntimeFailure("\(name)() argument must be str or a tuple of str") }
                if name == "startswith" ? s.unicodeScalars.starts(with: t.unicodeScalars)
                    : s.unicodeScalars.reversed().starts(with: t.unicodeScalars.reversed()) { return .bool(true) }
            }
            return .bool(false)
        case "upper": return .string(s.uppercased())
        case "lower", "casefold": return .string(s.lowercased())
        case "title": return .string(pyTitle(s))
        case "capitalize": return .string(pyCapitalize(s))
        case "swapcase":
            return .string(String(s.map { $0.isUppercase ? Character($0.lowercased()) : Character($0.uppercased()) }))
        case "replace":
            guard let old = try str(0, "old"), let new = try str(1, "new") else { throw RuntimeFailure("replace() needs 2 arguments") }
            return .string(pyReplace(s, old, new, count: arg(2, "count")?.integer ?? -1))
        case "find", "rfind":
            guard let sub = try str(0, "sub") else { throw RuntimeFailure("\(name)() needs an argument") }
            let hay = Array(s.unicodeScalars), needle = Array(sub.unicodeScalars)
            guard needle.count <= hay.count else { return .int(-1) }
            let starts = Array(0...(hay.count - needle.count))
            for i in (name == "find" ? starts : starts.reversed()) where Array(hay[i..<i + needle.count]) == needle { return .int(i) }
            return .int(-1)
        case "count":
            guard let sub = try str(0, "sub") else { throw RuntimeFailure("count() needs an argument") }
            if sub.isEmpty { return .int(s.unicodeScalars.count + 1) }
            return .int(s.components(separatedBy: sub).count - 1)
        case "join":
            guard let v = arg(0, "iterable") else { throw RuntimeFailure("join() needs an argument") }
            return .string(try iterate(v).map { item -> String in
                guard case .string(let t) = item else { throw RuntimeFailure("sequence item: expected str instance, \(item.typeName) found") }
                return t
            }.joined(separator: s))
        case "isdigit": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType == .decimal })
        case "isalpha": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic })
        case "isalnum": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(isPythonSpace))
        case "isupper": return .bool(s.contains { $0.isCased } && !s.contains { $0.isLowercase })
        case "islower": return .bool(s.contains { $0.isCased } && !s.contains { $0.isUppercase })
        case "zfill", "center", "ljust", "rjust":
            let width = min(arg(0, "width")?.integer ?? 0, Limits.maxCollection)
            let n = s.unicodeScalars.count
            guard width > n else { return .string(s) }
            let fill = name == "zfill" ? "0" : (try str(1, "fillchar") ?? " ")
            let pad = width - n
            switch name {
            case "ljust": return .string(s + String(repeating: fill, count: pad))
            case "center":
                let left = pad / 2 + (pad & width & 1)
                return .string(String(repeating: fill, count: left) + s + String(repeating: fill, count: pad - left))
            default: return .string(String(repeating: fill, count: pad) + s)
            }
        default:
            throw RuntimeFailure("str.\(name)() is not supported")
        }
    }
}

// MARK: - Python string helpers

func pyStrip(_ s: String, chars: String?, left: Bool, right: Bool) -> String {
    let scalars = Array(s.unicodeScalars)
    let set = chars.map { Set($0.unicodeScalars) }
    func strip(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isPythonSpace(c) }
    var lo = 0, hi = scalars.count
    if left { while lo < hi, strip(scalars[lo]) { lo += 1 } }
    if right { while hi > lo, strip(scalars[hi - 1]) { hi -= 1 } }
    var out = String.UnicodeScalarView()
    out.append(contentsOf: scalars[lo..<hi])
    return String(out)
}

func pySplit(_ s: String, separator: String?, maxsplit: Int, fromRight: Bool) throws -> [String] {
    guard let sep = separator else {
        // Whitespace split: runs of whitespace, no empty strings.
        var words: [String] = []
        var current = String.UnicodeScalarView()
        for c in s.unicodeScalars {
            if isPythonSpace(c) {
                if !current.isEmpty { words.append(String(current)); current = String.UnicodeScalarView() }
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { words.append(String(current)) }
        if maxsplit >= 0 && words.count > maxsplit + 1 {
            // Rare; rebuild the remainder with single spaces is wrong, so split the raw text instead.
            let trimmed = pyStrip(s, chars: nil, left: !fromRight, right: fromRight)
            var parts: [String] = []
            var rest = Substring(trimmed)
            for _ in 0..<maxsplit {
                guard let r = rest.firstIndex(where: { $0.unicodeScalars.allSatisfy(isPythonSpace) }) else { break }
                parts.append(String(rest[..<r]))
                rest = rest[r...].drop { $0.unicodeScalars.allSatisfy(isPythonSpace) }
            }
            parts.append(String(rest))
            return parts
        }
        return words
    }
    guard !sep.isEmpty else { throw RuntimeFailure("empty separator") }
    var parts = s.components(separatedBy: sep)
    if maxsplit >= 0 && parts.count > maxsplit + 1 {
        if fromRight {
            let keep = parts.suffix(maxsplit)
            parts = [parts.dropLast(maxsplit).joined(separator: sep)] + keep
        } else {
            parts = Array(parts.prefix(maxsplit)) + [parts.dropFirst(maxsplit).joined(separator: sep)]
        }
    }
    return parts
}

func pyReplace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
    if count < 0 {
        if old.isEmpty {
            return new + s.unicodeScalars.map { String($0) + new }.joined()
        }
        return s.replacingOccurrences(of: old, with: new)
    }
    var result = s
    var done = 0
    var searchStart = result.startIndex
    while done < count, !old.isEmpty, let r = result.range(of: old, range: searchStart..<result.endIndex) {
        result.replaceSubrange(r, with: new)
        searchStart = result.index(r.lowerBound, offsetBy: new.count)
        done += 1
    }
    return result
}

/// Python `str.title()`: uppercase after a non-letter, lowercase after a letter.
func pyTitle(_ s: String) -> String {
    var out = ""
    var previousCased = false
    for c in s {
        if c.isLetter {
            out += previousCased ? c.lowercased() : c.uppercased()
            previousCased = true
        } else {
            out.append(c)
            previousCased = false
        }
    }
    return out
}

func pyCapitalize(_ s: String) -> String {
    guard let first = s.first else { return s }
    return first.uppercased() + s.dropFirst().lowercased()
}

// MARK: - strftime

private let monthNames = ["January", "February", "March", "April", "May", "June", "July", "August",
                          "September", "October", "November", "December"]
private let dayNames = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

/// C/Python `strftime` for the common directives (English names), with glibc's `%-d` no-pad flag.
func strftime(_ format: String, _ date: Date, _ timeZone: TimeZone) -> String {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = timeZone
    let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
    let year = c.year ?? 1970, month = c.month ?? 1, day = c.day ?? 1
    let hour = c.hour ?? 0, minute = c.minute ?? 0, second = c.second ?? 0, weekday = (c.weekday ?? 1) - 1
    let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date) ?? 1
    var out = ""
    let chars = Array(format)
    var i = 0
    func pad(_ v: Int, _ width: Int, _ noPad: Bool) -> String {
        let s = String(v)
        return noPad || s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
    while i < chars.count {
        let ch = chars[i]
        guard ch == "%", i + 1 < chars.count else { out.append(ch); i += 1; continue }
        var noPad = false
        var d = chars[i + 1]
        if d == "-", i + 2 < chars.count { noPad = true; d = chars[i + 2]; i += 1 }
        i += 2
        switch d {
        case "Y": out += String(year)
        case "y": out += pad(year % 100, 2, noPad)
        case "m": out += pad(month, 2, noPad)
        case "d": out += pad(day, 2, noPad)
        case "e": out += noPad ? String(day) : (day < 10 ? " \(day)" : String(day))
        case "H": out += pad(hour, 2, noPad)
        case "I": out += pad(hour % 12 == 0 ? 12 : hour % 12, 2, noPad)
        case "M": out += pad(minute, 2, noPad)
        case "S": out += pad(second, 2, noPad)
        case "p": out += hour < 12 ? "AM" : "PM"
        case "j": out += pad(dayOfYear, 3, noPad)
        case "B": out += monthNames[month - 1]
        case "b", "h": out += String(monthNames[month - 1].prefix(3))
        case "A": out += dayNames[weekday]
        case "a": out += String(dayNames[weekday].prefix(3))
        case "w": out += String(weekday)
        case "F": out += "\(year)-\(pad(month, 2, false))-\(pad(day, 2, false))"
        case "T": out += "\(pad(hour, 2, false)):\(pad(minute, 2, false)):\(pad(second, 2, false))"
        case "Z": out += timeZone.abbreviation(for: date) ?? ""
        case "z":
            let offset = timeZone.secondsFromGMT(for: date) / 60
            out += (offset < 0 ? "-" : "+") + pad(abs(offset) / 60, 2, false) + pad(abs(offset) % 60, 2, false)
        case "%": out += "%"
        default: out += "%" + (noPad ? "-" : "") + String(d)
        }
    }
    return out
}
