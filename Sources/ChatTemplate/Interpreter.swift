// Interpreter: walks the AST with a scope chain and appends output to a string. Semantics follow
// Jinja2 on Python: a `for` body gets its own scope (so `set` inside a loop does not leak out;
// templates use `namespace()` for that), `if` does not; macros run in a fresh scope over the
// template's top level; Undefined renders as "", is falsy, iterates as empty, and raises when
// an attribute of it is read. Operators use Python rules (int/float promotion, `//` floors,
// `%` takes the divisor's sign, str/list `+` and `*`), with overflow and size checks so that no
// template can trap or exhaust memory. Errors raised inside helpers (`RuntimeFailure`) get the
// source position of the innermost expression that failed.

import Foundation

/// An error message without a position; `Interpreter.eval` attaches one.
struct RuntimeFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Thrown by `raise_exception(msg)`; passes through position wrapping untouched.
struct RaisedException: Error {
    let message: String
}

final class Scope {
    var variables: [String: JinjaValue] = [:]
    let parent: Scope?
    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> JinjaValue? {
        var scope: Scope? = self
        while let s = scope {
            if let v = s.variables[name] { return v }
            scope = s.parent
        }
        return nil
    }
}

enum Flow { case normal, breakLoop, continueLoop }

/// Limits that keep hostile templates from exhausting time or memory.
enum Limits {
    static let maxCallDepth = 64
    static let maxCollection = 1_000_000
    static let maxOutput = 64 << 20
    static let maxSteps = 20_000_000
}

final class Interpreter {
    let root: Scope
    let now: Date
    let timeZone: TimeZone
    var callDepth = 0
    var steps = 0

    init(globals: [String: JinjaValue], now: Date, timeZone: TimeZone) {
        root = Scope(parent: nil)
        root.variables = globals
        self.now = now
        self.timeZone = timeZone
    }

    // MARK: Statements

    func run(_ nodes: [Node]) throws -> String {
        var out = ""
        _ = try exec(nodes, root, &out)
        return out
    }

    private func tick() throws {
        steps += 1
        if steps > Limits.maxSteps { throw RuntimeFailure("template took too many steps") }
    }

    func exec(_ nodes: [Node], _ scope: Scope, _ out: inout String) throws -> Flow {
        for node in nodes {
            try tick()
            if out.utf8.count > Limits.maxOutput { throw RuntimeFailure("template output too large") }
            switch node {
            case .text(let s):
                out += s
            case .output(let e):
                out += try eval(e, scope).pyStr
            case .conditional(let branches, let otherwise):
                var taken = false
                for (condition, body) in branches where try eval(condition, scope).truthy {
                    taken = true
                    let flow = try exec(body, scope, &out)
                    if flow != .normal { return flow }
                    break
                }
                if !taken {
                    let flow = try exec(otherwise, scope, &out)
                    if flow != .normal { return flow }
                }
            case .forLoop(let targets, let iterable, let filter, let body, let otherwise, let p):
                let flow = try execFor(targets, iterable, filter, body, otherwise, p, scope, &out)
                if flow != .normal { return flow }
            case .set(let target, let e, let p):
                let value = try eval(e, scope)
                try withPosition(p) { try assign(target, value, scope) }
            case .setBlock(let name, let filters, let body):
                var captured = ""
                _ = try exec(body, scope, &captured)
                scope.variables[name] = try applyFilters(filters, to: .string(captured), scope)
            case .macro(let def):
                scope.variables[def.name] = .function(JinjaFunction(.macro(def)))
            case .filterBlock(let filters, let body):
                var captured = ""
                let flow = try exec(body, scope, &captured)
                out += try applyFilters(filters, to: .string(captured), scope).pyStr
                if flow != .normal { return flow }
            case .loopBreak: return .breakLoop
            case .loopContinue: return .continueLoop
            }
        }
        return .normal
    }

