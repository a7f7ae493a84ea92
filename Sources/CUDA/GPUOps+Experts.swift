// The gather / scatter / slot-sum steps of routed experts on the GPU and their one-launch
// GEMV (KernelSource+Experts).
import Core
import Foundation

extension GPUOps {
    /// out [count, d] = rows `indices` [count] (Int32) of x.
    public static func gatherRows(_ gpu: GPU, x: CUdeviceptr, indices: CUdeviceptr, count: Int, d: Int, out: CUdeviceptr) throws {
        try gpu.launch("gather_rows", grid: (count, 1, 1), block: 256, [.pointer(x), .pointer(indices), .int(Int32(d)), .pointer(out)])
    }

    /// slots row dest[r] = y row r · weights[r], for count rows of d.
    public static func scatterScaled(_ gpu: GPU, y: CUdeviceptr, destinations: CUdeviceptr, weights: CUdeviceptr, count: Int, d: Int,
                                     slots: CUdeviceptr) throws {
        try gpu.launch("scatter_scaled", grid: (count, 1, 1), block: 256,
                       [.pointer(y), .pointer(destinations), .pointer(weights), .int(Int32(d)), .pointer(slots)])
    }

    /// out [count] = Σ over `used` slots of slots[s] [count], in slot order.
    public static func sumSlots(_ gpu: GPU, slots: CUdeviceptr, used: Int, count: Int, out: CUdeviceptr) throws {
        try gpu.launch("sum_slots", grid: (min(blocks(count, 256), 8 * gpu.device.multiprocessors), 1, 1), block: 256,
                       [.pointer(slots), .int(Int32(used)), .u64(UInt64(count)), .pointer(out)])
    }

    /// Whether MoE routers run on the GPU in decode steps (`routerExact`; SWIFTKT_CUDA_ROUTER=0
    /// keeps them on the CPU). Same text on the Qwen3-30B-A3B shape (H100, c290ad7); the
    /// router's share of a token fell from 1.8 to 0.3 ms.
    public static let gpuRouterEnabled = ProcessInfo.processInfo.environment["SWIFTKT_CUDA_ROUTER"] != "0"

    /// Whether `routerExact` takes this router: F32 weights, rows a multiple of 16 wide.
    public static func routerExactSupports(_ w: DeviceMatrix) -> Bool { w.type == .f32 && w.cols % 16 == 0 }

    /// y [E] = W [E, n] · x [n] for one token with the CPU's float order (`router_exact_f32`):
    /// the same logits as the CPU router, bit for bit.
    public static func routerExact(_ gpu: GPU, _ w: DeviceMatrix, x: CUdeviceptr, y: CUdeviceptr) throws {
        guard routerExactSupports(w) else {
            throw CUDAError.invalidArgument("exact router for \(w.type.name) [\(w.rows), \(w.cols)] (F32, 16·k wide only)")
        }
        try gpu.launch("router_exact_f32", grid: (blocks(w.rows, 8), 1, 1), block: 128,
                       [.pointer(w.pointer), .pointer(x), .int(Int32(w.cols)), .int(Int32(w.rows)), .pointer(y)])
    }

