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
import CPUKernelsAMX
import Core
import Foundation
import Synchronization
#if os(Linux) && arch(x86_64)
import CPUKernelsAVX2
import CPUKernelsAVX512
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
            // ggml's x86 order (ggml_vec_dot_q4_1_q8_1 and siblings): per block, 8 integer lanes of
            // 4 consecutive products; each lane fused-multiply-added with d = dx·dy into its own
            // float accumulator; the 8 accumulators summed pairwise at the end (hsum_float_8); the
            // min terms (q4_1, q5_1) in a separate fused-multiply-add chain added last.
            let blocks = n / 32
            let ad = a.scales + r * blocks, asum = a.sums + r * blocks
            var acc = (Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0))
            var summs: Float = 0
            for b in 0..<blocks {
                let blk = w + b * type.typeSize
                let d = halfToFloat(blk.loadUnaligned(as: UInt16.self)) * ad[b]
                let x = aq + b * 32
                switch type {
                case .q4_0, .q4_1:
                    let qsOffset = type == .q4_1 ? 4 : 2, bias: Int8 = type == .q4_1 ? 0 : 8
                    for j in 0..<16 {
                        let byte = blk.load(fromByteOffset: qsOffset + j, as: UInt8.self)
                        q[j] = Int8(byte & 0xF) - bias
                        q[j + 16] = Int8(byte >> 4) - bias
                    }
                case .q5_0, .q5_1:
                    let hasMin = type == .q5_1
                    let qh = blk.loadUnaligned(fromByteOffset: hasMin ? 4 : 2, as: UInt32.self)
                    let qsOffset = hasMin ? 8 : 6
                    let bias: Int8 = hasMin ? 0 : 16
                    for j in 0..<16 {
                        let byte = blk.load(fromByteOffset: qsOffset + j, as: UInt8.self)
                        let h0 = UInt8((qh >> UInt32(j)) & 1) << 4
                        let h1 = UInt8((qh >> UInt32(j + 16)) & 1) << 4
                        q[j] = Int8((byte & 0xF) | h0) - bias
                        q[j + 16] = Int8((byte >> 4) | h1) - bias
                    }
                default:  // q8_0
                    for j in 0..<32 { q[j] = blk.load(fromByteOffset: 2 + j, as: Int8.self) }
                }
                if type == .q4_1 || type == .q5_1 {
                    summs.addProduct(halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self)), asum[b])
                }
                func lane(_ j: Int) -> Float {
                    var s: Int32 = 0
                    for k in 4 * j..<4 * j + 4 { s += Int32(q[k]) * Int32(x[k]) }
                    return Float(s)
                }
                acc.0.addProduct(d, lane(0)); acc.1.addProduct(d, lane(1))
                acc.2.addProduct(d, lane(2)); acc.3.addProduct(d, lane(3))
                acc.4.addProduct(d, lane(4)); acc.5.addProduct(d, lane(5))
                acc.6.addProduct(d, lane(6)); acc.7.addProduct(d, lane(7))
            }
            return ((acc.0 + acc.4) + (acc.2 + acc.6)) + ((acc.1 + acc.5) + (acc.3 + acc.7)) + summs
        case .q4_K, .q5_K:
            // ggml's x86 order for q4_K (the repacked q4_K_8x8 GEMV/GEMM that llama.cpp uses for
            // every q4_K matrix with a multiple of 8 rows): exact integer sums of the scaled quants
            // and of the mins, each fused-multiply-added into its own float accumulator with
            // (d or dmin)·d_activation, once per 64 elements for the activation rows that the GEMM
            // takes (whole groups of 4) and once per superblock for the rest; the min accumulator
            // subtracted at the end.
            let blocks = n / 256
            var acc: Float = 0, accMin: Float = 0
            for b in 0..<blocks {
                let blk = w + b * type.typeSize
                let ad = a.scales[r * blocks + b]
                let d = halfToFloat(blk.loadUnaligned(as: UInt16.self)) * ad
                let dmin = halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) * ad
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
                // The GEMM (rows of whole groups of 4 tokens) rounds per 64 elements, the GEMV per 256.
                let span = r < a.rows - a.rows % 4 ? 2 : 8
                for first in stride(from: 0, to: 8, by: span) {
                    var sumi: Int32 = 0, summ: Int32 = 0
                    for s in first..<first + span {
                        let (sc, m) = QuantK.scaleMin(blk, 4, s)
                        var dot: Int32 = 0
                        for i in 0..<32 { dot += Int32(q[s * 32 + i]) * Int32(x[s * 32 + i]) }
                        sumi += Int32(sc) * dot
                        summ += Int32(m) * Int32(bsums[2 * s] + bsums[2 * s + 1])
                    }
                    acc.addProduct(Float(sumi), d)
                    accMin.addProduct(Float(summ), dmin)
                }
            }
            return acc - accMin
        case .q6_K:
            // ggml's x86 order (ggml_vec_dot_q6_K_q8_K, AVX2): the unsigned 6-bit quants times the
            // activations into 8 integer lanes (lane j takes elements 4j…4j+3 of every group of 32,
            // times its sub-block scale), minus 32·(sc[2j]·bsum[2j] + sc[2j+1]·bsum[2j+1]) per lane;
            // each lane fused-multiply-added with d·d_activation into its float accumulator;
            // hsum_float_8 at the end. From 8 activation rows on, llama.cpp takes its tiled k-quant
            // matmul instead (ggml-cpu/tiled): per superblock y = fma(Σ lanes · d, d_activation, y) (GCC
            // fuses its intrinsic multiply and add).
            let blocks = n / 256
            var acc = [Float](repeating: 0, count: 8)
            var lanes = [Int32](repeating: 0, count: 8)
            var tiled: Float = 0
            for b in 0..<blocks {
                let blk = w + b * 210
                let d = a.scales[r * blocks + b] * halfToFloat(blk.loadUnaligned(fromByteOffset: 208, as: UInt16.self))
                for half in 0..<2 {
                    let ql = 64 * half, qh = 128 + 32 * half, out = 128 * half
                    for l in 0..<32 {
                        let l0 = blk.load(fromByteOffset: ql + l, as: UInt8.self)
                        let l1 = blk.load(fromByteOffset: ql + l + 32, as: UInt8.self)
                        let h = blk.load(fromByteOffset: qh + l, as: UInt8.self)
                        q[out + l] = Int8(l0 & 0xF | (h & 3) << 4)
                        q[out + l + 32] = Int8(l1 & 0xF | ((h >> 2) & 3) << 4)
                        q[out + l + 64] = Int8(l0 >> 4 | ((h >> 4) & 3) << 4)
                        q[out + l + 96] = Int8(l1 >> 4 | ((h >> 6) & 3) << 4)
                    }
                }
                let x = aq + b * 256
                let bsums = a.sums + r * (n / 16) + b * 16
                func sc(_ s: Int) -> Int32 { Int32(blk.load(fromByteOffset: 192 + s, as: Int8.self)) }
                for j in 0..<8 {
                    var lane: Int32 = 0
                    for g in 0..<8 {
                        var dot: Int32 = 0
                        for e in 32 * g + 4 * j..<32 * g + 4 * j + 4 { dot += Int32(q[e]) * Int32(x[e]) }
                        lane += sc((32 * g + 4 * j) / 16) * dot
                    }
                    lane -= 32 * (sc(2 * j) * Int32(bsums[2 * j]) + sc(2 * j + 1) * Int32(bsums[2 * j + 1]))
                    if a.rows >= 8 {
                        lanes[j] = lane
                    } else {
                        acc[j].addProduct(d, Float(lane))
                    }
                }
                if a.rows >= 8 {
                    // llama.cpp's tiled k-quant matmul (≥ 8 activation rows): the superblock's exact
                    // integer sum times d_weight, then fused-multiply-added with d_activation.
                    let total = lanes.reduce(0, &+)
                    tiled.addProduct(Float(total) * halfToFloat(blk.loadUnaligned(fromByteOffset: 208, as: UInt16.self)),
                                     a.scales[r * blocks + b])
                }
            }
            if a.rows >= 8 { return tiled }
            return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
        default:
            preconditionFailure("no integer dot product for \(type)")
        }
    }
}

