// The next token picked on the GPU from a logits row in device memory (KernelSource+Sampling
// has the kernels and their order of operations): only the token id comes back to the host.
import Foundation

/// One sampling step's parameters, as Engine's Sampler has them: the chain penalties → top-k →
/// top-p → min-p → temperature → draw. `temperature <= 0` is greedy (argmax after penalties).
public struct GPUSampling: Sendable {
    /// The largest top-k the GPU sampler takes (with temperature > 0).
    public static let maxTopK = 1024

    public var temperature: Float = 0
    /// Candidates kept by top-k, 1 ... maxTopK (ignored when greedy).
    public var topK = 40
    public var topP: Float = 1
    public var minP: Float = 0
    public var repeatPenalty: Float = 1
    public var frequencyPenalty: Float = 0
    public var presencePenalty: Float = 0
    /// (token, occurrences in the penalty window); empty when penalties are off.
    public var penalties: [(Int32, Int32)] = []
    /// The uniform draw in [0, 1) this step uses (from the host's seeded generator).
    public var draw: Float = 0

    public init() {}
}

/// Device scratch for sampling one row of up to `vocabulary` logits.
public final class GPUSampler: @unchecked Sendable {
    let gpu: GPU
    public let vocabulary: Int
    private let candidateKeys: DeviceBuffer, candidateIds: DeviceBuffer, result: DeviceBuffer
    private var penaltyBuffer: DeviceBuffer
    /// Page-locked: penalty ids and counts going up, [id, kept] coming back.
    private var pinned: UnsafeMutableRawPointer
    private var pinnedEntries: Int
    private var greedy = true
    static let maxSlices = 64

    public init(gpu: GPU, vocabulary: Int) throws {
        self.gpu = gpu; self.vocabulary = vocabulary
        let candidates = GPUSampler.maxSlices * GPUSampling.maxTopK
        candidateKeys = try gpu.allocator.allocate(max(candidates * 4, GPUOps.argmaxScratchBytes(rows: 1)))
        candidateIds = try gpu.allocator.allocate(candidates * 4)
        result = try gpu.allocator.allocate(8)
        pinnedEntries = 256
        penaltyBuffer = try gpu.allocator.allocate(pinnedEntries * 8)
        pinned = try gpu.driver.allocatePinned(pinnedEntries * 8 + 8)
    }

    deinit { try? gpu.driver.freePinned(pinned) }

    /// The number of slices step 1 splits a row of n into for top-k = k, and their length.
    static func slices(n: Int, k: Int) -> (count: Int, length: Int) {
        let count = max(1, min(maxSlices, n / max(2048, 4 * k)))
        return (count, (n + count - 1) / count)
    }

    /// Where the picked [id, kept] lands on the device (a chained decode step reads the id there).
    public var resultPointer: CUdeviceptr { result.pointer }

    /// Queues the sampling of `logits` (n = vocabulary floats; penalties are applied in place)
    /// on the stream; `pickedToken()` then waits and returns the id. With `copyTo` the [id, kept]
    /// words go to that page-locked slot instead (read it with `token(at:)` once the stream is
    /// past the copy).
    public func enqueue(logits: CUdeviceptr, _ s: GPUSampling, copyTo: UnsafeMutableRawPointer? = nil) throws {
        let n = vocabulary
        greedy = s.temperature <= 0
        if !s.penalties.isEmpty && (s.repeatPenalty != 1 || s.frequencyPenalty != 0 || s.presencePenalty != 0) {
            let m = s.penalties.count
            if m > pinnedEntries {
                let entries = max(m, 2 * pinnedEntries)
                let bigger = try gpu.driver.allocatePinned(entries * 8 + 8)
                try? gpu.driver.freePinned(pinned)
                pinned = bigger; pinnedEntries = entries
                penaltyBuffer = try gpu.allocator.allocate(pinnedEntries * 8)
            }
            let p = pinned.assumingMemoryBound(to: Int32.self)
            for (i, (t, c)) in s.penalties.enumerated() {
                guard t >= 0, Int(t) < n else { throw CUDAError.invalidArgument("penalized token \(t) outside the vocabulary of \(n)") }
                p[i] = t; p[m + i] = c
            }
            try gpu.driver.copyAsync(toDevice: penaltyBuffer.pointer, from: pinned, bytes: 8 * m, stream: gpu.stream)
            try gpu.launch("apply_penalties", grid: ((m + 255) / 256, 1, 1), block: 256,
                           [.pointer(logits), .pointer(penaltyBuffer.pointer), .pointer(penaltyBuffer.pointer + UInt64(4 * m)),
                            .int(Int32(m)), .float(s.repeatPenalty), .float(s.frequencyPenalty), .float(s.presencePenalty)])
        }
        if s.temperature <= 0 {
            // The candidates' buffer (64 × maxTopK floats) doubles as the two-pass argmax's scratch.
            try GPUOps.argmax(gpu, x: logits, rows: 1, n: n, out: result.pointer, scratch: candidateKeys.pointer)
        } else {
            let k = min(s.topK, n)
            guard k >= 1, k <= GPUSampling.maxTopK else {
                throw CUDAError.invalidArgument("GPU sampling takes top-k 1 ... \(GPUSampling.maxTopK), got \(s.topK)")
            }
            let (count, length) = GPUSampler.slices(n: n, k: k)
            try gpu.launch("sample_topk_slices", grid: (count, 1, 1), block: 1024,
                           [.pointer(logits), .int(Int32(n)), .int(Int32(length)), .int(Int32(k)),
                            .pointer(candidateKeys.pointer), .pointer(candidateIds.pointer)])
            try gpu.launch("sample_finish", grid: (1, 1, 1), block: 1024,
                           [.pointer(candidateKeys.pointer), .pointer(candidateIds.pointer), .int(Int32(count * k)), .int(Int32(k)),
                            .float(s.topP), .float(s.minP), .float(s.temperature), .float(s.draw), .pointer(result.pointer)])
        }
        try gpu.driver.copyAsync(toHost: copyTo ?? pinned + pinnedEntries * 8, from: result.pointer, bytes: 8, stream: gpu.stream)
    }

    /// The token id in a slot that `enqueue(copyTo:)` filled (a row of −inf or NaN leaves argmax
    /// without a pick: token 0, as the host's argmax).
    public func token(at slot: UnsafeRawPointer) -> Int32 {
        let t = slot.load(as: Int32.self)
        return t >= 0 && Int(t) < vocabulary ? t : 0
    }

    /// Waits for the stream and returns the token `enqueue` picked (and, when sampled, how many
    /// candidates top-p and min-p kept; 1 for greedy).
    public func pickedToken() throws -> (token: Int32, kept: Int) {
        try gpu.synchronize()
        let r = (pinned + pinnedEntries * 8).assumingMemoryBound(to: Int32.self)
        return (token(at: r), greedy ? 1 : Int(r[1]))
    }

    /// Samples `logits` now (enqueue, then wait).
    public func sample(logits: CUdeviceptr, _ s: GPUSampling) throws -> Int32 {
        try enqueue(logits: logits, s)
        return try pickedToken().token
    }
}
