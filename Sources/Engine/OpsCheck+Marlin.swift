// ops-check's Marlin GEMM cases: the repacked 4-bit weights through the tensor-core kernel
// against (a) the same arithmetic on the host — f16 scale and offset per 32 columns, weights
// s·q + m rounded to f16 once, f16 activations, sums in double — and (b) the float reference.
import Core
import CPUKernels
import CUDA
import Foundation

extension OpsCheck {
    /// Nibble, scale and offset of element i of a 4-bit GGUF row (w = s·q + m), as the repack kernel reads them.
    static func fourBitParts(_ type: GGMLType, row: UnsafeRawPointer, _ i: Int) -> (q: Int, s: Float, m: Float) {
        func f16(_ p: UnsafeRawPointer) -> Float { Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self))) }
        func byte(_ p: UnsafeRawPointer, _ o: Int) -> Int { Int(p.load(fromByteOffset: o, as: UInt8.self)) }
        switch type {
        case .q4_0, .q4_1:
            let b = i / 32, j = i % 32, size = type == .q4_0 ? 18 : 20
            let k = row + b * size
            let x = byte(k, (type == .q4_0 ? 2 : 4) + (j & 15))
            let d = f16(k)
            return (j < 16 ? x & 15 : x >> 4, d, type == .q4_0 ? -8 * d : f16(k + 2))
        default:  // q4_K
            let sb = i / 256, e = i % 256, c = e / 32, l = e % 32
            let k = row + sb * 144, sc: Int, mn: Int
            if c < 4 { sc = byte(k, 4 + c) & 63; mn = byte(k, 4 + c + 4) & 63 } else {
                sc = (byte(k, 4 + c + 4) & 0xF) | ((byte(k, 4 + c - 4) >> 6) << 4)
                mn = (byte(k, 4 + c + 4) >> 4) | ((byte(k, 4 + c) >> 6) << 4)
            }
            let x = byte(k, 16 + 32 * (c / 2) + l)
            return ((c & 1) == 1 ? x >> 4 : x & 15, f16(k) * Float(sc), -(f16(k + 2) * Float(mn)))
        }
    }

    static func marlinChecks(gpu: GPU, rng: inout SeededGenerator, pool: ThreadPool,
                             record: (String, String, Double, Double) -> Void) throws {
        for type in [GGMLType.q4_0, .q4_1, .q4_K] {
            let k = type == .q4_K
            // 208 rows: a block of 128 and one of 80 (idle warps); 576 columns: a last chunk of 64;
            // [256, 4096]: split over the columns; [4096, 512]: many row blocks.
            for (rows, cols, tokensList) in [(208, k ? 768 : 576, [2, 7, 9, 33, 64]), (256, 4096, [8, 17, 64]), (4096, 512, [3, 64])] {
                let host = try HostMatrix(type, rows: rows, cols: cols, rng: &rng)
                let w = host.weight, raw = host.data, bytes = host.bytes
                // The weights as the kernel sees them: f16(f16(s)·q + f16(m)).
                var w16 = [Float](repeating: 0, count: rows * cols)
                for r in 0..<rows {
                    let row = raw + r * w.rowBytes
                    for c in 0..<cols {
                        let (q, s, m) = fourBitParts(type, row: row, c)
                        w16[r * cols + c] = Float(Float16(Double(Float(Float16(s))) * Double(q) + Double(Float(Float16(m)))))
                    }
                }
                let dw = try gpu.allocator.allocate(bytes)
                try gpu.copy(toDevice: dw.pointer, from: raw, bytes: bytes)
                let (mm, kept) = try GPUOps.marlinRepacked(gpu, DeviceMatrix(type: type, rows: rows, cols: cols, pointer: dw.pointer))
                defer { _ = kept }
                for tokens in tokensList {
                    let x = random(tokens * cols, &rng)
                    var ref = [Float](repeating: 0, count: tokens * rows)
                    x.withUnsafeBufferPointer { xp in
                        ref.withUnsafeMutableBufferPointer { Matmul.reference(w, x: xp.baseAddress!, y: $0.baseAddress!, tokens: tokens, pool: pool) }
                    }
                    var same = [Float](repeating: 0, count: tokens * rows)
                    let x16 = x.map { Double(Float(Float16($0))) }
                    for t in 0..<tokens { for r in 0..<rows {
                        var acc = 0.0
                        for c in 0..<cols { acc += Double(w16[r * cols + c]) * x16[t * cols + c] }
                        same[t * rows + r] = Float(acc)
                    } }
                    let dx = try gpu.upload(x), dx16 = try gpu.allocator.allocate(2 * tokens * cols)
                    let dy = try gpu.allocator.allocate(tokens * rows * 4), dy2 = try gpu.allocator.allocate(tokens * rows * 4)
                    let partial = try gpu.allocator.allocate(max(1, GPUOps.marlinScratch(gpu: gpu, rows: rows, cols: cols, tokens: tokens)) * 4)
                    try GPUOps.toF16(gpu, x: dx.pointer, y: dx16.pointer, count: tokens * cols)
                    try GPUOps.linearMarlin(gpu, mm, x16: dx16.pointer, y: dy.pointer, tokens: tokens, partial: partial.pointer)
                    try GPUOps.linearMarlin(gpu, mm, x16: dx16.pointer, y: dy2.pointer, tokens: tokens, partial: partial.pointer)
                    let out = try gpu.download(dy.pointer, count: tokens * rows), again = try gpu.download(dy2.pointer, count: tokens * rows)
                    let splits = GPUOps.marlinSplits(gpu: gpu, rows: rows, cols: cols).count
                    let shape = "[\(rows), \(cols)] × \(tokens) tok, \(splits) split\(splits == 1 ? "" : "s")"
                    record("marlin \(type.name) vs same arithmetic", shape, normalizedError(out, same), 1e-5)
                    record("marlin \(type.name) vs float ref", shape, normalizedError(out, ref), 2e-3)
                    record("marlin \(type.name) run twice", shape, out == again ? 0 : 1, 0)
                }
            }
        }
    }
}
