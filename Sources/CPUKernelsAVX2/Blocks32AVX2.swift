// AVX2 kernels for the 32-element block types (q4_0, q4_1, q5_0, q5_1, q8_0) on packed panels
// (Core's PackedPanels: 8 rows, one "block octet" per 32 columns), bit-identical to
// `QuantizedDot.dotReference` (ggml's x86 order).
//
// ggml's order per weight row and token: for each block, 8 integer lanes (lane j = the exact
// sum of the products of elements 4j…4j+3), each converted to float and fused-multiply-added
// with d = d_weight·d_activation into its own accumulator; hsum_float_8 at the end; the min
// terms of q4_1/q5_1 in a separate fused-multiply-add chain added last. The lanes come from
// `vpmaddubsw` (unsigned weight bytes × signed activation bytes → 16 pair sums) and `vpmaddwd`
// with ones (→ 8 sums of 4): exact, whatever instruction computes them. Weights are made
// unsigned: q4/q5 as their nibble (| fifth bit), with the bias (8 or 16) taken back as
// bias·Σy per pair before widening; q8_0 with ggml's sign trick (|w| × sign(y, w)).
//
// Decode (1 token): 8 rows × 1 token straight from the packed octets (nibble types two rows per
// load, see `gemvPairs`). Batches: the panel's blocks are decoded once into per-thread scratch
// (unsigned bytes, d and m as floats), then tiles of 4 rows × 2 tokens run over them with every
// accumulator in a register.
#if arch(x86_64)
import _Builtin_intrinsics.intel
import Core
import CSupport

/// Bytes ahead of the current block that decode loops prefetch (measured on a Zen 3 host: the
/// hardware prefetcher alone keeps a GEMV at ~60 % of the streaming bandwidth).
let prefetchDistance = 4096

/// Prefetches the `bytes` bytes at `p + prefetchDistance`.
@inline(__always)
func prefetchAhead(_ p: UnsafeRawPointer, _ bytes: Int) {
    var o = 0
    while o < bytes { swiftkt_prefetch(p + prefetchDistance + o); o += 64 }
}

public enum QuantizedAVX2 {
    /// Weight types with a kernel here (on `PackedPanels`).
    public static func supports(_ type: GGMLType) -> Bool {
        switch type {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: return true
        default: return false
        }
    }

    /// y[t, r] (y is [tokens, rows]) for the panels of 8 rows in `panels`; activations as
    /// CPUKernels' `QuantizedActivations` (q8_0 / q8_1 formats).
    public static func run(_ w: PackedPanels, qs: UnsafePointer<Int8>, scales: UnsafePointer<Float>, sums: UnsafePointer<Float>,
                           y: UnsafeMutablePointer<Float>, tokens: Int, panels: Range<Int>) {
        let a = Acts2(qs: qs, scales: scales, sums: sums, n: w.cols)
        switch w.type {
        case .q4_0: run(B4_0.self, w, a, y, tokens, panels)
        case .q4_1: run(B4_1.self, w, a, y, tokens, panels)
        case .q5_0: run(B5_0.self, w, a, y, tokens, panels)
        case .q5_1: run(B5_1.self, w, a, y, tokens, panels)
        case .q8_0: run(B8_0.self, w, a, y, tokens, panels)
        default: preconditionFailure("no AVX2 kernel for \(w.type)")
        }
    }

