// SWIFTKT_PROFILE_KERNELS=1: the GPU time of each kernel, from a pair of events recorded around
// every launch (`GPU.launch`). The CUDA decoder captures no graphs while it is on (events inside
// a capture have no times), so the launches run one by one; the kernels' own times are what
// they would be in a graph, the host's launch gaps are not. Every 32 decode steps the decoder
// prints a table to standard error: per kernel name, launches and milliseconds per token, the
// mean microseconds per launch and the share of the summed kernel time — where a decode step's
// GPU time goes, for tuning.
import Foundation

public final class KernelProfile: @unchecked Sendable {
    public static let enabled = ProcessInfo.processInfo.environment["SWIFTKT_PROFILE_KERNELS"] == "1"

    private let lock = NSLock()
    private var pending: [(name: String, start: CUevent, end: CUevent)] = []
    private var spare: [CUevent] = []
    private var totals: [String: (ms: Double, launches: Int)] = [:]

    public init() {}

    /// Events for one launch (reused once collected).
    func events(_ driver: Driver) throws -> (CUevent, CUevent) {
        lock.lock(); defer { lock.unlock() }
        let a = try spare.popLast() ?? driver.makeEvent(), b = try spare.popLast() ?? driver.makeEvent()
        return (a, b)
    }

    func add(_ name: String, start: CUevent, end: CUevent) {
        lock.lock(); defer { lock.unlock() }
        pending.append((name, start, end))
    }

    /// Waits for the recorded launches and adds their times to the totals.
    public func collect(_ driver: Driver) throws {
        lock.lock(); defer { lock.unlock() }
        guard let last = pending.last else { return }
        defer { pending.removeAll(keepingCapacity: true) }
        try driver.synchronize(event: last.end)
        for p in pending {
            spare += [p.start, p.end]
            // (An event recorded inside a graph capture has no time: such launches are skipped.)
            guard let ms = try? driver.elapsed(from: p.start, to: p.end) else { continue }
            let t = totals[p.name] ?? (0, 0)
            totals[p.name] = (t.ms + Double(ms), t.launches + 1)
        }
    }

    /// The totals so far as a table over `tokens` steps (then cleared).
    public func take(tokens: Int) -> String {
        lock.lock(); defer { lock.unlock() }
        defer { totals = [:] }
        return KernelProfile.table(totals, tokens: tokens)
    }

    /// Per kernel, most time first: launches and ms per token, mean µs per launch, share.
    static func table(_ totals: [String: (ms: Double, launches: Int)], tokens: Int) -> String {
        let sum = totals.values.reduce(0) { $0 + $1.ms }, per = Double(max(tokens, 1))
        var lines = [String(format: "kernels over %d tokens: %.3f ms of GPU time per token", tokens, sum / per),
                     "| kernel | launches / token | ms / token | µs / launch | share |", "|---|---:|---:|---:|---:|"]
        for (name, t) in totals.sorted(by: { $0.value.ms != $1.value.ms ? $0.value.ms > $1.value.ms : $0.key < $1.key }) {
            lines.append(String(format: "| %@ | %.1f | %.3f | %.2f | %.1f %% |", name, Double(t.launches) / per, t.ms / per,
                                1000 * t.ms / Double(max(t.launches, 1)), sum > 0 ? 100 * t.ms / sum : 0))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
