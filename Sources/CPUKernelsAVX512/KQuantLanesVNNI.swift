// q4_K on the AVX2 lane layout (`KQuantLanePanels`, rows in vector lanes) with AVX-512 VNNI's
// 256-bit `vpdpbusd`: the same integer sums as CPUKernelsAVX2's lane kernel and the same float
// operations in the same order, so the same bits (`kernels --check`, QuantizedDotTests).
//
// The AVX2 kernel keeps 16-bit pair sums (`vpmaddubsw` + `vpaddw`) and scales them with
// `vpmaddwd` against each row's scale duplicated in both halves of its 32-bit lane, which is
// (pair 0 + pair 1)·scale. `vpdpbusd` adds the 4 products of a lane straight into 32 bits — the
// same (pair 0 + pair 1) — in one instruction instead of two, and the scale follows as one
// 32-bit multiply per chunk. No sum saturates either way (a lane's 32 products stay within
// 32·15·127).
#if arch(x86_64)
import _Builtin_intrinsics.intel
import Core
import CSupport

extension QuantizedAVX512 {
    /// y[t, r] for the 8-row panels in `panels` of q4_K weights in the lane layout; activations
    /// q8_K with their pair sums (CPUKernels' QuantizedActivations), as `QuantizedAVX2.runLanes`.
    public static func runQ4KLanes(_ w: KQuantLanePanels, qs: UnsafePointer<Int8>, scales: UnsafePointer<Float>,
                                   pairSums: UnsafePointer<Int32>, y: UnsafeMutablePointer<Float>, tokens: Int, panels: Range<Int>) {
        precondition(w.type == .q4_K, "runQ4KLanes takes q4_K panels")
        let blocks = w.cols / 256, n = w.cols
        let gemmTokens = tokens - tokens % 4
        // Float accumulators per token: [t][acc, accm] × 8 rows, then four tokens' d·d_act and
        // dmin·d_act vectors for the GEMM tiles.
        let acc = UnsafeMutableRawPointer.allocate(byteCount: 64 * (tokens + 4), alignment: 64)
        defer { acc.deallocate() }
        for panel in panels {
            let base = UnsafeRawPointer(w.data + panel * w.panelBytes)
            for i in 0..<(16 * tokens) { acc.storeBytes(of: Float(0), toByteOffset: 4 * i, as: Float.self) }
            for b in 0..<blocks {
                let o = base + b * w.octetBytes
                var t = 0
                while t < gemmTokens {
                    q4KTile4VNNI(o, qs: qs, scales: scales, pairSums: pairSums, n: n, b: b, t: t, acc: acc, scale: acc + 64 * tokens)
                    t += 4
                }
                while t < tokens { q4KGemvVNNI(o, qs: qs, scales: scales, pairSums: pairSums, n: n, b: b, t: t, acc: acc); t += 1 }
            }
            let r0 = panel * 8, valid = min(8, w.rows - r0)
            for t in 0..<tokens {
                let v: SIMD8<Float> = _mm256_sub_ps((acc + 64 * t).load(as: __m256.self), (acc + 64 * t + 32).load(as: __m256.self))
                let out = y + t * w.rows + r0
                for i in 0..<valid { out[i] = v[i] }
            }
        }
    }

    /// The 8 rows' 6-bit scales of sub-block j, one per 32-bit lane.
    @inline(__always)
    static func q4ScalesVNNI(_ o: UnsafeRawPointer, _ j: Int) -> __m256i {
        _mm256_cvtepu8_epi32(o.loadUnaligned(fromByteOffset: 32 + 8 * j, as: __m128i.self))
    }

    /// The 8 rows' mins of sub-blocks 2c and 2c+1 as two int16 per row (as the AVX2 kernel).
    @inline(__always)
    static func q4MinPairsVNNI(_ o: UnsafeRawPointer, _ c: Int) -> __m256i {
        _mm256_or_si256(_mm256_cvtepu8_epi32(o.loadUnaligned(fromByteOffset: 96 + 16 * c, as: __m128i.self)),
                        _mm256_slli_epi32(_mm256_cvtepu8_epi32(o.loadUnaligned(fromByteOffset: 104 + 16 * c, as: __m128i.self)), 16))
    }