extension Matmul {
    /// y[t, r] = Σ_i W[r, i] · x[t, i] with activations quantized to 8 bits (llama.cpp's numerics).
    /// Falls back to the float reference for weight types without an integer dot product.
    /// Four weight rows at a time in SIMD (QuantizedPanels.swift), bit-identical to `quantizedReference`.
    public static func quantized(_ w: WeightMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                 tokens: Int, pool: ThreadPool, isa: KernelISA = .best) {
        if (w.type == .f16 || w.type == .bf16 || w.type == .f32) && w.cols % 16 == 0 {
            floatWeights(w, x: x, y: y, tokens: tokens, pool: pool, isa: isa)
            return
        }
        guard QuantizedDot.supports(w.type), let format = ActivationFormat.for(w.type) else {
            reference(w, x: x, y: y, tokens: tokens, pool: pool)
            return
        }
        let act = QuantizedActivations(format: format, n: w.cols, rows: tokens)
        act.quantize(x, pool: pool)
        quantized([PreparedMatmul(w, act, y: y, tokens: tokens)], pool: pool, isa: isa)
    }

    /// F16, BF16 and F32 weights as llama.cpp multiplies them (its llamafile tinyBLAS path, taken
    /// for every batch size when the width is a multiple of 16): F16 / BF16 weights meet
    /// activations rounded to f16 / bf16 (their `vec_dot_type`), F32 weights the activations as
    /// they are; per (row, token) one 16-lane fma accumulator, reduced as `_mm512_reduce_add_ps`
    /// (`FusedMath.floatRows`). (With AVX512-BF16, llama.cpp's BF16 path uses `vdpbf16ps`
    /// instead, whose pairwise rounding this does not follow: we keep the AVX-512F order.)
    public static func floatWeights(_ w: WeightMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                    tokens: Int, pool: ThreadPool, isa: KernelISA = .best) {
        let type = w.type, n = w.cols
        precondition((type == .f16 || type == .bf16 || type == .f32) && n % 16 == 0, "\(type) [\(w.rows), \(n)]")
        let rounded = type != .f32
        let xr = UnsafeMutablePointer<Float>.allocate(capacity: rounded ? tokens * n : 0)
        defer { xr.deallocate() }
        if type == .f16 { for i in 0..<(tokens * n) { xr[i] = FusedMath.roundToHalf(x[i]) } }
        if type == .bf16 { for i in 0..<(tokens * n) { xr[i] = bf16ToFloat(floatToBF16(x[i])) } }
        let xs = UnsafeSendable(rounded ? UnsafePointer(xr) : x), ys = UnsafeSendable(y), data = UnsafeSendable(w.data)
        let rowCount = w.rows
        @Sendable func run(_ rows: Range<Int>, _ x: UnsafePointer<Float>, _ tokens: Int, _ y: UnsafeMutablePointer<Float>) {
            #if os(Linux) && arch(x86_64)
            if isa != .baseline {
                CPUKernelsAVX2.FusedMath.floatRows(data.pointer, type: type, n: n, rowCount: rowCount, rows: rows, x: x, tokens: tokens, y: y)
                return
            }
            #endif
            FusedMath.floatRows(data.pointer, type: type, n: n, rowCount: rowCount, rows: rows, x: x, tokens: tokens, y: y)
        }
        if rowCount <= 1024 && tokens >= 4 * pool.threadCount {
            // Few rows, many tokens (an MoE router over a prompt): the tokens are split instead,
            // so that each thread's share of x stays in its cache while every row block passes
            // over it (split by rows, every thread streams all of x once per row block). Each
            // (row, token) dot product is the same chain either way.
            pool.parallelFor(tokens) { ts in
                run(0..<rowCount, xs.pointer + ts.lowerBound * n, ts.count, ys.pointer + ts.lowerBound * rowCount)
            }
            return
        }
        pool.parallelFor(rowCount) { rows in run(rows, xs.pointer, tokens, ys.pointer) }
    }

