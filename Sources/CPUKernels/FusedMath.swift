// The float kernels whose arithmetic is defined by fused multiply-adds (llama.cpp's SiLU, GEGLU's
// f16 table, the f16 flash-attention loops). Compiled three times: into CPUKernels for the
// baseline x86-64 (where a fused multiply-add is a libm call) and, through symbolic links, into
// CPUKernelsAVX2 with `-target-cpu haswell` (one `vfmadd` instruction, 16-lane vectors as two
// ymm) and CPUKernelsAVX512 with `-target-cpu cascadelake` (one zmm); CPUKernels calls the copy
// the CPU's flags allow. All three give the same bits (lane-wise operations, one reduction
// order; AttentionTests and FusedMathTests compare them). Core and CSupport only.
import Core
import Foundation
import CSupport
#if SWIFTKT_AVX2
import _Builtin_intrinsics.intel
#endif

public enum FusedMath {
    // MARK: - exp and SiLU as ggml computes them

    /// e^x as ggml's AVX-512 `ggml_v_expf` computes it (ARM's optimized-routines polynomial:
    /// n = round(x·log2 e), b = x − n·ln 2 in two fused steps, a degree-5 polynomial in fused
    /// multiply-adds, scaled by 2^n); within 1.5 ulp of e^x, and bit-identical to llama.cpp.
    @inline(__always)
    public static func expGGML(_ x: Float) -> Float {
        let r: Float = 0x1.8p23
        let z = r.addingProduct(x, 0x1.715476p+0)
        let n = z - r
        let b = (x.addingProduct(-n, 0x1.62e4p-1)).addingProduct(-n, 0x1.7f7d1cp-20)
        let u = b * b
        let p = (Float(0x1.573e2ep-5).addingProduct(0x1.0e4020p-7, b))
        let q = (Float(0x1.fffdb6p-2).addingProduct(0x1.555e66p-3, b))
        let j = Float(1).addingProduct(0x1.ffffecp-1, b).addingProduct(q.addingProduct(p, u), u)
        if abs(n) > 192 { return n <= 0 ? 0 : .infinity }
        return scalbn(j, Int(n))
    }

    /// `expGGML` on 16 lanes; lanes whose exponent leaves the normal range take the scalar path.
    @inline(__always)
    public static func expGGML16(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let r = SIMD16<Float>(repeating: 0x1.8p23)
        let z = r.addingProduct(x, SIMD16(repeating: 0x1.715476p+0))
        let n = z - r
        let b = x.addingProduct(-n, SIMD16(repeating: 0x1.62e4p-1)).addingProduct(-n, SIMD16(repeating: 0x1.7f7d1cp-20))
        let u = b * b
        let p = SIMD16<Float>(repeating: 0x1.573e2ep-5).addingProduct(SIMD16(repeating: 0x1.0e4020p-7), b)
        let q = SIMD16<Float>(repeating: 0x1.fffdb6p-2).addingProduct(SIMD16(repeating: 0x1.555e66p-3), b)
        let j = SIMD16<Float>(repeating: 1).addingProduct(SIMD16(repeating: 0x1.ffffecp-1), b).addingProduct(q.addingProduct(p, u), u)
        // 2^n for n in −126…127 built from its bits (z's low mantissa bits hold n + 0x400000).
        // (Range checks by an unsigned maximum: Swift lowers SIMDMask reductions through memory.)
        let ni = unsafeBitCast(z, to: SIMD16<Int32>.self) &- 0x4B40_0000
        if unsafeBitCast(ni &+ 126, to: SIMD16<UInt32>.self).max() <= 253 {
            return j * unsafeBitCast((ni &+ 127) &<< 23, to: SIMD16<Float>.self)
        }
        var out = SIMD16<Float>()
        for i in 0..<16 { out[i] = expGGML(x[i]) }
        return out
    }