    /// Four tokens t…t+3 of superblock b, llama.cpp's GEMM order (one rounding per chunk of 64).
    @inline(__always)
    static func q4KTile4VNNI(_ o: UnsafeRawPointer, qs: UnsafePointer<Int8>, scales: UnsafePointer<Float>, pairSums: UnsafePointer<Int32>,
                             n: Int, b: Int, t: Int, acc: UnsafeMutableRawPointer, scale: UnsafeMutableRawPointer) {
        let mask = _mm256_set1_epi8(0x0F)
        let blocks = n / 256, chunks = n / 64
        let x0 = UnsafeRawPointer(qs + t * n + 256 * b), x1 = x0 + n, x2 = x1 + n, x3 = x2 + n
        let pairs = pairSums + t * chunks + 4 * b
        let d8 = _mm256_cvtph_ps(o.loadUnaligned(as: __m128i.self)), dm8 = _mm256_cvtph_ps(o.loadUnaligned(fromByteOffset: 16, as: __m128i.self))
        for i in 0..<4 {
            let ad = _mm256_set1_ps(scales[(t + i) * blocks + b])
            (scale + 64 * i).storeBytes(of: _mm256_mul_ps(d8, ad), as: __m256.self)
            (scale + 64 * i + 32).storeBytes(of: _mm256_mul_ps(dm8, ad), as: __m256.self)
        }
        for c in 0..<4 {
            var l0 = _mm256_setzero_si256(), h0 = _mm256_setzero_si256(), l1 = _mm256_setzero_si256(), h1 = _mm256_setzero_si256()
            var l2 = _mm256_setzero_si256(), h2 = _mm256_setzero_si256(), l3 = _mm256_setzero_si256(), h3 = _mm256_setzero_si256()
            let q = o + 160 + 256 * c
            for k in 0..<8 {
                let v = (q + 32 * k).load(as: __m256i.self)
                let lo = _mm256_and_si256(v, mask), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask)
                let eLo = 64 * c + 4 * k, eHi = eLo + 32
                @inline(__always) func bcast(_ x: UnsafeRawPointer, _ e: Int) -> __m256i { _mm256_set1_epi32(x.loadUnaligned(fromByteOffset: e, as: Int32.self)) }
                l0 = swiftkt_dpbusd8(l0, lo, bcast(x0, eLo)); h0 = swiftkt_dpbusd8(h0, hi, bcast(x0, eHi))
                l1 = swiftkt_dpbusd8(l1, lo, bcast(x1, eLo)); h1 = swiftkt_dpbusd8(h1, hi, bcast(x1, eHi))
                l2 = swiftkt_dpbusd8(l2, lo, bcast(x2, eLo)); h2 = swiftkt_dpbusd8(h2, hi, bcast(x2, eHi))
                l3 = swiftkt_dpbusd8(l3, lo, bcast(x3, eLo)); h3 = swiftkt_dpbusd8(h3, hi, bcast(x3, eHi))
            }
            let scLo = q4ScalesVNNI(o, 2 * c), scHi = q4ScalesVNNI(o, 2 * c + 1), mins = q4MinPairsVNNI(o, c)
            @inline(__always) func finish(_ i: Int, _ l: __m256i, _ h: __m256i) {
                let sumi = _mm256_add_epi32(_mm256_mullo_epi32(l, scLo), _mm256_mullo_epi32(h, scHi))
                let summ = _mm256_madd_epi16(mins, _mm256_set1_epi32(pairs[i * chunks + c]))
                let p = acc + 64 * (t + i), s = scale + 64 * i
                p.storeBytes(of: _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), s.load(as: __m256.self), p.load(as: __m256.self)), as: __m256.self)
                (p + 32).storeBytes(of: _mm256_fmadd_ps(_mm256_cvtepi32_ps(summ), (s + 32).load(as: __m256.self), (p + 32).load(as: __m256.self)),
                                    as: __m256.self)
            }
            finish(0, l0, h0); finish(1, l1, h1); finish(2, l2, h2); finish(3, l3, h3)
        }
    }

    /// One token of superblock b, llama.cpp's GEMV order (one rounding per superblock).
    @inline(__always)
    static func q4KGemvVNNI(_ o: UnsafeRawPointer, qs: UnsafePointer<Int8>, scales: UnsafePointer<Float>, pairSums: UnsafePointer<Int32>,
                            n: Int, b: Int, t: Int, acc: UnsafeMutableRawPointer) {
        let mask = _mm256_set1_epi8(0x0F)
        let blocks = n / 256
        let x = UnsafeRawPointer(qs + t * n + 256 * b)
        let pairs = pairSums + t * (n / 64) + 4 * b
        var sumi = _mm256_setzero_si256(), summ = _mm256_setzero_si256()
        for c in 0..<4 {
            var l = _mm256_setzero_si256(), h = _mm256_setzero_si256()
            let q = o + 160 + 256 * c
            for k in 0..<8 {
                let v = (q + 32 * k).load(as: __m256i.self)
                let lo = _mm256_and_si256(v, mask), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask)
                l = swiftkt_dpbusd8(l, lo, _mm256_set1_epi32(x.loadUnaligned(fromByteOffset: 64 * c + 4 * k, as: Int32.self)))
                h = swiftkt_dpbusd8(h, hi, _mm256_set1_epi32(x.loadUnaligned(fromByteOffset: 64 * c + 32 + 4 * k, as: Int32.self)))
            }
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_mullo_epi32(l, q4ScalesVNNI(o, 2 * c)),
                                                           _mm256_mullo_epi32(h, q4ScalesVNNI(o, 2 * c + 1))))
            summ = _mm256_add_epi32(summ, _mm256_madd_epi16(q4MinPairsVNNI(o, c), _mm256_set1_epi32(pairs[c])))
        }
        let ad = _mm256_set1_ps(scales[t * blocks + b])
        let d8 = _mm256_cvtph_ps(o.loadUnaligned(as: __m128i.self)), dm8 = _mm256_cvtph_ps(o.loadUnaligned(fromByteOffset: 16, as: __m128i.self))
        let p = acc + 64 * t
        p.storeBytes(of: _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_mul_ps(d8, ad), p.load(as: __m256.self)), as: __m256.self)
        (p + 32).storeBytes(of: _mm256_fmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_mul_ps(dm8, ad), (p + 32).load(as: __m256.self)), as: __m256.self)
    }
}
#endif
