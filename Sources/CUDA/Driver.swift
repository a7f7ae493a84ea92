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
public typealias CUstream = OpaquePointer
public typealias CUevent = OpaquePointer
public typealias CUgraph = OpaquePointer
public typealias CUgraphExec = OpaquePointer

public final class Driver: @unchecked Sendable {
    typealias FnInit = @convention(c) (UInt32) -> CUresult
    typealias FnInt = @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    typealias FnDeviceGet = @convention(c) (UnsafeMutablePointer<CUdevice>, Int32) -> CUresult
    typealias FnDeviceName = @convention(c) (UnsafeMutablePointer<CChar>, Int32, CUdevice) -> CUresult
    typealias FnTotalMem = @convention(c) (UnsafeMutablePointer<Int>, CUdevice) -> CUresult
    typealias FnAttribute = @convention(c) (UnsafeMutablePointer<Int32>, Int32, CUdevice) -> CUresult
    typealias FnRetain = @convention(c) (UnsafeMutablePointer<CUcontext?>, CUdevice) -> CUresult
    typealias FnCanAccessPeer = @convention(c) (UnsafeMutablePointer<Int32>, CUdevice, CUdevice) -> CUresult
    typealias FnEnablePeer = @convention(c) (CUcontext?, UInt32) -> CUresult
    typealias FnSetCurrent = @convention(c) (CUcontext?) -> CUresult
    typealias FnMalloc = @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> CUresult
    typealias FnFree = @convention(c) (CUdeviceptr) -> CUresult
    typealias FnHtoD = @convention(c) (CUdeviceptr, UnsafeRawPointer, Int) -> CUresult
    typealias FnDtoH = @convention(c) (UnsafeMutableRawPointer, CUdeviceptr, Int) -> CUresult
    typealias FnModuleLoad = @convention(c) (UnsafeMutablePointer<CUmodule?>, UnsafeRawPointer) -> CUresult
    typealias FnGetFunction = @convention(c) (UnsafeMutablePointer<CUfunction?>, CUmodule, UnsafePointer<CChar>) -> CUresult
    /// cuLaunchKernelEx(const CUlaunchConfig*, CUfunction, void** params, void** extra).
    typealias FnLaunchEx = @convention(c) (UnsafeRawPointer, CUfunction, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                           UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    typealias FnLaunch = @convention(c) (CUfunction, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
                                         UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    typealias FnSync = @convention(c) () -> CUresult
    typealias FnErrorName = @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult
    typealias FnStreamCreate = @convention(c) (UnsafeMutablePointer<CUstream?>, UInt32) -> CUresult
    typealias FnStream = @convention(c) (CUstream?) -> CUresult
    typealias FnEventCreate = @convention(c) (UnsafeMutablePointer<CUevent?>, UInt32) -> CUresult
    typealias FnEventRecord = @convention(c) (CUevent, CUstream?) -> CUresult
    typealias FnStreamWaitEvent = @convention(c) (CUstream?, CUevent, UInt32) -> CUresult
    typealias FnHostRegister = @convention(c) (UnsafeMutableRawPointer, Int, UInt32) -> CUresult
    typealias FnHostUnregister = @convention(c) (UnsafeMutableRawPointer) -> CUresult
    typealias FnEvent = @convention(c) (CUevent) -> CUresult
    typealias FnElapsed = @convention(c) (UnsafeMutablePointer<Float>, CUevent, CUevent) -> CUresult
    typealias FnHtoDAsync = @convention(c) (CUdeviceptr, UnsafeRawPointer, Int, CUstream?) -> CUresult
    typealias FnDtoHAsync = @convention(c) (UnsafeMutableRawPointer, CUdeviceptr, Int, CUstream?) -> CUresult
    typealias FnDtoDAsync = @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUstream?) -> CUresult
    typealias FnPeerAsync = @convention(c) (CUdeviceptr, CUcontext?, CUdeviceptr, CUcontext?, Int, CUstream?) -> CUresult
    typealias FnMemsetAsync = @convention(c) (CUdeviceptr, UInt8, Int, CUstream?) -> CUresult
    typealias FnHostAlloc = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> CUresult
    typealias FnFreeHost = @convention(c) (UnsafeMutableRawPointer) -> CUresult
    typealias FnMemInfo = @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> CUresult
    typealias FnBeginCapture = @convention(c) (CUstream, UInt32) -> CUresult
    /// cuLaunchHostFunc(stream, void (*fn)(void*), userData)
    public typealias HostFunction = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias FnLaunchHost = @convention(c) (CUstream?, HostFunction, UnsafeMutableRawPointer?) -> CUresult
    typealias FnEndCapture = @convention(c) (CUstream, UnsafeMutablePointer<CUgraph?>) -> CUresult
    typealias FnGraphInstantiate = @convention(c) (UnsafeMutablePointer<CUgraphExec?>, CUgraph, UInt64) -> CUresult
    typealias FnGraphLaunch = @convention(c) (CUgraphExec, CUstream?) -> CUresult
    typealias FnGraphExecDestroy = @convention(c) (CUgraphExec) -> CUresult
    typealias FnGraphDestroy = @convention(c) (CUgraph) -> CUresult

    let library: DynamicLibrary
    private let cuInit: FnInit
    private let cuDriverGetVersion: FnInt
    private let cuDeviceGetCount: FnInt
    private let cuDeviceGet: FnDeviceGet
    private let cuDeviceGetName: FnDeviceName
    private let cuDeviceTotalMem: FnTotalMem
    private let cuDeviceGetAttribute: FnAttribute
    private let cuDevicePrimaryCtxRetain: FnRetain
    private let cuDeviceCanAccessPeer: FnCanAccessPeer
    private let cuCtxEnablePeerAccess: FnEnablePeer
    private let cuCtxSetCurrent: FnSetCurrent
    private let cuMemAlloc: FnMalloc
    private let cuMemFree: FnFree
    private let cuMemcpyHtoD: FnHtoD
    private let cuMemcpyDtoH: FnDtoH
    private let cuModuleLoadData: FnModuleLoad
    private let cuModuleGetFunction: FnGetFunction
    private let cuLaunchKernel: FnLaunch
    /// Present from CUDA 12: launches with attributes (programmatic dependent launch).
    private let cuLaunchKernelEx: FnLaunchEx?
    private let cuLaunchHostFunc: FnLaunchHost?
    private let cuCtxSynchronize: FnSync
    private let cuGetErrorName: FnErrorName
    private let cuStreamCreate: FnStreamCreate
    private let cuStreamSynchronize: FnStream
    private let cuEventCreate: FnEventCreate
    private let cuEventRecord: FnEventRecord
    private let cuStreamWaitEvent: FnStreamWaitEvent
    private let cuMemHostRegister: FnHostRegister
    private let cuMemHostUnregister: FnHostUnregister
    private let cuEventSynchronize: FnEvent
    private let cuEventDestroy: FnEvent
    private let cuEventElapsedTime: FnElapsed
    private let cuMemcpyHtoDAsync: FnHtoDAsync
    private let cuMemcpyDtoHAsync: FnDtoHAsync
    private let cuMemcpyDtoDAsync: FnDtoDAsync
    private let cuMemcpyPeerAsync: FnPeerAsync
    private let cuMemsetD8Async: FnMemsetAsync
    private let cuMemHostAlloc: FnHostAlloc
    private let cuMemFreeHost: FnFreeHost
    private let cuMemGetInfo: FnMemInfo
    private let cuStreamBeginCapture: FnBeginCapture
    private let cuStreamEndCapture: FnEndCapture
    private let cuGraphInstantiate: FnGraphInstantiate
    private let cuGraphLaunch: FnGraphLaunch
    private let cuGraphExecDestroy: FnGraphExecDestroy
    private let cuGraphDestroy: FnGraphDestroy

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
        cuDeviceCanAccessPeer = try lib.function("cuDeviceCanAccessPeer", as: FnCanAccessPeer.self)
        cuCtxEnablePeerAccess = try lib.function("cuCtxEnablePeerAccess", as: FnEnablePeer.self)
        cuCtxSetCurrent = try lib.function("cuCtxSetCurrent", as: FnSetCurrent.self)
        cuMemAlloc = try lib.function("cuMemAlloc_v2", as: FnMalloc.self)
        cuMemFree = try lib.function("cuMemFree_v2", as: FnFree.self)
        cuMemcpyHtoD = try lib.function("cuMemcpyHtoD_v2", as: FnHtoD.self)
        cuMemcpyDtoH = try lib.function("cuMemcpyDtoH_v2", as: FnDtoH.self)
        cuModuleLoadData = try lib.function("cuModuleLoadData", as: FnModuleLoad.self)
        cuModuleGetFunction = try lib.function("cuModuleGetFunction", as: FnGetFunction.self)
        cuLaunchKernel = try lib.function("cuLaunchKernel", as: FnLaunch.self)
        cuLaunchKernelEx = try? lib.function("cuLaunchKernelEx", as: FnLaunchEx.self)
        cuLaunchHostFunc = try? lib.function("cuLaunchHostFunc", as: FnLaunchHost.self)
        cuCtxSynchronize = try lib.function("cuCtxSynchronize", as: FnSync.self)
        cuGetErrorName = try lib.function("cuGetErrorName", as: FnErrorName.self)
        cuStreamCreate = try lib.function("cuStreamCreate", as: FnStreamCreate.self)
        cuStreamSynchronize = try lib.function("cuStreamSynchronize", as: FnStream.self)
        cuEventCreate = try lib.function("cuEventCreate", as: FnEventCreate.self)
        cuEventRecord = try lib.function("cuEventRecord", as: FnEventRecord.self)
        cuStreamWaitEvent = try lib.function("cuStreamWaitEvent", as: FnStreamWaitEvent.self)
        cuMemHostRegister = try lib.function("cuMemHostRegister_v2", as: FnHostRegister.self)
        cuMemHostUnregister = try lib.function("cuMemHostUnregister", as: FnHostUnregister.self)
        cuEventSynchronize = try lib.function("cuEventSynchronize", as: FnEvent.self)
        cuEventDestroy = try lib.function("cuEventDestroy_v2", as: FnEvent.self)
        cuEventElapsedTime = try lib.function("cuEventElapsedTime", as: FnElapsed.self)
        cuMemcpyHtoDAsync = try lib.function("cuMemcpyHtoDAsync_v2", as: FnHtoDAsync.self)
        cuMemcpyDtoHAsync = try lib.function("cuMemcpyDtoHAsync_v2", as: FnDtoHAsync.self)
        cuMemcpyDtoDAsync = try lib.function("cuMemcpyDtoDAsync_v2", as: FnDtoDAsync.self)
        cuMemcpyPeerAsync = try lib.function("cuMemcpyPeerAsync", as: FnPeerAsync.self)
        cuMemsetD8Async = try lib.function("cuMemsetD8Async", as: FnMemsetAsync.self)
        cuMemHostAlloc = try lib.function("cuMemHostAlloc", as: FnHostAlloc.self)
        cuMemFreeHost = try lib.function("cuMemFreeHost", as: FnFreeHost.self)
        cuMemGetInfo = try lib.function("cuMemGetInfo_v2", as: FnMemInfo.self)
        cuStreamBeginCapture = try lib.function("cuStreamBeginCapture_v2", as: FnBeginCapture.self)
        cuStreamEndCapture = try lib.function("cuStreamEndCapture", as: FnEndCapture.self)
        cuGraphInstantiate = try lib.function("cuGraphInstantiateWithFlags", as: FnGraphInstantiate.self)
        cuGraphLaunch = try lib.function("cuGraphLaunch", as: FnGraphLaunch.self)
        cuGraphExecDestroy = try lib.function("cuGraphExecDestroy", as: FnGraphExecDestroy.self)
        cuGraphDestroy = try lib.function("cuGraphDestroy", as: FnGraphDestroy.self)
        try check("cuInit", cuInit(0))
    }

