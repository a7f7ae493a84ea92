// Errors of the CUDA backend: every failure names the library call, its numeric result and the
// library's own name for it (CUDA_ERROR_OUT_OF_MEMORY, NVRTC_ERROR_COMPILATION…), and a failed
// NVRTC compilation carries the compiler log.

public enum CUDAError: Error, CustomStringConvertible {
    /// A shared library could not be opened (no driver, no toolkit runtime on this machine).
    case libraryNotFound(library: String, tried: [String], reason: String)
    /// A symbol is missing from a library that did open (a driver too old for this binary).
    case symbolNotFound(library: String, symbol: String)
    /// A driver API call returned an error.
    case driver(call: String, result: Int32, name: String)
    /// An NVRTC call returned an error; `log` holds the compile log when there is one.
    case nvrtc(call: String, result: Int32, name: String, log: String)
    case noDevice
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .libraryNotFound(lib, tried, reason):
            return "\(lib) not found (tried \(tried.joined(separator: ", "))): \(reason)"
        case let .symbolNotFound(lib, sym): return "\(lib) has no symbol \(sym) (driver too old?)"
        case let .driver(call, result, name):
            let hint = name == "CUDA_ERROR_OUT_OF_MEMORY"
                ? " — the GPU's memory is full: the weights the rules put on it and the KV cache (--ctx-size) do not fit; "
                  + "try a smaller --ctx-size, or rules that keep more on the CPU (--rules rules/cpu.yaml runs it all there; "
                  + "`swiftkt inspect --placement` shows the bytes per device)"
                : ""
            return "\(call) failed: \(name) (\(result))" + hint
        case let .nvrtc(call, result, name, log):
            return "\(call) failed: \(name) (\(result))" + (log.isEmpty ? "" : "\ncompile log:\n\(log)")
        case .noDevice: return "no CUDA device found"
        case let .invalidArgument(s): return s
        }
    }
}