    /// gate[i] = silu(gate[i]) · up[i] as llama.cpp's `ggml_vec_swiglu_f32` (AVX-512 build):
    /// x / (1 + expGGML(0 − x)) on 16 lanes, the C library's expf for a tail.
    public static func swiglu(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        var i = 0
        let g = UnsafeMutableRawPointer(gate), u = UnsafeRawPointer(up)
        while i + 16 <= count {
            let x = g.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            let y = x / (1 + expGGML16(0 - x)) * u.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            g.storeBytes(of: y, toByteOffset: 4 * i, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count { gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i]; i += 1 }
    }

    // MARK: - f16 flash attention, one query

    /// llama.cpp's GEGLU through its f16 GELU table (`Ops.gatedActivation`'s `.geluTable`):
    /// gate[i] = +0 where gate[i] ≤ −10, gate[i]·up[i] where gate[i] ≥ 10, else
    /// f32(table[f16(gate[i])])·up[i]. `table` holds gelu of every f16 bit pattern (65 536 entries).
    public static func gegluTable(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int,
                                  table: UnsafePointer<UInt16>) {
        var i = 0
        #if SWIFTKT_AVX2
        // Eight at a time: one F16C conversion each way, the lookups scalar.
        while i + 8 <= count {
            let x = UnsafeRawPointer(gate + i).loadUnaligned(as: SIMD8<Float>.self)
            let u = UnsafeRawPointer(up + i).loadUnaligned(as: SIMD8<Float>.self)
            let h = unsafeBitCast(swiftkt_float_to_half8(x), to: SIMD8<UInt16>.self)
            var g = SIMD8<UInt16>()
            for l in 0..<8 { g[l] = table[Int(h[l])] }
            var r = SIMD8<Float>(_mm256_cvtph_ps(unsafeBitCast(g, to: __m128i.self))) * u
            r.replace(with: x * u, where: x .>= 10)
            r.replace(with: 0, where: x .<= -10)
            UnsafeMutableRawPointer(gate + i).storeBytes(of: r, as: SIMD8<Float>.self)
            i += 8
        }
        #endif
        while i < count {
            let x = gate[i]
            gate[i] = x <= -10 ? 0 : (x >= 10 ? x : halfToFloat(table[Int(floatToHalf(x))])) * up[i]
            i += 1
        }
    }

    /// x rounded to the nearest f16 value (ties to even), as a float. In half's normal range
    /// this is rounding the float mantissa to 10 bits; elsewhere the full conversion runs.
    @inline(__always)
    public static func roundToHalf(_ x: Float) -> Float {
        let a = abs(x)
        if a >= 0x1p-14 && a < 65504 {
            let b = x.bitPattern
            return Float(bitPattern: (b &+ 0xFFF &+ ((b >> 13) & 1)) & ~0x1FFF)
        }
        return halfToFloat(floatToHalf(x))
    }

    /// `roundToHalf` on 16 lanes.
    @inline(__always)
    static func roundToHalf16(_ x: SIMD16<Float>) -> SIMD16<Float> {
        #if SWIFTKT_AVX2
        // F16C (the AVX2 build): the same IEEE rounding in two instructions per 8 lanes.
        return SIMD16(lowHalf: swiftkt_round_to_half8(x.lowHalf), highHalf: swiftkt_round_to_half8(x.highHalf))
        #else
        let a = unsafeBitCast(x, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF
        // Normal half range: 2^-14 ≤ |x| < 65504 (bit patterns 0x3880_0000 ..< 0x477F_E000),
        // checked by an unsigned maximum (Swift lowers SIMDMask reductions through memory).
        if (a &- 0x3880_0000).max() < 0x477F_E000 - 0x3880_0000 {
            let b = unsafeBitCast(x, to: SIMD16<UInt32>.self)
            return unsafeBitCast((b &+ 0xFFF &+ ((b &>> 13) & 1)) & ~0x1FFF, to: SIMD16<Float>.self)
        }
        var out = SIMD16<Float>()
        for i in 0..<16 { out[i] = roundToHalf(x[i]) }
        return out
        #endif
    }

    /// 16 IEEE halves as floats, exactly (Core's `halfToFloat` in lanes).
    @inline(__always)
    static func halves16(_ p: UnsafeRawPointer) -> SIMD16<Float> {
        #if SWIFTKT_AVX2
        // F16C (the AVX2 build): the same exact conversion in two instructions.
        return SIMD16(lowHalf: _mm256_cvtph_ps(p.loadUnaligned(as: __m128i.self)),
                      highHalf: _mm256_cvtph_ps(p.loadUnaligned(fromByteOffset: 16, as: __m128i.self)))
        #else
        let h = SIMD16<UInt32>(truncatingIfNeeded: p.loadUnaligned(as: SIMD16<UInt16>.self))
        let mag = (h & 0x7FFF) &<< 13
        let sign = (h & 0x8000) &<< 16
        let scaled = unsafeBitCast(unsafeBitCast(mag, to: SIMD16<Float>.self) * 0x1p112, to: SIMD16<UInt32>.self)
        let special = SIMD16<UInt32>() &- (((h & 0x7C00) &+ 0x400) &>> 15)
        return unsafeBitCast((scaled & ~special) | ((mag | 0x7F80_0000) & special) | sign, to: SIMD16<Float>.self)
        #endif
    }

    /// The q·k dot product in ggml's order (ggml_vec_dot_f16, AVX-512 build): four 16-lane
    /// accumulators, element i of each 64-element step fused-multiply-added into lane i % 16 of
    /// accumulator (i / 16) % 4; the accumulators added (0+2, 1+3, then the two), the 16 lanes
    /// reduced as GCC's `_mm512_reduce_add_ps` does (halves, quarters, pairs); a tail of fewer
    /// than 64 elements added in double, product by product. `y` holds halves when `yHalf`.
    @inline(__always)
    public static func dotGGMLF16(_ x: UnsafePointer<Float>, _ y: UnsafeRawPointer, _ n: Int, yHalf: Bool) -> Float {
        let steps = n / 64
        var sum: Double = 0
        @inline(__always) func load(_ i: Int) -> SIMD16<Float> {
            yHalf ? halves16(y + 2 * i) : y.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        }
        if steps > 0 {
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
            let xr = UnsafeRawPointer(x)
            for s in 0..<steps {
                let i = s * 64
                a0 = a0.addingProduct(xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self), load(i))
                a1 = a1.addingProduct(xr.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self), load(i + 16))
                a2 = a2.addingProduct(xr.loadUnaligned(fromByteOffset: 4 * i + 128, as: SIMD16<Float>.self), load(i + 32))
                a3 = a3.addingProduct(xr.loadUnaligned(fromByteOffset: 4 * i + 192, as: SIMD16<Float>.self), load(i + 48))
            }
            let v = (a0 + a2) + (a1 + a3)
            let h8 = v.highHalf + v.lowHalf
            let h4 = h8.highHalf + h8.lowHalf
            sum = Double((h4[0] + h4[2]) + (h4[1] + h4[3]))
        }
        for i in steps * 64..<n {
            let yi = yHalf ? halfToFloat(y.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                           : y.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
            sum += Double(x[i] * yi)
        }
        return Float(sum)
    }

    /// llama.cpp's CPU flash attention for `heads` query heads that share one KV head (q and
    /// out hold them one after another, headDim floats each) over f16 keys/values (row p at
    /// `k + p·stride`, `v + p·stride` elements: halves, or when `!kvHalf` the same values already
    /// widened to float): q rounded to f16; online softmax with the C library's expf; the f16
    /// accumulator acc ← f16(fma(v, w, acc)), rescaled by f16(acc·ms) when the maximum grows;
    /// S ← fma(S, ms, w); out = acc · (1/S). The rows are those of several ranges (ranges[2i]…
    /// ranges[2i + 1], ascending and disjoint) taken as one: a single range first…last is the
    /// dense decode step; block-sparse attention passes the blocks it chose, each row getting the
    /// same operations in the same order. `scratch` holds heads·(2·headDim + 3·rows) floats,
    /// rows = the rows in all ranges.
    ///
    /// Three passes, each element's operations in the dense loop's order: every head's scores
    /// (a key row is read once for the group); each head's online-softmax scalars per row (the
    /// rescale factor ms, 1 when the maximum does not grow, and the weight w), whose `expf`
    /// calls depend only on the running maximum and so overlap; then 32 accumulator elements of
    /// up to four heads at a time in registers over every row, a value row read once for them
    /// (acc ← f16(acc·ms) only where ms ≠ 1: acc always holds f16 values, so a factor of exactly
    /// 1 changes nothing).
    public static func flashQuery(q: UnsafePointer<Float>, heads: Int = 1, k: UnsafeRawPointer, v: UnsafeRawPointer, kvHalf: Bool,
                                  stride: Int, ranges: UnsafePointer<Int>, rangeCount: Int, headDim: Int, scale: Float,
                                  softcap: Float?, out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let esize = kvHalf ? 2 : 4
        var rows = 0
        for r in 0..<rangeCount { rows += ranges[2 * r + 1] - ranges[2 * r] + 1 }
        let qh = scratch, acc = scratch + heads * headDim, scores = acc + heads * headDim
        let factors = scores + heads * rows, weights = factors + heads * rows
        let vector = headDim % 16 == 0
        for i in 0..<(heads * headDim) { qh[i] = roundToHalf(q[i]); acc[i] = 0 }
        // 1. Every head's scores, key by key (independent dot products, whose loads overlap).
        var n = 0
        for r in 0..<rangeCount {
            for p in ranges[2 * r]...ranges[2 * r + 1] {
                let kp = k + esize * p * stride
                swiftkt_prefetch(kp + esize * 8 * stride)
                for g in 0..<heads {
                    var s = dotGGMLF16(qh + g * headDim, kp, headDim, yHalf: kvHalf) * scale
                    if let cap = softcap { s = cap * tanh(s / cap) }
                    scores[g * rows + n] = s
                }
                n += 1
            }
        }
        // 2. Each head's online-softmax scalars: rescale factor and weight per row, and the sum.
        var sums = [Float](repeating: 0, count: heads)
        for g in 0..<heads {
            var m = -Float.infinity, sum: Float = 0
            let sc = scores + g * rows, f = factors + g * rows, w = weights + g * rows
            for i in 0..<rows {
                let s = sc[i]
                var ms: Float = 1, wi: Float = 1
                if s > m {
                    ms = exp(m - s)
                    m = s
                } else {
                    wi = exp(s - m)
                }
                f[i] = ms
                w[i] = wi
                sum = wi.addingProduct(sum, ms)
            }
            sums[g] = sum
        }
        // 3. The accumulators.
        if vector {
            var g0 = 0
            while g0 < heads {
                let gn = Swift.min(4, heads - g0)
                var d = 0
                while d < headDim {
                    let two = d + 32 <= headDim
                    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                    var b0 = SIMD16<Float>(), b1 = SIMD16<Float>(), b2 = SIMD16<Float>(), b3 = SIMD16<Float>()
                    @inline(__always) func step(_ a: inout SIMD16<Float>, _ b: inout SIMD16<Float>, _ g: Int, _ i: Int,
                                                _ va: SIMD16<Float>, _ vb: SIMD16<Float>) {
                        let ms = factors[g * rows + i], wv = SIMD16<Float>(repeating: weights[g * rows + i])
                        if ms != 1 {
                            let f = SIMD16<Float>(repeating: ms)
                            a = roundToHalf16(a * f)
                            if two { b = roundToHalf16(b * f) }
                        }
                        a = roundToHalf16(a.addingProduct(va, wv))
                        if two { b = roundToHalf16(b.addingProduct(vb, wv)) }
                    }
                    var i = 0
                    for r in 0..<rangeCount {
                        for p in ranges[2 * r]...ranges[2 * r + 1] {
                            let vr = v + esize * (p * stride + d)
                            swiftkt_prefetch(vr + esize * 8 * stride)
                            let va = kvHalf ? halves16(vr) : vr.loadUnaligned(as: SIMD16<Float>.self)
                            let vb = !two ? va : kvHalf ? halves16(vr + 32) : vr.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
                            step(&a0, &b0, g0, i, va, vb)
                            if gn > 1 { step(&a1, &b1, g0 + 1, i, va, vb) }
                            if gn > 2 { step(&a2, &b2, g0 + 2, i, va, vb) }
                            if gn > 3 { step(&a3, &b3, g0 + 3, i, va, vb) }
                            i += 1
                        }
                    }
                    @inline(__always) func store(_ g: Int, _ a: SIMD16<Float>, _ b: SIMD16<Float>) {
                        let ar = UnsafeMutableRawPointer(acc + (g0 + g) * headDim + d)
                        ar.storeBytes(of: a, as: SIMD16<Float>.self)
                        if two { ar.storeBytes(of: b, toByteOffset: 64, as: SIMD16<Float>.self) }
                    }
                    store(0, a0, b0)
                    if gn > 1 { store(1, a1, b1) }
                    if gn > 2 { store(2, a2, b2) }
                    if gn > 3 { store(3, a3, b3) }
                    d += two ? 32 : 16
                }
                g0 += gn
            }
        } else {
            for g in 0..<heads {
                let a = acc + g * headDim
                var i = 0
                for r in 0..<rangeCount {
                    for p in ranges[2 * r]...ranges[2 * r + 1] {
                        let ms = factors[g * rows + i], w = weights[g * rows + i]
                        i += 1
                        if ms != 1 { for d in 0..<headDim { a[d] = roundToHalf(a[d] * ms) } }
                        let vr = v + esize * p * stride
                        for d in 0..<headDim {
                            let vv = kvHalf ? halfToFloat(vr.loadUnaligned(fromByteOffset: 2 * d, as: UInt16.self))
                                            : vr.loadUnaligned(fromByteOffset: 4 * d, as: Float.self)
                            a[d] = roundToHalf(a[d].addingProduct(vv, w))
                        }
                    }
                }
            }
        }
        for g in 0..<heads {
            let inv = 1 / sums[g]
            for d in 0..<headDim { out[g * headDim + d] = acc[g * headDim + d] * inv }
        }
    }

    // MARK: - F16, BF16 and F32 weights (llama.cpp's tinyBLAS order)

    /// 16 bfloat16 values as floats (exact: the upper half of a float's bits).
    @inline(__always)
    static func bf16s16(_ p: UnsafeRawPointer) -> SIMD16<Float> {
        #if SWIFTKT_AVX2
        // vpmovzxwd + vpslld per 8 (the generic widening is lowered lane by lane).
        let lo = _mm256_slli_epi32(_mm256_cvtepu16_epi32(p.loadUnaligned(as: __m128i.self)), 16)
        let hi = _mm256_slli_epi32(_mm256_cvtepu16_epi32(p.loadUnaligned(fromByteOffset: 16, as: __m128i.self)), 16)
        return SIMD16(lowHalf: unsafeBitCast(lo, to: SIMD8<Float>.self), highHalf: unsafeBitCast(hi, to: SIMD8<Float>.self))
        #else
        return unsafeBitCast(SIMD16<UInt32>(truncatingIfNeeded: p.loadUnaligned(as: SIMD16<UInt16>.self)) &<< 16, to: SIMD16<Float>.self)
        #endif
    }

    /// y[t, r] for weight rows `rows` of an F16, BF16 or F32 matrix (`type`) [rowCount, n] at `w`
    /// and activations x [tokens, n] (already rounded to f16 / bf16 for F16 / BF16 weights), as
    /// llama.cpp's llamafile tinyBLAS computes them on its AVX-512F build: per (row, token) one
    /// 16-lane accumulator, `fma(w[l…l+16], x[l…l+16], acc)` for l = 0, 16, …, then
    /// `_mm512_reduce_add_ps`. `n` is a multiple of 16 (tinyBLAS declines otherwise).
    public static func floatRows(_ w: UnsafeRawPointer, type: GGMLType, n: Int, rowCount: Int, rows: Range<Int>,
                                 x: UnsafePointer<Float>, tokens: Int, y: UnsafeMutablePointer<Float>) {
        switch type {
        case .f16: floatRows(w, esize: 2, load: halves16, n: n, rowCount: rowCount, rows: rows, x: x, tokens: tokens, y: y)
        case .bf16: floatRows(w, esize: 2, load: bf16s16, n: n, rowCount: rowCount, rows: rows, x: x, tokens: tokens, y: y)
        case .f32:
            floatRows(w, esize: 4, load: { $0.loadUnaligned(as: SIMD16<Float>.self) }, n: n, rowCount: rowCount, rows: rows,
                      x: x, tokens: tokens, y: y)
        default: preconditionFailure("float weights of type \(type)")
        }
    }

    @inline(__always)
    static func floatRows(_ w: UnsafeRawPointer, esize: Int, load: (UnsafeRawPointer) -> SIMD16<Float>, n: Int, rowCount: Int,
                          rows: Range<Int>, x: UnsafePointer<Float>, tokens: Int, y: UnsafeMutablePointer<Float>) {
        if tokens > 1 {
            floatRowsBatch(w, esize: esize, load: load, n: n, rowCount: rowCount, rows: rows, x: x, tokens: tokens, y: y)
            return
        }
        // One token: one row at a time (two interleaved rows measured slower here).
        let xr = UnsafeRawPointer(x)
        for row in rows {
            var a = SIMD16<Float>()
            let wr = w + row * n * esize
            var l = 0
            while l < n {
                a = a.addingProduct(load(wr + esize * l), xr.loadUnaligned(fromByteOffset: 4 * l, as: SIMD16<Float>.self))
                l += 16
            }
            y[row] = reduce16(a)
        }
    }

    /// The batch path of `floatRows`: three rows' weights widened to f32 once (F16 / BF16) into
    /// a scratch row block, then tiles of 3 rows × 2 tokens over every token pair (six 16-lane
    /// accumulators; each accumulator's chain is the GEMV's). An odd last row or token repeats.
    @inline(__always)
    static func floatRowsBatch(_ w: UnsafeRawPointer, esize: Int, load: (UnsafeRawPointer) -> SIMD16<Float>, n: Int, rowCount: Int,
                               rows: Range<Int>, x: UnsafePointer<Float>, tokens: Int, y: UnsafeMutablePointer<Float>) {
        let xr = UnsafeRawPointer(x)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: esize == 4 ? 0 : 3 * n * 4, alignment: 64)
        defer { scratch.deallocate() }
        var r = rows.lowerBound
        while r < rows.upperBound {
            let r1 = min(r + 1, rows.upperBound - 1), r2 = min(r + 2, rows.upperBound - 1)
            /// Row `row`'s weights as f32: in place for F32, else widened into scratch slot `k`.
            @inline(__always) func widened(_ row: Int, _ k: Int) -> UnsafeRawPointer {
                let src = w + row * n * esize
                if esize == 4 { return src }
                let dst = scratch + k * n * 4
                var l = 0
                while l < n { dst.storeBytes(of: load(src + esize * l), toByteOffset: 4 * l, as: SIMD16<Float>.self); l += 16 }
                return UnsafeRawPointer(dst)
            }
            let w0 = widened(r, 0), w1 = widened(r1, 1), w2 = widened(r2, 2)
            var t = 0
            while t < tokens {
                let t1 = min(t + 1, tokens - 1)
                var a00 = SIMD16<Float>(), a01 = SIMD16<Float>(), a10 = SIMD16<Float>(), a11 = SIMD16<Float>()
                var a20 = SIMD16<Float>(), a21 = SIMD16<Float>()
                let x0 = xr + 4 * t * n, x1 = xr + 4 * t1 * n
                var l = 0
                while l < n {
                    let v0 = x0.loadUnaligned(fromByteOffset: 4 * l, as: SIMD16<Float>.self)
                    let v1 = x1.loadUnaligned(fromByteOffset: 4 * l, as: SIMD16<Float>.self)
                    let u0 = w0.loadUnaligned(fromByteOffset: 4 * l, as: SIMD16<Float>.self)
                    a00 = a00.addingProduct(u0, v0); a01 = a01.addingProduct(u0, v1)
                    let u1 = w1.loadUnaligned(fromByteOffset: 4 * l, as: SIMD16<Float>.self)
                    a10 = a10.addingProduct(u1, v0); a11 = a11.addingProduct(u1, v1)
                    let u2 = w2.loadUnaligned(fromByteOffset: 4 * l, as: SIMD16<Float>.self)
                    a20 = a20.addingProduct(u2, v0); a21 = a21.addingProduct(u2, v1)
                    l += 16
                }
                y[t * rowCount + r] = reduce16(a00); y[t1 * rowCount + r] = reduce16(a01)
                y[t * rowCount + r1] = reduce16(a10); y[t1 * rowCount + r1] = reduce16(a11)
                y[t * rowCount + r2] = reduce16(a20); y[t1 * rowCount + r2] = reduce16(a21)
                t += 2
            }
            r += 3
        }
    }

