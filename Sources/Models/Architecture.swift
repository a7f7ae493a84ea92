// The architecture registry: one line per architecture, keyed by `general.architecture`.
import GGUF

public protocol Architecture {
    /// Values of `general.architecture` this file implements.
    static var names: [String] { get }
    static func load(file: GGUFFile) throws -> DecoderModel
}

public enum Architectures {
    public static var all: [any Architecture.Type] { [Llama.self, Qwen2.self, Qwen3.self, Gemma3.self] }

    public static var supportedNames: [String] { all.flatMap { $0.names } }

    /// Builds the model described by `file` (weights stay mapped).
    public static func load(file: GGUFFile) throws -> DecoderModel {
        let arch = file.architecture
        guard let a = all.first(where: { $0.names.contains(arch ?? "") }) else {
            throw ModelError.unsupportedArchitecture(arch, supported: supportedNames)
        }
        return try a.load(file: file)
    }
}
