// Routed experts of prompt-sized chunks on the GPU, their weights streamed over PCIe (the hybrid
// MoE set-up's prefill, rules/cuda-moe.yaml's `stream_to_gpu_min_tokens`). The experts live in
// host memory (the model file's mapping, page-locked in place when the driver allows it); for a
// chunk of at least that many tokens each MoE layer's gate, up and down tensors are copied into
// one of two device buffers on a copy stream, two layers ahead of the layer computing, so that
// the copy of layer k + 2 runs while layer k computes. A decode step (or a short chunk) keeps
// the experts on the CPU and copies nothing.
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
    private let copyStream: CUstream
    private let copied: [CUevent], consumed: [CUevent]
    /// Which MoE layer (position in `order`) each buffer holds or is receiving; -1 none.
    private var holding = [-1, -1]
    /// Whether the host ranges were page-locked (else the copies are pageable, slower).
    let pageLocked: Bool
    private var registered: [UnsafeMutableRawPointer] = []
    /// Bytes copied host → device so far.
    private(set) var bytesCopied = 0

    init(gpu: GPU, blocks: [(layer: Int, moe: MoEFeedForward)]) throws {
        self.gpu = gpu
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
        // Page-lock each family's range in place (page-aligned outward; the file mapping covers it).
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var locked = true
        outer: for i in layers.keys.sorted() {
            for f in [layers[i]!.gate, layers[i]!.up, layers[i]!.down] {
                let addresses = f.hosts.map { Int(bitPattern: $0) }
                let lo = addresses.min()!, hi = addresses.max()! + f.matrixBytes
                let start = lo / page * page, end = (hi + page - 1) / page * page
                guard let p = UnsafeMutableRawPointer(bitPattern: start) else { continue }
                do {
                    try gpu.driver.registerHost(p, bytes: end - start)
                    registered.append(p)
                } catch {
                    locked = false
                    break outer
                }
            }
        }
        if !locked {
            for p in registered { gpu.driver.unregisterHost(p) }
            registered.removeAll()
        }
        pageLocked = locked
    }

    deinit {
        for p in registered { gpu.driver.unregisterHost(p) }
    }

    /// Device bytes of the two staging buffers.
    var deviceBytes: Int { buffers.reduce(0) { $0 + $1.bytes } }

    /// Queues the copy of MoE layer `position` (in `order`) into buffer position % 2, after the
    /// compute stream is done with what that buffer held.
    private func fetch(_ position: Int) throws {
        let b = position % 2
        let layer = layers[order[position]]!
        if holding[b] >= 0 { try gpu.driver.wait(copyStream, for: consumed[b]) }
        var at = buffers[b].pointer
        for f in [layer.gate, layer.up, layer.down] {
            if f.contiguous {
                try gpu.driver.copyAsync(toDevice: at, from: f.hosts[0], bytes: f.bytes, stream: copyStream)
            } else {
                for (e, h) in f.hosts.enumerated() {
                    try gpu.driver.copyAsync(toDevice: at + UInt64(e * f.matrixBytes), from: h, bytes: f.matrixBytes, stream: copyStream)
                }
            }
            at += UInt64(f.bytes)
        }
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

    /// The experts of decoder layer `layer` are queued: once they have run, its buffer takes the
    /// MoE layer two ahead (within this chunk's pass over the layers).
    func done(layer: Int) throws {
        guard let position = order.firstIndex(of: layer) else { return }
        let b = position % 2
        try gpu.driver.record(consumed[b], on: gpu.stream)
        if position + 2 < order.count { try fetch(position + 2) }
    }
}
