// One CUDA device ready for work: its primary context, one non-blocking stream, the kernel
// module compiled from KernelSource (NVRTC, disk-cached), and a caching allocator. Every
// operator (GPUOps.swift) launches on `stream`; callers synchronize when they read results.
import Core
import Foundation

/// A kernel argument, passed by value as the kernel's C signature declares it.
public enum KernelArgument {
    case pointer(CUdeviceptr)
    case int(Int32)
    case float(Float)
    case u64(UInt64)
}

public final class GPU: @unchecked Sendable {
    public let driver: Driver
    public let device: CUDADevice
    public let stream: CUstream
    /// The device's primary context (copies between GPUs name both ends' contexts).
    public let context: CUcontext
    public let allocator: CachingAllocator
    private let module: CUmodule
    private var functions: [String: CUfunction] = [:]
    private let lock = NSLock()
    /// Seconds NVRTC took (0 when the cubin came from the disk cache).
    public let compileSeconds: Double
    /// Kernels launch with programmatic dependent launch (sm_90 and newer, CUDA 12+): each
    /// kernel's blocks are scheduled while the previous kernel finishes and wait in
    /// `griddepcontrol.wait` (every kernel of KernelSource starts with it) instead of paying the
    /// launch gap after it. `SWIFTKT_CUDA_PDL=0` turns it off.
    public var programmaticLaunch: Bool
    /// GEMV kernels ask for their weight rows into L2 before waiting for the kernel before them
    /// (KernelSource `prefetch_warp_rows`; sm_90). Off unless `SWIFTKT_CUDA_PREFETCH=1`: on an
    /// H100 it measured −1 % decode on the 8B shape and +2.7 % on the SmolLM2 shape (860a72d).
    public var prefetchWeights: Bool
    /// Attention with the CPU's numerics over at most `GPUOps.shortAttentionMaxKeys` keys runs as
    /// one kernel (KernelSource+Decode `attn_short_*`) instead of scores + sequential pass.
    /// `SWIFTKT_CUDA_SHORT_ATTENTION=0` keeps the two kernels.
    public var shortAttention: Bool
    /// A decode step's rope and KV-cache store happen inside that one kernel
    /// (`attn_short_rope_*`) instead of rope_store's launch. Off unless `SWIFTKT_CUDA_SHORT_ROPE=1`:
    /// its first version made the 8B decode slower on an H100 (404 against 432 t/s, b6c3542: the
    /// rope's serial prologue held the block before its cache loads); the version that starts the
    /// loads first is not yet measured.
    public var shortAttentionRope: Bool
    /// The one-kernel short form at head width 192 (deepseek2's MLA; `attn_short_192`), bit-equal
    /// to the two kernels (ops check). On by default since session 12: DeepSeek-V2-Lite shape
    /// hybrid tg64 73.6 against 65.2 t/s (H200 host, five rounds). `SWIFTKT_CUDA_SHORT_192=0`
    /// keeps the two kernels.
    public var shortAttention192: Bool
    /// One-token q4_K GEMVs load the first 1 or 2 sub-block pairs of each lane's weights into
    /// registers before waiting for the kernel before them (KernelSource `mmv1p1_q4_K`,
    /// `mmv1p2_q4_K`; the same sums as `mmv1_q4_K`); 0 keeps `mmv1_q4_K`. `SWIFTKT_CUDA_PRELOAD=0|1|2`;
    /// by default 1 where kernels launch dependently (sm_90: Llama-3-8B shape tg128 508–515
    /// against 483–484 t/s on an H200, three rounds; 2 pairs gave 490–494), else 0 (without the
    /// dependent launch there is no earlier kernel to overlap). Those kernels skip the L2
    /// prefetch hint (`prefetchWeights`).
    public var preloadPairs: Int
    /// Measurement only: decode kernels the CUDA decoder leaves out (`SWIFTKT_CUDA_DEBUG_SKIP`,
    /// a comma list of norm, rope, attn, glu, qkv, o, gateup, down). The results are wrong; the
    /// step's time without a family, against the default's, is what that family costs inside
    /// the captured step (no profiler on the lent machines reads graph timelines).
    public let debugSkip: Set<String>
    /// The one-kernel short attention takes each chunk's softmax factors from a warp scan per
    /// head before the per-element f16 walk (KernelSource+Decode `attn_short_scan_*`, the same
    /// values bit for bit by construction) instead of the walk computing them key by key.
    /// On by default (H100, 8B: tg128 467 against 458–459 t/s, tg1024 349 against 291; session
    /// 14); `SWIFTKT_CUDA_ATTN_SCAN=0` keeps the walk.
    public var attentionScan: Bool
    /// `numerics: fast` attention of chunks below the tiled kernel's size and up to
    /// `GPUOps.shortAttentionF32MaxKeys` keys runs as one kernel in f32 (`attn_short_f32_*`:
    /// the short kernel's blocks and staging, an online softmax over its chunks) instead of
    /// split-K + combine. On by default (H100, 8B, cuda-fast.yaml: tg128 482 against 466–469 t/s,
    /// session 18); `SWIFTKT_CUDA_SHORT_F32=0` keeps split-K (the ops check compares both with
    /// the exact reference either way).
    public var shortAttentionF32: Bool
    /// The bound on visible keys for that kernel (GPUOps.shortAttentionF32MaxKeys, or
    /// `SWIFTKT_CUDA_SHORT_F32_KEYS=N` to measure another; the ops check's timing raises it to
    /// time the kernel past it).
    public var shortAttentionF32MaxKeys = Int(ProcessInfo.processInfo.environment["SWIFTKT_CUDA_SHORT_F32_KEYS"] ?? "")
        .flatMap { $0 > 0 ? $0 : nil } ?? GPUOps.shortAttentionF32MaxKeys
    /// Measurement only: the decode step (counted from 1) whose kernels write their warps'
    /// times (`SWIFTKT_CUDA_TIMELINE=N`, N ≥ 1; the kernels are then compiled with SWIFTKT_TIMELINE,
    /// KernelSource's `TimelineMark`), for the CUDA decoder's timeline report on standard error.
    public let timelineStep: Int?
    /// While not nil, every launch's kernel name is appended (the names of a captured graph).
    public var launchLog: [String]?

