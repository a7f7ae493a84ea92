// AVX-512 VNNI matmul kernels (this target is compiled with `-target-cpu cascadelake`: AVX-512
// F/BW/DQ/VL + VNNI, which Intel since Cascade Lake and AMD since Zen 4 have). `Matmul.quantized`
// calls them only when /proc/cpuinfo lists those flags, and only for the types they cover; the
// results are bit-identical to the scalar reference `QuantizedDot.dotReference` (tested).
//
// The integer lanes are exact whatever instruction computes them, so `vpdpbusd` (unsigned bytes ×
// signed bytes, 4 products summed per 32-bit lane) gives exactly ggml's lanes when a block's 32
// weights sit in element order: lane j = elements 4j…4j+3. Weights are made unsigned (q4_0: the
// nibble, q5_0: nibble | fifth bit, q8_0: value + 128) and each lane's sum starts at −bias·Σy,
// itself a `vpdpbusd` of the bias bytes with the activations. Batches of 8+ tokens decode each
// 8-row panel once (`predecode`) for all their 4-token tiles (`tile4p`).
#if arch(x86_64)
import _Builtin_intrinsics.intel
import Core

public enum QuantizedAVX512 {
    /// Weight rows per panel (the unit `Matmul.quantized` splits across threads).
    public static let rowsPerPanel = 8

    public static func supports(_ type: GGMLType) -> Bool {
        switch type {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q6_K: return true
        default: return false
        }
    }

    /// y[t, r] (y is [tokens, rows]) for the panels of 8 weight rows in `panels`, from weights
    /// repacked by `PackedPanels`; activations as CPUKernels' `QuantizedActivations`.
    public static func run(_ w: PackedPanels, qs: UnsafePointer<Int8>, scales: UnsafePointer<Float>, sums: UnsafePointer<Float>,
                           y: UnsafeMutablePointer<Float>, tokens: Int, panels: Range<Int>) {
        let a = Acts(qs: qs, scales: scales, sums: sums, n: w.cols)
        switch w.type {
        case .q4_0: run(Q4_0.self, w, a, y, tokens, panels)
        case .q4_1: run(Q4_1.self, w, a, y, tokens, panels)
        case .q5_0: run(Q5_0.self, w, a, y, tokens, panels)
        case .q5_1: run(Q5_1.self, w, a, y, tokens, panels)
        case .q8_0: run(Q8_0.self, w, a, y, tokens, panels)
        case .q6_K: runQ6K(w, a, y, tokens, panels)
        case .q4_K: runQ4K(w, a, y, tokens, panels)
        default: preconditionFailure("no AVX-512 kernel for \(w.type)")
        }
    }

    @inline(__always)
    static func run<B: BlockAVX512>(_: B.Type, _ w: PackedPanels, _ a: Acts, _ y: UnsafeMutablePointer<Float>,
                                    _ tokens: Int, _ panels: Range<Int>) {
        let blocks = w.cols / 32
        // Two or more 4-token tiles: each panel is decoded once into a buffer they all read.
        let decoded = tokens >= 8 ? UnsafeMutableRawPointer.allocate(byteCount: blocks * decodedBlockBytes, alignment: 64) : nil
        defer { decoded?.deallocate() }
        for panel in panels {
            let r0 = panel * rowsPerPanel
            let base = UnsafeRawPointer(w.data + panel * w.panelBytes)
            var t0 = 0
            if let decoded {
                predecode(B.self, base, blocks: blocks, octet: w.octetBytes, out: decoded)
                while t0 + 4 <= tokens {
                    tile4p(B.self, UnsafeRawPointer(decoded), a, t0: t0, blocks: blocks, octet: w.octetBytes, y: y, rows: w.rows, r0: r0)
                    t0 += 4
                }
            }
            while t0 + 4 <= tokens {
                tile4(B.self, base, a, t0: t0, blocks: blocks, octet: w.octetBytes, y: y, rows: w.rows, r0: r0)
                t0 += 4
            }
            while t0 < tokens {
                tile1(B.self, base, a, t0: t0, blocks: blocks, octet: w.octetBytes, y: y, rows: w.rows, r0: r0)
                t0 += 1
            }
        }
    }
}

