// What this machine offers: CPU features for the kernel choice and the CUDA devices, if any.
// `swiftkt devices` prints it; `--selftest` compiles a kernel with NVRTC, runs it on each GPU
// and checks the result against the CPU.
import Foundation

public struct CPUInfo: Sendable {
    public var model: String
    public var cores: Int
    public var flags: Set<String>

    public static func current() -> CPUInfo {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        var model = "unknown", flags = Set<String>()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name", model == "unknown" { model = parts[1] }
            if parts[0] == "flags", flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
        }
        return CPUInfo(model: model, cores: ProcessInfo.processInfo.activeProcessorCount, flags: flags)
    }

    /// The SIMD features the kernels care about, in order.
    public var simdFeatures: [String] {
        ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"]
            .filter { flags.contains($0) }
    }
}

public enum CUDAProbe {
    public struct Report: Sendable {
        public var driverVersion: Int32?
        public var nvrtcVersion: (Int32, Int32)?
        public var devices: [CUDADevice] = []
        public var problem: String?
        /// NCCL's version and file when found (collectives between GPUs), or why not.
        public var nccl: (version: String, path: String)?
        public var ncclProblem: String?
    }

    /// Looks for the driver, NVRTC and devices; never throws (what is missing goes in `problem`).
    public static func probe() -> Report {
        var report = Report()
        do {
            let nccl = try NCCL()
            report.nccl = ("\(nccl.version.major).\(nccl.version.minor).\(nccl.version.patch)", nccl.path)
        } catch {
            report.ncclProblem = "\(error)"
        }
        do {
            let driver = try Driver()
            report.driverVersion = try driver.driverVersion()
            let n = try driver.deviceCount()
            report.devices = try (0..<n).map { try driver.device($0) }
            if n == 0 { report.problem = "the driver reports no devices" }
        } catch {
            report.problem = "\(error)"
            return report
        }
        do {
            let nvrtc = try NVRTC()
            report.nvrtcVersion = nvrtc.version
        } catch {
            report.problem = "\(error)"
        }
        return report
    }

    static let selfTestSource = """
    extern "C" __global__ void axpy(float a, const float* x, float* y, int n) {
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = a * x[i] + y[i];
    }
    """

    /// NCCL across `ordinals` (distinct GPUs): rank i's buffer holds (i + 1) · x, an all-reduce
    /// sums them in place; returns the max abs error of every rank's result against
    /// (n(n + 1) / 2) · x.
    public static func ncclSelfTest(ordinals: [Int]) throws -> Float {
        let driver = try Driver(), nccl = try NCCL()
        let count = 1 << 20
        var rng = SystemRandomNumberGenerator()
        let x = (0..<count).map { _ in Float(Int.random(in: -64...64, using: &rng)) / 64 }
        var buffers: [CUdeviceptr] = [], streams: [CUstream] = []
        let devices = try ordinals.map { try driver.device($0) }
        defer {
            for (d, b) in zip(devices, buffers) { try? driver.makeCurrent(d); try? driver.free(b) }
        }
        for (rank, d) in devices.enumerated() {
            try driver.makeCurrent(d)
            let scaled = x.map { $0 * Float(rank + 1) }
            let b = try driver.allocate(count * 4)
            buffers.append(b)
            try scaled.withUnsafeBytes { try driver.copy(toDevice: b, from: $0.baseAddress!, bytes: count * 4) }
            streams.append(try driver.makeStream())
        }
        let comms = try nccl.communicators(ordinals: ordinals)
        try nccl.allReduceSum(comms, buffers: buffers, count: count, streams: streams)
        let n = Float(ordinals.count), factor = n * (n + 1) / 2
        var worst: Float = 0
        for (d, (b, stream)) in zip(devices, zip(buffers, streams)) {
            try driver.makeCurrent(d)
            try driver.synchronize(stream)
            var y = [Float](repeating: .nan, count: count)
            try y.withUnsafeMutableBytes { try driver.copy(toHost: $0.baseAddress!, from: b, bytes: count * 4) }
            for i in 0..<count { worst = max(worst, abs(y[i] - factor * x[i])) }
        }
        return worst
    }

    /// Compiles and runs y = a·x + y on device `ordinal`; returns the max abs error vs the CPU.
    public static func selfTest(ordinal: Int) throws -> Float {
        let driver = try Driver()
        let device = try driver.device(ordinal)
        try driver.makeCurrent(device)
        let cubin = try NVRTC().compile(source: selfTestSource, name: "axpy", architecture: device.architecture)
        let function = try driver.loadFunction(image: cubin, name: "axpy")
        let n = 1_000_003
        var rng = SystemRandomNumberGenerator()
        let x = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
        var y = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
        let expected = zip(x, y).map { 2.5 * $0 + $1 }
        let bytes = n * 4
        let dx = try driver.allocate(bytes), dy = try driver.allocate(bytes)
        defer { try? driver.free(dx); try? driver.free(dy) }
        try x.withUnsafeBytes { try driver.copy(toDevice: dx, from: $0.baseAddress!, bytes: bytes) }
        try y.withUnsafeBytes { try driver.copy(toDevice: dy, from: $0.baseAddress!, bytes: bytes) }
        var a: Float = 2.5, px = dx, py = dy, count = Int32(n)
        try withUnsafeMutablePointer(to: &a) { pa in
            try withUnsafeMutablePointer(to: &px) { ppx in
                try withUnsafeMutablePointer(to: &py) { ppy in
                    try withUnsafeMutablePointer(to: &count) { pn in
                        var args: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(pa), UnsafeMutableRawPointer(ppx),
                                                                UnsafeMutableRawPointer(ppy), UnsafeMutableRawPointer(pn)]
                        try driver.launch(function, grid: (UInt32((n + 255) / 256), 1, 1), block: (256, 1, 1), arguments: &args)
                    }
                }
            }
        }
        try driver.synchronize()
        try y.withUnsafeMutableBytes { try driver.copy(toHost: $0.baseAddress!, from: dy, bytes: bytes) }
        var worst: Float = 0
        for i in 0..<n { worst = max(worst, abs(y[i] - expected[i])) }
        return worst
    }
}
