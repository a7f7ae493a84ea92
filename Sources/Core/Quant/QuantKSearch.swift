// QuantKSearch.swift: the scale searches behind the K-quant and IQ4 quantizers. Given a group of
// weights x with importances w, pick a scale (and for affine formats a minimum) and integer codes so
// that Σ w·(x − x̂)² (or Σ w·|x − x̂|) is small. The approach follows the ideas of ggml's
// `make_qx_quants` (symmetric: try a few scales around nmax/max, keep the least-squares optimum) and
// `make_qkx2_quants` (affine: grid over the inverse scale, solve the 2×2 weighted least-squares
// problem for scale and minimum on each candidate assignment); the code here is our own.
// Shapes: every routine works on one group of `n` contiguous floats (16 or 32, ≤ 256).

enum KSearch {
    // MARK: - Symmetric (Q3_K, Q6_K)

    /// Fits x ≈ scale · l with integer codes l in -nmax...nmax-1 (the magnitude-largest weight lands on
    /// -nmax, the side with one more step). Writes `l + nmax` to `codes`. Returns the scale (signed),
    /// 0 for an all-(near)-zero group.
    static func fitSymmetric(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, n: Int, nmax: Int,
                             codes: UnsafeMutablePointer<UInt8>) -> Float {
        var amax: Float = 0, maxv: Float = 0
        for i in 0..<n where abs(x[i]) > amax { amax = abs(x[i]); maxv = x[i] }
        guard amax >= 1e-15, amax.isFinite else {
            for i in 0..<n { codes[i] = UInt8(nmax) }
            return 0
        }
        var bestScale: Float = 0, bestGain: Float = -1
        // Candidates: inverse scales (nmax + 0.1·k)/max for k in -9...9, plus the plain one first.
        for step in 0..<19 {
            let k = step == 0 ? 0 : (step <= 9 ? -step : step - 9)
            let iscale = -(Float(nmax) + 0.1 * Float(k)) / maxv
            var sumlx: Float = 0, suml2: Float = 0
            for i in 0..<n {
                let l = Float(quantRound(iscale * x[i], -nmax, nmax - 1))
                sumlx += w[i] * x[i] * l
                suml2 += w[i] * l * l
            }
            // Least-squares scale for this assignment is sumlx/suml2; the error drop is sumlx²/suml2.
            guard suml2 > 0 else { continue }
            let gain = sumlx * sumlx / suml2
            if gain > bestGain {
                bestGain = gain
                bestScale = sumlx / suml2
                for i in 0..<n { codes[i] = UInt8(quantRound(iscale * x[i], -nmax, nmax - 1) + nmax) }
            }
        }
        return bestScale
    }

    // MARK: - Affine (Q2_K, Q4_K, Q5_K)

