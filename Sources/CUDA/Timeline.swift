// The decode step's timeline from the kernels' own clocks (`SWIFTKT_CUDA_TIMELINE=N`): with the
// kernels compiled with SWIFTKT_TIMELINE, lane 0 of every warp writes {grid, start, release, end}
// in %globaltimer nanoseconds (KernelSource `TimelineMark`: start at the kernel's entry where it
// works before `griddepcontrol.wait` — preloads, early loads —, else just before the wait;
// release when the wait returns, i.e. when the kernel before has completed and its writes are
// visible; end when the kernel, or the device function holding the wait, returns). The lent machines have no Nsight Systems to read a captured graph's timeline; this
// is its stand-in. `KernelTimeline.report` groups the records by grid and prints, per launch
// and per kernel name, how long each ran after its release and how long it waited between the
// end of the kernel before and its own release (the dependent launch's hand-over).
import Foundation

public struct KernelTimeline {
    /// One grid (launch): warps seen, the earliest start, the earliest and latest release,
    /// the latest end (ns, absolute).
    public struct Grid: Equatable {
        public var id: UInt64
        public var warps = 0
        public var start = UInt64.max, firstRelease = UInt64.max, lastRelease: UInt64 = 0, end: UInt64 = 0
        public init(id: UInt64) { self.id = id }
    }

    public let grids: [Grid]
    public let names: [String]?

    /// Groups records (4 words each: grid, start, release, end) by grid, in launch order (grid
    /// ids grow with launches). `names`, the captured graph's kernels in launch order, are used
    /// when their count matches the grids'.
    public init(records: UnsafeBufferPointer<UInt64>, names: [String]?) {
        var byID: [UInt64: Grid] = [:]
        var i = 0
        while i + 3 < records.count {
            let id = records[i]
            var g = byID[id] ?? Grid(id: id)
            g.warps += 1
            g.start = min(g.start, records[i + 1])
            g.firstRelease = min(g.firstRelease, records[i + 2])
            g.lastRelease = max(g.lastRelease, records[i + 2])
            g.end = max(g.end, records[i + 3])
            byID[id] = g
            i += 4
        }
        grids = byID.values.sorted { $0.id < $1.id }
        self.names = names.flatMap { $0.count == byID.count ? $0 : nil }
    }

    func name(_ i: Int) -> String { names?[i] ?? "grid \(grids[i].id)" }

    /// The report: the whole step, then every launch of the first `detail` ones, then per
    /// kernel name the launches, mean busy time (end − first release) and mean hand-over
    /// (first release − the end of the launch before), in µs.
    public func report(step: Int, detail: Int = 24) -> String {
        guard let first = grids.map(\.start).min(), let last = grids.map(\.end).max() else {
            return "timeline of decode step \(step): no records (were the kernels compiled with SWIFTKT_TIMELINE?)\n"
        }
        func us(_ ns: UInt64, from base: UInt64) -> String { String(format: "%8.2f", Double(Int64(bitPattern: ns &- base)) / 1000) }
        func us(_ ns: Int64) -> String { String(format: "%7.2f", Double(ns) / 1000) }
        var out = "timeline of decode step \(step): \(grids.count) launches\(names == nil ? " (names unknown)" : ""), "
            + String(format: "%.1f µs from the first warp's start to the last warp's end\n", Double(last - first) / 1000)
        out += "  #  kernel                        warps    start  release(first, last)      end    busy  hand-over\n"
        var totals: [String: (n: Int, busy: Int64, gap: Int64)] = [:]
        var order: [String] = []
        var busySum: Int64 = 0, gapSum: Int64 = 0
        for (i, g) in grids.enumerated() {
            let busy = Int64(bitPattern: g.end &- g.firstRelease)
            let gap = i == 0 ? 0 : Int64(bitPattern: g.firstRelease &- grids[i - 1].end)
            let n = name(i)
            if totals[n] == nil { order.append(n) }
            totals[n, default: (0, 0, 0)].n += 1
            totals[n, default: (0, 0, 0)].busy += busy
            totals[n, default: (0, 0, 0)].gap += gap
            busySum += busy; gapSum += gap
            if i < detail {
                out += String(format: "%3d  %-28@ %6d ", i, n.padding(toLength: 28, withPad: " ", startingAt: 0) as NSString, g.warps)
                    + "\(us(g.start, from: first)) \(us(g.firstRelease, from: first)) \(us(g.lastRelease, from: first)) \(us(g.end, from: first)) "
                    + "\(us(busy)) \(us(gap))\n"
            }
        }
        out += "per kernel (µs a launch):  launches    busy  hand-over\n"
        for n in order {
            let t = totals[n]!
            out += String(format: "  %-28@ %6d ", n.padding(toLength: 28, withPad: " ", startingAt: 0) as NSString, t.n)
                + "\(us(t.busy / Int64(t.n))) \(us(t.gap / Int64(t.n)))\n"
        }
        out += String(format: "sums: busy %.1f µs, hand-overs %.1f µs (a hand-over is negative where a kernel's release came before the end of the one before: overlap)\n",
                      Double(busySum) / 1000, Double(gapSum) / 1000)
        return out
    }
}
