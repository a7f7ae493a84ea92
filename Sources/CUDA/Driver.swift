// The CUDA driver API, loaded at run time (libcuda.so.1). Only the calls the backend uses are
// bound; each wrapper checks the CUresult and throws CUDAError.driver with the call's name and
// the driver's name for the error.
import Foundation

public typealias CUresult = Int32
public typealias CUdevice = Int32
public typealias CUcontext = OpaquePointer
public typealias CUmodule = OpaquePointer
public typealias CUfunction = OpaquePointer
public typealias CUdeviceptr = UInt64

public final class Driver: @unchecked Sendable {
    typealias FnInit = @convention(c) (UInt32) -> CUresult
    typealias FnInt = @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    typealias FnDeviceGet = @convention(c) (UnsafeMutablePointer<CUdevice>, Int32) -> CUresult
    typealias FnDeviceName = @convention(c) (UnsafeMutablePointer<CChar>, Int32, CUdevice) -> CUresult
    typealias FnTotalMem = @convention(c) (UnsafeMutablePointer<Int>, CUdevice) -> CUresult
    typealias FnAttribute = @convention(c) (UnsafeMutablePointer<Int32>, Int32, CUdevice) -> CUresult
    typealias FnRetain = @convention(c) (UnsafeMutablePointer<CUcontext?>, CUdevice) -> CUresult
    typealias FnSetCurrent = @convention(c) (CUcontext?) -> CUresult
    typealias FnMalloc = @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> CUresult
    typealias FnFree = @convention(c) (CUdeviceptr) -> CUresult
    typealias FnHtoD = @convention(c) (CUdeviceptr, UnsafeRawPointer, Int) -> CUresult
    typealias FnDtoH = @convention(c) (UnsafeMutableRawPointer, CUdeviceptr, Int) -> CUresult
    typealias FnModuleLoad = @convention(c) (UnsafeMutablePointer<CUmodule?>, UnsafeRawPointer) -> CUresult
    typealias FnGetFunction = @convention(c) (UnsafeMutablePointer<CUfunction?>, CUmodule, UnsafePointer<CChar>) -> CUresult
    typealias FnLaunch = @convention(c) (CUfunction, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
                                         UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    typealias FnSync = @convention(c) () -> CUresult
    typealias FnErrorName = @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult

    let library: DynamicLibrary
    private let cuInit: FnInit
    private let cuDriverGetVersion: FnInt
    private let cuDeviceGetCount: FnInt
    private let cuDeviceGet: FnDeviceGet
    private let cuDeviceGetName: FnDeviceName
    private let cuDeviceTotalMem: FnTotalMem
    private let cuDeviceGetAttribute: FnAttribute
    private let cuDevicePrimaryCtxRetain: FnRetain
    private let cuCtxSetCurrent: FnSetCurrent
    private let cuMemAlloc: FnMalloc
    private let cuMemFree: FnFree
    private let cuMemcpyHtoD: FnHtoD
    private let cuMemcpyDtoH: FnDtoH
    private let cuModuleLoadData: FnModuleLoad
    private let cuModuleGetFunction: FnGetFunction
    private let cuLaunchKernel: FnLaunch
    private let cuCtxSynchronize: FnSync
    private let cuGetErrorName: FnErrorName

    /// Opens libcuda and initializes the driver.
    public init() throws {
        let lib = try DynamicLibrary(name: "libcuda", candidates: libraryCandidates("libcuda", versions: ["1"]))
        library = lib
        cuInit = try lib.function("cuInit", as: FnInit.self)
        cuDriverGetVersion = try lib.function("cuDriverGetVersion", as: FnInt.self)
        cuDeviceGetCount = try lib.function("cuDeviceGetCount", as: FnInt.self)
        cuDeviceGet = try lib.function("cuDeviceGet", as: FnDeviceGet.self)
        cuDeviceGetName = try lib.function("cuDeviceGetName", as: FnDeviceName.self)
        cuDeviceTotalMem = try lib.function("cuDeviceTotalMem_v2", as: FnTotalMem.self)
        cuDeviceGetAttribute = try lib.function("cuDeviceGetAttribute", as: FnAttribute.self)
        cuDevicePrimaryCtxRetain = try lib.function("cuDevicePrimaryCtxRetain", as: FnRetain.self)
        cuCtxSetCurrent = try lib.function("cuCtxSetCurrent", as: FnSetCurrent.self)
        cuMemAlloc = try lib.function("cuMemAlloc_v2", as: FnMalloc.self)
        cuMemFree = try lib.function("cuMemFree_v2", as: FnFree.self)
        cuMemcpyHtoD = try lib.function("cuMemcpyHtoD_v2", as: FnHtoD.self)
        cuMemcpyDtoH = try lib.function("cuMemcpyDtoH_v2", as: FnDtoH.self)
        cuModuleLoadData = try lib.function("cuModuleLoadData", as: FnModuleLoad.self)
        cuModuleGetFunction = try lib.function("cuModuleGetFunction", as: FnGetFunction.self)
        cuLaunchKernel = try lib.function("cuLaunchKernel", as: FnLaunch.self)
        cuCtxSynchronize = try lib.function("cuCtxSynchronize", as: FnSync.self)
        cuGetErrorName = try lib.function("cuGetErrorName", as: FnErrorName.self)
        try check("cuInit", cuInit(0))
    }

    /// Throws CUDAError.driver unless `result` is CUDA_SUCCESS.
    func check(_ call: String, _ result: CUresult) throws {
        guard result != 0 else { return }
        var name: UnsafePointer<CChar>?
        let known = cuGetErrorName(result, &name) == 0 && name != nil
        throw CUDAError.driver(call: call, result: result, name: known ? String(cString: name!) : "CUresult \(result)")
    }

    public func driverVersion() throws -> Int32 {
        var v: Int32 = 0
        try check("cuDriverGetVersion", cuDriverGetVersion(&v))
        return v
    }

    public func deviceCount() throws -> Int {
        var n: Int32 = 0
        try check("cuDeviceGetCount", cuDeviceGetCount(&n))
        return Int(n)
    }

    public func device(_ ordinal: Int) throws -> CUDADevice {
        var d: CUdevice = 0
        try check("cuDeviceGet", cuDeviceGet(&d, Int32(ordinal)))
        var name = [CChar](repeating: 0, count: 256)
        try check("cuDeviceGetName", cuDeviceGetName(&name, 256, d))
        var bytes = 0
        try check("cuDeviceTotalMem_v2", cuDeviceTotalMem(&bytes, d))
        func attribute(_ id: Int32, _ label: String) throws -> Int {
            var v: Int32 = 0
            try check("cuDeviceGetAttribute(\(label))", cuDeviceGetAttribute(&v, id, d))
            return Int(v)
        }
        // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76, MULTIPROCESSOR_COUNT = 16
        return CUDADevice(ordinal: ordinal, handle: d, name: cString(name), totalMemory: bytes,
                          computeCapability: (try attribute(75, "compute capability major"), try attribute(76, "compute capability minor")),
                          multiprocessors: try attribute(16, "multiprocessor count"))
    }

    /// Makes device `d`'s primary context current on this thread.
    public func makeCurrent(_ d: CUDADevice) throws {
        var ctx: CUcontext?
        try check("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(&ctx, d.handle))
        try check("cuCtxSetCurrent", cuCtxSetCurrent(ctx))
    }

    public func allocate(_ bytes: Int) throws -> CUdeviceptr {
        var p: CUdeviceptr = 0
        try check("cuMemAlloc_v2(\(bytes) bytes)", cuMemAlloc(&p, bytes))
        return p
    }

    public func free(_ p: CUdeviceptr) throws { try check("cuMemFree_v2", cuMemFree(p)) }

    public func copy(toDevice dst: CUdeviceptr, from src: UnsafeRawPointer, bytes: Int) throws {
        try check("cuMemcpyHtoD_v2", cuMemcpyHtoD(dst, src, bytes))
    }

    public func copy(toHost dst: UnsafeMutableRawPointer, from src: CUdeviceptr, bytes: Int) throws {
        try check("cuMemcpyDtoH_v2", cuMemcpyDtoH(dst, src, bytes))
    }

    /// Loads a cubin or PTX image and returns the named kernel.
    public func loadFunction(image: [UInt8], name: String) throws -> CUfunction {
        var module: CUmodule?
        try image.withUnsafeBytes { try check("cuModuleLoadData", cuModuleLoadData(&module, $0.baseAddress!)) }
        var f: CUfunction?
        try check("cuModuleGetFunction(\(name))", cuModuleGetFunction(&f, module!, name))
        return f!
    }

    /// Launches `f` with the given arguments (pointers to each argument's value).
    public func launch(_ f: CUfunction, grid: (UInt32, UInt32, UInt32), block: (UInt32, UInt32, UInt32),
                       sharedBytes: UInt32 = 0, arguments: inout [UnsafeMutableRawPointer?]) throws {
        try arguments.withUnsafeMutableBufferPointer { args in
            try check("cuLaunchKernel", cuLaunchKernel(f, grid.0, grid.1, grid.2, block.0, block.1, block.2, sharedBytes,
                                                       nil, args.baseAddress, nil))
        }
    }

    public func synchronize() throws { try check("cuCtxSynchronize", cuCtxSynchronize()) }
}

public struct CUDADevice: Sendable {
    public let ordinal: Int
    let handle: CUdevice
    public let name: String
    public let totalMemory: Int
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessors: Int

    /// NVRTC's architecture option for this device ("sm_90").
    public var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }
}

/// The text of a NUL-terminated C character buffer.
func cString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
