// AVX-512 VNNI kernels for q4_K and q6_K, bit-identical to `QuantizedDot.dotReference` (which
// follows llama.cpp's x86 paths: q4_K through its repacked GEMM/GEMV, q6_K through
// ggml_vec_dot_q6_K_q8_K below 8 tokens and the tiled k-quant matmul from 8 on).
//
// Packed layouts (one "octet" per 8 rows × 256 columns, panels of 8 rows as for the 32-element
// types; rows past the end repeat the last one):
//   q6_K  d[8] f16 · scales[8][16] i8 · for each group g of 32 elements and row pair p:
//         row A's 32 six-bit values then row B's (unsigned bytes 0…63)          = 2192 bytes
//   q4_K  d[8] f16 · dmin[8] f16 · scales[8 sub-blocks][8 rows] u8 · mins[8][8] u8 · for each chunk c of 64
//         elements and row pair p: row A's 32 nibble bytes then row B's        = 1184 bytes
// In a zmm, lanes 0–7 hold row A's eight 4-product integer lanes and lanes 8–15 row B's.
#if arch(x86_64)
import _Builtin_intrinsics.intel
import Core

extension QuantizedAVX512 {
    /// q6_K on a packed panel: ggml_vec_dot_q6_K_q8_K's lanes below 8 tokens, the tiled k-quant
    /// matmul's per-superblock totals from 8 on. Per superblock the scale vectors are built once
    /// for the panel, then every token runs against them.
    static func runQ6K(_ w: PackedPanels, _ a: Acts, _ y: UnsafeMutablePointer<Float>, _ tokens: Int, _ panels: Range<Int>) {
        let blocks = w.cols / 256, n = w.cols
        let tiled = tokens >= 8
        let zero = _mm512_setzero_si512()
        // Group g's lanes 0–3 take sc[2g], 4–7 sc[2g+1] of row A (first source), lanes 8–15 the
        // same of row B; even/odd pickers for the −32 offset correction.
        var scaleIndex = [__m512i]()
        for g in 0..<8 {
            let s = Int32(2 * g)
            scaleIndex.append(unsafeBitCast(SIMD16<Int32>(s, s, s, s, s + 1, s + 1, s + 1, s + 1,
                                                          s + 16, s + 16, s + 16, s + 16, s + 17, s + 17, s + 17, s + 17),
                                            to: __m512i.self))
        }
        let evenIndex = unsafeBitCast(SIMD16<Int32>(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), to: __m512i.self)
        let oddIndex = unsafeBitCast(SIMD16<Int32>(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), to: __m512i.self)
        let dupEven = unsafeBitCast(SIMD16<Int32>(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14), to: __m512i.self)
        let dupOdd = unsafeBitCast(SIMD16<Int32>(1, 3, 5, 7, 9, 11, 13, 15, 1, 3, 5, 7, 9, 11, 13, 15), to: __m512i.self)
        let scales = UnsafeMutablePointer<__m512i>.allocate(capacity: 32 + 8)  // [g][p], then even/odd per pair
        let lanesAcc = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: 4 * tokens)
        let tiledAcc = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: tokens)
        defer { scales.deallocate(); lanesAcc.deallocate(); tiledAcc.deallocate() }
        for panel in panels {
            let r0 = panel * rowsPerPanel
            let base = UnsafeRawPointer(w.data + panel * w.panelBytes)
            let valid = min(8, w.rows - r0)
            for i in 0..<4 * tokens { lanesAcc[i] = SIMD16() }
            for t in 0..<tokens { tiledAcc[t] = SIMD8() }
            for b in 0..<blocks {
                let o = base + b * w.octetBytes
                let dw: SIMD8<Float> = _mm256_cvtph_ps(o.loadUnaligned(as: __m128i.self))
                for p in 0..<4 {
                    let scA = _mm512_cvtepi8_epi32(o.loadUnaligned(fromByteOffset: 16 + 32 * p, as: __m128i.self))
                    let scB = _mm512_cvtepi8_epi32(o.loadUnaligned(fromByteOffset: 32 + 32 * p, as: __m128i.self))
                    for g in 0..<8 { scales[4 * g + p] = _mm512_permutex2var_epi32(scA, scaleIndex[g], scB) }
                    scales[32 + 2 * p] = _mm512_permutex2var_epi32(scA, evenIndex, scB)
                    scales[33 + 2 * p] = _mm512_permutex2var_epi32(scA, oddIndex, scB)
                }
                for t in 0..<tokens {
                    let x = UnsafeRawPointer(a.qs + t * n) + b * 256
                    let ad = a.scales[t * blocks + b]
                    let bsF: SIMD16<Float> = UnsafeRawPointer(a.sums + t * (n / 16) + b * 16).loadUnaligned(as: SIMD16<Float>.self)
                    let bs = _mm512_cvtps_epi32(bsF)
                    let bsE = _mm512_permutexvar_epi32(dupEven, bs), bsO = _mm512_permutexvar_epi32(dupOdd, bs)
                    var s0 = zero, s1 = zero, s2 = zero, s3 = zero
                    for g in 0..<8 {
                        let yv = _mm512_broadcast_i64x4(x.loadUnaligned(fromByteOffset: 32 * g, as: __m256i.self))
                        @inline(__always) func part(_ p: Int) -> __m512i {
                            let wv = o.loadUnaligned(fromByteOffset: 144 + (g * 4 + p) * 64, as: __m512i.self)
                            return _mm512_mullo_epi32(_mm512_dpbusd_epi32(zero, wv, yv), scales[4 * g + p])
                        }
                        s0 = _mm512_add_epi32(s0, part(0)); s1 = _mm512_add_epi32(s1, part(1))
                        s2 = _mm512_add_epi32(s2, part(2)); s3 = _mm512_add_epi32(s3, part(3))
                    }
                    @inline(__always) func lanes(_ s: __m512i, _ p: Int) -> __m512i {
                        let corr = _mm512_add_epi32(_mm512_mullo_epi32(scales[32 + 2 * p], bsE), _mm512_mullo_epi32(scales[33 + 2 * p], bsO))
                        return _mm512_sub_epi32(s, _mm512_slli_epi32(corr, 5))
                    }
                    let l0 = lanes(s0, 0), l1 = lanes(s1, 1), l2 = lanes(s2, 2), l3 = lanes(s3, 3)
                    if tiled {
                        let totals = reduceRows(l0, l1, l2, l3)
                        tiledAcc[t] = tiledAcc[t].addingProduct(SIMD8<Float>(totals) * dw, SIMD8(repeating: ad))
                    } else {
                        let d = SIMD8<Float>(repeating: ad) * dw
                        @inline(__always) func pairScale(_ p: Int) -> SIMD16<Float> {
                            SIMD16(lowHalf: SIMD8(repeating: d[2 * p]), highHalf: SIMD8(repeating: d[2 * p + 1]))
                        }
                        let acc = lanesAcc + 4 * t
                        acc[0] = acc[0].addingProduct(pairScale(0), SIMD16<Float>(unsafeBitCast(l0, to: SIMD16<Int32>.self)))
                        acc[1] = acc[1].addingProduct(pairScale(1), SIMD16<Float>(unsafeBitCast(l1, to: SIMD16<Int32>.self)))
                        acc[2] = acc[2].addingProduct(pairScale(2), SIMD16<Float>(unsafeBitCast(l2, to: SIMD16<Int32>.self)))
                        acc[3] = acc[3].addingProduct(pairScale(3), SIMD16<Float>(unsafeBitCast(l3, to: SIMD16<Int32>.self)))
                    }
                }
            }
            for t in 0..<tokens {
                let acc = lanesAcc + 4 * t
                let r = tiled ? tiledAcc[t] : SIMD8<Float>(hsum8(acc[0].lowHalf), hsum8(acc[0].highHalf), hsum8(acc[1].lowHalf),
                                                           hsum8(acc[1].highHalf), hsum8(acc[2].lowHalf), hsum8(acc[2].highHalf),
                                                           hsum8(acc[3].lowHalf), hsum8(acc[3].highHalf))
                let out = y + t * w.rows + r0
                for i in 0..<valid { out[i] = r[i] }
            }
        }
    }

    /// q4_K on a packed panel: llama.cpp's repacked GEMM order (one rounding per 64 elements) for
    /// tokens in whole groups of 4, its GEMV order (per 256) for the rest. Per superblock the
    /// per-lane scale vectors are built once for the panel, then every token runs against them.
    static func runQ4K(_ w: PackedPanels, _ a: Acts, _ y: UnsafeMutablePointer<Float>, _ tokens: Int, _ panels: Range<Int>) {
        let blocks = w.cols / 256, n = w.cols
        let gemmTokens = tokens - tokens % 4
        let zero = _mm512_setzero_si512()
        let mask = _mm512_set1_epi8(0x0F)
        // Lane pickers: row 2p's value over lanes 0–7, row 2p+1's over 8–15.
        var pairIndex = [__m512i]()
        for p in 0..<4 {
            pairIndex.append(unsafeBitCast(SIMD16<Int32>(repeating: Int32(2 * p)) &+ SIMD16<Int32>(0, 0, 0, 0, 0, 0, 0, 0,
                                                                                                    1, 1, 1, 1, 1, 1, 1, 1),
                                           to: __m512i.self))
        }
        // Per superblock: scale vectors [sub-block j][pair p] and the mins of the 8 rows per sub-block.
        let scaleVectors = UnsafeMutablePointer<__m512i>.allocate(capacity: 32)
        let mins = UnsafeMutablePointer<SIMD8<Int32>>.allocate(capacity: 8)
        let acc = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 2 * tokens)
        defer { scaleVectors.deallocate(); mins.deallocate(); acc.deallocate() }
        for panel in panels {
            let r0 = panel * rowsPerPanel
            let base = UnsafeRawPointer(w.data + panel * w.panelBytes)
            let valid = min(8, w.rows - r0)
            for i in 0..<2 * tokens { acc[i] = SIMD8() }
            for b in 0..<blocks {
                let o = base + b * w.octetBytes
                let d: SIMD8<Float> = _mm256_cvtph_ps(o.loadUnaligned(as: __m128i.self))
                let dmin: SIMD8<Float> = _mm256_cvtph_ps(o.loadUnaligned(fromByteOffset: 16, as: __m128i.self))
                for j in 0..<8 {
                    let sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi32(o.loadUnaligned(fromByteOffset: 32 + 8 * j, as: __m128i.self)))
                    for p in 0..<4 { scaleVectors[4 * j + p] = _mm512_permutexvar_epi32(pairIndex[p], sc) }
                    mins[j] = unsafeBitCast(_mm256_cvtepu8_epi32(o.loadUnaligned(fromByteOffset: 96 + 8 * j, as: __m128i.self)),
                                            to: SIMD8<Int32>.self)
                }
                for t in 0..<tokens {
                    let x = UnsafeRawPointer(a.qs + t * n) + b * 256
                    let ad = SIMD8<Float>(repeating: a.scales[t * blocks + b])
                    let bs = a.sums + t * (n / 16) + b * 16
                    let span = t < gemmTokens ? 1 : 4
                    var sum0 = zero, sum1 = zero, sum2 = zero, sum3 = zero
                    var summ = SIMD8<Int32>()
                    var ta = acc[2 * t], tm = acc[2 * t + 1]
                    for c in 0..<4 {
                        let y0 = _mm512_broadcast_i64x4(x.loadUnaligned(fromByteOffset: 64 * c, as: __m256i.self))
                        let y1 = _mm512_broadcast_i64x4(x.loadUnaligned(fromByteOffset: 64 * c + 32, as: __m256i.self))
                        @inline(__always) func pairSum(_ p: Int) -> __m512i {
                            let q = o.loadUnaligned(fromByteOffset: 160 + (c * 4 + p) * 64, as: __m512i.self)
                            let lo = _mm512_dpbusd_epi32(zero, _mm512_and_si512(q, mask), y0)
                            let hi = _mm512_dpbusd_epi32(zero, _mm512_and_si512(_mm512_srli_epi16(q, 4), mask), y1)
                            return _mm512_add_epi32(_mm512_mullo_epi32(lo, scaleVectors[4 * (2 * c) + p]),
                                                    _mm512_mullo_epi32(hi, scaleVectors[4 * (2 * c + 1) + p]))
                        }
                        sum0 = _mm512_add_epi32(sum0, pairSum(0)); sum1 = _mm512_add_epi32(sum1, pairSum(1))
                        sum2 = _mm512_add_epi32(sum2, pairSum(2)); sum3 = _mm512_add_epi32(sum3, pairSum(3))
                        let bsLo = Int32(bs[4 * c]) + Int32(bs[4 * c + 1]), bsHi = Int32(bs[4 * c + 2]) + Int32(bs[4 * c + 3])
                        summ &+= mins[2 * c] &* SIMD8(repeating: bsLo) &+ mins[2 * c + 1] &* SIMD8(repeating: bsHi)
                        if (c + 1) % span == 0 {
                            let sumi = reduceRows(sum0, sum1, sum2, sum3)
                            ta = ta.addingProduct(SIMD8<Float>(sumi), d * ad)
                            tm = tm.addingProduct(SIMD8<Float>(summ), dmin * ad)
                            sum0 = zero; sum1 = zero; sum2 = zero; sum3 = zero
                            summ = SIMD8()
                        }
                    }
                    acc[2 * t] = ta; acc[2 * t + 1] = tm
                }
            }
            for t in 0..<tokens {
                let r = acc[2 * t] - acc[2 * t + 1]
                let out = y + t * w.rows + r0
                for i in 0..<valid { out[i] = r[i] }
            }
        }
    }

    /// Eight row totals [A0, B0, A1, B1, …] from four row-pair vectors (row A in lanes 0–7,
    /// row B in 8–15), by a shuffle tree; exact in Int32.
    @inline(__always)
    static func reduceRows(_ v0: __m512i, _ v1: __m512i, _ v2: __m512i, _ v3: __m512i) -> SIMD8<Int32> {
        @inline(__always) func halves(_ v: __m512i) -> SIMD8<Int32> {
            let s = unsafeBitCast(v, to: SIMD16<Int32>.self)
            return SIMD8(lowHalf: s.lowHalf.lowHalf &+ s.lowHalf.highHalf, highHalf: s.highHalf.lowHalf &+ s.highHalf.highHalf)
        }
        @inline(__always) func pairs(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD4<Int32> {
            let c = SIMD8(lowHalf: a.evenHalf &+ a.oddHalf, highHalf: b.evenHalf &+ b.oddHalf)
            return c.evenHalf &+ c.oddHalf
        }
        return SIMD8(lowHalf: pairs(halves(v0), halves(v1)), highHalf: pairs(halves(v2), halves(v3)))
    }
}
#endif
