// TensorLoader: fetches named GGUF tensors as typed weights, checking shapes and types.
// Matrices stay in the mmapped file in their quant format (zero-copy); small vectors (norm
// weights, biases) are dequantized to float once.
import Core
import CPUKernels
import GGUF

public struct TensorLoader {
    public let file: GGUFFile

    public init(file: GGUFFile) { self.file = file }

    public func has(_ name: String) -> Bool { file.tensor(named: name) != nil }

    /// A [rows, cols] matrix (ggml shape [cols, rows]) in its storage type.
    public func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        guard let t = file.tensor(named: name) else { throw ModelError.missingTensor(name) }
        guard t.shape == [cols, rows] else { throw ModelError.shapeMismatch(tensor: name, expected: [cols, rows], actual: t.shape) }
        guard Quant.canDequantize(t.type) else { throw ModelError.unsupportedTensorType(tensor: name, type: t.type) }
        let bytes = file.data(for: t)
        return WeightMatrix(type: t.type, rows: rows, cols: cols, data: bytes.baseAddress!, fileMapped: file.isFileMapped)
    }

    public func optionalMatrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix? {
        has(name) ? try matrix(name, rows: rows, cols: cols) : nil
    }

    /// A 1-D tensor of `count` elements, dequantized to float.
    public func vector(_ name: String, count: Int) throws -> [Float] {
        guard let t = file.tensor(named: name) else { throw ModelError.missingTensor(name) }
        guard t.shape == [count] else { throw ModelError.shapeMismatch(tensor: name, expected: [count], actual: t.shape) }
        guard Quant.canDequantize(t.type) else { throw ModelError.unsupportedTensorType(tensor: name, type: t.type) }
        var out = [Float](repeating: 0, count: count)
        let bytes = file.data(for: t)
        try out.withUnsafeMutableBufferPointer { try Quant.dequantize(t.type, from: bytes.baseAddress!, to: $0.baseAddress!, count: count) }
        return out
    }

    public func optionalVector(_ name: String, count: Int) throws -> [Float]? {
        has(name) ? try vector(name, count: count) : nil
    }
}
