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

    /// The shipped file for a model on the devices present: with a GPU, a dense model goes to it
    /// (cuda.yaml) and a mixture of experts splits between it and the CPU (cuda-moe.yaml: experts
    /// on the CPU), unless the GPU cannot run its attention (`gpuRunsAttention`); machines
    /// without a GPU use cpu.yaml (its MoE rules are optional); `reference` picks cpu-reference.yaml.
    public static func defaultName(devices: [Device], reference: Bool = false, dense: Bool = true,
                                   gpuAttention: Bool = true) -> String {
        if reference { return "cpu-reference.yaml" }
        guard devices.contains(.cuda(0)), gpuAttention else { return "cpu.yaml" }
        return dense ? "cuda.yaml" : "cuda-moe.yaml"
    }

    /// Whether the CUDA backend runs this model's attention: not for DeepSeek files with split
    /// attn_k_b / attn_v_b (absorbed MLA, one 576-wide shared latent key per token: no GPU
    /// kernels); their MLA with attn_kv_b, and every other attention, it does. With a GPU, a
    /// mixture of experts whose attention it runs defaults to cuda-moe.yaml.
    public static func gpuRunsAttention(_ tree: ModuleTree) -> Bool {
        !tree.flattened.contains { $0.node.name.hasSuffix(".self_attn.k_b_proj") }
    }

    /// Files that place modules on the first GPU (the rule tests plan them as if it were there).
    public static let gpuFiles: Set<String> = ["cuda.yaml", "cuda-fast.yaml", "cuda-moe.yaml"]
}

/// The rules a load uses and why.
public struct RuleChoice {
    public let file: RuleFile
    /// "rules/cpu.yaml (shipped default for llama on cpu)" or the user's path.
    public let description: String

    /// `path` (the user's `--rules`) wins; else the shipped file for the model (`dense`: no
    /// experts; `gpuAttention`: ShippedRules.gpuRunsAttention), devices and kernel shorthand
    /// (`reference` → cpu-reference.yaml).
    public static func choose(path: String?, architecture: String, devices: [Device] = Placement.availableDevices,
                              reference: Bool = false, dense: Bool = true, gpuAttention: Bool = true,
                              registry: OperatorRegistry = .builtin) throws -> RuleChoice {
        if let path {
            // A shipped file by its name ("rules/cpu-long-context.yaml", "cpu-long-context.yaml"
            // or "cpu-long-context") where no such file is on disk: the binary's own copy.
            let name = (path as NSString).lastPathComponent
            if !FileManager.default.fileExists(atPath: path),
               let shipped = [name, name + ".yaml"].first(where: { ShippedRules.text($0) != nil }) {
                return RuleChoice(file: try ShippedRules.load(shipped, registry: registry), description: "rules/\(shipped) (--rules, shipped)")
            }
            if !FileManager.default.fileExists(atPath: path) {
                throw InjectionError(source: path, line: nil, "no such rules file; the shipped ones (usable by name anywhere): "
                                     + ShippedRuleTexts.files.keys.sorted().joined(separator: ", "))
            }
            return RuleChoice(file: try RuleFile.load(path: path, registry: registry), description: "\(path) (--rules)")
        }
        let name = ShippedRules.defaultName(devices: devices, reference: reference, dense: dense, gpuAttention: gpuAttention)
        let why = reference ? "shipped, --kernels reference" : "shipped default for \(architecture) on "
            + devices.map(\.description).joined(separator: "+")
        return RuleChoice(file: try ShippedRules.load(name, registry: registry), description: "rules/\(name) (\(why))")
    }
}
