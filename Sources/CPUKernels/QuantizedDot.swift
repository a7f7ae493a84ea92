// Dot products of GGUF weight rows with 8-bit quantized activations (see
// QuantizedActivations.swift), computed per block in integers and scaled in float as llama.cpp
// does. Each weight block is first decoded to its small integers (and per-sub-block integer
// scales), then multiplied with the activation's int8 values.
//
// Block layouts (byte offsets):
//   q4_0  d:f16@0 qs[16]@2           element j = lo(qs[j]) − 8, element j+16 = hi(qs[j]) − 8
//   q4_1  d@0 m@2 qs[16]@4           x = d·q + m, q as q4_0 without the −8
//   q5_0  d@0 qh:u32@2 qs[16]@6      fifth bit j of qh for element j (j+12 → element j+16), − 16
//   q5_1  d@0 m@2 qh@4 qs[16]@8
//   q8_0  d@0 qs[32]:i8@2
//   q4_K  d@0 dmin@2 scales[12]@4 qs[128]@16   8 sub-blocks of 32 with 6-bit scale and min
//   q5_K  d@0 dmin@2 scales[12]@4 qh[32]@16 qs[128]@48
//   q6_K  ql[128]@0 qh[64]@128 scales[16]:i8@192 d@208   16 sub-blocks of 16, values − 32
import Core
import Foundation
#if os(Linux) && arch(x86_64)
import CPUKernelsAVX2
#endif

public enum QuantizedDot {
    /// Weight types with an integer dot product here.
    public static func supports(_ type: GGMLType) -> Bool {
        switch type {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K: return true
        default: return false
        }
    }

