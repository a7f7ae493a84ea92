// Errors raised by Core (quant conversions, thread pool, tensor views).

public enum CoreError: Error, CustomStringConvertible, Equatable {
    /// A quant type that has no implementation for the requested operation.
    case unsupportedType(GGMLType, operation: String)
    /// An element count that is not a whole number of blocks.
    case notBlockAligned(type: GGMLType, count: Int)

    public var description: String {
        switch self {
        case let .unsupportedType(t, op):
            return "type \(t) has no \(op) implementation"
        case let .notBlockAligned(t, n):
            return "\(n) elements is not a multiple of \(t)'s block size \(t.blockSize)"
        }
    }
}
