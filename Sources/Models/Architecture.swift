// The architecture registry: one line per architecture, keyed by `general.architecture`.
import GGUF

public protocol Architecture {
    /// Values of `general.architecture` this file implements.
    static var names: [String] { get }
    static func load(file: GGUFFile) throws -> DecoderModel
    /// How the per-layer norms are named in the module tree (ModuleNames.swift).
    static var naming: ModuleNames.Naming { get }
}

extension Architecture {
    public static var naming: ModuleNames.Naming { .llama }
}

public enum Architectures {
    public static var all: [any Architecture.Type] { [Llama.self, Qwen2.self, Qwen3.self, Gemma3.self] }

    public static var supportedNames: [String] { all.flatMap { $0.names } }

    public static func architecture(of file: GGUFFile) throws -> any Architecture.Type {
        let arch = file.architecture
        guard let a = all.first(where: { $0.names.contains(arch ?? "") }) else {
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