    private func applyFilters(_ filters: [(String, [Expr], [Keyword], SourcePosition)], to value: JinjaValue, _ scope: Scope) throws -> JinjaValue {
        var v = value
        for (name, args, kwargs, p) in filters {
            let a = try args.map { try eval($0, scope) }
            let k = try kwargs.map { ($0.name, try eval($0.value, scope)) }
            v = try withPosition(p) { try applyFilter(name, v, a, k, p) }
        }
        return v
    }

    private func assign(_ target: SetTarget, _ value: JinjaValue, _ scope: Scope) throws {
        switch target {
        case .names(let names) where names.count == 1:
            scope.variables[names[0]] = value
        case .names(let names):
            let items = try unpack(value, count: names.count)
            for (n, v) in zip(names, items) { scope.variables[n] = v }
        case .attribute(let variable, let attribute):
            guard case .namespace(let ns)? = scope.lookup(variable) else {
                throw RuntimeFailure("cannot assign attribute on non-namespace object '\(variable)'")
            }
            ns.attributes[attribute] = value
        }
    }

    private func unpack(_ value: JinjaValue, count: Int) throws -> [JinjaValue] {
        let items = try iterate(value)
        guard items.count == count else {
            throw RuntimeFailure("cannot unpack \(items.count) values into \(count) names")
        }
        return items
    }

