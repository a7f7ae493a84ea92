// Upcycling: a dense llama GGUF turned into a Mixtral-style MoE GGUF (`general.architecture =
// llama` with experts, as llama.cpp expects) that computes the same function, so that the MoE
// path can be checked against a real model's greedy output (`swiftkt synth --upcycle`).
//
// Each FFN of width F is cut into N experts of width F/N along the intermediate dimension:
// expert e holds rows e·F/N ..< (e+1)·F/N of ffn_gate and ffn_up (the same bytes: rows are
// contiguous) and the same columns of ffn_down (per row, whole quant blocks, so F/N must be a
// multiple of ffn_down's block size). Σ_e down_e(silu(gate_e x) · up_e x) is then the dense
// down(silu(gate x) · up x), up to the order of the float sums.
//
// Routing must select every expert with weight exactly 1. llama.cpp's llama architecture fixes
// softmax gating with renormalized top-k weights, so: the router `ffn_gate_inp` is all zeros
// (every expert has probability 1/N, all N are selected, renormalizing keeps 1/N), and the
// f16 block scales (d, and the block minimum where the type has one) of `ffn_down_exps` are
// multiplied by N. With N a power of two every step is exact in binary floating point: the
// weight 1/N, the scaled f16 scales, and (1/N)·(N·y) = y. So each expert contributes exactly
// its slice of the dense FFN, in llama.cpp and here alike.
import Core
import Foundation
import GGUF

public enum UpcycleError: Error, CustomStringConvertible {
    case notDense(String)
    case badExpertCount(Int, feedForward: Int, reason: String)
    case unsupportedType(tensor: String, type: GGMLType)
    case scaleOverflow(tensor: String)
    case biasNotSupported(String)

    public var description: String {
        switch self {
        case let .notDense(why): return "cannot upcycle: \(why)"
        case let .badExpertCount(n, ff, why): return "cannot split the FFN (width \(ff)) into \(n) experts: \(why)"
        case let .unsupportedType(t, type):
            return "cannot upcycle \(t): scaling the block scales of \(type) is not implemented "
                + "(supported: \(Upcycle.scaleOffsets.keys.map(\.name).sorted().joined(separator: ", ")), f32, f16, bf16)"
        case let .scaleOverflow(t): return "cannot upcycle \(t): a block scale times the expert count overflows f16"
        case let .biasNotSupported(t): return "cannot upcycle: FFN bias \(t) is not supported"
        }
    }
}

public enum Upcycle {
    /// Byte offsets of the f16 scale fields (d, and dmin / m) in one block, per quant type.
    static let scaleOffsets: [GGMLType: [Int]] = [
        .q4_0: [0], .q4_1: [0, 2], .q5_0: [0], .q5_1: [0, 2], .q8_0: [0],
        .q2_K: [80, 82], .q3_K: [108], .q4_K: [0, 2], .q5_K: [0, 2], .q6_K: [208],
        .iq4_nl: [0], .iq4_xs: [0],
    ]

