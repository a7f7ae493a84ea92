// q4_K on Core's `KQuantLanePanels` (8 rows in the lanes of a vector), bit-identical to
// `QuantizedDot.dotReference`: llama.cpp's repacked GEMM order for tokens in whole groups of 4
// (one float rounding per 64 elements and row), its GEMV order for the rest (one per
// superblock): exact integer sums Σ sc·q·y and Σ m·bsum per row, then acc += f(sumi)·(d·d_act),
// accm += f(summ)·(dmin·d_act).
//
// One source compiled twice: in CPUKernelsAVX2 (`vpmaddubsw` pair sums in 16-bit lanes, scaled
// by `vpmaddwd`) and, through a symbolic link, in CPUKernelsAVX512 with SWIFTKT_VNNI (256-bit
// `vpdpbusd` adds a lane's 4 products into 32 bits in one instruction; the scale follows as one
// 32-bit multiply). The integer sums are the same either way, and so are the float operations.
#if arch(x86_64)
import _Builtin_intrinsics.intel
import Core
import CSupport

public enum Q4KLanes {
    /// Quantized activations [tokens, n] in q8_K format with their sub-block pair sums.
    struct Acts {
        let qs: UnsafePointer<Int8>
        let scales: UnsafePointer<Float>
        let n: Int
        let pairSums: UnsafePointer<Int32>
    }

    /// Prefetches the `bytes` bytes 4 KiB past `p` (the GEMV streams its panels from memory).
    @inline(__always)
    static func prefetch(_ p: UnsafeRawPointer, _ bytes: Int) {
        var o = 0
        while o < bytes { swiftkt_prefetch(p + 4096 + o); o += 64 }
    }

    /// y[t, r] (y is [tokens, rows]) for the 8-row panels in `panels`; activations q8_K with
    /// their pair sums (CPUKernels' QuantizedActivations).
    public static func run(_ w: KQuantLanePanels, qs: UnsafePointer<Int8>, scales: UnsafePointer<Float>, pairSums: UnsafePointer<Int32>,
                           y: UnsafeMutablePointer<Float>, tokens: Int, panels: Range<Int>) {
        let a = Acts(qs: qs, scales: scales, n: w.cols, pairSums: pairSums)
        let blocks = w.cols / 256
        let gemmTokens = tokens - tokens % 4
        // Float accumulators per token: [t][acc, accm] × 8 rows.
        // (then four tokens' d·d_act and dmin·d_act vectors for the GEMM tiles)
        let acc = UnsafeMutableRawPointer.allocate(byteCount: 64 * (tokens + 4), alignment: 64)
        defer { acc.deallocate() }
        for panel in panels {
            let base = UnsafeRawPointer(w.data + panel * w.panelBytes)
            for i in 0..<(16 * tokens) { acc.storeBytes(of: Float(0), toByteOffset: 4 * i, as: Float.self) }
            for b in 0..<blocks {
                let o = base + b * w.octetBytes
                if tokens < 4 { prefetch(o, w.octetBytes) }
                var t = 0
                while t < gemmTokens { q4KTile4(o, a, b: b, t: t, acc: acc, scale: acc + 64 * tokens); t += 4 }
                while t < tokens { q4KGemv(o, a, b: b, t: t, acc: acc); t += 1 }
            }
            let r0 = panel * 8, valid = min(8, w.rows - r0)
            for t in 0..<tokens {
                let v: SIMD8<Float> = _mm256_sub_ps((acc + 64 * t).load(as: __m256.self), (acc + 64 * t + 32).load(as: __m256.self))
                let out = y + t * w.rows + r0
                for i in 0..<valid { out[i] = v[i] }
            }
        }
    }

    /// The 8 rows' 6-bit scales of sub-block j as `scaled` takes them: AVX2 as 16-bit multipliers
    /// duplicated for each row's two pair sums, VNNI one per 32-bit lane.
    @inline(__always)
    static func q4Scales(_ o: UnsafeRawPointer, _ j: Int) -> __m256i {
        let v = _mm256_cvtepu8_epi32(o.loadUnaligned(fromByteOffset: 32 + 8 * j, as: __m128i.self))
        #if SWIFTKT_VNNI
        return v
        #else
        return _mm256_or_si256(v, _mm256_slli_epi32(v, 16))
        #endif
    }

    /// A sub-block's sums (`dot`) times its scales (`q4Scales`), one 32-bit lane per row: AVX2's
    /// two pair sums by `vpmaddwd`, VNNI's one sum by a 32-bit multiply (the same integer).
    @inline(__always)
    static func scaled(_ sums: __m256i, _ scales: __m256i) -> __m256i {
        #if SWIFTKT_VNNI
        return _mm256_mullo_epi32(sums, scales)
        #else
        return _mm256_madd_epi16(sums, scales)
        #endif
    }