    @inline(__always)
    static func run<B: BlockAVX2>(_: B.Type, _ w: PackedPanels, _ a: Acts2, _ y: UnsafeMutablePointer<Float>,
                                  _ tokens: Int, _ panels: Range<Int>) {
        let blocks = w.cols / 32
        if tokens == 1 && !B.signed {
            for panel in panels { gemvPairs(B.self, w, a, y, panel) }
            return
        }
        let scratch = Scratch32(blocks: blocks)
        defer { scratch.deallocate() }
        if tokens == 1 {
            for panel in panels { gemvRows(B.self, w, a, y, panel, dd: scratch.dd) }
            return
        }
        for panel in panels {
            let base = UnsafeRawPointer(w.data + panel * w.panelBytes)
            for b in 0..<blocks {
                let o = base + b * w.octetBytes
                let u = scratch.quants + b * 256
                for i in 0..<8 {
                    let v = B.decode(o, row: i)
                    if B.signed || B.bias != 0 {
                        // Signed values (q4_0, q5_0: minus the bias) for the sign trick.
                        let signed = B.bias != 0 ? _mm256_sub_epi8(v, _mm256_set1_epi8(B.bias)) : v
                        (u + 32 * i).storeBytes(of: _mm256_abs_epi8(signed), as: __m256i.self)
                        (scratch.signs + b * 256 + 32 * i).storeBytes(of: signed, as: __m256i.self)
                    } else {
                        (u + 32 * i).storeBytes(of: v, as: __m256i.self)
                    }
                }
                UnsafeMutableRawPointer(scratch.d + 8 * b).storeBytes(of: _mm256_cvtph_ps(o.loadUnaligned(as: __m128i.self)), as: __m256.self)
                if B.hasMin {
                    UnsafeMutableRawPointer(scratch.m + 8 * b).storeBytes(of: _mm256_cvtph_ps(o.loadUnaligned(fromByteOffset: 16, as: __m128i.self)),
                                                                          as: __m256.self)
                }
            }
            let r0 = panel * 8
            // Token chunks: d_weight·d_activation [token][block][8 rows] and the min terms of
            // the chunk first, then the tiles.
            var t0 = 0
            while t0 < tokens {
                let count = min(Scratch32.chunk, tokens - t0)
                for t in 0..<count {
                    let ad = a.scales + (t0 + t) * blocks, asum = a.sums + (t0 + t) * blocks
                    var summ = _mm256_setzero_ps()
                    for b in 0..<blocks {
                        let d8 = UnsafeRawPointer(scratch.d + 8 * b).load(as: __m256.self)
                        UnsafeMutableRawPointer(scratch.dd + (t * blocks + b) * 8).storeBytes(of: _mm256_mul_ps(d8, _mm256_set1_ps(ad[b])),
                                                                                             as: __m256.self)
                        if B.hasMin { summ = _mm256_fmadd_ps(UnsafeRawPointer(scratch.m + 8 * b).load(as: __m256.self), _mm256_set1_ps(asum[b]), summ) }
                    }
                    UnsafeMutableRawPointer(scratch.mins + 8 * t).storeBytes(of: summ, as: __m256.self)
                }
                for half in 0..<2 where r0 + 4 * half < w.rows {
                    var t = 0
                    while t + 2 <= count {
                        tile4x2(B.self, scratch, a, blocks: blocks, i0: 4 * half, t0: t0, t: t, y: y, rows: w.rows, r0: r0)
                        t += 2
                    }
                    if t < count { tile4x1(B.self, scratch, a, blocks: blocks, i0: 4 * half, t0: t0, t: t, y: y, rows: w.rows, r0: r0) }
                }
                t0 += count
            }
        }
    }

