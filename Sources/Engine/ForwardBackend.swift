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

/// A device-sampling backend that can queue the next one-token step before the host has read
/// the token it runs: that token is the last pick, still on the device. `Session.generate`
/// queues step n + 1, then handles token n (stop checks, the caller's event), then takes the
/// pick of step n + 1, so the device does not wait for the host between tokens.
protocol ChainedSamplingBackend: DeviceSamplingBackend {
    /// Whether chained steps can run now (else the session steps one token at a time).
    var canChain: Bool { get }
    /// Queues the step of the last picked token at `position` and the pick after it.
    func enqueueChained(position: Int, sampling: GPUSampling) throws
    /// Waits for the oldest queued step's pick.
    func takeChained() throws -> Int32
}

extension CUDADecoder: ChainedSamplingBackend {}
extension CUDASplitDecoder: DeviceSamplingBackend {}
