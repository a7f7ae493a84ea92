// Devices and module kinds: the two vocabularies that operators, module trees and rules share.
// A device is written "cpu" or "cuda:N" in rule files ("cuda" alone means cuda:0); module kinds
// are spelled as in rule files' `class:` (Embedding, Linear, …).

import CUDA
import Foundation

// MARK: - Device

public enum Device: Hashable, Sendable, CustomStringConvertible, Comparable {
    case cpu
    case cuda(Int)

    /// The device kind an operator declares support for (any CUDA index).
    public enum Kind: String, Sendable, Hashable { case cpu, cuda }

    public var kind: Kind {
        switch self { case .cpu: return .cpu; case .cuda: return .cuda }
    }

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case let .cuda(i): return "cuda:\(i)"
        }
    }

    /// Spellings rule files accept, for error messages.
    public static let spellings = ["cpu", "cuda:N"]

    /// Parses "cpu", "cuda", "cuda:N"; nil otherwise.
    public init?(parsing text: String) {
        let s = text.lowercased()
        if s == "cpu" { self = .cpu; return }
        if s == "cuda" { self = .cuda(0); return }
        if s.hasPrefix("cuda:"), let i = Int(s.dropFirst(5)), i >= 0 { self = .cuda(i); return }
        return nil
    }

    public static func < (a: Device, b: Device) -> Bool {
        switch (a, b) {
        case (.cpu, .cuda): return true
        case let (.cuda(x), .cuda(y)): return x < y
        default: return false
        }
    }
}

extension Device {
    /// The devices of this machine: the CPU, and every CUDA device when the driver and NVRTC
    /// load (probed once per process). `SWIFTKT_NO_CUDA=1` hides the GPUs.
    ///
    /// `SWIFTKT_CUDA_STAND_IN=N` lists cuda:0 … cuda:N-1 on a machine with fewer GPUs, device i
    /// running on GPU i mod (GPUs found): one GPU standing in for several, to run rules that split
    /// a model over devices (same numbers, no speed-up) where only one is lent.
    public static let available: [Device] = {
        if ProcessInfo.processInfo.environment["SWIFTKT_NO_CUDA"] == "1" { return [.cpu] }
        let report = CUDAProbe.probe()
        guard report.problem == nil else { return [.cpu] }
        let count = max(report.devices.count, standIns ?? 0)
        return [.cpu] + (0..<count).map { .cuda($0) }
    }()

    /// SWIFTKT_CUDA_STAND_IN's count, when set.
    static let standIns: Int? = ProcessInfo.processInfo.environment["SWIFTKT_CUDA_STAND_IN"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }

    /// The GPU ordinal that runs `cuda:i` (itself, or with stand-ins i mod the GPUs found).
    public static func physicalOrdinal(_ i: Int) -> Int {
        guard standIns != nil else { return i }
        return found > 0 ? i % found : i
    }

    /// GPUs the probe found (probed once).
    private static let found: Int = CUDAProbe.probe().devices.count
}

// MARK: - Module kinds

/// What a module of a model's tree is. Rules match on it (`class:`); operators declare the
/// kinds they run. MoE, Router and Experts are reserved for the MoE architectures.
public enum ModuleKind: String, CaseIterable, Sendable, Hashable, Comparable {
    case model = "Model"
    case embedding = "Embedding"
    case decoderLayer = "DecoderLayer"
    case rmsNorm = "RMSNorm"
    case attention = "Attention"
    case rotaryEmbedding = "RotaryEmbedding"
    case linear = "Linear"
    case mlp = "MLP"
    case moe = "MoE"
    case router = "Router"
    case experts = "Experts"
    case lmHead = "LMHead"

    public static func < (a: ModuleKind, b: ModuleKind) -> Bool { a.rawValue < b.rawValue }
}