    /// Opens device `ordinal` and compiles (or loads from the cache) the operator kernels.
    public init(ordinal: Int = 0) throws {
        let driver = try Driver()
        let count = try driver.deviceCount()
        guard ordinal < count else {
            throw count == 0 ? CUDAError.noDevice
                : CUDAError.invalidArgument("cuda:\(ordinal) does not exist; this machine has \(count) CUDA device(s)")
        }
        self.driver = driver
        device = try driver.device(ordinal)
        try driver.makeCurrent(device)
        context = try driver.primaryContext(device)
        stream = try driver.makeStream()
        let started = Date()
        timelineStep = ProcessInfo.processInfo.environment["SWIFTKT_CUDA_TIMELINE"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
        // Measurement only: SWIFTKT_NVRTC_EXTRA="-DNAME …" adds compile options (kernel variants
        // kept behind a macro until measured; the disk cache's key includes them).
        let extra = (ProcessInfo.processInfo.environment["SWIFTKT_NVRTC_EXTRA"] ?? "").split(separator: " ").map(String.init)
        let cubin = try NVRTC().compile(source: KernelSource.all, name: "swiftkt-ops", architecture: device.architecture,
                                        options: ["-lineinfo"] + (timelineStep != nil ? ["-DSWIFTKT_TIMELINE"] : []) + extra)
        compileSeconds = Date().timeIntervalSince(started)
        module = try driver.loadModule(image: cubin)
        programmaticLaunch = device.computeCapability.major >= 9 && driver.hasLaunchEx
            && ProcessInfo.processInfo.environment["SWIFTKT_CUDA_PDL"] != "0"
        prefetchWeights = device.computeCapability.major >= 9 && ProcessInfo.processInfo.environment["SWIFTKT_CUDA_PREFETCH"] == "1"
        shortAttentionRope = ProcessInfo.processInfo.environment["SWIFTKT_CUDA_SHORT_ROPE"] == "1"
        shortAttention = ProcessInfo.processInfo.environment["SWIFTKT_CUDA_SHORT_ATTENTION"] != "0"
        shortAttention192 = ProcessInfo.processInfo.environment["SWIFTKT_CUDA_SHORT_192"] != "0"
        debugSkip = Set((ProcessInfo.processInfo.environment["SWIFTKT_CUDA_DEBUG_SKIP"] ?? "").split(separator: ",").map(String.init))
        attentionScan = ProcessInfo.processInfo.environment["SWIFTKT_CUDA_ATTN_SCAN"] != "0"
        shortAttentionF32 = ProcessInfo.processInfo.environment["SWIFTKT_CUDA_SHORT_F32"] != "0"
        preloadPairs = min(max(Int(ProcessInfo.processInfo.environment["SWIFTKT_CUDA_PRELOAD"] ?? "") ?? (programmaticLaunch ? 1 : 0), 0), 2)
        allocator = CachingAllocator(driver: driver)
    }

    /// Per-kernel GPU times (SWIFTKT_PROFILE_KERNELS=1; nil otherwise).
    public let kernelProfile: KernelProfile? = KernelProfile.enabled ? KernelProfile() : nil

    private var blasState: Result<CUBLAS, Error>?

    /// cuBLAS on this GPU's stream, opened on first use; nil (with the reason in `blasProblem`)
    /// when the library is missing: prefill then stays on the GEMV kernels.
    public var blas: CUBLAS? {
        lock.lock(); defer { lock.unlock() }
        if blasState == nil { blasState = Result { try CUBLAS(stream: stream) } }
        return try? blasState!.get()
    }

    public var blasProblem: String? {
        _ = blas
        lock.lock(); defer { lock.unlock() }
        if case let .failure(e) = blasState { return "\(e)" }
        return nil
    }

    /// Makes this device's context current on the calling thread (driver calls need it).
    public func makeCurrent() throws { try driver.makeCurrent(device) }

    public func function(_ name: String) throws -> CUfunction {
        lock.lock(); defer { lock.unlock() }
        if let f = functions[name] { return f }
        let f = try driver.function(module, name)
        functions[name] = f
        return f
    }

    /// Launches kernel `name` on the stream.
    public func launch(_ name: String, grid: (Int, Int, Int), block: Int, _ args: [KernelArgument]) throws {
        let f = try function(name)
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(args.count, 1) * 8, alignment: 8)
        defer { storage.deallocate() }
        var pointers: [UnsafeMutableRawPointer?] = []
        for (i, a) in args.enumerated() {
            let slot = storage + i * 8
            switch a {
            case let .pointer(p): slot.storeBytes(of: p, as: UInt64.self)
            case let .int(v): slot.storeBytes(of: v, as: Int32.self)
            case let .float(v): slot.storeBytes(of: v, as: Float.self)
            case let .u64(v): slot.storeBytes(of: v, as: UInt64.self)
            }
            pointers.append(slot)
        }
        guard grid.0 > 0, grid.1 > 0, grid.2 > 0 else { return }
        launchLog?.append(name)
        var timed: (CUevent, CUevent)?
        if let kernelProfile {
            timed = try kernelProfile.events(driver)
            try driver.record(timed!.0, on: stream)
        }
        defer {
            if let kernelProfile, let (start, end) = timed, (try? driver.record(end, on: stream)) != nil {
                kernelProfile.add(name, start: start, end: end)
            }
        }
        if programmaticLaunch {
            try driver.launchProgrammatic(f, grid: (UInt32(grid.0), UInt32(grid.1), UInt32(grid.2)), block: (UInt32(block), 1, 1),
                                          stream: stream, arguments: &pointers, name: name)
        } else {
            try driver.launch(f, grid: (UInt32(grid.0), UInt32(grid.1), UInt32(grid.2)), block: (UInt32(block), 1, 1),
                              stream: stream, arguments: &pointers, name: name)
        }
    }

