// Rule files: KTransformers' YAML shape, parsed into typed rules with line numbers.
//
//   - match:                      # every given condition must hold
//       name: "^model\\.layers\\.\\d+\\.mlp\\."   # regex, searched in the module name
//       class: Linear             # module kind (ModuleKind)
//       layers: "0-11"            # layer range(s): "3", "0-11", "0-3,8-11" or [first, last]
//     replace:
//       class: LinearCPUReference # an operator from the registry, or "default"
//       kwargs:                   # common keys below, plus the operator's own
//         device: cpu             # both phases; or generate_device / prefill_device
//         generate_op: …          # per-phase operator (overrides class)
//         prefill_op: …
//         prefill_threshold: 32   # chunks of more tokens run prefill_op
//     recursive: true             # false: rules stop here; children keep the defaults
//     optional: false             # true: no warning when it places nothing (files for many models)
//
// Every error names the file and line and lists the valid choices; close misspellings get a
// "did you mean".
import Foundation
import Operators
import Yams

public struct InjectionError: Error, CustomStringConvertible, Equatable {
    public let source: String
    public let line: Int?
    public let message: String

    public init(source: String, line: Int?, _ message: String) { self.source = source; self.line = line; self.message = message }

    public var description: String { line.map { "\(source):\($0): \(message)" } ?? "\(source): \(message)" }
}

// MARK: - Typed rules

public struct RuleMatch {
    public var namePattern: String?
    public var name: NSRegularExpression?
    public var kind: ModuleKind?
    /// Inclusive layer ranges; a module matches when it lies in model.layers.N with N in one.
    public var layers: [ClosedRange<Int>]?

    public func matches(name module: String, kind k: ModuleKind) -> Bool {
        if let kind, kind != k { return false }
        if let layers {
            guard let i = layerIndex(module), layers.contains(where: { $0.contains(i) }) else { return false }
        }
        if let name {
            let range = NSRange(module.startIndex..., in: module)
            if name.firstMatch(in: module, range: range) == nil { return false }
        }
        return true
    }

    private func layerIndex(_ module: String) -> Int? {
        let prefix = "model.layers."
        guard module.hasPrefix(prefix) else { return nil }
        return Int(module.dropFirst(prefix.count).prefix { $0.isNumber })
    }
}

public struct Rule {
    /// 1-based position in the file.
    public let index: Int
    public let line: Int
    public let match: RuleMatch
    /// Operator name or "default".
    public let op: String
    public let generateOp: String?
    public let prefillOp: String?
    public let generateDevice: Device?
    public let prefillDevice: Device?
    public let prefillThreshold: Int?
    /// Operator-specific kwargs (validated against the operators' schemas).
    public let kwargs: [String: KwargValue]
    public let recursive: Bool
    /// Placing nothing is fine (no warning, no --strict-rules error): the rule is for modules
    /// only some models have (experts in a file shared by dense and MoE models).
    public let optional: Bool

    public var label: String { "rule \(index) (line \(line))" }
}

public struct RuleFile {
    /// Path or shipped name, used in messages.
    public let source: String
    public let rules: [Rule]

    public static let commonKwargs = ["device", "generate_device", "prefill_device", "generate_op", "prefill_op", "prefill_threshold"]

