// GGUF metadata values: the 13 value types of the format (ggml `enum gguf_type`) and the value
// enum the reader produces and the writer consumes. Arrays carry their element type so that an
// empty array still round-trips; nested arrays are `.array(.array, [.array(inner, …), …])`.

// MARK: - Value types

/// A GGUF metadata value type. Raw values are the on-disk type ids.
public enum GGUFValueType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case uint8 = 0, int8, uint16, int16, uint32, int32, float32, bool, string, array, uint64, int64, float64

    /// Encoded size of one value of a fixed-size type; nil for `string` and `array`.
    public var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// The fewest bytes one encoded value can take (a string is at least its 8-byte length,
    /// an array its 4-byte element type and 8-byte count). Used to bound counts by file size.
    public var minimumEncodedSize: Int {
        switch self {
        case .string: return 8
        case .array: return 12
        default: return fixedSize ?? 1
        }
    }

    public var description: String {
        switch self {
        case .uint8: return "u8"
        case .int8: return "i8"
        case .uint16: return "u16"
        case .int16: return "i16"
        case .uint32: return "u32"
        case .int32: return "i32"
        case .float32: return "f32"
        case .bool: return "bool"
        case .string: return "str"
        case .array: return "arr"
        case .uint64: return "u64"
        case .int64: return "i64"
        case .float64: return "f64"
        }
    }
}

// MARK: - Values

/// One metadata value. (Not `indirect`: arrays already box their elements, and boxing every
/// scalar would cost one allocation per vocabulary entry.)
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), array(GGUFValueType, [GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    /// The on-disk type of this value.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// Any integer type that fits in `Int` (not bool, not floats).
    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// Any numeric value (integers and floats, not bool).
    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        case let .uint64(v): return Double(v)
        default: return int.map(Double.init)
        }
    }

    /// Any numeric value as `Float`.
    public var float: Float? {
        if case let .float32(v) = self { return v }
        return double.map(Float.init)
    }

    public var string: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    public var bool: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    public var array: [GGUFValue]? {
        if case let .array(_, elements) = self { return elements }
        return nil
    }

    /// The element type of an array value.
    public var arrayElementType: GGUFValueType? {
        if case let .array(t, _) = self { return t }
        return nil
    }
}

extension GGUFValue: CustomStringConvertible {
    /// A short human-readable rendering; long arrays and strings are abbreviated.
    public var description: String {
        switch self {
        case let .string(s):
            let shown = s.count > 60 ? String(s.prefix(57)) + "…" : s
            return "\"" + shown.replacing("\n", with: "\\n") + "\""
        case let .array(t, elements):
            let head = elements.prefix(4).map(\.description).joined(separator: ", ")
            let more = elements.count > 4 ? ", … (\(elements.count) × \(t))" : ""
            return "[" + head + more + "]"
        case let .bool(b): return String(b)
        case let .float32(v): return String(v)
        case let .float64(v): return String(v)
        default: return int.map(String.init) ?? (self.double.map { String($0) } ?? "?")
        }
    }
}
