// Activation quantization (CPUKernels' QuantizedActivations) in AVX2, with the scalar version's
// results exactly: maxima are exact whatever the order, x·(127/amax) and (−127/max)·x are the
// same single float multiplications, and `vcvtps2dq` rounds half to even like the scalar
// `.toNearestOrEven` (the default MXCSR mode). q8_K also stores, per 64 elements, the sums of its
// two 32-element sub-blocks as one 32-bit word of two int16 (the q4_K kernels' min terms).
#if arch(x86_64)
import _Builtin_intrinsics.intel
import Core

public enum QuantizeAVX2 {
    /// Largest |v| of 8 lanes.
    @inline(__always)
    static func hmax(_ v: __m256) -> Float {
        let s: SIMD8<Float> = v
        var m = _mm_max_ps(s.lowHalf, s.highHalf)
        m = _mm_max_ps(m, _mm_movehl_ps(m, m))
        m = _mm_max_ps(m, _mm_movehdup_ps(m))
        return SIMD4<Float>(m)[0]
    }

    /// Four vectors of int32 (values −128…127) as 32 int8 in element order.
    @inline(__always)
    static func packBytes(_ v0: __m256i, _ v1: __m256i, _ v2: __m256i, _ v3: __m256i) -> __m256i {
        let p = _mm256_packs_epi16(_mm256_packs_epi32(v0, v1), _mm256_packs_epi32(v2, v3))
        return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    /// q8_0 (and q8_1 with `sums`) blocks of 32 of one row of n.
    public static func q8Row(_ x: UnsafePointer<Float>, n: Int, qs: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>,
                             sums: UnsafeMutablePointer<Float>?) {
        let signless = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF))
        let raw = UnsafeRawPointer(x)
        for b in 0..<(n / 32) {
            let x0 = raw.loadUnaligned(fromByteOffset: 128 * b, as: __m256.self)
            let x1 = raw.loadUnaligned(fromByteOffset: 128 * b + 32, as: __m256.self)
            let x2 = raw.loadUnaligned(fromByteOffset: 128 * b + 64, as: __m256.self)
            let x3 = raw.loadUnaligned(fromByteOffset: 128 * b + 96, as: __m256.self)
            let m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(x0, signless), _mm256_and_ps(x1, signless)),
                                  _mm256_max_ps(_mm256_and_ps(x2, signless), _mm256_and_ps(x3, signless)))
            let amax = hmax(m)
            let d = amax / 127
            let id = _mm256_set1_ps(amax != 0 ? 127 / amax : 0)
            let v0 = _mm256_cvtps_epi32(_mm256_mul_ps(x0, id)), v1 = _mm256_cvtps_epi32(_mm256_mul_ps(x1, id))
            let v2 = _mm256_cvtps_epi32(_mm256_mul_ps(x2, id)), v3 = _mm256_cvtps_epi32(_mm256_mul_ps(x3, id))
            UnsafeMutableRawPointer(qs + 32 * b).storeBytes(of: packBytes(v0, v1, v2, v3), as: __m256i.self)
            scales[b] = halfToFloat(floatToHalf(d))
            if let sums {
                let s: SIMD8<Int32> = unsafeBitCast(_mm256_add_epi32(_mm256_add_epi32(v0, v1), _mm256_add_epi32(v2, v3)), to: SIMD8<Int32>.self)
                sums[b] = halfToFloat(floatToHalf(d * Float(s.wrappedSum())))
            }
        }
    }

    /// q8_K superblocks of 256 of one row of n: qs, d, the 16 bsums (as floats) and the 4
    /// sub-block pair sums per superblock.
    public static func q8KRow(_ x: UnsafePointer<Float>, n: Int, qs: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>,
                              bsums: UnsafeMutablePointer<Float>, pairSums: UnsafeMutablePointer<Int32>) {
        let signless = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF))
        for b in 0..<(n / 256) {
            let xb = x + 256 * b, raw = UnsafeRawPointer(xb)
            var m = _mm256_setzero_ps()
            for i in 0..<32 { m = _mm256_max_ps(m, _mm256_and_ps(raw.loadUnaligned(fromByteOffset: 32 * i, as: __m256.self), signless)) }
            let amax = hmax(m)
            let q = qs + 256 * b
            if amax == 0 {
                scales[b] = 0
                for i in 0..<256 { q[i] = 0 }
                for j in 0..<16 { bsums[16 * b + j] = 0 }
                for c in 0..<4 { pairSums[4 * b + c] = 0 }
                continue
            }
            // The first element of largest magnitude, with its sign (as the scalar loop finds it).
            var first = 0
            // |x| == amax as equal bit patterns (both non-negative and not NaN).
            let target = _mm256_castps_si256(_mm256_set1_ps(amax))
            for i in 0..<32 {
                let magnitude = _mm256_castps_si256(_mm256_and_ps(raw.loadUnaligned(fromByteOffset: 32 * i, as: __m256.self), signless))
                let eq = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(magnitude, target)))
                if eq != 0 { first = 8 * i + Int(UInt32(eq).trailingZeroBitCount); break }
            }
            let iscale = -127 / xb[first]
            let s = _mm256_set1_ps(iscale)
            var sub = SIMD8<Int32>()
            for g in 0..<8 {
                let o = 128 * g
                let v0 = _mm256_cvtps_epi32(_mm256_mul_ps(s, raw.loadUnaligned(fromByteOffset: o, as: __m256.self)))
                let v1 = _mm256_cvtps_epi32(_mm256_mul_ps(s, raw.loadUnaligned(fromByteOffset: o + 32, as: __m256.self)))
                let v2 = _mm256_cvtps_epi32(_mm256_mul_ps(s, raw.loadUnaligned(fromByteOffset: o + 64, as: __m256.self)))
                let v3 = _mm256_cvtps_epi32(_mm256_mul_ps(s, raw.loadUnaligned(fromByteOffset: o + 96, as: __m256.self)))
                UnsafeMutableRawPointer(q + 32 * g).storeBytes(of: packBytes(v0, v1, v2, v3), as: __m256i.self)
                let lo: SIMD8<Int32> = unsafeBitCast(_mm256_add_epi32(v0, v1), to: SIMD8<Int32>.self)
                let hi: SIMD8<Int32> = unsafeBitCast(_mm256_add_epi32(v2, v3), to: SIMD8<Int32>.self)
                bsums[16 * b + 2 * g] = Float(lo.wrappedSum())
                bsums[16 * b + 2 * g + 1] = Float(hi.wrappedSum())
                sub[g] = lo.wrappedSum() &+ hi.wrappedSum()
            }
            for c in 0..<4 {
                pairSums[4 * b + c] = Int32(bitPattern: UInt32(UInt16(truncatingIfNeeded: sub[2 * c])) | UInt32(UInt16(truncatingIfNeeded: sub[2 * c + 1])) << 16)
            }
            scales[b] = 1 / iscale
        }
    }
}
#endif