    /// Fits x ≈ scale · l − offset with l in 0...nmax and offset ≥ 0 (i.e. the minimum is ≤ 0).
    /// Tries inverse scales (nmax + rmin + rdelta·k)/(max − min) for k in 0...steps; for each candidate
    /// assignment solves weighted least squares for (scale, min). `absError` picks Σw|e| instead of
    /// Σw·e². Writes codes; returns (scale, offset).
    static func fitAffine(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, n: Int, nmax: Int,
                          rmin: Float, rdelta: Float, steps: Int, absError: Bool,
                          codes: UnsafeMutablePointer<UInt8>, scratch: UnsafeMutablePointer<UInt8>) -> (scale: Float, offset: Float) {
        var lo = x[0], hi = x[0], sumW: Float = 0, sumX: Float = 0
        for i in 0..<n {
            if x[i] < lo { lo = x[i] }
            if x[i] > hi { hi = x[i] }
            sumW += w[i]
            sumX += w[i] * x[i]
        }
        if lo > 0 { lo = 0 }
        guard hi > lo, (hi - lo).isFinite else {
            for i in 0..<n { codes[i] = 0 }
            return (0, lo.isFinite ? -lo : 0)
        }
        let fmax = Float(nmax)

        @inline(__always) func error(_ scale: Float, _ minv: Float, _ l: UnsafeMutablePointer<UInt8>) -> Float {
            var e: Float = 0
            for i in 0..<n {
                let diff = scale * Float(l[i]) + minv - x[i]
                e += w[i] * (absError ? abs(diff) : diff * diff)
            }
            return e
        }
        @inline(__always) func assign(_ iscale: Float, _ minv: Float, _ l: UnsafeMutablePointer<UInt8>) {
            for i in 0..<n { l[i] = UInt8(quantRound(iscale * (x[i] - minv), 0, nmax)) }
        }

        // Start: the plain min/max grid.
        var scale = (hi - lo) / fmax, minv = lo
        assign(fmax / (hi - lo), lo, codes)
        var best = error(scale, minv, codes)

        for k in 0...max(steps, 0) where steps > 0 {
            let iscale = (rmin + rdelta * Float(k) + fmax) / (hi - lo)
            assign(iscale, lo, scratch)
            var sl: Float = 0, sl2: Float = 0, sxl: Float = 0
            for i in 0..<n {
                let l = Float(scratch[i])
                sl += w[i] * l
                sl2 += w[i] * l * l
                sxl += w[i] * l * x[i]
            }
            let det = sumW * sl2 - sl * sl
            guard det > 0 else { continue }
            var s = (sumW * sxl - sumX * sl) / det
            var m = (sl2 * sumX - sl * sxl) / det
            if m > 0 { m = 0; s = sxl / sl2 }      // keep the minimum ≤ 0 (stored as a positive offset)
            let e = error(s, m, scratch)
            if e < best {
                best = e; scale = s; minv = m
                for i in 0..<n { codes[i] = scratch[i] }
            }
        }
        return (scale, -minv)
    }

    // MARK: - Non-linear grid (IQ4_NL, IQ4_XS)

    /// The 16 IQ4 code values (ggml `kvalues_iq4nl`): weight = d · iq4Values[code].
    static let iq4Values: [Int8] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    /// Index of the IQ4 value nearest to v.
    @inline(__always)
    static func nearestIQ4(_ v: Float) -> Int {
        guard v == v else { return 8 }
        var best = 0, bestDist = Float.infinity
        for k in 0..<16 {
            let dist = abs(v - Float(iq4Values[k]))
            if dist < bestDist { bestDist = dist; best = k }
        }
        return best
    }

    /// Fits x ≈ d · iq4Values[code] by trying inverse scales (k − 127)/max for k in -tries...tries
    /// (and the plain max/127) and keeping the weighted least-squares best. Writes codes, returns d.
    static func fitIQ4(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, n: Int, tries: Int,
                       codes: UnsafeMutablePointer<UInt8>) -> Float {
        var amax: Float = 0, maxv: Float = 0
        for i in 0..<n where abs(x[i]) > amax { amax = abs(x[i]); maxv = x[i] }
        guard amax >= 1e-15, amax.isFinite else {
            for i in 0..<n { codes[i] = 8 }
            return 0
        }
        var bestD: Float = 0, bestGain: Float = -1
        for t in -1...(2 * tries) {
            let id = t < 0 ? Float(127) / maxv : (Float(t - tries) - 127) / maxv
            var sqx: Float = 0, sq2: Float = 0
            for i in 0..<n {
                let q = Float(iq4Values[nearestIQ4(id * x[i])])
                sqx += w[i] * q * x[i]
                sq2 += w[i] * q * q
            }
            guard sq2 > 0 else { continue }
            let gain = sqx * sqx / sq2
            if gain > bestGain {
                bestGain = gain
                bestD = sqx / sq2
                for i in 0..<n { codes[i] = UInt8(nearestIQ4(id * x[i])) }
            }
        }
        return bestD
    }
}
