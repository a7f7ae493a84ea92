// GGMLType: the tensor element types of GGUF files (ggml's `enum ggml_type`), with their block
// geometry. The numeric ids are part of the file format and must never change. Per-type block
// layouts, dequantization and quantization live in Sources/Core/Quant/ (one file per family).
//
// Shape convention (GGUF/ggml): a tensor's shape is listed innermost first (`ne0` is the
// contiguous dimension). A row is `ne0` elements = `ne0 / blockSize` blocks of `typeSize` bytes.

/// A GGUF tensor element type. Raw values are ggml's type ids.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1
    case q4_0 = 2, q4_1 = 3
    // 4 and 5 (Q4_2, Q4_3) were removed from ggml.
    case q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20
    case iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35, mxfp4 = 39

    /// Elements per block (1 for plain scalar types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl, .mxfp4: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq2_xxs, .iq2_xs, .iq3_xxs,
             .iq1_s, .iq3_s, .iq2_s, .iq4_xs, .iq1_m, .tq1_0, .tq2_0: return 256
        }
    }

    /// Bytes per block.
    public var typeSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .i8: return 1
        case .i16: return 2
        case .i32: return 4
        case .i64, .f64: return 8
        case .q4_0: return 18      // f16 d + 16 B nibbles
        case .q4_1: return 20      // f16 d, f16 m + 16 B nibbles
        case .q5_0: return 22      // f16 d + 4 B high bits + 16 B nibbles
        case .q5_1: return 24      // f16 d, f16 m + 4 B high bits + 16 B nibbles
        case .q8_0: return 34      // f16 d + 32 × i8
        case .q8_1: return 36      // f16 d, f16 s + 32 × i8
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .q8_K: return 292     // f32 d + 256 × i8 + 16 × i16 bsums
        case .iq2_xxs: return 66
        case .iq2_xs: return 74
        case .iq3_xxs: return 98
        case .iq1_s: return 50
        case .iq4_nl: return 18
        case .iq3_s: return 110
        case .iq2_s: return 82
        case .iq4_xs: return 136
        case .iq1_m: return 56
        case .tq1_0: return 54
        case .tq2_0: return 66
        case .mxfp4: return 17
        }
    }

    /// ggml's type name ("q4_K", "f32", "iq4_xs"), as `gguf` and llama.cpp spell it.
    public var name: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .q4_0: return "q4_0"
        case .q4_1: return "q4_1"
        case .q5_0: return "q5_0"
        case .q5_1: return "q5_1"
        case .q8_0: return "q8_0"
        case .q8_1: return "q8_1"
        case .q2_K: return "q2_K"
        case .q3_K: return "q3_K"
        case .q4_K: return "q4_K"
        case .q5_K: return "q5_K"
        case .q6_K: return "q6_K"
        case .q8_K: return "q8_K"
        case .iq2_xxs: return "iq2_xxs"
        case .iq2_xs: return "iq2_xs"
        case .iq3_xxs: return "iq3_xxs"
        case .iq1_s: return "iq1_s"
        case .iq4_nl: return "iq4_nl"
        case .iq3_s: return "iq3_s"
        case .iq2_s: return "iq2_s"
        case .iq4_xs: return "iq4_xs"
        case .i8: return "i8"
        case .i16: return "i16"
        case .i32: return "i32"
        case .i64: return "i64"
        case .f64: return "f64"
        case .iq1_m: return "iq1_m"
        case .bf16: return "bf16"
        case .tq1_0: return "tq1_0"
        case .tq2_0: return "tq2_0"
        case .mxfp4: return "mxfp4"
        }
    }

    /// Upper-case display name as llama.cpp prints it ("Q4_K", "F32", "IQ4_XS").
    public var description: String { name.uppercased() }

    /// Parses a type name, case-insensitively ("q4_k", "Q4_K", "f16").
    public init?(name: String) {
        let lowered = name.lowercased()
        guard let t = GGMLType.allCases.first(where: { $0.name.lowercased() == lowered }) else { return nil }
        self = t
    }

    /// Bytes taken by `count` elements; `count` must be a multiple of `blockSize`.
    public func byteCount(elements count: Int) -> Int {
        (count / blockSize) * typeSize
    }

    /// True for types that are quantized in blocks (everything but plain scalars).
    public var isQuantized: Bool { blockSize > 1 }
}
