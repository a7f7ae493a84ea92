// Choosing the rules a model runs with: the user's `--rules FILE`, else a shipped file picked
// from the architecture and the devices present (`--kernels reference` picks the reference
// file). The choice is described in words for the log line.
import Foundation
import Models
import Operators

public enum ShippedRules {
    /// Shipped file names (rules/*.yaml).
    public static var names: [String] { ShippedRuleTexts.files.keys.sorted() }

    public static func text(_ name: String) -> String? { ShippedRuleTexts.files[name] }

    public static func load(_ name: String, registry: OperatorRegistry = .builtin) throws -> RuleFile {
        guard let text = text(name) else {
            throw InjectionError(source: name, line: nil, "no shipped rule file '\(name)'; shipped: \(names.joined(separator: ", "))"
                                 + didYouMean(name, in: names))
        }
        return try RuleFile.parse(yaml: text, source: "rules/" + name, registry: registry)
    }

    /// The shipped file for an architecture on the devices present. Every dense architecture
    /// uses cpu.yaml while the CPU is the only device.
    public static func defaultName(architecture: String, devices: [Device], reference: Bool = false) -> String {
        reference ? "cpu-reference.yaml" : "cpu.yaml"
    }
}

/// The rules a load uses and why.
public struct RuleChoice {
    public let file: RuleFile
    /// "rules/cpu.yaml (shipped default for llama on cpu)" or the user's path.
    public let description: String

    /// `path` (the user's `--rules`) wins; else the shipped file for the architecture,
    /// devices and kernel shorthand (`reference` → cpu-reference.yaml).
    public static func choose(path: String?, architecture: String, devices: [Device] = Placement.availableDevices,
                              reference: Bool = false, registry: OperatorRegistry = .builtin) throws -> RuleChoice {
        if let path {
            return RuleChoice(file: try RuleFile.load(path: path, registry: registry), description: "\(path) (--rules)")
        }
        let name = ShippedRules.defaultName(architecture: architecture, devices: devices, reference: reference)
        let why = reference ? "shipped, --kernels reference" : "shipped default for \(architecture) on "
            + devices.map(\.description).joined(separator: "+")
        return RuleChoice(file: try ShippedRules.load(name, registry: registry), description: "rules/\(name) (\(why))")
    }
}

// MARK: - Printing a plan

extension PlacementPlan {
    /// module → prefill op / generate op → device → weight type → bytes, then totals per device.
    public var text: String {
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
        func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        var out = "Placement (\(architecture), rules \(rulesSource))\n"
        let rows: [(String, String, String, String, String, String)] = modules.map { m in
            let name = String(repeating: "  ", count: m.depth) + m.name
            var ops = m.prefillOp == m.generateOp ? m.generateOp : "\(m.prefillOp) / \(m.generateOp) (>\(m.prefillThreshold))"
            if !m.kwargs.isEmpty { ops += " {" + m.kwargs.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}" }
            let dev = m.prefillDevice == m.generateDevice ? m.generateDevice.description
                : "\(m.prefillDevice) / \(m.generateDevice)"
            let type = m.weightType.map { "\($0)" } ?? "-"
            let bytes = m.tensors.isEmpty ? "-" : (m.tied ? "(tied)" : String(m.bytes))
            let rule = m.rule.map { "#\($0)" } ?? "default"
            return (name, ops, dev, type, bytes, rule)
        }
        let w0 = max(6, rows.map(\.0.count).max() ?? 0), w1 = max(29, rows.map(\.1.count).max() ?? 0)
        let w2 = max(6, rows.map(\.2.count).max() ?? 0), w3 = 6, w4 = max(5, rows.map(\.4.count).max() ?? 0)
        out += "  \(pad("module", w0))  \(pad("operator (prefill / generate)", w1))  \(pad("device", w2))  \(pad("type", w3))  \(lpad("bytes", w4))  rule\n"
        for r in rows {
            out += "  \(pad(r.0, w0))  \(pad(r.1, w1))  \(pad(r.2, w2))  \(pad(r.3, w3))  \(lpad(r.4, w4))  \(r.5)\n"
        }
        out += "\nTotals per device (weights)\n"
        out += "  \(pad("device", 8))  \(lpad("RAM bytes", 12))  \(lpad("VRAM bytes", 12))\n"
        for (d, b) in bytesPerDevice {
            let ram = d.kind == .cpu ? String(b) : "0", vram = d.kind == .cuda ? String(b) : "0"
            out += "  \(pad(d.description, 8))  \(lpad(ram, 12))  \(lpad(vram, 12))\n"
        }
        for w in warnings { out += "warning: \(w)\n" }
        return out
    }
}
