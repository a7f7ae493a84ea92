// Errors raised while building a model from a GGUF file.
import Core

public enum ModelError: Error, CustomStringConvertible {
    case unsupportedArchitecture(String?, supported: [String])
    case missingKey(String)
    case invalidHyperparameter(key: String, value: String, reason: String)
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], actual: [Int])
    case unsupportedTensorType(tensor: String, type: GGMLType)
    case contextOverflow(needed: Int, capacity: Int)
    /// The file stores something in a layout this version does not read.
    case unsupportedLayout(String)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(a, supported):
            return "unsupported architecture '\(a ?? "<none>")'; supported: \(supported.joined(separator: ", "))"
        case let .missingKey(k): return "missing metadata key '\(k)'"
        case let .invalidHyperparameter(k, v, why): return "invalid value \(v) for '\(k)': \(why)"
        case let .missingTensor(n): return "missing tensor '\(n)'"
        case let .shapeMismatch(n, e, a): return "tensor '\(n)' has shape \(a), expected \(e)"
        case let .unsupportedTensorType(n, t): return "tensor '\(n)' has type \(t), which has no CPU kernel"
        case let .contextOverflow(n, c):
            return "context is full: \(n) tokens needed, the context holds \(c) (raise --ctx-size or shorten the prompt)"
        case let .unsupportedLayout(what): return what
        }
    }
}