    /// One matmul whose activations are already quantized: y [tokens, rows] = W · rows
    /// `firstRow ..< firstRow + tokens` of `act` (whose format must be W's `ActivationFormat`).
    public struct PreparedMatmul {
        public let w: WeightMatrix
        public let act: QuantizedActivations
        public let firstRow: Int
        public let tokens: Int
        public let y: UnsafeMutablePointer<Float>

        public init(_ w: WeightMatrix, _ act: QuantizedActivations, firstRow: Int = 0, y: UnsafeMutablePointer<Float>, tokens: Int) {
            precondition(QuantizedDot.supports(w.type) && ActivationFormat.for(w.type) == act.format && act.n == w.cols,
                         "\(w.type) [\(w.rows), \(w.cols)] with \(act.format) activations of \(act.n)")
            precondition(firstRow >= 0 && firstRow + tokens <= act.rows, "activation rows \(firstRow)..<\(firstRow + tokens) of \(act.rows)")
            self.w = w; self.act = act; self.firstRow = firstRow; self.tokens = tokens; self.y = y
        }
    }

    /// Several matmuls on quantized activations, all their panels in one parallel pass (one
    /// hand-off to the workers). Each result equals that of its own `quantized` call.
    /// Threads get equal shares of work, a panel of a job costing in proportion to its tokens
    /// (the routed experts of a chunk each have their own token count).
    public static func quantized(_ jobs: [PreparedMatmul], pool: ThreadPool, isa: KernelISA = .best, dynamic: Bool = dynamicShares) {
        quantized(jobs, pool: pool, isa: isa, dynamic: dynamic, tiles: .unit)
    }

