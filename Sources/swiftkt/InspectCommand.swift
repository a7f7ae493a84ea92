// `swiftkt inspect -m MODEL [--json]`: what a GGUF model holds, read through the GGUF module's key
// table without touching tensor data: architecture, hyperparameters, tokenizer summary, chat
// template presence, the tensor table (name, type, shape in ggml order ne0 first, bytes) with
// totals by type, file size and the time GGUFFile.open took. `--json` prints the same for tools.
// `--placement [--rules FILE]` prints the placement plan instead: module → prefill / generate
// operator → device → weight type → bytes, and totals per device, without loading weights
// (`--json` prints it for tools).
import ArgumentParser
import Core
import Engine
import Foundation
import GGUF
import Injection
import Models

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a GGUF model's architecture, hyperparameters, tokenizer and tensors."
    )

    @Option(name: .shortAndLong, help: "Model name from the catalog/cache, or a path to a .gguf file (first part of a split model).")
    var model: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @Flag(help: "Also list every metadata key and value.")
    var metadata = false

    @Flag(name: .customLong("no-tensors"), help: "Leave out the per-tensor table (totals by type are still shown).")
    var noTensors = false

    @Flag(help: "Print the placement plan (module → operator → device → bytes) instead, without loading weights.")
    var placement = false

    @Option(help: "Rules file for --placement (default: the shipped rules for the architecture).")
    var rules: String?

    @Flag(name: .customLong("strict-rules"), help: "With --placement: a rule that matches no module is an error.")
    var strictRules = false

    func run() throws {
        let path = try ModelStore.resolve(model)
        if placement || rules != nil {
            let file = try GGUFFile.open(path)
            let tree = try Architectures.moduleTree(file: file)
            let choice = try RuleChoice.choose(path: rules, architecture: tree.architecture, dense: !tree.contains(.experts),
                                               gpuAttention: ShippedRules.gpuRunsAttention(tree))
            try? FileHandle.standardError.write(contentsOf: Data("rules: \(choice.description)\n".utf8))
            let plan = try Placement.plan(tree: tree, rules: choice.file, strict: strictRules, rulesSource: choice.description)
            if json { print(try plan.json()) } else { print(printable(plan.text), terminator: "") }
            return
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let file = try GGUFFile.open(path)
        let openMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        let report = InspectReport(file, openMilliseconds: openMilliseconds, includeTensors: !noTensors, includeMetadata: metadata)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(printable(report.text), terminator: "")
        }
    }
}

// MARK: - Report

/// A JSON scalar or array converted from a GGUF metadata value.
enum InspectJSONValue: Encodable {
    case int(Int), double(Double), string(String), bool(Bool), array([InspectJSONValue])

    init(_ v: GGUFValue) {
        switch v {
        case let .string(s): self = .string(s)
        case let .bool(b): self = .bool(b)
        case let .array(_, elements): self = .array(elements.map(InspectJSONValue.init))
        // f32 values are shown by their shortest f32 spelling (1e-05, not 9.999999747378752e-06).
        case let .float32(x): self = .double(Double(String(x)) ?? Double(x))
        case let .float64(x): self = .double(x)
        default: self = v.int.map(InspectJSONValue.int) ?? .double(v.double ?? 0)
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .int(x): try c.encode(x)
        case let .double(x): try c.encode(x.isFinite ? x : 0)
        case let .string(x): try c.encode(x)
        case let .bool(x): try c.encode(x)
        case let .array(x): try c.encode(x)
        }
    }
}

struct InspectReport: Encodable {
    struct Token: Encodable { let id: Int; let text: String? }
    struct Tokenizer: Encodable {
        let model: String?, pre: String?
        let vocabSize: Int?, mergeCount: Int?, hasScores: Bool
        let bos: Token?, eos: Token?, eot: Token?, eom: Token?, unknown: Token?, padding: Token?
        let addBOS: Bool?, addEOS: Bool?, addSpacePrefix: Bool?
        let chatTemplate: Bool, chatTemplateLength: Int?
    }
    struct Tensor: Encodable { let name: String, type: String, shape: [Int], bytes: Int, file: Int, offset: Int }
    struct TypeTotal: Encodable { let type: String, count: Int, bytes: Int }

