// The routed experts of an MoE layer on the CPU, straight on the GGUF weights (KTransformers'
// KExpertsCPU). The expert set of the whole chunk is resolved at once: the (token, slot) pairs
// are grouped by expert, and every expert the chunk uses runs one matmul over its tokens for
// each of gate, up and down (a decode step: one GEMV per selected expert). Each matmul splits
// its rows over the thread pool, so all cores work on every expert. The slot outputs are then
// weighted and added in slot order, as ggml's graph does (ggml_mul by the weights, then one
// ggml_add per slot).
//
//   ExpertsCPU           Matmul.quantized (8-bit activations, integer dot products) and
//                        MLPCPU's llama.cpp activation numerics; the default
//   ExpertsCPUReference  Matmul.reference (weight rows dequantized to float) and the float
//                        activation; the yardstick
import CPUKernels
import Foundation

public struct ExpertsCPU: ExpertsOperator {
    public let name: String
    /// Float numerics (true) or llama.cpp's 8-bit activations (false).
    public let exact: Bool
    let activation: MLPCPU
    /// The quantized path's temporaries, kept between calls (and layers): a prompt chunk's
    /// routed rows are tens of MiB, and fresh pages would be faulted in by every layer.
    let scratch = ExpertsScratch()

    public static let quantized = ExpertsCPU(exact: false)
    public static let reference = ExpertsCPU(exact: true)

    public init(exact: Bool) {
        self.exact = exact
        name = exact ? "ExpertsCPUReference" : "ExpertsCPU"
        activation = MLPCPU(geluTable: !exact)
    }

    public func prepare(_ w: WeightMatrix) -> Int { exact ? 0 : Matmul.prepare(w) }