    public static func load(path: String, registry: OperatorRegistry = .builtin) throws -> RuleFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InjectionError(source: path, line: nil, "cannot read the rules file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw InjectionError(source: path, line: nil, "the rules file is not UTF-8 text")
        }
        return try parse(yaml: text, source: path, registry: registry)
    }

    /// The first line (1-based) where `yaml` nests past what the parser can take safely, with
    /// what: flow collections (`[`, `{`) open more than 100 deep, more than 100 block
    /// indicators (`- `, `? `) starting one line, or an indentation past 400 columns.
    /// Quoted text and comments are skipped; nil when none.
    static func tooDeep(_ yaml: String) -> (line: Int, what: String)? {
        var flow = 0, line = 1
        for text in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            defer { line += 1 }
            let chars = Array(text.utf8)
            var i = 0
            while i < chars.count, chars[i] == UInt8(ascii: " ") { i += 1 }
            if i > 400 { return (line, "indented \(i) columns") }
            var indicators = 0
            while i + 1 < chars.count, chars[i] == UInt8(ascii: "-") || chars[i] == UInt8(ascii: "?"),
                  chars[i + 1] == UInt8(ascii: " ") || chars[i + 1] == UInt8(ascii: "\t") {
                indicators += 1; i += 2
                while i < chars.count, chars[i] == UInt8(ascii: " ") { i += 1 }
            }
            if indicators > 100 { return (line, "\(indicators) block indicators on one line") }
            var quote: UInt8? = nil
            while i < chars.count {
                let c = chars[i]
                if let q = quote {
                    if c == q { quote = nil }
                } else if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                    quote = c
                } else if c == UInt8(ascii: "#") {
                    break
                } else if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") {
                    flow += 1
                    if flow > 100 { return (line, "flow collections open \(flow) deep") }
                } else if c == UInt8(ascii: "]") || c == UInt8(ascii: "}") {
                    flow = max(0, flow - 1)
                }
                i += 1
            }
        }
        return nil
    }

    public static func parse(yaml: String, source: String, registry: OperatorRegistry = .builtin) throws -> RuleFile {
        func fail(_ line: Int?, _ message: String) -> InjectionError { InjectionError(source: source, line: line, message) }
        // The YAML parser recurses once per nesting level: thousands of levels overflow the
        // stack (a crash, not an error), and a rules file needs a handful.
        if let (line, what) = tooDeep(yaml) { throw fail(line, "the YAML nests too deeply (\(what)); a rules file needs a few levels") }
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let e as YamlError {
            throw fail(yamlLine(e), "malformed YAML: " + yamlProblem(e))
        }
        guard let root else { return RuleFile(source: source, rules: []) }
        guard let seq = root.sequence else {
            throw fail(root.mark?.line, "a rules file is a list of rules (`- match: … replace: …`)")
        }
        var rules: [Rule] = []
        for (i, node) in seq.enumerated() {
            rules.append(try parseRule(node, index: i + 1, registry: registry, fail: fail))
        }
        return RuleFile(source: source, rules: rules)
    }

    // MARK: Parsing one rule

    private static func parseRule(_ node: Node, index: Int, registry: OperatorRegistry,
                                  fail: (Int?, String) -> InjectionError) throws -> Rule {
        let line = node.mark?.line ?? 0
        guard let map = node.mapping else { throw fail(line, "rule \(index) must be a mapping with match / replace / recursive / optional") }
        // A key given twice would silently lose one of its values.
        func unique(_ m: Node.Mapping, _ what: String) throws {
            var seen = Set<String>()
            for (k, _) in m where !seen.insert(k.string ?? "").inserted {
                throw fail(k.mark?.line, "key '\(k.string ?? "")' appears twice in \(what)")
            }
        }
        func keys(_ m: Node.Mapping, allowed: [String], what: String) throws -> [(String, Node, Int)] {
            try unique(m, what)
            return try m.map { k, v in
                let key = k.string ?? ""
                guard allowed.contains(key) else {
                    throw fail(k.mark?.line, "unknown key '\(key)' in \(what); valid: \(allowed.joined(separator: ", "))"
                               + didYouMean(key, in: allowed))
                }
                return (key, v, k.mark?.line ?? line)
            }
        }
        func scalar(_ v: Node, _ key: String, _ l: Int) throws -> String {
            guard let s = v.scalar?.string else { throw fail(l, "'\(key)' must be a single value") }
            return s
        }

        var match = RuleMatch(), sawMatch = false
        var op = "default"
        var recursive = true, optional = false
        var kwargs: [(String, Node, Int)] = []
        for (key, v, l) in try keys(map, allowed: ["match", "replace", "recursive", "optional"], what: "rule \(index)") {
            switch key {
            case "match":
                sawMatch = true
                guard let m = v.mapping else { throw fail(l, "'match' must be a mapping with name, class and/or layers") }
                for (mk, mv, ml) in try keys(m, allowed: ["name", "class", "layers"], what: "match") {
                    switch mk {
                    case "name":
                        let pattern = try scalar(mv, mk, ml)
                        do { match.name = try NSRegularExpression(pattern: pattern) } catch {
                            throw fail(ml, "invalid regex '\(pattern)' in match.name (ICU syntax; escape dots as \\\\.)")
                        }
                        match.namePattern = pattern
                    case "class":
                        let k = try scalar(mv, mk, ml)
                        guard let kind = ModuleKind(rawValue: k) else {
                            let valid = ModuleKind.allCases.map(\.rawValue)
                            throw fail(ml, "unknown module class '\(k)'; valid: \(valid.joined(separator: ", "))" + didYouMean(k, in: valid))
                        }
                        match.kind = kind
                    default:
                        match.layers = try parseLayers(mv, line: ml, fail: fail)
                    }
                }
                if match.name == nil && match.kind == nil && match.layers == nil {
                    throw fail(l, "rule \(index): 'match' needs name, class or layers")
                }
            case "replace":
                guard let r = v.mapping else { throw fail(l, "'replace' must be a mapping with class and/or kwargs") }
                for (rk, rv, rl) in try keys(r, allowed: ["class", "kwargs"], what: "replace") {
                    if rk == "class" {
                        op = try scalar(rv, rk, rl)
                        try checkOperator(op, registry: registry, line: rl, fail: fail)
                    } else {
                        guard let km = rv.mapping else { throw fail(rl, "'kwargs' must be a mapping") }
                        try unique(km, "kwargs")
                        kwargs = km.map { ($0.key.string ?? "", $0.value, $0.key.mark?.line ?? rl) }
                    }
                }
            case "optional":
                guard let b = v.bool else { throw fail(l, "'optional' must be true or false") }
                optional = b
            default:
                guard let b = v.bool else { throw fail(l, "'recursive' must be true or false") }
                recursive = b
            }
        }
        guard sawMatch else { throw fail(line, "rule \(index) has no 'match'") }

        // Common kwargs first: they name the operators whose schemas the rest follow.
        var generateOp: String?, prefillOp: String?, generateDevice: Device?, prefillDevice: Device?, threshold: Int?
        let deviceSpec = KwargSpec("device", .device, help: "")
        for (k, v, l) in kwargs where RuleFile.commonKwargs.contains(k) {
            let text = try scalar(v, k, l)
            func device() throws -> Device {
                switch deviceSpec.parse(text) {
                case let .success(.device(d)): return d
                case let .failure(e): throw fail(l, e.message.replacingOccurrences(of: "for device", with: "for \(k)"))
                default: fatalError("unreachable")
                }
            }
            switch k {
            case "device": let d = try device(); generateDevice = d; prefillDevice = d
            case "generate_device": generateDevice = try device()
            case "prefill_device": prefillDevice = try device()
            case "generate_op": try checkOperator(text, registry: registry, line: l, fail: fail); generateOp = text
            case "prefill_op": try checkOperator(text, registry: registry, line: l, fail: fail); prefillOp = text
            default:
                guard let n = Int(text), n >= 0 else { throw fail(l, "prefill_threshold must be a token count ≥ 0, got '\(text)'") }
                threshold = n
            }
        }
        let ops = Set([op, generateOp ?? op, prefillOp ?? op]).filter { $0 != "default" }
        let specs = ops.sorted().compactMap { registry.descriptor($0) }.flatMap(\.kwargs)
        var typed: [String: KwargValue] = [:]
        for (k, v, l) in kwargs where !RuleFile.commonKwargs.contains(k) {
            guard let spec = specs.first(where: { $0.name == k }) else {
                let valid = RuleFile.commonKwargs + specs.map(\.name)
                let opsText = ops.isEmpty ? "default operators" : ops.sorted().joined(separator: ", ")
                throw fail(l, "unknown kwarg '\(k)' for \(opsText); valid: \(valid.joined(separator: ", "))" + didYouMean(k, in: valid))
            }
            switch spec.parse(try scalar(v, k, l)) {
            case let .success(value): typed[k] = value
            case let .failure(e): throw fail(l, e.message)
            }
        }
        // A class filter must suit the operators.
        if let kind = match.kind {
            for name in ops.sorted() {
                if let d = registry.descriptor(name), !d.kinds.contains(kind) {
                    let valid = registry.descriptors.filter { $0.kinds.contains(kind) }.map(\.name)
                    throw fail(line, "rule \(index): \(name) does not run \(kind.rawValue) modules; operators for \(kind.rawValue): "
                               + valid.joined(separator: ", "))
                }
            }
        }
        return Rule(index: index, line: line, match: match, op: op, generateOp: generateOp, prefillOp: prefillOp,
                    generateDevice: generateDevice, prefillDevice: prefillDevice, prefillThreshold: threshold,
                    kwargs: typed, recursive: recursive, optional: optional)
    }

    private static func checkOperator(_ name: String, registry: OperatorRegistry, line: Int, fail: (Int?, String) -> InjectionError) throws {
        guard name == "default" || registry.descriptor(name) != nil else {
            let valid = ["default"] + registry.names
            throw fail(line, "unknown operator '\(name)'; valid: \(valid.joined(separator: ", "))" + didYouMean(name, in: valid))
        }
    }

    private static func parseLayers(_ v: Node, line: Int, fail: (Int?, String) -> InjectionError) throws -> [ClosedRange<Int>] {
        let bad = fail(line, "layers must be \"N\", \"A-B\", \"A-B,C-D\" or [first, last] with first ≤ last")
        if let seq = v.sequence {
            let ints = seq.compactMap(\.int)
            guard ints.count == 2, seq.count == 2, ints[0] <= ints[1], ints[0] >= 0 else { throw bad }
            return [ints[0]...ints[1]]
        }
        guard let text = v.scalar?.string, !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw bad }
        return try text.split(separator: ",").map { part in
            let ends = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(ends.count), let a = ends.first!, let b = ends.last!, a >= 0, a <= b else { throw bad }
            return a...b
        }
    }
}

// MARK: - YAML errors

private func yamlLine(_ e: YamlError) -> Int? {
    switch e {
    case let .scanner(_, _, mark, _), let .parser(_, _, mark, _), let .composer(_, _, mark, _): return mark.line
    default: return nil
    }
}

private func yamlProblem(_ e: YamlError) -> String {
    switch e {
    case let .scanner(context, problem, _, _), let .parser(context, problem, _, _), let .composer(context, problem, _, _):
        return problem + (context.map { " (\($0.text))" } ?? "")
    default: return String(describing: e)
    }
}
