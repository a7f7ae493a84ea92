// The placement plan for people (a table: module → prefill / generate operator → device →
// weight type → bytes → rule, then totals per device) and for tools (JSON, same fields).
import Foundation
import Operators

// MARK: - Text

public struct DeviceTotal: Sendable {
    public let device: Device
    public let weights: Int
    public let kvCache: Int
    public var ram: Int { device.kind == .cpu ? weights + kvCache : 0 }
    public var vram: Int { device.kind == .cuda ? weights + kvCache : 0 }
}

extension PlacementPlan {
    /// Weights and KV cache (at `defaultContext`) per device.
    public var totals: [DeviceTotal] {
        let weights = Dictionary(uniqueKeysWithValues: bytesPerDevice.map { ($0.device, $0.bytes) })
        let devices = Set(weights.keys).union(kvBytesPerPosition.keys).sorted()
        return devices.map { DeviceTotal(device: $0, weights: weights[$0] ?? 0, kvCache: (kvBytesPerPosition[$0] ?? 0) * defaultContext) }
    }
}

/// Where the hidden state crosses from one device to another along the decoder's trunk.
public struct TransferPoint: Sendable, Equatable {
    /// The trunk module the state enters ("model.layers.16", "model.norm", "lm_head").
    public let module: String
    public let from: Device, to: Device
    /// "generate", "prefill" or "both" (the phases whose devices differ here).
    public let phase: String
}

extension PlacementPlan {
    /// The decoder's trunk in order — embedding, each layer, the final norm, the LM head — and
    /// every place where consecutive trunk modules sit on different devices (KTransformers'
    /// transfer_map): the hidden state is copied there. Blocks inside a layer that run elsewhere
    /// (MoE blocks on the CPU) are the layer's own business, not trunk transfers.
    public var transferPoints: [TransferPoint] {
        let trunk = modules.filter {
            $0.depth <= 1 && [.embedding, .decoderLayer, .rmsNorm, .lmHead].contains($0.kind)
        }
        var out: [TransferPoint] = []
        for (a, b) in zip(trunk, trunk.dropFirst()) {
            let generate = a.generateDevice != b.generateDevice, prefill = a.prefillDevice != b.prefillDevice
            guard generate || prefill else { continue }
            let phase = generate && prefill ? "both" : (generate ? "generate" : "prefill")
            out.append(TransferPoint(module: b.name, from: generate ? a.generateDevice : a.prefillDevice,
                                     to: generate ? b.generateDevice : b.prefillDevice, phase: phase))
        }
        return out
    }
}

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
        out += "\nTotals per device (weights; KV cache at ctx \(defaultContext))\n"
        out += "  \(pad("device", 8))  \(lpad("weights", 12))  \(lpad("KV cache", 12))  \(lpad("RAM bytes", 12))  \(lpad("VRAM bytes", 12))\n"
        for t in totals {
            out += "  \(pad(t.device.description, 8))  \(lpad(String(t.weights), 12))  \(lpad(String(t.kvCache), 12))  "
                + "\(lpad(String(t.ram), 12))  \(lpad(String(t.vram), 12))\n"
        }
        let transfers = transferPoints
        if !transfers.isEmpty {
            out += "\nTransfer points (the hidden state changes device)\n"
            for t in transfers {
                out += "  before \(t.module): \(t.from) → \(t.to)\(t.phase == "both" ? "" : " (\(t.phase))")\n"
            }
        }
        for w in warnings { out += "warning: \(w)\n" }
        return out
    }
}

// MARK: - JSON

extension PlacementPlan {
    struct Report: Encodable {
        struct Module: Encodable {
            let name: String, kind: String, prefillOp: String, generateOp: String
            let prefillDevice: String, generateDevice: String, prefillThreshold: Int
            let kwargs: [String: String], weightType: String?, bytes: Int, tied: Bool, tensors: [String], rule: Int?
        }
        struct Total: Encodable { let device: String, weightBytes: Int, kvCacheBytes: Int, ramBytes: Int, vramBytes: Int }
        struct Transfer: Encodable { let before: String, from: String, to: String, phase: String }
        let architecture: String, rules: String, context: Int
        let modules: [Module]
        let totals: [Total]
        /// Absent when the trunk stays on one device.
        let transfers: [Transfer]?
        let warnings: [String]
    }

    /// The plan as JSON (sorted keys), for tools.
    public func json() throws -> String {
        let report = Report(
            architecture: architecture, rules: rulesSource, context: defaultContext,
            modules: modules.map { m in
                Report.Module(name: m.name, kind: m.kind.rawValue, prefillOp: m.prefillOp, generateOp: m.generateOp,
                              prefillDevice: m.prefillDevice.description, generateDevice: m.generateDevice.description,
                              prefillThreshold: m.prefillThreshold, kwargs: m.kwargs.mapValues(\.description),
                              weightType: m.weightType.map { "\($0)" }, bytes: m.bytes, tied: m.tied,
                              tensors: m.tensors.map(\.name), rule: m.rule)
            },
            totals: totals.map { Report.Total(device: $0.device.description, weightBytes: $0.weights, kvCacheBytes: $0.kvCache,
                                              ramBytes: $0.ram, vramBytes: $0.vram) },
            transfers: transferPoints.isEmpty ? nil
                : transferPoints.map { Report.Transfer(before: $0.module, from: $0.from.description, to: $0.to.description, phase: $0.phase) },
            warnings: warnings)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }
}