    /// `quantized` with the AMX kernels of `isa` on the tile unit or on the software model of
    /// the tiles (tests, on any CPU).
    static func quantized(_ jobs: [PreparedMatmul], pool: ThreadPool, isa: KernelISA, dynamic: Bool, tiles: AMXTiles) {
        let runners = jobs.map { panelJob($0, isa: isa, tiles: tiles) }
        // On a NUMA host each node's threads run their node's slice of every job's panels (the
        // slice whose packed weights NUMATopology.place put on that node); one node: all panels.
        let nodes = pool.nodeThreads.count
        let slices = (0..<nodes).map { k in runners.map { ThreadPool.split($0.count, part: k, of: nodes) } }
        // Panel cost: the job's tokens plus one for decoding the panel's weights; per node, the
        // jobs' slices one after another.
        let costStart = slices.map { nodeSlices -> [Int] in
            var starts = [Int](repeating: 0, count: jobs.count + 1)
            for (i, job) in jobs.enumerated() { starts[i + 1] = starts[i] + nodeSlices[i].count * (job.tokens + 1) }
            return starts
        }
        func runShare(_ share: Range<Int>, node k: Int) {
            for (i, (job, runner)) in zip(jobs, runners).enumerated() {
                let per = job.tokens + 1, slice = slices[k][i]
                // Panels of this job's slice whose first cost unit lies in the share.
                let lo = max(0, (share.lowerBound - costStart[k][i] + per - 1) / per)
                let hi = min(slice.count, (share.upperBound - costStart[k][i] + per - 1) / per)
                if lo < hi { runner.run((slice.lowerBound + lo)..<(slice.lowerBound + hi)) }
            }
        }
        withExtendedLifetime(jobs) {
            if dynamic && pool.threadCount > 1 {
                // Threads take the next slice of their node's cost range as they finish the last
                // (about six per thread): a slow core delays its slice, not a sixteenth of the pass.
                let next = (0..<nodes).map { _ in SharedCounter() }
                pool.run { thread, _ in
                    let k = pool.nodeOfThread[thread], total = costStart[k][jobs.count]
                    let grain = max(1, total / (pool.nodeThreads[k].count * 6))
                    while true {
                        let start = next[k].value.add(grain, ordering: .relaxed).oldValue
                        if start >= total { return }
                        runShare(start..<min(total, start + grain), node: k)
                    }
                }
                return
            }
            pool.run { thread, _ in
                let k = pool.nodeOfThread[thread], members = pool.nodeThreads[k]
                let share = ThreadPool.split(costStart[k][jobs.count], part: thread - members.lowerBound, of: members.count)
                if !share.isEmpty { runShare(share, node: k) }
            }
        }
    }