    /// Waits for everything queued on the stream.
    public func synchronize() throws { try driver.synchronize(stream) }

    // MARK: Copies

    /// A copy to the device, ordered with this GPU's stream and complete on return. (The
    /// driver's synchronous cuMemcpyHtoD may return before a pageable source reaches the device,
    /// and it does not order with a non-blocking stream's kernels.)
    public func copy(toDevice dst: CUdeviceptr, from src: UnsafeRawPointer, bytes: Int) throws {
        try driver.copyAsync(toDevice: dst, from: src, bytes: bytes, stream: stream)
        try synchronize()
    }

    /// A copy to the host after everything queued on the stream, complete on return.
    public func copy(toHost dst: UnsafeMutableRawPointer, from src: CUdeviceptr, bytes: Int) throws {
        try driver.copyAsync(toHost: dst, from: src, bytes: bytes, stream: stream)
        try synchronize()
    }

    public func upload(_ src: UnsafeRawPointer, bytes: Int, to dst: CUdeviceptr) throws {
        try driver.copyAsync(toDevice: dst, from: src, bytes: bytes, stream: stream)
    }

    public func upload(_ values: [Float]) throws -> DeviceBuffer {
        let b = try allocator.allocate(values.count * 4)
        try values.withUnsafeBytes { try copy(toDevice: b.pointer, from: $0.baseAddress!, bytes: $0.count) }
        return b
    }

