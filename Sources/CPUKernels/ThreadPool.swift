// ThreadPool: one persistent set of worker threads shared by every CPU kernel.
//
// `run { thread, threads in … }` executes the body once on each of `threadCount` threads (the
// caller is thread 0) and returns when all are done. Kernels split their work by
// (thread index, thread count) and never spawn threads of their own. Workers spin briefly on a
// generation counter (cheap hand-off between the many small ops of a decode step) and then
// park on a condition variable, so an idle engine burns no CPU.
#if os(Linux)
import CSupport
#endif
import Foundation
import Synchronization

public final class ThreadPool: @unchecked Sendable {
    /// Number of threads that run each job, the caller included.
    public let threadCount: Int

    /// What the workers read: held by them strongly, so a pool released at once (before its
    /// workers started) stops them instead of leaving them a dangling reference.
    private final class Shared: @unchecked Sendable {
        let generation = Atomic<Int>(0)
        let pending = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        let condition = NSCondition()
        nonisolated(unsafe) var job: ((Int) -> Void)?
    }
    private let shared = Shared()
    private var threads: [Thread] = []

    /// Spins before a worker parks: about 1 ms, longer than the gaps between the ops of a decode
    /// step (sampling included), short enough that an idle engine stops burning CPU at once.
    private static let spinLimit = 400_000

    /// The NUMA node index (into `nodeThreads`) of each thread.
    public let nodeOfThread: [Int]
    /// Each node's threads, contiguous; one entry covering all threads on a one-node machine.
    public let nodeThreads: [Range<Int>]
    /// The nodes' ids (/sys/devices/system/node/node<id>), in the order of `nodeThreads`.
    public let nodeIDs: [Int]

    /// SWIFTKT_PIN_THREADS=1: worker i is bound to the i-th CPU the process may use (the
    /// calling thread, worker 0, is left alone: it may be the GPU's host thread), so that the
    /// scheduler does not move a worker off its core between passes. Off by default.
    static let pinWorkers = ProcessInfo.processInfo.environment["SWIFTKT_PIN_THREADS"] == "1"

    /// The most threads a pool may be asked for: 4 per core, 64 at least. Each worker is a thread
    /// with an 8 MiB stack; far past the cores they only contend, and a thread that cannot start
    /// would leave the pool waiting for it (the command line refuses more).
    public static var maxThreads: Int { max(64, 4 * ProcessInfo.processInfo.activeProcessorCount) }

    /// `threads` threads. With more than one NUMA node in `topology` (and at least as many
    /// threads as nodes) the threads are split into one block per node and every worker is
    /// pinned to a CPU of its node (NUMA.swift); the calling thread counts as the first node's.
    public init(threads: Int, topology: NUMATopology = .current) {
        precondition(threads >= 1, "a thread pool needs at least one thread")
        threadCount = threads
        let layout = topology.layout(threads: threads)
        nodeThreads = layout.map(\.threads)
        nodeIDs = layout.map(\.id)
        var nodeOf = [Int](repeating: 0, count: threads)
        var cpuOf = [Int32?](repeating: nil, count: threads)
        for (k, node) in layout.enumerated() {
            for i in node.threads {
                nodeOf[i] = k
                if !node.cpus.isEmpty { cpuOf[i] = Int32(node.cpus[(i - node.threads.lowerBound) % node.cpus.count]) }
            }
        }
        #if os(Linux)
        if layout.count == 1 && ThreadPool.pinWorkers {
            let cpus = NUMATopology.allowedCPUs()
            if !cpus.isEmpty { for i in 0..<threads { cpuOf[i] = Int32(cpus[i % cpus.count]) } }
        }
        #endif
        nodeOfThread = nodeOf
        for index in 1..<threads {
            let cpu = cpuOf[index]
            let shared = self.shared
            let thread = Thread {
                #if os(Linux)
                if let cpu { _ = swiftkt_pin_current_thread(cpu) }
                #endif
                ThreadPool.workerLoop(shared, index: index)
            }
            thread.name = "swiftkt-worker-\(index)"
            thread.stackSize = 8 << 20
            self.threads.append(thread)
            thread.start()
        }
    }

    deinit {
        shared.stopping.store(true, ordering: .releasing)
        shared.condition.lock()
        shared.generation.add(1, ordering: .releasing)
        shared.condition.broadcast()
        shared.condition.unlock()
    }

    /// Runs `body(threadIndex, threadCount)` on every thread of the pool and waits for all.
    public func run(_ body: (_ thread: Int, _ threads: Int) -> Void) {
        if threadCount == 1 { body(0, 1); return }
        let n = threadCount
        let shared = self.shared
        withoutActuallyEscaping(body) { escaping in
            shared.job = { index in escaping(index, n) }
            shared.pending.store(n - 1, ordering: .relaxed)
            shared.condition.lock()
            shared.generation.add(1, ordering: .releasing)
            shared.condition.broadcast()
            shared.condition.unlock()
            escaping(0, n)
            while shared.pending.load(ordering: .acquiring) != 0 { spinPause() }
            shared.job = nil
        }
    }

    /// Splits `0..<count` into `threadCount` contiguous ranges and runs `body(range)` on each.
    public func parallelFor(_ count: Int, _ body: (Range<Int>) -> Void) {
        run { thread, threads in
            let range = ThreadPool.split(count, part: thread, of: threads)
            if !range.isEmpty { body(range) }
        }
    }

    /// The `part`-th of `parts` contiguous, near-equal ranges of `0..<count`.
    @inlinable
    public static func split(_ count: Int, part: Int, of parts: Int) -> Range<Int> {
        let base = count / parts, extra = count % parts
        let start = part * base + min(part, extra)
        return start..<(start + base + (part < extra ? 1 : 0))
    }

    private static func workerLoop(_ shared: Shared, index: Int) {
        let condition = shared.condition
        var seen = 0
        while true {
            var spins = 0
            var current = shared.generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins < ThreadPool.spinLimit {
                    spinPause()
                } else {
                    condition.lock()
                    current = shared.generation.load(ordering: .acquiring)
                    while current == seen {
                        condition.wait()
                        current = shared.generation.load(ordering: .acquiring)
                    }
                    condition.unlock()
                    break
                }
                current = shared.generation.load(ordering: .acquiring)
            }
            seen = current
            if shared.stopping.load(ordering: .acquiring) { return }
            shared.job?(index)
            shared.pending.subtract(1, ordering: .releasing)
        }
    }
}

@inline(__always)
func spinPause() {
    #if arch(x86_64) || arch(i386)
    // `pause` is not exposed to Swift; a short no-op loop keeps the spinner polite.
    for _ in 0..<4 { _ = 0 }
    #endif
}
