// Running helper programs (python3 -m pip, python3 for zip extraction) for the model store.
// Output of the child (stdout and stderr merged) is read as it comes and split into lines at
// "\n" and "\r" so that progress redraws arrive as separate lines; every line goes to a
// non-escaping callback on the calling thread, and the last lines are kept for error messages.
import Foundation

struct SubprocessResult {
    var exitCode: Int32
    /// The last `tailLimit` lines of merged output, for error messages.
    var tail: [String]
}

enum Subprocess {
    /// `python3` to use: `$SWIFTKT_PYTHON`, else the first `python3` on `$PATH`.
    static func findPython() throws -> String {
        if let explicit = getenv("SWIFTKT_PYTHON").map({ String(cString: $0) }), !explicit.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: explicit) else {
                throw ModelStoreError.pythonNotFound(searched: [explicit])
            }
            return explicit
        }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        let dirs = path.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        for dir in dirs {
            let candidate = (dir as NSString).appendingPathComponent("python3")
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ModelStoreError.pythonNotFound(searched: dirs)
    }

    /// Runs `executable arguments…`, forwarding each output line to `onLine`, and waits for it.
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:],
        tailLimit: Int = 20, onLine: (String) -> Void
    ) throws -> SubprocessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw ModelStoreError.launchFailed(command: ([executable] + arguments).joined(separator: " "),
                                               reason: "\(error)")
        }
        let reader = pipe.fileHandleForReading
        var buffer = Data()
        var tail: [String] = []
        func emit(_ bytes: Data) {
            let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty else { return }
            tail.append(line)
            if tail.count > tailLimit { tail.removeFirst(tail.count - tailLimit) }
            onLine(line)
        }
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            while let cut = buffer.firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) {
                emit(buffer[buffer.startIndex..<cut])
                buffer = Data(buffer[(cut + 1)...])
            }
        }
        if !buffer.isEmpty { emit(buffer) }
        process.waitUntilExit()
        return SubprocessResult(exitCode: process.terminationStatus, tail: tail)
    }
}
