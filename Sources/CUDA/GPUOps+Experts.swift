// The gather / scatter / slot-sum steps of routed experts on the GPU (KernelSource+Experts).
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
}
