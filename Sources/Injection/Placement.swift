// Placement: rules + module tree → for every module its prefill and generate operators, their
// devices, the prefill threshold, and its weights (type, bytes); totals per device. No weights
// are read. Semantics (docs/writing-rules.md):
//
// - Modules are visited in pre-order; the first rule whose match holds places the module.
// - A module no rule places (or below a `recursive: false` rule) runs the registry's default
//   operator for its kind, on the devices and threshold of its parent.
// - `class: default` (or no class) keeps the default operator and only sets devices / kwargs.
// - An operator must run the module's kind and device; devices must exist on this machine.
// - Every attention operator must read the same KV cache element (one cache per session).
// - A rule that places nothing is a warning, an error with `strict` (unless it is `optional`).
import Core
import Foundation
import Models
import Operators

public struct PlacedModule: Sendable {
    public let name: String
    public let kind: ModuleKind
    public let depth: Int
    public let prefillOp: String
    public let generateOp: String
    public let prefillDevice: Device
    public let generateDevice: Device
    /// Chunks of more than this many tokens run `prefillOp`.
    public let prefillThreshold: Int
    /// Operator-specific kwargs with defaults filled in.
    public let kwargs: [String: KwargValue]
    public let tensors: [ModuleTensor]
    public let tied: Bool
    /// The rule that placed it (1-based), nil for defaults.
    public let rule: Int?

    public var weightType: GGMLType? { (tensors.first { $0.name.hasSuffix(".weight") } ?? tensors.first)?.type }
    public var bytes: Int { tensors.reduce(0) { $0 + $1.bytes } }
}

public struct PlacementPlan: Sendable {
    public let architecture: String
    /// Where the rules came from (a path, or "rules/cpu.yaml (shipped)").
    public let rulesSource: String
    public let modules: [PlacedModule]
    public let warnings: [String]
    /// KV cache bytes per context position, per device (each attention module's cache lives
    /// on its generate device, in its operator's element type).
    public let kvBytesPerPosition: [Device: Int]
    /// Context the totals assume for the KV cache: min(trained context, 4096), as a load does
    /// without --ctx-size.
    public let defaultContext: Int

    /// Weight bytes resident per device (each tensor counted once per device it is needed on).
    public var bytesPerDevice: [(device: Device, bytes: Int)] {
        var seen: [Device: Set<String>] = [:], totals: [Device: Int] = [:]
        for m in modules {
            for d in Set([m.prefillDevice, m.generateDevice]) {
                for t in m.tensors where seen[d, default: []].insert(t.name).inserted { totals[d, default: 0] += t.bytes }
            }
        }
        return totals.keys.sorted().map { ($0, totals[$0]!) }
    }

    public func module(_ name: String) -> PlacedModule? { modules.first { $0.name == name } }
}

public enum Placement {
    /// Devices present: the CPU and the CUDA devices found at run time (Device.available).
    public static var availableDevices: [Device] { Device.available }