    /// Σ_i W[i]·a[i] for one weight row of `n` elements and activation row `r` of `a`: the scalar
    /// reference that the SIMD panels (QuantizedPanels.swift) must match bit for bit.
    /// `scratch` holds at least 256 bytes.
    @inline(__always)
    public static func dotReference(_ type: GGMLType, _ w: UnsafeRawPointer, _ a: QuantizedActivations, row r: Int,
                           scratch q: UnsafeMutablePointer<Int8>) -> Float {
        let n = a.n
        let aq = a.qs + r * n
        switch type {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0:
            let blocks = n / 32
            let ad = a.scales + r * blocks, asum = a.sums + r * blocks
            var sum: Float = 0
            for b in 0..<blocks {
                let blk = w + b * type.typeSize
                let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
                let x = aq + b * 32
                var isum: Int32 = 0
                switch type {
                case .q4_0:
                    for j in 0..<16 {
                        let byte = blk.load(fromByteOffset: 2 + j, as: UInt8.self)
                        isum += (Int32(byte & 0xF) - 8) * Int32(x[j]) + (Int32(byte >> 4) - 8) * Int32(x[j + 16])
                    }
                    sum += d * ad[b] * Float(isum)
                case .q4_1:
                    for j in 0..<16 {
                        let byte = blk.load(fromByteOffset: 4 + j, as: UInt8.self)
                        isum += Int32(byte & 0xF) * Int32(x[j]) + Int32(byte >> 4) * Int32(x[j + 16])
                    }
                    let m = halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                    sum += d * ad[b] * Float(isum) + m * asum[b]
                case .q5_0, .q5_1:
                    let hasMin = type == .q5_1
                    let qh = blk.loadUnaligned(fromByteOffset: hasMin ? 4 : 2, as: UInt32.self)
                    let qsOffset = hasMin ? 8 : 6
                    let bias: Int32 = hasMin ? 0 : 16
                    for j in 0..<16 {
                        let byte = blk.load(fromByteOffset: qsOffset + j, as: UInt8.self)
                        let h0 = Int32((qh >> UInt32(j)) & 1) << 4
                        let h1 = Int32((qh >> UInt32(j + 16)) & 1) << 4
                        isum += ((Int32(byte & 0xF) | h0) - bias) * Int32(x[j])
                        isum += ((Int32(byte >> 4) | h1) - bias) * Int32(x[j + 16])
                    }
                    if hasMin {
                        let m = halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                        sum += d * ad[b] * Float(isum) + m * asum[b]
                    } else {
                        sum += d * ad[b] * Float(isum)
                    }
                default:  // q8_0
                    for j in 0..<32 { isum += Int32(blk.load(fromByteOffset: 2 + j, as: Int8.self)) * Int32(x[j]) }
                    sum += d * ad[b] * Float(isum)
                }
            }
            return sum
        case .q4_K, .q5_K:
            let blocks = n / 256
            var sum: Float = 0
            for b in 0..<blocks {
                let blk = w + b * type.typeSize
                let d = halfToFloat(blk.loadUnaligned(as: UInt16.self)) * a.scales[r * blocks + b]
                let dmin = halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) * a.scales[r * blocks + b]
                let five = type == .q5_K
                let qsOffset = five ? 48 : 16
                for chunk in 0..<4 {
                    for l in 0..<32 {
                        let byte = blk.load(fromByteOffset: qsOffset + chunk * 32 + l, as: UInt8.self)
                        var lo = Int8(byte & 0xF), hi = Int8(byte >> 4)
                        if five {
                            let h = blk.load(fromByteOffset: 16 + l, as: UInt8.self)
                            lo |= Int8((h >> UInt8(2 * chunk)) & 1) << 4
                            hi |= Int8((h >> UInt8(2 * chunk + 1)) & 1) << 4
                        }
                        q[chunk * 64 + l] = lo
                        q[chunk * 64 + 32 + l] = hi
                    }
                }
                let x = aq + b * 256
                let bsums = a.sums + r * (n / 16) + b * 16
                var sumi: Int32 = 0, summ: Int32 = 0
                for s in 0..<8 {
                    let (sc, m) = scaleMinK4(blk + 4, s)
                    var dot: Int32 = 0
                    for i in 0..<32 { dot += Int32(q[s * 32 + i]) * Int32(x[s * 32 + i]) }
                    sumi += Int32(sc) * dot
                    summ += Int32(m) * Int32(bsums[2 * s] + bsums[2 * s + 1])
                }
                sum += d * Float(sumi) - dmin * Float(summ)
            }
            return sum
        case .q6_K:
            let blocks = n / 256
            var sum: Float = 0
            for b in 0..<blocks {
                let blk = w + b * 210
                let d = halfToFloat(blk.loadUnaligned(fromByteOffset: 208, as: UInt16.self)) * a.scales[r * blocks + b]
                for half in 0..<2 {
                    let ql = 64 * half, qh = 128 + 32 * half, out = 128 * half
                    for l in 0..<32 {
                        let l0 = blk.load(fromByteOffset: ql + l, as: UInt8.self)
                        let l1 = blk.load(fromByteOffset: ql + l + 32, as: UInt8.self)
                        let h = blk.load(fromByteOffset: qh + l, as: UInt8.self)
                        q[out + l] = Int8(Int32(l0 & 0xF | (h & 3) << 4) - 32)
                        q[out + l + 32] = Int8(Int32(l1 & 0xF | ((h >> 2) & 3) << 4) - 32)
                        q[out + l + 64] = Int8(Int32(l0 >> 4 | ((h >> 4) & 3) << 4) - 32)
                        q[out + l + 96] = Int8(Int32(l1 >> 4 | ((h >> 6) & 3) << 4) - 32)
                    }
                }
                let x = aq + b * 256
                var sumi: Int32 = 0
                for s in 0..<16 {
                    let sc = Int32(blk.load(fromByteOffset: 192 + s, as: Int8.self))
                    var dot: Int32 = 0
                    for i in 0..<16 { dot += Int32(q[s * 16 + i]) * Int32(x[s * 16 + i]) }
                    sumi += sc * dot
                }
                sum += d * Float(sumi)
            }
            return sum
        default:
            preconditionFailure("no integer dot product for \(type)")
        }
    }

    /// The 6-bit scale and min of sub-block `j` from the 12 packed bytes of q4_K / q5_K.
    @inline(__always)
    static func scaleMinK4(_ s: UnsafeRawPointer, _ j: Int) -> (UInt8, UInt8) {
        if j < 4 {
            return (s.load(fromByteOffset: j, as: UInt8.self) & 63, s.load(fromByteOffset: j + 4, as: UInt8.self) & 63)
        }
        let a = s.load(fromByteOffset: j + 4, as: UInt8.self)
        let lo = s.load(fromByteOffset: j - 4, as: UInt8.self), hi = s.load(fromByteOffset: j, as: UInt8.self)
        return ((a & 0xF) | ((lo >> 6) << 4), (a >> 4) | ((hi >> 6) << 4))
    }
}