    private func execFor(_ targets: [String], _ iterable: Expr, _ filter: Expr?, _ body: [Node], _ otherwise: [Node],
                         _ p: SourcePosition, _ scope: Scope, _ out: inout String) throws -> Flow {
        let source = try eval(iterable, scope)
        var items = try withPosition(iterable.position) { try iterate(source) }
        let loopScope = Scope(parent: scope)
        func bind(_ item: JinjaValue) throws {
            if targets.count == 1 {
                loopScope.variables[targets[0]] = item
            } else {
                let parts = try withPosition(p) { try unpack(item, count: targets.count) }
                for (n, v) in zip(targets, parts) { loopScope.variables[n] = v }
            }
        }
        if let filter {
            var kept: [JinjaValue] = []
            for item in items {
                try tick()
                try bind(item)
                if try eval(filter, loopScope).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty { return try exec(otherwise, scope, &out) }
        let n = items.count
        for (i, item) in items.enumerated() {
            try bind(item)
            var loop = JinjaDict()
            loop["index"] = .int(i + 1)
            loop["index0"] = .int(i)
            loop["revindex"] = .int(n - i)
            loop["revindex0"] = .int(n - i - 1)
            loop["first"] = .bool(i == 0)
            loop["last"] = .bool(i == n - 1)
            loop["length"] = .int(n)
            loop["depth"] = .int(1)
            loop["depth0"] = .int(0)
            loop["previtem"] = i > 0 ? items[i - 1] : .undefined
            loop["nextitem"] = i + 1 < n ? items[i + 1] : .undefined
            loop["cycle"] = .function(JinjaFunction(.cycle(i)))
            loopScope.variables["loop"] = .dict(loop)
            let flow = try exec(body, loopScope, &out)
            if flow == .breakLoop { break }
        }
        return .normal
    }

    /// Python iteration: lists, dict keys, string characters; Undefined is empty.
    func iterate(_ value: JinjaValue) throws -> [JinjaValue] {
        switch value {
        case .array(let a): return a
        case .dict(let d): return d.keys.map { .string($0) }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        case .namespace(let ns): return ns.attributes.keys.map { .string($0) }
        default: throw RuntimeFailure("'\(value.typeName)' object is not iterable")
        }
    }

    // MARK: Expressions

    func withPosition<T>(_ p: SourcePosition, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let failure as RuntimeFailure {
            throw ChatTemplateError.runtime(message: failure.message, line: p.line, column: p.column)
        }
    }

    func eval(_ e: Expr, _ scope: Scope) throws -> JinjaValue {
        try tick()
        return try withPosition(e.position) { try evalUnpositioned(e, scope) }
    }

    private func evalUnpositioned(_ e: Expr, _ scope: Scope) throws -> JinjaValue {
        switch e {
        case .literal(let v, _): return v
        case .name(let n, _): return scope.lookup(n) ?? .undefined
        case .list(let items, _), .tuple(let items, _):
            return .array(try items.map { try eval($0, scope) })
        case .dict(let pairs, _):
            var d = JinjaDict()
            for (k, v) in pairs {
                let key = try eval(k, scope)
                d[key.pyStr] = try eval(v, scope)
            }
            return .dict(d)
        case .attribute(let base, let name, _):
            return try getAttribute(try eval(base, scope), name)
        case .item(let base, let index, _):
            return try getItem(try eval(base, scope), try eval(index, scope))
        case .slice(let base, let a, let b, let c, _):
            let v = try eval(base, scope)
            return try slice(v, try a.map { try eval($0, scope) }, try b.map { try eval($0, scope) }, try c.map { try eval($0, scope) })
        case .call(let callee, let args, let kwargs, let p):
            let a = try args.map { try eval($0, scope) }
            let k = try kwargs.map { ($0.name, try eval($0.value, scope)) }
            if case .attribute(let base, let name, _) = callee {
                let receiver = try eval(base, scope)
                if let result = try callMethod(receiver, name, a, k) { return result }
            }
            return try call(try eval(callee, scope), a, k, p)
        case .filter(let base, let name, let args, let kwargs, let p):
            let v = try eval(base, scope)
            let a = try args.map { try eval($0, scope) }
            let k = try kwargs.map { ($0.name, try eval($0.value, scope)) }
            return try applyFilter(name, v, a, k, p)
        case .test(let base, let name, let args, let negated, let p):
            let v = try eval(base, scope)
            let a = try args.map { try eval($0, scope) }
            let result = try applyTest(name, v, a, p)
            return .bool(result != negated)
        case .unary(let op, let operand, _):
            let v = try eval(operand, scope)
            switch op {
            case "not": return .bool(!v.truthy)
            case "-":
                if case .int(let i) = v { guard i != Int.min else { throw RuntimeFailure("integer overflow") }; return .int(-i) }
                if case .bool(let b) = v { return .int(b ? -1 : 0) }
                if case .double(let d) = v { return .double(-d) }
                throw RuntimeFailure("bad operand type for unary -: '\(v.typeName)'")
            default:
                guard v.number != nil else { throw RuntimeFailure("bad operand type for unary +: '\(v.typeName)'") }
                return v
            }
        case .binary(let op, let l, let r, _):
            if op == "and" {
                let left = try eval(l, scope)
                return left.truthy ? try eval(r, scope) : left
            }
            if op == "or" {
                let left = try eval(l, scope)
                return left.truthy ? left : try eval(r, scope)
            }
            return try binary(op, try eval(l, scope), try eval(r, scope))
        case .compare(let first, let ops, _):
            var left = try eval(first, scope)
            for (op, rightExpr) in ops {
                let right = try eval(rightExpr, scope)
                if !(try compare(op, left, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let then, let test, let otherwise, _):
            if try eval(test, scope).truthy { return try eval(then, scope) }
            return try otherwise.map { try eval($0, scope) } ?? .undefined
        }
    }

    // MARK: Attribute and item access

    func getAttribute(_ value: JinjaValue, _ name: String) throws -> JinjaValue {
        switch value {
        case .undefined: throw RuntimeFailure("'\(name)' is undefined: attribute of an undefined value")
        case .dict(let d):
            if dictMethods.contains(name) { return .function(JinjaFunction(.method(value, name))) }
            return d[name] ?? .undefined
        case .namespace(let ns): return ns.attributes[name] ?? .undefined
        case .string:
            return stringMethods.contains(name) ? .function(JinjaFunction(.method(value, name))) : .undefined
        case .array:
            return listMethods.contains(name) ? .function(JinjaFunction(.method(value, name))) : .undefined
        default: return .undefined
        }
    }

    func getItem(_ value: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        switch (value, key) {
        case (.undefined, _): throw RuntimeFailure("cannot index an undefined value")
        case (.dict(let d), .string(let k)): return d[k] ?? .undefined
        case (.dict, _): return .undefined
        case (.namespace(let ns), .string(let k)): return ns.attributes[k] ?? .undefined
        case (.array(let a), _):
            guard let i = key.integer else { return .undefined }
            let j = i < 0 ? i + a.count : i
            return (0..<a.count).contains(j) ? a[j] : .undefined
        case (.string(let s), _):
            guard let i = key.integer else { return .undefined }
            let scalars = Array(s.unicodeScalars)
            let j = i < 0 ? i + scalars.count : i
            return (0..<scalars.count).contains(j) ? .string(String(scalars[j])) : .undefined
        default:
            if case .string(let k) = key { return try getAttribute(value, k) }
            return .undefined
        }
    }

    func slice(_ value: JinjaValue, _ start: JinjaValue?, _ stop: JinjaValue?, _ step: JinjaValue?) throws -> JinjaValue {
        func bound(_ v: JinjaValue?) throws -> Int? {
            guard let v, !v.isNone, !v.isUndefined else { return nil }
            guard let i = v.integer else { throw RuntimeFailure("slice indices must be integers or None") }
            return i
        }
        let stepValue = try bound(step) ?? 1
        guard stepValue != 0 else { throw RuntimeFailure("slice step cannot be zero") }
        func indices(_ count: Int) throws -> [Int] {
            var lo = try bound(start), hi = try bound(stop)
            if stepValue > 0 {
                lo = lo.map { $0 < 0 ? max(0, $0 + count) : min($0, count) } ?? 0
                hi = hi.map { $0 < 0 ? max(0, $0 + count) : min($0, count) } ?? count
                return stride(from: lo!, to: hi!, by: stepValue).map { $0 }
            }
            lo = lo.map { $0 < 0 ? max(-1, $0 + count) : min($0, count - 1) } ?? count - 1
            hi = hi.map { $0 < 0 ? max(-1, $0 + count) : min($0, count - 1) } ?? -1
            return stride(from: lo!, to: hi!, by: stepValue).map { $0 }
        }
        switch value {
        case .array(let a): return .array(try indices(a.count).map { a[$0] })
        case .string(let s):
            let scalars = Array(s.unicodeScalars)
            var out = String.UnicodeScalarView()
            for i in try indices(scalars.count) { out.append(scalars[i]) }
            return .string(String(out))
        case .undefined: throw RuntimeFailure("cannot slice an undefined value")
        default: throw RuntimeFailure("'\(value.typeName)' object is not subscriptable")
        }
    }

    // MARK: Calls

    func call(_ callee: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)], _ p: SourcePosition) throws -> JinjaValue {
        guard case .function(let f) = callee else {
            if callee.isUndefined { throw RuntimeFailure("call of an undefined value") }
            throw RuntimeFailure("'\(callee.typeName)' object is not callable")
        }
        switch f.kind {
        case .builtin(let name): return try callGlobal(name, args, kwargs)
        case .method(let receiver, let name):
            guard let r = try callMethod(receiver, name, args, kwargs) else { throw RuntimeFailure("unknown method '\(name)'") }
            return r
        case .cycle(let index):
            guard !args.isEmpty else { throw RuntimeFailure("no items for cycling given") }
            return args[index % args.count]
        case .macro(let def): return try callMacro(def, args, kwargs)
        }
    }

    private func callMacro(_ def: MacroDefinition, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        guard callDepth < Limits.maxCallDepth else { throw RuntimeFailure("macro recursion too deep") }
        callDepth += 1
        defer { callDepth -= 1 }
        let scope = Scope(parent: root)
        guard args.count <= def.parameters.count else { throw RuntimeFailure("macro '\(def.name)' takes \(def.parameters.count) arguments") }
        let named = Dictionary(kwargs, uniquingKeysWith: { $1 })
        for (i, param) in def.parameters.enumerated() {
            if i < args.count {
                scope.variables[param.name] = args[i]
            } else if let v = named[param.name] {
                scope.variables[param.name] = v
            } else if let d = param.defaultValue {
                scope.variables[param.name] = try eval(d, scope)
            } else {
                scope.variables[param.name] = .undefined
            }
        }
        var out = ""
        _ = try exec(def.body, scope, &out)
        return .string(out)
    }
}