    // MARK: - Tiled flash attention (llama.cpp's path for ≥ 64 queries)

    /// The 16 lanes summed as GCC's `_mm512_reduce_add_ps`: halves, quarters, then pairs.
    @inline(__always)
    static func reduce16(_ v: SIMD16<Float>) -> Float {
        let h8 = v.highHalf + v.lowHalf
        let h4 = h8.highHalf + h8.lowHalf
        return (h4[0] + h4[2]) + (h4[1] + h4[3])
    }

    /// Queries `0..<count` of one head through llama.cpp's tiled CPU flash attention
    /// (`ggml_compute_forward_flash_attn_ext_tiled`, taken for ≥ 64 queries): KV in tiles of 64
    /// aligned at absolute position 0; scores as a sequential fma chain over the f32 (unrounded)
    /// query; per tile the running maximum, `expf(M_old − M_new)` rescaling of the f32
    /// accumulator and sum, probabilities by ggml's vector exp with the tile's four 16-lane sums
    /// added in double, values accumulated as fma chains in key order; out = acc · (1/S).
    /// Query i (at `q + i·qStride`) sees rows firsts[i]…lasts[i] of K/V (row p at `k + p·kvStride`
    /// halves). The `group` query heads that share these keys and values (grouped-query attention)
    /// run together: query i of head g at `q + i·qStride + g·headDim`, its output likewise, so that
    /// each tile is widened once. `scratch` holds 64·(headDim + headDim) + 64 + group·count·(2 + headDim + 64) floats.
    public static func flashTiled(q: UnsafePointer<Float>, qStride: Int, count: Int, group: Int = 1,
                                  firsts: UnsafePointer<Int>, lasts: UnsafePointer<Int>,
                                  k: UnsafePointer<UInt16>, v: UnsafePointer<UInt16>, kvStride: Int, headDim: Int,
                                  scale: Float, out: UnsafeMutablePointer<Float>, outStride: Int,
                                  scratch: UnsafeMutablePointer<Float>) {
        precondition(count <= 64, "flashTiled takes at most 64 queries (the scratch is sized for them)")
        let dk = headDim, dv = headDim
        let kT = scratch, vT = kT + dk * 64, probs = vT + 64 * dv
        // Per (head of the group, query): running maximum, sum and accumulator.
        let rows = group * count
        let mAll = probs + 64, sAll = mAll + rows, accAll = sAll + rows, scores = accAll + rows * dv
        var lo = Int.max, hi = 0
        for i in 0..<count { lo = min(lo, firsts[i]); hi = max(hi, lasts[i]) }
        for r in 0..<rows { mAll[r] = -.infinity; sAll[r] = 0 }
        for i in 0..<rows * dv { accAll[i] = 0 }
        let vector = dv % 16 == 0 && dk % 16 == 0
        var tile = (lo / 64) * 64
        while tile <= hi {
            let tileEnd = min(tile + 63, hi)
            // K tile transposed to [dk][64] and V tile [64][dv], widened once for the group's heads;
            // rows past tileEnd zero.
            for j in 0..<64 {
                let p = tile + j
                if p <= tileEnd {
                    let kr = UnsafeRawPointer(k + p * kvStride), vr = UnsafeRawPointer(v + p * kvStride)
                    if vector {
                        for d in Swift.stride(from: 0, to: dk, by: 16) {
                            let kv = halves16(kr + 2 * d)
                            for l in 0..<16 { kT[(d + l) * 64 + j] = kv[l] }
                        }
                        for d in Swift.stride(from: 0, to: dv, by: 16) {
                            UnsafeMutableRawPointer(vT + j * dv + d).storeBytes(of: halves16(vr + 2 * d), as: SIMD16<Float>.self)
                        }
                    } else {
                        for d in 0..<dk { kT[d * 64 + j] = halfToFloat(kr.load(fromByteOffset: 2 * d, as: UInt16.self)) }
                        for d in 0..<dv { vT[j * dv + d] = halfToFloat(vr.load(fromByteOffset: 2 * d, as: UInt16.self)) }
                    }
                } else {
                    for d in 0..<dk { kT[d * 64 + j] = 0 }
                }
            }
            let kTr = UnsafeRawPointer(kT)
            // Scores, two query rows at a time: eight independent fma chains share each K load
            // (each chain is still one query's sequential sum over d). Rows whose range misses
            // the tile are computed along with their partner and ignored.
            var r = 0
            while r < rows {
                let pair = r + 1 < rows
                let rA = r, rB = pair ? r + 1 : r
                func meets(_ row: Int) -> Bool { max(firsts[row % count], tile) <= min(lasts[row % count], tile + 63) }
                if !meets(rA) && !meets(rB) { r += 2; continue }
                let qa = q + (rA % count) * qStride + (rA / count) * headDim
                let qb = q + (rB % count) * qStride + (rB / count) * headDim
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                var b0 = SIMD16<Float>(), b1 = SIMD16<Float>(), b2 = SIMD16<Float>(), b3 = SIMD16<Float>()
                for d in 0..<dk {
                    let row = 256 * d
                    let k0 = kTr.loadUnaligned(fromByteOffset: row, as: SIMD16<Float>.self)
                    let k1 = kTr.loadUnaligned(fromByteOffset: row + 64, as: SIMD16<Float>.self)
                    let k2 = kTr.loadUnaligned(fromByteOffset: row + 128, as: SIMD16<Float>.self)
                    let k3 = kTr.loadUnaligned(fromByteOffset: row + 192, as: SIMD16<Float>.self)
                    let qad = SIMD16<Float>(repeating: qa[d]), qbd = SIMD16<Float>(repeating: qb[d])
                    a0 = a0.addingProduct(k0, qad); a1 = a1.addingProduct(k1, qad)
                    a2 = a2.addingProduct(k2, qad); a3 = a3.addingProduct(k3, qad)
                    b0 = b0.addingProduct(k0, qbd); b1 = b1.addingProduct(k1, qbd)
                    b2 = b2.addingProduct(k2, qbd); b3 = b3.addingProduct(k3, qbd)
                }
                let sc = SIMD16<Float>(repeating: scale)
                let pa = UnsafeMutableRawPointer(scores + rA * 64)
                pa.storeBytes(of: a0 * sc, as: SIMD16<Float>.self); pa.storeBytes(of: a1 * sc, toByteOffset: 64, as: SIMD16<Float>.self)
                pa.storeBytes(of: a2 * sc, toByteOffset: 128, as: SIMD16<Float>.self); pa.storeBytes(of: a3 * sc, toByteOffset: 192, as: SIMD16<Float>.self)
                if pair {
                    let pb = UnsafeMutableRawPointer(scores + rB * 64)
                    pb.storeBytes(of: b0 * sc, as: SIMD16<Float>.self); pb.storeBytes(of: b1 * sc, toByteOffset: 64, as: SIMD16<Float>.self)
                    pb.storeBytes(of: b2 * sc, toByteOffset: 128, as: SIMD16<Float>.self); pb.storeBytes(of: b3 * sc, toByteOffset: 192, as: SIMD16<Float>.self)
                }
                r += 2
            }
            // Per row: mask, tile maximum, rescaling, probabilities; then the values, two heads of
            // the group at a time for the same query (same keys, so they share each V load).
            for i in 0..<count {
                let from = max(firsts[i], tile), to = min(lasts[i], tile + 63)
                if from > to { continue }
                let a = from - tile, b = to - tile
                for g in 0..<group {
                    let row = g * count + i
                    // Entries outside from…to are masked (−∞): their probability is exactly 0.
                    let probs = scores + row * 64, pr = UnsafeMutableRawPointer(probs)
                    for j in 0..<a { probs[j] = -.infinity }
                    for j in (b + 1)..<64 { probs[j] = -.infinity }
                    var tileMax = -Float.infinity
                    for j in a...b where probs[j] > tileMax { tileMax = probs[j] }
                    let mOld = mAll[row]
                    let mNew = Swift.max(mOld, tileMax)
                    let acc = accAll + row * dv
                    if mNew > mOld {
                        let ms = exp(mOld - mNew)
                        for d in 0..<dv { acc[d] *= ms }
                        sAll[row] *= ms
                    }
                    mAll[row] = mNew
                    var sum: Double = 0
                    let mv = SIMD16<Float>(repeating: mNew)
                    for c in 0..<4 {
                        let e = expGGML16(pr.loadUnaligned(fromByteOffset: 64 * c, as: SIMD16<Float>.self) - mv)
                        pr.storeBytes(of: e, toByteOffset: 64 * c, as: SIMD16<Float>.self)
                        sum += Double(reduce16(e))
                    }
                    sAll[row] = Float(Double(sAll[row]) + sum)
                }
                var g = 0
                if vector && dv % 64 == 0 {
                    while g + 1 < group {
                        let rA = g * count + i, rB = rA + count
                        addValuesPair(accA: accAll + rA * dv, probsA: scores + rA * 64, accB: accAll + rB * dv, probsB: scores + rB * 64,
                                      vT: vT, dv: dv, a: a, b: b)
                        g += 2
                    }
                }
                while g < group {
                    let row = g * count + i
                    addValues(acc: accAll + row * dv, probs: scores + row * 64, vT: vT, dv: dv, a: a, b: b, vector: vector)
                    g += 1
                }
            }
            tile += 64
        }
        for g in 0..<group {
            for i in 0..<count {
                let row = g * count + i
                let inv: Float = sAll[row] == 0 ? 0 : 1 / sAll[row]
                let acc = accAll + row * dv, o = out + i * outStride + g * headDim
                for d in 0..<dv { o[d] = acc[d] * inv }
            }
        }
    }

