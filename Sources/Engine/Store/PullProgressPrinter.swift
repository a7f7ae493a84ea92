// Prints pull progress on stderr, one line per stage. Byte-count stages (extracting, verifying)
// redraw one line with "\r" on a terminal and print every 25 % otherwise, so logs stay short.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class PullProgressPrinter {
    private let isTerminal = isatty(STDERR_FILENO) != 0
    /// The stage of the line being redrawn, and the last quarter printed for it.
    private var openLine: String?
    private var lastQuarter = -1

    public init() {}

    public func print(_ progress: PullProgress) {
        let key: String?
        let fraction: Double?
        switch progress.stage {
        case let .extracting(member, _, _, done, total):
            key = "extract \(member)"
            fraction = total > 0 ? Double(done) / Double(total) : nil
        case let .verifying(done, total):
            key = "verify"
            fraction = total > 0 ? Double(done) / Double(total) : nil
        default:
            key = nil
            fraction = nil
        }
        let line = progress.description
        if let key {
            if openLine != key {
                finishLine()
                openLine = key
                lastQuarter = -1
            }
            if isTerminal {
                write("\r\(line)")
            } else {
                let quarter = Int((fraction ?? 0) * 4)
                if quarter != lastQuarter {
                    lastQuarter = quarter
                    write("\(line)\n")
                }
            }
            if (fraction ?? 0) >= 1 { finishLine() }
        } else {
            finishLine()
            write("\(line)\n")
        }
    }

    private func finishLine() {
        if openLine != nil, isTerminal { write("\n") }
        openLine = nil
    }

    private func write(_ text: String) {
        try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
    }
}