    /// SWIFTKT_CPU_DYNAMIC=1: prepared matmuls hand out their panels in slices taken as threads
    /// finish (the same panels, the same results) instead of one contiguous share per thread.
    public static let dynamicShares = ProcessInfo.processInfo.environment["SWIFTKT_CPU_DYNAMIC"] == "1"

    /// Which kernel family runs a weight type on an ISA (and so which packed layout it needs).
    enum PanelKernel: Equatable {
        /// AVX-512 kernels on 8-row `PackedPanels`.
        case avx512Packed
        /// AVX2 kernels on 8-row `PackedPanels` (the 32-element block types).
        case avx2Packed
        /// AVX2 k-quant kernels on `KQuantLanePanels`.
        case avx2Lanes
        /// The 4-row SIMD panels straight on the GGUF rows, compiled for AVX2 or the baseline.
        case rows(avx2: Bool)
        /// AMX tiles on `KQuantLanePanels` (q4_K) for the tokens in whole groups of 4, two panels
        /// at a time; AVX2's lane kernel for the other tokens and an odd last panel.
        case amxLanes
    }

    /// Where `KernelISA.amx`'s tile instructions run.
    enum AMXTiles {
        /// The CPU's tile unit.
        case unit
        /// CPUKernelsAMX's software model of it (any CPU; for tests).
        case model
    }

    /// Calls of at least this many tokens (in whole groups of 4) take the AMX q4_K kernel under
    /// `KernelISA.amx`; fewer take `.tuned`'s kernels. From the H200 machine's 16-core Xeon host
    /// (session 12, `swiftkt kernels`, 16 threads): at 8 tokens AMX and AVX2's lane kernel tie
    /// (156 against 167 GOP/s on [1408, 2048], 398 against 351 on [4096, 2048]); from 16 tokens
    /// AMX wins, 1.2–2.1× (64 tokens: 975 against 538 and 1 240 against 730 GOP/s).
    public static let amxMinTokens = 16

    /// Calls of at least this many tokens take the AVX-512 kernels of the 32-element block types
    /// under `KernelISA.tuned` (fewer take AVX2's; see `panelKernel`).
    public static let tunedAVX512MinTokens = 2

    /// `tokens` matters only under `.tuned`, and never changes the packed layout a type needs
    /// (the AVX-512 and AVX2 kernels of the 32-element block types share `PackedPanels`).
    static func panelKernel(for type: GGMLType, isa: KernelISA, tokens: Int) -> PanelKernel {
        #if os(Linux) && arch(x86_64)
        if isa == .amx && type == .q4_K && tokens - tokens % 4 >= amxMinTokens { return .amxLanes }
        // `.tuned`, from the H100 machine's 16-core Sapphire Rapids host (BENCHMARKS.md,
        // "CPU kernels per ISA", 2026-12-06): AVX2's lane kernels beat the AVX-512 ones for q4_K
        // and q6_K at every batch (q4_K GEMV from DRAM, 16 threads: 86 against 40 GB/s; 64 tokens:
        // 1 592 against 698 GOP/s), and AVX2 wins or ties GEMV for the 32-element types (q8_0 123
        // against 97 GB/s), while AVX-512 wins their batches from 2 tokens on (q8_0 at 2 tokens
        // 164 against 233 µs, at 64 tokens 1 468 against 916 GOP/s).
        if isa == .tuned || isa == .amx {
            if QuantizedAVX2.supportsLanes(type) { return .avx2Lanes }
            if QuantizedAVX512.supports(type) && tokens >= tunedAVX512MinTokens { return .avx512Packed }
        }
        if isa == .avx512 && QuantizedAVX512.supports(type) { return .avx512Packed }
        if isa != .baseline && QuantizedAVX2.supports(type) { return .avx2Packed }
        if isa != .baseline && QuantizedAVX2.supportsLanes(type) { return .avx2Lanes }
        return .rows(avx2: isa != .baseline)
        #else
        return .rows(avx2: false)
        #endif
    }