    private func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ tokens: Int,
                        _ pool: ThreadPool) {
        if exact { Matmul.reference(w, x: x, y: y, tokens: tokens, pool: pool) }
        else { Matmul.quantized(w, x: x, y: y, tokens: tokens, pool: pool) }
    }

    public func run(_ e: ExpertWeights, x: UnsafePointer<Float>, routing r: ExpertRouting, out: UnsafeMutablePointer<Float>,
                    pool: ThreadPool) {
        let pairs = r.tokens * r.used
        guard pairs > 0 else { return }
        if !exact, let gateFormat = ActivationFormat.for(e.gate[0].type), let downFormat = ActivationFormat.for(e.down[0].type),
           QuantizedDot.supports(e.gate[0].type), QuantizedDot.supports(e.up[0].type), QuantizedDot.supports(e.down[0].type),
           ActivationFormat.for(e.up[0].type) == gateFormat {
            runQuantized(e, x: x, routing: r, out: out, pool: pool, gateFormat: gateFormat, downFormat: downFormat)
            return
        }
        let d = e.embedding, ff = e.feedForward, k = r.used
        let (start, order, _) = ExpertsCPU.groupByExpert(r, experts: e.count)
        var most = 0
        for id in 0..<e.count { most = max(most, start[id + 1] - start[id]) }

        let xs = UnsafeMutablePointer<Float>.allocate(capacity: most * d)
        let g = UnsafeMutablePointer<Float>.allocate(capacity: most * ff)
        let u = UnsafeMutablePointer<Float>.allocate(capacity: most * ff)
        let ys = UnsafeMutablePointer<Float>.allocate(capacity: most * d)
        let slots = UnsafeMutablePointer<Float>.allocate(capacity: pairs * d)
        defer { xs.deallocate(); g.deallocate(); u.deallocate(); ys.deallocate(); slots.deallocate() }

        for id in 0..<e.count where start[id + 1] > start[id] {
            let rows = start[id + 1] - start[id]
            for i in 0..<rows {
                (xs + i * d).update(from: x + (order[start[id] + i] / k) * d, count: d)
            }
            matmul(e.gate[id], xs, g, rows, pool)
            matmul(e.up[id], xs, u, rows, pool)
            activation.activate(gate: g, up: u, count: rows * ff, gelu: false)
            matmul(e.down[id], g, ys, rows, pool)
            for i in 0..<rows {
                (slots + order[start[id] + i] * d).update(from: ys + i * d, count: d)
            }
        }

        for t in 0..<r.tokens {
            let o = out + t * d
            let w0 = r.weights[t * k], s0 = slots + t * k * d
            for i in 0..<d { o[i] = w0 * s0[i] }
            for j in 1..<max(k, 1) {
                let w = r.weights[t * k + j], s = slots + (t * k + j) * d
                for i in 0..<d { o[i] += w * s[i] }
            }
        }
    }

    /// Counting sort of the flat slot indices (t · used + j) by expert: expert e's slots are rows
    /// start[e] ..< start[e + 1] of the expert-ordered list, row i holds slot order[i], and slot
    /// s sits at row position[s].
    public static func groupByExpert(_ r: ExpertRouting, experts: Int) -> (start: [Int], order: [Int], position: [Int]) {
        let pairs = r.tokens * r.used
        var start = [Int](repeating: 0, count: experts + 1)
        for i in 0..<pairs {
            let id = Int(r.ids[i])
            precondition(id >= 0 && id < experts, "expert id \(id) outside 0..<\(experts)")
            start[id + 1] += 1
        }
        for i in 0..<experts { start[i + 1] += start[i] }
        var fill = start
        var order = [Int](repeating: 0, count: pairs), position = [Int](repeating: 0, count: pairs)
        for i in 0..<pairs {
            let id = Int(r.ids[i])
            order[fill[id]] = i
            position[i] = fill[id]
            fill[id] += 1
        }
        return (start, order, position)
    }

    /// The quantized path: x quantized once; its rows gathered in expert order; every used
    /// expert's gate and up in one parallel pass, the activation, the intermediate rows quantized
    /// once, every down in a second pass; then the slots weighted and added in slot order. The
    /// same numbers as one `Matmul.quantized` per expert and matrix (quantization is per row).
    func runQuantized(_ e: ExpertWeights, x: UnsafePointer<Float>, routing r: ExpertRouting, out: UnsafeMutablePointer<Float>,
                      pool: ThreadPool, gateFormat: ActivationFormat, downFormat: ActivationFormat) {
        let d = e.embedding, ff = e.feedForward, k = r.used, pairs = r.tokens * r.used
        let (start, order, position) = ExpertsCPU.groupByExpert(r, experts: e.count)

        scratch.lock.lock(); defer { scratch.lock.unlock() }
        let profiled = ExpertsPhaseProfile.enabled && r.tokens == 1
        var marks: [UInt64] = profiled ? [DispatchTime.now().uptimeNanoseconds] : []
        func mark() { if profiled { marks.append(DispatchTime.now().uptimeNanoseconds) } }
        let xq = scratch.activations(0, gateFormat, n: d, rows: r.tokens)
        xq.quantize(x, rows: r.tokens, pool: pool)
        let xg = scratch.activations(1, gateFormat, n: d, rows: pairs)
        for i in 0..<pairs { xg.copyRow(order[i] / k, of: xq, to: i) }
        let g = scratch.floats(0, pairs * ff), u = scratch.floats(1, pairs * ff), ys = scratch.floats(2, pairs * d)
        mark()
        var jobs: [Matmul.PreparedMatmul] = []
        for id in 0..<e.count where start[id + 1] > start[id] {
            let rows = start[id + 1] - start[id]
            jobs.append(Matmul.PreparedMatmul(e.gate[id], xg, firstRow: start[id], y: g + start[id] * ff, tokens: rows))
            jobs.append(Matmul.PreparedMatmul(e.up[id], xg, firstRow: start[id], y: u + start[id] * ff, tokens: rows))
        }
        Matmul.quantized(jobs, pool: pool)
        mark()
        let gs = UnsafeSendable(g), us = UnsafeSendable(UnsafePointer(u)), act = activation
        let hq = scratch.activations(2, downFormat, n: ff, rows: pairs)
        // The activation and the down projection's quantization of each row in one pass (one
        // hand-off to the workers instead of two; each row's bytes as before).
        pool.parallelFor(pairs) { rows in
            act.activate(gate: gs.pointer + rows.lowerBound * ff, up: us.pointer + rows.lowerBound * ff, count: rows.count * ff, gelu: false)
            for r in rows { hq.quantizeRow(gs.pointer + r * ff, row: r) }
        }
        mark()
        jobs.removeAll(keepingCapacity: true)
        for id in 0..<e.count where start[id + 1] > start[id] {
            jobs.append(Matmul.PreparedMatmul(e.down[id], hq, firstRow: start[id], y: ys + start[id] * d, tokens: start[id + 1] - start[id]))
        }
        Matmul.quantized(jobs, pool: pool)
        mark()
        defer {
            if profiled {
                mark()
                var gateUp = 0, down = 0
                for id in 0..<e.count where start[id + 1] > start[id] {
                    gateUp += e.gate[id].byteCount + e.up[id].byteCount
                    down += e.down[id].byteCount
                }
                ExpertsPhaseProfile.add((1..<marks.count).map { marks[$0] - marks[$0 - 1] }, gateUpBytes: gateUp, downBytes: down)
            }
        }

        for t in 0..<r.tokens {
            let o = out + t * d
            let w0 = r.weights[t * k], s0 = ys + position[t * k] * d
            for i in 0..<d { o[i] = w0 * s0[i] }
            for j in 1..<max(k, 1) {
                let w = r.weights[t * k + j], s = ys + position[t * k + j] * d
                for i in 0..<d { o[i] += w * s[i] }
            }
        }
    }
}

