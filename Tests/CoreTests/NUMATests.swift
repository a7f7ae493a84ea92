// NUMA support (CPUKernels/NUMA.swift): the node list from sysfs, the split of a pool's threads
// into per-node blocks, and matmuls on a pool of several nodes — each node's threads computing
// their node's slice of the panels — equal to the scalar reference bit for bit. The machines
// this runs on have one node, so the several-node pool is a simulated topology (both "nodes"
// are node 0), which exercises the scheduling; the placement call is exercised on node 0.
import XCTest
import Core
@testable import CPUKernels

final class NUMATests: XCTestCase {
    func testCPUListParsing() {
        XCTAssertEqual(NUMATopology.parseCPUList("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11])
        XCTAssertEqual(NUMATopology.parseCPUList("5"), [5])
        XCTAssertEqual(NUMATopology.parseCPUList("\n"), [])
        for bad in ["a", "3-1", "1-2-3", "1,,2", "-1", "0-99999999"] {
            XCTAssertNil(NUMATopology.parseCPUList(bad), bad)
        }
    }

    func testDetectReadsNodesAndKeepsAllowedCPUs() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-numa-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        for (name, list) in [("node0", "0-3\n"), ("node1", "4-7\n"), ("node2", "\n"), ("node3", "garbage\n")] {
            let dir = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try list.write(to: dir.appendingPathComponent("cpulist"), atomically: true, encoding: .utf8)
        }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("power"), withIntermediateDirectories: true)
        let all = NUMATopology.detect(root: root.path, allowed: [])
        XCTAssertEqual(all.nodes, [.init(id: 0, cpus: [0, 1, 2, 3]), .init(id: 1, cpus: [4, 5, 6, 7])])
        let some = NUMATopology.detect(root: root.path, allowed: [1, 2, 5])
        XCTAssertEqual(some.nodes, [.init(id: 0, cpus: [1, 2]), .init(id: 1, cpus: [5])])
        XCTAssertEqual(NUMATopology.detect(root: root.path, allowed: [0, 1]).nodes.count, 1)
        XCTAssertEqual(NUMATopology.detect(root: root.path + "/missing", allowed: []).nodes, [])
    }

    func testPoolLayout() {
        let two = NUMATopology(nodes: [.init(id: 0, cpus: [0, 1, 2, 3]), .init(id: 1, cpus: [4, 5, 6, 7])])
        let pool = ThreadPool(threads: 5, topology: two)
        XCTAssertEqual(pool.nodeThreads, [0..<3, 3..<5])
        XCTAssertEqual(pool.nodeOfThread, [0, 0, 0, 1, 1])
        XCTAssertEqual(pool.nodeIDs, [0, 1])
        // Fewer threads than nodes, or one node: one block, no pinning.
        XCTAssertEqual(ThreadPool(threads: 1, topology: two).nodeThreads, [0..<1])
        XCTAssertEqual(ThreadPool(threads: 4, topology: NUMATopology(nodes: [])).nodeThreads, [0..<4])
        // Every thread still runs each job once.
        let seen = Seen()
        pool.run { thread, threads in XCTAssertEqual(threads, 5); seen.add(thread) }
        XCTAssertEqual(seen.sorted, [0, 1, 2, 3, 4])
    }

    final class Seen: @unchecked Sendable {
        private let lock = NSLock(); private var values: [Int] = []
        func add(_ v: Int) { lock.lock(); values.append(v); lock.unlock() }
        var sorted: [Int] { lock.lock(); defer { lock.unlock() }; return values.sorted() }
    }

    /// Three matmuls in one pass on a simulated two-node pool (static and dynamic shares): every
    /// panel computed once, by its node's threads, with the reference's bits.
    func testMatmulsOnSeveralNodesEqualReference() {
        let cpus = NUMATopology.allowedCPUs()
        let topology = NUMATopology(nodes: [.init(id: 0, cpus: [cpus.first ?? 0]), .init(id: 0, cpus: [cpus.last ?? 0])])
        var rng = SeededRNG(seed: 21)
        for threads in [2, 3] {
            let pool = ThreadPool(threads: threads, topology: topology)
            XCTAssertEqual(pool.nodeThreads.count, 2)
            let cols = 512, types: [GGMLType] = [.q4_K, .q8_0, .q6_K], rows = [40, 13, 24]
            let bytes = zip(types, rows).map { QuantizedDotTests.randomWeights($0, rows: $1, cols: cols, rng: &rng) }
            for tokens in [1, 5, 12] {
                let x = QuantizedDotTests.randomActivations(tokens * cols, rng: &rng)
                for dynamic in [false, true] {
                    withExtendedLifetime(bytes) {
                        let matrices = zip(zip(types, rows), bytes).map { pair in
                            pair.1.withUnsafeBytes { WeightMatrix(type: pair.0.0, rows: pair.0.1, cols: cols, data: $0.baseAddress!) }
                        }
                        let outs = matrices.map { UnsafeMutablePointer<Float>.allocate(capacity: tokens * $0.rows) }
                        defer { outs.forEach { $0.deallocate() } }
                        for (o, m) in zip(outs, matrices) { o.update(repeating: .nan, count: tokens * m.rows) }
                        x.withUnsafeBufferPointer { xp in
                            Matmul.quantizedMany(matrices, x: xp.baseAddress!, ys: outs, tokens: tokens, pool: pool, dynamic: dynamic)
                        }
                        for (o, m) in zip(outs, matrices) {
                            var slow = [Float](repeating: .nan, count: tokens * m.rows)
                            x.withUnsafeBufferPointer { Matmul.quantizedReference(m, x: $0.baseAddress!, y: &slow, tokens: tokens, pool: pool) }
                            let fast = Array(UnsafeBufferPointer(start: o, count: tokens * m.rows))
                            XCTAssertEqual(fast.map(\.bitPattern), slow.map(\.bitPattern),
                                           "\(m.type) [\(m.rows), \(cols)] tokens \(tokens) threads \(threads) dynamic \(dynamic)")
                        }
                    }
                }
            }
        }
    }

    /// Placing slices of a buffer on a node keeps its contents (pages may move); the kernel
    /// accepts the request or refuses it (containers may forbid mbind), never more slices.
    func testPlaceKeepsContents() {
        let bytes = 5 * 4096 + 100
        let data = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
        defer { data.deallocate() }
        for i in 0..<bytes { data.storeBytes(of: UInt8(truncatingIfNeeded: i &* 31), toByteOffset: i, as: UInt8.self) }
        let placed = NUMATopology.place(data, units: 7, unitBytes: bytes / 7, nodeIDs: [0, 0])
        XCTAssertTrue((0...2).contains(placed))
        XCTAssertEqual(NUMATopology.place(data, units: 7, unitBytes: bytes / 7, nodeIDs: [0]), 0)
        for i in 0..<bytes { XCTAssertEqual(data.load(fromByteOffset: i, as: UInt8.self), UInt8(truncatingIfNeeded: i &* 31)) }
    }
}
