// L2 prefetch of a decode step's weights. A decode step reads every weight matrix once, in a
// fixed order (per layer q, k, v, o, gate, up, down; then the LM head), with small
// latency-bound kernels (norms, rope, attention, GLU) between the GEMVs during which DRAM idles.
// Each GEMV launch therefore asks the GPU to bring the next `window` bytes of that order into L2
// (bulk prefetches from the kernel's last block, GPUOps.linearMany), so the next matrices stream
// in while the small kernels run. The order is a cycle: the LM head's launch prefetches the first
// layer of the next step. Prefetches are hints: results do not change.
import CUDA

struct WeightPrefetch {
    /// The matrices in the order a decode step reads them.
    let pieces: [(pointer: CUdeviceptr, bytes: Int)]
    /// Offset of each piece in the concatenated order, and the total.
    let starts: [Int]
    let total: Int
    /// The bytes ahead of the matrices just launched that are asked for.
    let window: Int
    private let index: [CUdeviceptr: Int]
    /// Everything before this offset (of the step, possibly past `total`: wrapped) has been asked for.
    private var cursor = 0

    /// `matrices` in read order; a matrix met twice (tied weights) is taken at its first place.
    init(matrices: [DeviceMatrix], window: Int) {
        var seen = Set<CUdeviceptr>(), pieces: [(pointer: CUdeviceptr, bytes: Int)] = []
        for m in matrices where !seen.contains(m.pointer) {
            seen.insert(m.pointer)
            pieces.append((m.pointer, m.rows * m.rowBytes))
        }
        var starts: [Int] = [], at = 0
        for p in pieces { starts.append(at); at += p.bytes }
        self.pieces = pieces; self.starts = starts; total = at
        self.window = max(0, min(window, at))
        index = Dictionary(uniqueKeysWithValues: pieces.enumerated().map { ($1.pointer, $0) })
    }

    /// At the start of a step: the previous step's last launch asked for the first `window` bytes.
    mutating func beginStep() { cursor = window }

    /// The ranges (at most three, 16-byte aligned, multiples of 16 bytes) the launch reading
    /// `matrices` should ask for: from what was asked already up to `window` bytes past the end of
    /// these matrices. Empty when off, for matrices outside the order, or when nothing is new.
    mutating func ranges(after matrices: [DeviceMatrix]) -> [(pointer: CUdeviceptr, bytes: Int)] {
        guard window > 0, total > 0 else { return [] }
        let ends = matrices.compactMap { index[$0.pointer].map { starts[$0] + pieces[$0].bytes } }
        guard let end = ends.max() else { return [] }
        let target = end + window
        var from = max(cursor, end), out: [(pointer: CUdeviceptr, bytes: Int)] = []
        while from < target, out.count < 3 {
            // `from` in the cycle: the piece holding it and the offset in that piece.
            let at = from % total
            var i = starts.lastIndex { $0 <= at } ?? 0
            while pieces[i].bytes == 0 { i = (i + 1) % pieces.count }
            let offset = at - starts[i]
            let length = min(pieces[i].bytes - offset, target - from)
            // Whole 16-byte units inside the piece (device buffers are 256-byte aligned).
            let first = (offset + 15) / 16 * 16, last = (offset + length) / 16 * 16
            if last > first { out.append((pieces[i].pointer + UInt64(first), last - first)) }
            from += length
        }
        cursor = max(cursor, from)
        return out
    }
}