    /// Decode of a nibble type (q4_0, q4_1, q5_0, q5_1): 8 rows × 1 token on the packed octets,
    /// two rows at a time. One 32-byte load holds rows A and B's nibbles; its low nibbles are
    /// [A elements 0–15 | B elements 0–15] and its high nibbles [A 16–31 | B 16–31], multiplied
    /// with the activations' first half repeated, and second half repeated. The integer lanes
    /// are then [A lanes 0–3 | B lanes 0–3] and [A lanes 4–7 | B lanes 4–7]: each float
    /// accumulator lane still sums exactly ggml's lane of its row, only at another position,
    /// with d = [d_A ×4 | d_B ×4]; the lanes are put back in order for hsum_float_8 at the end.
    @inline(__always)
    static func gemvPairs<B: BlockAVX2>(_: B.Type, _ w: PackedPanels, _ a: Acts2, _ y: UnsafeMutablePointer<Float>, _ panel: Int) {
        let blocks = w.cols / 32
        let base = UnsafeRawPointer(w.data + panel * w.panelBytes)
        let ones = _mm256_set1_epi16(1), bias = _mm256_set1_epi8(B.bias), mask = _mm256_set1_epi8(0x0F)
        var lo0 = _mm256_setzero_ps(), hi0 = _mm256_setzero_ps(), lo1 = _mm256_setzero_ps(), hi1 = _mm256_setzero_ps()
        var lo2 = _mm256_setzero_ps(), hi2 = _mm256_setzero_ps(), lo3 = _mm256_setzero_ps(), hi3 = _mm256_setzero_ps()
        var summ = _mm256_setzero_ps()
        let pick0 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), pick1 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3)
        let pick2 = _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5), pick3 = _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7)
        let x = UnsafeRawPointer(a.qs)
        for b in 0..<blocks {
            let o = base + b * w.octetBytes
            prefetchAhead(o, w.octetBytes)
            let yLo = _mm256_broadcastsi128_si256(x.loadUnaligned(fromByteOffset: 32 * b, as: __m128i.self))
            let yHi = _mm256_broadcastsi128_si256(x.loadUnaligned(fromByteOffset: 32 * b + 16, as: __m128i.self))
            let d8 = _mm256_mul_ps(_mm256_cvtph_ps(o.loadUnaligned(as: __m128i.self)), _mm256_set1_ps(a.scales[b]))
            let kLo = B.bias != 0 ? _mm256_maddubs_epi16(bias, yLo) : _mm256_setzero_si256()
            let kHi = B.bias != 0 ? _mm256_maddubs_epi16(bias, yHi) : _mm256_setzero_si256()
            @inline(__always) func pair(_ p: Int, _ pick: __m256i, _ accLo: inout __m256, _ accHi: inout __m256) {
                var (l, h) = B.decodePair(o, pair: p, mask: mask)
                l = _mm256_maddubs_epi16(l, yLo)
                h = _mm256_maddubs_epi16(h, yHi)
                if B.bias != 0 { l = _mm256_sub_epi16(l, kLo); h = _mm256_sub_epi16(h, kHi) }
                let d = _mm256_permutevar8x32_ps(d8, pick)
                accLo = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_madd_epi16(l, ones)), accLo)
                accHi = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_madd_epi16(h, ones)), accHi)
            }
            pair(0, pick0, &lo0, &hi0); pair(1, pick1, &lo1, &hi1); pair(2, pick2, &lo2, &hi2); pair(3, pick3, &lo3, &hi3)
            if B.hasMin {
                summ = _mm256_fmadd_ps(_mm256_cvtph_ps(o.loadUnaligned(fromByteOffset: 16, as: __m128i.self)),
                                       _mm256_set1_ps(a.sums[b]), summ)
            }
        }
        /// Row A's lanes are the low halves of (lo, hi), row B's the high halves.
        @inline(__always) func rows(_ lo: __m256, _ hi: __m256) -> (Float, Float) {
            let l: SIMD8<Float> = lo, h: SIMD8<Float> = hi
            return (hsum8(SIMD8(lowHalf: l.lowHalf, highHalf: h.lowHalf)), hsum8(SIMD8(lowHalf: l.highHalf, highHalf: h.highHalf)))
        }
        let (r0v, r1v) = rows(lo0, hi0), (r2v, r3v) = rows(lo1, hi1), (r4v, r5v) = rows(lo2, hi2), (r6v, r7v) = rows(lo3, hi3)
        let m: SIMD8<Float> = summ
        let r = SIMD8<Float>(r0v, r1v, r2v, r3v, r4v, r5v, r6v, r7v) + m
        let r0 = panel * 8
        for i in 0..<min(8, w.rows - r0) { y[r0 + i] = r[i] }
    }

    /// Decode of q8_0: 8 rows × 1 token on the packed octets, one row per accumulator.
    @inline(__always)
    static func gemvRows<B: BlockAVX2>(_: B.Type, _ w: PackedPanels, _ a: Acts2, _ y: UnsafeMutablePointer<Float>, _ panel: Int,
                                       dd: UnsafeMutablePointer<Float>) {
        let blocks = w.cols / 32
        let base = UnsafeRawPointer(w.data + panel * w.panelBytes)
        let ones = _mm256_set1_epi16(1)
        var c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps(), c3 = _mm256_setzero_ps()
        var c4 = _mm256_setzero_ps(), c5 = _mm256_setzero_ps(), c6 = _mm256_setzero_ps(), c7 = _mm256_setzero_ps()
        // d_weight·d_activation of every block first (broadcast from memory below, not shuffled).
        for b in 0..<blocks {
            UnsafeMutableRawPointer(dd + 8 * b).storeBytes(of: _mm256_mul_ps(_mm256_cvtph_ps((base + b * w.octetBytes).loadUnaligned(as: __m128i.self)),
                                                                             _mm256_set1_ps(a.scales[b])), as: __m256.self)
        }
        let x = UnsafeRawPointer(a.qs)
        for b in 0..<blocks {
            let o = base + b * w.octetBytes
            prefetchAhead(o, w.octetBytes)
            let yv = x.loadUnaligned(fromByteOffset: 32 * b, as: __m256i.self)
            let db = dd + 8 * b
            @inline(__always) func row(_ i: Int, _ acc: __m256) -> __m256 {
                let v = B.decode(o, row: i)
                let p = _mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(yv, v))
                return _mm256_fmadd_ps(_mm256_set1_ps(db[i]), _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones)), acc)
            }
            c0 = row(0, c0); c1 = row(1, c1); c2 = row(2, c2); c3 = row(3, c3)
            c4 = row(4, c4); c5 = row(5, c5); c6 = row(6, c6); c7 = row(7, c7)
        }
        let r = SIMD8<Float>(hsum8(c0), hsum8(c1), hsum8(c2), hsum8(c3), hsum8(c4), hsum8(c5), hsum8(c6), hsum8(c7))
        let r0 = panel * 8
        for i in 0..<min(8, w.rows - r0) { y[r0 + i] = r[i] }
    }

    /// Rows i0…i0+3 of the decoded panel × chunk tokens t, t+1 (tokens t0 + t …): eight
    /// accumulators in registers, d·d_activation broadcast from the chunk's table.
    @inline(__always)
    static func tile4x2<B: BlockAVX2>(_: B.Type, _ s: Scratch32, _ a: Acts2, blocks: Int, i0: Int, t0: Int, t: Int,
                                      y: UnsafeMutablePointer<Float>, rows: Int, r0: Int) {
        let ones = _mm256_set1_epi16(1)
        var c00 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps()
        var c01 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps()
        let x0 = UnsafeRawPointer(a.qs + (t0 + t) * a.n), x1 = UnsafeRawPointer(a.qs + (t0 + t + 1) * a.n)
        let dd0 = s.dd + t * blocks * 8 + i0, dd1 = s.dd + (t + 1) * blocks * 8 + i0
        let unsigned = !B.signed && B.bias == 0
        for b in 0..<blocks {
            let y0 = x0.loadUnaligned(fromByteOffset: 32 * b, as: __m256i.self)
            let y1 = x1.loadUnaligned(fromByteOffset: 32 * b, as: __m256i.self)
            let u = s.quants + b * 256 + 32 * i0, sg = s.signs + b * 256 + 32 * i0
            let e0 = dd0 + 8 * b, e1 = dd1 + 8 * b
            @inline(__always) func step(_ i: Int, _ acc0: inout __m256, _ acc1: inout __m256) {
                let q = (u + 32 * i).load(as: __m256i.self)
                let p0: __m256i, p1: __m256i
                if unsigned {
                    p0 = _mm256_maddubs_epi16(q, y0)
                    p1 = _mm256_maddubs_epi16(q, y1)
                } else {
                    let sgn = (sg + 32 * i).load(as: __m256i.self)
                    p0 = _mm256_maddubs_epi16(q, _mm256_sign_epi8(y0, sgn))
                    p1 = _mm256_maddubs_epi16(q, _mm256_sign_epi8(y1, sgn))
                }
                acc0 = _mm256_fmadd_ps(_mm256_set1_ps(e0[i]), _mm256_cvtepi32_ps(_mm256_madd_epi16(p0, ones)), acc0)
                acc1 = _mm256_fmadd_ps(_mm256_set1_ps(e1[i]), _mm256_cvtepi32_ps(_mm256_madd_epi16(p1, ones)), acc1)
            }
            step(0, &c00, &c01); step(1, &c10, &c11); step(2, &c20, &c21); step(3, &c30, &c31)
        }
        let valid = min(4, rows - r0 - i0)
        let m0 = UnsafeRawPointer(s.mins + 8 * t + i0).loadUnaligned(as: SIMD4<Float>.self)
        let m1 = UnsafeRawPointer(s.mins + 8 * (t + 1) + i0).loadUnaligned(as: SIMD4<Float>.self)
        let v0 = hsum8x4(c00, c10, c20, c30) + m0, v1 = hsum8x4(c01, c11, c21, c31) + m1
        let o0 = y + (t0 + t) * rows + r0 + i0, o1 = y + (t0 + t + 1) * rows + r0 + i0
        for i in 0..<valid { o0[i] = v0[i]; o1[i] = v1[i] }
    }

    /// Rows i0…i0+3 of the decoded panel × chunk token t.
    @inline(__always)
    static func tile4x1<B: BlockAVX2>(_: B.Type, _ s: Scratch32, _ a: Acts2, blocks: Int, i0: Int, t0: Int, t: Int,
                                      y: UnsafeMutablePointer<Float>, rows: Int, r0: Int) {
        let ones = _mm256_set1_epi16(1)
        var c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps(), c3 = _mm256_setzero_ps()
        let x0 = UnsafeRawPointer(a.qs + (t0 + t) * a.n)
        let dd0 = s.dd + t * blocks * 8 + i0
        let unsigned = !B.signed && B.bias == 0
        for b in 0..<blocks {
            let y0 = x0.loadUnaligned(fromByteOffset: 32 * b, as: __m256i.self)
            let u = s.quants + b * 256 + 32 * i0, sg = s.signs + b * 256 + 32 * i0, e0 = dd0 + 8 * b
            @inline(__always) func lanes(_ i: Int) -> __m256 {
                let q = (u + 32 * i).load(as: __m256i.self)
                let p = unsigned ? _mm256_maddubs_epi16(q, y0) : _mm256_maddubs_epi16(q, _mm256_sign_epi8(y0, (sg + 32 * i).load(as: __m256i.self)))
                return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones))
            }
            c0 = _mm256_fmadd_ps(_mm256_set1_ps(e0[0]), lanes(0), c0)
            c1 = _mm256_fmadd_ps(_mm256_set1_ps(e0[1]), lanes(1), c1)
            c2 = _mm256_fmadd_ps(_mm256_set1_ps(e0[2]), lanes(2), c2)
            c3 = _mm256_fmadd_ps(_mm256_set1_ps(e0[3]), lanes(3), c3)
        }
        let valid = min(4, rows - r0 - i0)
        let v0 = hsum8x4(c0, c1, c2, c3) + UnsafeRawPointer(s.mins + 8 * t + i0).loadUnaligned(as: SIMD4<Float>.self)
        let o0 = y + (t0 + t) * rows + r0 + i0
        for i in 0..<valid { o0[i] = v0[i] }
    }
}