    /// Throws CUDAError.driver unless `result` is CUDA_SUCCESS.
    /// (`call` is built only on failure: launches are hot.)
    func check(_ call: @autoclosure () -> String, _ result: CUresult) throws {
        guard result != 0 else { return }
        var name: UnsafePointer<CChar>?
        let known = cuGetErrorName(result, &name) == 0 && name != nil
        throw CUDAError.driver(call: call(), result: result, name: known ? String(cString: name!) : "CUresult \(result)")
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

    /// Loads a cubin or PTX image as a module.
    public func loadModule(image: [UInt8]) throws -> CUmodule {
        var module: CUmodule?
        try image.withUnsafeBytes { try check("cuModuleLoadData", cuModuleLoadData(&module, $0.baseAddress!)) }
        return module!
    }

    public func function(_ module: CUmodule, _ name: String) throws -> CUfunction {
        var f: CUfunction?
        try check("cuModuleGetFunction(\(name))", cuModuleGetFunction(&f, module, name))
        return f!
    }

    /// Loads a cubin or PTX image and returns the named kernel.
    public func loadFunction(image: [UInt8], name: String) throws -> CUfunction {
        var module: CUmodule?
        try image.withUnsafeBytes { try check("cuModuleLoadData", cuModuleLoadData(&module, $0.baseAddress!)) }
        var f: CUfunction?
        try check("cuModuleGetFunction(\(name))", cuModuleGetFunction(&f, module!, name))
        return f!
    }

    /// Launches `f` on `stream` (nil: the legacy default stream) with the given arguments
    /// (pointers to each argument's value).
    public func launch(_ f: CUfunction, grid: (UInt32, UInt32, UInt32), block: (UInt32, UInt32, UInt32),
                       sharedBytes: UInt32 = 0, stream: CUstream? = nil, arguments: inout [UnsafeMutableRawPointer?],
                       name: String = "kernel") throws {
        try arguments.withUnsafeMutableBufferPointer { args in
            try check("cuLaunchKernel(\(name), grid \(grid), block \(block))",
                      cuLaunchKernel(f, grid.0, grid.1, grid.2, block.0, block.1, block.2, sharedBytes, stream, args.baseAddress, nil))
        }
    }

    /// Whether launches can carry the programmatic-stream-serialization attribute.
    public var hasLaunchEx: Bool { cuLaunchKernelEx != nil }

    /// A launch that lets the kernel start before the previous kernel on the stream has
    /// finished (programmatic dependent launch, sm_90): its blocks are scheduled once every block
    /// of the previous kernel has started or signalled, and the kernel must execute
    /// `griddepcontrol.wait` before it touches memory the previous kernels write or read. In a
    /// captured stream the edge becomes a programmatic graph dependency.
    public func launchProgrammatic(_ f: CUfunction, grid: (UInt32, UInt32, UInt32), block: (UInt32, UInt32, UInt32),
                                   sharedBytes: UInt32 = 0, stream: CUstream?, arguments: inout [UnsafeMutableRawPointer?],
                                   name: String = "kernel") throws {
        guard let cuLaunchKernelEx else {
            return try launch(f, grid: grid, block: block, sharedBytes: sharedBytes, stream: stream, arguments: &arguments, name: name)
        }
        // CUlaunchConfig (56 bytes on LP64): grid x/y/z, block x/y/z, sharedMemBytes (u32 each),
        // hStream at 32, attrs at 40, numAttrs at 48. CUlaunchAttribute (72 bytes): id (u32) at 0,
        // value (a 64-byte union) at 8; CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6,
        // value.programmaticStreamSerializationAllowed (int) = 1.
        let attribute = UnsafeMutableRawPointer.allocate(byteCount: 72, alignment: 8)
        let config = UnsafeMutableRawPointer.allocate(byteCount: 56, alignment: 8)
        defer { attribute.deallocate(); config.deallocate() }
        attribute.initializeMemory(as: UInt8.self, repeating: 0, count: 72)
        config.initializeMemory(as: UInt8.self, repeating: 0, count: 56)
        attribute.storeBytes(of: UInt32(6), as: UInt32.self)
        attribute.storeBytes(of: Int32(1), toByteOffset: 8, as: Int32.self)
        for (i, v) in [grid.0, grid.1, grid.2, block.0, block.1, block.2, sharedBytes].enumerated() {
            config.storeBytes(of: v, toByteOffset: 4 * i, as: UInt32.self)
        }
        config.storeBytes(of: stream, toByteOffset: 32, as: CUstream?.self)
        config.storeBytes(of: UnsafeRawPointer(attribute), toByteOffset: 40, as: UnsafeRawPointer.self)
        config.storeBytes(of: UInt32(1), toByteOffset: 48, as: UInt32.self)
        try arguments.withUnsafeMutableBufferPointer { args in
            try check("cuLaunchKernelEx(\(name), grid \(grid), block \(block), programmatic dependent launch)",
                      cuLaunchKernelEx(UnsafeRawPointer(config), f, args.baseAddress, nil))
        }
    }

    // MARK: Streams, events, asynchronous copies

    /// A stream that does not synchronize with the legacy default stream.
    public func makeStream() throws -> CUstream {
        var s: CUstream?
        try check("cuStreamCreate", cuStreamCreate(&s, 1))  // CU_STREAM_NON_BLOCKING
        return s!
    }

    public func synchronize(_ stream: CUstream?) throws { try check("cuStreamSynchronize", cuStreamSynchronize(stream)) }

    public func makeEvent() throws -> CUevent {
        var e: CUevent?
        try check("cuEventCreate", cuEventCreate(&e, 0))
        return e!
    }

    public func record(_ event: CUevent, on stream: CUstream?) throws { try check("cuEventRecord", cuEventRecord(event, stream)) }
    public func synchronize(event: CUevent) throws { try check("cuEventSynchronize", cuEventSynchronize(event)) }
    public func destroy(event: CUevent) { _ = cuEventDestroy(event) }
    /// Work queued on `stream` after this waits for `event`'s recorded point.
    public func wait(_ stream: CUstream?, for event: CUevent) throws {
        try check("cuStreamWaitEvent", cuStreamWaitEvent(stream, event, 0))
    }

    /// Page-locks existing host memory (read-only: the GPU only reads it, so a read-only mapping
    /// such as a model file's will do) so that copies from it run at full PCIe speed.
    public func registerHost(_ p: UnsafeMutableRawPointer, bytes: Int) throws {
        // CU_MEMHOSTREGISTER_PORTABLE (1) | CU_MEMHOSTREGISTER_READ_ONLY (8)
        try check("cuMemHostRegister(\(bytes) bytes at \(p))", cuMemHostRegister(p, bytes, 1 | 8))
    }
    public func unregisterHost(_ p: UnsafeMutableRawPointer) { _ = cuMemHostUnregister(p) }

    /// Milliseconds between two recorded events.
    public func elapsed(from start: CUevent, to end: CUevent) throws -> Float {
        var ms: Float = 0
        try check("cuEventElapsedTime", cuEventElapsedTime(&ms, start, end))
        return ms
    }

    public func copyAsync(toDevice dst: CUdeviceptr, from src: UnsafeRawPointer, bytes: Int, stream: CUstream?) throws {
        try check("cuMemcpyHtoDAsync_v2(\(bytes) bytes)", cuMemcpyHtoDAsync(dst, src, bytes, stream))
    }

    public func copyAsync(toHost dst: UnsafeMutableRawPointer, from src: CUdeviceptr, bytes: Int, stream: CUstream?) throws {
        try check("cuMemcpyDtoHAsync_v2(\(bytes) bytes)", cuMemcpyDtoHAsync(dst, src, bytes, stream))
    }

    public func copyAsync(device dst: CUdeviceptr, from src: CUdeviceptr, bytes: Int, stream: CUstream?) throws {
        try check("cuMemcpyDtoDAsync_v2(\(bytes) bytes)", cuMemcpyDtoDAsync(dst, src, bytes, stream))
    }

    /// A copy between two contexts (devices): peer to peer once `enablePeerAccess` has been
    /// granted between them, else staged through host memory by the driver.
    public func copyPeerAsync(device dst: CUdeviceptr, context dstContext: CUcontext, from src: CUdeviceptr, context srcContext: CUcontext,
                              bytes: Int, stream: CUstream?) throws {
        try check("cuMemcpyPeerAsync(\(bytes) bytes)", cuMemcpyPeerAsync(dst, dstContext, src, srcContext, bytes, stream))
    }

    /// Lets the current context (device `from`'s) read and write device `to`'s memory directly
    /// when the hardware allows (NVLink or PCIe peer to peer); false when it does not. Enabling
    /// twice is not an error.
    public func enablePeerAccess(from: CUDADevice, to: CUDADevice, toContext: CUcontext) throws -> Bool {
        var can: Int32 = 0
        try check("cuDeviceCanAccessPeer", cuDeviceCanAccessPeer(&can, from.handle, to.handle))
        guard can != 0 else { return false }
        let r = cuCtxEnablePeerAccess(toContext, 0)
        if r == 704 { return true }  // CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED
        try check("cuCtxEnablePeerAccess", r)
        return true
    }

    /// Device `d`'s primary context (retained).
    public func primaryContext(_ d: CUDADevice) throws -> CUcontext {
        var ctx: CUcontext?
        try check("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(&ctx, d.handle))
        guard let ctx else { throw CUDAError.invalidArgument("no primary context for device \(d.ordinal)") }
        return ctx
    }

    public func zero(_ dst: CUdeviceptr, bytes: Int, stream: CUstream?) throws {
        try check("cuMemsetD8Async(\(bytes) bytes)", cuMemsetD8Async(dst, 0, bytes, stream))
    }

    /// Page-locked host memory (asynchronous copies from and to it overlap with compute).
    public func allocatePinned(_ bytes: Int) throws -> UnsafeMutableRawPointer {
        var p: UnsafeMutableRawPointer?
        try check("cuMemHostAlloc(\(bytes) bytes)", cuMemHostAlloc(&p, max(bytes, 1), 0))
        return p!
    }

    public func freePinned(_ p: UnsafeMutableRawPointer) throws { try check("cuMemFreeHost", cuMemFreeHost(p)) }

    /// (free, total) bytes of the current context's device.
    public func memoryInfo() throws -> (free: Int, total: Int) {
        var free = 0, total = 0
        try check("cuMemGetInfo_v2", cuMemGetInfo(&free, &total))
        return (free, total)
    }

    // MARK: Graphs

    /// Starts recording `stream`'s work into a graph instead of running it.
    public func beginCapture(_ stream: CUstream) throws {
        try check("cuStreamBeginCapture_v2", cuStreamBeginCapture(stream, 2))  // CU_STREAM_CAPTURE_MODE_RELAXED
    }

    /// Ends the capture and returns an executable graph.
    public func endCapture(_ stream: CUstream) throws -> CUgraphExec {
        var g: CUgraph?
        try check("cuStreamEndCapture", cuStreamEndCapture(stream, &g))
        defer { _ = cuGraphDestroy(g!) }
        var exec: CUgraphExec?
        try check("cuGraphInstantiateWithFlags", cuGraphInstantiate(&exec, g!, 0))
        return exec!
    }

    public func launch(graph: CUgraphExec, stream: CUstream) throws { try check("cuGraphLaunch", cuGraphLaunch(graph, stream)) }

    /// Queues `fn(userData)` on `stream`: it runs on a driver thread once the work before it is
    /// done, and the work after it waits for it (a host node when the stream is being captured).
    /// `fn` must not call CUDA.
    public func launchHost(_ fn: HostFunction, userData: UnsafeMutableRawPointer?, stream: CUstream) throws {
        guard let cuLaunchHostFunc else { throw CUDAError.symbolNotFound(library: "libcuda", symbol: "cuLaunchHostFunc") }
        try check("cuLaunchHostFunc", cuLaunchHostFunc(stream, fn, userData))
    }
    public func destroy(graph: CUgraphExec) { _ = cuGraphExecDestroy(graph) }

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