    public static func plan(tree: ModuleTree, rules: RuleFile, registry: OperatorRegistry = .builtin,
                            devices: [Device] = availableDevices, strict: Bool = false,
                            rulesSource: String? = nil) throws -> PlacementPlan {
        let source = rulesSource ?? rules.source
        func fail(_ rule: Rule?, _ message: String) -> InjectionError {
            InjectionError(source: rules.source, line: rule?.line, message)
        }
        var used = Set<Int>()
        var placed: [PlacedModule] = []

        func checkDevice(_ d: Device, _ rule: Rule?, _ module: String) throws {
            guard devices.contains(d) else {
                let why = d.kind == .cuda ? "no such CUDA device here (`swiftkt devices` shows what was found)" : "not present"
                throw fail(rule, "\(rule?.label ?? "placement") puts \(module) on \(d): \(why); devices here: "
                           + devices.map(\.description).joined(separator: ", "))
            }
        }
        func resolve(_ name: String, _ node: ModuleNode, _ device: Device, _ rule: Rule?) throws -> OperatorDescriptor {
            let d: OperatorDescriptor
            if name == "default" {
                guard let def = registry.defaultOperator(for: node.kind, on: device) else {
                    throw fail(rule, "no default operator for \(node.kind.rawValue) on \(device) (module \(node.name))")
                }
                d = def
            } else {
                d = registry.descriptor(name)!  // checked when parsing
            }
            guard d.kinds.contains(node.kind) else {
                let valid = registry.descriptors.filter { $0.kinds.contains(node.kind) }.map(\.name)
                throw fail(rule, "\(rule?.label ?? "placement") matches \(node.name) (\(node.kind.rawValue)) but \(d.name) runs "
                           + d.kinds.map(\.rawValue).sorted().joined(separator: ", ")
                           + "; add `class: …` to the match or use one of: " + valid.joined(separator: ", "))
            }
            guard d.devices.contains(device.kind) else {
                throw fail(rule, "\(d.name) does not run on \(device) (module \(node.name)); it runs on "
                           + d.devices.map(\.rawValue).sorted().joined(separator: ", "))
            }
            return d
        }

        func walk(_ node: ModuleNode, depth: Int, prefillDevice: Device, generateDevice: Device, threshold: Int,
                  blocked: Bool) throws {
            let rule = blocked ? nil : rules.rules.first { $0.match.matches(name: node.name, kind: node.kind) }
            var pd = prefillDevice, gd = generateDevice, th = threshold
            var pre = "default", gen = "default", kwargs: [String: KwargValue] = [:]
            if let r = rule {
                used.insert(r.index)
                pd = r.prefillDevice ?? pd; gd = r.generateDevice ?? gd; th = r.prefillThreshold ?? th
                pre = r.prefillOp ?? r.op; gen = r.generateOp ?? r.op; kwargs = r.kwargs
            }
            try checkDevice(pd, rule, node.name)
            try checkDevice(gd, rule, node.name)
            let preD = try resolve(pre, node, pd, rule), genD = try resolve(gen, node, gd, rule)
            // Defaults of both operators' schemas, the rule's values on top.
            var merged = preD.resolved([:]).merging(genD.resolved([:])) { a, _ in a }
            merged.merge(kwargs) { _, b in b }
            placed.append(PlacedModule(name: node.name, kind: node.kind, depth: depth, prefillOp: preD.name, generateOp: genD.name,
                                       prefillDevice: pd, generateDevice: gd, prefillThreshold: th, kwargs: merged,
                                       tensors: node.tensors, tied: node.tied, rule: rule?.index))
            let stop = blocked || rule?.recursive == false
            for c in node.children {
                try walk(c, depth: depth + 1, prefillDevice: pd, generateDevice: gd, threshold: th, blocked: stop)
            }
        }
        for root in tree.roots {
            try walk(root, depth: 0, prefillDevice: .cpu, generateDevice: .cpu, threshold: 1, blocked: false)
        }

        // Block-sparse attention keeps anchors of the keys it sees written: it must see every write.
        for m in placed where m.kind == .attention && [m.prefillOp, m.generateOp].contains("AttentionCPUBlockSparse") {
            guard m.prefillOp == m.generateOp, m.prefillDevice == m.generateDevice else {
                throw InjectionError(source: rules.source, line: m.rule.flatMap { i in rules.rules.first { $0.index == i }?.line },
                                     "\(m.name): AttentionCPUBlockSparse keeps anchors of the keys written to the cache, so it must "
                                     + "run the module's prefill too (it runs long chunks densely itself); drop prefill_op / generate_op")
            }
        }
        // One KV cache per session: attention operators must agree on its element.
        var storages: [String: String] = [:]
        for m in placed where m.kind == .attention {
            for op in [m.prefillOp, m.generateOp] {
                if let a = registry.descriptor(op)?.make(m.kwargs) as? any AttentionOperator, storages[a.storage.rawValue] == nil {
                    storages[a.storage.rawValue] = "\(m.name) (\(op))"
                }
            }
        }
        if storages.count > 1 {
            throw InjectionError(source: rules.source, line: nil,
                                 "attention operators disagree on the KV cache element: "
                                 + storages.sorted { $0.key < $1.key }.map { "\($0.key) for \($0.value)" }.joined(separator: ", ")
                                 + "; one session has one cache, so use one kind (AttentionCPUFlashF16: f16, AttentionCPUExact: f32)")
        }

        var kv: [Device: Int] = [:]
        let hp = tree.hyperparameters
        // MLA (DeepSeek's kv_a_proj_with_mqa) caches its values zero-padded to the key width, on
        // the CPU and the GPU alike (Models/MLA.swift).
        let mla = tree.flattened.contains { $0.node.name.hasSuffix(".self_attn.kv_a_proj_with_mqa") }
        let widths = hp.headCountKV * (hp.headDim + (mla ? hp.headDim : hp.valueDim))
        for m in placed where m.kind == .attention {
            if let a = registry.descriptor(m.generateOp)?.make(m.kwargs) as? any AttentionOperator {
                kv[m.generateDevice, default: 0] += widths * (a.storage == .f16 ? 2 : 4)
            } else if m.generateDevice.kind == .cuda {
                // The CUDA backend keeps an f16 cache on the device.
                kv[m.generateDevice, default: 0] += widths * 2
            }
        }

        var warnings: [String] = []
        for r in rules.rules where !used.contains(r.index) && !r.optional {
            let text = "\(rules.source):\(r.line): rule \(r.index) matches no module of this \(tree.architecture) model"
            if strict { throw InjectionError(source: rules.source, line: r.line, "rule \(r.index) matches no module (--strict)") }
            warnings.append(text)
        }
        return PlacementPlan(architecture: tree.architecture, rulesSource: source, modules: placed, warnings: warnings,
                             kvBytesPerPosition: kv, defaultContext: min(hp.contextLength, 4096))
    }