    let path: String
    let parts: [String]
    let fileSize: Int
    let openMilliseconds: Double
    let version: Int
    let alignment: Int
    let architecture: String?
    let name: String?
    let fileType: Int?
    let hyperparameters: [String: InspectJSONValue]
    let hyperparameterOrder: [String]
    let tokenizer: Tokenizer
    let tensorCount: Int
    let tensorBytes: Int
    let totalsByType: [TypeTotal]
    let tensors: [Tensor]?
    let metadata: [String: InspectJSONValue]?
    private let metadataLines: [String]

    enum CodingKeys: String, CodingKey {
        case path, parts, fileSize, openMilliseconds, version, alignment, architecture, name, fileType
        case hyperparameters, tokenizer, tensorCount, tensorBytes, totalsByType, tensors, metadata
    }

    init(_ f: GGUFFile, openMilliseconds: Double, includeTensors: Bool, includeMetadata: Bool) {
        path = f.path
        parts = f.partPaths
        fileSize = f.totalFileSize
        self.openMilliseconds = (openMilliseconds * 100).rounded() / 100
        version = Int(f.version)
        alignment = f.alignment
        architecture = f.architecture
        name = f.string(.name)
        fileType = f.int(.fileType)

        var hp: [String: InspectJSONValue] = [:], order: [String] = []
        for key in GGUFKey.hyperparameters {
            guard let v = f[key] else { continue }
            let label = key.template.hasPrefix("{arch}.") ? String(key.template.dropFirst(7)) : key.template
            hp[label] = InspectJSONValue(v)
            order.append(label)
        }
        hyperparameters = hp
        hyperparameterOrder = order

        let vocab = f.array(.tokens)
        func token(_ key: GGUFKey) -> Token? {
            guard let id = f.int(key) else { return nil }
            return Token(id: id, text: vocab.flatMap { id >= 0 && id < $0.count ? $0[id].string : nil })
        }
        let template = f.string(.chatTemplate)
        tokenizer = Tokenizer(
            model: f.string(.tokenizerModel), pre: f.string(.tokenizerPre),
            vocabSize: vocab?.count, mergeCount: f.array(.merges)?.count, hasScores: f[.scores] != nil,
            bos: token(.bosID), eos: token(.eosID), eot: token(.eotID), eom: token(.eomID),
            unknown: token(.unknownID), padding: token(.paddingID),
            addBOS: f.bool(.addBOS), addEOS: f.bool(.addEOS), addSpacePrefix: f.bool(.addSpacePrefix),
            chatTemplate: template != nil, chatTemplateLength: template?.count)

        tensorCount = f.tensors.count
        tensorBytes = f.tensors.reduce(0) { $0 + $1.byteCount }
        totalsByType = f.bytesByType.map { TypeTotal(type: $0.type.description, count: $0.count, bytes: $0.bytes) }
        tensors = includeTensors
            ? f.tensors.map { Tensor(name: $0.name, type: $0.type.description, shape: $0.shape, bytes: $0.byteCount, file: $0.fileIndex, offset: $0.offset) }
            : nil
        if includeMetadata {
            var m: [String: InspectJSONValue] = [:]
            for k in f.metadataKeys { if let v = f.metadata[k] { m[k] = InspectJSONValue(v) } }
            metadata = m
            metadataLines = f.metadataKeys.map { k in
                let v = f.metadata[k]
                let type = v.map { v -> String in
                    if case let .array(t, e) = v { return "arr[\(t),\(e.count)]" }
                    return v.type.description
                } ?? "?"
                return "  \(inspectPad(k, 44)) \(inspectPad(type, 16)) \(v?.description ?? "")"
            }
        } else {
            metadata = nil
            metadataLines = []
        }
    }

