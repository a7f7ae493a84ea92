// ops-check's multi-head latent attention cases (KernelSource+MLA, GPUOps+MLA): the YaRN rope
// against YarnRope.apply (YaRN's ramp over two ranges of pairs, and plain rope), the split-off
// compressed kv bit for bit, the cache store's f16 rows against the CPU's rows
// (MultiLatentAttention.cacheRows) rounded as the CPU's cache rounds them, and the merge against
// MultiLatentAttention.mergeHeads. (Attention at MLA's head width 192 is among the attention
// cases of OpsCheck.run.)
import Core
import CUDA
import Foundation
import Models
import ModelsCUDA

extension OpsCheck {
    static func mlaChecks(gpu: GPU, rng: inout SeededGenerator, record: (String, String, Double, Double) -> Void) throws {
        // DeepSeek-V2's per-head widths; an odd rank (96) and three heads for the indexing.
        let heads = 3, nope = 128, rot = 64, vd = 128, rank = 96, hd = nope + rot
        let positions: [Int32] = [0, 1, 17, 1000, 8191]
        let tokens = positions.count
        let dp = try gpu.upload(ints: positions)
        let what = "\(tokens) tok @ 0…8191, \(heads) heads × (\(nope) + \(rot)), rank \(rank)"

        // Rope on queries and the shared key, YaRN factor 40 as V2-Lite: original contexts of 64
        // and 4096 put the ramp at pairs 0 … 9 and 10 … 23; then without YaRN.
        let ropes: [(String, YarnRope)] = [
            ("YaRN, ramp 0…9", YarnRope(base: 10_000, dimensions: rot, freqScale: 1 / 40, extFactor: 1, attnFactor: 0.8, originalContext: 64)),
            ("YaRN, ramp 10…23", YarnRope(base: 10_000, dimensions: rot, freqScale: 1 / 40, extFactor: 1, attnFactor: 1.2,
                                          originalContext: 4096)),
            ("no YaRN", YarnRope(base: 10_000, dimensions: rot)),
        ]
        for (name, rope) in ropes {
            var q = random(tokens * heads * hd, &rng), ca = random(tokens * (rank + rot), &rng)
            let c = (0..<tokens).flatMap { t in ca[(t * (rank + rot))..<(t * (rank + rot) + rank)] }
            let gq = try gpu.upload(q), gca = try gpu.upload(ca), gc = try gpu.upload([Float](repeating: .nan, count: c.count))
            try GPUOps.mlaRope(gpu, q: gq.pointer, ca: gca.pointer, c: gc.pointer, positions: dp.pointer, tokens: tokens, heads: heads,
                               qkNope: nope, rank: rank, yarn: GPUOps.Yarn(rope))
            positions.withUnsafeBufferPointer { pp in
                q.withUnsafeMutableBufferPointer {
                    rope.apply($0.baseAddress!, tokens: tokens, heads: heads, stride: hd, offset: nope, positions: pp.baseAddress!)
                }
                ca.withUnsafeMutableBufferPointer {
                    rope.apply($0.baseAddress!, tokens: tokens, heads: 1, stride: rank + rot, offset: rank, positions: pp.baseAddress!)
                }
            }
            record("MLA rope \(name): queries vs YarnRope", what, normalizedError(try gpu.download(gq.pointer, count: q.count), q), 1e-5)
            record("MLA rope \(name): shared key vs YarnRope", what, normalizedError(try gpu.download(gca.pointer, count: ca.count), ca), 1e-5)
            let split = try gpu.download(gc.pointer, count: c.count)
            record("MLA rope \(name): compressed kv split off", what, split.map(\.bitPattern) == c.map(\.bitPattern) ? 0 : 1, 0)
        }

        // Cache store: keys [k_nope | k_pe] and values [v | zeros] at the tokens' positions = the
        // CPU's rows rounded to f16, over caches of NaN halves (rows not written stay NaN).
        do {
            let capacity = 8192, width = heads * hd
            let kv = random(tokens * heads * (nope + vd), &rng), ca = random(tokens * (rank + rot), &rng)
            var keys = [Float](repeating: 0, count: tokens * width), values = keys
            kv.withUnsafeBufferPointer { k in ca.withUnsafeBufferPointer { a in
                keys.withUnsafeMutableBufferPointer { kp in values.withUnsafeMutableBufferPointer { vp in
                    MultiLatentAttention.cacheRows(kv: k.baseAddress!, kpe: a.baseAddress! + rank, kpeStride: rank + rot, keys: kp.baseAddress!,
                                                   values: vp.baseAddress!, tokens: tokens, heads: heads, qkNope: nope, qkRope: rot, vDim: vd)
                } }
            } }
            var refK = [UInt16](repeating: 0xFFFF, count: capacity * width), refV = refK
            for t in 0..<tokens {
                let row = Int(positions[t]) * width
                for i in 0..<width { refK[row + i] = floatToHalf(keys[t * width + i]); refV[row + i] = floatToHalf(values[t * width + i]) }
            }
            let nans = [UInt16](repeating: 0xFFFF, count: capacity * width)
            let gK = try gpu.allocator.allocate(nans.count * 2), gV = try gpu.allocator.allocate(nans.count * 2)
            for b in [gK, gV] { try nans.withUnsafeBytes { try gpu.copy(toDevice: b.pointer, from: $0.baseAddress!, bytes: $0.count) } }
            let gkv = try gpu.upload(kv), gca = try gpu.upload(ca)
            try GPUOps.mlaStore(gpu, kv: gkv.pointer, ca: gca.pointer, keyCache: gK.pointer, valueCache: gV.pointer, positions: dp.pointer,
                                tokens: tokens, heads: heads, qkNope: nope, qkRope: rot, vDim: vd, rank: rank)
            func halves(_ b: DeviceBuffer) throws -> [UInt16] {
                var out = [UInt16](repeating: 0, count: nans.count)
                try out.withUnsafeMutableBytes { try gpu.copy(toHost: $0.baseAddress!, from: b.pointer, bytes: $0.count) }
                return out
            }
            let gotK = try halves(gK), gotV = try halves(gV)
            let mismatches = zip(gotK, refK).filter { $0 != $1 }.count + zip(gotV, refV).filter { $0 != $1 }.count
            record("MLA cache store vs the CPU's rows in f16", "\(tokens) tok, \(heads) heads × (\(nope) + \(rot)), values \(vd), capacity \(capacity)",
                   Double(mismatches) / Double(2 * tokens * width), 0)
        }

        // Merge: each head's first vDim outputs, as the CPU's mergeHeads.
        do {
            let attn = random(tokens * heads * hd, &rng)
            var ref = [Float](repeating: 0, count: tokens * heads * vd)
            attn.withUnsafeBufferPointer { a in ref.withUnsafeMutableBufferPointer {
                MultiLatentAttention.mergeHeads(a.baseAddress!, $0.baseAddress!, tokens: tokens, heads: heads, headDim: hd, vDim: vd)
            } }
            let ga = try gpu.upload(attn), gout = try gpu.upload([Float](repeating: .nan, count: ref.count))
            try GPUOps.mlaMerge(gpu, attention: ga.pointer, out: gout.pointer, tokens: tokens, heads: heads, headDim: hd, vDim: vd)
            let got = try gpu.download(gout.pointer, count: ref.count)
            record("MLA merge vs mergeHeads", "\(tokens) tok, \(heads) heads × \(hd) → \(vd)", got.map(\.bitPattern) == ref.map(\.bitPattern) ? 0 : 1, 0)
        }
    }
}