    /// The operators to run, per module name (Linear, LMHead, Router, Attention, MLP, Experts modules).
    public static func binding(for plan: PlacementPlan, registry: OperatorRegistry = .builtin) throws -> OperatorBinding {
        func make<Op>(_ name: String, _ m: PlacedModule, as: Op.Type) throws -> Op {
            guard let op = registry.descriptor(name)?.make(m.kwargs) as? Op else {
                throw InjectionError(source: plan.rulesSource, line: nil, "\(name) cannot run \(m.name) (\(m.kind.rawValue))")
            }
            return op
        }
        var b = OperatorBinding(linear: LinearCPUQuantized(), attention: AttentionCPUFlashF16(), mlp: MLPCPU())
        if let a = plan.modules.first(where: { $0.kind == .attention && $0.generateDevice.kind == .cpu }) {
            b.fallbackAttention = PhaseOperators(try make(a.generateOp, a, as: (any AttentionOperator).self))
        }
        // Modules on a GPU in both phases run in the CUDA backend (ModelsCUDA), not through the binding.
        for m in plan.modules where !(m.prefillDevice.kind == .cuda && m.generateDevice.kind == .cuda) {
            switch m.kind {
            case .linear, .lmHead, .router:
                b.linear[m.name] = PhaseOperators(prefill: try make(m.prefillOp, m, as: (any LinearOperator).self),
                                                  generate: try make(m.generateOp, m, as: (any LinearOperator).self),
                                                  prefillThreshold: m.prefillThreshold)
            case .attention:
                b.attention[m.name] = PhaseOperators(prefill: try make(m.prefillOp, m, as: (any AttentionOperator).self),
                                                     generate: try make(m.generateOp, m, as: (any AttentionOperator).self),
                                                     prefillThreshold: m.prefillThreshold)
            case .mlp:
                b.mlp[m.name] = PhaseOperators(prefill: try make(m.prefillOp, m, as: (any MLPOperator).self),
                                               generate: try make(m.generateOp, m, as: (any MLPOperator).self),
                                               prefillThreshold: m.prefillThreshold)
            case .experts:
                b.experts[m.name] = PhaseOperators(prefill: try make(m.prefillOp, m, as: (any ExpertsOperator).self),
                                                   generate: try make(m.generateOp, m, as: (any ExpertsOperator).self),
                                                   prefillThreshold: m.prefillThreshold)
            default: break
            }
        }
        return b
    }
}
