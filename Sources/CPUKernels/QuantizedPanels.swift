// The fast path of `Matmul.quantized`: integer dot products of quantized weight rows with 8-bit
// activations, four weight rows (a "panel") at a time, in Swift SIMD.
//
// Results are bit-identical to `QuantizedDot.dotReference`: every block's integer sums are exact
// whatever order they are added in, and the float operations are the reference's, in its order
// (32-element blocks: ggml's eight lanes per row, fused multiply-adds, hsum_float_8; k-quants:
// one weight row per SIMD4<Float> lane).
//
// Loop order per panel: for each weight block, decode the four rows' block once into 16-bit
// lanes, then dot it with that block of every token's activations, accumulating into one
// SIMD4<Float> per token. Each weight byte is read once per call; panels are split across threads.
//
// Lane layout: 32 int8 values loaded as SIMD16<Int16> give the even elements as the sign-extended
// low bytes `(v << 8) >> 8` and the odd elements as `v >> 8`. Weights are decoded straight into
// that even/odd layout, so a block's dot product is `e·xe + o·xo` in 16-bit lanes (each lane is at
// most 2·128·127 < 2^15), widened to 32 bits by adding lane pairs.
import Core

typealias I16x16 = SIMD16<Int16>
typealias I16x8 = SIMD8<Int16>

// MARK: - Lane helpers

/// Even and odd int8 elements of 32 bytes read as 16 Int16 lanes, sign-extended.
@inline(__always)
func splitBytes(_ v: I16x16) -> (even: I16x16, odd: I16x16) { ((v &<< 8) &>> 8, v &>> 8) }

/// Sums adjacent Int16 lane pairs into Int32 lanes.
@inline(__always)
func widenPairs(_ p: I16x16) -> SIMD8<Int32> {
    let q = unsafeBitCast(p, to: SIMD8<Int32>.self)
    return ((q &<< 16) &>> 16) &+ (q &>> 16)
}

/// [Σa, Σb, Σc, Σd] by a transposed shuffle tree.
@inline(__always)
func sum4(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>, _ c: SIMD8<Int32>, _ d: SIMD8<Int32>) -> SIMD4<Int32> {
    let ab = SIMD8(lowHalf: a.lowHalf &+ a.highHalf, highHalf: b.lowHalf &+ b.highHalf)
    let cd = SIMD8(lowHalf: c.lowHalf &+ c.highHalf, highHalf: d.lowHalf &+ d.highHalf)
    let all = SIMD8(lowHalf: ab.evenHalf &+ ab.oddHalf, highHalf: cd.evenHalf &+ cd.oddHalf)
    return all.evenHalf &+ all.oddHalf
}

@inline(__always)
func loadI16x16(_ p: UnsafeRawPointer, _ offset: Int) -> I16x16 { p.loadUnaligned(fromByteOffset: offset, as: I16x16.self) }

