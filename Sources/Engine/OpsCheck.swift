// The ops check: every CUDA operator against the CPU's scalar reference on random inputs, with
// odd shapes and tails, and a normalized error bound per case (‖gpu − ref‖ / ‖ref‖). With
// `perf`, the linear kernels and decode attention are also timed (CUDA events) on model-sized
// shapes and reported in µs and GB/s against the device's measured copy bandwidth.
// `swiftkt ops-check` prints the table; docs/cuda.md keeps the latest results.
import Core
import CPUKernels
import CUDA
import Foundation

public struct OpsCheckResult: Sendable {
    public let op: String
    public let shape: String
    public let error: Double
    public let bound: Double
    public var passed: Bool { error <= bound }
}

public struct OpsPerfResult: Sendable {
    public let op: String
    public let shape: String
    public let microseconds: Double
    public let bytes: Int
    public var gbPerSecond: Double { Double(bytes) / microseconds / 1e3 }
}

public enum OpsCheck {
    /// ‖a − b‖ / max(‖b‖, tiny).
    static func normalizedError(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return (num / max(den, 1e-30)).squareRoot()
    }

    static func random(_ n: Int, _ rng: inout SeededGenerator, scale: Float = 1) -> [Float] {
        (0..<n).map { _ in Float.random(in: -scale...scale, using: &rng) }
    }

    /// n random halves in ±1 (an f16 KV cache's bits).
    static func randomHalves(_ n: Int, _ rng: inout SeededGenerator) -> [UInt16] {
        (0..<n).map { _ in floatToHalf(Float.random(in: -1...1, using: &rng)) }
    }

    /// A random [rows, cols] matrix (values in ±1) quantized to `type` in host memory, freed with
    /// the value.
    final class HostMatrix {
        let weight: WeightMatrix
        let bytes: Int
        private let raw: UnsafeMutableRawPointer
        var data: UnsafeRawPointer { UnsafeRawPointer(raw) }

        init(_ type: GGMLType, rows: Int, cols: Int, rng: inout SeededGenerator) throws {
            bytes = type.byteCount(elements: cols) * rows
            raw = .allocate(byteCount: bytes, alignment: 64)
            weight = WeightMatrix(type: type, rows: rows, cols: cols, data: raw)
            do { try Quant.quantize(type, from: OpsCheck.random(rows * cols, &rng), to: raw, count: rows * cols) } catch {
                raw.deallocate()
                throw error
            }
        }

        deinit { raw.deallocate() }
    }

    /// Runs every check on `gpu`; `progress` gets one line per case.
    public static func run(gpu: GPU, seed: UInt64 = 7, progress: (OpsCheckResult) -> Void = { _ in }) throws -> [OpsCheckResult] {
        try gpu.makeCurrent()
        var rng = SeededGenerator(seed: seed)
        var results: [OpsCheckResult] = []
        let pool = ThreadPool(threads: 1)
        func record(_ op: String, _ shape: String, _ error: Double, _ bound: Double) {
            let r = OpsCheckResult(op: op, shape: shape, error: error, bound: bound)
            results.append(r); progress(r)
        }
        func upload(_ v: [Float]) throws -> DeviceBuffer { try gpu.upload(v) }
        func uploadBytes(_ p: UnsafeRawPointer, _ n: Int) throws -> DeviceBuffer {
            let b = try gpu.allocator.allocate(n)
            try gpu.copy(toDevice: b.pointer, from: p, bytes: n)
            return b
        }
        func uploadInts(_ v: [Int32]) throws -> DeviceBuffer { try gpu.upload(ints: v) }
        // A random q4_K matrix on the device (the buffer keeps it allocated).
        func uploadQ4K(rows: Int, cols: Int) throws -> (DeviceMatrix, DeviceBuffer) {
            let host = try HostMatrix(.q4_K, rows: rows, cols: cols, rng: &rng)
            let b = try uploadBytes(host.data, host.bytes)
            return (DeviceMatrix(type: .q4_K, rows: rows, cols: cols, pointer: b.pointer), b)
        }
        func downloadInts(_ p: CUdeviceptr, _ n: Int) throws -> [Int32] {
            var out = [Int32](repeating: 0, count: n)
            try gpu.synchronize()
            try out.withUnsafeMutableBytes { try gpu.copy(toHost: $0.baseAddress!, from: p, bytes: $0.count) }
            return out
        }

        // Linear on every weight type: against the CPU's quantized path (same integer sums,
        // only the float order differs) and against the float reference (8-bit activations).
        let linearTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .f16, .bf16, .f32]
        for type in linearTypes {
            let k = [GGMLType.q4_K, .q5_K, .q6_K].contains(type)
            // (4096 and 8192 wide: room for the decode GEMV's K split over 2 and 4 warps.)
            for (rows, cols, tokens) in [(37, k ? 256 : 96, 1), (67, 4096, 1), (45, 8192, 1), (203, k ? 512 : 544, 3),
                                         (1001, k ? 768 : 1056, 8), (64, k ? 1024 : 800, 13)] {
                let host = try HostMatrix(type, rows: rows, cols: cols, rng: &rng)
                let w = host.weight, raw = host.data, bytes = host.bytes
                let x = random(tokens * cols, &rng)
                var ref = [Float](repeating: 0, count: tokens * rows), cpu = ref
                x.withUnsafeBufferPointer { xp in
                    ref.withUnsafeMutableBufferPointer { Matmul.reference(w, x: xp.baseAddress!, y: $0.baseAddress!, tokens: tokens, pool: pool) }
                    if GPUOps.isFloat(type) { cpu = ref } else {
                        cpu.withUnsafeMutableBufferPointer { Matmul.quantized(w, x: xp.baseAddress!, y: $0.baseAddress!, tokens: tokens, pool: pool) }
                    }
                }
                let dw = try uploadBytes(raw, bytes), dx = try upload(x), dy = try gpu.allocator.allocate(tokens * rows * 4)
                let act = try QuantizedActivationsGPU(gpu: gpu, n: cols, tokens: tokens)
                try GPUOps.linear(gpu, DeviceMatrix(type: type, rows: rows, cols: cols, pointer: dw.pointer), x: dx.pointer, act: act,
                                  y: dy.pointer, tokens: tokens)
                let out = try gpu.download(dy.pointer, count: tokens * rows)
                let shape = "[\(rows), \(cols)] × \(tokens) tok"
                record("linear \(type.name) vs CPU", shape, normalizedError(out, cpu), 2e-6)
                if let blas = gpu.blas {
                    // The prefill path: f16 weights and activations, cuBLAS GEMM with f32 accumulation.
                    let ws = try gpu.allocator.allocate(2 * rows * cols), xs = try gpu.allocator.allocate(2 * tokens * cols)
                    try GPUOps.linearGEMM(gpu, blas: blas, DeviceMatrix(type: type, rows: rows, cols: cols, pointer: dw.pointer), x: dx.pointer,
                                          y: dy.pointer, tokens: tokens, wScratch: ws.pointer, xScratch: xs.pointer)
                    record("linear \(type.name) cuBLAS f16 vs float ref", shape, normalizedError(try gpu.download(dy.pointer, count: tokens * rows), ref),
                           type == .f32 || type == .bf16 ? 4e-3 : 2e-3)
                }
                record("linear \(type.name) vs float ref", shape, normalizedError(out, ref), GPUOps.isFloat(type) ? (type == .f32 ? 2e-6 : 5e-3) : 2e-2)
            }
        }

        // Three matrices of one type in one launch (q, k, v) equal three separate launches.
        for type in [GGMLType.q4_K, .q4_1, .q6_K, .q8_0] { for tokens in [1, 3] {
            // 67 + 16 + 17 rows: with two rows per warp (one-token q4_K) a warp spans two matrices.
            let cols = 512, shapes = [67, 16, 17]
            var mats: [DeviceMatrix] = [], bufs: [DeviceBuffer] = []
            for rows in shapes {
                let host = try HostMatrix(type, rows: rows, cols: cols, rng: &rng)
                let b = try uploadBytes(host.data, host.bytes)
                bufs.append(b)
                mats.append(DeviceMatrix(type: type, rows: rows, cols: cols, pointer: b.pointer))
            }
            let dx = try upload(random(tokens * cols, &rng))
            let act = try QuantizedActivationsGPU(gpu: gpu, n: cols, tokens: tokens)
            let together = try shapes.map { try gpu.allocator.allocate($0 * tokens * 4) }
            let apart = try shapes.map { try gpu.allocator.allocate($0 * tokens * 4) }
            // Together with the weight-row prefetch (sm_90), apart without (a hint: the same numbers).
            let prefetching = gpu.prefetchWeights
            defer { gpu.prefetchWeights = prefetching }
            gpu.prefetchWeights = gpu.device.computeCapability.major >= 9
            try GPUOps.linearMany(gpu, mats, x: dx.pointer, act: act, ys: together.map(\.pointer), tokens: tokens)
            gpu.prefetchWeights = false
            for (m, y) in zip(mats, apart) { try GPUOps.linear(gpu, m, x: dx.pointer, act: act, y: y.pointer, tokens: tokens) }
            var worst = 0.0
            for (i, rows) in shapes.enumerated() {
                worst = max(worst, normalizedError(try gpu.download(together[i].pointer, count: rows * tokens),
                                                   try gpu.download(apart[i].pointer, count: rows * tokens)))
            }
            record("linear \(type.name), 3 matrices in one launch (+ prefetch) vs apart", "[67|16|17, 512] × \(tokens) tok", worst, 0)
            _ = bufs
        } }

