// Routed experts of prompt-sized chunks on the GPU, their weights streamed over PCIe (the hybrid
// MoE set-up's prefill, ExpertsCPU's `stream_to_gpu_min_tokens`). The experts live in host
// memory (the model file's mapping). For a chunk of at least that many tokens each MoE layer's
// gate, up and down tensors go to one of two device buffers, two layers ahead of the layer
// computing: the CPU's threads copy the layer into one of two page-locked staging buffers (a
// parallel memcpy out of the mapping), and a copy stream moves it to the device at full PCIe
// speed while the GPU computes the layers before. A decode step (or a short chunk) keeps the
// experts on the CPU and copies nothing. (Page-locking the file mapping in place with
// cuMemHostRegister stalled the load of a 16 GiB model for over a minute: not used.)
import Core
import CPUKernels
import CUDA
import Foundation
import Models
import Operators

final class ExpertStreamer: @unchecked Sendable {
    /// One expert tensor family (all experts' gate, up or down) in host memory.
    struct Family {
        let type: GGMLType
        let rows: Int, cols: Int, count: Int
        /// Each expert's host address (contiguous in GGUF files, but not assumed).
        let hosts: [UnsafeRawPointer]
        var matrixBytes: Int { type.byteCount(elements: cols) * rows }
        var bytes: Int { matrixBytes * count }
        /// One copy when the experts follow each other in memory.
        var contiguous: Bool { hosts.indices.allSatisfy { hosts[$0] == hosts[0] + $0 * matrixBytes } }
    }

    struct Layer {
        let gate: Family, up: Family, down: Family
        var bytes: Int { gate.bytes + up.bytes + down.bytes }
    }

    let gpu: GPU
    /// By decoder layer index, and those indices in order.
    let layers: [Int: Layer]
    let order: [Int]
    private let buffers: [DeviceBuffer]
    /// Page-locked host staging, one per device buffer.
    private let staging: [UnsafeMutableRawPointer]
    private let pool: ThreadPool
    private let copyStream: CUstream
    private let copied: [CUevent], consumed: [CUevent]
    /// Which MoE layer (position in `order`) each buffer holds or is receiving; -1 none.
    private var holding = [-1, -1]
    /// Bytes copied host → device so far.
    private(set) var bytesCopied = 0

    init(gpu: GPU, blocks: [(layer: Int, moe: MoEFeedForward)], pool: ThreadPool) throws {
        self.gpu = gpu
        self.pool = pool
        func family(_ ms: [WeightMatrix]) -> Family {
            Family(type: ms[0].type, rows: ms[0].rows, cols: ms[0].cols, count: ms.count, hosts: ms.map { UnsafeRawPointer($0.data) })
        }
        var layers: [Int: Layer] = [:]
        for (i, moe) in blocks {
            let e = moe.experts
            layers[i] = Layer(gate: family(e.gate), up: family(e.up), down: family(e.down))
        }
        self.layers = layers
        order = layers.keys.sorted()
        let most = layers.values.map(\.bytes).max() ?? 0
        buffers = try (0..<2).map { _ in try gpu.allocator.allocate(max(most, 256)) }
        copyStream = try gpu.driver.makeStream()
        copied = try (0..<2).map { _ in try gpu.driver.makeEvent() }
        consumed = try (0..<2).map { _ in try gpu.driver.makeEvent() }
        staging = try (0..<2).map { _ in try gpu.driver.allocatePinned(max(most, 256)) }
    }

    deinit {
        for p in staging { try? gpu.driver.freePinned(p) }
    }

    /// Device bytes of the two staging buffers.
    var deviceBytes: Int { buffers.reduce(0) { $0 + $1.bytes } }

    /// Queues the copy of MoE layer `position` (in `order`) into buffer position % 2: the CPU's
    /// threads fill staging buffer position % 2 (once its previous upload has finished), and the
    /// copy stream uploads it after the compute stream is done with what the device buffer held.
    private func fetch(_ position: Int) throws {
        let b = position % 2
        let layer = layers[order[position]]!
        // (Both waits are no-ops on events never recorded.) Until the upload is queued the
        // buffer holds nothing usable, whatever happens.
        try gpu.driver.synchronize(event: copied[b])
        holding[b] = -1
        // (source, offset in the staging buffer, bytes) of every piece, then a parallel copy.
        var pieces: [(UnsafeRawPointer, Int, Int)] = []
        var at = 0
        for f in [layer.gate, layer.up, layer.down] {
            if f.contiguous {
                pieces.append((f.hosts[0], at, f.bytes))
            } else {
                for (e, h) in f.hosts.enumerated() { pieces.append((h, at + e * f.matrixBytes, f.matrixBytes)) }
            }
            at += f.bytes
        }
        let chunk = 1 << 20
        var jobs: [(UnsafeRawPointer, Int, Int)] = []
        for (src, offset, bytes) in pieces {
            var o = 0
            while o < bytes { let n = min(chunk, bytes - o); jobs.append((src + o, offset + o, n)); o += n }
        }
        let dst = UnsafeSendable(staging[b])
        let work = jobs
        pool.parallelFor(work.count) { range in
            for i in range { let (src, offset, n) = work[i]; (dst.pointer + offset).copyMemory(from: src, byteCount: n) }
        }
        try gpu.driver.wait(copyStream, for: consumed[b])
        try gpu.driver.copyAsync(toDevice: buffers[b].pointer, from: staging[b], bytes: layer.bytes, stream: copyStream)
        try gpu.driver.record(copied[b], on: copyStream)
        holding[b] = position
        bytesCopied += layer.bytes
    }

    /// A prompt-sized chunk begins: the first two MoE layers start copying.
    func begin() throws {
        for p in 0..<min(2, order.count) where holding[p % 2] != p { try fetch(p) }
    }

    /// The experts of decoder layer `layer` as device matrices; the compute stream waits for
    /// their copy.
    func matrices(layer: Int) throws -> (gate: [DeviceMatrix], up: [DeviceMatrix], down: [DeviceMatrix]) {
        guard let position = order.firstIndex(of: layer), let L = layers[layer] else {
            throw CUDAModelError.unsupported("layer \(layer) has no streamed experts")
        }
        let b = position % 2
        if holding[b] != position { try fetch(position) }
        try gpu.driver.wait(gpu.stream, for: copied[b])
        var at = buffers[b].pointer
        func matrices(_ f: Family) -> [DeviceMatrix] {
            defer { at += UInt64(f.bytes) }
            return (0..<f.count).map { DeviceMatrix(type: f.type, rows: f.rows, cols: f.cols, pointer: at + UInt64($0 * f.matrixBytes)) }
        }
        let g = matrices(L.gate), u = matrices(L.up), d = matrices(L.down)
        return (g, u, d)
    }

    /// Work on decoder layer `layer`'s experts failed midway: its buffer is free only after what
    /// was queued has run, and holds nothing to reuse.
    func abandon(layer: Int) {
        guard let position = order.firstIndex(of: layer) else { return }
        let b = position % 2
        try? gpu.driver.record(consumed[b], on: gpu.stream)
        holding[b] = -1
    }

    /// The experts of decoder layer `layer` are queued: once they have run, its buffer takes the
    /// MoE layer two ahead (within this chunk's pass over the layers).
    func done(layer: Int) throws {
        guard let position = order.firstIndex(of: layer) else { return }
        let b = position % 2
        try gpu.driver.record(consumed[b], on: gpu.stream)
        if position + 2 < order.count { try fetch(position + 2) }
    }
}