    /// acc[d] += probs[j]·vT[j][d] for j in a…b, in key order (one fma chain per element).
    @inline(__always)
    static func addValues(acc: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, vT: UnsafeMutablePointer<Float>,
                          dv: Int, a: Int, b: Int, vector: Bool) {
        let accRaw = UnsafeMutableRawPointer(acc), vTr = UnsafeRawPointer(vT)
        if vector {
            // 128 (then 64) accumulator elements stay in registers while every key of the
            // tile is added in order (each element's fma chain is the same as key by key;
            // eight independent chains keep both fma pipes busy).
            var d = 0
            while d + 128 <= dv {
                var x0 = accRaw.loadUnaligned(fromByteOffset: 4 * d, as: SIMD16<Float>.self)
                var x1 = accRaw.loadUnaligned(fromByteOffset: 4 * d + 64, as: SIMD16<Float>.self)
                var x2 = accRaw.loadUnaligned(fromByteOffset: 4 * d + 128, as: SIMD16<Float>.self)
                var x3 = accRaw.loadUnaligned(fromByteOffset: 4 * d + 192, as: SIMD16<Float>.self)
                var x4 = accRaw.loadUnaligned(fromByteOffset: 4 * d + 256, as: SIMD16<Float>.self)
                var x5 = accRaw.loadUnaligned(fromByteOffset: 4 * d + 320, as: SIMD16<Float>.self)
                var x6 = accRaw.loadUnaligned(fromByteOffset: 4 * d + 384, as: SIMD16<Float>.self)
                var x7 = accRaw.loadUnaligned(fromByteOffset: 4 * d + 448, as: SIMD16<Float>.self)
                for j in a...b {
                    let wv = SIMD16<Float>(repeating: probs[j]), base = 4 * (j * dv + d)
                    x0 = x0.addingProduct(vTr.loadUnaligned(fromByteOffset: base, as: SIMD16<Float>.self), wv)
                    x1 = x1.addingProduct(vTr.loadUnaligned(fromByteOffset: base + 64, as: SIMD16<Float>.self), wv)
                    x2 = x2.addingProduct(vTr.loadUnaligned(fromByteOffset: base + 128, as: SIMD16<Float>.self), wv)
                    x3 = x3.addingProduct(vTr.loadUnaligned(fromByteOffset: base + 192, as: SIMD16<Float>.self), wv)
                    x4 = x4.addingProduct(vTr.loadUnaligned(fromByteOffset: base + 256, as: SIMD16<Float>.self), wv)
                    x5 = x5.addingProduct(vTr.loadUnaligned(fromByteOffset: base + 320, as: SIMD16<Float>.self), wv)
                    x6 = x6.addingProduct(vTr.loadUnaligned(fromByteOffset: base + 384, as: SIMD16<Float>.self), wv)
                    x7 = x7.addingProduct(vTr.loadUnaligned(fromByteOffset: base + 448, as: SIMD16<Float>.self), wv)
                }
                accRaw.storeBytes(of: x0, toByteOffset: 4 * d, as: SIMD16<Float>.self)
                accRaw.storeBytes(of: x1, toByteOffset: 4 * d + 64, as: SIMD16<Float>.self)
                accRaw.storeBytes(of: x2, toByteOffset: 4 * d + 128, as: SIMD16<Float>.self)
                accRaw.storeBytes(of: x3, toByteOffset: 4 * d + 192, as: SIMD16<Float>.self)
                accRaw.storeBytes(of: x4, toByteOffset: 4 * d + 256, as: SIMD16<Float>.self)
                accRaw.storeBytes(of: x5, toByteOffset: 4 * d + 320, as: SIMD16<Float>.self)
                accRaw.storeBytes(of: x6, toByteOffset: 4 * d + 384, as: SIMD16<Float>.self)
                accRaw.storeBytes(of: x7, toByteOffset: 4 * d + 448, as: SIMD16<Float>.self)
                d += 128
            }
            while d + 64 <= dv {
                var x0 = accRaw.loadUnaligned(fromByteOffset: 4 * d, as: SIMD16<Float>.self)
                var x1 = accRaw.loadUnaligned(fromByteOffset: 4 * d + 64, as: SIMD16<Float>.self)
                var x2 = accRaw.loadUnaligned(fromByteOffset: 4 * d + 128, as: SIMD16<Float>.self)
                var x3 = accRaw.loadUnaligned(fromByteOffset: 4 * d + 192, as: SIMD16<Float>.self)
                for j in a...b {
                    let wv = SIMD16<Float>(repeating: probs[j]), base = 4 * (j * dv + d)
                    x0 = x0.addingProduct(vTr.loadUnaligned(fromByteOffset: base, as: SIMD16<Float>.self), wv)
                    x1 = x1.addingProduct(vTr.loadUnaligned(fromByteOffset: base + 64, as: SIMD16<Float>.self), wv)
                    x2 = x2.addingProduct(vTr.loadUnaligned(fromByteOffset: base + 128, as: SIMD16<Float>.self), wv)
                    x3 = x3.addingProduct(vTr.loadUnaligned(fromByteOffset: base + 192, as: SIMD16<Float>.self), wv)
                }
                accRaw.storeBytes(of: x0, toByteOffset: 4 * d, as: SIMD16<Float>.self)
                accRaw.storeBytes(of: x1, toByteOffset: 4 * d + 64, as: SIMD16<Float>.self)
                accRaw.storeBytes(of: x2, toByteOffset: 4 * d + 128, as: SIMD16<Float>.self)
                accRaw.storeBytes(of: x3, toByteOffset: 4 * d + 192, as: SIMD16<Float>.self)
                d += 64
            }
            while d < dv {
                var x = accRaw.loadUnaligned(fromByteOffset: 4 * d, as: SIMD16<Float>.self)
                for j in a...b {
                    x = x.addingProduct(vTr.loadUnaligned(fromByteOffset: 4 * (j * dv + d), as: SIMD16<Float>.self),
                                        SIMD16<Float>(repeating: probs[j]))
                }
                accRaw.storeBytes(of: x, toByteOffset: 4 * d, as: SIMD16<Float>.self)
                d += 16
            }
        } else {
            for j in a...b {
                let w = probs[j]
                for d in 0..<dv { acc[d] = acc[d].addingProduct(vT[j * dv + d], w) }
            }
        }
    }