        // One-token q4_K with the first pairs' weights loaded before the wait (mmv1p1/mmv1p2_q4_K)
        // = mmv1_q4_K bit for bit: widths of 1, 2 and 3.5 pairs per lane, rows in two matrices.
        for cols in [2048, 4096, 7168] {
            let shapes = [45, 20]
            let uploaded = try shapes.map { try uploadQ4K(rows: $0, cols: cols) }
            let mats = uploaded.map(\.0), bufs = uploaded.map(\.1)
            let dx = try upload(random(cols, &rng))
            let act = try QuantizedActivationsGPU(gpu: gpu, n: cols, tokens: 1)
            let preloading = gpu.preloadPairs
            defer { gpu.preloadPairs = preloading }
            var kept: [DeviceBuffer] = []  // every run's outputs stay allocated and start as NaN
            func outputs(_ pre: Int) throws -> [Float] {
                gpu.preloadPairs = pre
                let ys = try shapes.map { try upload([Float](repeating: .nan, count: $0)) }
                kept += ys
                GPUOps.invalidate(act)
                try GPUOps.linearMany(gpu, mats, x: dx.pointer, act: act, ys: ys.map(\.pointer), tokens: 1)
                return try zip(ys, shapes).flatMap { try gpu.download($0.pointer, count: $1) }
            }
            let plain = try outputs(0)
            for pre in [1, 2] {
                let same = try outputs(pre).map(\.bitPattern) == plain.map(\.bitPattern) && !plain.contains(where: \.isNaN)
                record("linear q4_K 1 tok, \(pre) pair(s) preloaded before the wait = mmv1_q4_K", "[45|20, \(cols)]", same ? 0 : 1, 0)
            }

            _ = (bufs, kept)
        }

        // Dequantization to f16 (the prefill GEMM's weights): the CPU's rows rounded to f16.
        for type in linearTypes {
            let cols = [GGMLType.q4_K, .q5_K, .q6_K].contains(type) ? 512 : 96, rows = 41
            let host = try HostMatrix(type, rows: rows, cols: cols, rng: &rng)
            var ref = [Float](repeating: 0, count: rows * cols)
            ref.withUnsafeMutableBufferPointer { r in for i in 0..<rows { host.weight.dequantizeRow(i, into: r.baseAddress! + i * cols) } }
            let dw = try uploadBytes(host.data, host.bytes), dout = try gpu.allocator.allocate(rows * cols * 2)
            try GPUOps.dequantizeF16(gpu, DeviceMatrix(type: type, rows: rows, cols: cols, pointer: dw.pointer), out: dout.pointer)
            var halves = [UInt16](repeating: 0, count: rows * cols)
            try halves.withUnsafeMutableBytes { try gpu.copy(toHost: $0.baseAddress!, from: dout.pointer, bytes: $0.count) }
            let mismatches = zip(halves, ref).filter { $0 != floatToHalf($1) }.count
            record("dequantize to f16 \(type.name)", "[\(rows), \(cols)]", Double(mismatches) / Double(rows * cols), 1e-3)
        }

        // Every routed expert of a chunk in one launch (gate and up together; an expert without
        // tokens, one with a single token, one over two 8-token tiles, one over two 32-token
        // tiles) against one launch per expert: the GEMV's 8-row tiles bit for bit, the q4_K and
        // q6_K tensor-core kernels (32-row tiles; 2 × 80 rows = three blocks of 64, the last
        // one's two last warps idle at the barriers; q6_K's whether or not the runtime enables
        // it) within float rounding.
        for type in [GGMLType.q4_K, .q8_0, .q6_K, .q4_1] {
            let cols = 512, rows = 80, counts = [3, 0, 1, 11, 40], experts = counts.count, pairs = counts.reduce(0, +)
            var gates: [HostMatrix] = [], ups: [HostMatrix] = []
            for _ in 0..<experts { gates.append(try HostMatrix(type, rows: rows, cols: cols, rng: &rng)); ups.append(try HostMatrix(type, rows: rows, cols: cols, rng: &rng)) }
            let stride = gates[0].bytes
            let gw = try gpu.allocator.allocate(stride * experts), uw = try gpu.allocator.allocate(stride * experts)
            for e in 0..<experts {
                try gpu.copy(toDevice: gw.pointer + UInt64(e * stride), from: gates[e].data, bytes: stride)
                try gpu.copy(toDevice: uw.pointer + UInt64(e * stride), from: ups[e].data, bytes: stride)
            }
            var starts: [Int32] = [0]
            for c in counts { starts.append(starts.last! + Int32(c)) }
            let dx = try upload(random(pairs * cols, &rng)), ds = try uploadInts(starts)
            let act = try QuantizedActivationsGPU(gpu: gpu, n: cols, tokens: pairs)
            let heights = GPUOps.expertsMMA(type, rows: rows, gpu: gpu) ? [8, 32] : [8]
            let ys = try heights.map { _ in (try gpu.allocator.allocate(pairs * rows * 4), try gpu.allocator.allocate(pairs * rows * 4)) }
            // (Tile lists kept until the results are read: the launches are asynchronous.)
            var tileBuffers: [DeviceBuffer] = []
            for (height, (y0, y1)) in zip(heights, ys) {
                let tiles = GPUOps.expertTiles(start: starts.map { Int($0) }, rows: height), dt = try uploadInts(tiles)
                tileBuffers.append(dt)
                try GPUOps.linearExperts(gpu, w0: DeviceMatrix(type: type, rows: rows, cols: cols, pointer: gw.pointer),
                                         w1: DeviceMatrix(type: type, rows: rows, cols: cols, pointer: uw.pointer), stride: stride,
                                         x: dx.pointer, act: act, y0: y0.pointer, y1: y1.pointer, pairs: pairs, start: ds.pointer,
                                         tiles: GPUOps.ExpertTiles(pointer: dt.pointer, count: tiles.count / 2, rows: height))
            }
            let one = try gpu.allocator.allocate(pairs * rows * 4), two = try gpu.allocator.allocate(pairs * rows * 4)
            for e in 0..<experts where counts[e] > 0 {
                let r0 = Int(starts[e]), sub = try QuantizedActivationsGPU(gpu: gpu, n: cols, tokens: counts[e])
                let off = UInt64(r0 * rows * 4)
                try GPUOps.linearMany(gpu, [DeviceMatrix(type: type, rows: rows, cols: cols, pointer: gw.pointer + UInt64(e * stride)),
                                            DeviceMatrix(type: type, rows: rows, cols: cols, pointer: uw.pointer + UInt64(e * stride))],
                                      x: dx.pointer + UInt64(r0 * cols * 4), act: sub, ys: [one.pointer + off, two.pointer + off], tokens: counts[e])
            }
            for (height, (y0, y1)) in zip(heights, ys) {
                let err = max(normalizedError(try gpu.download(y0.pointer, count: pairs * rows), try gpu.download(one.pointer, count: pairs * rows)),
                              normalizedError(try gpu.download(y1.pointer, count: pairs * rows), try gpu.download(two.pointer, count: pairs * rows)))
                record("linear \(type.name), all experts in one launch\(height == 32 ? " on tensor cores" : "") vs one per expert",
                       "\(experts) × 2 × [\(rows), \(cols)], rows 3/0/1/11/40", err, height == 32 ? 1e-5 : 1e-6)
            }
            _ = tileBuffers
        }

        // MoE routers on the GPU for decode steps: the CPU's float order, so the same logits (and
        // experts) bit for bit. 128 × 2048 (Qwen3-30B-A3B), 60 × 1024 (a partial last block).
        for (experts, n) in [(128, 2048), (60, 1024)] {
            let host = try HostMatrix(.f32, rows: experts, cols: n, rng: &rng)
            let x = random(n, &rng)
            var cpu = [Float](repeating: 0, count: experts)
            x.withUnsafeBufferPointer { xp in
                cpu.withUnsafeMutableBufferPointer { Matmul.quantized(host.weight, x: xp.baseAddress!, y: $0.baseAddress!, tokens: 1, pool: pool) }
            }
            let dw = try uploadBytes(host.data, host.bytes), dx = try upload(x), dy = try gpu.allocator.allocate(experts * 4)
            try GPUOps.routerExact(gpu, DeviceMatrix(type: .f32, rows: experts, cols: n, pointer: dw.pointer), x: dx.pointer, y: dy.pointer)
            let out = try gpu.download(dy.pointer, count: experts)
            let mismatches = zip(out, cpu).filter { $0.bitPattern != $1.bitPattern }.count
            record("MoE router F32, CPU order, 1 token", "[\(experts), \(n)]", Double(mismatches) / Double(experts), 0)
        }

        // Embedding rows: exact dequantization.
        for type in linearTypes {
            let cols = [GGMLType.q4_K, .q5_K, .q6_K].contains(type) ? 512 : 96, rows = 50
            let host = try HostMatrix(type, rows: rows, cols: cols, rng: &rng)
            let w = host.weight, raw = host.data, bytes = host.bytes
            let ids: [Int32] = [3, 0, 49, 17, 3]
            var ref = [Float](repeating: 0, count: ids.count * cols)
            ref.withUnsafeMutableBufferPointer { r in for (t, id) in ids.enumerated() { w.dequantizeRow(Int(id), into: r.baseAddress! + t * cols) } }
            for i in ref.indices { ref[i] *= 1.5 }
            let dw = try uploadBytes(raw, bytes), di = try uploadInts(ids), dout = try gpu.allocator.allocate(ref.count * 4)
            try GPUOps.embed(gpu, table: DeviceMatrix(type: type, rows: rows, cols: cols, pointer: dw.pointer), ids: di.pointer,
                             count: ids.count, scale: 1.5, out: dout.pointer)
            record("embedding \(type.name)", "[\(rows), \(cols)] × \(ids.count) ids", normalizedError(try gpu.download(dout.pointer, count: ref.count), ref), 1e-6)
        }

