// Intermediate-tensor trace for numerics debugging: with SWIFTKT_TRACE=DIR, every `Trace.record`
// writes its float tensor to DIR/NAME.f32 (row-major, little-endian) and appends "NAME ROWS COLS"
// to DIR/index.txt. Names follow llama.cpp's graph names ("attn_norm-3", "Qcur-3", "ffn_out-3",
// "result_output") so that scripts/peer/compare_traces.py can line our tensors up with those
// dumped by scripts/peer/dump_llamacpp_tensors.py. Off (one load of a constant) unless set.
import Foundation

public enum Trace {
    /// The trace directory, from SWIFTKT_TRACE at first use; nil when tracing is off.
    public static let directory: String? = {
        guard let dir = ProcessInfo.processInfo.environment["SWIFTKT_TRACE"], !dir.isEmpty else { return nil }
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir + "/index.txt", contents: nil)
        return dir
    }()

    public static var enabled: Bool { directory != nil }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var seen: [String: Int] = [:]

    /// Writes `rows × cols` floats at `data` under `name` (a repeated name gets "#2", "#3"…).
    public static func record(_ name: String, _ data: UnsafePointer<Float>, rows: Int, cols: Int) {
        guard let dir = directory else { return }
        lock.lock(); defer { lock.unlock() }
        let count = (seen[name] ?? 0) + 1
        seen[name] = count
        let key = count == 1 ? name : "\(name)#\(count)"
        let bytes = Data(bytes: data, count: rows * cols * MemoryLayout<Float>.size)
        _ = FileManager.default.createFile(atPath: "\(dir)/\(key).f32", contents: bytes)
        if let handle = FileHandle(forWritingAtPath: dir + "/index.txt") {
            handle.seekToEndOfFile()
            handle.write("\(key) \(rows) \(cols)\n".data(using: .utf8)!)
            try? handle.close()
        }
    }
}
