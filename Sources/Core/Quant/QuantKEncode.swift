// QuantKEncode.swift: scalar reference quantizers for the K-quants (Q2_K … Q6_K, Q8_K), the
// inverse of the decoders in QuantK.swift (layouts are documented there). The recipe per super-block
// follows ggml's `quantize_row_q*_K_ref` in spirit: fit each sub-block with a search from
// QuantKSearch.swift, quantize the sub-block scales (and mins) against f16 super-scales, then
// re-quantize every weight against the scales exactly as the decoder will rebuild them.
// Weights (importances) per format: Q2_K rms/4 + |x|, Q3_K / Q6_K x², Q4_K / Q5_K rms(block) + |x|.
// Shapes: `src` holds `blocks · 256` floats, `dst` `blocks · typeSize` bytes.

/// Per-call scratch for one super-block (stack-allocated once per quantize call).
struct KScratch {
    let w: UnsafeMutablePointer<Float>          // 256 importances
    let scales: UnsafeMutablePointer<Float>     // 16 fitted sub-block scales
    let mins: UnsafeMutablePointer<Float>       // 16 fitted sub-block offsets (≥ 0)
    let codes: UnsafeMutablePointer<UInt8>      // 256 integer codes
    let aux: UnsafeMutablePointer<UInt8>        // 32 codes for trial assignments

    static func with<R>(_ body: (KScratch) -> R) -> R {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 288) { f in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 288) { u in
                let fp = f.baseAddress!, up = u.baseAddress!
                return body(KScratch(w: fp, scales: fp + 256, mins: fp + 272, codes: up, aux: up + 256))
            }
        }
    }
}

enum QuantKEncode {
    /// The value an f16 field will decode to.
    @inline(__always) static func f16Rounded(_ v: Float) -> Float { halfToFloat(floatToHalf(v)) }

    /// The entry of largest magnitude among n values, with its sign.
    @inline(__always)
    static func signedMax(_ v: UnsafePointer<Float>, _ n: Int) -> Float {
        var best: Float = 0
        for i in 0..<n where abs(v[i]) > abs(best) { best = v[i] }
        return best
    }

    // MARK: - Q2_K

    static func quantizeQ2_K(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        KScratch.with { k in
            for b in 0..<blocks {
                let x = src + b * 256, blk = dst + b * BlockQ2_K.size
                blk.initializeMemory(as: UInt8.self, repeating: 0, count: BlockQ2_K.size)
                // |x| plus a floor so zeros in sparse rows still pull the grid towards themselves.
                var sumx2: Float = 0
                for i in 0..<256 { sumx2 += x[i] * x[i] }
                let floor = 0.25 * (sumx2 / 256).squareRoot()
                for i in 0..<256 { k.w[i] = floor + abs(x[i]) }
                var maxScale: Float = 0, maxMin: Float = 0
                for j in 0..<16 {
                    let fit = KSearch.fitAffine(x + 16 * j, k.w + 16 * j, n: 16, nmax: 3, rmin: -0.5, rdelta: 0.1,
                                                steps: 15, absError: true, codes: k.codes + 16 * j, scratch: k.aux)
                    k.scales[j] = fit.scale; k.mins[j] = fit.offset
                    maxScale = max(maxScale, fit.scale); maxMin = max(maxMin, fit.offset)
                }
                let iscale: Float = maxScale > 0 ? 15 / maxScale : 0, imin: Float = maxMin > 0 ? 15 / maxMin : 0
                blk.storeHalf(maxScale / 15, BlockQ2_K.d)
                blk.storeHalf(maxMin / 15, BlockQ2_K.dmin)
                let d = f16Rounded(maxScale / 15), dmin = f16Rounded(maxMin / 15)
                for j in 0..<16 {
                    let sc = quantRound(iscale * k.scales[j], 0, 15), mn = quantRound(imin * k.mins[j], 0, 15)
                    blk.storeU8(UInt8(sc | mn << 4), BlockQ2_K.scales + j)
                    let dl = d * Float(sc), ml = dmin * Float(mn)
                    for i in (16 * j)..<(16 * j + 16) {
                        k.codes[i] = dl != 0 ? UInt8(quantRound((x[i] + ml) / dl, 0, 3)) : 0
                    }
                }
                for i in 0..<256 {
                    let h = i / 128, s = (i % 128) / 32, l = i % 32
                    let at = BlockQ2_K.qs + h * 32 + l
                    blk.storeU8(blk.loadU8(at) | k.codes[i] << UInt8(2 * s), at)
                }
            }
        }
    }

