// Errors of the GGUF reader and writer. Every parse error names the byte offset (inside the
// file, or inside the split part named by `.inPart`) where the problem was found.
import Core

public enum GGUFError: Error, CustomStringConvertible, Equatable, Sendable {
    /// open/fstat/mmap failed (errno text in `reason`).
    case cannotOpen(path: String, reason: String)
    /// The first four bytes are not "GGUF".
    case badMagic(offset: Int, found: UInt32)
    /// Only versions 2 and 3 are read (1 used 32-bit counts and is long obsolete).
    case unsupportedVersion(offset: Int, version: UInt32)
    /// A read of `needed` bytes at `offset` runs past the end (`available` bytes were left).
    case truncated(offset: Int, needed: Int, available: Int, what: String)
    /// A count or length that cannot fit in the bytes left in the file.
    case absurdCount(offset: Int, what: String, count: UInt64, bytesLeft: Int)
    /// A string whose bytes are not valid UTF-8.
    case invalidUTF8(offset: Int, what: String)
    /// A metadata value type id outside 0...12.
    case unknownValueType(offset: Int, raw: UInt32)
    /// Arrays nested deeper than the reader allows.
    case nestingTooDeep(offset: Int, depth: Int)
    case duplicateKey(offset: Int, key: String)
    /// A well-known key with a value of the wrong type (e.g. general.alignment as a string).
    case wrongKeyType(offset: Int, key: String, expected: String, found: GGUFValueType)
    /// general.alignment that is zero or not a power of two.
    case invalidAlignment(offset: Int, value: Int)
    case unknownTensorType(offset: Int, tensor: String, raw: UInt32)
    /// A tensor with 0 or more than 4 dimensions.
    case invalidDimensionCount(offset: Int, tensor: String, count: UInt32)
    /// A dimension that is 0 or does not fit in a signed 64-bit integer.
    case invalidDimension(offset: Int, tensor: String, index: Int, value: UInt64)
    /// The element count or byte size of a tensor overflows 64 bits.
    case shapeOverflow(offset: Int, tensor: String)
    /// ne0 is not a whole number of the type's blocks.
    case notBlockMultiple(offset: Int, tensor: String, type: GGMLType, ne0: Int)
    case duplicateTensor(offset: Int, name: String)
    /// A tensor's data offset (relative to the data section) is not a multiple of the alignment.
    case misalignedTensor(offset: Int, tensor: String, dataOffset: UInt64, alignment: Int)
    /// A tensor's data runs past the end of the file.
    case tensorOutOfBounds(offset: Int, tensor: String, end: UInt64, fileSize: Int)
    /// Two tensors whose data ranges overlap; `offset` is where the second one's data starts.
    case overlappingTensors(offset: Int, first: String, second: String)
    /// Split files: a missing part, inconsistent split keys, or a tensor count mismatch.
    case invalidSplit(path: String, reason: String)
    /// An error inside split part `index` (0-based) at `path`.
    indirect case inPart(index: Int, path: String, error: GGUFError)
    /// Writer: a value or tensor that cannot be encoded.
    case invalidWriterInput(String)

    /// The byte offset the error refers to, where there is one.
    public var offset: Int? {
        switch self {
        case let .badMagic(o, _), let .unsupportedVersion(o, _), let .truncated(o, _, _, _),
             let .absurdCount(o, _, _, _), let .invalidUTF8(o, _), let .unknownValueType(o, _),
             let .nestingTooDeep(o, _), let .duplicateKey(o, _), let .wrongKeyType(o, _, _, _),
             let .invalidAlignment(o, _), let .unknownTensorType(o, _, _),
             let .invalidDimensionCount(o, _, _), let .invalidDimension(o, _, _, _),
             let .shapeOverflow(o, _), let .notBlockMultiple(o, _, _, _), let .duplicateTensor(o, _),
             let .misalignedTensor(o, _, _, _), let .tensorOutOfBounds(o, _, _, _),
             let .overlappingTensors(o, _, _):
            return o
        case let .inPart(_, _, e): return e.offset
        case .cannotOpen, .invalidSplit, .invalidWriterInput: return nil
        }
    }

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "cannot open \(path): \(reason)"
        case let .badMagic(o, found):
            let hex = String(found, radix: 16)
            return "offset \(o): not a GGUF file (magic 0x\(hex), expected \"GGUF\")"
        case let .unsupportedVersion(o, v):
            return "offset \(o): unsupported GGUF version \(v) (versions 2 and 3 are supported"
                + (v == 1 ? "; convert v1 files with a current llama.cpp)" : ")")
        case let .truncated(o, needed, available, what):
            return "offset \(o): file truncated in \(what): needed \(needed) bytes, \(available) left"
        case let .absurdCount(o, what, count, left):
            return "offset \(o): \(what) \(count) cannot fit in the \(left) bytes left in the file"
        case let .invalidUTF8(o, what):
            return "offset \(o): \(what) is not valid UTF-8"
        case let .unknownValueType(o, raw):
            return "offset \(o): unknown metadata value type \(raw)"
        case let .nestingTooDeep(o, d):
            return "offset \(o): arrays nested deeper than \(d) levels"
        case let .duplicateKey(o, key):
            return "offset \(o): duplicate metadata key '\(key)'"
        case let .wrongKeyType(o, key, expected, found):
            return "offset \(o): key '\(key)' has type \(found), expected \(expected)"
        case let .invalidAlignment(o, v):
            return "offset \(o): general.alignment \(v) is not a positive power of two"
        case let .unknownTensorType(o, t, raw):
            return "offset \(o): tensor '\(t)' has unknown ggml type id \(raw)"
        case let .invalidDimensionCount(o, t, n):
            return "offset \(o): tensor '\(t)' has \(n) dimensions (1...4 allowed)"
        case let .invalidDimension(o, t, i, v):
            return "offset \(o): tensor '\(t)' dimension \(i) is \(v) (must be 1...Int64.max)"
        case let .shapeOverflow(o, t):
            return "offset \(o): tensor '\(t)' element count or byte size overflows 64 bits"
        case let .notBlockMultiple(o, t, type, ne0):
            return "offset \(o): tensor '\(t)' of type \(type): ne0 = \(ne0) is not a multiple of the block size \(type.blockSize)"
        case let .duplicateTensor(o, name):
            return "offset \(o): duplicate tensor name '\(name)'"
        case let .misalignedTensor(o, t, d, a):
            return "offset \(o): tensor '\(t)' data offset \(d) is not a multiple of the alignment \(a)"
        case let .tensorOutOfBounds(o, t, end, size):
            return "offset \(o): tensor '\(t)' data ends at \(end), past the end of the file (\(size) bytes)"
        case let .overlappingTensors(o, a, b):
            return "offset \(o): data of tensor '\(b)' overlaps tensor '\(a)'"
        case let .invalidSplit(path, reason):
            return "split model \(path): \(reason)"
        case let .inPart(i, path, e):
            return "split part \(i + 1) (\(path)): \(e.description)"
        case let .invalidWriterInput(what):
            return "GGUF writer: \(what)"
        }
    }
}
