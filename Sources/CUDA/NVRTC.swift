// NVRTC, loaded at run time: compiles CUDA C++ kernel sources (embedded in the binary as
// strings) for the device's architecture into a cubin, with a disk cache keyed by source,
// options, architecture and NVRTC version ($SWIFTKT_HOME/kernels/<key>.cubin), so a kernel is
// compiled once per machine.
import Foundation

public final class NVRTC: @unchecked Sendable {
    typealias FnVersion = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    typealias FnCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?,
                                         Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    typealias FnCompile = @convention(c) (OpaquePointer, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    typealias FnSize = @convention(c) (OpaquePointer, UnsafeMutablePointer<Int>) -> Int32
    typealias FnGet = @convention(c) (OpaquePointer, UnsafeMutablePointer<CChar>) -> Int32
    typealias FnDestroy = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    typealias FnErrorString = @convention(c) (Int32) -> UnsafePointer<CChar>?

    let library: DynamicLibrary
    private let nvrtcVersion: FnVersion
    private let nvrtcCreateProgram: FnCreate
    private let nvrtcCompileProgram: FnCompile
    private let nvrtcGetCUBINSize: FnSize
    private let nvrtcGetCUBIN: FnGet
    private let nvrtcGetProgramLogSize: FnSize
    private let nvrtcGetProgramLog: FnGet
    private let nvrtcDestroyProgram: FnDestroy
    private let nvrtcGetErrorString: FnErrorString
    public let version: (major: Int32, minor: Int32)

    public init() throws {
        // SWIFTKT_NVRTC names a libnvrtc file explicitly (e.g. from the PyPI wheel nvidia-cuda-nvrtc).
        let explicit = ProcessInfo.processInfo.environment["SWIFTKT_NVRTC"].map { [$0] } ?? []
        let lib = try DynamicLibrary(name: "libnvrtc", candidates: explicit + libraryCandidates("libnvrtc", versions: ["13", "12", "11.2"]))
        library = lib
        nvrtcVersion = try lib.function("nvrtcVersion", as: FnVersion.self)
        nvrtcCreateProgram = try lib.function("nvrtcCreateProgram", as: FnCreate.self)
        nvrtcCompileProgram = try lib.function("nvrtcCompileProgram", as: FnCompile.self)
        nvrtcGetCUBINSize = try lib.function("nvrtcGetCUBINSize", as: FnSize.self)
        nvrtcGetCUBIN = try lib.function("nvrtcGetCUBIN", as: FnGet.self)
        nvrtcGetProgramLogSize = try lib.function("nvrtcGetProgramLogSize", as: FnSize.self)
        nvrtcGetProgramLog = try lib.function("nvrtcGetProgramLog", as: FnGet.self)
        nvrtcDestroyProgram = try lib.function("nvrtcDestroyProgram", as: FnDestroy.self)
        nvrtcGetErrorString = try lib.function("nvrtcGetErrorString", as: FnErrorString.self)
        var major: Int32 = 0, minor: Int32 = 0
        _ = nvrtcVersion(&major, &minor)
        version = (major, minor)
    }

    private func check(_ call: String, _ result: Int32, log: String = "") throws {
        guard result != 0 else { return }
        let name = nvrtcGetErrorString(result).map { String(cString: $0) } ?? "nvrtcResult \(result)"
        throw CUDAError.nvrtc(call: call, result: result, name: name, log: log)
    }

    /// Compiles `source` for `architecture` ("sm_90") into a cubin, using the disk cache.
    public func compile(source: String, name: String, architecture: String, options: [String] = [],
                        cacheDirectory: URL? = NVRTC.defaultCacheDirectory) throws -> [UInt8] {
        let allOptions = ["--gpu-architecture=\(architecture)", "-default-device", "-std=c++17"] + options
        let key = fnv1a64([source, allOptions.joined(separator: " "), architecture, "\(version.major).\(version.minor)"]
            .joined(separator: "\u{0}"))
        let cached = cacheDirectory?.appendingPathComponent("\(name)-\(String(key, radix: 16)).cubin")
        if let url = cached, let data = try? Data(contentsOf: url), !data.isEmpty { return [UInt8](data) }

        var program: OpaquePointer?
        try check("nvrtcCreateProgram(\(name))", nvrtcCreateProgram(&program, source, name + ".cu", 0, nil, nil))
        defer { _ = nvrtcDestroyProgram(&program) }
        let cOptions = allOptions.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let result = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer { opts in
            nvrtcCompileProgram(program!, Int32(opts.count), opts.baseAddress)
        }
        if result != 0 {
            var logSize = 0
            _ = nvrtcGetProgramLogSize(program!, &logSize)
            var log = [CChar](repeating: 0, count: max(logSize, 1))
            _ = nvrtcGetProgramLog(program!, &log)
            try check("nvrtcCompileProgram(\(name), \(architecture))", result, log: cString(log))
        }
        var size = 0
        try check("nvrtcGetCUBINSize", nvrtcGetCUBINSize(program!, &size))
        var cubin = [CChar](repeating: 0, count: size)
        try check("nvrtcGetCUBIN", nvrtcGetCUBIN(program!, &cubin))
        let bytes = cubin.map { UInt8(bitPattern: $0) }
        if let url = cached {
            try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? Data(bytes).write(to: url, options: .atomic)
        }
        return bytes
    }

    /// $SWIFTKT_HOME/kernels (default ~/.cache/swiftkt/kernels).
    public static var defaultCacheDirectory: URL {
        let home = ProcessInfo.processInfo.environment["SWIFTKT_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/swiftkt")
        return home.appendingPathComponent("kernels")
    }
}

/// 64-bit FNV-1a of a string's UTF-8 bytes (cache keys, not security).
func fnv1a64(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}