    /// `addValues` for two rows with the same keys (two heads of a group, one query): 2 × 64
    /// elements in eight accumulators, each V load used by both rows; every chain unchanged.
    @inline(__always)
    static func addValuesPair(accA: UnsafeMutablePointer<Float>, probsA: UnsafeMutablePointer<Float>,
                              accB: UnsafeMutablePointer<Float>, probsB: UnsafeMutablePointer<Float>,
                              vT: UnsafeMutablePointer<Float>, dv: Int, a: Int, b: Int) {
        let rawA = UnsafeMutableRawPointer(accA), rawB = UnsafeMutableRawPointer(accB), vTr = UnsafeRawPointer(vT)
        var d = 0
        while d + 64 <= dv {
            var x0 = rawA.loadUnaligned(fromByteOffset: 4 * d, as: SIMD16<Float>.self)
            var x1 = rawA.loadUnaligned(fromByteOffset: 4 * d + 64, as: SIMD16<Float>.self)
            var x2 = rawA.loadUnaligned(fromByteOffset: 4 * d + 128, as: SIMD16<Float>.self)
            var x3 = rawA.loadUnaligned(fromByteOffset: 4 * d + 192, as: SIMD16<Float>.self)
            var y0 = rawB.loadUnaligned(fromByteOffset: 4 * d, as: SIMD16<Float>.self)
            var y1 = rawB.loadUnaligned(fromByteOffset: 4 * d + 64, as: SIMD16<Float>.self)
            var y2 = rawB.loadUnaligned(fromByteOffset: 4 * d + 128, as: SIMD16<Float>.self)
            var y3 = rawB.loadUnaligned(fromByteOffset: 4 * d + 192, as: SIMD16<Float>.self)
            for j in a...b {
                let wa = SIMD16<Float>(repeating: probsA[j]), wb = SIMD16<Float>(repeating: probsB[j]), base = 4 * (j * dv + d)
                let v0 = vTr.loadUnaligned(fromByteOffset: base, as: SIMD16<Float>.self)
                let v1 = vTr.loadUnaligned(fromByteOffset: base + 64, as: SIMD16<Float>.self)
                let v2 = vTr.loadUnaligned(fromByteOffset: base + 128, as: SIMD16<Float>.self)
                let v3 = vTr.loadUnaligned(fromByteOffset: base + 192, as: SIMD16<Float>.self)
                x0 = x0.addingProduct(v0, wa); x1 = x1.addingProduct(v1, wa); x2 = x2.addingProduct(v2, wa); x3 = x3.addingProduct(v3, wa)
                y0 = y0.addingProduct(v0, wb); y1 = y1.addingProduct(v1, wb); y2 = y2.addingProduct(v2, wb); y3 = y3.addingProduct(v3, wb)
            }
            rawA.storeBytes(of: x0, toByteOffset: 4 * d, as: SIMD16<Float>.self)
            rawA.storeBytes(of: x1, toByteOffset: 4 * d + 64, as: SIMD16<Float>.self)
            rawA.storeBytes(of: x2, toByteOffset: 4 * d + 128, as: SIMD16<Float>.self)
            rawA.storeBytes(of: x3, toByteOffset: 4 * d + 192, as: SIMD16<Float>.self)
            rawB.storeBytes(of: y0, toByteOffset: 4 * d, as: SIMD16<Float>.self)
            rawB.storeBytes(of: y1, toByteOffset: 4 * d + 64, as: SIMD16<Float>.self)
            rawB.storeBytes(of: y2, toByteOffset: 4 * d + 128, as: SIMD16<Float>.self)
            rawB.storeBytes(of: y3, toByteOffset: 4 * d + 192, as: SIMD16<Float>.self)
            d += 64
        }
    }
}
