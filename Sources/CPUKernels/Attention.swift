// Causal multi-head attention over a KV cache: an exact float reference and the f16
// flash-attention variant that reproduces llama.cpp's CPU numerics.
//
// Shapes:
//   q      [tokens, heads, headDim]      queries of the current chunk (already rotated), float
//   k, v   [capacity, kvHeads, headDim]  the layer's cache as IEEE half bits; rows 0…positions[t] valid
//   out    [tokens, heads, headDim]      float
// Grouped-query attention: query head h reads KV head h / (heads / kvHeads). A key at
// position p is visible to a query at position q when p ≤ q and, with a sliding window w,
// q − p < w (llama.cpp's standard SWA).
//
// Numerics follow llama.cpp's CPU flash attention (the path its CLI uses by default), so that
// greedy outputs match it token for token: the query is rounded to f16, each score is an f16·f16
// dot accumulated in float, scaled (and optionally soft-capped); the softmax is online (running
// maximum M and sum S) and the weighted sum of values is kept in an f16 accumulator, rescaled
// when the maximum grows: acc ← f16(acc·e^(M_old−M)), acc ← f16(acc + v·e^(s−M)).
import Core
import Foundation
#if os(Linux) && arch(x86_64)
import CPUKernelsAVX2
import CPUKernelsAVX512
#endif

