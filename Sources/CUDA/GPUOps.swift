// The GPU operators as typed calls on device pointers: each checks what it can on the host
// (types, shapes) and launches one or two kernels from KernelSource on the GPU's stream.
// Shapes as in the CPU kernels: x [tokens, n] row-major float; weights in GGUF blocks.
import Core
import Foundation

/// A weight matrix resident on the device in its GGUF blocks.
public struct DeviceMatrix: Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let pointer: CUdeviceptr
    public var rowBytes: Int { type.byteCount(elements: cols) }

    public init(type: GGMLType, rows: Int, cols: Int, pointer: CUdeviceptr) {
        self.type = type; self.rows = rows; self.cols = cols; self.pointer = pointer
    }
}

/// Activations quantized to 8 bits for the integer GEMV kernels, for up to `tokens` rows of `n`.
public final class QuantizedActivationsGPU: @unchecked Sendable {
    public let n: Int, tokens: Int
    public let q: DeviceBuffer, ad: DeviceBuffer, as_: DeviceBuffer, ai: DeviceBuffer, ak: DeviceBuffer
    /// What the buffers hold now: (source pointer, tokens, K format) — reused when the next
    /// matmul reads the same input in the same format (q, k and v; gate and up).
    var holds: (CUdeviceptr, Int, Bool)?

    public init(gpu: GPU, n: Int, tokens: Int) throws {
        self.n = n; self.tokens = tokens
        q = try gpu.allocator.allocate(n * tokens)
        ad = try gpu.allocator.allocate(n / 32 * tokens * 4)
        as_ = try gpu.allocator.allocate(n / 32 * tokens * 4)
        ai = try gpu.allocator.allocate(n / 32 * tokens * 4)
        ak = try gpu.allocator.allocate(max(n / 256, 1) * tokens * 4)
    }
}

