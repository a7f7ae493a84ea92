// The architecture registry: one line per architecture, keyed by `general.architecture` (and,
// for llama files, by whether they have experts: Mixtral.swift).
import GGUF

public protocol Architecture {
    /// Values of `general.architecture` this file implements.
    static var names: [String] { get }
    static func load(file: GGUFFile) throws -> DecoderModel
    /// How the per-layer norms are named in the module tree (ModuleNames.swift).
    static var naming: ModuleNames.Naming { get }
    /// Whether this file implements `file` (default: its `general.architecture` is in `names`).
    static func accepts(_ file: GGUFFile) -> Bool
}

extension Architecture {
    public static var naming: ModuleNames.Naming { .llama }
    public static func accepts(_ file: GGUFFile) -> Bool { names.contains(file.architecture ?? "") }
}

public enum Architectures {
    /// The first that accepts a file implements it (Mixtral before Llama: both are "llama").
    public static var all: [any Architecture.Type] {
        [Mixtral.self, Llama.self, Qwen2.self, Qwen3.self, Gemma3.self, Qwen2MoE.self, Qwen3MoE.self, DeepSeek2.self]
    }

    public static var supportedNames: [String] {
        var seen = Set<String>()
        return all.flatMap { $0.names }.filter { seen.insert($0).inserted }
    }

    public static func architecture(of file: GGUFFile) throws -> any Architecture.Type {
        let arch = file.architecture
        guard let a = all.first(where: { $0.accepts(file) }) else {
            throw ModelError.unsupportedArchitecture(arch, supported: supportedNames)
        }
        return a
    }

    /// Builds the model described by `file` (weights stay mapped).
    public static func load(file: GGUFFile) throws -> DecoderModel {
        try architecture(of: file).load(file: file)
    }

    /// The module tree of `file`, from its tensor index alone (no weights are read).
    public static func moduleTree(file: GGUFFile) throws -> ModuleTree {
        try ModuleTree.build(file: file, naming: architecture(of: file).naming)
    }
}