public enum Attention {
    /// The flash-attention numerics above, fast and bit-identical to `flashF16Reference`: below
    /// 64 tokens one `FusedMath.flashQuery` per (token, KV head, part of its group of query
    /// heads), reading the f16 cache in place (the AVX-512 or AVX2 copy of FusedMath when the CPU
    /// has it, so that fused multiply-adds are instructions); from 64, the tiled path.
    public static func flashF16(q: UnsafePointer<Float>, k: UnsafePointer<UInt16>, v: UnsafePointer<UInt16>,
                                out: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, kvHeads: Int, headDim: Int,
                                positions: UnsafePointer<Int32>, window: Int?, scale: Float, softcap: Float? = nil,
                                pool: ThreadPool, isa: KernelISA = .best) {
        let group = heads / kvHeads
        let kvStride = kvHeads * headDim
        if tokens >= tiledThreshold && softcap == nil {
            // llama.cpp's tiled path: jobs of (KV head, block of 64 queries), each running the
            // KV head's group of query heads over tiles widened once. Later blocks see more keys:
            // jobs go round-robin over the threads, longest first.
            let blocks = (tokens + 63) / 64
            let qs = UnsafeSendable(q), ks = UnsafeSendable(k), vs = UnsafeSendable(v), os = UnsafeSendable(out)
            let ps = UnsafeSendable(positions)
            let jobs = (0..<(kvHeads * blocks)).sorted { ($0 % blocks, $1) > ($1 % blocks, $0) }
            pool.run { thread, threads in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 128 * headDim + 64 + group * 64 * (2 + headDim + 64))
                let firsts = UnsafeMutablePointer<Int>.allocate(capacity: 64), lasts = UnsafeMutablePointer<Int>.allocate(capacity: 64)
                defer { scratch.deallocate(); firsts.deallocate(); lasts.deallocate() }
                for job in Swift.stride(from: thread, to: jobs.count, by: threads).map({ jobs[$0] }) {
                    let kvh = job / blocks, t0 = (job % blocks) * 64, count = min(64, tokens - t0)
                    for i in 0..<count {
                        let pos = Int(ps.pointer[t0 + i])
                        lasts[i] = pos
                        firsts[i] = window.map { max(0, pos - $0 + 1) } ?? 0
                    }
                    let kvOffset = kvh * headDim
                    let args = (q: qs.pointer + (t0 * heads + kvh * group) * headDim, k: ks.pointer + kvOffset, v: vs.pointer + kvOffset,
                                out: os.pointer + (t0 * heads + kvh * group) * headDim)
                    #if os(Linux) && arch(x86_64)
                    // The same source compiled for AVX-512 (16-lane vectors in one register) or AVX2.
                    if isa.hasAVX512 {
                        CPUKernelsAVX512.FusedMath.flashTiled(q: args.q, qStride: heads * headDim, count: count, group: group,
                                                              firsts: firsts, lasts: lasts, k: args.k, v: args.v, kvStride: kvStride,
                                                              headDim: headDim, scale: scale, out: args.out, outStride: heads * headDim,
                                                              scratch: scratch)
                        continue
                    }
                    if isa != .baseline {
                        CPUKernelsAVX2.FusedMath.flashTiled(q: args.q, qStride: heads * headDim, count: count, group: group,
                                                            firsts: firsts, lasts: lasts, k: args.k, v: args.v, kvStride: kvStride,
                                                            headDim: headDim, scale: scale, out: args.out, outStride: heads * headDim,
                                                            scratch: scratch)
                        continue
                    }
                    #endif
                    FusedMath.flashTiled(q: args.q, qStride: heads * headDim, count: count, group: group, firsts: firsts, lasts: lasts,
                                         k: args.k, v: args.v, kvStride: kvStride, headDim: headDim, scale: scale,
                                         out: args.out, outStride: heads * headDim, scratch: scratch)
                }
            }
            return
        }
        // Prefill: widen the visible rows of K and V to float once (every query reads them);
        // decode: read the halves in place.
        var minFirst = Int.max, maxPos = 0
        for t in 0..<tokens {
            let p = Int(positions[t])
            maxPos = max(maxPos, p)
            minFirst = min(minFirst, window.map { max(0, p - $0 + 1) } ?? 0)
        }
        let widen = tokens > 1
        let rows = widen ? maxPos - minFirst + 1 : 0
        let kf = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rows * kvStride))
        let vf = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rows * kvStride))
        defer { kf.deallocate(); vf.deallocate() }
        if widen {
            let ks = UnsafeSendable(k + minFirst * kvStride), vs = UnsafeSendable(v + minFirst * kvStride)
            let kfs = UnsafeSendable(kf), vfs = UnsafeSendable(vf)
            pool.parallelFor(rows * kvStride) { range in
                for i in range { kfs.pointer[i] = halfToFloat(ks.pointer[i]); vfs.pointer[i] = halfToFloat(vs.pointer[i]) }
            }
        }
        // Row p of the source is at base + p·stride elements.
        let kBase = widen ? UnsafeRawPointer(kf - minFirst * kvStride) : UnsafeRawPointer(k)
        let vBase = widen ? UnsafeRawPointer(vf - minFirst * kvStride) : UnsafeRawPointer(v)
        let esize = widen ? 4 : 2
        let kb = UnsafeSendable(kBase), vb = UnsafeSendable(vBase), ps = UnsafeSendable(positions)
        decodeGroups(q: q, out: out, tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim, maxRows: maxPos + 1,
                     pool: pool) { t, kvh, _ in
            let pos = Int(ps.pointer[t])
            let first = window.map { max(0, pos - $0 + 1) } ?? 0
            return (kb.pointer + esize * kvh * headDim, vb.pointer + esize * kvh * headDim, [first, pos])
        } kernel: { q, count, k, v, ranges, out, scratch in
            flashQuery(isa: isa, q: q, heads: count, k: k, v: v, kvHalf: !widen, stride: kvStride, ranges: ranges,
                       headDim: headDim, scale: scale, softcap: softcap, out: out, scratch: scratch)
        }
    }

    /// Runs decode attention as jobs of (token, KV head, part of its group) over the pool: the
    /// heads of a part read each key and value row once. Parts hold up to four heads, fewer when
    /// there would be too few jobs to keep the threads busy. `rows(t, kvHead, part)` gives the
    /// job's key and value bases and its ranges (first, last pairs; at most `maxRows` rows).
    static func decodeGroups(q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, kvHeads: Int,
                             headDim: Int, maxRows: Int, pool: ThreadPool,
                             rows: @escaping (Int, Int, Int) -> (UnsafeRawPointer, UnsafeRawPointer, [Int]),
                             kernel: @escaping (UnsafePointer<Float>, Int, UnsafeRawPointer, UnsafeRawPointer, [Int],
                                                UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let group = heads / kvHeads
        let part = groupPart(group: group, jobsPerHead: tokens * kvHeads, threads: pool.threadCount)
        let parts = (group + part - 1) / part
        let qs = UnsafeSendable(q), os = UnsafeSendable(out)
        nonisolated(unsafe) let rows = rows, kernel = kernel
        pool.parallelFor(tokens * kvHeads * parts) { range in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: part * (2 * headDim + 3 * maxRows))
            defer { scratch.deallocate() }
            for job in range {
                let t = job / (kvHeads * parts), kvh = (job / parts) % kvHeads, h0 = kvh * group + (job % parts) * part
                let (k, v, ranges) = rows(t, kvh, job % parts)
                kernel(qs.pointer + (t * heads + h0) * headDim, Swift.min(part, (kvh + 1) * group - h0), k, v, ranges,
                       os.pointer + (t * heads + h0) * headDim, scratch)
            }
        }
    }

    /// `FusedMath.flashQuery` over `ranges` (first, last pairs) for `heads` query heads, in the
    /// copy of FusedMath compiled for `isa`.
    static func flashQuery(isa: KernelISA, q: UnsafePointer<Float>, heads: Int, k: UnsafeRawPointer, v: UnsafeRawPointer,
                           kvHalf: Bool, stride: Int, ranges: [Int], headDim: Int, scale: Float, softcap: Float?,
                           out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        ranges.withUnsafeBufferPointer { r in
            let rp = r.baseAddress!, n = r.count / 2
            #if os(Linux) && arch(x86_64)
            if isa.hasAVX512 {
                CPUKernelsAVX512.FusedMath.flashQuery(q: q, heads: heads, k: k, v: v, kvHalf: kvHalf, stride: stride, ranges: rp,
                                                      rangeCount: n, headDim: headDim, scale: scale, softcap: softcap, out: out,
                                                      scratch: scratch)
                return
            }
            if isa != .baseline {
                CPUKernelsAVX2.FusedMath.flashQuery(q: q, heads: heads, k: k, v: v, kvHalf: kvHalf, stride: stride, ranges: rp,
                                                    rangeCount: n, headDim: headDim, scale: scale, softcap: softcap, out: out,
                                                    scratch: scratch)
                return
            }
            #endif
            FusedMath.flashQuery(q: q, heads: heads, k: k, v: v, kvHalf: kvHalf, stride: stride, ranges: rp, rangeCount: n,
                                 headDim: headDim, scale: scale, softcap: softcap, out: out, scratch: scratch)
        }
    }

    /// Query heads a decode job takes together (they share each key and value row): up to four
    /// of a group, fewer when (token, KV head) pairs alone would leave threads idle.
    static func groupPart(group: Int, jobsPerHead: Int, threads: Int) -> Int {
        var part = Swift.min(group, 4)
        while part > 1 && jobsPerHead * ((group + part - 1) / part) < 2 * threads { part = (part + 1) / 2 }
        return part
    }

    /// x rounded to the nearest f16 value (ties to even), as a float.
    @inline(__always)
    public static func roundToHalf(_ x: Float) -> Float { FusedMath.roundToHalf(x) }

    /// The q·k dot product in ggml's order (see `FusedMath.dotGGMLF16`).
    public static func dotGGMLF16(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        FusedMath.dotGGMLF16(x, UnsafeRawPointer(y), n, yHalf: false)
    }

    /// The scalar yardstick of the f16 flash-attention numerics (one query at a time, f16
    /// widened on every use, the dot summed in order).
    public static func flashF16Reference(q: UnsafePointer<Float>, k: UnsafePointer<UInt16>, v: UnsafePointer<UInt16>,
                                 out: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, kvHeads: Int, headDim: Int,
                                 positions: UnsafePointer<Int32>, window: Int?, scale: Float, softcap: Float? = nil,
                                 pool: ThreadPool) {
        let group = heads / kvHeads
        let kvStride = kvHeads * headDim
        let qs = UnsafeSendable(q), ks = UnsafeSendable(k), vs = UnsafeSendable(v), os = UnsafeSendable(out)
        let ps = UnsafeSendable(positions)
        if tokens >= tiledThreshold && softcap == nil {
            pool.parallelFor(tokens * heads) { range in
                for job in range {
                    let t = job / heads, h = job % heads
                    let pos = Int(ps.pointer[t])
                    let kvOffset = (h / group) * headDim
                    tiledReferenceQuery(q: qs.pointer + (t * heads + h) * headDim, k: ks.pointer + kvOffset, v: vs.pointer + kvOffset,
                                        stride: kvStride, first: window.map { max(0, pos - $0 + 1) } ?? 0, last: pos,
                                        headDim: headDim, scale: scale, out: os.pointer + (t * heads + h) * headDim)
                }
            }
            return
        }
        pool.parallelFor(tokens * heads) { range in
            let qh = UnsafeMutablePointer<Float>.allocate(capacity: headDim)
            let acc = UnsafeMutablePointer<Float>.allocate(capacity: headDim)
            let kw = UnsafeMutablePointer<Float>.allocate(capacity: headDim)
            defer { qh.deallocate(); acc.deallocate(); kw.deallocate() }
            for job in range {
                let t = job / heads, h = job % heads
                let pos = Int(ps.pointer[t])
                let first = window.map { max(0, pos - $0 + 1) } ?? 0
                let qv = qs.pointer + (t * heads + h) * headDim
                for d in 0..<headDim { qh[d] = halfToFloat(floatToHalf(qv[d])); acc[d] = 0 }
                let kvOffset = (h / group) * headDim
                var m = -Float.infinity, sum: Float = 0
                for p in first...pos {
                    let kr = ks.pointer + p * kvStride + kvOffset
                    for d in 0..<headDim { kw[d] = halfToFloat(kr[d]) }
                    var s = dotGGMLF16(qh, kw, headDim) * scale
                    if let cap = softcap { s = cap * tanh(s / cap) }
                    var ms: Float = 1, w: Float = 1
                    if s > m {
                        ms = exp(m - s)
                        m = s
                        for d in 0..<headDim { acc[d] = halfToFloat(floatToHalf(acc[d] * ms)) }
                    } else {
                        w = exp(s - m)
                    }
                    let vr = vs.pointer + p * kvStride + kvOffset
                    for d in 0..<headDim { acc[d] = halfToFloat(floatToHalf(acc[d].addingProduct(halfToFloat(vr[d]), w))) }
                    sum = w.addingProduct(sum, ms)
                }
                let o = os.pointer + (t * heads + h) * headDim
                let inv = 1 / sum
                for d in 0..<headDim { o[d] = acc[d] * inv }
            }
        }
    }

    /// From this many queries per call llama.cpp switches to its tiled CPU flash attention
    /// (GGML_FA_TILE_Q); so do we.
    public static let tiledThreshold = 64

    /// One query of the tiled numerics (see `FusedMath.flashTiled`), scalar: the yardstick.
    static func tiledReferenceQuery(q: UnsafePointer<Float>, k: UnsafePointer<UInt16>, v: UnsafePointer<UInt16>, stride: Int,
                                    first: Int, last: Int, headDim: Int, scale: Float, out: UnsafeMutablePointer<Float>) {
        var acc = [Float](repeating: 0, count: headDim)
        var m = -Float.infinity, sum: Float = 0
        var tile = (first / 64) * 64
        while tile <= last {
            let from = max(first, tile), to = min(last, tile + 63)
            var probs = [Float](repeating: -.infinity, count: 64)
            for p in from...to {
                var s: Float = 0
                for d in 0..<headDim { s = s.addingProduct(halfToFloat(k[p * stride + d]), q[d]) }
                probs[p - tile] = s * scale
            }
            var tileMax = -Float.infinity
            for x in probs where x > tileMax { tileMax = x }
            let mNew = max(m, tileMax)
            if mNew > m {
                let ms = exp(m - mNew)
                for d in 0..<headDim { acc[d] *= ms }
                sum *= ms
            }
            m = mNew
            var total: Double = 0
            for c in 0..<4 {
                var chunk = SIMD16<Float>()
                for j in 0..<16 { chunk[j] = FusedMath.expGGML(probs[16 * c + j] - mNew) }
                for j in 0..<16 { probs[16 * c + j] = chunk[j] }
                total += Double(FusedMath.reduce16(chunk))
            }
            sum = Float(Double(sum) + total)
            for p in from...to {
                for d in 0..<headDim { acc[d] = acc[d].addingProduct(halfToFloat(v[p * stride + d]), probs[p - tile]) }
            }
            tile += 64
        }
        let inv: Float = sum == 0 ? 0 : 1 / sum
        for d in 0..<headDim { out[d] = acc[d] * inv }
    }

    /// Exact attention over a float cache: float dots, max-subtracted softmax, float sums.
    public static func reference(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                 out: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, kvHeads: Int, headDim: Int,
                                 positions: UnsafePointer<Int32>, window: Int?, scale: Float, softcap: Float? = nil,
                                 pool: ThreadPool) {
        let group = heads / kvHeads
        let kvStride = kvHeads * headDim
        let qs = UnsafeSendable(q), ks = UnsafeSendable(k), vs = UnsafeSendable(v), os = UnsafeSendable(out)
        let ps = UnsafeSendable(positions)
        var maxPos = 0
        for t in 0..<tokens { maxPos = max(maxPos, Int(positions[t])) }
        let scratchCount = maxPos + 1
        pool.parallelFor(tokens * heads) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
            defer { scores.deallocate() }
            for job in range {
                let t = job / heads, h = job % heads
                let pos = Int(ps.pointer[t])
                let first = window.map { max(0, pos - $0 + 1) } ?? 0
                let qv = qs.pointer + (t * heads + h) * headDim
                let kvOffset = (h / group) * headDim
                var m = -Float.infinity
                for p in first...pos {
                    var s = Matmul.dot(qv, ks.pointer + p * kvStride + kvOffset, headDim) * scale
                    if let cap = softcap { s = cap * tanh(s / cap) }
                    scores[p] = s
                    m = max(m, s)
                }
                var sum: Float = 0
                for p in first...pos { scores[p] = exp(scores[p] - m); sum += scores[p] }
                let o = os.pointer + (t * heads + h) * headDim
                for d in 0..<headDim { o[d] = 0 }
                for p in first...pos {
                    let w = scores[p] / sum
                    let vr = vs.pointer + p * kvStride + kvOffset
                    for d in 0..<headDim { o[d] += w * vr[d] }
                }
            }
        }
    }
}