public enum GPUOps {
    /// Weight types the GPU linear, embedding and ops-check paths accept.
    public static let supportedTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]

    static func suffix(_ t: GGMLType) throws -> String {
        guard supportedTypes.contains(t) else {
            throw CUDAError.invalidArgument("the CUDA backend has no kernel for \(t.name) weights; supported: "
                                            + supportedTypes.map(\.name).joined(separator: ", "))
        }
        return t.name
    }

    public static func isK(_ t: GGMLType) -> Bool { t == .q4_K || t == .q5_K || t == .q6_K }
    public static func isFloat(_ t: GGMLType) -> Bool { t == .f32 || t == .f16 || t == .bf16 }

    static func blocks(_ count: Int, _ per: Int) -> Int { (count + per - 1) / per }

    /// out [count, cols] = rows `ids` of `table` · scale.
    public static func embed(_ gpu: GPU, table: DeviceMatrix, ids: CUdeviceptr, count: Int, scale: Float, out: CUdeviceptr) throws {
        try gpu.launch("embed_" + suffix(table.type), grid: (count, max(1, min(16, table.cols / 256)), 1), block: 256,
                       [.pointer(table.pointer), .u64(UInt64(table.rowBytes)), .int(Int32(table.cols)), .pointer(ids),
                        .float(scale), .pointer(out)])
    }

    /// Quantizes x [tokens, n] into `act` in the format `weightType`'s dot product reads.
    public static func quantize(_ gpu: GPU, x: CUdeviceptr, tokens: Int, weightType: GGMLType,
                                act: QuantizedActivationsGPU) throws {
        let k = isK(weightType)
        if let h = act.holds, h.0 == x, h.1 == tokens, h.2 == k { return }
        precondition(tokens <= act.tokens, "activation buffer for \(act.tokens) tokens, asked \(tokens)")
        let n = act.n
        if k {
            guard n % 256 == 0 else { throw CUDAError.invalidArgument("\(weightType.name) needs rows of 256·k, got \(n)") }
            try gpu.launch("quantize_q8_K", grid: (n / 256 * tokens, 1, 1), block: 256,
                           [.pointer(x), .pointer(act.q.pointer), .pointer(act.ak.pointer), .pointer(act.ai.pointer)])
        } else {
            guard n % 32 == 0 else { throw CUDAError.invalidArgument("\(weightType.name) needs rows of 32·k, got \(n)") }
            let blocks32 = n / 32 * tokens
            try gpu.launch("quantize_q8_32", grid: (blocks(blocks32, 8), 1, 1), block: 256,
                           [.pointer(x), .int(Int32(n)), .int(Int32(blocks32)), .pointer(act.q.pointer),
                            .pointer(act.ad.pointer), .pointer(act.as_.pointer), .pointer(act.ai.pointer)])
        }
        act.holds = (x, tokens, k)
    }

    /// The activation buffers hold stale data once their source is overwritten.
    public static func invalidate(_ act: QuantizedActivationsGPU) { act.holds = nil }

    /// y [tokens, rows] = x [tokens, cols] · Wᵀ. Quantized weights read `act` (quantized from x
    /// here unless it already holds x), float weights read x.
    public static func linear(_ gpu: GPU, _ w: DeviceMatrix, x: CUdeviceptr, act: QuantizedActivationsGPU, y: CUdeviceptr,
                              tokens: Int) throws {
        try linearMany(gpu, [w], x: x, act: act, ys: [y], tokens: tokens)
    }

    /// Up to three matrices of one type and width reading the same x (q, k, v; gate, up): for
    /// quantized weights one launch whose warps run over all their rows; ys[i] [tokens, rows_i].
    public static func linearMany(_ gpu: GPU, _ ws: [DeviceMatrix], x: CUdeviceptr, act: QuantizedActivationsGPU, ys: [CUdeviceptr],
                                  tokens: Int) throws {
        precondition(!ws.isEmpty && ws.count <= 3 && ws.count == ys.count, "1 to 3 matrices, one output each")
        // Each warp prefetches its weight rows into L2 before waiting for the kernel before (GPU.prefetchWeights).
        let pf: [KernelArgument] = [.int(gpu.prefetchWeights ? 1 : 0)]
        let w = ws[0]
        guard ws.allSatisfy({ $0.type == w.type && $0.cols == w.cols }) else {
            throw CUDAError.invalidArgument("linearMany needs one type and width; got "
                                            + ws.map { "\($0.type.name) [\($0.rows), \($0.cols)]" }.joined(separator: ", "))
        }
        if isFloat(w.type) {
            for (m, y) in zip(ws, ys) {
                try gpu.launch("mmv_" + suffix(m.type), grid: (blocks(m.rows, 4), blocks(tokens, 8), 1), block: 128,
                               [.pointer(m.pointer), .u64(UInt64(m.rowBytes)), .int(Int32(m.rows)), .int(Int32(m.cols)), .pointer(x),
                                .pointer(y), .int(Int32(tokens)), .int(Int32(m.rows))])
            }
            return
        }
        guard act.n == w.cols else {
            throw CUDAError.invalidArgument("activations of \(act.n) for a [\(w.rows), \(w.cols)] \(w.type.name) matrix")
        }
        try quantize(gpu, x: x, tokens: tokens, weightType: w.type, act: act)
        func at<T>(_ a: [T], _ i: Int, _ empty: T) -> T { i < a.count ? a[i] : empty }
        let pointers = (0..<3).map { at(ws, $0, w).pointer }, rows = (0..<3).map { $0 < ws.count ? ws[$0].rows : 0 }
        let outs = (0..<3).map { at(ys, $0, 0) }
        let totalRows = rows.reduce(0, +)
        let matrices: [KernelArgument] = [.pointer(pointers[0]), .pointer(pointers[1]), .pointer(pointers[2]),
                                          .int(Int32(rows[0])), .int(Int32(rows[1])), .int(Int32(rows[2])),
                                          .pointer(outs[0]), .pointer(outs[1]), .pointer(outs[2]),
                                          .u64(UInt64(w.rowBytes)), .int(Int32(w.cols))]
        if tokens == 1 && w.type == .q4_K {
            // The decode step's kernel: two rows per warp, eight per block.
            let name = gpu.preloadPairs > 0 ? "mmv1p\(gpu.preloadPairs)_q4_K" : "mmv1_q4_K"
            try gpu.launch(name, grid: (blocks(totalRows, 8), 1, 1), block: 128,
                           matrices + [.pointer(act.q.pointer), .pointer(act.ai.pointer), .pointer(act.ak.pointer)] + pf)
            return
        }
        // Generic kernels: tiles of 8 tokens, or the one-token instance (fewer registers).
        let name = try "mmvq_" + suffix(w.type) + (tokens == 1 && w.type != .q4_K ? "_1" : "")
        try gpu.launch(name, grid: (blocks(totalRows, 4), tokens == 1 ? 1 : blocks(tokens, 8), 1), block: 128,
                       matrices + [
                        .pointer(act.q.pointer), .pointer(act.ad.pointer), .pointer(act.as_.pointer), .pointer(act.ai.pointer),
                        .pointer(act.ak.pointer), .int(Int32(tokens))] + pf)
    }

    /// SWIFTKT_CUDA_QKV_ROPE=1: a decode step's q/k/v GEMV also rotates and stores the keys and
    /// values (`mmv1r_q4_K`) instead of a separate rope_store launch. Not yet run on a GPU.
    public static let qkvRopeEnabled = ProcessInfo.processInfo.environment["SWIFTKT_CUDA_QKV_ROPE"] == "1"

    /// Whether `linearQKVRope` takes these: one token, q4_K q / k / v of one width with k and v
    /// of equal height, normal (not neox) rope over an even part of an even head dimension.
    public static func qkvRopeApplies(q: DeviceMatrix, k: DeviceMatrix, v: DeviceMatrix, headDim: Int, rotDim: Int, neox: Bool) -> Bool {
        [q, k, v].allSatisfy { $0.type == .q4_K && $0.cols == q.cols } && k.rows == v.rows && q.rows % 2 == 0 && k.rows % 2 == 0
            && headDim % 2 == 0 && rotDim % 2 == 0 && rotDim <= headDim && !neox
    }

    /// One token's q, k, v = W · x with rope on q and k and k, v stored at row positions[0] of the
    /// f16 caches: mmv1_q4_K + rope_store in one launch, the same results bit for bit.
    public static func linearQKVRope(_ gpu: GPU, q: DeviceMatrix, k: DeviceMatrix, v: DeviceMatrix, x: CUdeviceptr,
                                     act: QuantizedActivationsGPU, yq: CUdeviceptr, yk: CUdeviceptr, yv: CUdeviceptr,
                                     keyCache: CUdeviceptr, valueCache: CUdeviceptr, positions: CUdeviceptr, headDim: Int, rotDim: Int,
                                     base: Float, scale: Float, freqFactors: CUdeviceptr?) throws {
        guard qkvRopeApplies(q: q, k: k, v: v, headDim: headDim, rotDim: rotDim, neox: false), act.n == q.cols else {
            throw CUDAError.invalidArgument("q/k/v GEMV with rope for \(q.type.name) [\(q.rows) | \(k.rows) | \(v.rows), \(q.cols)], "
                                            + "head dim \(headDim), rope over \(rotDim)")
        }
        try quantize(gpu, x: x, tokens: 1, weightType: .q4_K, act: act)
        let rows = q.rows + k.rows + v.rows
        let name = gpu.preloadPairs > 0 ? "mmv1rp\(gpu.preloadPairs)_q4_K" : "mmv1r_q4_K"
        try gpu.launch(name, grid: (blocks(rows, 8), 1, 1), block: 128,
                       [.pointer(q.pointer), .pointer(k.pointer), .pointer(v.pointer), .int(Int32(q.rows)), .int(Int32(k.rows)),
                        .int(Int32(v.rows)), .pointer(yq), .pointer(yk), .pointer(yv), .u64(UInt64(q.rowBytes)), .int(Int32(q.cols)),
                        .pointer(act.q.pointer), .pointer(act.ai.pointer), .pointer(act.ak.pointer), .int(gpu.prefetchWeights ? 1 : 0),
                        .pointer(positions), .pointer(keyCache), .pointer(valueCache), .int(Int32(headDim)), .int(Int32(rotDim)),
                        .float(ropeThetaScale(base: base, rotDim: rotDim)), .float(scale), .pointer(freqFactors ?? 0)])
    }

    /// The largest row count the prefill GEMM path takes (grid.y of the dequantize kernel).
    public static let gemmMaxRows = 65535

    /// y [tokens, rows] = x [tokens, cols] · Wᵀ through cuBLAS: W dequantized to f16 into
    /// `wScratch` (rows · cols halves), x converted to f16 into `xScratch` (tokens · cols halves)
    /// unless `xReady`; f32 accumulation. The prefill path for chunks of many tokens.
    public static func linearGEMM(_ gpu: GPU, blas: CUBLAS, _ w: DeviceMatrix, x: CUdeviceptr, y: CUdeviceptr, tokens: Int,
                                  wScratch: CUdeviceptr, xScratch: CUdeviceptr, xReady: Bool = false) throws {
        guard w.rows <= gemmMaxRows else { throw CUDAError.invalidArgument("GEMM path for \(w.rows) rows (at most \(gemmMaxRows))") }
        try dequantizeF16(gpu, w, out: wScratch)
        if !xReady { try toF16(gpu, x: x, y: xScratch, count: tokens * w.cols) }
        try blas.gemmF16(w: wScratch, x: xScratch, c: y, rows: w.rows, cols: w.cols, tokens: tokens)
    }

    /// W [rows, cols] dequantized to f16 into `out` (rows · cols halves).
    public static func dequantizeF16(_ gpu: GPU, _ w: DeviceMatrix, out: CUdeviceptr) throws {
        if w.cols % 8 == 0 {
            // Eight elements and one 16-byte store per thread.
            let groups = w.rows * w.cols / 8
            try gpu.launch("dequant8_f16_" + suffix(w.type), grid: (blocks(groups, 256), 1, 1), block: 256,
                           [.pointer(w.pointer), .u64(UInt64(w.rowBytes)), .int(Int32(w.cols)), .u64(UInt64(groups)), .pointer(out)])
        } else {
            guard w.rows <= gemmMaxRows else { throw CUDAError.invalidArgument("f16 dequantization of \(w.rows) rows of \(w.cols) (at most \(gemmMaxRows))") }
            try gpu.launch("dequant_f16_" + suffix(w.type), grid: (min(blocks(w.cols, 256), 16), w.rows, 1), block: 256,
                           [.pointer(w.pointer), .u64(UInt64(w.rowBytes)), .int(Int32(w.cols)), .pointer(out)])
        }
    }

    public static func toF16(_ gpu: GPU, x: CUdeviceptr, y: CUdeviceptr, count: Int) throws {
        try gpu.launch("to_f16", grid: (blocks(count, 256), 1, 1), block: 256, [.pointer(x), .pointer(y), .u64(UInt64(count))])
    }

    /// out = x / rms(x) · w, rows of n (may alias). With `quantize`, the same launch also fills
    /// the activation buffers for the matrices of type `weightType` that read `out` next (as
    /// `quantize` would), where the row fits one block; returns whether it did.
    @discardableResult
    public static func rmsNorm(_ gpu: GPU, x: CUdeviceptr, weight: CUdeviceptr, out: CUdeviceptr, rows: Int, n: Int, eps: Float,
                               quantize: (QuantizedActivationsGPU, GGMLType)? = nil) throws -> Bool {
        try norm(gpu, kernel: "rms_norm", [.pointer(x), .pointer(weight), .pointer(out), .int(Int32(n)), .float(eps)],
                 out: out, rows: rows, n: n, quantize: quantize)
    }

    /// The norm kernel family `kernel` (rms_norm or add_rms_norm, whose arguments `args` are):
    /// fused with the quantization when asked and the row allows, else vectorized, else scalar.
    private static func norm(_ gpu: GPU, kernel: String, _ args: [KernelArgument], out: CUdeviceptr, rows: Int, n: Int,
                             quantize: (QuantizedActivationsGPU, GGMLType)?, xReady: Bool = false) throws -> Bool {
        if let (act, type) = quantize, let fused = fusedQuantize(n: n, rows: rows, act: act, type: type, prefix: kernel + "4q_") {
            try gpu.launch(fused, grid: (rows, 1, 1), block: (n / 4 + 31) / 32 * 32, args + actArgs(act) + [.int(xReady ? 1 : 0)])
            act.holds = (out, rows, isK(type))
            return true
        }
        if let (name, threads) = norm4(n, prefix: kernel + "4_") {
            try gpu.launch(name, grid: (rows, 1, 1), block: threads, args)
        } else {
            try gpu.launch(kernel, grid: (rows, 1, 1), block: n >= 512 ? 256 : 128, args)
        }
        return false
    }

    /// The fused norm + quantization kernel for rows of n read by `type` weights, or nil.
    static func fusedQuantize(n: Int, rows: Int, act: QuantizedActivationsGPU, type: GGMLType, prefix: String) -> String? {
        guard !isFloat(type), act.n == n, rows <= act.tokens, n % 4 == 0, n / 4 <= 1024 else { return nil }
        if isK(type) { return n % 256 == 0 ? prefix + "K" : nil }
        return n % 32 == 0 ? prefix + "32" : nil
    }

    static func actArgs(_ act: QuantizedActivationsGPU) -> [KernelArgument] {
        [.pointer(act.q.pointer), .pointer(act.ad.pointer), .pointer(act.as_.pointer), .pointer(act.ai.pointer), .pointer(act.ak.pointer)]
    }

    /// The vectorized norm kernel for rows of n floats (n a multiple of 4, ≤ 32768): its name
    /// (float4 per thread) and block size; nil for the scalar kernel.
    static func norm4(_ n: Int, prefix: String) -> (String, Int)? {
        guard n % 4 == 0, n / 4 <= 8 * 1024 else { return nil }
        let n4 = n / 4
        let v = [1, 2, 4, 8].first { (n4 + $0 - 1) / $0 <= 1024 }!
        let threads = ((n4 + v - 1) / v + 31) / 32 * 32
        return (prefix + String(v), threads)
    }

    /// θ's factor from one rotated pair to the next: base^(−2 / rotDim), as ggml computes it.
    static func ropeThetaScale(base: Float, rotDim: Int) -> Float { powf(base, -2 / Float(rotDim)) }

    /// Rotary embedding in place on x [tokens, heads, headDim] and x2 [tokens, heads2, headDim]
    /// (queries and keys in one launch; heads2 0 for x alone).
    public static func rope(_ gpu: GPU, x: CUdeviceptr, heads: Int, x2: CUdeviceptr = 0, heads2: Int = 0, positions: CUdeviceptr,
                            tokens: Int, headDim: Int, rotDim: Int, base: Float, scale: Float, freqFactors: CUdeviceptr?,
                            neox: Bool) throws {
        guard rotDim % 2 == 0, rotDim <= headDim, rotDim / 2 <= 1024 else {
            throw CUDAError.invalidArgument("rope over \(rotDim) of \(headDim) dimensions")
        }
        let thetaScale = ropeThetaScale(base: base, rotDim: rotDim)
        try gpu.launch("rope", grid: (tokens, heads + heads2, 1), block: max(rotDim / 2, 32),
                       [.pointer(x), .pointer(x2), .pointer(positions), .int(Int32(heads)), .int(Int32(heads2)), .int(Int32(headDim)),
                        .int(Int32(rotDim)), .float(thetaScale), .float(scale), .pointer(freqFactors ?? 0), .int(neox ? 1 : 0)])
    }

    /// `rope` on queries and keys, then `storeKV` of the rotated keys and the values, in one
    /// launch (the same values bit for bit).
    public static func ropeStore(_ gpu: GPU, q: CUdeviceptr, k: CUdeviceptr, v: CUdeviceptr, keyCache: CUdeviceptr, valueCache: CUdeviceptr,
                                 positions: CUdeviceptr, tokens: Int, heads: Int, kvHeads: Int, headDim: Int, rotDim: Int, base: Float,
                                 scale: Float, freqFactors: CUdeviceptr?, neox: Bool) throws {
        guard rotDim % 2 == 0, rotDim <= headDim, rotDim / 2 <= 1024 else {
            throw CUDAError.invalidArgument("rope over \(rotDim) of \(headDim) dimensions")
        }
        let thetaScale = ropeThetaScale(base: base, rotDim: rotDim)
        try gpu.launch("rope_store", grid: (tokens, heads + 2 * kvHeads, 1), block: max(rotDim / 2, 32),
                       [.pointer(q), .pointer(k), .pointer(v), .pointer(keyCache), .pointer(valueCache), .pointer(positions),
                        .int(Int32(heads)), .int(Int32(kvHeads)), .int(Int32(headDim)), .int(Int32(rotDim)), .float(thetaScale),
                        .float(scale), .pointer(freqFactors ?? 0), .int(neox ? 1 : 0)])
    }

    /// x += y, then out = x / rms(x) · w (rows of n): a residual add and the next norm in one
    /// pass; `quantize` as in `rmsNorm`. `xReady`: the kernel launched just before this one does
    /// not write x, so the fused kernel may read x before it waits for that kernel (x's writer,
    /// launched earlier, is complete once that kernel's blocks have passed their own wait),
    /// leaving only y's loads after the wait. A decode step's residual qualifies: its writer is
    /// the add_norm before the attention or the feed-forward block.
    @discardableResult
    public static func addRMSNorm(_ gpu: GPU, x: CUdeviceptr, y: CUdeviceptr, weight: CUdeviceptr, out: CUdeviceptr, rows: Int, n: Int,
                                  eps: Float, quantize: (QuantizedActivationsGPU, GGMLType)? = nil, xReady: Bool = false) throws -> Bool {
        try norm(gpu, kernel: "add_rms_norm", [.pointer(x), .pointer(y), .pointer(weight), .pointer(out), .int(Int32(n)), .float(eps)],
                 out: out, rows: rows, n: n, quantize: quantize, xReady: xReady)
    }

    public enum Activation: Int32, Sendable {
        case silu = 0
        /// GELU, tanh approximation, in float.
        case gelu = 1
        /// GELU as llama.cpp's CPU table: input and result rounded to f16.
        case geluTable = 2
    }

    /// gate ← act(gate) · up, also quantized for the `weightType` matrix that reads it next
    /// (as `quantize` would) when its rows of n fit the fused kernel; returns whether it did.
    public static func gluQuantized(_ gpu: GPU, gate: CUdeviceptr, up: CUdeviceptr, tokens: Int, n: Int, activation: Activation,
                                    act: QuantizedActivationsGPU, weightType: GGMLType) throws -> Bool {
        let k = isK(weightType), count = tokens * n
        guard !isFloat(weightType), act.n == n, tokens <= act.tokens, n % (k ? 256 : 32) == 0 else {
            try glu(gpu, gate: gate, up: up, count: count, activation: activation)
            return false
        }
        try gpu.launch("glu_q", grid: (blocks(count, 256), 1, 1), block: 256,
                       [.pointer(gate), .pointer(up), .u64(UInt64(count)), .int(activation.rawValue), .int(k ? 1 : 0)] + actArgs(act))
        act.holds = (gate, tokens, k)
        return true
    }

    /// gate ← act(gate) · up.
    public static func glu(_ gpu: GPU, gate: CUdeviceptr, up: CUdeviceptr, count: Int, activation: Activation) throws {
        try gpu.launch("glu", grid: (blocks(count, 256), 1, 1), block: 256,
                       [.pointer(gate), .pointer(up), .u64(UInt64(count)), .int(activation.rawValue)])
    }

    /// x += y
    public static func add(_ gpu: GPU, x: CUdeviceptr, y: CUdeviceptr, count: Int) throws {
        try gpu.launch("add", grid: (blocks(count, 256), 1, 1), block: 256, [.pointer(x), .pointer(y), .u64(UInt64(count))])
    }

    /// x[t, i] += y[t, i] · sigmoid(gate[t]) for rows of n (a gated shared expert's output).
    public static func addGated(_ gpu: GPU, x: CUdeviceptr, y: CUdeviceptr, gate: CUdeviceptr, n: Int, rows: Int) throws {
        try gpu.launch("add_gated", grid: (blocks(n * rows, 256), 1, 1), block: 256,
                       [.pointer(x), .pointer(y), .pointer(gate), .int(Int32(n)), .u64(UInt64(n * rows))])
    }

    /// y[t, i] += bias[i] for rows of n.
    public static func addBias(_ gpu: GPU, y: CUdeviceptr, bias: CUdeviceptr, n: Int, rows: Int) throws {
        try gpu.launch("add_bias", grid: (blocks(n * rows, 256), 1, 1), block: 256,
                       [.pointer(y), .pointer(bias), .int(Int32(n)), .u64(UInt64(n * rows))])
    }

    public static func softcap(_ gpu: GPU, x: CUdeviceptr, cap: Float, count: Int) throws {
        try gpu.launch("softcap", grid: (blocks(count, 256), 1, 1), block: 256, [.pointer(x), .float(cap), .u64(UInt64(count))])
    }

    /// Rows of keys and values [tokens, width] into the f16 caches at `positions`.
    public static func storeKV(_ gpu: GPU, keys: CUdeviceptr, values: CUdeviceptr, keyCache: CUdeviceptr, valueCache: CUdeviceptr,
                               positions: CUdeviceptr, width: Int, tokens: Int) throws {
        try gpu.launch("store_kv", grid: (blocks(width, 256), tokens, 2), block: 256,
                       [.pointer(keys), .pointer(values), .pointer(keyCache), .pointer(valueCache), .pointer(positions),
                        .int(Int32(width)), .int(Int32(tokens))])
    }

    /// Index of each row's largest value (first on ties) into out [rows] (Int32).
    public static func argmax(_ gpu: GPU, x: CUdeviceptr, rows: Int, n: Int, out: CUdeviceptr, scratch: CUdeviceptr? = nil) throws {
        if let scratch, n >= 8192 {
            // One block per row walks 1024 apart with one load in flight per thread (49 µs for a
            // 128k vocabulary on an H100): slices in parallel, then a pick among them.
            let len = (n + argmaxSlices - 1) / argmaxSlices
            try gpu.launch("argmax_slices", grid: (argmaxSlices, rows, 1), block: 256,
                           [.pointer(x), .int(Int32(n)), .int(Int32(len)), .pointer(scratch)])
            try gpu.launch("argmax_finish", grid: (rows, 1, 1), block: 128,
                           [.pointer(scratch), .int(Int32(argmaxSlices)), .int(Int32(rows)), .pointer(out)])
            return
        }
        try gpu.launch("argmax_rows", grid: (rows, 1, 1), block: 1024, [.pointer(x), .int(Int32(n)), .pointer(out)])
    }

    /// Slices per row of the two-pass argmax, and the scratch bytes it needs for `rows` rows.
    public static let argmaxSlices = 64
    public static func argmaxScratchBytes(rows: Int) -> Int { rows * argmaxSlices * 8 }

    /// Scratch floats `attention` needs for `tokens` queries: partial results per split.
    public static func attentionScratch(tokens: Int, heads: Int, headDim: Int, splits: Int) -> Int {
        tokens * heads * splits * (headDim + 2)
    }

    /// The number of key splits for a call: enough blocks to fill the device, ≥ 32 keys each.
    public static func attentionSplits(gpu: GPU, tokens: Int, heads: Int, keys: Int, maxSplits: Int) -> Int {
        let wanted = max(1, (2 * gpu.device.multiprocessors + tokens * heads - 1) / (tokens * heads))
        return max(1, min(wanted, (keys + 31) / 32, maxSplits))
    }

    /// Attention with llama.cpp's CPU flash-attention numerics (f16 query, f16 accumulator, keys
    /// in order; KernelSource explains): the GPU then follows the CPU path token for token. Keys
    /// are walked one after another per output element, so it is slow for long contexts; used
    /// for chunks below 64 tokens (the CPU's own switch to its tiled f32 path).
    ///
    /// `quantize`: the output projection's activation buffer and weight type; when the shape
    /// allows (heads · headDim a multiple of 256, headDim dividing 256) the last kernel also
    /// quantizes its output there, as `quantize` would, and the function returns true.
    @discardableResult
    public static func attentionCPUNumerics(_ gpu: GPU, q: CUdeviceptr, keys: CUdeviceptr, values: CUdeviceptr, positions: CUdeviceptr,
                                            out: CUdeviceptr, scores: CUdeviceptr, tokens: Int, heads: Int, kvHeads: Int, headDim: Int,
                                            scale: Float, window: Int, maxKeys: Int,
                                            quantize: (QuantizedActivationsGPU, GGMLType)? = nil, rope: RopeStore? = nil) throws -> Bool {
        guard headDim % 32 == 0, headDim <= 256, heads % kvHeads == 0 else {
            throw CUDAError.invalidArgument("CUDA attention needs headDim a multiple of 32 up to 256 and heads % kvHeads == 0; "
                                            + "got headDim \(headDim), heads \(heads), kvHeads \(kvHeads)")
        }
        let fused = fusedQuantization(quantize, tokens: tokens, heads: heads, headDim: headDim)
        if let rope, !shortAttentionTakesRope(gpu, tokens: tokens, maxKeys: maxKeys, headDim: headDim, rotDim: rope.rotDim) {
            throw CUDAError.invalidArgument("rope + attention in one kernel for \(tokens) tokens, \(maxKeys) keys, head dim \(headDim), "
                                            + "rope over \(rope.rotDim): not available (shortAttentionTakesRope)")
        }
        if shortAttentionApplies(gpu, maxKeys: maxKeys, headDim: headDim) {
            let ropeArgs: [KernelArgument] = rope.map {
                [.pointer($0.k), .pointer($0.v), .int(Int32($0.rotDim)), .float(ropeThetaScale(base: $0.base, rotDim: $0.rotDim)),
                 .float($0.scale), .pointer($0.freqFactors ?? 0), .int($0.neox ? 1 : 0)]
            } ?? []
            return try launchShortAttention(gpu, "attn_short_\(rope != nil ? "rope_" : "")\(gpu.attentionScan ? "scan_" : "")\(headDim)",
                                            q: q, keys: keys, values: values, positions: positions, out: out, tokens: tokens, heads: heads,
                                            kvHeads: kvHeads, headDim: headDim, scale: scale, window: window, fused: fused, extra: ropeArgs)
        }
        // Four blocks per (head, token) spread the keys of one decode step over more of the GPU.
        try gpu.launch("attn_scores_f16q", grid: (heads, tokens, tokens == 1 ? 4 : 1), block: 256,
                       [.pointer(q), .pointer(keys), .pointer(positions), .int(Int32(heads)), .int(Int32(kvHeads)), .int(Int32(headDim)),
                        .float(scale), .int(Int32(window)), .int(Int32(maxKeys)), .pointer(scores)])
        let args: [KernelArgument] = [.pointer(scores), .pointer(values), .pointer(positions), .int(Int32(heads)), .int(Int32(kvHeads)),
                                      .int(Int32(headDim)), .int(Int32(window)), .int(Int32(maxKeys)), .pointer(out)]
        if let (act, k) = fused {
            try gpu.launch("attn_seq_f16acc_q", grid: (heads * headDim / 256, tokens, 1), block: 256,
                           args + [.int(k ? 1 : 0)] + actArgs(act))
            act.holds = (out, tokens, k)
            return true
        }
        try gpu.launch("attn_seq_f16acc", grid: (heads, tokens, 1), block: headDim, args)
        return false
    }

    /// What `ropeStore` does, for `attentionCPUNumerics` to do itself: q is rotated in place of
    /// being read rotated, and `k`, `v` (one token's new key and value rows, not yet rotated or
    /// stored) go into the caches at the token's position.
    public struct RopeStore {
        public var k: CUdeviceptr, v: CUdeviceptr
        public var rotDim: Int, base: Float, scale: Float, freqFactors: CUdeviceptr?, neox: Bool
        public init(k: CUdeviceptr, v: CUdeviceptr, rotDim: Int, base: Float, scale: Float, freqFactors: CUdeviceptr?, neox: Bool) {
            self.k = k; self.v = v; self.rotDim = rotDim; self.base = base; self.scale = scale; self.freqFactors = freqFactors; self.neox = neox
        }
    }

    /// Whether `attentionCPUNumerics` takes a `RopeStore` for this call (one token, the
    /// one-kernel short form; `GPU.shortAttentionRope`): rope_store's launch is then saved.
    public static func shortAttentionTakesRope(_ gpu: GPU, tokens: Int, maxKeys: Int, headDim: Int, rotDim: Int) -> Bool {
        gpu.shortAttentionRope && tokens == 1 && shortAttentionApplies(gpu, maxKeys: maxKeys, headDim: headDim)
            && rotDim % 2 == 0 && rotDim > 0 && rotDim <= headDim && 256 % headDim == 0
    }

    /// Whether `attentionCPUNumerics` runs the one-kernel short form (GPU.shortAttention).
    static func shortAttentionApplies(_ gpu: GPU, maxKeys: Int, headDim: Int) -> Bool {
        gpu.shortAttention && maxKeys <= shortAttentionMaxKeys && shortAttentionHeadDims.contains(headDim)
            && (headDim != 192 || gpu.shortAttention192)
    }

    /// Attention with the CPU's numerics runs as one kernel up to this many visible keys, for
    /// these head dimensions. Every key of a head goes through one block; measured faster than
    /// scores + the sequential pass in two kernels at every length tried (ops-check --perf, H100,
    /// 8B heads: 7.5 against 12.1 µs at 64 positions, 49.5 / 70.4 at 512, 386 / 540 at 4 096),
    /// so there is no bound (the constant stays for the graph-per-bound logic and for tests).
    public static let shortAttentionMaxKeys = Int.max
    public static let shortAttentionHeadDims: Set<Int> = [32, 64, 128, 192, 256]

    /// The activation buffer and format (q8_K or not) an attention kernel can quantize its
    /// output into, or nil when the shape or the buffer does not allow it.
    static func fusedQuantization(_ target: (QuantizedActivationsGPU, GGMLType)?, tokens: Int, heads: Int, headDim: Int)
        -> (QuantizedActivationsGPU, Bool)? {
        guard let (act, type) = target, !isFloat(type), act.n == heads * headDim, tokens <= act.tokens,
              256 % headDim == 0, (heads * headDim) % 256 == 0 else { return nil }
        return (act, isK(type))
    }

    /// One kernel of the short attention family (`attn_short_*`, KernelSource+Decode): a block of
    /// 256 threads for 256 / headDim heads of a token, the output quantized when `fused`
    /// (`fusedQuantization`), `extra` after the common arguments (the rope form's). Returns
    /// whether it quantized.
    private static func launchShortAttention(_ gpu: GPU, _ name: String, q: CUdeviceptr, keys: CUdeviceptr, values: CUdeviceptr,
                                             positions: CUdeviceptr, out: CUdeviceptr, tokens: Int, heads: Int, kvHeads: Int,
                                             headDim: Int, scale: Float, window: Int, fused: (QuantizedActivationsGPU, Bool)?,
                                             extra: [KernelArgument] = []) throws -> Bool {
        let perBlock = 256 / headDim
        let act: [KernelArgument] = fused.map { actArgs($0.0) } ?? Array(repeating: .pointer(0), count: 5)
        try gpu.launch(name, grid: ((heads + perBlock - 1) / perBlock, tokens, 1), block: 256,
                       [.pointer(q), .pointer(keys), .pointer(values), .pointer(positions), .int(Int32(heads)), .int(Int32(kvHeads)),
                        .float(scale), .int(Int32(window)), .pointer(out), .int(Int32(fused.map { $0.1 ? 1 : 0 } ?? -1))] + act + extra)
        if let (a, k) = fused { a.holds = (out, tokens, k) }
        return fused != nil
    }

    /// `attention` (f32, `numerics: fast`) runs as one kernel, a block walking all of 256 / headDim
    /// heads' keys in chunks (`attn_short_f32_<D>`), for chunks below the tiled kernel's size and
    /// up to this many visible keys; split-K + combine beyond, where one block a head pair is too
    /// few for the cache's reads. The decoder captures its one-token step for this bound while
    /// the position is below it (`CUDADecoder.launchDecodeGraph`). Set from the ops check's
    /// timings on an H100 (session 18, 8B heads): the one kernel 4.6 µs at 64 positions against
    /// 7.0–7.1 for split-K, 14.5 against 7.3–8.2 at 256 (it grows ~0.054 µs a key, split-K
    /// ~0.006); 8B tg128 under rules/cuda-fast.yaml 482 against 466–469 t/s with split-K alone.
    public static let shortAttentionF32MaxKeys = 128

    public static func shortAttentionF32Applies(_ gpu: GPU, tokens: Int, maxKeys: Int, headDim: Int) -> Bool {
        gpu.shortAttentionF32 && tokens < tiledAttentionMinTokens && maxKeys <= gpu.shortAttentionF32MaxKeys
            && shortAttentionHeadDims.contains(headDim) && 256 % headDim == 0  // (no width-192 form)
    }

    /// Head dimensions the tiled prefill attention kernel takes, and the chunk size from which
    /// the model uses it (below, split-K spreads few queries over more blocks).
    public static let tiledAttentionHeadDims: Set<Int> = [64, 128, 256]
    public static let tiledAttentionMinTokens = 16

    /// Prefill attention in tiles (KernelSource `attn_tile_*`): each block stages tiles of keys
    /// and values in shared memory for a tile of queries (32, or 16 at headDim 256) — the same
    /// result as `attention` (f32 arithmetic, online softmax), without reading the cache once
    /// per query. headDim 64, 128 or 256.
    public static func attentionTiled(_ gpu: GPU, q: CUdeviceptr, keys: CUdeviceptr, values: CUdeviceptr, positions: CUdeviceptr,
                                      out: CUdeviceptr, tokens: Int, heads: Int, kvHeads: Int, headDim: Int, scale: Float,
                                      window: Int) throws {
        guard tiledAttentionHeadDims.contains(headDim), heads % kvHeads == 0 else {
            throw CUDAError.invalidArgument("tiled attention needs headDim 64, 128 or 256 and heads % kvHeads == 0; "
                                            + "got headDim \(headDim), heads \(heads), kvHeads \(kvHeads)")
        }
        let rowsPerBlock = headDim == 256 ? 16 : 32
        try gpu.launch("attn_tile_\(headDim)", grid: (blocks(tokens, rowsPerBlock), heads, 1), block: 128,
                       [.pointer(q), .pointer(keys), .pointer(values), .pointer(positions), .int(Int32(tokens)), .int(Int32(heads)),
                        .int(Int32(kvHeads)), .float(scale), .int(Int32(window)), .pointer(out)])
    }

    /// out [tokens, heads, headDim] = softmax(q·Kᵀ·scale) · V over the f16 cache, causal (and
    /// windowed when window > 0). `maxKeys` bounds the visible key count of any query (it picks
    /// the one-kernel form or split-K); split-K cuts each query's own visible keys into `splits`
    /// ranges (`scratch`: `attentionScratch` floats for that many).
    ///
    /// `quantize` as in `attentionCPUNumerics`.
    @discardableResult
    public static func attention(_ gpu: GPU, q: CUdeviceptr, keys: CUdeviceptr, values: CUdeviceptr, positions: CUdeviceptr,
                                 out: CUdeviceptr, scratch: CUdeviceptr, tokens: Int, heads: Int, kvHeads: Int, headDim: Int,
                                 scale: Float, window: Int, maxKeys: Int, splits: Int,
                                 quantize: (QuantizedActivationsGPU, GGMLType)? = nil) throws -> Bool {
        guard headDim % 32 == 0, headDim <= 256, heads % kvHeads == 0 else {
            throw CUDAError.invalidArgument("CUDA attention needs headDim a multiple of 32 up to 256 and heads % kvHeads == 0; "
                                            + "got headDim \(headDim), heads \(heads), kvHeads \(kvHeads)")
        }
        let fused = fusedQuantization(quantize, tokens: tokens, heads: heads, headDim: headDim)
        if shortAttentionF32Applies(gpu, tokens: tokens, maxKeys: maxKeys, headDim: headDim) {
            return try launchShortAttention(gpu, "attn_short_f32_\(headDim)", q: q, keys: keys, values: values, positions: positions,
                                            out: out, tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim, scale: scale,
                                            window: window, fused: fused)
        }
        // Each query's visible keys cut into `splits` ranges (from its position, not from maxKeys).
        try gpu.launch("attn_split_\(headDim)", grid: (heads, tokens, splits), block: 128,
                       [.pointer(q), .pointer(keys), .pointer(values), .pointer(positions), .int(Int32(heads)), .int(Int32(kvHeads)),
                        .float(scale), .int(Int32(window)), .pointer(scratch)])
        let args: [KernelArgument] = [.pointer(scratch), .int(Int32(heads)), .int(Int32(headDim)), .int(Int32(splits)), .pointer(out)]
        if let (act, k) = fused {
            try gpu.launch("attn_combine_q", grid: (heads * headDim / 256, tokens, 1), block: 256, args + [.int(k ? 1 : 0)] + actArgs(act))
            act.holds = (out, tokens, k)
            return true
        }
        try gpu.launch("attn_combine", grid: (heads, tokens, 1), block: headDim, args)
        return false
    }
}