    /// acc plus the products of 4 unsigned weight bytes × 4 activation bytes per row: AVX2 as two
    /// 16-bit pair sums (`vpmaddubsw`, no saturation: ≤ 8·2·15·127 a lane), VNNI as one 32-bit sum.
    @inline(__always)
    static func dot(_ acc: __m256i, _ w: __m256i, _ y: __m256i) -> __m256i {
        #if SWIFTKT_VNNI
        return swiftkt_dpbusd8(acc, w, y)
        #else
        return _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, y))
        #endif
    }

    /// The 8 rows' mins of sub-blocks 2c and 2c+1 as one word of two int16 per row, for
    /// `vpmaddwd` with a token's sub-block pair sums: m[2c]·S[2c] + m[2c+1]·S[2c+1] per row.
    @inline(__always)
    static func q4MinPairs(_ o: UnsafeRawPointer, _ c: Int) -> __m256i {
        _mm256_or_si256(_mm256_cvtepu8_epi32(o.loadUnaligned(fromByteOffset: 96 + 16 * c, as: __m128i.self)),
                        _mm256_slli_epi32(_mm256_cvtepu8_epi32(o.loadUnaligned(fromByteOffset: 104 + 16 * c, as: __m128i.self)), 16))
    }

    /// Four tokens t…t+3 of superblock b, llama.cpp's GEMM order (rounding per chunk of 64).
    @inline(__always)
    static func q4KTile4(_ o: UnsafeRawPointer, _ a: Acts, b: Int, t: Int, acc: UnsafeMutableRawPointer, scale: UnsafeMutableRawPointer) {
        let mask = _mm256_set1_epi8(0x0F)
        let blocks = a.n / 256, chunks = a.n / 64
        let x0 = UnsafeRawPointer(a.qs + t * a.n + 256 * b), x1 = x0 + a.n, x2 = x1 + a.n, x3 = x2 + a.n
        let pairs = a.pairSums + t * chunks + 4 * b
        let d8 = _mm256_cvtph_ps(o.loadUnaligned(as: __m128i.self)), dm8 = _mm256_cvtph_ps(o.loadUnaligned(fromByteOffset: 16, as: __m128i.self))
        // d·d_act and dmin·d_act of the four tokens: [token][2] vectors (scratch after the accumulators).
        for i in 0..<4 {
            let ad = _mm256_set1_ps(a.scales[(t + i) * blocks + b])
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
                l0 = dot(l0, lo, bcast(x0, eLo)); h0 = dot(h0, hi, bcast(x0, eHi))
                l1 = dot(l1, lo, bcast(x1, eLo)); h1 = dot(h1, hi, bcast(x1, eHi))
                l2 = dot(l2, lo, bcast(x2, eLo)); h2 = dot(h2, hi, bcast(x2, eHi))
                l3 = dot(l3, lo, bcast(x3, eLo)); h3 = dot(h3, hi, bcast(x3, eHi))
            }
            let scLo = q4Scales(o, 2 * c), scHi = q4Scales(o, 2 * c + 1), mins = q4MinPairs(o, c)
            @inline(__always) func finish(_ i: Int, _ l: __m256i, _ h: __m256i) {
                let sumi = _mm256_add_epi32(scaled(l, scLo), scaled(h, scHi))
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
    static func q4KGemv(_ o: UnsafeRawPointer, _ a: Acts, b: Int, t: Int, acc: UnsafeMutableRawPointer) {
        let mask = _mm256_set1_epi8(0x0F)
        let blocks = a.n / 256
        let x = UnsafeRawPointer(a.qs + t * a.n + 256 * b)
        let pairs = a.pairSums + t * (a.n / 64) + 4 * b
        var sumi = _mm256_setzero_si256(), summ = _mm256_setzero_si256()
        for c in 0..<4 {
            var l = _mm256_setzero_si256(), h = _mm256_setzero_si256()
            let q = o + 160 + 256 * c
            for k in 0..<8 {
                let v = (q + 32 * k).load(as: __m256i.self)
                let lo = _mm256_and_si256(v, mask), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask)
                l = dot(l, lo, _mm256_set1_epi32(x.loadUnaligned(fromByteOffset: 64 * c + 4 * k, as: Int32.self)))
                h = dot(h, hi, _mm256_set1_epi32(x.loadUnaligned(fromByteOffset: 64 * c + 32 + 4 * k, as: Int32.self)))
            }
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(scaled(l, q4Scales(o, 2 * c)), scaled(h, q4Scales(o, 2 * c + 1))))
            summ = _mm256_add_epi32(summ, _mm256_madd_epi16(q4MinPairs(o, c), _mm256_set1_epi32(pairs[c])))
        }
        let ad = _mm256_set1_ps(a.scales[t * blocks + b])
        let d8 = _mm256_cvtph_ps(o.loadUnaligned(as: __m128i.self)), dm8 = _mm256_cvtph_ps(o.loadUnaligned(fromByteOffset: 16, as: __m128i.self))
        let p = acc + 64 * t
        p.storeBytes(of: _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_mul_ps(d8, ad), p.load(as: __m256.self)), as: __m256.self)
        (p + 32).storeBytes(of: _mm256_fmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_mul_ps(dm8, ad), (p + 32).load(as: __m256.self)), as: __m256.self)
    }
}
#endif
