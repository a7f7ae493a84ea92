// SWIFTKT_CUDA_TIMELINE=N (measurement only): the N-th captured decode step of a process runs
// with the kernels' warp clocks on (GPU.timelineStep, KernelSource `TimelineMark`) and its
// timeline goes to standard error (KernelTimeline.report): per launch the time from its release
// (the kernel before complete) to its last warp's end, and the hand-over between them.
import CUDA
import Foundation

struct TimelineState {
    /// Decode graph launches so far; each graph's kernel names in launch order, per bucket.
    var steps = 0
    var names: [Int: [String]] = [:]
    var records: DeviceBuffer?, counts: DeviceBuffer?
    /// Multiprocessor slots (%smid) and records per slot.
    static let slots = 256, capacity = 8192
}

extension CUDADecoder {
    func timelineBegin() throws {
        if timeline.records == nil {
            timeline.records = try gpu.allocator.allocate(TimelineState.slots * TimelineState.capacity * 32)
            timeline.counts = try gpu.allocator.allocate(TimelineState.slots * 4)
        }
        try gpu.driver.zero(timeline.counts!.pointer, bytes: TimelineState.slots * 4, stream: gpu.stream)
        try gpu.launch("timeline_set", grid: (1, 1, 1), block: 1,
                       [.pointer(timeline.records!.pointer), .pointer(timeline.counts!.pointer), .int(Int32(TimelineState.capacity)), .int(1)])
    }

    func timelineEnd(names: [String]?) throws {
        try gpu.launch("timeline_set", grid: (1, 1, 1), block: 1,
                       [.pointer(timeline.records!.pointer), .pointer(timeline.counts!.pointer), .int(Int32(TimelineState.capacity)), .int(0)])
        var counts = [UInt32](repeating: 0, count: TimelineState.slots)
        try counts.withUnsafeMutableBytes { try gpu.copy(toHost: $0.baseAddress!, from: timeline.counts!.pointer, bytes: $0.count) }
        let all = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: TimelineState.slots * TimelineState.capacity * 4)
        defer { all.deallocate() }
        try gpu.copy(toHost: UnsafeMutableRawPointer(all.baseAddress!), from: timeline.records!.pointer,
                     bytes: TimelineState.slots * TimelineState.capacity * 32)
        var kept: [UInt64] = []
        var dropped = 0
        for (sm, c) in counts.enumerated() where c > 0 {
            let n = min(Int(c), TimelineState.capacity)
            dropped += Int(c) - n
            let base = sm * TimelineState.capacity * 4
            kept += all[base..<base + n * 4]
        }
        let report = kept.withUnsafeBufferPointer { KernelTimeline(records: $0, names: names) }.report(step: timeline.steps)
        try? FileHandle.standardError.write(contentsOf: (report + (dropped > 0 ? "(\(dropped) warp records dropped: regions full)\n" : "")).data(using: .utf8)!)
    }
}