        // RMSNorm, odd widths.
        for (rows, n) in [(1, 576), (7, 640), (13, 257), (3, 4096), (2, 8192), (1, 12_000), (1, 20_000)] {
            let x = random(rows * n, &rng, scale: 3), w = random(n, &rng)
            var ref = [Float](repeating: 0, count: rows * n)
            x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in ref.withUnsafeMutableBufferPointer {
                Ops.rmsNorm(xp.baseAddress!, weight: wp.baseAddress!, out: $0.baseAddress!, rows: rows, n: n, eps: 1e-6) } } }
            let dx = try upload(x), dw = try upload(w), dout = try gpu.allocator.allocate(rows * n * 4)
            try GPUOps.rmsNorm(gpu, x: dx.pointer, weight: dw.pointer, out: dout.pointer, rows: rows, n: n, eps: 1e-6)
            record("rms_norm", "\(rows) × \(n)", normalizedError(try gpu.download(dout.pointer, count: rows * n), ref), 1e-6)
            // Fused with the residual add before it: x += y, out = norm(x).
            let y = random(rows * n, &rng)
            let sum = zip(x, y).map { $0 + $1 }
            var ref2 = [Float](repeating: 0, count: rows * n)
            sum.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in ref2.withUnsafeMutableBufferPointer {
                Ops.rmsNorm(xp.baseAddress!, weight: wp.baseAddress!, out: $0.baseAddress!, rows: rows, n: n, eps: 1e-6) } } }
            let dy = try upload(y)
            try GPUOps.addRMSNorm(gpu, x: dx.pointer, y: dy.pointer, weight: dw.pointer, out: dout.pointer, rows: rows, n: n, eps: 1e-6)
            record("add + rms_norm", "\(rows) × \(n)", max(normalizedError(try gpu.download(dout.pointer, count: rows * n), ref2),
                                                            normalizedError(try gpu.download(dx.pointer, count: rows * n), sum)), 1e-6)
        }

        // RoPE: normal and neox, partial rotation, frequency factors, large positions.
        for (neox, headDim, rotDim, factors) in [(false, 64, 64, false), (true, 128, 128, false), (true, 256, 128, false), (false, 128, 128, true)] {
            let tokens = 5, heads = 3
            var x = random(tokens * heads * headDim, &rng)
            let positions: [Int32] = [0, 1, 17, 1000, 8191]
            let ff: [Float]? = factors ? (0..<(rotDim / 2)).map { 1 + Float($0) / 8 } : nil
            let gx = try upload(x), gp = try uploadInts(positions), gf = try ff.map(upload)
            positions.withUnsafeBufferPointer { pp in
                x.withUnsafeMutableBufferPointer { xp in
                    if let ff {
                        ff.withUnsafeBufferPointer { f in
                            Ops.rope(xp.baseAddress!, tokens: tokens, heads: heads, headDim: headDim, rotDim: rotDim, positions: pp.baseAddress!,
                                     base: 500_000, scale: 1, freqFactors: f.baseAddress, neox: neox)
                        }
                    } else {
                        Ops.rope(xp.baseAddress!, tokens: tokens, heads: heads, headDim: headDim, rotDim: rotDim, positions: pp.baseAddress!,
                                 base: 10_000, scale: 1, neox: neox)
                    }
                }
            }
            try GPUOps.rope(gpu, x: gx.pointer, heads: heads, positions: gp.pointer, tokens: tokens, headDim: headDim, rotDim: rotDim,
                            base: factors ? 500_000 : 10_000, scale: 1, freqFactors: gf?.pointer, neox: neox)
            record("rope \(neox ? "neox" : "normal")\(factors ? " +freq factors" : "")", "\(tokens) × \(heads) × \(headDim) (rot \(rotDim))",
                   normalizedError(try gpu.download(gx.pointer, count: x.count), x), 1e-5)
            // Queries and keys in one launch: a second tensor of 2 heads rotated alongside.
            var k2 = random(tokens * 2 * headDim, &rng)
            let gq = try upload(random(tokens * heads * headDim, &rng)), gk = try upload(k2)
            try GPUOps.rope(gpu, x: gq.pointer, heads: heads, x2: gk.pointer, heads2: 2, positions: gp.pointer, tokens: tokens,
                            headDim: headDim, rotDim: rotDim, base: 10_000, scale: 1, freqFactors: nil, neox: neox)
            positions.withUnsafeBufferPointer { pp in
                k2.withUnsafeMutableBufferPointer {
                    Ops.rope($0.baseAddress!, tokens: tokens, heads: 2, headDim: headDim, rotDim: rotDim, positions: pp.baseAddress!,
                             base: 10_000, scale: 1, neox: neox)
                }
            }
            record("rope, second tensor of the launch", "\(tokens) × 2 × \(headDim)", normalizedError(try gpu.download(gk.pointer, count: k2.count), k2), 1e-5)
            // rope + KV store in one launch = rope, then store_kv (queries, keys and both caches bit for bit).
            let q3 = random(tokens * heads * headDim, &rng), k3 = random(tokens * 2 * headDim, &rng), v3 = random(tokens * 2 * headDim, &rng)
            let zeros = [Float](repeating: 0, count: 8192 * 2 * headDim / 2)
            var results: [[[Float]]] = []
            for fused in [false, true] {
                let dq = try upload(q3), dk = try upload(k3), dv = try upload(v3), kc = try upload(zeros), vc = try upload(zeros)
                if fused {
                    try GPUOps.ropeStore(gpu, q: dq.pointer, k: dk.pointer, v: dv.pointer, keyCache: kc.pointer, valueCache: vc.pointer,
                                         positions: gp.pointer, tokens: tokens, heads: heads, kvHeads: 2, headDim: headDim, rotDim: rotDim,
                                         base: 10_000, scale: 1, freqFactors: gf?.pointer, neox: neox)
                } else {
                    try GPUOps.rope(gpu, x: dq.pointer, heads: heads, x2: dk.pointer, heads2: 2, positions: gp.pointer, tokens: tokens,
                                    headDim: headDim, rotDim: rotDim, base: 10_000, scale: 1, freqFactors: gf?.pointer, neox: neox)
                    try GPUOps.storeKV(gpu, keys: dk.pointer, values: dv.pointer, keyCache: kc.pointer, valueCache: vc.pointer,
                                       positions: gp.pointer, width: 2 * headDim, tokens: tokens)
                }
                results.append(try [(dq, q3.count), (dk, k3.count), (kc, zeros.count), (vc, zeros.count)].map { try gpu.download($0.0.pointer, count: $0.1) })
            }
            let same = zip(results[0], results[1]).allSatisfy { a, b in a.map(\.bitPattern) == b.map(\.bitPattern) }
            record("rope + KV store in one launch vs apart", "\(tokens) × \(heads)+2+2 × \(headDim) (rot \(rotDim))", same ? 0 : 1, 0)
        }

        // A decode step's q/k/v GEMV with rope and the KV store in its epilogue (mmv1r_q4_K) =
        // the q/k/v GEMV, then rope_store: queries, keys and both caches bit for bit (full and
        // partial rope, with and without frequency factors; position 37 of 64).
        for (rotDim, factors) in [(64, false), (32, true)] {
            // 4 608 columns: 72 sub-block pairs, so a lane's second preloaded pair and the loop after it run.
            let heads = 4, kvHeads = 2, headDim = 64, cols = 4608, capacity = 64, p: Int32 = 37
            let mq = try HostMatrix(.q4_K, rows: heads * headDim, cols: cols, rng: &rng)
            let mk = try HostMatrix(.q4_K, rows: kvHeads * headDim, cols: cols, rng: &rng)
            let mv = try HostMatrix(.q4_K, rows: kvHeads * headDim, cols: cols, rng: &rng)
            let dwq = try uploadBytes(mq.data, mq.bytes), dwk = try uploadBytes(mk.data, mk.bytes), dwv = try uploadBytes(mv.data, mv.bytes)
            let wq = DeviceMatrix(type: .q4_K, rows: heads * headDim, cols: cols, pointer: dwq.pointer)
            let wk = DeviceMatrix(type: .q4_K, rows: kvHeads * headDim, cols: cols, pointer: dwk.pointer)
            let wv = DeviceMatrix(type: .q4_K, rows: kvHeads * headDim, cols: cols, pointer: dwv.pointer)
            let dx = try upload(random(cols, &rng)), dp = try uploadInts([p])
            let freq = factors ? try upload((0..<(rotDim / 2)).map { 1 + Float($0) / 8 }) : nil
            let zeros = [Float](repeating: 0, count: capacity * kvHeads * headDim / 2)
            var results: [[[Float]]] = [], keptOutputs: [DeviceBuffer] = []
            let preloading = gpu.preloadPairs
            defer { gpu.preloadPairs = preloading }
            // Apart, then in one launch without and with the weights preloaded (mmv1rp1/2_q4_K).
            for (fusedRope, pre) in [(false, 0), (true, 0), (true, 1), (true, 2)] {
                gpu.preloadPairs = pre
                let act = try QuantizedActivationsGPU(gpu: gpu, n: cols, tokens: 1)
                // Outputs start as NaN and stay allocated, so rows a kernel failed to write show.
                let yq = try upload([Float](repeating: .nan, count: heads * headDim))
                let yk = try upload([Float](repeating: .nan, count: kvHeads * headDim))
                let yv = try upload([Float](repeating: .nan, count: kvHeads * headDim)), kc = try upload(zeros), vc = try upload(zeros)
                keptOutputs += [yq, yk, yv]
                if fusedRope {
                    try GPUOps.linearQKVRope(gpu, q: wq, k: wk, v: wv, x: dx.pointer, act: act, yq: yq.pointer, yk: yk.pointer, yv: yv.pointer,
                                             keyCache: kc.pointer, valueCache: vc.pointer, positions: dp.pointer, headDim: headDim,
                                             rotDim: rotDim, base: 10_000, scale: 1, freqFactors: freq?.pointer)
                } else {
                    try GPUOps.linearMany(gpu, [wq, wk, wv], x: dx.pointer, act: act, ys: [yq.pointer, yk.pointer, yv.pointer], tokens: 1)
                    try GPUOps.ropeStore(gpu, q: yq.pointer, k: yk.pointer, v: yv.pointer, keyCache: kc.pointer, valueCache: vc.pointer,
                                         positions: dp.pointer, tokens: 1, heads: heads, kvHeads: kvHeads, headDim: headDim, rotDim: rotDim,
                                         base: 10_000, scale: 1, freqFactors: freq?.pointer, neox: false)
                }
                results.append(try [(yq, heads * headDim), (yk, kvHeads * headDim), (kc, zeros.count), (vc, zeros.count)]
                    .map { try gpu.download($0.0.pointer, count: $0.1) })
            }
            for (i, pre) in [0, 1, 2].enumerated() {
                let same = zip(results[0], results[i + 1]).allSatisfy { a, b in a.map(\.bitPattern) == b.map(\.bitPattern) }
                record("q/k/v GEMV + rope + KV store in one launch" + (pre > 0 ? " (\(pre) pair(s) preloaded)" : "") + " vs apart",
                       "[\(heads)+\(kvHeads)+\(kvHeads) × \(headDim), \(cols)] (rot \(rotDim)\(factors ? ", freq factors" : ""))", same ? 0 : 1, 0)
            }
        }

        // Gated activations, elementwise.
        for act in [GPUOps.Activation.silu, .gelu, .geluTable] {
            let n = 1000 * 3 + 7
            var g = random(n, &rng, scale: 6), u = random(n, &rng)
            g[0] = -10; g[1] = 10; g[2] = -12; g[3] = 11; u[0] = 1
            let ref = (0..<n).map { i -> Float in
                switch act {
                case .silu: return Ops.silu(g[i]) * u[i]
                case .gelu: return Ops.geluTanh(g[i]) * u[i]
                case .geluTable: return Ops.geluTable(g[i]) * u[i]
                }
            }
            let dg = try upload(g), du = try upload(u)
            try GPUOps.glu(gpu, gate: dg.pointer, up: du.pointer, count: n, activation: act)
            record("glu \(act)", "\(n)", normalizedError(try gpu.download(dg.pointer, count: n), ref), 1e-6)
        }
        do {
            let n = 4097
            let a = random(n, &rng), b = random(n, &rng), bias = random(31, &rng)
            let da = try upload(a), db = try upload(b)
            try GPUOps.add(gpu, x: da.pointer, y: db.pointer, count: n)
            record("add", "\(n)", normalizedError(try gpu.download(da.pointer, count: n), zip(a, b).map { $0 + $1 }), 0)
            let dc = try upload(Array(a[0..<(31 * 5)])), dbias = try upload(bias)
            try GPUOps.addBias(gpu, y: dc.pointer, bias: dbias.pointer, n: 31, rows: 5)
            record("add_bias", "5 × 31", normalizedError(try gpu.download(dc.pointer, count: 155), (0..<155).map { a[$0] + bias[$0 % 31] }), 0)
            let dx = try upload(Array(a[0..<(31 * 5)])), dy = try upload(Array(b[0..<(31 * 5)])), dgate = try upload(Array(bias[0..<5]))
            try GPUOps.addGated(gpu, x: dx.pointer, y: dy.pointer, gate: dgate.pointer, n: 31, rows: 5)
            record("add_gated (shared expert)", "5 × 31", normalizedError(try gpu.download(dx.pointer, count: 155),
                                                                           (0..<155).map { a[$0] + b[$0] * (1 / (1 + exp(-bias[$0 / 31]))) }), 1e-6)
            let ds = try upload(a)
            try GPUOps.softcap(gpu, x: ds.pointer, cap: 0.5, count: n)
            record("softcap", "\(n)", normalizedError(try gpu.download(ds.pointer, count: n), a.map { 0.5 * tanhf($0 / 0.5) }), 1e-6)
        }

        // Argmax with ties (the first index wins).
        do {
            let rows = 3, n = 49_157
            var x = random(rows * n, &rng)
            x[0 * n + 40_000] = 9; x[0 * n + 40_001] = 9
            x[1 * n + 5] = 7
            x[2 * n + n - 1] = 8
            let dx = try upload(x), dout = try gpu.allocator.allocate(rows * 4)
            try GPUOps.argmax(gpu, x: dx.pointer, rows: rows, n: n, out: dout.pointer)
            let got = try downloadInts(dout.pointer, rows)
            record("argmax", "\(rows) × \(n)", got == [40_000, 5, Int32(n - 1)] ? 0 : 1, 0)
            // Two passes (slices, then a pick among them): ties across slices, a row of −inf.
            var y = x
            y[0 * n + 40_000] = 8; y[0 * n + 44_000] = 9  // 9 at 40 001 (slice 52) and 44 000 (slice 57): the first
            y[1 * n + 769] = 7                              // the tie at 5 (slice 0) against slice 1
            y[1 * n + 3 * 769 + 2] = .nan                   // a NaN never wins
            y[0 * n + 3 * 769] = 9                          // 9 in slice 3 (warp 0 of the pick) beats 40 001 and 44 000 (warp 1)
            for i in 0..<n { y[2 * n + i] = -.infinity }
            let dy = try upload(y), scratch = try gpu.allocator.allocate(GPUOps.argmaxScratchBytes(rows: rows))
            try GPUOps.argmax(gpu, x: dy.pointer, rows: rows, n: n, out: dout.pointer, scratch: scratch.pointer)
            let two = try downloadInts(dout.pointer, rows)
            record("argmax in two passes", "\(rows) × \(n), \(GPUOps.argmaxSlices) slices, ties across slices and warps, NaN",
                   two == [Int32(3 * 769), 5, Int32.max] ? 0 : 1, 0)
        }

        // Attention over an f16 cache: decode and prefill, GQA, windows, head dims 64–256 (192:
        // DeepSeek's MLA with attn_kv_b, kvHeads = heads, on the generic kernels).
        for (tokens, start, heads, kvHeads, headDim, window) in [(1, 300, 8, 2, 64, 0), (1, 4000, 32, 8, 128, 0), (37, 20, 4, 1, 256, 0),
                                                                  (64, 0, 9, 3, 64, 0), (5, 40, 4, 1, 256, 16), (1, 1000, 4, 4, 128, 512),
                                                                  (1, 5, 4, 2, 128, 0), (200, 0, 8, 2, 128, 0), (70, 30, 8, 8, 128, 20),
                                                                  (33, 500, 4, 2, 64, 0), (40, 9, 3, 1, 256, 0),
                                                                  (1, 700, 16, 16, 192, 0), (24, 40, 2, 2, 192, 0), (70, 10, 3, 3, 192, 0),
                                                                  (3, 31, 9, 3, 64, 0), (1, 1023, 32, 8, 128, 0), (2, 100, 12, 4, 32, 0),
                                                                  (9, 60, 6, 2, 128, 25), (2, 77, 6, 3, 96, 0), (1, 150, 5, 5, 160, 40)] {
            let ctx = start + tokens, kvw = kvHeads * headDim
            let q = random(tokens * heads * headDim, &rng)
            let kf = random(ctx * kvw, &rng).map { halfToFloat(floatToHalf($0)) }
            let vf = random(ctx * kvw, &rng).map { halfToFloat(floatToHalf($0)) }
            let scale = 1 / Float(headDim).squareRoot()
            var ref = [Float](repeating: 0, count: tokens * heads * headDim)
            for t in 0..<tokens {
                let p = start + t, lo = window > 0 ? max(0, p - window + 1) : 0
                for h in 0..<heads {
                    let kh = h / (heads / kvHeads)
                    var scores = [Double](repeating: 0, count: p - lo + 1)
                    for k in lo...p {
                        var s = 0.0
                        for i in 0..<headDim { s += Double(q[(t * heads + h) * headDim + i]) * Double(kf[k * kvw + kh * headDim + i]) }
                        scores[k - lo] = s * Double(scale)
                    }
                    let mx = scores.max()!
                    let e = scores.map { exp($0 - mx) }, sum = e.reduce(0, +)
                    for i in 0..<headDim {
                        var a = 0.0
                        for k in lo...p { a += e[k - lo] * Double(vf[k * kvw + kh * headDim + i]) }
                        ref[(t * heads + h) * headDim + i] = Float(a / sum)
                    }
                }
            }
            let toHalf = { (v: [Float]) in v.map { floatToHalf($0) } }
            let kh16 = toHalf(kf), vh16 = toHalf(vf)
            let dk = try kh16.withUnsafeBytes { try uploadBytes($0.baseAddress!, $0.count) }
            let dv = try vh16.withUnsafeBytes { try uploadBytes($0.baseAddress!, $0.count) }
            let dq = try upload(q), dp = try uploadInts((0..<tokens).map { Int32(start + $0) })
            let dout = try gpu.allocator.allocate(ref.count * 4)
            let visible = window > 0 ? min(window, ctx) : ctx
            let what = "\(tokens) q @ \(start), \(heads)/\(kvHeads) heads × \(headDim)\(window > 0 ? ", window \(window)" : "")"
            // Split-K over a bound of exactly the visible keys and over one 4× longer (as a decode
            // graph captured for a long cache runs it), then the f32 one-kernel form that
            // `attention` takes for short chunks (checked past its bound too), each over NaNs.
            let f32Was = gpu.shortAttentionF32, f32BoundWas = gpu.shortAttentionF32MaxKeys
            defer { gpu.shortAttentionF32 = f32Was; gpu.shortAttentionF32MaxKeys = f32BoundWas }
            gpu.shortAttentionF32MaxKeys = 1024
            for (form, f32, bound) in [("split-K", false, visible), ("split-K, cache 4× longer", false, 4 * visible + 64),
                                       ("f32, one kernel", true, visible)] {
                gpu.shortAttentionF32 = f32
                if f32 && !GPUOps.shortAttentionF32Applies(gpu, tokens: tokens, maxKeys: bound, headDim: headDim) { continue }
                let splits = GPUOps.attentionSplits(gpu: gpu, tokens: tokens, heads: heads, keys: bound, maxSplits: 64)
                let scratch = try gpu.allocator.allocate(GPUOps.attentionScratch(tokens: tokens, heads: heads, headDim: headDim, splits: splits) * 4)
                try [Float](repeating: .nan, count: ref.count).withUnsafeBytes {
                    try gpu.copy(toDevice: dout.pointer, from: $0.baseAddress!, bytes: $0.count)
                }
                try GPUOps.attention(gpu, q: dq.pointer, keys: dk.pointer, values: dv.pointer, positions: dp.pointer, out: dout.pointer,
                                     scratch: scratch.pointer, tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim, scale: scale,
                                     window: window, maxKeys: bound, splits: splits)
                record("attention \(form)", what + (f32 ? "" : ", \(splits) splits"),
                       normalizedError(try gpu.download(dout.pointer, count: ref.count), ref), 1e-5)
            }
            if GPUOps.tiledAttentionHeadDims.contains(headDim) {
                // Over NaNs, so that an output the kernel fails to write shows.
                try [Float](repeating: .nan, count: ref.count).withUnsafeBytes {
                    try gpu.copy(toDevice: dout.pointer, from: $0.baseAddress!, bytes: $0.count)
                }
                try GPUOps.attentionTiled(gpu, q: dq.pointer, keys: dk.pointer, values: dv.pointer, positions: dp.pointer, out: dout.pointer,
                                          tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim, scale: scale, window: window)
                record("attention tiled (prefill)", what, normalizedError(try gpu.download(dout.pointer, count: ref.count), ref), 1e-5)
            }

            // The CPU-numerics kernel against the CPU's own flash attention (same f16 steps).
            var cpu = [Float](repeating: 0, count: ref.count)
            let positions = (0..<tokens).map { Int32(start + $0) }
            kh16.withUnsafeBufferPointer { kp in vh16.withUnsafeBufferPointer { vp in q.withUnsafeBufferPointer { qp in
                positions.withUnsafeBufferPointer { pp in cpu.withUnsafeMutableBufferPointer { op in
                    Attention.flashF16(q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, out: op.baseAddress!, tokens: tokens,
                                       heads: heads, kvHeads: kvHeads, headDim: headDim, positions: pp.baseAddress!,
                                       window: window > 0 ? window : nil, scale: scale, pool: pool)
                } } } } }
            if tokens < 64 {
                let scores = try gpu.allocator.allocate(tokens * heads * visible * 4)
                try GPUOps.attentionCPUNumerics(gpu, q: dq.pointer, keys: dk.pointer, values: dv.pointer, positions: dp.pointer,
                                                out: dout.pointer, scores: scores.pointer, tokens: tokens, heads: heads, kvHeads: kvHeads,
                                                headDim: headDim, scale: scale, window: window, maxKeys: visible)
                let got = try gpu.download(dout.pointer, count: ref.count)
                record("attention CPU numerics vs CPU", what, normalizedError(got, cpu), 2e-4)
                // f16 accumulation over thousands of keys drifts from the exact result (by design).
                record("attention CPU numerics vs exact", what, normalizedError(got, ref), 3e-2)
            }
        }

        // Activation quantization equals the CPU's (the integer sums depend on it).
        for format in [ActivationFormat.q8_1, .q8_K] {
            let n = 1024, tokens = 3
            let x = random(n * tokens, &rng, scale: 4)
            let cpu = QuantizedActivations(format: format, n: n, rows: tokens)
            x.withUnsafeBufferPointer { cpu.quantize($0.baseAddress!) }
            let act = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: tokens)
            let dx = try upload(x)
            try GPUOps.quantize(gpu, x: dx.pointer, tokens: tokens, weightType: format == .q8_K ? .q4_K : .q4_1, act: act)
            try gpu.synchronize()
            var qs = [Int8](repeating: 0, count: n * tokens)
            try qs.withUnsafeMutableBytes { try gpu.copy(toHost: $0.baseAddress!, from: act.q.pointer, bytes: $0.count) }
            let mismatches = (0..<(n * tokens)).filter { qs[$0] != cpu.qs[$0] }.count
            record("quantize \(format)", "\(tokens) × \(n)", Double(mismatches) / Double(n * tokens), 0)
        }
        /// The first `count` bytes of a device buffer.
        func bytes(_ b: DeviceBuffer, _ count: Int) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            try out.withUnsafeMutableBytes { try gpu.copy(toHost: $0.baseAddress!, from: b.pointer, bytes: count) }
            return out
        }
        /// Whether two activation buffers hold different quantized data for `count` values.
        func activationsDiffer(_ a: QuantizedActivationsGPU, _ b: QuantizedActivationsGPU, count c: Int, k: Bool) throws -> Bool {
            if try bytes(a.q, c) != bytes(b.q, c) || bytes(a.ai, c / 32 * 4) != bytes(b.ai, c / 32 * 4) { return true }
            if k { return try bytes(a.ak, c / 256 * 4) != bytes(b.ak, c / 256 * 4) }
            return try bytes(a.ad, c / 32 * 4) != bytes(b.ad, c / 32 * 4) || bytes(a.as_, c / 32 * 4) != bytes(b.as_, c / 32 * 4)
        }
        // Norms with the quantization fused in: the same bytes as a norm, then `quantize`.
        for (rows, n, weightType) in [(1, 576, GGMLType.q4_1), (3, 640, .q8_0), (1, 4096, .q4_K), (2, 4096, .q6_K), (1, 2048, .q4_0)] {
            var x = random(rows * n, &rng, scale: 3), w = random(n, &rng)
            let y = random(rows * n, &rng)
            // Equal magnitudes of opposite sign as a block's largest value (q8_K keeps the first),
            // within one thread's four, across threads and across the two warps of a superblock.
            for (i, j) in [(1, 2), (5, 9), (3, 200)] where j < n {
                x[i] = 40; x[j] = -40; w[i] = 1; w[j] = 1
            }
            // (early: x read before the wait, as a decode step's add_norm does.)
            var kept: [DeviceBuffer] = []
            defer { _ = kept }
            for (add, early) in [(false, false), (true, false), (true, true)] {
                let dx1 = try upload(x), dx2 = try upload(x), dy = try upload(y), dw = try upload(w)
                let out1 = try gpu.allocator.allocate(rows * n * 4), out2 = try gpu.allocator.allocate(rows * n * 4)
                let fused = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: rows), plain = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: rows)
                let didFuse: Bool
                if early {
                    // As in a decode step: x written by a kernel two launches before the norm (x += d,
                    // then a kernel on other memory), so that a stale early read of x would show.
                    let dd = try upload(random(rows * n, &rng)), other = try upload(random(rows * n, &rng))
                    try gpu.synchronize()
                    for dx in [dx2, dx1] { try GPUOps.add(gpu, x: dx.pointer, y: dd.pointer, count: rows * n) }
                    try GPUOps.add(gpu, x: other.pointer, y: dd.pointer, count: rows * n)
                    kept += [dd, other]
                }
                if add {
                    didFuse = try GPUOps.addRMSNorm(gpu, x: dx1.pointer, y: dy.pointer, weight: dw.pointer, out: out1.pointer, rows: rows, n: n,
                                                    eps: 1e-6, quantize: (fused, weightType), xReady: early)
                    try GPUOps.addRMSNorm(gpu, x: dx2.pointer, y: dy.pointer, weight: dw.pointer, out: out2.pointer, rows: rows, n: n, eps: 1e-6)
                } else {
                    didFuse = try GPUOps.rmsNorm(gpu, x: dx1.pointer, weight: dw.pointer, out: out1.pointer, rows: rows, n: n, eps: 1e-6,
                                                 quantize: (fused, weightType))
                    try GPUOps.rmsNorm(gpu, x: dx2.pointer, weight: dw.pointer, out: out2.pointer, rows: rows, n: n, eps: 1e-6)
                }
                try GPUOps.quantize(gpu, x: out2.pointer, tokens: rows, weightType: weightType, act: plain)
                try gpu.synchronize()
                let differ = try bytes(out1, rows * n * 4) != bytes(out2, rows * n * 4) || bytes(dx1, rows * n * 4) != bytes(dx2, rows * n * 4)
                    || activationsDiffer(fused, plain, count: rows * n, k: GPUOps.isK(weightType))
                record("\(add ? "add + " : "")rms_norm + quantize fused\(early ? ", x before the wait" : "")", "\(rows) × \(n) for \(weightType.name)",
                       didFuse && !differ ? 0 : 1, 0)
            }
        }
        // GLU with the quantization fused in, likewise.
        for (tokens, n, weightType, activation) in [(1, 1536, GGMLType.q4_1, GPUOps.Activation.silu), (3, 2048, .q4_K, .geluTable),
                                                    (1, 14336, .q6_K, .silu), (2, 96, .q8_0, .gelu)] {
            var gate = random(tokens * n, &rng, scale: 3), up = random(tokens * n, &rng)
            // Equal products of opposite sign (q8_K keeps the first), within a warp and across warps.
            for (i, j) in [(1, 2), (5, 70), (3, 200)] where j < gate.count {
                gate[i] = 6; up[i] = 5; gate[j] = 6; up[j] = -5
            }
            let g1 = try upload(gate), g2 = try upload(gate), du = try upload(up)
            let fused = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: tokens), plain = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: tokens)
            let didFuse = try GPUOps.gluQuantized(gpu, gate: g1.pointer, up: du.pointer, tokens: tokens, n: n, activation: activation,
                                                  act: fused, weightType: weightType)
            try GPUOps.glu(gpu, gate: g2.pointer, up: du.pointer, count: tokens * n, activation: activation)
            try GPUOps.quantize(gpu, x: g2.pointer, tokens: tokens, weightType: weightType, act: plain)
            try gpu.synchronize()
            let c = tokens * n
            let differ = try bytes(g1, c * 4) != bytes(g2, c * 4) || activationsDiffer(fused, plain, count: c, k: GPUOps.isK(weightType))
            record("glu + quantize fused", "\(tokens) × \(n) \(activation) for \(weightType.name)", didFuse && !differ ? 0 : 1, 0)
        }
        // Attention with the output projection's quantization fused into its last kernel (both
        // kernels: split-K combine and CPU numerics), likewise.
        for (tokens, start, heads, kvHeads, headDim, weightType) in [(1, 200, 32, 8, 128, GGMLType.q4_K), (3, 40, 8, 2, 64, .q4_1),
                                                                     (1, 90, 4, 4, 256, .q8_0), (2, 7, 6, 2, 128, .q6_K)] {
            let ctx = start + tokens, kvw = kvHeads * headDim, n = heads * headDim
            let dk = try randomHalves(ctx * kvw, &rng).withUnsafeBytes { try uploadBytes($0.baseAddress!, $0.count) }
            let dv = try randomHalves(ctx * kvw, &rng).withUnsafeBytes { try uploadBytes($0.baseAddress!, $0.count) }
            let dq = try upload(random(tokens * n, &rng, scale: 2)), dp = try uploadInts((0..<tokens).map { Int32(start + $0) })
            let scores = try gpu.allocator.allocate(tokens * heads * ctx * 4)
            let splits = GPUOps.attentionSplits(gpu: gpu, tokens: tokens, heads: heads, keys: ctx, maxSplits: 64)
            let scratch = try gpu.allocator.allocate(GPUOps.attentionScratch(tokens: tokens, heads: heads, headDim: headDim, splits: splits) * 4)
            let f32Was = gpu.shortAttentionF32, f32BoundWas = gpu.shortAttentionF32MaxKeys
            defer { gpu.shortAttentionF32 = f32Was; gpu.shortAttentionF32MaxKeys = f32BoundWas }
            gpu.shortAttentionF32MaxKeys = 1024  // the one kernel at 201 keys too
            for (form, cpuNumerics, f32) in [("CPU numerics", true, false), ("split-K", false, false), ("f32, one kernel", false, true)] {
                gpu.shortAttentionF32 = f32
                let out1 = try gpu.allocator.allocate(tokens * n * 4), out2 = try gpu.allocator.allocate(tokens * n * 4)
                let fused = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: tokens), plain = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: tokens)
                var didFuse = false
                for (out, target) in [(out1, Optional((fused, weightType))), (out2, nil)] {
                    let d = cpuNumerics
                        ? try GPUOps.attentionCPUNumerics(gpu, q: dq.pointer, keys: dk.pointer, values: dv.pointer, positions: dp.pointer,
                                                          out: out.pointer, scores: scores.pointer, tokens: tokens, heads: heads, kvHeads: kvHeads,
                                                          headDim: headDim, scale: 0.125, window: 0, maxKeys: ctx, quantize: target)
                        : try GPUOps.attention(gpu, q: dq.pointer, keys: dk.pointer, values: dv.pointer, positions: dp.pointer, out: out.pointer,
                                               scratch: scratch.pointer, tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim,
                                               scale: 0.125, window: 0, maxKeys: ctx, splits: splits, quantize: target)
                    didFuse = didFuse || d
                }
                try GPUOps.quantize(gpu, x: out2.pointer, tokens: tokens, weightType: weightType, act: plain)
                try gpu.synchronize()
                let differ = try bytes(out1, tokens * n * 4) != bytes(out2, tokens * n * 4)
                    || activationsDiffer(fused, plain, count: tokens * n, k: GPUOps.isK(weightType))
                record("attention \(form) + quantize fused",
                       "\(tokens) q @ \(start), \(heads)/\(kvHeads) heads × \(headDim) for \(weightType.name)", didFuse && !differ ? 0 : 1, 0)
            }
        }
        // Short-context attention in one kernel (attn_short_*) against scores + sequential pass:
        // bit-equal outputs (over NaNs) and, when fused, activations; partial head groups
        // (9 heads at D 64), windows, several tokens, a chunk boundary at 32 keys, contexts of
        // many chunks. Both forms of the one kernel: the walk (SWIFTKT_CUDA_ATTN_SCAN=0) and the
        // factor scan (the default).
        let shortWas = gpu.shortAttention, short192Was = gpu.shortAttention192, scanWas = gpu.attentionScan
        gpu.shortAttention192 = true  // checked whether or not the decoder uses it (SWIFTKT_CUDA_SHORT_192)
        defer { gpu.shortAttention = shortWas; gpu.shortAttention192 = short192Was; gpu.attentionScan = scanWas }  // also when a check throws
        for (tokens, start, heads, kvHeads, headDim, window, weightType) in
            [(1, 0, 32, 8, 128, 0, GGMLType.q4_K), (1, 200, 32, 8, 128, 0, .q6_K), (1, 37, 9, 3, 64, 0, .q4_1), (3, 200, 4, 1, 256, 64, .q8_0),
             (1, 255, 16, 16, 32, 0, .q4_0), (5, 100, 8, 2, 128, 50, .q4_K), (1, 31, 12, 4, 64, 0, .q8_0), (2, 62, 3, 1, 256, 0, .q4_K),
             (1, 40, 16, 16, 192, 0, .q4_K), (3, 100, 4, 4, 192, 30, .q8_0), (1, 700, 32, 8, 128, 0, .q4_K), (2, 1100, 9, 3, 64, 0, .q8_0),
             (1, 300, 4, 2, 256, 0, .q4_K), (1, 2100, 16, 16, 32, 1500, .q4_0), (1, 130, 8, 2, 192, 0, .q4_K)] {
            let ctx = start + tokens, kvw = kvHeads * headDim, n = heads * headDim
            // A case the short kernel does not take would compare the two kernels with themselves.
            let applies = ctx <= GPUOps.shortAttentionMaxKeys && GPUOps.shortAttentionHeadDims.contains(headDim)
            let dk = try randomHalves(ctx * kvw, &rng).withUnsafeBytes { try uploadBytes($0.baseAddress!, $0.count) }
            let dv = try randomHalves(ctx * kvw, &rng).withUnsafeBytes { try uploadBytes($0.baseAddress!, $0.count) }
            let dq = try upload(random(tokens * n, &rng, scale: 2)), dp = try uploadInts((0..<tokens).map { Int32(start + $0) })
            let scores = try gpu.allocator.allocate(tokens * heads * ctx * 4)
            let nans = [Float](repeating: .nan, count: tokens * n)
            for quantized in [false, true] {
                var outs: [DeviceBuffer] = [], acts: [QuantizedActivationsGPU] = [], fusedBoth = true
                for (short, scan) in [(true, false), (true, true), (false, false)] {
                    gpu.shortAttention = short
                    gpu.attentionScan = scan
                    let out = try gpu.allocator.allocate(tokens * n * 4)
                    try nans.withUnsafeBytes { try gpu.copy(toDevice: out.pointer, from: $0.baseAddress!, bytes: $0.count) }
                    let act = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: tokens)
                    let fused = try GPUOps.attentionCPUNumerics(gpu, q: dq.pointer, keys: dk.pointer, values: dv.pointer, positions: dp.pointer,
                                                                out: out.pointer, scores: scores.pointer, tokens: tokens, heads: heads,
                                                                kvHeads: kvHeads, headDim: headDim, scale: 0.125, window: window, maxKeys: ctx,
                                                                quantize: quantized ? (act, weightType) : nil)
                    fusedBoth = fusedBoth && fused == (quantized && n % 256 == 0 && 256 % headDim == 0)
                    outs.append(out); acts.append(act)
                }
                try gpu.synchronize()
                let b = try gpu.download(outs[2].pointer, count: tokens * n)
                for (i, form) in [(0, "walk"), (1, "factor scan")] {
                    let a = try gpu.download(outs[i].pointer, count: tokens * n)
                    var differ = !applies || a.contains { $0.isNaN } || a.map(\.bitPattern) != b.map(\.bitPattern) || !fusedBoth
                    if quantized, n % 256 == 0, 256 % headDim == 0 {
                        differ = try differ || activationsDiffer(acts[i], acts[2], count: tokens * n, k: GPUOps.isK(weightType))
                    }
                    record("attention short (one kernel, \(form)) = two kernels", "\(tokens) q @ \(start), \(heads)/\(kvHeads) heads × \(headDim)"
                           + (window > 0 ? ", window \(window)" : "") + (quantized ? " + quantize for \(weightType.name)" : ""), differ ? 1 : 0, 0)
                }
            }
        }
        gpu.shortAttention = shortWas; gpu.shortAttention192 = short192Was; gpu.attentionScan = scanWas
        // The decode step's rope + KV store inside the short attention kernel against rope_store
        // then the kernel without: outputs, activations and the cache rows written at p, bit-equal
        // (checked whether or not the decoder uses it: SWIFTKT_CUDA_SHORT_ROPE).
        let ropeWas = (gpu.shortAttention, gpu.shortAttentionRope, gpu.attentionScan)
        gpu.shortAttention = true; gpu.shortAttentionRope = true
        defer { (gpu.shortAttention, gpu.shortAttentionRope, gpu.attentionScan) = ropeWas }  // also when a check throws
        for (start, heads, kvHeads, headDim, rotDim, neox, window, freqs, ropeScale) in
            [(0, 32, 8, 128, 128, false, 0, false, Float(1)), (100, 9, 3, 64, 64, false, 0, false, 1), (37, 4, 1, 256, 256, true, 16, false, 1),
             (200, 8, 2, 128, 64, true, 0, true, 4), (254, 16, 16, 32, 32, false, 0, false, 1), (5, 12, 4, 64, 32, true, 0, true, 1)] {
            let ctx = start + 1, kvw = kvHeads * headDim, n = heads * headDim
            let cacheK = randomHalves(ctx * kvw, &rng), cacheV = randomHalves(ctx * kvw, &rng)
            let q = random(n, &rng, scale: 2), k = random(kvw, &rng, scale: 2), v = random(kvw, &rng)
            let dp = try uploadInts([Int32(start)])
            let factors = try freqs ? upload((0..<(rotDim / 2)).map { _ in Float.random(in: 0.5...4, using: &rng) }) : nil
            let weightType = n % 256 == 0 ? GGMLType.q4_K : .q4_1
            var outs: [[Float]] = [], caches: [[UInt8]] = [], acts: [QuantizedActivationsGPU] = [], fusedFlags: [Bool] = []
            var kept: [DeviceBuffer] = []  // both runs' outputs stay allocated (no reuse of the first's bytes)
            let nans = [Float](repeating: .nan, count: n)
            for (inKernel, scan) in [(true, false), (true, true), (false, false)] {
                gpu.attentionScan = scan
                let dk = try cacheK.withUnsafeBytes { try uploadBytes($0.baseAddress!, $0.count) }
                let dv = try cacheV.withUnsafeBytes { try uploadBytes($0.baseAddress!, $0.count) }
                let dq = try upload(q), dkNew = try upload(k), dvNew = try upload(v)
                let out = try gpu.allocator.allocate(n * 4), scores = try gpu.allocator.allocate(heads * ctx * 4)
                try nans.withUnsafeBytes { try gpu.copy(toDevice: out.pointer, from: $0.baseAddress!, bytes: $0.count) }
                kept.append(out)
                let act = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: 1)
                let rope = GPUOps.RopeStore(k: dkNew.pointer, v: dvNew.pointer, rotDim: rotDim, base: 10_000, scale: ropeScale,
                                            freqFactors: factors?.pointer, neox: neox)
                if !inKernel {
                    try GPUOps.ropeStore(gpu, q: dq.pointer, k: dkNew.pointer, v: dvNew.pointer, keyCache: dk.pointer, valueCache: dv.pointer,
                                         positions: dp.pointer, tokens: 1, heads: heads, kvHeads: kvHeads, headDim: headDim, rotDim: rotDim,
                                         base: 10_000, scale: ropeScale, freqFactors: factors?.pointer, neox: neox)
                }
                fusedFlags.append(try GPUOps.attentionCPUNumerics(gpu, q: dq.pointer, keys: dk.pointer, values: dv.pointer, positions: dp.pointer,
                                                                  out: out.pointer, scores: scores.pointer, tokens: 1, heads: heads,
                                                                  kvHeads: kvHeads, headDim: headDim, scale: 0.125, window: window, maxKeys: ctx,
                                                                  quantize: (act, weightType), rope: inKernel ? rope : nil))
                try gpu.synchronize()
                outs.append(try gpu.download(out.pointer, count: n))
                caches.append(try bytes(dk, ctx * kvw * 2) + bytes(dv, ctx * kvw * 2))
                acts.append(act)
            }
            let k256 = GPUOps.isK(weightType)
            for (i, form) in [(0, ""), (1, ", factor scan")] {
                let actsDiffer = try fusedFlags[i] && activationsDiffer(acts[i], acts[2], count: n, k: k256)
                let differ = outs[i].contains { $0.isNaN } || outs[i].map(\.bitPattern) != outs[2].map(\.bitPattern) || caches[i] != caches[2]
                    || fusedFlags[i] != fusedFlags[2] || actsDiffer
                record("attention short + rope + KV store in one kernel\(form) = rope_store + kernel",
                       "1 q @ \(start), \(heads)/\(kvHeads) heads × \(headDim), rope \(rotDim)\(neox ? " neox" : "")"
                       + (freqs ? " freq factors" : "") + (ropeScale != 1 ? " scale \(Int(ropeScale))" : "") + (window > 0 ? ", window \(window)" : ""),
                       differ ? 1 : 0, 0)
            }
            _ = kept
        }
        (gpu.shortAttention, gpu.shortAttentionRope, gpu.attentionScan) = ropeWas
        try mlaChecks(gpu: gpu, rng: &rng, record: record)
        try samplingChecks(gpu: gpu, rng: &rng, record: record)
        try marlinChecks(gpu: gpu, rng: &rng, pool: pool, record: record)
        return results
    }

    /// Times the decode kernels on model-sized shapes; the first entry is the device-to-device
    /// copy bandwidth the others are compared with.
    public static func perf(gpu: GPU, iterations: Int = 50, progress: (OpsPerfResult) -> Void = { _ in }) throws -> [OpsPerfResult] {
        try gpu.makeCurrent()
        var out: [OpsPerfResult] = []
        let start = try gpu.driver.makeEvent(), end = try gpu.driver.makeEvent()
        func time(_ body: () throws -> Void) throws -> Double {
            try body()  // warm-up
            try gpu.driver.record(start, on: gpu.stream)
            for _ in 0..<iterations { try body() }
            try gpu.driver.record(end, on: gpu.stream)
            try gpu.driver.synchronize(event: end)
            return Double(try gpu.driver.elapsed(from: start, to: end)) * 1000 / Double(iterations)
        }
        // Copy bandwidth: read + write of 1 GiB.
        let n = 1 << 30
        let a = try gpu.allocator.allocate(n), b = try gpu.allocator.allocate(n)
        let us = try time { try gpu.driver.copyAsync(device: b.pointer, from: a.pointer, bytes: n, stream: gpu.stream) }
        let copy = OpsPerfResult(op: "device copy (read + write)", shape: "1 GiB", microseconds: us, bytes: 2 * n)
        out.append(copy); progress(copy)

        var rng = SeededGenerator(seed: 3)
        for type in [GGMLType.q4_K, .q6_K, .q4_0, .q4_1, .q5_0, .q8_0, .f16] {
            for (rows, cols) in [(4096, 4096), (14336, 4096), (4096, 14336), (128_256, 4096)] {
                let bytes = type.byteCount(elements: cols) * rows
                // Random bytes are valid blocks for the timing (scales may be any f16; NaNs do not change the time).
                let host = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
                defer { host.deallocate() }
                let words = host.assumingMemoryBound(to: UInt32.self)
                for i in 0..<(bytes / 4) { words[i] = UInt32(truncatingIfNeeded: rng.next()) & 0x3BFF_3BFF }
                let dw = try gpu.allocator.allocate(bytes)
                try gpu.copy(toDevice: dw.pointer, from: host, bytes: bytes)
                let dx = try gpu.upload(random(cols, &rng)), dy = try gpu.allocator.allocate(rows * 4)
                let act = try QuantizedActivationsGPU(gpu: gpu, n: cols, tokens: 1)
                let m = DeviceMatrix(type: type, rows: rows, cols: cols, pointer: dw.pointer)
                let t = try time {
                    GPUOps.invalidate(act)
                    try GPUOps.linear(gpu, m, x: dx.pointer, act: act, y: dy.pointer, tokens: 1)
                }
                let r = OpsPerfResult(op: "linear \(type.name) (1 token)", shape: "[\(rows), \(cols)]", microseconds: t, bytes: bytes)
                out.append(r); progress(r)
            }
        }
        // Decode attention in f32 (`numerics: fast`), Llama-3-8B shape: split-K + combine over a
        // bound of the positions and of a 4 096-key cache (what a decode graph captured for a
        // long cache runs at a short position), and the one kernel, timed past its bound too
        // (what set shortAttentionF32MaxKeys).
        let f32Was = gpu.shortAttentionF32, f32BoundWas = gpu.shortAttentionF32MaxKeys
        defer { gpu.shortAttentionF32 = f32Was; gpu.shortAttentionF32MaxKeys = f32BoundWas }
        gpu.shortAttentionF32MaxKeys = .max
        for ctx in [64, 256, 512, 1024, 4096] {
            let heads = 32, kvHeads = 8, d = 128, cache = 4096
            let kv = try gpu.allocator.allocate(ctx * kvHeads * d * 2), vv = try gpu.allocator.allocate(ctx * kvHeads * d * 2)
            try gpu.driver.zero(kv.pointer, bytes: kv.bytes, stream: gpu.stream)
            try gpu.driver.zero(vv.pointer, bytes: vv.bytes, stream: gpu.stream)
            let dq = try gpu.upload(random(heads * d, &rng)), dp = try gpu.upload(ints: [Int32(ctx - 1)])
            let dout = try gpu.allocator.allocate(heads * d * 4)
            let most = GPUOps.attentionSplits(gpu: gpu, tokens: 1, heads: heads, keys: cache, maxSplits: 64)
            let scratch = try gpu.allocator.allocate(GPUOps.attentionScratch(tokens: 1, heads: heads, headDim: d, splits: most) * 4)
            var forms = [(false, ctx), (true, ctx)]
            if ctx < cache { forms.append((false, cache)) }
            for (f32, bound) in forms {
                gpu.shortAttentionF32 = f32
                let splits = GPUOps.attentionSplits(gpu: gpu, tokens: 1, heads: heads, keys: bound, maxSplits: 64)
                let t = try time {
                    try GPUOps.attention(gpu, q: dq.pointer, keys: kv.pointer, values: vv.pointer, positions: dp.pointer, out: dout.pointer,
                                         scratch: scratch.pointer, tokens: 1, heads: heads, kvHeads: kvHeads, headDim: d,
                                         scale: 0.088, window: 0, maxKeys: bound, splits: splits)
                }
                let op = f32 ? "attention decode, f32, one kernel"
                    : "attention decode (\(splits) splits\(bound > ctx ? ", cache of \(bound)" : ""))"
                let r = OpsPerfResult(op: op, shape: "32/8 heads × 128, \(ctx) positions", microseconds: t, bytes: 2 * ctx * kvHeads * d * 2)
                out.append(r); progress(r)
            }
        }
        gpu.shortAttentionF32 = f32Was; gpu.shortAttentionF32MaxKeys = f32BoundWas
        // Decode attention with the CPU's numerics (the default rules): the one-kernel short form
        // against scores + sequential pass, 64 to 4 096 positions (what set shortAttentionMaxKeys).
        let shortWas = gpu.shortAttention, scanWas = gpu.attentionScan
        defer { gpu.shortAttention = shortWas; gpu.attentionScan = scanWas }
        for ctx in [64, 256, 512, 1024, 4096] {
            let heads = 32, kvHeads = 8, d = 128
            let kv = try gpu.allocator.allocate(ctx * kvHeads * d * 2), vv = try gpu.allocator.allocate(ctx * kvHeads * d * 2)
            try gpu.driver.zero(kv.pointer, bytes: kv.bytes, stream: gpu.stream)
            try gpu.driver.zero(vv.pointer, bytes: vv.bytes, stream: gpu.stream)
            let dq = try gpu.upload(random(heads * d, &rng)), dp = try gpu.upload(ints: [Int32(ctx - 1)])
            let dout = try gpu.allocator.allocate(heads * d * 4), scores = try gpu.allocator.allocate(heads * ctx * 4)
            for (form, short, scan) in [("one kernel, walk", true, false), ("one kernel, scan", true, true), ("two kernels", false, false)] {
                gpu.shortAttention = short
                gpu.attentionScan = scan
                let t = try time {
                    // maxKeys at the bound lets the short kernel take every length here.
                    try GPUOps.attentionCPUNumerics(gpu, q: dq.pointer, keys: kv.pointer, values: vv.pointer, positions: dp.pointer,
                                                    out: dout.pointer, scores: scores.pointer, tokens: 1, heads: heads, kvHeads: kvHeads,
                                                    headDim: d, scale: 0.088, window: 0,
                                                    maxKeys: short ? min(ctx, GPUOps.shortAttentionMaxKeys) : ctx)
                }
                let r = OpsPerfResult(op: "attention decode, CPU numerics, \(form)",
                                      shape: "32/8 heads × 128, \(ctx) positions", microseconds: t, bytes: 2 * ctx * kvHeads * d * 2)
                out.append(r); progress(r)
            }
        }
        gpu.shortAttention = shortWas; gpu.attentionScan = scanWas
        // The decode step's small fused kernels on the 8B shape: add + norm + q8_K quantization
        // (a row of 4096) and GLU + q8_K quantization (14336). Launched back to back without
        // a graph, so the launch is part of the time.
        do {
            let n = 4096, ff = 14336
            let dx = try gpu.upload(random(n, &rng)), dy = try gpu.upload(random(n, &rng)), dw = try gpu.upload(random(n, &rng))
            let dout = try gpu.allocator.allocate(n * 4), act = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: 1)
            let tn = try time {
                _ = try GPUOps.addRMSNorm(gpu, x: dx.pointer, y: dy.pointer, weight: dw.pointer, out: dout.pointer, rows: 1, n: n,
                                          eps: 1e-6, quantize: (act, .q4_K), xReady: true)
            }
            let rn = OpsPerfResult(op: "add + rms_norm + quantize q8_K", shape: "1 × \(n)", microseconds: tn, bytes: 4 * n * 5)
            out.append(rn); progress(rn)
            let dg = try gpu.upload(random(ff, &rng)), du = try gpu.upload(random(ff, &rng))
            let actFF = try QuantizedActivationsGPU(gpu: gpu, n: ff, tokens: 1)
            let tg = try time {
                _ = try GPUOps.gluQuantized(gpu, gate: dg.pointer, up: du.pointer, tokens: 1, n: ff, activation: .silu, act: actFF, weightType: .q4_K)
            }
            let rg = OpsPerfResult(op: "glu + quantize q8_K", shape: "1 × \(ff)", microseconds: tg, bytes: 4 * ff * 3 + ff)
            out.append(rg); progress(rg)
        }
        // Small batches on q4_K: the 8-bit GEMV kernels (8 tokens per weight read), the f16
        // dequantization + cuBLAS GEMM, and the Marlin GEMM on the repacked weights.
        for (rows, cols) in [(4096, 4096), (14336, 4096), (4096, 14336)] {
            let type = GGMLType.q4_K
            let host = try HostMatrix(type, rows: rows, cols: cols, rng: &rng), bytes = host.bytes
            let dw = try gpu.allocator.allocate(bytes)
            try gpu.copy(toDevice: dw.pointer, from: host.data, bytes: bytes)
            let m = DeviceMatrix(type: type, rows: rows, cols: cols, pointer: dw.pointer)
            let (mm, kept) = try GPUOps.marlinRepacked(gpu, m)
            defer { _ = kept }
            let size = GPUOps.marlinBytes(rows: rows, cols: cols), repackedBytes = size.q + size.s
            let tokensMax = 64
            let dx = try gpu.upload(random(tokensMax * cols, &rng)), dy = try gpu.allocator.allocate(tokensMax * rows * 4)
            let x16 = try gpu.allocator.allocate(2 * tokensMax * cols), w16 = try gpu.allocator.allocate(2 * rows * cols)
            let partial = try gpu.allocator.allocate(max(1, GPUOps.marlinScratch(gpu: gpu, rows: rows, cols: cols, tokens: tokensMax)) * 4)
            let act = try QuantizedActivationsGPU(gpu: gpu, n: cols, tokens: tokensMax)
            for tokens in [2, 8, 16, 32, 64] {
                let shape = "[\(rows), \(cols)] × \(tokens) tok"
                let tm = try time {
                    try GPUOps.toF16(gpu, x: dx.pointer, y: x16.pointer, count: tokens * cols)
                    try GPUOps.linearMarlin(gpu, mm, x16: x16.pointer, y: dy.pointer, tokens: tokens, partial: partial.pointer)
                }
                let tv = try time {
                    GPUOps.invalidate(act)
                    try GPUOps.linear(gpu, m, x: dx.pointer, act: act, y: dy.pointer, tokens: tokens)
                }
                var entries = [("linear q4_K Marlin", tm, repackedBytes), ("linear q4_K 8-bit GEMV", tv, bytes)]
                if let blas = gpu.blas {
                    let tb = try time {
                        try GPUOps.linearGEMM(gpu, blas: blas, m, x: dx.pointer, y: dy.pointer, tokens: tokens, wScratch: w16.pointer,
                                              xScratch: x16.pointer)
                    }
                    entries.append(("linear q4_K f16 + cuBLAS", tb, bytes))
                }
                for (op, t, b) in entries {
                    let r = OpsPerfResult(op: op, shape: shape, microseconds: t, bytes: b)
                    out.append(r); progress(r)
                }
            }
        }
        // Sampling one row of Llama 3's 128,256 logits on the GPU (penalties off).
        for (name, temperature, topK) in [("greedy", Float(0), 40), ("top-k 40, T 0.8", 0.8, 40), ("top-k 1024, T 1", 1, 1024)] {
            let vocab = 128_256
            let dl = try gpu.upload(random(vocab, &rng, scale: 8))
            let sampler = try GPUSampler(gpu: gpu, vocabulary: vocab)
            var s = GPUSampling()
            s.temperature = temperature; s.topK = topK; s.topP = 0.95; s.minP = 0.05; s.draw = 0.5
            let t = try time { try sampler.enqueue(logits: dl.pointer, s) }
            let r = OpsPerfResult(op: "sampling on the GPU, \(name)", shape: "\(vocab) logits", microseconds: t, bytes: vocab * 4)
            out.append(r); progress(r)
        }
        return out
    }
}