    /// A prepared matmul as (panel count, runner over a range of its panels) for `isa`.
    static func panelJob(_ job: PreparedMatmul, isa: KernelISA, tiles: AMXTiles) -> (count: Int, run: (Range<Int>) -> Void) {
        let w = job.w, tokens = job.tokens, a = job.act
        let qs = UnsafePointer(a.qs + job.firstRow * a.n), scales = UnsafePointer(a.scales + job.firstRow * a.blocksPerRow)
        let sums = UnsafePointer(a.sums + job.firstRow * a.sumsPerRow)
        let ys = UnsafeSendable(job.y)
        switch panelKernel(for: w.type, isa: isa, tokens: tokens) {
        #if os(Linux) && arch(x86_64)
        case .avx512Packed:
            let packed = packedPanels(w)
            let per = QuantizedAVX512.rowsPerPanel
            return ((w.rows + per - 1) / per, { panels in
                QuantizedAVX512.run(packed, qs: qs, scales: scales, sums: sums, y: ys.pointer, tokens: tokens, panels: panels)
            })
        case .avx2Packed:
            let packed = packedPanels(w)
            return ((w.rows + 7) / 8, { panels in
                QuantizedAVX2.run(packed, qs: qs, scales: scales, sums: sums, y: ys.pointer, tokens: tokens, panels: panels)
            })
        case .avx2Lanes:
            let packed = lanePanels(w)
            let pairSums = UnsafePointer(a.pairSums + job.firstRow * (a.n / 64))
            // On AVX-512 VNNI machines q4_K's batches add with `vpdpbusd` (same bits; 142 → 168
            // GOP/s at 64 tokens on a Xeon). The GEMV stays AVX2's, which prefetches and was faster.
            if isa.hasAVX512 && w.type == .q4_K && tokens >= 4 {
                return ((w.rows + 7) / 8, { panels in
                    CPUKernelsAVX512.Q4KLanes.run(packed, qs: qs, scales: scales, pairSums: pairSums, y: ys.pointer, tokens: tokens,
                                                  panels: panels)
                })
            }
            return ((w.rows + 7) / 8, { panels in
                QuantizedAVX2.runLanes(packed, qs: qs, scales: scales, sums: sums, pairSums: pairSums, y: ys.pointer, tokens: tokens,
                                       panels: panels)
            })
        case .amxLanes:
            let packed = lanePanels(w)
            let pairSums = UnsafePointer(a.pairSums + job.firstRow * (a.n / 64))
            let panels = (w.rows + 7) / 8, whole = panels / 2, gemm = tokens - tokens % 4
            let n = w.cols, blocks = n / 256
            // AVX2's lane kernel on `range`, for tokens t0..<tokens (same bits as the tiles).
            func lanes(_ range: Range<Int>, from t0: Int) {
                QuantizedAVX2.runLanes(packed, qs: qs + t0 * n, scales: scales + t0 * blocks, sums: sums + t0 * (n / 16),
                                       pairSums: pairSums + t0 * (n / 64), y: ys.pointer + t0 * w.rows, tokens: tokens - t0, panels: range)
            }
            // Unit u: panels 2u and 2u + 1 (the last unit is one panel when their count is odd).
            return ((panels + 1) / 2, { units in
                let pairs = units.lowerBound..<min(units.upperBound, whole)
                if !pairs.isEmpty {
                    var args = swiftkt_amx_q4k_args(
                        panels: UnsafePointer(packed.data.assumingMemoryBound(to: UInt8.self)), panelBytes: packed.panelBytes,
                        octetBytes: packed.octetBytes, blocks: blocks, rows: w.rows, pairStart: pairs.lowerBound, pairEnd: pairs.upperBound,
                        qs: qs, scales: scales, pairSums: pairSums, tokens: gemm, y: ys.pointer)
                    let status = tiles == .unit ? swiftkt_amx_q4k(&args) : swiftkt_amx_q4k_emulated(&args)
                    // The tokens after the whole groups of 4; all of them when the tiles' scratch
                    // memory could not be allocated.
                    let rest = status == 0 ? gemm : 0
                    if rest < tokens { lanes(2 * pairs.lowerBound..<2 * pairs.upperBound, from: rest) }
                }
                if units.upperBound > whole { lanes(2 * whole..<panels, from: 0) }
            })
        case .rows(avx2: true):
            return ((w.rows + 3) / 4, { panels in
                CPUKernelsAVX2.QuantizedPanels.run(type: w.type, rows: w.rows, cols: w.cols, weights: w.data, rowBytes: w.rowBytes,
                                                   qs: qs, scales: scales, sums: sums, y: ys.pointer, tokens: tokens, panels: panels)
            })
        #endif
        default:
            return ((w.rows + 3) / 4, { panels in
                QuantizedPanels.run(type: w.type, rows: w.rows, cols: w.cols, weights: w.data, rowBytes: w.rowBytes,
                                    qs: qs, scales: scales, sums: sums, y: ys.pointer, tokens: tokens, panels: panels)
            })
        }
    }

