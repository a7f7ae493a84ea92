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

    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let condition = NSCondition()
    private nonisolated(unsafe) var job: ((Int) -> Void)?
    private var threads: [Thread] = []

    /// Spins before a worker parks: about 1 ms, longer than the gaps between the ops of a decode
    /// step (sampling included), short enough that an idle engine stops burning CPU at once.
    private static let spinLimit = 400_000

    /// SWIFTKT_PIN_THREADS=1: worker i is bound to the i-th CPU the process may use (the
    /// calling thread, worker 0, is left alone: it may be the GPU's host thread), so that the
    /// scheduler does not move a worker off its core between passes. Off by default.
    static let pinWorkers = ProcessInfo.processInfo.environment["SWIFTKT_PIN_THREADS"] == "1"

    public init(threads: Int) {
        precondition(threads >= 1, "a thread pool needs at least one thread")
        threadCount = threads
        var cpus: [Int32] = []
        #if os(Linux)
        if ThreadPool.pinWorkers {
            var buffer = [Int32](repeating: 0, count: 1024)
            let n = swiftkt_allowed_cpus(&buffer, 1024)
            cpus = Array(buffer.prefix(Int(n)))
        }
        #endif
        for index in 1..<threads {
            let cpu: Int32? = cpus.isEmpty ? nil : cpus[index % cpus.count]
            let thread = Thread { [unowned self] in
                #if os(Linux)
                if let cpu { _ = swiftkt_pin_current_thread(cpu) }
                #endif
                self.workerLoop(index: index)
            }
            thread.name = "swiftkt-worker-\(index)"
            thread.stackSize = 8 << 20
            self.threads.append(thread)
            thread.start()
        }
    }

    deinit {
        stopping.store(true, ordering: .releasing)
        condition.lock()
        generation.add(1, ordering: .releasing)
        condition.broadcast()
        condition.unlock()
    }

    /// Runs `body(threadIndex, threadCount)` on every thread of the pool and waits for all.
    public func run(_ body: (_ thread: Int, _ threads: Int) -> Void) {
        if threadCount == 1 { body(0, 1); return }
        let n = threadCount
        withoutActuallyEscaping(body) { escaping in
            job = { index in escaping(index, n) }
            pending.store(n - 1, ordering: .relaxed)
            condition.lock()
            generation.add(1, ordering: .releasing)
            condition.broadcast()
            condition.unlock()
            escaping(0, n)
            while pending.load(ordering: .acquiring) != 0 { spinPause() }
            job = nil
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

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins < ThreadPool.spinLimit {
                    spinPause()
                } else {
                    condition.lock()
                    current = generation.load(ordering: .acquiring)
                    while current == seen {
                        condition.wait()
                        current = generation.load(ordering: .acquiring)
                    }
                    condition.unlock()
                    break
                }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if stopping.load(ordering: .acquiring) { return }
            job?(index)
            pending.subtract(1, ordering: .releasing)
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
