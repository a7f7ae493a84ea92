// AVX2 kernels for q4_K and q6_K on Core's `KQuantLanePanels` (8 rows in the lanes of a vector),
// bit-identical to `QuantizedDot.dotReference`:
//
//   q4_K  Q4KLanes.swift (one source for this target and, with VNNI, CPUKernelsAVX512).
//   q6_K  ggml_vec_dot_q6_K_q8_K below 8 tokens (8 integer lanes per row: lane k sums elements
//         4k…4k+3 of every 32, each lane fused-multiply-added with d·d_act per superblock,
//         hsum_float_8 at the end); from 8 tokens the tiled k-quant matmul's per-superblock
//         totals, acc += (f(total)·d)·d_act.
//
// One `vpmaddubsw` of a 32-byte group (4 elements × 8 rows, unsigned weights) with 4 activation
// bytes broadcast gives each row's two pair sums in its own 16-bit lanes; `vpmaddwd` with the
// rows' scales duplicated per pair widens them, scaled, to one 32-bit lane per row. The integer
// sums are exact whatever the order, so they equal the reference's; the float operations are the
// reference's, vectorized over the 8 rows.
#if arch(x86_64)
import _Builtin_intrinsics.intel
import Core

extension QuantizedAVX2 {
    /// Types with a lane-panel kernel here.
    public static func supportsLanes(_ type: GGMLType) -> Bool { type == .q4_K || type == .q6_K }

    /// y[t, r] (y is [tokens, rows]) for the panels in `panels`; activations in q8_K format
    /// (CPUKernels' QuantizedActivations: qs, d per 256, bsums per 16 as floats).
    public static func runLanes(_ w: KQuantLanePanels, qs: UnsafePointer<Int8>, scales: UnsafePointer<Float>, sums: UnsafePointer<Float>,
                                pairSums: UnsafePointer<Int32>, y: UnsafeMutablePointer<Float>, tokens: Int, panels: Range<Int>) {
        let a = Acts2(qs: qs, scales: scales, sums: sums, n: w.cols, pairSums: pairSums)
        switch w.type {
        case .q4_K: Q4KLanes.run(w, qs: a.qs, scales: a.scales, pairSums: a.pairSums!, y: y, tokens: tokens, panels: panels)
        case .q6_K: runQ6K(w, a, y, tokens, panels)
        default: preconditionFailure("no AVX2 lane kernel for \(w.type)")
        }
    }

    // MARK: - q6_K