    // MARK: - Q3_K

    static func quantizeQ3_K(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        KScratch.with { k in
            for b in 0..<blocks {
                let x = src + b * 256, blk = dst + b * BlockQ3_K.size
                blk.initializeMemory(as: UInt8.self, repeating: 0, count: BlockQ3_K.size)
                for i in 0..<256 { k.w[i] = x[i] * x[i] }
                for j in 0..<16 {
                    k.scales[j] = KSearch.fitSymmetric(x + 16 * j, k.w + 16 * j, n: 16, nmax: 4, codes: k.codes + 16 * j)
                }
                let maxScale = signedMax(k.scales, 16)
                let iscale: Float = maxScale != 0 ? -32 / maxScale : 0
                let dFull: Float = maxScale != 0 ? 1 / iscale : 0
                blk.storeHalf(dFull, BlockQ3_K.d)
                let d = f16Rounded(dFull)
                for j in 0..<16 {
                    let l = quantRound(iscale * k.scales[j], -32, 31)
                    let c = UInt8(l + 32), s = BlockQ3_K.scales
                    if j < 8 {
                        blk.storeU8(blk.loadU8(s + j) | (c & 15), s + j)
                    } else {
                        blk.storeU8(blk.loadU8(s + j - 8) | (c & 15) << 4, s + j - 8)
                    }
                    blk.storeU8(blk.loadU8(s + 8 + j % 4) | (c >> 4) << UInt8(2 * (j / 4)), s + 8 + j % 4)
                    let dl = d * Float(l)
                    for i in (16 * j)..<(16 * j + 16) {
                        k.codes[i] = dl != 0 ? UInt8(quantRound(x[i] / dl, -4, 3) + 4) : 4
                    }
                }
                for i in 0..<256 {
                    var c = k.codes[i]
                    if c > 3 {
                        let at = BlockQ3_K.hmask + i % 32
                        blk.storeU8(blk.loadU8(at) | 1 << UInt8(i / 32), at)
                        c -= 4
                    }
                    let h = i / 128, s = (i % 128) / 32, l = i % 32
                    let at = BlockQ3_K.qs + h * 32 + l
                    blk.storeU8(blk.loadU8(at) | c << UInt8(2 * s), at)
                }
            }
        }
    }

    // MARK: - Q4_K / Q5_K

    /// Shared Q4_K / Q5_K encoder: 8 sub-blocks of 32 with 6-bit scale and min codes.
    static func quantizeQ45_K(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int, five: Bool) {
        let size = five ? BlockQ5_K.size : BlockQ4_K.size
        let nmax = five ? 31 : 15
        let scalesAt = BlockQ4_K.scales   // same offset in both formats
        KScratch.with { k in
            for b in 0..<blocks {
                let x = src + b * 256, blk = dst + b * size
                blk.initializeMemory(as: UInt8.self, repeating: 0, count: size)
                var sumx2: Float = 0
                for i in 0..<256 { sumx2 += x[i] * x[i] }
                let rms = (sumx2 / 256).squareRoot()
                for i in 0..<256 { k.w[i] = rms + abs(x[i]) }
                var maxScale: Float = 0, maxMin: Float = 0
                for j in 0..<8 {
                    let fit = KSearch.fitAffine(x + 32 * j, k.w + 32 * j, n: 32, nmax: nmax,
                                                rmin: five ? -0.5 : -1, rdelta: 0.1, steps: five ? 15 : 20,
                                                absError: false, codes: k.codes + 32 * j, scratch: k.aux)
                    k.scales[j] = fit.scale; k.mins[j] = fit.offset
                    maxScale = max(maxScale, fit.scale); maxMin = max(maxMin, fit.offset)
                }
                let iscale: Float = maxScale > 0 ? 63 / maxScale : 0, imin: Float = maxMin > 0 ? 63 / maxMin : 0
                for j in 0..<8 {
                    let ls = UInt8(quantRound(iscale * k.scales[j], 0, 63)), lm = UInt8(quantRound(imin * k.mins[j], 0, 63))
                    if j < 4 {
                        blk.storeU8(blk.loadU8(scalesAt + j) | ls, scalesAt + j)
                        blk.storeU8(blk.loadU8(scalesAt + j + 4) | lm, scalesAt + j + 4)
                    } else {
                        blk.storeU8((ls & 15) | (lm & 15) << 4, scalesAt + j + 4)
                        blk.storeU8(blk.loadU8(scalesAt + j - 4) | (ls >> 4) << 6, scalesAt + j - 4)
                        blk.storeU8(blk.loadU8(scalesAt + j) | (lm >> 4) << 6, scalesAt + j)
                    }
                }
                blk.storeHalf(maxScale / 63, BlockQ4_K.d)
                blk.storeHalf(maxMin / 63, BlockQ4_K.dmin)
                let d = f16Rounded(maxScale / 63), dmin = f16Rounded(maxMin / 63)
                for j in 0..<8 {
                    let (sc, mn) = QuantK.scaleMin(UnsafeRawPointer(blk), scalesAt, j)
                    let dl = d * Float(sc), ml = dmin * Float(mn)
                    for i in (32 * j)..<(32 * j + 32) {
                        k.codes[i] = dl != 0 ? UInt8(quantRound((x[i] + ml) / dl, 0, nmax)) : 0
                    }
                }
                let qsAt = five ? BlockQ5_K.qs : BlockQ4_K.qs
                for i in 0..<256 {
                    let c = i / 64, h = (i % 64) / 32, l = i % 32
                    let at = qsAt + c * 32 + l
                    blk.storeU8(blk.loadU8(at) | (k.codes[i] & 15) << UInt8(4 * h), at)
                    if five && k.codes[i] > 15 {
                        let hat = BlockQ5_K.qh + l
                        blk.storeU8(blk.loadU8(hat) | 1 << UInt8(i / 32), hat)
                    }
                }
            }
        }
    }