/// Four f16 values (one per row, at `offset`) as floats: Core's `halfToFloat` in SIMD lanes,
/// exact like it (magnitude bits moved into f32 position, one exact multiply by 2^112).
@inline(__always)
func half4(_ p: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer), _ offset: Int) -> SIMD4<Float> {
    let h = SIMD4<UInt32>(UInt32(p.0.loadUnaligned(fromByteOffset: offset, as: UInt16.self)),
                          UInt32(p.1.loadUnaligned(fromByteOffset: offset, as: UInt16.self)),
                          UInt32(p.2.loadUnaligned(fromByteOffset: offset, as: UInt16.self)),
                          UInt32(p.3.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    let mag = (h & 0x7FFF) &<< 13
    let sign = (h & 0x8000) &<< 16
    let scaled = unsafeBitCast(unsafeBitCast(mag, to: SIMD4<Float>.self) * 0x1p112, to: SIMD4<UInt32>.self)
    // All ones where the exponent is all ones (Inf/NaN): exponent + 0x400 reaches bit 15 only
    // then. Arithmetic rather than a SIMDMask, which Swift lowers through memory.
    let special = SIMD4<UInt32>() &- (((h & 0x7C00) &+ 0x400) &>> 15)
    return unsafeBitCast((scaled & ~special) | ((mag | 0x7F80_0000) & special) | sign, to: SIMD4<Float>.self)
}

/// 16 packed nibbles (bytes j, j+1 …) as the even/odd lanes of the 32 elements they encode:
/// element j = low nibble of byte j, element j + 16 = high nibble of byte j.
@inline(__always)
func nibbles32(_ blk: UnsafeRawPointer, _ offset: Int) -> (I16x16, I16x16) {
    let u = blk.loadUnaligned(fromByteOffset: offset, as: I16x8.self)
    let m = I16x8(repeating: 0xF)
    return (I16x16(lowHalf: u & m, highHalf: (u &>> 4) & m), I16x16(lowHalf: (u &>> 8) & m, highHalf: (u &>> 12) & m))
}

/// The fifth bits (as 16) of q5_0 / q5_1: bit j of qh belongs to element j.
@inline(__always)
func fifthBits32(_ qh: UInt32) -> (I16x16, I16x16) {
    let v = I16x16(lowHalf: I16x8(repeating: Int16(truncatingIfNeeded: qh)),
                   highHalf: I16x8(repeating: Int16(truncatingIfNeeded: qh >> 16)))
    // Multiplying by 2^(15 − k) moves bit k to bit 15; an arithmetic shift spreads it over the
    // lane (no SIMDMask: Swift lowers those through memory).
    let evenShift = I16x16(-32768, 8192, 2048, 512, 128, 32, 8, 2, -32768, 8192, 2048, 512, 128, 32, 8, 2)
    let oddShift = I16x16(16384, 4096, 1024, 256, 64, 16, 4, 1, 16384, 4096, 1024, 256, 64, 16, 4, 1)
    let sixteen = I16x16(repeating: 16)
    return (((v &* evenShift) &>> 15) & sixteen, ((v &* oddShift) &>> 15) & sixteen)
}

// MARK: - 32-element blocks (q4_0, q4_1, q5_0, q5_1, q8_0)

protocol Block32 {
    /// Whether the block carries a min (x = d·q + m): q4_1, q5_1.
    static var hasMin: Bool { get }
    /// The block's 32 integers as even/odd lanes.
    static func decode(_ blk: UnsafeRawPointer) -> (I16x16, I16x16)
}

enum BlockQ4_0: Block32 {
    static var hasMin: Bool { false }
    @inline(__always) static func decode(_ blk: UnsafeRawPointer) -> (I16x16, I16x16) {
        let (e, o) = nibbles32(blk, 2)
        return (e &- 8, o &- 8)
    }
}

enum BlockQ4_1: Block32 {
    static var hasMin: Bool { true }
    @inline(__always) static func decode(_ blk: UnsafeRawPointer) -> (I16x16, I16x16) { nibbles32(blk, 4) }
}

enum BlockQ5_0: Block32 {
    static var hasMin: Bool { false }
    @inline(__always) static func decode(_ blk: UnsafeRawPointer) -> (I16x16, I16x16) {
        let (e, o) = nibbles32(blk, 6)
        let (he, ho) = fifthBits32(blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        return ((e | he) &- 16, (o | ho) &- 16)
    }
}

enum BlockQ5_1: Block32 {
    static var hasMin: Bool { true }
    @inline(__always) static func decode(_ blk: UnsafeRawPointer) -> (I16x16, I16x16) {
        let (e, o) = nibbles32(blk, 8)
        let (he, ho) = fifthBits32(blk.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        return (e | he, o | ho)
    }
}

enum BlockQ8_0: Block32 {
    static var hasMin: Bool { false }
    @inline(__always) static func decode(_ blk: UnsafeRawPointer) -> (I16x16, I16x16) { splitBytes(loadI16x16(blk, 2)) }
}

/// A weight matrix [rows, cols] in its GGUF block type (see Matmul.swift's WeightMatrix).
struct Weights {
    let type: GGMLType
    let rows: Int
    let cols: Int
    let data: UnsafeRawPointer
    let rowBytes: Int
    @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }
}

/// Quantized activations [tokens, cols] (see QuantizedActivations.swift).
struct Activations {
    let qs: UnsafePointer<Int8>
    let scales: UnsafePointer<Float>
    let sums: UnsafePointer<Float>
}

/// One panel's inputs and per-thread scratch.
struct Panel {
    let w: Weights
    let a: Activations
    let tokens: Int
    let y: UnsafeMutablePointer<Float>
    /// [tokens] per-token accumulators, lane i = row r0 + i.
    let acc: UnsafeMutablePointer<SIMD4<Float>>
    /// 32-element blocks and q6_K: [tokens, 4 rows] eight-lane accumulators.
    let acc8: UnsafeMutablePointer<SIMD8<Float>>
    /// q4_K / q5_K: [tokens] accumulators of the min terms.
    let accMin: UnsafeMutablePointer<SIMD4<Float>>
    /// q6_K: [4 rows] even- and odd-numbered sub-block scales.
    let scalesEven: UnsafeMutablePointer<SIMD8<Int32>>
    let scalesOdd: UnsafeMutablePointer<SIMD8<Int32>>
    /// K-quants: [4 rows, 16] decoded 32-element groups (even, odd) and their scales.
    let groups: UnsafeMutablePointer<I16x16>
    let groupScales: UnsafeMutablePointer<SIMD8<Int32>>
    /// q4_K / q5_K: [8] sub-block mins, lane i = row r0 + i.
    let mins: UnsafeMutablePointer<SIMD4<Int32>>

    /// The four rows of the panel at `r0` (rows past the end repeat the last row).
    @inline(__always)
    func rows(_ r0: Int) -> (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer) {
        let last = w.rows - 1
        return (w.row(r0), w.row(min(r0 + 1, last)), w.row(min(r0 + 2, last)), w.row(min(r0 + 3, last)))
    }

    @inline(__always)
    func store(_ r0: Int) {
        let rows = w.rows, valid = min(4, rows - r0)
        for t in 0..<tokens {
            let v = acc[t], out = y + t * rows + r0
            for i in 0..<valid { out[i] = v[i] }
        }
    }
}

/// One 32-element block of four weight rows, decoded.
struct Rows32 {
    var e0, o0, e1, o1, e2, o2, e3, o3: I16x16
    /// Per-row d and (q4_1, q5_1) m.
    var d, m: SIMD4<Float>

    @inline(__always)
    init<B: Block32>(_: B.Type, _ p: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer), _ off: Int) {
        (e0, o0) = B.decode(p.0 + off); (e1, o1) = B.decode(p.1 + off)
        (e2, o2) = B.decode(p.2 + off); (e3, o3) = B.decode(p.3 + off)
        d = half4(p, off)
        m = B.hasMin ? half4(p, off + 2) : SIMD4<Float>()
    }

    /// The four rows' integer lanes with one activation block: lane j of row i is the exact sum
    /// of the products of elements 4j…4j+3 (ggml's `mul_sum_us8_pairs_float` lanes).
    @inline(__always)
    func lanes(_ x: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let (xe, xo) = splitBytes(x.loadUnaligned(as: I16x16.self))
        return (SIMD8<Float>(widenPairs(e0 &* xe &+ o0 &* xo)), SIMD8<Float>(widenPairs(e1 &* xe &+ o1 &* xo)),
                SIMD8<Float>(widenPairs(e2 &* xe &+ o2 &* xo)), SIMD8<Float>(widenPairs(e3 &* xe &+ o3 &* xo)))
    }
}

/// ggml's hsum_float_8: (a0+a4 + a2+a6) + (a1+a5 + a3+a7).
@inline(__always)
func hsum8(_ a: SIMD8<Float>) -> Float {
    let h = a.lowHalf + a.highHalf
    let s = h.lowHalf + h.highHalf
    return s[0] + s[1]
}

/// Eight lanes fused-multiply-added: acc + d·v, one rounding per lane.
@inline(__always)
func fma8(_ acc: SIMD8<Float>, _ d: Float, _ v: SIMD8<Float>) -> SIMD8<Float> {
    acc.addingProduct(SIMD8(repeating: d), v)
}

extension Panel {
    /// 32-element blocks in ggml's x86 order (see `QuantizedDot.dotReference`): per row and token
    /// eight float accumulators, one fused multiply-add per block and lane, hsum at the end, plus
    /// the separately accumulated min terms.
    @inline(__always)
    func run32<B: Block32>(_: B.Type, r0: Int) {
        let p = rows(r0)
        let n = w.cols, blocks = n / 32, size = w.type.typeSize
        let rows = w.rows, valid = min(4, rows - r0)
        if tokens == 1 {
            // Decode: the accumulators stay in registers.
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var summs = SIMD4<Float>()
            let x = UnsafeRawPointer(a.qs)
            for b in 0..<blocks {
                let rb = Rows32(B.self, p, b * size)
                let d = rb.d * SIMD4(repeating: a.scales[b])
                let (l0, l1, l2, l3) = rb.lanes(x + b * 32)
                a0 = fma8(a0, d[0], l0); a1 = fma8(a1, d[1], l1); a2 = fma8(a2, d[2], l2); a3 = fma8(a3, d[3], l3)
                if B.hasMin { summs = summs.addingProduct(rb.m, SIMD4(repeating: a.sums[b])) }
            }
            let out = SIMD4(hsum8(a0), hsum8(a1), hsum8(a2), hsum8(a3)) + summs
            for i in 0..<valid { y[r0 + i] = out[i] }
            return
        }
        for t in 0..<4 * tokens { acc8[t] = SIMD8() }
        for t in 0..<tokens { acc[t] = SIMD4() }
        for b in 0..<blocks {
            let rb = Rows32(B.self, p, b * size)
            var x = UnsafeRawPointer(a.qs + b * 32)
            var ad = a.scales + b, asum = a.sums + b
            for t in 0..<tokens {
                let d = rb.d * SIMD4(repeating: ad.pointee)
                let (l0, l1, l2, l3) = rb.lanes(x)
                let o = acc8 + 4 * t
                o[0] = fma8(o[0], d[0], l0); o[1] = fma8(o[1], d[1], l1)
                o[2] = fma8(o[2], d[2], l2); o[3] = fma8(o[3], d[3], l3)
                if B.hasMin { acc[t] = acc[t].addingProduct(rb.m, SIMD4(repeating: asum.pointee)) }
                x += n; ad += blocks; asum += blocks
            }
        }
        for t in 0..<tokens {
            let o = acc8 + 4 * t
            let v = SIMD4(hsum8(o[0]), hsum8(o[1]), hsum8(o[2]), hsum8(o[3])) + acc[t]
            let out = y + t * rows + r0
            for i in 0..<valid { out[i] = v[i] }
        }
    }
}

// MARK: - K-quants (q4_K, q5_K, q6_K)

extension Panel {
    /// The four rows' 8 integer lanes (ggml's lanes) over decoded groups `range` of 32 elements
    /// (each lane scaled by its group's scale) against token activations `x`; exact in Int32.
    @inline(__always)
    func groupLanes(_ x: UnsafeRawPointer, _ range: Range<Int>) -> (SIMD8<Int32>, SIMD8<Int32>, SIMD8<Int32>, SIMD8<Int32>) {
        var s0 = SIMD8<Int32>(), s1 = SIMD8<Int32>(), s2 = SIMD8<Int32>(), s3 = SIMD8<Int32>()
        for g in range {
            let (xe, xo) = splitBytes(loadI16x16(x, g * 32))
            s0 &+= widenPairs(groups[2 * g] &* xe &+ groups[2 * g + 1] &* xo) &* groupScales[g]
            s1 &+= widenPairs(groups[16 + 2 * g] &* xe &+ groups[16 + 2 * g + 1] &* xo) &* groupScales[8 + g]
            s2 &+= widenPairs(groups[32 + 2 * g] &* xe &+ groups[32 + 2 * g + 1] &* xo) &* groupScales[16 + g]
            s3 &+= widenPairs(groups[48 + 2 * g] &* xe &+ groups[48 + 2 * g + 1] &* xo) &* groupScales[24 + g]
        }
        return (s0, s1, s2, s3)
    }

    /// Σ_g scale_g · (group g · x_g) of each of the four rows over the whole superblock.
    @inline(__always)
    func superblockSums(_ x: UnsafeRawPointer) -> SIMD4<Int32> {
        let (s0, s1, s2, s3) = groupLanes(x, 0..<8)
        return sum4(s0, s1, s2, s3)
    }

    /// q4_K / q5_K: x = d·sc·q − dmin·m per sub-block of 32.
    @inline(__always)
    func runK4(five: Bool, r0: Int) {
        let p = rows(r0)
        let n = w.cols, blocks = n / 256, size = w.type.typeSize
        let qsOffset = five ? 48 : 16
        for t in 0..<tokens { acc[t] = SIMD4(); accMin[t] = SIMD4() }
        for b in 0..<blocks {
            let off = b * size
            for i in 0..<4 {
                let blk = (i == 0 ? p.0 : i == 1 ? p.1 : i == 2 ? p.2 : p.3) + off
                for c in 0..<4 {
                    let u = loadI16x16(blk, qsOffset + 32 * c)
                    let m = I16x16(repeating: 0xF)
                    var lo = (u & m, (u &>> 8) & m), hi = ((u &>> 4) & m, (u &>> 12) & m)
                    if five {
                        let h = loadI16x16(blk, 16), one = I16x16(repeating: 1)
                        let s = Int16(2 * c)
                        lo.0 |= ((h &>> s) & one) &<< 4
                        lo.1 |= ((h &>> (s + 8)) & one) &<< 4
                        hi.0 |= ((h &>> (s + 1)) & one) &<< 4
                        hi.1 |= ((h &>> (s + 9)) & one) &<< 4
                    }
                    groups[16 * i + 4 * c] = lo.0; groups[16 * i + 4 * c + 1] = lo.1
                    groups[16 * i + 4 * c + 2] = hi.0; groups[16 * i + 4 * c + 3] = hi.1
                    let (sc0, m0) = QuantK.scaleMin(blk, 4, 2 * c)
                    let (sc1, m1) = QuantK.scaleMin(blk, 4, 2 * c + 1)
                    groupScales[8 * i + 2 * c] = SIMD8(repeating: Int32(sc0))
                    groupScales[8 * i + 2 * c + 1] = SIMD8(repeating: Int32(sc1))
                    mins[2 * c][i] = Int32(m0)
                    mins[2 * c + 1][i] = Int32(m1)
                }
            }
            let d = half4(p, off), dmin = half4(p, off + 2)
            // llama.cpp's repacked GEMM (whole groups of 4 tokens) rounds once per 64 elements,
            // its GEMV (the remaining tokens) once per superblock.
            let gemmTokens = tokens - tokens % 4
            for t in 0..<tokens {
                let x = UnsafeRawPointer(a.qs + t * n + b * 256)
                let bsums = a.sums + t * (n / 16) + b * 16
                let scale = SIMD4<Float>(repeating: a.scales[t * blocks + b])
                if t < gemmTokens {
                    for pair in 0..<4 {
                        let sumi = pairSums(x, pair)
                        var summ = SIMD4<Int32>()
                        for s in 2 * pair..<2 * pair + 2 {
                            summ &+= mins[s] &* SIMD4(repeating: Int32(bsums[2 * s] + bsums[2 * s + 1]))
                        }
                        acc[t] = acc[t].addingProduct(SIMD4<Float>(sumi), d * scale)
                        accMin[t] = accMin[t].addingProduct(SIMD4<Float>(summ), dmin * scale)
                    }
                } else {
                    let sumi = superblockSums(x)
                    var summ = SIMD4<Int32>()
                    for s in 0..<8 { summ &+= mins[s] &* SIMD4(repeating: Int32(bsums[2 * s] + bsums[2 * s + 1])) }
                    acc[t] = acc[t].addingProduct(SIMD4<Float>(sumi), d * scale)
                    accMin[t] = accMin[t].addingProduct(SIMD4<Float>(summ), dmin * scale)
                }
            }
        }
        for t in 0..<tokens { acc[t] -= accMin[t] }
        store(r0)
    }

    /// q6_K in ggml's lane order (see `QuantizedDot.dotReference`): unsigned 6-bit quants,
    /// 8 integer lanes per row with the −32 offset taken out per lane through the block sums,
    /// one fused multiply-add per lane and superblock, hsum_float_8 at the end.
    @inline(__always)
    func runQ6K(r0: Int) {
        let p = rows(r0)
        let n = w.cols, blocks = n / 256
        let rows = w.rows, valid = min(4, rows - r0)
        // llama.cpp's tiled k-quant matmul from 8 activation rows on (see the reference).
        let tiled = tokens >= 8
        for t in 0..<4 * tokens { acc8[t] = SIMD8() }
        for t in 0..<tokens { acc[t] = SIMD4() }
        for b in 0..<blocks {
            let off = b * 210
            var dw = SIMD4<Float>()
            for i in 0..<4 {
                let blk = (i == 0 ? p.0 : i == 1 ? p.1 : i == 2 ? p.2 : p.3) + off
                for half in 0..<2 {
                    let a0 = loadI16x16(blk, 64 * half), b0 = loadI16x16(blk, 64 * half + 32)
                    let h = loadI16x16(blk, 128 + 32 * half)
                    let f = I16x16(repeating: 0xF), three = I16x16(repeating: 3)
                    // Group g of this half: (low bits source, nibble shift, high-bit shift).
                    func group(_ q: I16x16, _ ns: Int16, _ hs: Int16) -> (I16x16, I16x16) {
                        ((q &>> ns) & f | ((h &>> hs) & three) &<< 4,
                         (q &>> (ns + 8)) & f | ((h &>> (hs + 8)) & three) &<< 4)
                    }
                    let g0 = group(a0, 0, 0), g1 = group(b0, 0, 2), g2 = group(a0, 4, 4), g3 = group(b0, 4, 6)
                    let base = 16 * i + 8 * half
                    groups[base] = g0.0; groups[base + 1] = g0.1; groups[base + 2] = g1.0; groups[base + 3] = g1.1
                    groups[base + 4] = g2.0; groups[base + 5] = g2.1; groups[base + 6] = g3.0; groups[base + 7] = g3.1
                    for g in 0..<4 {
                        let k = 4 * half + g
                        let sc0 = Int32(blk.load(fromByteOffset: 192 + 2 * k, as: Int8.self))
                        let sc1 = Int32(blk.load(fromByteOffset: 192 + 2 * k + 1, as: Int8.self))
                        groupScales[8 * i + k] = SIMD8(lowHalf: SIMD4(repeating: sc0), highHalf: SIMD4(repeating: sc1))
                    }
                }
                // Even and odd sub-block scales, for the per-lane offset correction.
                var even = SIMD8<Int32>(), odd = SIMD8<Int32>()
                for j in 0..<8 {
                    even[j] = Int32(blk.load(fromByteOffset: 192 + 2 * j, as: Int8.self))
                    odd[j] = Int32(blk.load(fromByteOffset: 192 + 2 * j + 1, as: Int8.self))
                }
                scalesEven[i] = even; scalesOdd[i] = odd
                dw[i] = halfToFloat(blk.loadUnaligned(fromByteOffset: 208, as: UInt16.self))
            }
            for t in 0..<tokens {
                let (s0, s1, s2, s3) = groupLanes(UnsafeRawPointer(a.qs + t * n + b * 256), 0..<8)
                let bs = a.sums + t * (n / 16) + b * 16
                var bsE = SIMD8<Int32>(), bsO = SIMD8<Int32>()
                for j in 0..<8 { bsE[j] = Int32(bs[2 * j]); bsO[j] = Int32(bs[2 * j + 1]) }
                let l0 = s0 &- ((scalesEven[0] &* bsE &+ scalesOdd[0] &* bsO) &<< 5)
                let l1 = s1 &- ((scalesEven[1] &* bsE &+ scalesOdd[1] &* bsO) &<< 5)
                let l2 = s2 &- ((scalesEven[2] &* bsE &+ scalesOdd[2] &* bsO) &<< 5)
                let l3 = s3 &- ((scalesEven[3] &* bsE &+ scalesOdd[3] &* bsO) &<< 5)
                let ad = SIMD4<Float>(repeating: a.scales[t * blocks + b])
                if tiled {
                    let total = SIMD4<Int32>(l0.wrappedSum(), l1.wrappedSum(), l2.wrappedSum(), l3.wrappedSum())
                    acc[t] = acc[t].addingProduct(SIMD4<Float>(total) * dw, ad)
                } else {
                    let d = ad * dw
                    let o = acc8 + 4 * t
                    o[0] = fma8(o[0], d[0], SIMD8<Float>(l0)); o[1] = fma8(o[1], d[1], SIMD8<Float>(l1))
                    o[2] = fma8(o[2], d[2], SIMD8<Float>(l2)); o[3] = fma8(o[3], d[3], SIMD8<Float>(l3))
                }
            }
        }
        for t in 0..<tokens {
            let o = acc8 + 4 * t
            let out = y + t * rows + r0
            let v = tiled ? acc[t] : SIMD4(hsum8(o[0]), hsum8(o[1]), hsum8(o[2]), hsum8(o[3]))
            for i in 0..<valid { out[i] = v[i] }
        }
    }

    /// The four rows' scaled integer sums over groups 2·pair and 2·pair + 1 (64 elements).
    @inline(__always)
    func pairSums(_ x: UnsafeRawPointer, _ pair: Int) -> SIMD4<Int32> {
        let (s0, s1, s2, s3) = groupLanes(x, 2 * pair..<2 * pair + 2)
        return sum4(s0, s1, s2, s3)
    }


}

// MARK: - Entry

/// This file is compiled twice: into CPUKernels for the baseline x86-64 (SSE2) and, through a
/// symbolic link, into CPUKernelsAVX2 with `-target-cpu haswell`; `Matmul.quantized` picks one
/// at run time from the CPU's flags. It depends on Core only and takes raw pointers.
public enum QuantizedPanels {
    /// y[t, r] (y is [tokens, rows]) for the panels of four weight rows in `panels`.
    /// `qs` [tokens, cols] int8, `scales` / `sums` as in QuantizedActivations.
    public static func run(type: GGMLType, rows: Int, cols: Int, weights: UnsafeRawPointer, rowBytes: Int,
                           qs: UnsafePointer<Int8>, scales: UnsafePointer<Float>, sums: UnsafePointer<Float>,
                           y: UnsafeMutablePointer<Float>, tokens: Int, panels: Range<Int>) {
        let w = Weights(type: type, rows: rows, cols: cols, data: weights, rowBytes: rowBytes)
        let a = Activations(qs: qs, scales: scales, sums: sums)
        let acc = UnsafeMutablePointer<SIMD4<Float>>.allocate(capacity: tokens)
        let acc8 = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 4 * tokens)
        let accMin = UnsafeMutablePointer<SIMD4<Float>>.allocate(capacity: tokens)
        let scalesEven = UnsafeMutablePointer<SIMD8<Int32>>.allocate(capacity: 4)
        let scalesOdd = UnsafeMutablePointer<SIMD8<Int32>>.allocate(capacity: 4)
        let groups = UnsafeMutablePointer<I16x16>.allocate(capacity: 64)
        let groupScales = UnsafeMutablePointer<SIMD8<Int32>>.allocate(capacity: 32)
        let mins = UnsafeMutablePointer<SIMD4<Int32>>.allocate(capacity: 8)
        defer { acc.deallocate(); acc8.deallocate(); accMin.deallocate(); scalesEven.deallocate(); scalesOdd.deallocate(); groups.deallocate(); groupScales.deallocate(); mins.deallocate() }
        let panel = Panel(w: w, a: a, tokens: tokens, y: y, acc: acc, acc8: acc8, accMin: accMin,
                          scalesEven: scalesEven, scalesOdd: scalesOdd, groups: groups, groupScales: groupScales, mins: mins)
        for p in panels {
            let r0 = 4 * p
            switch type {
            case .q4_0: panel.run32(BlockQ4_0.self, r0: r0)
            case .q4_1: panel.run32(BlockQ4_1.self, r0: r0)
            case .q5_0: panel.run32(BlockQ5_0.self, r0: r0)
            case .q5_1: panel.run32(BlockQ5_1.self, r0: r0)
            case .q8_0: panel.run32(BlockQ8_0.self, r0: r0)
            case .q4_K: panel.runK4(five: false, r0: r0)
            case .q5_K: panel.runK4(five: true, r0: r0)
            case .q6_K: panel.runQ6K(r0: r0)
            default: preconditionFailure("no integer dot product for \(type)")
            }
        }
    }
}