/// ggml's hsum_float_8 of four accumulators at once: for each, (a0+a4 + a2+a6) + (a1+a5 + a3+a7),
/// the same additions in the same order, by a transposition.
@inline(__always)
func hsum8x4(_ c0: __m256, _ c1: __m256, _ c2: __m256, _ c3: __m256) -> SIMD4<Float> {
    @inline(__always) func fold(_ v: __m256) -> __m128 { let s: SIMD8<Float> = v; return s.lowHalf + s.highHalf }
    let s0 = fold(c0), s1 = fold(c1), s2 = fold(c2), s3 = fold(c3)
    // [s0_0 + s0_2, s1_0 + s1_2, s0_1 + s0_3, s1_1 + s1_3] and the same for rows 2, 3.
    let u01 = _mm_add_ps(_mm_unpacklo_ps(s0, s1), _mm_unpackhi_ps(s0, s1))
    let u23 = _mm_add_ps(_mm_unpacklo_ps(s2, s3), _mm_unpackhi_ps(s2, s3))
    return _mm_add_ps(_mm_movelh_ps(u01, u23), _mm_movehl_ps(u23, u01))
}

/// Quantized activations [tokens, n] (CPUKernels' QuantizedActivations).
struct Acts2 {
    let qs: UnsafePointer<Int8>
    let scales: UnsafePointer<Float>
    let sums: UnsafePointer<Float>
    let n: Int
    /// q8_K: the sub-block pair sums per 64 elements (see QuantizeAVX2).
    var pairSums: UnsafePointer<Int32>? = nil
}