    #if os(Linux) && arch(x86_64)
    /// `w` repacked for the AVX-512 kernels, built on first use; its file pages are then dropped
    /// (the packed copy replaces them in memory).
    static func packedPanels(_ w: WeightMatrix) -> PackedPanels {
        w.packed.value {
            let p = PackedPanels(type: w.type, rows: w.rows, cols: w.cols, weights: w.data, rowBytes: w.rowBytes)
            w.releaseMappedPages()
            placeOnNodes(p.data, panels: (w.rows + 7) / 8, panelBytes: p.panelBytes)
            return p
        }
    }

    /// Builds the layout `quantized` will use for `w` on `isa` now (kernels repack on first use
    /// otherwise); returns the bytes of the packed copy, 0 when `w` runs as it is.
    @discardableResult
    public static func prepare(_ w: WeightMatrix, isa: KernelISA = .best) -> Int {
        guard QuantizedDot.supports(w.type), ActivationFormat.for(w.type) != nil else { return 0 }
        switch panelKernel(for: w.type, isa: isa, tokens: 1) {
        case .avx512Packed, .avx2Packed: return packedPanels(w).panelBytes * ((w.rows + 7) / 8)
        case .avx2Lanes, .amxLanes: return lanePanels(w).panelBytes * ((w.rows + 7) / 8)
        case .rows: return 0
        }
    }

    /// A packed copy's panels moved, slice by slice, to the NUMA nodes whose threads compute
    /// them (`Matmul.quantized`); nothing on one node. (The AMX kernel's units are panel pairs,
    /// split a little differently: up to a panel at a slice's edge, 1 184 bytes per 256 columns,
    /// is read remotely.)
    static func placeOnNodes(_ data: UnsafeMutableRawPointer, panels: Int, panelBytes: Int) {
        let ids = NUMATopology.current.nodes.map(\.id)
        if ids.count > 1 { NUMATopology.place(data, units: panels, unitBytes: panelBytes, nodeIDs: ids) }
    }

