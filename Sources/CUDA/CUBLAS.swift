// cuBLAS, loaded at run time (libcublas.so.13 / .12): the f16 GEMM behind prefill-sized linear
// layers. Errors name the call and cuBLAS's status name.
import Foundation

public final class CUBLAS: @unchecked Sendable {
    typealias FnCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    typealias FnSetStream = @convention(c) (OpaquePointer, CUstream?) -> Int32
    typealias FnStatusName = @convention(c) (Int32) -> UnsafePointer<CChar>?
    // cublasGemmEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, computeType, algo)
    typealias FnGemmEx = @convention(c) (OpaquePointer, Int32, Int32, Int32, Int32, Int32, UnsafeRawPointer,
                                         CUdeviceptr, Int32, Int32, CUdeviceptr, Int32, Int32, UnsafeRawPointer,
                                         CUdeviceptr, Int32, Int32, Int32, Int32) -> Int32

    let library: DynamicLibrary
    private let handle: OpaquePointer
    private let gemmEx: FnGemmEx
    private let statusName: FnStatusName?

    /// Opens cuBLAS and makes a handle that queues its work on `stream`.
    public init(stream: CUstream) throws {
        let lib = try DynamicLibrary(name: "libcublas", candidates: libraryCandidates("libcublas", versions: ["13", "12", "11"]))
        library = lib
        let create = try lib.function("cublasCreate_v2", as: FnCreate.self)
        let setStream = try lib.function("cublasSetStream_v2", as: FnSetStream.self)
        gemmEx = try lib.function("cublasGemmEx", as: FnGemmEx.self)
        statusName = try? lib.function("cublasGetStatusName", as: FnStatusName.self)
        var h: OpaquePointer?
        let status = create(&h)
        guard status == 0, let h else { throw CUDAError.driver(call: "cublasCreate_v2", result: status, name: "cuBLAS status \(status)") }
        handle = h
        try check("cublasSetStream_v2", setStream(handle, stream))
    }

    private func check(_ call: @autoclosure () -> String, _ status: Int32) throws {
        guard status != 0 else { return }
        let name = statusName?(status).map { String(cString: $0) } ?? "cuBLAS status \(status)"
        throw CUDAError.driver(call: call(), result: status, name: name)
    }

    /// C [tokens, rows] (f32, row-major) = X [tokens, cols] (f16) · Wᵀ, W [rows, cols] (f16,
    /// row-major); f32 accumulation. In cuBLAS's column-major terms: C = Wᵀᵀ · X with W read
    /// transposed.
    public func gemmF16(w: CUdeviceptr, x: CUdeviceptr, c: CUdeviceptr, rows: Int, cols: Int, tokens: Int) throws {
        var alpha: Float = 1, beta: Float = 0
        // CUBLAS_OP_T = 1, CUBLAS_OP_N = 0; CUDA_R_16F = 2, CUDA_R_32F = 0; CUBLAS_COMPUTE_32F = 68; CUBLAS_GEMM_DEFAULT = -1
        try check("cublasGemmEx(\(rows)×\(cols) · \(tokens) tokens)",
                  gemmEx(handle, 1, 0, Int32(rows), Int32(tokens), Int32(cols), &alpha, w, 2, Int32(cols), x, 2, Int32(cols),
                         &beta, c, 0, Int32(rows), 68, -1))
    }
}