/// One panel decoded for the batch tiles: [blocks][8 rows][32] weight bytes — q4_1/q5_1 as they
/// are (unsigned), the signed types (q8_0; q4_0, q5_0 minus their bias) as |w| with the signed
/// bytes beside them for ggml's sign trick — and [blocks][8] d and m as floats.
struct Scratch32 {
    let quants: UnsafeMutableRawPointer
    let signs: UnsafeMutableRawPointer
    let d: UnsafeMutablePointer<Float>
    let m: UnsafeMutablePointer<Float>
    /// [chunk tokens][blocks][8] d_weight·d_activation (a GEMV: [blocks][8]).
    let dd: UnsafeMutablePointer<Float>
    /// [chunk tokens][8] the min terms Σ m·s (q4_1, q5_1; else 0).
    let mins: UnsafeMutablePointer<Float>
    /// Tokens per chunk of the batch path.
    static let chunk = 16

    init(blocks: Int) {
        quants = .allocate(byteCount: blocks * 256, alignment: 64)
        signs = .allocate(byteCount: blocks * 256, alignment: 64)
        // 32-byte aligned float tables (read with aligned vector loads).
        func floats(_ n: Int) -> UnsafeMutablePointer<Float> {
            UnsafeMutableRawPointer.allocate(byteCount: 4 * n, alignment: 64).bindMemory(to: Float.self, capacity: n)
        }
        d = floats(blocks * 8)
        m = floats(blocks * 8)
        dd = floats(Scratch32.chunk * blocks * 8)
        mins = floats(Scratch32.chunk * 8)
    }

