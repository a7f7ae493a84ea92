// NUMA: on hosts with more than one memory node, the CPU kernels' threads and the weights they
// read are kept on the same node. A pool's threads are split into one contiguous block per node
// and pinned to that node's CPUs (ThreadPool); each prepared matmul's panels are split into one
// slice per node, computed only by that node's threads (`Matmul.quantized`), and the packed
// copies of the weights are placed slice by slice on the matching node (`NUMATopology.place`).
// One node (every machine this project has measured on so far): nothing changes.
#if os(Linux)
import CSupport
#endif
import Foundation

public struct NUMATopology: Sendable, Equatable {
    /// A memory node: its id (as in /sys/devices/system/node/node<id>) and the CPUs of it that
    /// this process may run on.
    public struct Node: Sendable, Equatable {
        public let id: Int
        public let cpus: [Int]
        public init(id: Int, cpus: [Int]) { self.id = id; self.cpus = cpus }
    }

    /// Nodes with at least one allowed CPU, by id.
    public let nodes: [Node]

    public init(nodes: [Node]) { self.nodes = nodes }

    /// This machine's, read once. SWIFTKT_NUMA=0 treats the machine as one node.
    public static let current: NUMATopology = {
        if ProcessInfo.processInfo.environment["SWIFTKT_NUMA"] == "0" { return NUMATopology(nodes: []) }
        return detect(root: "/sys/devices/system/node", allowed: allowedCPUs())
    }()

    /// The CPUs this process may run on (its affinity mask); empty where unknown.
    static func allowedCPUs() -> [Int] {
        #if os(Linux)
        var buffer = [Int32](repeating: 0, count: 1024)
        let n = swiftkt_allowed_cpus(&buffer, 1024)
        return buffer.prefix(Int(n)).map(Int.init)
        #else
        return []
        #endif
    }

    /// The nodes under `root` (node<id>/cpulist each), keeping only `allowed` CPUs (all, when
    /// `allowed` is empty); no nodes when the folder is missing or unreadable.
    static func detect(root: String, allowed: [Int]) -> NUMATopology {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return NUMATopology(nodes: []) }
        let allowedSet = Set(allowed)
        var nodes: [Node] = []
        for name in names where name.hasPrefix("node") {
            guard let id = Int(name.dropFirst(4)),
                  let text = try? String(contentsOfFile: root + "/" + name + "/cpulist", encoding: .utf8),
                  let cpus = parseCPUList(text) else { continue }
            let usable = allowedSet.isEmpty ? cpus : cpus.filter(allowedSet.contains)
            if !usable.isEmpty { nodes.append(Node(id: id, cpus: usable)) }
        }
        return NUMATopology(nodes: nodes.sorted { $0.id < $1.id })
    }

    /// "0-3,8,10-11\n" → [0, 1, 2, 3, 8, 10, 11]; nil when malformed. An empty list is [].
    static func parseCPUList(_ text: String) -> [Int]? {
        let body = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if body.isEmpty { return [] }
        var cpus: [Int] = []
        for part in body.split(separator: ",", omittingEmptySubsequences: false) {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), let lo = Int(ends[0]), let hi = Int(ends[ends.count - 1]), 0 <= lo, lo <= hi,
                  hi < 1 << 20 else { return nil }
            cpus.append(contentsOf: lo...hi)
        }
        return cpus
    }

    /// How a pool of `threads` threads spreads over these nodes: the node of each thread
    /// (contiguous blocks, sizes differing by at most one) and each node's CPUs to pin to. One
    /// entry (no pinning) when there are fewer than two nodes or fewer threads than nodes.
    public func layout(threads: Int) -> [(threads: Range<Int>, cpus: [Int], id: Int)] {
        guard nodes.count > 1, threads >= nodes.count else { return [(0..<threads, [], nodes.first?.id ?? 0)] }
        return nodes.enumerated().map { k, node in (ThreadPool.split(threads, part: k, of: nodes.count), node.cpus, node.id) }
    }

    /// Puts slice k of `units` units of `unitBytes` bytes at `data` (page-aligned) on node k of
    /// `nodeIDs`, the slices being `ThreadPool.split(units, part: k, of: nodeIDs.count)` — the
    /// panels each node's threads compute. Pages straddling two slices go with the first.
    /// Returns how many slices the kernel accepted (a hint: placement never changes results).
    @discardableResult
    public static func place(_ data: UnsafeMutableRawPointer, units: Int, unitBytes: Int, nodeIDs: [Int]) -> Int {
        guard nodeIDs.count > 1 else { return 0 }
        #if os(Linux)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let base = Int(bitPattern: data)
        var placed = 0
        for (k, id) in nodeIDs.enumerated() {
            let slice = ThreadPool.split(units, part: k, of: nodeIDs.count)
            let start = (base + slice.lowerBound * unitBytes + page - 1) / page * page
            let end = (base + slice.upperBound * unitBytes + page - 1) / page * page
            if end > start, swiftkt_prefer_node(UnsafeMutableRawPointer(bitPattern: start), UInt(end - start), Int32(id)) == 0 { placed += 1 }
        }
        return placed
        #else
        return 0
        #endif
    }
}
