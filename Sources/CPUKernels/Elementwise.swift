// Element-wise and row-wise operators with their scalar references: RMSNorm, rotary position
// embedding (normal and neox), activations (SiLU, tanh-GELU), gated products, softmax,
// soft-capping. Rows are [tokens, n] row-major float.
import Core
import Foundation
#if os(Linux) && arch(x86_64)
import CPUKernelsAVX2
import CPUKernelsAVX512
#endif

public enum Ops {
    // MARK: - Normalization

    /// out[t] = x[t] / sqrt(mean(x[t]²) + eps) · weight, per row of n elements.
    /// The squares are summed in double and the scale computed in float, as ggml does.
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                               rows: Int, n: Int, eps: Float) {
        for t in 0..<rows {
            let xr = x + t * n, o = out + t * n
            var ss: Double = 0
            for i in 0..<n { ss += Double(xr[i] * xr[i]) }
            let mean = Float(ss / Double(n))
            let scale = 1 / (mean + eps).squareRoot()
            for i in 0..<n { o[i] = (xr[i] * scale) * weight[i] }
        }
    }

    // MARK: - Rotary position embedding

    /// Rotary embedding applied in place to `heads` vectors of `headDim` per token.
    /// - `neox`: rotate pairs (i, i + rotDim/2) (GPT-NeoX, Qwen, Gemma); otherwise adjacent pairs
    ///   (2i, 2i+1) (llama after GGUF's weight permutation).
    /// - `rotDim` ≤ headDim dimensions rotate; the rest pass through.
    /// - `freqFactors`: optional per-pair divisors of the frequency (Llama 3 `rope_freqs`).
    /// Angles are computed in float as ggml does (θ₀ = pos / scale, θᵢ₊₁ = θᵢ · base^(−2/rotDim)).
    public static func rope(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDim: Int, rotDim: Int,
                            positions: UnsafePointer<Int32>, base: Float, scale: Float = 1,
                            freqFactors: UnsafePointer<Float>? = nil, neox: Bool) {
        let half = rotDim / 2
        let thetaScale = powf(base, -2 / Float(rotDim))
        var cosines = [Float](repeating: 0, count: half), sines = [Float](repeating: 0, count: half)
        for t in 0..<tokens {
            var theta = Float(positions[t]) / scale
            for i in 0..<half {
                let angle = freqFactors.map { theta / $0[i] } ?? theta
                cosines[i] = cosf(angle); sines[i] = sinf(angle)
                theta *= thetaScale
            }
            for h in 0..<heads {
                let v = x + (t * heads + h) * headDim
                for i in 0..<half {
                    let (a, b) = neox ? (i, i + half) : (2 * i, 2 * i + 1)
                    let x0 = v[a], x1 = v[b], c = cosines[i], s = sines[i]
                    // ggml's rotation as GCC contracts it: one product rounded, the other fused.
                    v[a] = (-(x1 * s)).addingProduct(x0, c)
                    v[b] = (x1 * c).addingProduct(x0, s)
                }
            }
        }
    }

    // MARK: - Activations

    @inlinable public static func silu(_ x: Float) -> Float { x / (1 + exp(-x)) }

    /// GELU, tanh approximation (Gemma's gelu_pytorch_tanh), in float.
    @inlinable public static func geluTanh(_ x: Float) -> Float {
        let c: Float = 0.7978845608028654  // sqrt(2/π)
        return 0.5 * x * (1 + tanhf(c * x * (1 + 0.044715 * x * x)))
    }

    /// GELU as llama.cpp's CPU backend computes it: the input rounded to f16 and looked up in a
    /// table of f16-rounded results; 0 below −10 and the identity above 10.
    @inlinable public static func geluTable(_ x: Float) -> Float {
        if x <= -10 { return 0 }
        if x >= 10 { return x }
        return halfToFloat(geluHalfTable[Int(floatToHalf(x))])
    }

    /// gelu(f16 value) rounded to f16, for every f16 bit pattern, computed as ggml builds its
    /// table (the compiler fuses 1 + 0.044715·x·x into one multiply-add).
    public static let geluHalfTable: [UInt16] = (0..<65536).map { bits in
        let x = halfToFloat(UInt16(bits))
        let c: Float = 0.7978845608028654
        let inner = Float(1).addingProduct(0.044715 * x, x)
        return floatToHalf(0.5 * x * (1 + tanhf(c * x * inner)))
    }

    public enum GateActivation: Sendable {
        case silu, gelu, geluTable
        /// llama.cpp's SwiGLU (ggml_vec_swiglu_f32, see `FusedMath.swiglu`).
        case siluGGML
    }

    /// gate[i] = act(gate[i]) · up[i] over `count` elements.
    public static func gatedActivation(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int,
                                       activation: GateActivation) {
        gatedActivation(gate: gate, up: up, count: count, activation: activation, isa: .best)
    }

    /// `gatedActivation` with the SIMD build of SwiGLU chosen by `isa` (tests compare them all).
    public static func gatedActivation(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int,
                                       activation: GateActivation, isa: KernelISA) {
        switch activation {
        case .silu: for i in 0..<count { gate[i] = silu(gate[i]) * up[i] }
        case .gelu: for i in 0..<count { gate[i] = geluTanh(gate[i]) * up[i] }
        // ggml_vec_geglu_f32 stores +0 below −10 (no multiplication, so never −0).
        case .geluTable:
            geluHalfTable.withUnsafeBufferPointer { table in
                #if os(Linux) && arch(x86_64)
                if isa.hasAVX512 {
                    CPUKernelsAVX512.FusedMath.gegluTable(gate: gate, up: up, count: count, table: table.baseAddress!)
                    return
                }
                if isa != .baseline {
                    CPUKernelsAVX2.FusedMath.gegluTable(gate: gate, up: up, count: count, table: table.baseAddress!)
                    return
                }
                #endif
                FusedMath.gegluTable(gate: gate, up: up, count: count, table: table.baseAddress!)
            }
        case .siluGGML:
            #if os(Linux) && arch(x86_64)
            // One source compiled for AVX-512 and AVX2 (the same bits as the portable build).
            if isa.hasAVX512 {
                CPUKernelsAVX512.FusedMath.swiglu(gate: gate, up: up, count: count)
                return
            }
            if isa != .baseline {
                CPUKernelsAVX2.FusedMath.swiglu(gate: gate, up: up, count: count)
                return
            }
            #endif
            FusedMath.swiglu(gate: gate, up: up, count: count)
        }
    }

    /// a[i] += b[i].
    public static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { a[i] += b[i] }
    }

    /// x ← cap · tanh(x / cap) (Gemma's logit soft-capping).
    public static func softcap(_ x: UnsafeMutablePointer<Float>, count: Int, cap: Float) {
        for i in 0..<count { x[i] = cap * tanh(x[i] / cap) }
    }

    /// In-place softmax of n values; returns nothing, max-subtracted for stability.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i] }
        var sum: Float = 0
        for i in 0..<n { let e = exp(x[i] - m); x[i] = e; sum += e }
        let inv = 1 / sum
        for i in 0..<n { x[i] *= inv }
    }
}
