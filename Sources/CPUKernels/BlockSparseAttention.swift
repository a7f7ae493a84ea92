// Block-sparse attention for long contexts (KTransformers' CPU long-context idea): a decode
// query attends to the first `initTokens` keys, the last `localTokens`, and the `selectBlocks`
// blocks of `blockSize` keys between them whose anchors score highest for it; the rest of the
// cache is skipped. Anchors are per block and KV head: the per-channel minimum and maximum of the
// block's keys ("quest": a block's score is Σ_d max(q_d·min_d, q_d·max_d), an upper bound of q·k
// over its keys) or their mean ("mean": q·mean). The query heads of a GQA group choose together
// (their scores summed), so the group reads one set of keys and values.
//
// The attention over the chosen rows is `FusedMath.flashQuery` over several ranges: each row
// gets the same operations in the same order as in the dense kernel, so when every block is
// chosen (or the context is short) the output is the dense kernel's, bit for bit.
//
// Anchors are kept per layer cache (keyed by its key buffer) and follow the writes: a call whose
// first position is p drops the anchors of rows ≥ p (a rewound session rewrites them) and a sparse
// step brings them up to its position, so every call that writes the cache must come through here.
import Core
import Foundation

public struct BlockSparseConfig: Sendable, Equatable {
    public enum Anchor: String, Sendable, CaseIterable { case quest, mean }
    public var blockSize = 64
    /// Keys 0..<initTokens are always attended (attention sinks).
    public var initTokens = 64
    /// The last `localTokens` keys (the query's own included) are always attended.
    public var localTokens = 512
    /// Blocks chosen by anchor score from the middle of the context.
    public var selectBlocks = 16
    public var anchor = Anchor.quest
    /// Chunks of more tokens than this (prefill) run the dense kernel.
    public var maxSparseTokens = 4

    public init(blockSize: Int = 64, initTokens: Int = 64, localTokens: Int = 512, selectBlocks: Int = 16, anchor: Anchor = .quest) {
        precondition(blockSize > 0 && initTokens >= 0 && localTokens >= 1 && selectBlocks >= 0, "bad block-sparse configuration")
        self.blockSize = blockSize; self.initTokens = initTokens; self.localTokens = localTokens
        self.selectBlocks = selectBlocks; self.anchor = anchor
    }

    /// Keys a query at a long context reads: the two windows and the chosen blocks.
    public var attendedKeys: Int { initTokens + localTokens + selectBlocks * blockSize }
}

/// The anchors of one layer's cache: per block and KV head, the keys' per-channel minimum, maximum
/// and sum, for rows 0..<rows.
public final class BlockAnchors: @unchecked Sendable {
    public let kvHeads: Int, headDim: Int, blockSize: Int
    public private(set) var rows = 0
    var minimum: [Float] = [], maximum: [Float] = [], sum: [Float] = []

    init(kvHeads: Int, headDim: Int, blockSize: Int) {
        self.kvHeads = kvHeads; self.headDim = headDim; self.blockSize = blockSize
    }

    /// Rows ≥ `row` are being rewritten: their anchors go.
    func invalidate(from row: Int) {
        if row < rows { rows = (row / blockSize) * blockSize }
    }

    /// Brings the anchors up to rows 0…last of `k` ([capacity, kvHeads·headDim] f16 bits).
    func extend(k: UnsafePointer<UInt16>, through last: Int) {
        guard last >= rows else { return }
        let width = kvHeads * headDim
        let blocks = last / blockSize + 1
        if minimum.count < blocks * width {
            let grow = max(blocks * width, minimum.count * 2)
            minimum += [Float](repeating: 0, count: grow - minimum.count)
            maximum += [Float](repeating: 0, count: grow - maximum.count)
            sum += [Float](repeating: 0, count: grow - sum.count)
        }
        minimum.withUnsafeMutableBufferPointer { mn in
            maximum.withUnsafeMutableBufferPointer { mx in
                sum.withUnsafeMutableBufferPointer { sm in
                    for row in rows...last {
                        let base = (row / blockSize) * width, key = k + row * width
                        if row % blockSize == 0 {
                            for i in 0..<width {
                                let x = halfToFloat(key[i])
                                mn[base + i] = x; mx[base + i] = x; sm[base + i] = x
                            }
                        } else {
                            for i in 0..<width {
                                let x = halfToFloat(key[i])
                                mn[base + i] = Swift.min(mn[base + i], x); mx[base + i] = Swift.max(mx[base + i], x)
                                sm[base + i] += x
                            }
                        }
                    }
                }
            }
        }
        rows = last + 1
    }

    /// The anchor score of block `b` for KV head `h`, summed over the queries `qs` (each headDim floats).
    func score(block b: Int, kvHead h: Int, queries qs: UnsafePointer<Float>, count: Int, anchor: BlockSparseConfig.Anchor) -> Float {
        let o = (b * kvHeads + h) * headDim
        let keys = Float(Swift.min(blockSize, rows - b * blockSize))
        var s: Float = 0
        for g in 0..<count {
            let q = qs + g * headDim
            switch anchor {
            case .quest:
                for d in 0..<headDim { s += Swift.max(q[d] * minimum[o + d], q[d] * maximum[o + d]) }
            case .mean:
                for d in 0..<headDim { s += q[d] * sum[o + d] / keys }
            }
        }
        return s
    }
}