    /// The MoE version of the dense llama model in `file`, with `experts` experts per layer.
    public static func build(from file: GGUFFile, experts n: Int, progress: (String) -> Void = { _ in }) throws -> GGUFWriter {
        guard file.architecture == "llama" else {
            throw UpcycleError.notDense("the model's architecture is '\(file.architecture ?? "?")'; upcycling takes a dense llama model")
        }
        guard (file.int(.expertCount) ?? 0) == 0 else { throw UpcycleError.notDense("the model already has experts") }
        let hp = try Hyperparameters(file: file)
        let ff = hp.feedForward
        guard n >= 1, n & (n - 1) == 0 else {
            throw UpcycleError.badExpertCount(n, feedForward: ff, reason: "the expert count must be a power of two (1, 2, 4, …) "
                                              + "so that the expert weight 1/N and the rescaled block scales are exact")
        }
        guard ff % n == 0 else {
            throw UpcycleError.badExpertCount(n, feedForward: ff, reason: "\(ff) is not a multiple of \(n)")
        }
        let part = ff / n

        var w = GGUFWriter(alignment: file.alignment)
        let ffKey = GGUFKey.feedForwardLength.resolved(architecture: "llama")
        for key in file.metadataKeys where !key.hasPrefix("split.") {
            guard var value = file.metadata[key] else { continue }
            if key == ffKey { value = .uint32(UInt32(part)) }
            if key == GGUFKey.name.template { value = .string("\(value.string ?? "model") upcycled to \(n) experts") }
            w.set(key, value)
        }
        w.set(.expertCount, .uint32(UInt32(n)), architecture: "llama")
        w.set(.expertUsedCount, .uint32(UInt32(n)), architecture: "llama")

        let d = hp.embedding
        for t in file.tensors {
            let parts = t.name.split(separator: ".")
            let bytes = Array(file.data(for: t))
            guard parts.count == 4, parts[0] == "blk", parts[2].hasPrefix("ffn_"), parts[2] != "ffn_norm" else {
                try w.addTensor(name: t.name, type: t.type, shape: t.shape, data: bytes)
                continue
            }
            let p = "blk.\(parts[1]).", base = String(parts[2])
            guard parts[3] == "weight" else { throw UpcycleError.biasNotSupported(t.name) }
            if base == "ffn_gate" { progress("layer \(parts[1])") }
            switch base {
            case "ffn_gate", "ffn_up":
                guard t.shape == [d, ff] else { throw ModelError.shapeMismatch(tensor: t.name, expected: [d, ff], actual: t.shape) }
                if base == "ffn_gate" {
                    try w.addTensor(name: p + "ffn_gate_inp.weight", type: .f32, shape: [d, n],
                                    data: [UInt8](repeating: 0, count: d * n * 4))
                }
                try w.addTensor(name: p + base + "_exps.weight", type: t.type, shape: [d, part, n], data: bytes)
            case "ffn_down":
                guard t.shape == [ff, d] else { throw ModelError.shapeMismatch(tensor: t.name, expected: [ff, d], actual: t.shape) }
                let blockSize = t.type.blockSize
                guard part % blockSize == 0 else {
                    throw UpcycleError.badExpertCount(n, feedForward: ff, reason: "\(t.name) is \(t.type), whose blocks hold "
                                                      + "\(blockSize) columns, and \(ff)/\(n) = \(part) is not a multiple of \(blockSize)")
                }
                let rowBytes = t.type.byteCount(elements: ff), partBytes = t.type.byteCount(elements: part)
                var out = [UInt8](repeating: 0, count: bytes.count)
                for e in 0..<n {
                    for r in 0..<d {
                        let src = r * rowBytes + e * partBytes, dst = (e * d + r) * partBytes
                        out.replaceSubrange(dst..<(dst + partBytes), with: bytes[src..<(src + partBytes)])
                    }
                }
                try scale(&out, type: t.type, by: n, tensor: p + "ffn_down_exps.weight")
                try w.addTensor(name: p + "ffn_down_exps.weight", type: t.type, shape: [part, d, n], data: out)
            default:
                throw UpcycleError.notDense("unexpected FFN tensor \(t.name)")
            }
        }
        return w
    }

    /// Multiplies every value the bytes encode by `factor` (a power of two) through their f16 /
    /// f32 / bf16 scales; exact unless a scale overflows (an error).
    static func scale(_ bytes: inout [UInt8], type: GGMLType, by factor: Int, tensor: String) throws {
        guard factor != 1 else { return }
        let f = Float(factor)
        try bytes.withUnsafeMutableBytes { raw in
            func f16(at o: Int) throws {
                let v = halfToFloat(raw.load(fromByteOffset: o, as: UInt16.self)) * f
                guard v.isNaN || abs(v) <= 65504 else { throw UpcycleError.scaleOverflow(tensor: tensor) }
                raw.storeBytes(of: floatToHalf(v), toByteOffset: o, as: UInt16.self)
            }
            switch type {
            case .f32:
                for o in stride(from: 0, to: raw.count, by: 4) {
                    raw.storeBytes(of: raw.load(fromByteOffset: o, as: Float.self) * f, toByteOffset: o, as: Float.self)
                }
            case .f16:
                for o in stride(from: 0, to: raw.count, by: 2) { try f16(at: o) }
            case .bf16:
                for o in stride(from: 0, to: raw.count, by: 2) {
                    let v = bf16ToFloat(raw.load(fromByteOffset: o, as: UInt16.self)) * f
                    guard v.isNaN || v.isFinite else { throw UpcycleError.scaleOverflow(tensor: tensor) }
                    raw.storeBytes(of: floatToBF16(v), toByteOffset: o, as: UInt16.self)
                }
            default:
                guard let offsets = scaleOffsets[type] else { throw UpcycleError.unsupportedType(tensor: tensor, type: type) }
                let blockBytes = type.byteCount(elements: type.blockSize)
                for block in stride(from: 0, to: raw.count, by: blockBytes) {
                    for o in offsets { try f16(at: block + o) }
                }
            }
        }
    }
}