    /// Types the one-launch experts GEMV takes.
    public static let expertsLaunchTypes: Set<GGMLType> = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]

    /// A chunk's tiles for the experts launch: `count` (expert, first row within the expert)
    /// pairs of Int32 at `pointer` on the device, each up to `rows` rows (`expertTiles`).
    public struct ExpertTiles {
        public let pointer: CUdeviceptr, count: Int, rows: Int
        public init(pointer: CUdeviceptr, count: Int, rows: Int) { self.pointer = pointer; self.count = count; self.rows = rows }
    }

    /// Whether experts may run on tensor cores (SWIFTKT_EXPERTS_MMA=0 keeps the GEMV kernels);
    /// SWIFTKT_EXPERTS_MMA_Q6K=0 keeps q6_K's on the GEMV (its kernel: Q4_K_M-like Qwen3-30B-A3B
    /// shape pp512 1 008 → 1 245 t/s, H100, c290ad7).
    public static let expertsMMAEnabled = ProcessInfo.processInfo.environment["SWIFTKT_EXPERTS_MMA"] != "0"
    public static let expertsMMAQ6KEnabled = ProcessInfo.processInfo.environment["SWIFTKT_EXPERTS_MMA_Q6K"] != "0"

    /// The tensor-core experts kernel of each type that has one.
    static let expertsMMAKernels: [GGMLType: String] = [.q4_K: "mmq_experts_q4_K", .q6_K: "mmq_experts_q6_K"]

    /// Whether a tensor-core kernel takes these experts: q4_K or q6_K matrices of 16·k rows on
    /// compute capability 8.0 or newer.
    public static func expertsMMA(_ type: GGMLType, rows: Int, gpu: GPU) -> Bool {
        expertsMMAKernels[type] != nil && rows % 16 == 0 && gpu.device.computeCapability.major >= 8
    }

    /// Rows per tile of the experts launch the runtime picks for a family of this type and
    /// height: 32 on tensor cores, else 8 (the GEMV's token tile).
    public static func expertTileRows(_ type: GGMLType, rows: Int, gpu: GPU) -> Int {
        expertsMMAEnabled && expertsMMA(type, rows: rows, gpu: gpu) && (type != .q6_K || expertsMMAQ6KEnabled) ? 32 : 8
    }

    /// Every routed expert of a chunk in one launch: for expert e, rows start[e] ..< start[e + 1]
    /// of y0 (and y1) = those rows of x times expert e's matrix, w0 + e · stride (and w1 + e ·
    /// stride: gate and up together). `start` is a device array of experts + 1 row offsets (pairs
    /// grouped by expert); `tiles` cover each expert's rows: 32-row tiles run the type's
    /// tensor-core kernel (`expertsMMA` must hold), 8-row tiles the GEMV. x [pairs, w0.cols] is
    /// quantized into `act` first (unless it holds x already).
    public static func linearExperts(_ gpu: GPU, w0: DeviceMatrix, w1: DeviceMatrix?, stride: Int, x: CUdeviceptr,
                                     act: QuantizedActivationsGPU, y0: CUdeviceptr, y1: CUdeviceptr?, pairs: Int, start: CUdeviceptr,
                                     tiles: ExpertTiles) throws {
        let mma = tiles.rows == 32
        guard expertsLaunchTypes.contains(w0.type), w1.map({ $0.type == w0.type && $0.rows == w0.rows && $0.cols == w0.cols }) ?? true,
              act.n == w0.cols, pairs <= act.tokens, tiles.count <= 65535, tiles.rows == 8 || tiles.rows == 32,
              !mma || expertsMMA(w0.type, rows: w0.rows, gpu: gpu) else {
            throw CUDAError.invalidArgument("experts launch for \(w0.type.name) [\(w0.rows), \(w0.cols)] × \(pairs) rows in \(tiles.count) "
                                            + "tiles of \(tiles.rows) (activations of \(act.n) for \(act.tokens) rows; tiles of 32 need "
                                            + "q4_K or q6_K, 16·k rows and compute capability 8.0)")
        }
        guard pairs > 0, tiles.count > 0 else { return }
        try quantize(gpu, x: x, tokens: pairs, weightType: w0.type, act: act)
        let rows = w0.rows * (w1 == nil ? 1 : 2)
        let common: [KernelArgument] = [.pointer(w0.pointer), .pointer(w1?.pointer ?? 0), .u64(UInt64(stride)), .int(Int32(w0.rows)),
                                        .pointer(y0), .pointer(y1 ?? 0), .u64(UInt64(w0.rowBytes)), .int(Int32(w0.cols)), .pointer(start),
                                        .pointer(tiles.pointer)]
        if mma, let kernel = expertsMMAKernels[w0.type] {
            try gpu.launch(kernel, grid: (blocks(rows, 64), tiles.count, 1), block: 128,
                           common + [.pointer(act.q.pointer), .pointer(act.ai.pointer), .pointer(act.ak.pointer)])
        } else {
            try gpu.launch("mmvq_experts_" + suffix(w0.type), grid: (blocks(rows, 4), tiles.count, 1), block: 128, common + actArgs(act))
        }
    }

    /// The (expert, first row within the expert) pairs of the `rows`-row tiles of experts whose
    /// rows are start[e] ..< start[e + 1], flattened: the grid rows of `linearExperts`.
    public static func expertTiles(start: [Int], rows: Int = 8) -> [Int32] {
        var out: [Int32] = []
        for e in 0..<max(start.count - 1, 0) {
            var t = 0
            while t < start[e + 1] - start[e] { out += [Int32(e), Int32(t)]; t += rows }
        }
        return out
    }
}
