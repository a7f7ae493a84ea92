// Helpers for the quant tests: a seeded RNG, Gaussian samples, byte-buffer round trips through
// Quant, and a runner for scripts/quant_reference.py (the gguf-py reference).

import Foundation
import XCTest
@testable import Core

/// SplitMix64: small, seedable, identical on every platform.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A standard normal sample (Box–Muller).
    mutating func gaussian() -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    mutating func gaussians(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in gaussian() * scale } }

    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &self) } }

    /// Random f16 bits of a finite value (any sign, normal or subnormal).
    mutating func finiteHalfBits() -> UInt16 {
        while true {
            let h = UInt16.random(in: 0...UInt16.max, using: &self)
            if h & 0x7C00 != 0x7C00 { return h }
        }
    }
}

enum QuantTest {
    /// quantize then dequantize through the public API.
    static func roundTrip(_ type: GGMLType, _ x: [Float]) throws -> (bytes: [UInt8], y: [Float]) {
        var bytes = [UInt8](repeating: 0xA5, count: type.byteCount(elements: x.count))
        var y = [Float](repeating: .nan, count: x.count)
        try x.withUnsafeBufferPointer { xs in
            try bytes.withUnsafeMutableBytes { try Quant.quantize(type, from: xs.baseAddress!, to: $0.baseAddress!, count: x.count) }
        }
        try dequantize(type, bytes, into: &y)
        return (bytes, y)
    }

    static func dequantize(_ type: GGMLType, _ bytes: [UInt8], into y: inout [Float]) throws {
        let n = y.count
        try bytes.withUnsafeBytes { raw in
            try y.withUnsafeMutableBufferPointer { try Quant.dequantize(type, from: raw.baseAddress!, to: $0.baseAddress!, count: n) }
        }
    }

    /// sum((x-y)^2) / sum(x^2), in Double.
    static func normalizedMSE(_ x: [Float], _ y: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (a, b) in zip(x, y) {
            let d = Double(a) - Double(b)
            num += d * d
            den += Double(a) * Double(a)
        }
        return den > 0 ? num / den : num
    }

    static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static let setupHint = "run the test set-up: pip install gguf==0.19.0 (needs python3 with numpy on PATH)"

    /// One job for scripts/quant_reference.py.
    struct Job {
        var op: String          // "dequantize" or "quantize"
        var type: GGMLType
        var input: [UInt8]
    }

    /// Runs the reference script on `jobs` and returns each job's output bytes (nil after an XCTFail).
    static func runReference(_ jobs: [Job], file: StaticString = #filePath, line: UInt = #line) throws -> [[UInt8]]? {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("swiftkt-quant-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        var manifest = ""
        for (i, job) in jobs.enumerated() {
            let input = dir.appendingPathComponent("in\(i).bin"), output = dir.appendingPathComponent("out\(i).bin")
            try Data(job.input).write(to: input)
            manifest += "\(job.op) \(job.type.description) \(input.path) \(output.path)\n"
        }
        let manifestURL = dir.appendingPathComponent("manifest.txt")
        try manifest.write(to: manifestURL, atomically: true, encoding: .utf8)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repoRoot.appendingPathComponent("scripts/quant_reference.py").path, manifestURL.path]
        let errPipe = Pipe()
        process.standardError = errPipe
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            XCTFail("cannot start python3 (\(error)); \(setupHint)", file: file, line: line)
            return nil
        }
        let stderr = String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            XCTFail("scripts/quant_reference.py exited with \(process.terminationStatus): \(stderr)\n\(setupHint)",
                    file: file, line: line)
            return nil
        }
        return try jobs.indices.map { [UInt8](try Data(contentsOf: dir.appendingPathComponent("out\($0).bin"))) }
    }

    static func floatsToBytes(_ x: [Float]) -> [UInt8] {
        x.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    }

    static func bytesToFloats(_ b: [UInt8]) -> [Float] {
        stride(from: 0, to: b.count - 3, by: 4).map {
            Float(bitPattern: UInt32(b[$0]) | UInt32(b[$0 + 1]) << 8 | UInt32(b[$0 + 2]) << 16 | UInt32(b[$0 + 3]) << 24)
        }
    }
}