    /// `w` repacked with rows in vector lanes for the AVX2 k-quant kernels, built on first use.
    static func lanePanels(_ w: WeightMatrix) -> KQuantLanePanels {
        w.packed.value {
            let p = KQuantLanePanels(type: w.type, rows: w.rows, cols: w.cols, weights: w.data, rowBytes: w.rowBytes)
            w.releaseMappedPages()
            placeOnNodes(p.data, panels: (w.rows + 7) / 8, panelBytes: p.panelBytes)
            return p
        }
    }
    #endif

    /// `quantized` for several matrices that read the same input (q/k/v, gate/up): the
    /// activations are quantized once and all panels run in one parallel pass (one hand-off to
    /// the workers instead of one per matrix). Results are those of separate `quantized` calls.
    public static func quantizedMany(_ ws: [WeightMatrix], x: UnsafePointer<Float>, ys: [UnsafeMutablePointer<Float>],
                                     tokens: Int, pool: ThreadPool, isa: KernelISA = .best, dynamic: Bool = dynamicShares) {
        let format = ws.first.flatMap { QuantizedDot.supports($0.type) ? ActivationFormat.for($0.type) : nil }
        guard let format, ws.allSatisfy({ $0.cols == ws[0].cols && QuantizedDot.supports($0.type) && ActivationFormat.for($0.type) == format })
        else {
            for (w, y) in zip(ws, ys) { quantized(w, x: x, y: y, tokens: tokens, pool: pool, isa: isa) }
            return
        }
        let act = QuantizedActivations(format: format, n: ws[0].cols, rows: tokens)
        act.quantize(x, pool: pool)
        quantized(zip(ws, ys).map { PreparedMatmul($0, act, y: $1, tokens: tokens) }, pool: pool, isa: isa, dynamic: dynamic)
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
    /// AVX-512 F/BW/DQ/VL + VNNI, the CPUKernelsAVX512 target (its types; AVX2 for the rest).
    case avx512
    /// On an AVX-512 machine, each matmul on whichever of the AVX-512 and AVX2 kernels measured
    /// faster for its weight type and batch (`QuantizedDot.panelKernel`); the default there.
    /// Every kernel gives the scalar reference's bits, so the choice never changes a result.
    case tuned
    /// `tuned`, with Intel AMX tiles for q4_K batches (`Matmul.amxMinTokens` and more, in whole
    /// groups of 4; CPUKernelsAMX); the default on CPUs with AMX-TILE and AMX-INT8 once Linux
    /// grants the tile data, unless SWIFTKT_AMX=0. Bit-identical to the reference like the others
    /// (`kernels --check` on the H200 machine's Sapphire Rapids host: 800 matmuls, 0 mismatches).
    case amx

    /// Whether this set runs the CPUKernelsAVX512 target's code (avx512, tuned, amx).
    public var hasAVX512: Bool { self == .avx512 || self == .tuned || self == .amx }

    /// The ISAs this machine can run.
    public static let available: [KernelISA] = {
        var isas: [KernelISA] = [.baseline]
        if cpuFlags.isSuperset(of: ["avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"]) { isas.append(.avx2) }
        if isas.contains(.avx2) && cpuFlags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni"]) {
            isas.append(contentsOf: [.avx512, .tuned])
            if ProcessInfo.processInfo.environment["SWIFTKT_AMX"] != "0" && swiftkt_amx_available() == 1 { isas.append(.amx) }
        }
        return isas
    }()
    /// The fastest available, unless SWIFTKT_ISA names another available one (baseline, avx2,
    /// avx512, tuned, amx) — for comparing kernels.
    public static let best: KernelISA = {
        if let name = ProcessInfo.processInfo.environment["SWIFTKT_ISA"],
           let isa = available.first(where: { "\($0)" == name }) { return isa }
        return available.last!
    }()

    static let cpuFlags: Set<String> = {
        #if os(Linux) && arch(x86_64)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " ").map(String.init))
        #else
        return []
        #endif
    }()
}

/// An atomic counter shared by a pool's threads.
final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
}