    static func runQ6K(_ w: KQuantLanePanels, _ a: Acts2, _ y: UnsafeMutablePointer<Float>, _ tokens: Int, _ panels: Range<Int>) {
        let blocks = w.cols / 256
        let tiled = tokens >= 8
        // Per token: 8 lane accumulators × 8 rows (lane mode) or one × 8 rows (tiled).
        let acc = UnsafeMutableRawPointer.allocate(byteCount: 256 * max(1, tokens), alignment: 64)
        // The octet's 16 scale vectors, widened once for all tokens, then 8 vectors of the scale
        // pairs (sc[2j], sc[2j+1]) per row for the offset correction.
        let scales = UnsafeMutableRawPointer.allocate(byteCount: 24 * 32, alignment: 64)
        defer { acc.deallocate(); scales.deallocate() }
        let zeroF = _mm256_setzero_ps()
        for panel in panels {
            let base = UnsafeRawPointer(w.data + panel * w.panelBytes)
            for i in 0..<(8 * tokens) { (acc + 32 * i).storeBytes(of: zeroF, as: __m256.self) }
            for b in 0..<blocks {
                let o = base + b * w.octetBytes
                if tokens < 4 { prefetchAhead(o, w.octetBytes) }
                let low = _mm256_set1_epi32(0xFFFF)
                for s in 0..<16 {
                    let v = _mm256_cvtepi8_epi32(o.loadUnaligned(fromByteOffset: 16 + 8 * s, as: __m128i.self))
                    (scales + 32 * s).storeBytes(of: _mm256_or_si256(_mm256_and_si256(v, low), _mm256_slli_epi32(v, 16)), as: __m256i.self)
                }
                for j in 0..<8 {
                    let even = _mm256_cvtepi8_epi32(o.loadUnaligned(fromByteOffset: 16 + 16 * j, as: __m128i.self))
                    let odd = _mm256_cvtepi8_epi32(o.loadUnaligned(fromByteOffset: 24 + 16 * j, as: __m128i.self))
                    (scales + 512 + 32 * j).storeBytes(of: _mm256_or_si256(_mm256_and_si256(even, low), _mm256_slli_epi32(odd, 16)), as: __m256i.self)
                }
                let dw = _mm256_cvtph_ps(o.loadUnaligned(as: __m128i.self))
                for t in 0..<tokens {
                    q6KToken(o, UnsafeRawPointer(scales), a, b: b, t: t, dw: dw, tiled: tiled, acc: acc + 256 * t)
                }
            }
            let r0 = panel * 8, valid = min(8, w.rows - r0)
            for t in 0..<tokens {
                let p = acc + 256 * t
                let v: SIMD8<Float>
                if tiled {
                    v = p.load(as: __m256.self)
                } else {
                    // hsum_float_8 over the lanes, for the 8 rows at once.
                    @inline(__always) func lane(_ k: Int) -> __m256 { (p + 32 * k).load(as: __m256.self) }
                    v = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(lane(0), lane(4)), _mm256_add_ps(lane(2), lane(6))),
                                      _mm256_add_ps(_mm256_add_ps(lane(1), lane(5)), _mm256_add_ps(lane(3), lane(7))))
                }
                let out = y + t * w.rows + r0
                for i in 0..<valid { out[i] = v[i] }
            }
        }
    }

    /// One token of q6_K superblock b: ggml's 8 integer lanes per row — lane k: Σ over the 8 groups
    /// of 32 of sc·Σ q·y over elements 4k…4k+3 (q unsigned), minus 32·(sc[2k]·bsum[2k] +
    /// sc[2k+1]·bsum[2k+1]) as ggml subtracts the offset — then the lane or tiled float update.
    @inline(__always)
    static func q6KToken(_ o: UnsafeRawPointer, _ scales: UnsafeRawPointer, _ a: Acts2, b: Int, t: Int, dw: __m256, tiled: Bool,
                         acc: UnsafeMutableRawPointer) {
        let blocks = a.n / 256
        let x = UnsafeRawPointer(a.qs + t * a.n + 256 * b)
        var c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256(), c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256()
        var c4 = _mm256_setzero_si256(), c5 = _mm256_setzero_si256(), c6 = _mm256_setzero_si256(), c7 = _mm256_setzero_si256()
        for g in 0..<8 {
            let q = o + 144 + 256 * g
            let sA = (scales + 64 * g).load(as: __m256i.self), sB = (scales + 64 * g + 32).load(as: __m256i.self)
            @inline(__always) func lane(_ k: Int, _ s: __m256i, _ c: __m256i) -> __m256i {
                let yv = _mm256_set1_epi32(x.loadUnaligned(fromByteOffset: 32 * g + 4 * k, as: Int32.self))
                return _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16((q + 32 * k).load(as: __m256i.self), yv), s))
            }
            c0 = lane(0, sA, c0); c1 = lane(1, sA, c1); c2 = lane(2, sA, c2); c3 = lane(3, sA, c3)
            c4 = lane(4, sB, c4); c5 = lane(5, sB, c5); c6 = lane(6, sB, c6); c7 = lane(7, sB, c7)
        }
        let bs = a.sums + t * (a.n / 16) + 16 * b
        @inline(__always) func offset(_ j: Int, _ c: __m256i) -> __m256i {
            let pair = Int32(bitPattern: UInt32(UInt16(truncatingIfNeeded: Int32(bs[2 * j]))) | UInt32(UInt16(truncatingIfNeeded: Int32(bs[2 * j + 1]))) << 16)
            let corr = _mm256_madd_epi16((scales + 512 + 32 * j).load(as: __m256i.self), _mm256_set1_epi32(pair))
            return _mm256_sub_epi32(c, _mm256_slli_epi32(corr, 5))
        }
        c0 = offset(0, c0); c1 = offset(1, c1); c2 = offset(2, c2); c3 = offset(3, c3)
        c4 = offset(4, c4); c5 = offset(5, c5); c6 = offset(6, c6); c7 = offset(7, c7)
        let ad = a.scales[t * blocks + b]
        if tiled {
            let total = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                         _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)))
            acc.storeBytes(of: _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(total), dw), _mm256_set1_ps(ad), acc.load(as: __m256.self)),
                           as: __m256.self)
        } else {
            let d = _mm256_mul_ps(_mm256_set1_ps(ad), dw)
            @inline(__always) func update(_ k: Int, _ c: __m256i) {
                let p = acc + 32 * k
                p.storeBytes(of: _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(c), p.load(as: __m256.self)), as: __m256.self)
            }
            update(0, c0); update(1, c1); update(2, c2); update(3, c3); update(4, c4); update(5, c5); update(6, c6); update(7, c7)
        }
    }
}
#endif