    func deallocate() { quants.deallocate(); signs.deallocate(); d.deallocate(); m.deallocate(); dd.deallocate(); mins.deallocate() }
}

/// A 32-element block type in the packed octet layout: row i's 32 weights as bytes in element order.
protocol BlockAVX2 {
    /// Subtracted from every unsigned weight byte to get the value (q4_0: 8, q5_0: 16; else 0).
    static var bias: Int8 { get }
    /// The decoded bytes are signed values (q8_0), multiplied with ggml's sign trick.
    static var signed: Bool { get }
    /// x = d·q + m (q4_1, q5_1): eight f16 m at octet byte 16.
    static var hasMin: Bool { get }
    static func decode(_ octet: UnsafeRawPointer, row: Int) -> __m256i
    /// Nibble types: rows 2p and 2p+1 as (low nibbles [A 0–15 | B 0–15], high nibbles [A 16–31 | B 16–31])
    /// with their fifth bits.
    static func decodePair(_ octet: UnsafeRawPointer, pair: Int, mask: __m256i) -> (__m256i, __m256i)
}

extension BlockAVX2 {
    static func decodePair(_ octet: UnsafeRawPointer, pair: Int, mask: __m256i) -> (__m256i, __m256i) {
        preconditionFailure("no pair decode for this type")
    }
}

/// Rows A, B's nibbles (16 bytes each, adjacent) as ([A lo | B lo], [A hi | B hi]).
@inline(__always)
func nibblePair(_ p: UnsafeRawPointer, _ mask: __m256i) -> (__m256i, __m256i) {
    let v = p.loadUnaligned(as: __m256i.self)
    return (_mm256_and_si256(v, mask), _mm256_and_si256(_mm256_srli_epi16(v, 4), mask))
}

/// Rows A, B's fifth bits (two adjacent 32-bit words) as 0x10 bytes laid out like `nibblePair`.
@inline(__always)
func fifthBitPair(_ p: UnsafeRawPointer) -> (__m256i, __m256i) {
    let q = _mm256_set1_epi64x(p.loadUnaligned(as: Int64.self))
    let bit = _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE), all = _mm256_set1_epi8(-1), ten = _mm256_set1_epi8(0x10)
    // Low half: bytes 0, 1 of A's word (bits 0–15), then bytes 4, 5 (B's bits 0–15); high: 2, 3 and 6, 7.
    let lo = _mm256_shuffle_epi8(q, _mm256_set_epi64x(0x0505_0505_0505_0505, 0x0404_0404_0404_0404,
                                                      0x0101_0101_0101_0101, 0))
    let hi = _mm256_shuffle_epi8(q, _mm256_set_epi64x(0x0707_0707_0707_0707, 0x0606_0606_0606_0606,
                                                      0x0303_0303_0303_0303, 0x0202_0202_0202_0202))
    return (_mm256_and_si256(_mm256_cmpeq_epi8(_mm256_or_si256(lo, bit), all), ten),
            _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_or_si256(hi, bit), all), ten))
}