    public func upload(ints values: [Int32]) throws -> DeviceBuffer {
        let b = try allocator.allocate(values.count * 4)
        try values.withUnsafeBytes { try copy(toDevice: b.pointer, from: $0.baseAddress!, bytes: $0.count) }
        return b
    }

    public func download(_ src: CUdeviceptr, count: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: count)
        try synchronize()
        try out.withUnsafeMutableBytes { try copy(toHost: $0.baseAddress!, from: src, bytes: $0.count) }
        return out
    }
}

// MARK: - Memory

/// Device memory owned by a Swift object: returned to its allocator's cache when released.
public final class DeviceBuffer: @unchecked Sendable {
    public let pointer: CUdeviceptr
    public let bytes: Int
    private weak var allocator: CachingAllocator?

    init(pointer: CUdeviceptr, bytes: Int, allocator: CachingAllocator) {
        self.pointer = pointer; self.bytes = bytes; self.allocator = allocator
    }

    deinit { allocator?.recycle(pointer, bytes: bytes) }
}

/// Keeps freed device blocks by size and hands them out again, so that steady-state forward
/// passes never call cuMemAlloc / cuMemFree (which synchronize the device). Sizes are rounded
/// up to a power of two below 1 MiB and to a multiple of 2 MiB above.
public final class CachingAllocator: @unchecked Sendable {
    private let driver: Driver
    private let lock = NSLock()
    private var free: [Int: [CUdeviceptr]] = [:]
    public private(set) var bytesInUse = 0
    public private(set) var bytesCached = 0

    init(driver: Driver) { self.driver = driver }

    static func rounded(_ bytes: Int) -> Int {
        let n = max(bytes, 256)
        if n <= 1 << 20 { return 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount) }
        return (n + (2 << 20) - 1) / (2 << 20) * (2 << 20)
    }

    public func allocate(_ bytes: Int) throws -> DeviceBuffer {
        let size = CachingAllocator.rounded(bytes)
        lock.lock()
        if var list = free[size], let p = list.popLast() {
            free[size] = list
            bytesCached -= size; bytesInUse += size
            lock.unlock()
            return DeviceBuffer(pointer: p, bytes: size, allocator: self)
        }
        lock.unlock()
        let p: CUdeviceptr
        do {
            p = try driver.allocate(size)
        } catch {
            // Out of memory with blocks cached: give them back and try once more.
            releaseCached()
            p = try driver.allocate(size)
        }
        lock.lock(); bytesInUse += size; lock.unlock()
        return DeviceBuffer(pointer: p, bytes: size, allocator: self)
    }

    func recycle(_ p: CUdeviceptr, bytes: Int) {
        lock.lock(); defer { lock.unlock() }
        free[bytes, default: []].append(p)
        bytesInUse -= bytes; bytesCached += bytes
    }

    /// Frees every cached block.
    public func releaseCached() {
        lock.lock(); defer { lock.unlock() }
        for (_, list) in free { for p in list { try? driver.free(p) } }
        free.removeAll(); bytesCached = 0
    }
}