/// Where a decode step's experts spend their time (SWIFTKT_PROFILE_EXPERTS=1): nanoseconds per
/// phase of `runQuantized` summed over one-token calls — quantize + gather, gate + up, activation
/// + quantization, down, weighted sum — and the bytes of the routed experts' gate + up and down
/// weights those calls read (their GGUF sizes), read and reset by the GPU decoder's profile.
public enum ExpertsPhaseProfile {
    public static let enabled = ProcessInfo.processInfo.environment["SWIFTKT_PROFILE_EXPERTS"] == "1"
    private static let lock = NSLock()
    nonisolated(unsafe) private static var sums = [UInt64](repeating: 0, count: 5)
    nonisolated(unsafe) private static var bytes = (gateUp: 0, down: 0)
    static func add(_ phases: [UInt64], gateUpBytes: Int, downBytes: Int) {
        lock.lock(); defer { lock.unlock() }
        for (i, v) in phases.enumerated() { sums[i] += v }
        bytes.gateUp += gateUpBytes; bytes.down += downBytes
    }
    /// The sums so far (nanoseconds of quantize, gate + up, activation, down, sum; bytes of the
    /// gate + up and the down weights read), zeroed.
    public static func take() -> (phases: [UInt64], gateUpBytes: Int, downBytes: Int) {
        lock.lock(); defer { lock.unlock() }
        let v = (sums, bytes.gateUp, bytes.down)
        sums = [UInt64](repeating: 0, count: 5); bytes = (0, 0)
        return v
    }
}

/// Buffers that grow to the largest call and are reused (guarded by `lock`).
final class ExpertsScratch: @unchecked Sendable {
    let lock = NSLock()
    private var floatBuffers: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []
    private var activationSlots: [QuantizedActivations?] = []

    deinit { for b in floatBuffers { b.pointer.deallocate() } }

    /// Float buffer `slot` of at least `count` floats.
    func floats(_ slot: Int, _ count: Int) -> UnsafeMutablePointer<Float> {
        while floatBuffers.count <= slot { floatBuffers.append((.allocate(capacity: 1), 1)) }
        if floatBuffers[slot].capacity < count {
            floatBuffers[slot].pointer.deallocate()
            floatBuffers[slot] = (.allocate(capacity: count), count)
        }
        return floatBuffers[slot].pointer
    }

    /// Quantized activations `slot` of this format and width with at least `rows` rows.
    func activations(_ slot: Int, _ format: ActivationFormat, n: Int, rows: Int) -> QuantizedActivations {
        while activationSlots.count <= slot { activationSlots.append(nil) }
        if let a = activationSlots[slot], a.format == format, a.n == n, a.rows >= rows { return a }
        let a = QuantizedActivations(format: format, n: n, rows: max(rows, activationSlots[slot].map { $0.n == n ? $0.rows : 0 } ?? 0))
        activationSlots[slot] = a
        return a
    }
}