/// 16 nibble bytes → 32 bytes: elements 0–15 (low nibbles), then 16–31 (high nibbles).
@inline(__always)
func nibbles(_ p: UnsafeRawPointer) -> __m256i {
    let v = p.loadUnaligned(as: __m128i.self)
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F))
}

/// 0x10 in the bytes whose bit is set in the 32-bit word at `p` (bit j → element j).
@inline(__always)
func fifthBits(_ p: UnsafeRawPointer) -> __m256i {
    let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(p.loadUnaligned(as: Int32.self)),
                                     _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202,
                                                       0x0101_0101_0101_0101, 0))
    let bit = _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE)
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_or_si256(spread, bit), _mm256_set1_epi8(-1)), _mm256_set1_epi8(0x10))
}

enum B4_0: BlockAVX2 {
    static var bias: Int8 { 8 }
    static var signed: Bool { false }
    static var hasMin: Bool { false }
    @inline(__always) static func decode(_ o: UnsafeRawPointer, row: Int) -> __m256i { nibbles(o + 16 + 16 * row) }
    @inline(__always) static func decodePair(_ o: UnsafeRawPointer, pair: Int, mask: __m256i) -> (__m256i, __m256i) {
        nibblePair(o + 16 + 32 * pair, mask)
    }
}

enum B4_1: BlockAVX2 {
    static var bias: Int8 { 0 }
    static var signed: Bool { false }
    static var hasMin: Bool { true }
    @inline(__always) static func decode(_ o: UnsafeRawPointer, row: Int) -> __m256i { nibbles(o + 32 + 16 * row) }
    @inline(__always) static func decodePair(_ o: UnsafeRawPointer, pair: Int, mask: __m256i) -> (__m256i, __m256i) {
        nibblePair(o + 32 + 32 * pair, mask)
    }
}

enum B5_0: BlockAVX2 {
    static var bias: Int8 { 16 }
    static var signed: Bool { false }
    static var hasMin: Bool { false }
    @inline(__always) static func decode(_ o: UnsafeRawPointer, row: Int) -> __m256i {
        _mm256_or_si256(nibbles(o + 48 + 16 * row), fifthBits(o + 16 + 4 * row))
    }
    @inline(__always) static func decodePair(_ o: UnsafeRawPointer, pair: Int, mask: __m256i) -> (__m256i, __m256i) {
        let (l, h) = nibblePair(o + 48 + 32 * pair, mask), (fl, fh) = fifthBitPair(o + 16 + 8 * pair)
        return (_mm256_or_si256(l, fl), _mm256_or_si256(h, fh))
    }
}

enum B5_1: BlockAVX2 {
    static var bias: Int8 { 0 }
    static var signed: Bool { false }
    static var hasMin: Bool { true }
    @inline(__always) static func decode(_ o: UnsafeRawPointer, row: Int) -> __m256i {
        _mm256_or_si256(nibbles(o + 64 + 16 * row), fifthBits(o + 32 + 4 * row))
    }
    @inline(__always) static func decodePair(_ o: UnsafeRawPointer, pair: Int, mask: __m256i) -> (__m256i, __m256i) {
        let (l, h) = nibblePair(o + 64 + 32 * pair, mask), (fl, fh) = fifthBitPair(o + 32 + 8 * pair)
        return (_mm256_or_si256(l, fl), _mm256_or_si256(h, fh))
    }
}

enum B8_0: BlockAVX2 {
    static var bias: Int8 { 0 }
    static var signed: Bool { true }
    static var hasMin: Bool { false }
    @inline(__always) static func decode(_ o: UnsafeRawPointer, row: Int) -> __m256i {
        o.loadUnaligned(fromByteOffset: 16 + 32 * row, as: __m256i.self)
    }
}
#endif