extension Matmul {
    /// y[t, r] = Σ_i W[r, i] · x[t, i] with activations quantized to 8 bits (llama.cpp's numerics).
    /// Falls back to the float reference for weight types without an integer dot product.
    /// Four weight rows at a time in SIMD (QuantizedPanels.swift), bit-identical to `quantizedReference`.
    public static func quantized(_ w: WeightMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                 tokens: Int, pool: ThreadPool, isa: KernelISA = .best) {
        guard QuantizedDot.supports(w.type), let format = ActivationFormat.for(w.type) else {
            reference(w, x: x, y: y, tokens: tokens, pool: pool)
            return
        }
        let act = QuantizedActivations(format: format, n: w.cols, rows: tokens)
        act.quantize(x, pool: pool)
        let ys = UnsafeSendable(y)
        pool.parallelFor((w.rows + 3) / 4) { panels in
            let args = (type: w.type, rows: w.rows, cols: w.cols, weights: w.data, rowBytes: w.rowBytes,
                        qs: UnsafePointer(act.qs), scales: UnsafePointer(act.scales), sums: UnsafePointer(act.sums))
            switch isa {
            case .avx2:
                #if os(Linux) && arch(x86_64)
                CPUKernelsAVX2.QuantizedPanels.run(type: args.type, rows: args.rows, cols: args.cols, weights: args.weights,
                                                   rowBytes: args.rowBytes, qs: args.qs, scales: args.scales, sums: args.sums,
                                                   y: ys.pointer, tokens: tokens, panels: panels)
                #else
                preconditionFailure("AVX2 kernels are built for Linux x86-64 only")
                #endif
            case .baseline:
                QuantizedPanels.run(type: args.type, rows: args.rows, cols: args.cols, weights: args.weights,
                                    rowBytes: args.rowBytes, qs: args.qs, scales: args.scales, sums: args.sums,
                                    y: ys.pointer, tokens: tokens, panels: panels)
            }
        }
    }

    /// `quantized` with the scalar per-row dot product `QuantizedDot.dotReference` (for tests).
    public static func quantizedReference(_ w: WeightMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                          tokens: Int, pool: ThreadPool) {
        guard QuantizedDot.supports(w.type), let format = ActivationFormat.for(w.type) else {
            reference(w, x: x, y: y, tokens: tokens, pool: pool)
            return
        }
        let act = QuantizedActivations(format: format, n: w.cols, rows: tokens)
        act.quantize(x, pool: pool)
        let rows = w.rows
        let ys = UnsafeSendable(y)
        pool.parallelFor(rows) { range in
            let scratch = UnsafeMutablePointer<Int8>.allocate(capacity: 256)
            defer { scratch.deallocate() }
            for r in range {
                let row = w.row(r)
                for t in 0..<tokens {
                    ys.pointer[t * rows + r] = QuantizedDot.dotReference(w.type, row, act, row: t, scratch: scratch)
                }
            }
        }
    }
}

/// Instruction sets the SIMD kernels are compiled for; chosen once from the CPU's flags.
public enum KernelISA: Sendable, CaseIterable {
    /// x86-64 baseline (SSE2), or the native SIMD of other architectures.
    case baseline
    /// x86-64-v3 class (AVX2, FMA, BMI2, F16C), the CPUKernelsAVX2 target (Linux x86-64 builds).
    case avx2

    /// The ISAs this machine can run.
    public static let available: [KernelISA] = cpuHasAVX2 ? [.baseline, .avx2] : [.baseline]
    public static let best: KernelISA = available.last!

    static let cpuHasAVX2: Bool = {
        #if os(Linux) && arch(x86_64)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let flags = Set(line.split(separator: " ").map(String.init))
        return ["avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"].allSatisfy(flags.contains)
        #else
        return false
        #endif
    }()
}
