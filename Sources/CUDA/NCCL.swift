// NCCL, loaded at run time like the driver and NVRTC: collectives between the GPUs of this
// process (one communicator per device, `ncclCommInitAll`), for layers split over GPUs with
// tensor parallelism. Not needed by anything else: a machine without libnccl runs everything
// but the collectives. Looked for in SWIFTKT_NCCL, the usual library directories and the
// `nvidia-nccl-cu12` / `-cu13` wheels of the machine's Python (PyTorch installs one).
import Foundation

public final class NCCL: @unchecked Sendable {
    typealias FnVersion = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    typealias FnInitAll = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UnsafePointer<Int32>) -> Int32
    typealias FnDestroy = @convention(c) (OpaquePointer) -> Int32
    typealias FnGroup = @convention(c) () -> Int32
    // ncclAllReduce(sendbuff, recvbuff, count, datatype, op, comm, stream)
    typealias FnAllReduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer,
                                            CUstream?) -> Int32
    typealias FnErrorString = @convention(c) (Int32) -> UnsafePointer<CChar>?

    let library: DynamicLibrary
    private let ncclCommInitAll: FnInitAll
    private let ncclCommDestroy: FnDestroy
    private let ncclGroupStart: FnGroup
    private let ncclGroupEnd: FnGroup
    private let ncclAllReduce: FnAllReduce
    private let ncclGetErrorString: FnErrorString
    /// NCCL's version as major.minor.patch.
    public let version: (major: Int, minor: Int, patch: Int)
    /// The file that was opened.
    public var path: String { library.path }

    public init() throws {
        let explicit = ProcessInfo.processInfo.environment["SWIFTKT_NCCL"].map { [$0] } ?? []
        let lib = try DynamicLibrary(name: "libnccl", candidates: explicit + libraryCandidates("libnccl", versions: ["2"]) + NCCL.wheelCandidates())
        library = lib
        let getVersion = try lib.function("ncclGetVersion", as: FnVersion.self)
        ncclCommInitAll = try lib.function("ncclCommInitAll", as: FnInitAll.self)
        ncclCommDestroy = try lib.function("ncclCommDestroy", as: FnDestroy.self)
        ncclGroupStart = try lib.function("ncclGroupStart", as: FnGroup.self)
        ncclGroupEnd = try lib.function("ncclGroupEnd", as: FnGroup.self)
        ncclAllReduce = try lib.function("ncclAllReduce", as: FnAllReduce.self)
        ncclGetErrorString = try lib.function("ncclGetErrorString", as: FnErrorString.self)
        var v: Int32 = 0
        let status = getVersion(&v)
        guard status == 0 else { throw CUDAError.driver(call: "ncclGetVersion", result: status, name: "ncclResult \(status)") }
        version = NCCL.decodeVersion(Int(v))
    }

    /// NCCL_VERSION_CODE: major·10000 + minor·100 + patch since 2.9 (major·1000 + minor·100 + patch before).
    static func decodeVersion(_ code: Int) -> (major: Int, minor: Int, patch: Int) {
        code >= 10000 ? (code / 10000, code % 10000 / 100, code % 100) : (code / 1000, code % 1000 / 100, code % 100)
    }

    /// libnccl.so.2 inside the nvidia-nccl wheels of the Python installations in the usual places.
    static func wheelCandidates() -> [String] {
        let fm = FileManager.default
        var roots = ["/usr/local/lib", "/usr/lib", "/opt/conda/lib"]
        roots.append(fm.homeDirectoryForCurrentUser.appendingPathComponent(".local/lib").path)
        var out: [String] = []
        for root in roots {
            for python in ((try? fm.contentsOfDirectory(atPath: root)) ?? []).filter({ $0.hasPrefix("python3") }).sorted().reversed() {
                for packages in ["site-packages", "dist-packages"] {
                    let p = "\(root)/\(python)/\(packages)/nvidia/nccl/lib/libnccl.so.2"
                    if fm.fileExists(atPath: p) { out.append(p) }
                }
            }
        }
        return out
    }

    private func check(_ call: String, _ status: Int32) throws {
        guard status != 0 else { return }
        let name = ncclGetErrorString(status).map { String(cString: $0) } ?? "ncclResult \(status)"
        throw CUDAError.driver(call: call, result: status, name: name)
    }

    /// One communicator per device of `ordinals` (device i is rank i), all in this process.
    public final class Communicators: @unchecked Sendable {
        let nccl: NCCL
        public let comms: [OpaquePointer]
        public let ordinals: [Int]
        init(nccl: NCCL, comms: [OpaquePointer], ordinals: [Int]) { self.nccl = nccl; self.comms = comms; self.ordinals = ordinals }
        deinit { for c in comms { _ = nccl.ncclCommDestroy(c) } }
    }

    /// Communicators over these device ordinals (distinct: NCCL takes one rank per GPU).
    public func communicators(ordinals: [Int]) throws -> Communicators {
        guard !ordinals.isEmpty, Set(ordinals).count == ordinals.count else {
            throw CUDAError.invalidArgument("NCCL communicators need distinct devices, got \(ordinals)")
        }
        var comms = [OpaquePointer?](repeating: nil, count: ordinals.count)
        let devices = ordinals.map { Int32($0) }
        try check("ncclCommInitAll(\(ordinals.count) devices)", ncclCommInitAll(&comms, Int32(ordinals.count), devices))
        return Communicators(nccl: self, comms: comms.map { $0! }, ordinals: ordinals)
    }

    /// Sums `count` floats over every rank in place: buffers[i] on device ordinals[i], each
    /// queued on streams[i] (one group call, so one thread drives every device).
    public func allReduceSum(_ c: Communicators, buffers: [CUdeviceptr], count: Int, streams: [CUstream]) throws {
        guard buffers.count == c.comms.count, streams.count == c.comms.count else {
            throw CUDAError.invalidArgument("allReduceSum over \(c.comms.count) ranks with \(buffers.count) buffers, \(streams.count) streams")
        }
        try check("ncclGroupStart", ncclGroupStart())
        var failure: Error?
        for (i, comm) in c.comms.enumerated() {
            let p = UnsafeMutableRawPointer(bitPattern: UInt(buffers[i]))
            // ncclFloat32 = 7, ncclSum = 0.
            do { try check("ncclAllReduce(rank \(i), \(count) floats)", ncclAllReduce(UnsafeRawPointer(p), p, count, 7, 0, comm, streams[i])) }
            catch { failure = error; break }
        }
        try check("ncclGroupEnd", ncclGroupEnd())
        if let failure { throw failure }
    }
}