    var text: String {
        var out = ""
        func line(_ s: String = "") { out += s + "\n" }
        let partNote = parts.count > 1 ? ", \(parts.count) parts" : ""
        line("model         \(path)")
        line("file          \(inspectBytes(fileSize)) (\(fileSize) bytes\(partNote)), GGUF v\(version), alignment \(alignment)")
        line("opened in     \(String(format: "%.2f", openMilliseconds)) ms (mmap, metadata parsed, tensor data untouched)")
        line("architecture  \(architecture ?? "(none)")")
        if let name { line("name          \(name)") }
        if let fileType { line("file type     \(fileType)") }
        line()
        line("Hyperparameters")
        if hyperparameterOrder.isEmpty { line("  (none of the table's keys)") }
        for key in hyperparameterOrder {
            line("  \(inspectPad(key, 36)) \(hyperparameters[key].map(inspectText) ?? "")")
        }
        line()
        line("Tokenizer")
        let t = tokenizer
        line("  model \(t.model ?? "?"), pre \(t.pre ?? "?"), vocab \(t.vocabSize.map(String.init) ?? "?")"
             + (t.mergeCount.map { ", \($0) merges" } ?? "") + (t.hasScores ? ", scores" : ""))
        for (label, tok) in [("bos", t.bos), ("eos", t.eos), ("eot", t.eot), ("eom", t.eom), ("unk", t.unknown), ("pad", t.padding)] {
            guard let tok else { continue }
            line("  \(inspectPad(label, 4)) \(tok.id) \(tok.text.map { "\"\($0)\"" } ?? "(no text)")")
        }
        line("  add_bos \(t.addBOS.map(String.init) ?? "unset"), add_eos \(t.addEOS.map(String.init) ?? "unset"), add_space_prefix \(t.addSpacePrefix.map(String.init) ?? "unset")")
        line("  chat template: " + (t.chatTemplate ? "yes (\(t.chatTemplateLength ?? 0) characters)" : "none"))
        if !metadataLines.isEmpty {
            line()
            line("Metadata (\(metadataLines.count) keys)")
            metadataLines.forEach { line($0) }
        }
        if let tensors {
            line()
            let nameWidth = min(max(tensors.map(\.name.count).max() ?? 4, 4), 60)
            line("Tensors")
            line("  \(inspectPad("name", nameWidth))  \(inspectPad("type", 6))  \(inspectPad("shape", 22))  bytes")
            for x in tensors {
                let shape = "[" + x.shape.map(String.init).joined(separator: ", ") + "]"
                line("  \(inspectPad(x.name, nameWidth))  \(inspectPad(x.type, 6))  \(inspectPad(shape, 22))  \(x.bytes)")
            }
        }
        line()
        line("Totals by type (\(tensorCount) tensors, \(inspectBytes(tensorBytes)))")
        for x in totalsByType {
            let share = tensorBytes > 0 ? Double(x.bytes) / Double(tensorBytes) * 100 : 0
            line("  \(inspectPad(x.type, 6))  \(String(format: "%5d", x.count)) tensors  \(inspectPad(inspectBytes(x.bytes), 10))  \(String(format: "%5.1f", share)) %")
        }
        return out
    }
}

private func inspectText(_ v: InspectJSONValue) -> String {
    switch v {
    case let .int(x): return String(x)
    case let .double(x): return String(x)
    case let .string(x): return x
    case let .bool(x): return String(x)
    case let .array(x): return "[" + x.map(inspectText).joined(separator: ", ") + "]"
    }
}

private func inspectPad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

private func inspectBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var x = Double(n), i = 0
    while x >= 1024, i < units.count - 1 { x /= 1024; i += 1 }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", x, units[i])
}
