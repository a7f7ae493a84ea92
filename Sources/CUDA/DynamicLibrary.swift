// A shared library opened with dlopen at run time, and typed symbol lookup. Nothing CUDA-
// specific is linked at build time: the binary runs on machines without a GPU and finds the
// driver (libcuda) and NVRTC when they are there.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class DynamicLibrary: @unchecked Sendable {
    let name: String
    let path: String
    private let handle: UnsafeMutableRawPointer

    /// Opens the first of `candidates` that loads.
    init(name: String, candidates: [String]) throws {
        var reasons: [String] = []
        for candidate in candidates {
            if let h = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                self.name = name; path = candidate; handle = h
                return
            }
            if let e = dlerror() { reasons.append(String(cString: e)) }
        }
        throw CUDAError.libraryNotFound(library: name, tried: candidates, reason: reasons.last ?? "unknown")
    }

    /// The symbol `symbol` as a C function of type `T`.
    func function<T>(_ symbol: String, as type: T.Type) throws -> T {
        guard let p = dlsym(handle, symbol) else { throw CUDAError.symbolNotFound(library: name, symbol: symbol) }
        return unsafeBitCast(p, to: type)
    }
}

/// Library file names to try, newest first, in the default search path and CUDA's usual homes.
func libraryCandidates(_ base: String, versions: [String]) -> [String] {
    let dirs = ["", "/usr/local/cuda/lib64/", "/usr/lib/x86_64-linux-gnu/", "/usr/lib64/", "/usr/lib/"]
    var names = versions.map { "\(base).so.\($0)" }
    names.append("\(base).so")
    return dirs.flatMap { d in names.map { d + $0 } }
}