public enum BlockSparseAttention {
    /// The anchors of every layer cache seen, by key buffer.
    nonisolated(unsafe) private static var store: [UnsafeRawPointer: BlockAnchors] = [:]
    private static let lock = NSLock()

    static func anchors(for k: UnsafePointer<UInt16>, kvHeads: Int, headDim: Int, blockSize: Int) -> BlockAnchors {
        lock.lock(); defer { lock.unlock() }
        let key = UnsafeRawPointer(k)
        if let a = store[key], a.kvHeads == kvHeads, a.headDim == headDim, a.blockSize == blockSize { return a }
        let a = BlockAnchors(kvHeads: kvHeads, headDim: headDim, blockSize: blockSize)
        store[key] = a
        return a
    }

    /// Forgets the anchors of a cache whose buffer is freed (a session's end).
    public static func forget(keys k: UnsafeRawPointer) {
        lock.lock(); defer { lock.unlock() }
        store[k] = nil
    }

    /// The ranges (first, last pairs, ascending, disjoint) a query at `position` attends to for
    /// KV head `kvHead`, its group's queries at `qs`; a single 0…position when the context
    /// holds no more than the windows and the blocks to choose.
    public static func ranges(position: Int, kvHead: Int, queries qs: UnsafePointer<Float>, group: Int,
                              anchors: BlockAnchors, config c: BlockSparseConfig) -> [Int] {
        let localStart = Swift.max(0, position - c.localTokens + 1)
        let middleStart = c.initTokens, middleEnd = localStart  // rows middleStart..<middleEnd
        let firstBlock = middleStart / c.blockSize
        let lastBlock = (middleEnd - 1) / c.blockSize
        guard middleEnd > middleStart, lastBlock - firstBlock + 1 > c.selectBlocks else { return [0, position] }
        var scored: [(score: Float, block: Int)] = []
        scored.reserveCapacity(lastBlock - firstBlock + 1)
        for b in firstBlock...lastBlock {
            scored.append((anchors.score(block: b, kvHead: kvHead, queries: qs, count: group, anchor: c.anchor), b))
        }
        // Highest first; ties to the earlier block. NaN scores (an overflowing query) sort last.
        scored.sort { ($0.score.isNaN ? -Float.infinity : $0.score, -$0.block) > ($1.score.isNaN ? -Float.infinity : $1.score, -$1.block) }
        let chosen = scored.prefix(c.selectBlocks).map(\.block).sorted()
        var out: [Int] = []
        func add(_ a: Int, _ b: Int) {
            guard a <= b else { return }
            if let last = out.last, last + 1 >= a { out[out.count - 1] = Swift.max(last, b) } else { out += [a, b] }
        }
        add(0, Swift.min(c.initTokens, position + 1) - 1)
        for b in chosen { add(Swift.max(b * c.blockSize, middleStart), Swift.min(b * c.blockSize + c.blockSize, middleEnd) - 1) }
        add(localStart, position)
        return out
    }

    /// Attention as `Attention.flashF16` (same shapes) for chunks of up to `maxSparseTokens`
    /// tokens without a sliding window; anything else runs `flashF16` itself.
    public static func run(q: UnsafePointer<Float>, k: UnsafePointer<UInt16>, v: UnsafePointer<UInt16>,
                           out: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, kvHeads: Int, headDim: Int,
                           positions: UnsafePointer<Int32>, window: Int?, scale: Float, softcap: Float? = nil,
                           config: BlockSparseConfig, pool: ThreadPool, isa: KernelISA = .best) {
        let anchors = anchors(for: k, kvHeads: kvHeads, headDim: headDim, blockSize: config.blockSize)
        var first = Int.max, last = 0
        for t in 0..<tokens { first = Swift.min(first, Int(positions[t])); last = Swift.max(last, Int(positions[t])) }
        anchors.invalidate(from: first)
        guard tokens <= config.maxSparseTokens, window == nil, last + 1 > config.attendedKeys else {
            Attention.flashF16(q: q, k: k, v: v, out: out, tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim,
                               positions: positions, window: window, scale: scale, softcap: softcap, pool: pool, isa: isa)
            return
        }
        anchors.extend(k: k, through: last)
        let group = heads / kvHeads, kvStride = kvHeads * headDim
        // Per (token, KV head): its ranges, then the group's queries over them.
        var plans: [[Int]] = []
        for t in 0..<tokens {
            for h in 0..<kvHeads {
                plans.append(ranges(position: Int(positions[t]), kvHead: h, queries: q + (t * heads + h * group) * headDim,
                                    group: group, anchors: anchors, config: config))
            }
        }
        let ks = UnsafeSendable(k), vs = UnsafeSendable(v)
        Attention.decodeGroups(q: q, out: out, tokens: tokens, heads: heads, kvHeads: kvHeads, headDim: headDim, maxRows: last + 1,
                               pool: pool) { t, kvh, _ in
            (UnsafeRawPointer(ks.pointer + kvh * headDim), UnsafeRawPointer(vs.pointer + kvh * headDim), plans[t * kvHeads + kvh])
        } kernel: { q, count, k, v, ranges, out, scratch in
            Attention.flashQuery(isa: isa, q: q, heads: count, k: k, v: v, kvHalf: true, stride: kvStride, ranges: ranges,
                                 headDim: headDim, scale: scale, softcap: softcap, out: out, scratch: scratch)
        }
    }
}
