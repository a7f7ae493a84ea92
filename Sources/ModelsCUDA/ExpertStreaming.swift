// Routed experts of prompt-sized chunks on the GPU, their weights streamed over PCIe (the hybrid
// MoE set-up's prefill, ExpertsCPU's `stream_to_gpu_min_tokens`). The experts live in host
// memory (the model file's mapping). For a chunk of at least that many tokens each MoE layer's
// gate, up and down tensors go to one of two device buffers, two layers ahead of the layer
// computing: the CPU's threads copy the layer into one of two page-locked staging buffers (a
// parallel memcpy out of the mapping), and a copy stream moves it to the device at full PCIe
// speed while the GPU computes the layers before. A decode step (or a short chunk) keeps the
// experts on the CPU and copies nothing. (Page-locking the file mapping in place with
// cuMemHostRegister stalled the load of a 16 GiB model for over a minute: not used.)
//
// When host memory allows (MemAvailable above twice the experts' bytes plus 4 GiB;
// SWIFTKT_STREAM_PINNED=0 turns it off), the load copies every streamed layer once into its own
// page-locked buffer, as llama.cpp keeps CPU-resident weights in pinned buffers: an upload is
// then one asynchronous copy straight from it, with no memcpy through staging on the CPU's side
// (which both held the CPU and tripled the host-memory traffic: measured 798 t/s pp512 on the
// Qwen3-30B-A3B shape with staging, bound by the staging copies).
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
    /// Page-locked host staging, one per device buffer (none when every layer is pinned).
    private let staging: [UnsafeMutableRawPointer]
    /// Page-locked copies of each layer's experts, by decoder layer (empty: stage instead).
    private var pinned: [Int: UnsafeMutableRawPointer] = [:]
    /// Whether uploads read page-locked copies of the experts (no staging).
    var pinnedCopies: Bool { !pinned.isEmpty }
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
        let total = layers.values.reduce(0) { $0 + $1.bytes }
        if ProcessInfo.processInfo.environment["SWIFTKT_STREAM_PINNED"] != "0",
           // MemAvailable counts the model file's cached pages, which the CPU's decode still
           // reads: the copies must fit beside them.
           let available = ExpertStreamer.availableMemory(), available > 2 * total + (4 << 30) {
            do {
                for i in order {
                    let p = try gpu.driver.allocatePinned(max(layers[i]!.bytes, 256))
                    pinned[i] = p
                    ExpertStreamer.gather(layers[i]!, into: p, pool: pool)
                }
            } catch {
                for p in pinned.values { try? gpu.driver.freePinned(p) }
                pinned = [:]
            }
        }
        staging = pinned.isEmpty ? try (0..<2).map { _ in try gpu.driver.allocatePinned(max(most, 256)) } : []
    }

    deinit {
        // No upload may still read the host buffers.
        try? gpu.driver.synchronize(copyStream)
        for p in staging { try? gpu.driver.freePinned(p) }
        for p in pinned.values { try? gpu.driver.freePinned(p) }
    }

    /// Bytes of page-locked host memory held (pinned copies or staging).
    var pinnedBytes: Int {
        pinned.isEmpty ? 2 * (layers.values.map(\.bytes).max() ?? 0) : layers.values.reduce(0) { $0 + $1.bytes }
    }

    /// MemAvailable of /proc/meminfo in bytes (nil elsewhere).
    static func availableMemory() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
              let kib = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kib * 1024
    }

    /// A layer's gate, up and down experts copied one after another into `dst` by the pool's
    /// threads (1 MiB pieces).
    static func gather(_ layer: Layer, into dst: UnsafeMutableRawPointer, pool: ThreadPool) {
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
        let target = UnsafeSendable(dst)
        let work = jobs
        pool.parallelFor(work.count) { range in
            for i in range { let (src, offset, n) = work[i]; (target.pointer + offset).copyMemory(from: src, byteCount: n) }
        }
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
        holding[b] = -1
        let source: UnsafeRawPointer
        if let p = pinned[order[position]] {
            // Nothing to wait for on the CPU: the copy stream orders the uploads.
            source = UnsafeRawPointer(p)
        } else {
            // The staging buffer is refilled once its last upload has finished.
            try gpu.driver.synchronize(event: copied[b])
            ExpertStreamer.gather(layer, into: staging[b], pool: pool)
            source = UnsafeRawPointer(staging[b])
        }
        try gpu.driver.wait(copyStream, for: consumed[b])
        try gpu.driver.copyAsync(toDevice: buffers[b].pointer, from: source, bytes: layer.bytes, stream: copyStream)
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