// MARK: - End to end

public struct ModelComparison: Sendable {
    public let model: String
    /// ‖gpu − cpu‖ / ‖cpu‖ of the logits at each prompt position.
    public let logitErrors: [Double]
    /// Greedy tokens from the prompt, CPU path and GPU.
    public let cpuTokens: [Int32], gpuTokens: [Int32]
    /// Tokens generated alike before the first difference.
    public var agreeing: Int { zip(cpuTokens, gpuTokens).prefix { $0 == $1 }.count }
}

extension OpsCheck {
    /// The same seeded prompt through the CPU path (`--kernels quantized`) and the GPU (the
    /// default rules on a machine with one, rules/cuda.yaml): logits at every prompt position,
    /// then `generate` greedy tokens on each.
    public static func compare(modelAt path: String, promptTokens: Int = 24, generate: Int = 16, seed: UInt64 = 5,
                               gpuRules: String? = nil) throws -> ModelComparison {
        var cpuOptions = LoadOptions()
        cpuOptions.kernels = "quantized"
        cpuOptions.contextSize = promptTokens + generate + 1
        var gpuOptions = LoadOptions()
        gpuOptions.contextSize = cpuOptions.contextSize
        gpuOptions.rules = gpuRules
        let cpu = try LoadedModel(path: path, options: cpuOptions), gpu = try LoadedModel(path: path, options: gpuOptions)
        guard gpu.cuda != nil else { throw EngineError.invalidOption("\(path) does not run on the GPU here (\(gpu.rulesDescription))") }
        var rng = SeededGenerator(seed: seed)
        let vocab = UInt64(cpu.model.tokenEmbedding.rows)
        var prompt = (0..<promptTokens).map { _ in Int32(truncatingIfNeeded: rng.next() % vocab) }
        if let bos = cpu.tokenizer.bosID, cpu.tokenizer.addBOS { prompt[0] = bos }
        let cs = cpu.makeSession(), gs = gpu.makeSession()
        let cl = try cs.evaluate(prompt, mode: .all), gl = try gs.evaluate(prompt, mode: .all)
        let v = cpu.model.vocab
        let errors = (0..<promptTokens).map { t in normalizedError(Array(gl[(t * v)..<((t + 1) * v)]), Array(cl[(t * v)..<((t + 1) * v)])) }
        func greedy(_ s: Session, _ last: [Float]) throws -> [Int32] {
            var logits = last, out: [Int32] = []
            for _ in 0..<generate {
                let next = Int32(Sampler.argmax(logits))
                out.append(next)
                logits = try s.evaluate([next])
            }
            return out
        }
        return ModelComparison(model: (path as NSString).lastPathComponent, logitErrors: errors,
                               cpuTokens: try greedy(cs, Array(cl[((promptTokens - 1) * v)...])),
                               gpuTokens: try greedy(gs, Array(gl[((promptTokens - 1) * v)...])))
    }
}
