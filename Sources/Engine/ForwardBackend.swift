// Where a session's forward passes run: the CPU operators of the placement over a KV cache in
// host memory, or the CUDA backend (ModelsCUDA) with its cache on the GPU. Both follow
// DecoderModel.forward's contract: logits for the positions the mode asks for.
import CPUKernels
import CUDA
import Models
import ModelsCUDA

protocol ForwardBackend: AnyObject {
    /// Positions the KV cache holds.
    var capacity: Int { get }
    func forward(tokens: [Int32], startPosition: Int, mode: LogitsMode) throws -> [Float]
}

/// The CPU path: the model's own forward pass with the placement's operators.
final class CPUForward: ForwardBackend {
    let model: DecoderModel
    let cache: KVCache
    let context: ForwardContext

    init(model: DecoderModel, capacity: Int, context: ForwardContext) {
        self.model = model; self.context = context
        cache = model.makeCache(capacity: capacity, element: context.kernels.cacheElement)
    }

    var capacity: Int { cache.capacity }

    func forward(tokens: [Int32], startPosition: Int, mode: LogitsMode) throws -> [Float] {
        try model.forward(tokens: tokens, startPosition: startPosition, cache: cache, mode: mode, context: context)
    }
}

/// A backend that can pick the next token where the logits are (the GPU), sparing their
/// download and the host's pass over the vocabulary.
protocol DeviceSamplingBackend: ForwardBackend {
    func forwardSampling(tokens: [Int32], startPosition: Int, sampling: GPUSampling) throws -> Int32
}

extension CUDADecoder: DeviceSamplingBackend {}
extension CUDASplitDecoder: DeviceSamplingBackend {}
