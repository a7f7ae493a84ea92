// The Marlin-class 4-bit GEMM (KernelSource+Marlin): q4_0 / q4_1 / q4_K weights repacked once
// into tensor-core fragment order, then y [tokens, rows] = x [tokens, cols] · Wᵀ for 2 to 64
// tokens with f16 activations and f32 accumulation, split over the columns when the rows alone
// do not fill the GPU (partial sums added in split order: deterministic).
import Core

/// A 4-bit matrix in the Marlin layout: `q` (rows · cols / 2 bytes) and `s` (rows · cols / 8).
public struct MarlinMatrix: Sendable {
    public let rows: Int, cols: Int
    public let q: CUdeviceptr, s: CUdeviceptr
    public init(rows: Int, cols: Int, q: CUdeviceptr, s: CUdeviceptr) { self.rows = rows; self.cols = cols; self.q = q; self.s = s }
}

extension GPUOps {
    /// Weight types the Marlin kernels take.
    public static let marlinTypes: Set<GGMLType> = [.q4_0, .q4_1, .q4_K]
    /// The most tokens one Marlin launch takes (8 tiles of 8).
    public static let marlinMaxTokens = 64

    public static func marlinSupports(_ m: DeviceMatrix) -> Bool {
        marlinTypes.contains(m.type) && m.rows % 16 == 0 && m.cols % 64 == 0 && m.rows > 0
    }

    /// The Marlin kernels exist on compute capability 8.0 and newer (cp.async, mma.m16n8k16).
    public static func marlinAvailable(on gpu: GPU) -> Bool { gpu.device.computeCapability.major >= 8 }

    /// Bytes of the repacked nibbles and scales of a [rows, cols] matrix.
    public static func marlinBytes(rows: Int, cols: Int) -> (q: Int, s: Int) { (rows * cols / 2, rows * cols / 8) }

    /// Repacks `m` (GGUF blocks on the device) into `q` and `s` (marlinBytes each).
    public static func marlinRepack(_ gpu: GPU, _ m: DeviceMatrix, q: CUdeviceptr, s: CUdeviceptr) throws {
        guard marlinAvailable(on: gpu) else {
            throw CUDAError.invalidArgument("the Marlin GEMM needs compute capability 8.0 or newer; \(gpu.device.name) is "
                                            + "\(gpu.device.computeCapability.major).\(gpu.device.computeCapability.minor)")
        }
        guard marlinSupports(m) else {
            throw CUDAError.invalidArgument("Marlin layout for \(m.type.name) [\(m.rows), \(m.cols)]: needs q4_0, q4_1 or q4_K, "
                                            + "rows a multiple of 16 and columns a multiple of 64")
        }
        let threads = m.rows / 16 * (m.cols / 64) * 32
        try gpu.launch("marlin_repack_" + m.type.name, grid: (blocks(threads, 256), 1, 1), block: 256,
                       [.pointer(m.pointer), .u64(UInt64(m.rowBytes)), .int(Int32(m.rows)), .int(Int32(m.cols)), .pointer(q), .pointer(s)])
    }

    /// `m` repacked into new device buffers (the returned buffers keep them alive).
    public static func marlinRepacked(_ gpu: GPU, _ m: DeviceMatrix) throws -> (matrix: MarlinMatrix, buffers: [DeviceBuffer]) {
        let size = marlinBytes(rows: m.rows, cols: m.cols)
        let q = try gpu.allocator.allocate(size.q), s = try gpu.allocator.allocate(size.s)
        try marlinRepack(gpu, m, q: q.pointer, s: s.pointer)
        return (MarlinMatrix(rows: m.rows, cols: m.cols, q: q.pointer, s: s.pointer), [q, s])
    }

    /// Column splits for a [rows, cols] matrix: enough blocks of 128 rows to give every
    /// multiprocessor two, each split a multiple of 128 columns.
    public static func marlinSplits(gpu: GPU, rows: Int, cols: Int) -> (count: Int, columns: Int) {
        marlinSplits(multiprocessors: gpu.device.multiprocessors, rows: rows, cols: cols)
    }

    static func marlinSplits(multiprocessors: Int, rows: Int, cols: Int) -> (count: Int, columns: Int) {
        let rowBlocks = blocks(rows, 128)
        let wanted = max(1, min(blocks(2 * multiprocessors, rowBlocks), blocks(cols, 128), 16))
        let columns = blocks(blocks(cols, wanted), 128) * 128
        return (blocks(cols, columns), columns)
    }

    /// Floats of partial sums `linearMarlin` needs for `tokens` (0 without a split).
    public static func marlinScratch(gpu: GPU, rows: Int, cols: Int, tokens: Int) -> Int {
        let splits = marlinSplits(gpu: gpu, rows: rows, cols: cols).count
        return splits > 1 ? splits * tokens * rows : 0
    }

    /// y [tokens, rows] = x16 [tokens, cols] (f16) · Wᵀ; `partial` holds marlinScratch floats.
    public static func linearMarlin(_ gpu: GPU, _ m: MarlinMatrix, x16: CUdeviceptr, y: CUdeviceptr, tokens: Int, partial: CUdeviceptr) throws {
        guard tokens >= 1, tokens <= marlinMaxTokens else {
            throw CUDAError.invalidArgument("Marlin GEMM for \(tokens) tokens (1 ... \(marlinMaxTokens))")
        }
        let (splits, columns) = marlinSplits(gpu: gpu, rows: m.rows, cols: m.cols)
        let tiles = blocks(tokens, 8)
        try gpu.launch("marlin_q4_\(tiles)", grid: (blocks(m.rows, 128), splits, 1), block: 256,
                       [.pointer(m.q), .pointer(m.s), .pointer(x16), .int(Int32(m.rows)), .int(Int32(m.cols)), .int(Int32(tokens)),
                        .int(Int32(columns)), .pointer(splits > 1 ? partial : y)])
        if splits > 1 {
            let count = tokens * m.rows
            try gpu.launch("marlin_reduce", grid: (min(blocks(count, 256), 4 * gpu.device.multiprocessors), 1, 1), block: 256,
                           [.pointer(partial), .int(Int32(splits)), .u64(UInt64(count)), .pointer(y)])
        }
    }
}
