// A dense model split over several GPUs by layer ranges (rules placing model.layers.a … b on
// cuda:0, the next range on cuda:1, …: PlacementPlan.transferPoints): one CUDAModel piece per
// range on its device, the first with the token embedding, the last with the final norm and LM
// head. A chunk runs through the pieces in order; between two, the hidden state (tokens × d
// floats, the residual stream after the piece's last layer) is copied from one device to the
// next (peer to peer where the load could enable it, else staged through host memory by the
// driver; within one device a device-to-device copy), after the piece before has finished the
// chunk. Each piece captures its own decode step as a graph. Pieces may share a device (one GPU
// standing in for two: SWIFTKT_CUDA_STAND_IN, Operators/Device.swift), and then its GPU object.
import CUDA
import Foundation
import Models

public final class CUDASplitDecoder: @unchecked Sendable {
    let pieces: [CUDADecoder]

    /// The pieces' decoders, in layer order (each from its CUDAModel's makeDecoder).
    public init(pieces: [CUDADecoder]) throws {
        guard let first = pieces.first, let last = pieces.last, first.model.isFirst, last.model.isLast,
              zip(pieces, pieces.dropFirst()).allSatisfy({ $0.model.layerRange.upperBound == $1.model.layerRange.lowerBound }) else {
            throw CUDAModelError.unsupported("a split model's pieces must cover its layers in order, "
                                             + pieces.map { "\($0.model.layerRange)" }.joined(separator: ", "))
        }
        self.pieces = pieces
    }

    public var capacity: Int { pieces.map(\.capacity).min() ?? 0 }

    /// As CUDADecoder.forward.
    public func forward(tokens: [Int32], startPosition: Int, mode: LogitsMode) throws -> [Float] {
        try run(tokens: tokens, startPosition: startPosition, mode: mode, sampling: nil).logits
    }

    /// As CUDADecoder.forwardSampling: the last piece picks the token.
    public func forwardSampling(tokens: [Int32], startPosition: Int, sampling: GPUSampling) throws -> Int32 {
        guard !tokens.isEmpty else { throw CUDAModelError.unsupported("sampling needs at least one token") }
        let out = try run(tokens: tokens, startPosition: startPosition, mode: .last, sampling: sampling)
        guard let token = out.token else { throw CUDAModelError.unsupported("GPU sampling picked no token") }
        return token
    }

    private func run(tokens: [Int32], startPosition: Int, mode: LogitsMode, sampling: GPUSampling?) throws -> (logits: [Float], token: Int32?) {
        let n = tokens.count
        guard n > 0 else { return ([], nil) }
        for p in pieces { try p.validate(tokens: tokens, startPosition: startPosition) }
        let maxBatch = pieces.map(\.maxBatch).min() ?? 1
        var result: [Float] = []
        var token: Int32?
        for c in CUDADecoder.chunks(count: n, maxBatch: maxBatch, mode: mode) {
            let chunk = Array(tokens[c.start..<c.end])
            for (i, piece) in pieces.enumerated() {
                try piece.gpu.makeCurrent()
                if i > 0 { try piece.receive(from: pieces[i - 1], tokens: chunk.count) }
                let last = i == pieces.count - 1
                let out = try piece.chunk(chunk, startPosition: startPosition + c.start, first: last ? c.first : 0, rows: last ? c.rows : 0,
                                          sampling: last && c.end == n ? sampling : nil)
                if last { result += out.logits; token = out.token ?? token }
            }
        }
        return (result, token)
    }
}

extension CUDASplitDecoder {
    /// Consecutive runs of equal devices over the layers: (device, layer range) per piece.
    public static func pieces<D: Equatable>(layerDevices: [D]) -> [(device: D, layers: Range<Int>)] {
        var out: [(device: D, layers: Range<Int>)] = []
        for (i, d) in layerDevices.enumerated() {
            if let last = out.last, last.device == d { out[out.count - 1].layers = last.layers.lowerBound..<(i + 1) }
            else { out.append((d, i..<(i + 1))) }
        }
        return out
    }
}