/// Quantized activations [tokens, n] (CPUKernels' QuantizedActivations, q8_0 / q8_1 formats).
struct Acts {
    let qs: UnsafePointer<Int8>
    let scales: UnsafePointer<Float>
    let sums: UnsafePointer<Float>
    let n: Int
}

/// ggml's hsum_float_8: (a0+a4 + a2+a6) + (a1+a5 + a3+a7).
@inline(__always)
func hsum8(_ a: SIMD8<Float>) -> Float {
    let h = a.lowHalf + a.highHalf
    let s = h.lowHalf + h.highHalf
    return s[0] + s[1]
}

/// A 32-element block type in the packed layout (`PackedPanels`): how a row pair's quants in a
/// block octet become 64 unsigned bytes in element order (row A's 32, then row B's).
protocol BlockAVX512 {
    /// Subtracted from every unsigned weight byte to get the value (0: already the value).
    static var bias: Int8 { get }
    /// x = d·q + m (q4_1, q5_1): eight f16 m at octet byte 16.
    static var hasMin: Bool { get }
    static func decode(_ octet: UnsafeRawPointer, pair: Int) -> __m512i
}

/// [A, B] 16-byte nibble arrays → [A lo, A hi, B lo, B hi]: elements 0–15 and 16–31 of each row.
@inline(__always)
func nibbles(_ ab: UnsafeRawPointer) -> __m512i {
    let aabb: __m512i = SIMD8<Int64>(0, 1, 0, 1, 2, 3, 2, 3)
    var z = _mm512_permutexvar_epi64(aabb, _mm512_castsi256_si512(ab.loadUnaligned(as: __m256i.self)))
    z = _mm512_mask_blend_epi64(0xCC, z, _mm512_srli_epi16(z, 4))
    return _mm512_and_si512(z, _mm512_set1_epi8(0x0F))
}

/// Adds 16 to the bytes whose bit is set in the pair's two 32-bit fifth-bit words.
@inline(__always)
func fifthBits(_ z: __m512i, _ qh: UnsafeRawPointer) -> __m512i {
    _mm512_mask_add_epi8(z, qh.loadUnaligned(as: UInt64.self), z, _mm512_set1_epi8(0x10))
}

enum Q4_0: BlockAVX512 {
    static var bias: Int8 { 8 }
    static var hasMin: Bool { false }
    @inline(__always) static func decode(_ o: UnsafeRawPointer, pair: Int) -> __m512i { nibbles(o + 16 + 32 * pair) }
}

enum Q4_1: BlockAVX512 {
    static var bias: Int8 { 0 }
    static var hasMin: Bool { true }
    @inline(__always) static func decode(_ o: UnsafeRawPointer, pair: Int) -> __m512i { nibbles(o + 32 + 32 * pair) }
}

enum Q5_0: BlockAVX512 {
    static var bias: Int8 { 16 }
    static var hasMin: Bool { false }
    @inline(__always) static func decode(_ o: UnsafeRawPointer, pair: Int) -> __m512i {
        fifthBits(nibbles(o + 48 + 32 * pair), o + 16 + 8 * pair)
    }
}

enum Q5_1: BlockAVX512 {
    static var bias: Int8 { 0 }
    static var hasMin: Bool { true }
    @inline(__always) static func decode(_ o: UnsafeRawPointer, pair: Int) -> __m512i {
        fifthBits(nibbles(o + 64 + 32 * pair), o + 32 + 8 * pair)
    }
}

enum Q8_0: BlockAVX512 {
    /// −128 as a byte is 0x80 = 128 unsigned: values are stored + 128.
    static var bias: Int8 { -128 }
    static var hasMin: Bool { false }
    @inline(__always) static func decode(_ o: UnsafeRawPointer, pair: Int) -> __m512i {
        _mm512_xor_si512(o.loadUnaligned(fromByteOffset: 16 + 64 * pair, as: __m512i.self), _mm512_set1_epi8(-128))
    }
}
#endif