    // MARK: - Q6_K

    static func quantizeQ6_K(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        KScratch.with { k in
            for b in 0..<blocks {
                let x = src + b * 256, blk = dst + b * BlockQ6_K.size
                blk.initializeMemory(as: UInt8.self, repeating: 0, count: BlockQ6_K.size)
                for i in 0..<256 { k.w[i] = x[i] * x[i] }
                for j in 0..<16 {
                    k.scales[j] = KSearch.fitSymmetric(x + 16 * j, k.w + 16 * j, n: 16, nmax: 32, codes: k.codes + 16 * j)
                }
                let maxScale = signedMax(k.scales, 16)
                let iscale: Float = maxScale != 0 ? -128 / maxScale : 0
                let dFull: Float = maxScale != 0 ? 1 / iscale : 0
                blk.storeHalf(dFull, BlockQ6_K.d)
                let d = f16Rounded(dFull)
                for j in 0..<16 {
                    let sc = quantRound(iscale * k.scales[j], -128, 127)
                    blk.storeU8(UInt8(bitPattern: Int8(sc)), BlockQ6_K.scales + j)
                    let dl = d * Float(sc)
                    for i in (16 * j)..<(16 * j + 16) {
                        k.codes[i] = dl != 0 ? UInt8(quantRound(x[i] / dl, -32, 31) + 32) : 32
                    }
                }
                for i in 0..<256 {
                    let h = i / 128, r = i % 128, c = k.codes[i]
                    let lat = BlockQ6_K.ql + h * 64 + r % 64, hat = BlockQ6_K.qh + h * 32 + r % 32
                    blk.storeU8(blk.loadU8(lat) | (c & 15) << UInt8(4 * (r / 64)), lat)
                    blk.storeU8(blk.loadU8(hat) | (c >> 4) << UInt8(2 * (r / 32)), hat)
                }
            }
        }
    }

    // MARK: - Q8_K

    static func quantizeQ8_K(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let x = src + b * 256, blk = dst + b * BlockQ8_K.size
            let maxv = signedMax(x, 256)
            let iscale: Float = maxv != 0 && maxv.isFinite ? -127 / maxv : 0
            var sum = 0
            for i in 0..<256 {
                let q = quantRound(iscale * x[i], -128, 127)
                blk.storeU8(UInt8(bitPattern: Int8(q)), BlockQ8_K.qs + i)
                sum += q
                if i % 16 == 15 {
                    blk.storeU16(UInt16(bitPattern: Int16(sum)), BlockQ8_K.bsums + 2 * (i / 16))
                    sum = 0
                }
            }
            blk.storeF32(iscale != 0 ? 1 / iscale : 0, BlockQ8_K.d)
        }
    }
}
