// Half.swift: IEEE-754 binary16 ("f16", "half") and bfloat16 ("bf16") conversions, plus the small
// raw-pointer and rounding helpers shared by every quant family in this folder. The conversions are
// bit-exact with numpy's software float16 casts (`npy_halfbits_to_floatbits` /
// `npy_floatbits_to_halfbits`: round to nearest even, subnormals kept, NaN payloads truncated and a
// NaN that would lose its whole payload becomes 0x7C01) and with ggml/gguf-py's bf16 rule (round to
// nearest even, NaN forced quiet). Shapes: none; everything here is per element.
//
// binary16:  [15] sign | [14:10] exponent (bias 15) | [9:0] mantissa
// bfloat16:  [15] sign | [14:7]  exponent (bias 127) | [6:0] mantissa  (= top half of an f32)

// MARK: - f16

/// Converts IEEE half bits to a Float (exact; NaN payloads are kept, not quieted, like numpy).
@inline(__always)
public func halfToFloat(_ h: UInt16) -> Float {
    // Exponent and mantissa moved into f32 position read as a value 2^-112 times too small (for
    // subnormal halves too: they land on f32 subnormals); one exact multiply fixes the scale.
    // Inf/NaN keep their payload. Branch-free so row loops vectorize.
    let mag = UInt32(h & 0x7FFF) << 13
    let sign = UInt32(h & 0x8000) << 16
    let scaled = (Float(bitPattern: mag) * 0x1p112).bitPattern
    let bits = (h & 0x7C00) == 0x7C00 ? (mag | 0x7F80_0000) : scaled
    return Float(bitPattern: bits | sign)
}

/// Converts a Float to IEEE half bits, rounding to nearest even (numpy's `astype(np.float16)`).
@inline(__always)
public func floatToHalf(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
    let a = x & 0x7FFF_FFFF
    if a >= 0x7F80_0000 {
        if a == 0x7F80_0000 { return sign | 0x7C00 }
        // NaN: keep the top mantissa bits; never let it collapse into an infinity.
        var h = UInt16(truncatingIfNeeded: 0x7C00 + ((a & 0x007F_FFFF) >> 13))
        if h == 0x7C00 { h += 1 }
        return sign | h
    }
    if a >= 0x477F_F000 { return sign | 0x7C00 }           // ≥ 65520 rounds to infinity
    if a >= 0x3880_0000 {                                  // normal half (≥ 2^-14)
        var h = ((a >> 23) - 112) << 10 | ((a & 0x007F_FFFF) >> 13)
        let rem = a & 0x1FFF
        if rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1) { h += 1 }   // carry may bump the exponent: fine
        return sign | UInt16(truncatingIfNeeded: h)
    }
    // Subnormal half or zero: value = m × 2^(e-150); in units of 2^-24 that is m >> (126 - e).
    let e = a >> 23
    let shift = 126 - Int(e)
    if shift > 24 { return sign }                          // < 2^-25, or exactly it (tie to even 0)
    let m = (a & 0x007F_FFFF) | 0x0080_0000
    var h = m >> UInt32(shift)
    let rem = m & ((1 << UInt32(shift)) - 1)
    let half = UInt32(1) << UInt32(shift - 1)
    if rem > half || (rem == half && (h & 1) == 1) { h += 1 }
    return sign | UInt16(truncatingIfNeeded: h)
}

// MARK: - bf16

/// Converts bfloat16 bits to a Float (exact).
@inline(__always)
public func bf16ToFloat(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
}

/// Converts a Float to bfloat16 bits: round to nearest even; NaN kept NaN and forced quiet
/// (ggml's `ggml_compute_fp32_to_bf16`, gguf-py's `BF16.quantize_blocks`).
@inline(__always)
public func floatToBF16(_ f: Float) -> UInt16 {
    let n = f.bitPattern
    if n & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: n >> 16) | 0x0040 }
    let rounded = (UInt64(n) + 0x7FFF + UInt64((n >> 16) & 1)) >> 16
    return UInt16(truncatingIfNeeded: rounded)
}

// MARK: - Block access helpers (little-endian, unaligned)

extension UnsafeRawPointer {
    @inline(__always) func loadU8(_ offset: Int) -> UInt8 { load(fromByteOffset: offset, as: UInt8.self) }
    @inline(__always) func loadI8(_ offset: Int) -> Int8 { load(fromByteOffset: offset, as: Int8.self) }
    @inline(__always) func loadU16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) func loadI16(_ offset: Int) -> Int16 { Int16(bitPattern: loadU16(offset)) }
    @inline(__always) func loadU32(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    /// An f16 field widened to Float.
    @inline(__always) func loadHalf(_ offset: Int) -> Float { halfToFloat(loadU16(offset)) }
    @inline(__always) func loadF32(_ offset: Int) -> Float { Float(bitPattern: loadU32(offset)) }
}

extension UnsafeMutableRawPointer {
    @inline(__always) func loadU8(_ offset: Int) -> UInt8 { load(fromByteOffset: offset, as: UInt8.self) }
    @inline(__always) func storeU8(_ v: UInt8, _ offset: Int) { storeBytes(of: v, toByteOffset: offset, as: UInt8.self) }
    @inline(__always) func storeU16(_ v: UInt16, _ offset: Int) {
        storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt16.self)
    }
    @inline(__always) func storeU32(_ v: UInt32, _ offset: Int) {
        storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt32.self)
    }
    /// Stores a Float as an f16 field.
    @inline(__always) func storeHalf(_ v: Float, _ offset: Int) { storeU16(floatToHalf(v), offset) }
    @inline(__always) func storeF32(_ v: Float, _ offset: Int) { storeU32(v.bitPattern, offset) }
}

// MARK: - Rounding

/// Rounds half to even and clamps to `lo...hi`; NaN maps to 0 (or `lo` when 0 is out of range).
/// Never traps: the quantizers see arbitrary user data, NaN and infinities included.
@inline(__always)
func quantRound(_ x: Float, _ lo: Int, _ hi: Int) -> Int {
    guard x == x else { return lo < 0 && hi > 0 ? 0 : lo }
    if x <= Float(lo) { return lo }
    if x >= Float(hi) { return hi }
    return Int(x.rounded(.toNearestOrEven))
}
