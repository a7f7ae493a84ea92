// A dense decoder (llama, qwen2, qwen3, gemma3: the DecoderModel of Models/ with SelfAttention
// and GatedMLP layers; deepseek2's multi-head latent attention with attn_kv_b in
// CUDAModel+MLA.swift) on one CUDA device. `CUDAModel` uploads the weights once, in their GGUF
// blocks; each `CUDADecoder` (one per session) owns an f16 KV cache and a workspace and runs
// the same forward pass as DecoderModel.forward, top to bottom, with the operators of
// CUDA/GPUOps.swift:
//
//   x = embed(tokens) · embeddingScale
//   for each layer:
//       x += postAttnNorm?(o(attention(rope(qkNorm?(q, k, v (attnNorm(x)))))))
//       x += postFFNNorm?(down(act(gate(h)) · up(h))),  h = ffnNorm(x)
//   logits = softcap?(lmHead(outputNorm(x)))
//
// Decode steps (one token, last logits) are captured once as a CUDA graph and replayed: the
// token id and position live in device memory, and attention splits over the whole cache, so
// the same graph serves every position.
//
// Mixtures of experts (rules/cuda-moe.yaml) keep each layer's MoE block on the CPU: the GPU
// computes h = ffnNorm(x) as usual, h goes to page-locked host memory, the CPU runs the block
// (router, routed experts on their GGUF weights) with the placement's CPU operators, and its
// output comes back into the residual add; the shared expert, where the placement puts it on the
// GPU, runs there and is added too. Decode steps run as captured segments between the CPU blocks.
import Core
import CPUKernels
import CUDA
import Foundation
import Models
import Operators

public enum CUDAModelError: Error, CustomStringConvertible {
    case unsupported(String)

    public var description: String {
        switch self { case let .unsupported(s): return "the CUDA backend cannot run this model: \(s)" }
    }
}

/// Numerics choices of the GPU operators (the rules' kwargs of AttentionCUDA and MLPCUDA).
public struct CUDANumerics: Sendable {
    /// Chunks below 64 tokens attend with llama.cpp's CPU flash-attention numerics (f16 query
    /// and accumulator), so that the GPU's tokens follow the CPU path's; else split-K in f32.
    public var attentionLikeCPU = true
    /// GeGLU rounds through f16 like llama.cpp's CPU table.
    public var geluTable = true
    /// Chunks of at least this many tokens run linear layers as f16 cuBLAS GEMMs on weights
    /// dequantized on the fly (0: never); smaller ones use the 8-bit GEMV kernels.
    public var gemmMinTokens = 32
    /// Chunks of 2 up to this many tokens (≤ 64) run q4_0 / q4_1 / q4_K linear layers with the
    /// Marlin-class tensor-core GEMM on weights repacked at load (0: off, no repacked copies).
    public var marlinMaxTokens = 0
    /// Split models: chunks of at least this many tokens run each MoE block's routed experts on
    /// the GPU, their weights streamed from host memory (0: the CPU runs every MoE block).
    public var expertsOnGPUMinTokens = 0
    /// Split models: the MoE blocks' shared experts (and qwen2moe's gates) run on the GPU,
    /// the CPU computing only the router and the routed experts (cuda-moe.yaml's placement).
    public var sharedExpertsOnGPU = false
    public init(attentionLikeCPU: Bool = true, geluTable: Bool = true, gemmMinTokens: Int = 32, marlinMaxTokens: Int = 0) {
        self.attentionLikeCPU = attentionLikeCPU; self.geluTable = geluTable; self.gemmMinTokens = gemmMinTokens
        self.marlinMaxTokens = marlinMaxTokens
    }
}

public final class CUDAModel: @unchecked Sendable {
    public let gpu: GPU
    public let model: DecoderModel
    public let numerics: CUDANumerics
    /// Bytes of weights uploaded.
    public private(set) var weightBytes = 0

    struct Lin {
        let matrix: DeviceMatrix
        let bias: CUdeviceptr?
        /// The weights repacked for the Marlin GEMM (numerics.marlinMaxTokens > 0, 4-bit types).
        var marlin: MarlinMatrix? = nil
    }

    struct Norm {
        let weight: CUdeviceptr
        let n: Int
        let eps: Float
    }

    /// A layer's feed-forward block: a gated MLP on the GPU, or a block the CPU runs (with its
    /// shared expert on the GPU, when the placement puts it there).
    enum FeedForwardPlace {
        case gpu(gate: Lin, up: Lin, down: Lin, gelu: Bool)
        case cpu(any FeedForward, shared: SharedExpert?)
    }

    /// A MoE block's shared expert on the GPU: a gated MLP, and qwen2moe's sigmoid gate
    /// [1, embedding] on its output.
    struct SharedExpert {
        let gate: Lin, up: Lin, down: Lin
        let gelu: Bool
        let sharedGate: Lin?
        var lins: [Lin] { [gate, up, down] + (sharedGate.map { [$0] } ?? []) }
    }

    struct Layer {
        let attentionNorm: Norm
        let q: Lin, k: Lin, v: Lin, o: Lin
        let qNorm: Norm?, kNorm: Norm?
        let postAttentionNorm: Norm?
        let ffnNorm: Norm
        let ffn: FeedForwardPlace
        let postFFNNorm: Norm?
        let heads: Int, kvHeads: Int, headDim: Int
        let rope: RopeSettings
        let ropeFactors: CUdeviceptr?
        let window: Int
        let scale: Float

        /// Multi-head latent attention's other parts (nil for SelfAttention). Its q is attn_q or
        /// attn_q_a (what reads the attention norm's output), k attn_kv_a_mqa, v attn_kv_b, o
        /// attn_output; heads = kvHeads, headDim = qkNope + qkRope, window 0, and `rope` unused.
        let mla: LatentAttention?

        /// The attention's matrices (with q LoRA's attn_q_b).
        var attentionLins: [Lin] { [q, k, v, o] + (mla?.qB.map { [$0] } ?? []) }

        /// The feed-forward matrices the GPU runs: its MLP's, or a CPU block's shared expert's
        /// (gate first, so the first one's rows are the intermediate width).
        var ffnLins: [Lin] {
            switch ffn {
            case let .gpu(g, u, d, _): return [g, u, d]
            case let .cpu(_, shared): return shared?.lins ?? []
            }
        }
        var mlpMatrices: [DeviceMatrix] { ffnLins.map(\.matrix) }

        /// A CPU block's shared expert on the GPU (nil otherwise).
        var sharedExpert: SharedExpert? {
            if case let .cpu(_, shared) = ffn { return shared }
            return nil
        }
    }

    /// The decoder layers this model holds (all of them, or a piece of a model split over
    /// several GPUs: CUDASplitDecoder), and those layers, in order.
    public let layerRange: Range<Int>
    let layers: [Layer]
    /// The token embedding (the piece holding layer 0 only) and the final norm and LM head (the
    /// piece holding the last layer only).
    let embedding: DeviceMatrix?
    let outputNorm: Norm?
    let head: DeviceMatrix?
    let headLin: Lin?
    /// Whether this piece begins / ends the model.
    var isFirst: Bool { layerRange.lowerBound == 0 }
    var isLast: Bool { layerRange.upperBound == model.layers.count }
    /// Bytes of weights repacked for the Marlin GEMM (beside the GGUF blocks).
    public private(set) var marlinBytes = 0
    private var buffers: [DeviceBuffer] = []
    /// The CPU side of a split model: its thread pool and the placement's CPU operators.
    let cpuContext: ForwardContext?
    /// Streams routed experts to the GPU for prompt-sized chunks (numerics.expertsOnGPUMinTokens).
    let streamer: ExpertStreamer?
    /// MoE routers uploaded for decode steps (`GPUOps.gpuRouterEnabled`: F32, 16·k wide, no
    /// bias), by decoder layer index: the GPU computes the CPU's logits exactly, the CPU keeps
    /// only the routing function.
    let routers: [Int: DeviceMatrix]
    /// Layers whose feed-forward block runs on the CPU.
    public var cpuBlocks: Int { layers.filter { if case .cpu = $0.ffn { return true } else { return false } }.count }

    /// Uploads `model`'s weights to `gpu`; `progress` gets a line per few layers. Mixtures of
    /// experts need `cpuContext`: their MoE blocks stay on the CPU (not uploaded). `layers`
    /// uploads only those decoder layers (with the embedding when it starts at 0, the final norm
    /// and LM head when it ends at the last): a piece of a model split over GPUs.
    public init(model: DecoderModel, gpu: GPU, numerics: CUDANumerics = CUDANumerics(), cpuContext: ForwardContext? = nil,
                layers range: Range<Int>? = nil, progress: (String) -> Void = { _ in }) throws {
        let range = range ?? 0..<model.layers.count
        guard !range.isEmpty, range.lowerBound >= 0, range.upperBound <= model.layers.count else {
            throw CUDAModelError.unsupported("layers \(range) of a model with \(model.layers.count)")
        }
        layerRange = range
        self.gpu = gpu
        self.model = model
        self.numerics = numerics
        self.cpuContext = cpuContext
        try gpu.makeCurrent()
        var uploaded: [UnsafeRawPointer: CUdeviceptr] = [:]
        var buffers: [DeviceBuffer] = []
        var bytes = 0

        func upload(_ w: WeightMatrix, _ what: String) throws -> DeviceMatrix {
            guard GPUOps.supportedTypes.contains(w.type) else {
                throw CUDAModelError.unsupported("\(what) is \(w.type.name); the CUDA kernels take "
                                                 + GPUOps.supportedTypes.map(\.name).joined(separator: ", "))
            }
            if let p = uploaded[w.data] { return DeviceMatrix(type: w.type, rows: w.rows, cols: w.cols, pointer: p) }
            let size = w.byteCount
            let b = try gpu.allocator.allocate(size)
            try gpu.copy(toDevice: b.pointer, from: w.data, bytes: size)
            w.releaseMappedPages()
            buffers.append(b); bytes += size
            uploaded[w.data] = b.pointer
            return DeviceMatrix(type: w.type, rows: w.rows, cols: w.cols, pointer: b.pointer)
        }
        func floats(_ v: [Float]) throws -> CUdeviceptr {
            let b = try gpu.upload(v)
            buffers.append(b); bytes += v.count * 4
            return b.pointer
        }
        var repacked: [CUdeviceptr: MarlinMatrix] = [:]
        var marlinBytes = 0
        // The Marlin copies (5/8 byte per 4-bit weight beside the GGUF blocks) only when the
        // weights and the copies take at most 60 % of the free device memory.
        var marlinOn = numerics.marlinMaxTokens > 1
        if marlinOn && !GPUOps.marlinAvailable(on: gpu) {
            marlinOn = false
            progress("Marlin GEMM off: it needs compute capability 8.0 or newer")
        }
        if marlinOn {
            var seen = Set<UnsafeRawPointer>(), weights = 0, copies = 0
            func plan(_ w: WeightMatrix) {
                guard seen.insert(UnsafeRawPointer(w.data)).inserted else { return }
                weights += w.byteCount
                if GPUOps.marlinTypes.contains(w.type) && w.rows % 16 == 0 && w.cols % 64 == 0 {
                    let size = GPUOps.marlinBytes(rows: w.rows, cols: w.cols)
                    copies += size.q + size.s
                }
            }
            for layer in model.layers[range] {
                if let a = layer.attention as? SelfAttention { for l in [a.q, a.k, a.v, a.o] { plan(l.weight) } }
                // (A layer the GPU cannot run is refused with its reason in the upload loop below.)
                if let a = layer.attention as? MultiLatentAttention, let p = try? CUDAModel.latentPlan(a, layer: 0) {
                    for l in p.linears { plan(l.weight) }
                }
                if let mlp = layer.mlp as? GatedMLP { for l in [mlp.gate, mlp.up, mlp.down] { plan(l.weight) } }
                if numerics.sharedExpertsOnGPU, let mlp = (layer.mlp as? MoEFeedForward)?.shared {
                    for l in [mlp.gate, mlp.up, mlp.down] { plan(l.weight) }
                }
            }
            if range.upperBound == model.layers.count { plan(model.lmHead.weight) }
            let free = try gpu.driver.memoryInfo().free
            if Double(weights + copies) > 0.6 * Double(free) {
                marlinOn = false
                progress(String(format: "Marlin GEMM off: weights %.1f GiB + repacked copies %.1f GiB exceed 60 %% of the %.1f GiB free",
                                Double(weights) / 1073741824, Double(copies) / 1073741824, Double(free) / 1073741824))
            }
        }
        func marlin(_ m: DeviceMatrix) throws -> MarlinMatrix? {
            guard marlinOn, GPUOps.marlinSupports(m) else { return nil }
            if let r = repacked[m.pointer] { return r }
            let (r, kept) = try GPUOps.marlinRepacked(gpu, m)
            let size = GPUOps.marlinBytes(rows: m.rows, cols: m.cols)
            buffers += kept; marlinBytes += size.q + size.s
            repacked[m.pointer] = r
            return r
        }
        func lin(_ l: Linear) throws -> Lin {
            let m = try upload(l.weight, l.name.isEmpty ? "a linear layer" : l.name)
            return Lin(matrix: m, bias: try l.bias.map { try floats($0) }, marlin: try marlin(m))
        }
        func norm(_ n: RMSNorm) throws -> Norm { Norm(weight: try floats(n.weight), n: n.weight.count, eps: n.epsilon) }

        var out: [Layer] = []
        for (i, layer) in model.layers.enumerated() where range.contains(i) {
            // The attention is checked before any of the layer is uploaded.
            let selfAttention = layer.attention as? SelfAttention
            let latent = try (layer.attention as? MultiLatentAttention).map { try CUDAModel.latentPlan($0, layer: i) }
            if let a = selfAttention {
                guard a.v.outFeatures == a.kvHeads * a.headDim, a.headDim % 32 == 0, a.headDim <= 256 else {
                    throw CUDAModelError.unsupported("layer \(i): head dim \(a.headDim) (value width \(a.v.outFeatures / max(a.kvHeads, 1))); "
                                                     + "the GPU attention takes equal key/value head dims, multiples of 32 up to 256")
                }
            } else if latent == nil {
                throw CUDAModelError.unsupported("layer \(i)'s attention is \(type(of: layer.attention)); the GPU runs "
                                                 + "SelfAttention and MultiLatentAttention (with attn_kv_b)")
            }
            let ffn: FeedForwardPlace
            if let mlp = layer.mlp as? GatedMLP {
                ffn = .gpu(gate: try lin(mlp.gate), up: try lin(mlp.up), down: try lin(mlp.down), gelu: mlp.activation == .geluTanh)
            } else if cpuContext != nil {
                var shared: SharedExpert?
                if numerics.sharedExpertsOnGPU, let moe = layer.mlp as? MoEFeedForward, let mlp = moe.shared {
                    shared = SharedExpert(gate: try lin(mlp.gate), up: try lin(mlp.up), down: try lin(mlp.down),
                                          gelu: mlp.activation == .geluTanh, sharedGate: try moe.sharedGate.map(lin))
                }
                ffn = .cpu(layer.mlp, shared: shared)
            } else {
                throw CUDAModelError.unsupported("layer \(i)'s feed-forward is \(type(of: layer.mlp)); the GPU runs the dense "
                                                 + "gated MLP (mixtures of experts keep their blocks on the CPU: rules/cuda-moe.yaml)")
            }
            if let a = selfAttention {
                out.append(Layer(
                    attentionNorm: try norm(layer.attentionNorm), q: try lin(a.q), k: try lin(a.k), v: try lin(a.v), o: try lin(a.o),
                    qNorm: try a.qNorm.map(norm), kNorm: try a.kNorm.map(norm),
                    postAttentionNorm: try layer.postAttentionNorm.map(norm), ffnNorm: try norm(layer.ffnNorm),
                    ffn: ffn, postFFNNorm: try layer.postFFNNorm.map(norm),
                    heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim, rope: a.rope,
                    ropeFactors: try a.rope.frequencyFactors.map(floats), window: a.window ?? 0, scale: a.scale, mla: nil))
            } else if let p = latent {
                let s = p.shape
                out.append(Layer(
                    attentionNorm: try norm(layer.attentionNorm), q: try lin(p.q), k: try lin(p.k), v: try lin(p.v), o: try lin(p.o),
                    qNorm: nil, kNorm: nil,
                    postAttentionNorm: try layer.postAttentionNorm.map(norm), ffnNorm: try norm(layer.ffnNorm),
                    ffn: ffn, postFFNNorm: try layer.postFFNNorm.map(norm),
                    heads: s.heads, kvHeads: s.heads, headDim: s.headDim,
                    rope: RopeSettings(base: p.ropeBase, dimensions: s.qkRope, neox: false), ropeFactors: nil, window: 0,
                    scale: s.scale,
                    mla: LatentAttention(qANorm: try p.qANorm.map(norm), qB: try p.qB.map(lin), kvANorm: try norm(p.kvANorm), shape: s)))
            }
            if (i + 1 - range.lowerBound) % 8 == 0 || i == range.upperBound - 1 {
                progress(String(format: "uploaded %d/%d layers (%.1f MiB)", i + 1 - range.lowerBound, range.count, Double(bytes) / 1048576))
            }
        }
        layers = out
        var routers: [Int: DeviceMatrix] = [:]
        if GPUOps.gpuRouterEnabled {
            for (k, L) in out.enumerated() {
                guard case let .cpu(block, _) = L.ffn, let moe = block as? MoEFeedForward, moe.router.bias == nil,
                      moe.router.weight.type == .f32, moe.router.weight.cols % 16 == 0 else { continue }
                routers[range.lowerBound + k] = try upload(moe.router.weight, moe.name + ".gate")
            }
        }
        self.routers = routers
        // Blocks whose experts the GPU kernels take (gate and up of one type, as one launch needs).
        let moeBlocks = out.enumerated().compactMap { i, L -> (layer: Int, moe: MoEFeedForward)? in
            guard case let .cpu(block, _) = L.ffn, let moe = block as? MoEFeedForward else { return nil }
            let e = moe.experts, types = [e.gate[0].type, e.up[0].type, e.down[0].type]
            guard types.allSatisfy({ !GPUOps.isFloat($0) && GPUOps.supportedTypes.contains($0) }), types[0] == types[1] else {
                if numerics.expertsOnGPUMinTokens > 0 {
                    progress("layer \(i)'s experts (\(types.map(\.name).joined(separator: ", "))) stay on the CPU for every chunk: "
                             + "the GPU path takes quantized gate and up of one type, of " + GPUOps.supportedTypes.map(\.name).joined(separator: ", "))
                }
                return nil
            }
            return (i, moe)
        }
        if numerics.expertsOnGPUMinTokens > 0, !moeBlocks.isEmpty, let pool = cpuContext?.pool {
            let s = try ExpertStreamer(gpu: gpu, blocks: moeBlocks, pool: pool)
            progress(String(format: "chunks of %d+ tokens stream the routed experts to the GPU (2 × %.0f MiB device buffers; %@)",
                            numerics.expertsOnGPUMinTokens, Double(s.deviceBytes) / 2 / 1048576,
                            s.pinnedCopies ? String(format: "uploads from page-locked copies, %.1f GiB", Double(s.pinnedBytes) / 1073741824)
                                : String(format: "uploads through 2 × %.0f MiB page-locked staging", Double(s.pinnedBytes) / 2 / 1048576)))
            streamer = s
        } else {
            streamer = nil
        }
        embedding = range.lowerBound == 0 ? try upload(model.tokenEmbedding, "token_embd.weight") : nil
        if range.upperBound == model.layers.count {
            let h = try upload(model.lmHead.weight, "the LM head")
            head = h
            headLin = Lin(matrix: h, bias: nil, marlin: try marlin(h))
            outputNorm = try norm(model.outputNorm)
        } else {
            head = nil; headLin = nil; outputNorm = nil
        }
        self.buffers = buffers
        weightBytes = bytes
        self.marlinBytes = marlinBytes
        if marlinBytes > 0 {
            progress(String(format: "repacked %d matrices for the Marlin GEMM (%.1f MiB)", repacked.count, Double(marlinBytes) / 1048576))
        }
        try gpu.synchronize()
    }

    /// A session's state: KV cache for `capacity` positions, workspace for chunks of up to
    /// `maxBatch` tokens.
    public func makeDecoder(capacity: Int, maxBatch: Int) throws -> CUDADecoder {
        try CUDADecoder(model: self, capacity: capacity, maxBatch: maxBatch)
    }

    /// KV cache bytes per position (f16 keys and values, every layer).
    public var kvBytesPerPosition: Int { layers.reduce(0) { $0 + 2 * 2 * $1.kvHeads * $1.headDim } }
}

/// An address inside a buffer that something else owns.
struct DevicePointer { let pointer: CUdeviceptr }

public final class CUDADecoder: @unchecked Sendable {
    public let model: CUDAModel
    public let capacity: Int
    public let maxBatch: Int
    let gpu: GPU
    // (Internal, not private, where CUDAModel+MLA.swift's latent attention uses them.)
    private(set) var keys: [DeviceBuffer] = [], values: [DeviceBuffer] = []
    let x, h, o, qb, kb, vb, attn, g, u, scratch, scores, logits: DeviceBuffer
    /// A chunk's token ids (`maxBatch` words) and then their positions, one buffer so that one
    /// copy uploads both; `ids` and `positions` point into it.
    private let tokenInputs: DeviceBuffer
    let ids, positions: DevicePointer
    /// Multi-head latent attention's intermediates (nil without MLA layers).
    let latent: LatentBuffers?
    /// f16 weights and activations of the GEMM path (nil when it is off or cuBLAS is missing).
    private let gemmW: DeviceBuffer?, gemmX: DeviceBuffer?
    private let blas: CUBLAS?
    /// f16 activations and split partial sums of the Marlin GEMM (nil when it is off).
    private let marlinX: DeviceBuffer?, marlinPartial: DeviceBuffer?
    /// Page-locked rows crossing to and from the CPU's feed-forward blocks (split models).
    private let hostIn: UnsafeMutableRawPointer?, hostOut: UnsafeMutableRawPointer?
    /// A decode step's router logits on the device and page-locked on the host (model.routers).
    private let routerLogits: (device: DeviceBuffer, host: UnsafeMutableRawPointer)?
    /// The shared experts' output rows and their gates' logits (nil without shared experts on the GPU).
    private let sharedOut: DeviceBuffer?, sharedGateOut: DeviceBuffer?
    private(set) var acts: [Int: QuantizedActivationsGPU] = [:]
    private let staging: UnsafeMutableRawPointer
    /// One row of logits in page-locked memory (a decode step's download).
    private let logitsPinned: UnsafeMutableRawPointer
    let maxSplits: Int
    /// The captured decode steps, built on first use (SWIFTKT_CUDA_GRAPHS=0 turns graphs off),
    /// one per bound on the visible keys: positions below GPUOps.shortAttentionMaxKeys replay a
    /// step captured with that bound, later ones a step over the whole cache. (The bound is
    /// unlimited since the one-kernel attention measured faster at every length: one graph.)
    /// With useHostNodes the CPU blocks are host nodes inside it.
    private var decodeGraphs: [Int: CUgraphExec] = [:]
    /// Device and pinned buffers of routed experts on the GPU (a streaming split model).
    struct RoutedBuffers {
        /// [used, tokens, d] weighted expert outputs; gathered rows in and results out (one
        /// expert's rows, [tokens, d]; all pairs', [pairs, d], with the one-launch GEMV).
        let slots: DeviceBuffer, gathered: DeviceBuffer, results: DeviceBuffer
        /// The one-launch GEMV's gate and up outputs of every pair [pairs, ff] and the 8-bit
        /// activations of the gathered rows and of the GLU output (nil when it is off).
        let all: (gate: DeviceBuffer, up: DeviceBuffer, actD: QuantizedActivationsGPU, actFF: QuantizedActivationsGPU)?
        /// Token index, destination slot row and weight of every (token, slot) pair, grouped by
        /// expert, then each expert's first pair (experts + 1 offsets): device and page-locked
        /// host copies.
        let lists: DeviceBuffer
        let staging: UnsafeMutableRawPointer
        let pairs: Int, experts: Int
    }
    private let routed: RoutedBuffers?
    /// The buffer whose activations the last norm launch also quantized (nil after any `linears`).
    var prequantized: CUdeviceptr?
    public let useGraphs: Bool
    /// A decode step with feed-forward blocks on the CPU as captured segments: one graph from
    /// each CPU block's result to the next block's input (the H2D copy, the norms, attention,
    /// projections and the D2H copy), replayed around the blocks instead of ~9 launches per
    /// layer (Qwen3-30B-A3B shape, H100: the host's launches between blocks 2.9 → 0.06 ms per
    /// token, the wait for the GPU 0.55 → 2.5 ms; same text). Default; SWIFTKT_CUDA_HYBRID_GRAPHS=0
    /// or SWIFTKT_CUDA_GRAPHS=0 turns it off.
    public let useSegmentGraphs: Bool
    /// The captured segments per key bound, and the CPU blocks between them in order.
    private var segmentGraphs: [Int: [CUgraphExec]] = [:]
    private var segmentBlocks: [(block: any FeedForward, layer: Int)] = []
    /// While a decode step is being captured: the segments closed so far (nil otherwise).
    private var capturedSegments: [CUgraphExec]?
    /// SWIFTKT_CUDA_HYBRID_GRAPHS=host: the whole step as one graph, each CPU block a host node
    /// (cuLaunchHostFunc: the block runs on the driver's thread when the stream reaches it, the
    /// upload of its result waits for it) — issue 9's design. Correct (same text) but slower on
    /// the H100 host: a block on the driver's callback thread took ~60 ms per token against ~22
    /// (15 against 38 t/s), so segments are the default.
    public let useHostNodes: Bool
    /// The host nodes' work, kept alive with their graphs; the first error a node met.
    private var hostWork: [HostWork] = []
    private var capturingHostNodes = false
    private let hostNodeError = HostNodeError()

    init(model: CUDAModel, capacity: Int, maxBatch: Int) throws {
        self.model = model; self.capacity = capacity; self.maxBatch = maxBatch
        gpu = model.gpu
        try gpu.makeCurrent()
        let m = model.model, d = m.embedding, b = maxBatch
        let maxQ = model.layers.map { $0.heads * $0.headDim }.max() ?? 0
        let maxKV = model.layers.map { $0.kvHeads * $0.headDim }.max() ?? 0
        let expertFF = model.streamer?.layers.values.map(\.gate.rows).max() ?? 0
        let maxFF = max(model.layers.flatMap { $0.mlpMatrices.prefix(1).map(\.rows) }.max() ?? 0, expertFF)
        let maxHeads = model.layers.map(\.heads).max() ?? 1, maxDim = model.layers.map(\.headDim).max() ?? 32
        for _ in model.layers {
            keys.append(try gpu.allocator.allocate(capacity * maxKV * 2))
            values.append(try gpu.allocator.allocate(capacity * maxKV * 2))
        }
        let allocator = model.gpu.allocator
        func floats(_ n: Int) throws -> DeviceBuffer { try allocator.allocate(max(n, 1) * 4) }
        x = try floats(b * d); h = try floats(b * d); o = try floats(b * d)
        qb = try floats(b * maxQ); kb = try floats(b * maxKV); vb = try floats(b * maxKV); attn = try floats(b * maxQ)
        g = try floats(b * maxFF); u = try floats(b * maxFF)
        latent = try LatentBuffers(layers: model.layers, tokens: b, allocator: allocator)
        maxSplits = 64
        scratch = try floats((b * maxHeads + 2 * gpu.device.multiprocessors + maxHeads) * (maxDim + 2))
        scores = try floats(model.numerics.attentionLikeCPU ? min(b, 63) * maxHeads * capacity : 1)
        let gemm = model.numerics.gemmMinTokens > 0 && b >= model.numerics.gemmMinTokens
        blas = gemm ? model.gpu.blas : nil
        if blas != nil {
            let mats = model.layers.flatMap { $0.attentionLins.map(\.matrix) + $0.mlpMatrices }
            gemmW = try allocator.allocate(2 * (mats.map { $0.rows * $0.cols }.max() ?? 1))
            gemmX = try allocator.allocate(2 * b * max(d, maxQ, maxFF, mats.map(\.cols).max() ?? 0))
        } else {
            gemmW = nil; gemmX = nil
        }
        let marlins = model.layers.flatMap { L in L.attentionLins + L.ffnLins }.compactMap(\.marlin) + [model.headLin?.marlin].compactMap { $0 }
        let marlinTokens = min(b, model.numerics.marlinMaxTokens, GPUOps.marlinMaxTokens)
        if !marlins.isEmpty && marlinTokens > 1 {
            marlinX = try allocator.allocate(2 * marlinTokens * (marlins.map(\.cols).max() ?? 1))
            let device = model.gpu
            marlinPartial = try floats(marlins.map { GPUOps.marlinScratch(gpu: device, rows: $0.rows, cols: $0.cols, tokens: marlinTokens) }.max() ?? 1)
        } else {
            marlinX = nil; marlinPartial = nil
        }
        // Logits only where the LM head is (a split model's earlier pieces have none).
        logits = try floats(model.isLast ? b * m.vocab : 1)
        tokenInputs = try gpu.allocator.allocate(2 * b * 4)
        ids = DevicePointer(pointer: tokenInputs.pointer); positions = DevicePointer(pointer: tokenInputs.pointer + CUdeviceptr(b * 4))
        staging = try gpu.driver.allocatePinned(2 * b * 4)
        logitsPinned = try gpu.driver.allocatePinned(model.isLast ? m.vocab * 4 : 256)
        let expertWidths = model.streamer?.layers.values.map(\.gate.rows) ?? []
        // (Every matrix's input width: MLA's kv_b and q LoRA's attn_q_b read rows of its ranks.)
        let widths = model.layers.flatMap { $0.attentionLins.map(\.matrix.cols) + $0.mlpMatrices.map(\.cols) }
        for n in Set([d, maxQ, maxFF] + expertWidths + widths) where n > 0 {
            acts[n] = try QuantizedActivationsGPU(gpu: gpu, n: n, tokens: b)
        }
        if model.cpuBlocks > 0 {
            hostIn = try gpu.driver.allocatePinned(b * d * 4)
            hostOut = try gpu.driver.allocatePinned(b * d * 4)
        } else {
            hostIn = nil; hostOut = nil
        }
        let sharedOnGPU = model.layers.contains { $0.sharedExpert != nil }
        sharedOut = sharedOnGPU ? try floats(b * d) : nil
        sharedGateOut = sharedOnGPU ? try floats(b) : nil
        let routerRows = model.routers.values.map(\.rows).max() ?? 0
        routerLogits = routerRows > 0 ? (try floats(routerRows), try gpu.driver.allocatePinned(routerRows * 4)) : nil
        if model.streamer != nil, b >= model.numerics.expertsOnGPUMinTokens {
            let used = model.layers.compactMap { L -> Int? in
                if case let .cpu(block, _) = L.ffn, let moe = block as? MoEFeedForward { return moe.used }
                return nil
            }.max() ?? 1
            let pairs = b * used
            let experts = model.streamer?.layers.values.map(\.gate.count).max() ?? 1
            // Three lists of pairs, experts + 1 offsets, then the tiles of two ints: up to
            // pairs / 8 + experts of 8 rows and pairs / 32 + experts of 32.
            let listBytes = (3 * pairs + experts + 1 + 2 * (pairs / 8 + experts) + 2 * (pairs / 32 + experts)) * 4
            let one = CUDADecoder.expertsInOneLaunch
            routed = RoutedBuffers(
                slots: try floats(pairs * d), gathered: try floats((one ? pairs : b) * d), results: try floats((one ? pairs : b) * d),
                all: one ? (gate: try floats(pairs * expertFF), up: try floats(pairs * expertFF),
                            actD: try QuantizedActivationsGPU(gpu: gpu, n: d, tokens: pairs),
                            actFF: try QuantizedActivationsGPU(gpu: gpu, n: max(expertFF, 32), tokens: pairs)) : nil,
                lists: try allocator.allocate(listBytes), staging: try gpu.driver.allocatePinned(listBytes), pairs: pairs, experts: experts)
        } else {
            routed = nil
        }
        // A step that waits for the CPU in every layer cannot be one captured graph.
        let env = ProcessInfo.processInfo.environment
        // (No graphs while kernels are timed one by one: SWIFTKT_PROFILE_KERNELS.)
        let graphs = env["SWIFTKT_CUDA_GRAPHS"] != "0" && !KernelProfile.enabled
        useGraphs = graphs && model.cpuBlocks == 0
        // (Not when one-token steps stream their experts to the GPU: that waits for the GPU
        // inside the step, which a capture cannot.)
        let hybridGraphs = graphs && model.cpuBlocks > 0
            && (model.streamer == nil || model.numerics.expertsOnGPUMinTokens > 1)
        useSegmentGraphs = hybridGraphs && (env["SWIFTKT_CUDA_HYBRID_GRAPHS"] ?? "1") == "1"
        useHostNodes = hybridGraphs && env["SWIFTKT_CUDA_HYBRID_GRAPHS"] == "host"
        chainable = useGraphs && model.isLast && model.embedding != nil && env["SWIFTKT_CUDA_CHAIN"] != "0"
    }

    deinit {
        // Chained steps never taken may still run (their copies land in chainSlots).
        if !chainQueued.isEmpty { try? gpu.synchronize() }
        for g in decodeGraphs.values { gpu.driver.destroy(graph: g) }
        for g in segmentGraphs.values.joined() { gpu.driver.destroy(graph: g) }
        try? gpu.driver.freePinned(staging)
        try? gpu.driver.freePinned(logitsPinned)
        if let chainSlots { try? gpu.driver.freePinned(chainSlots) }
        for e in chainEvents { gpu.driver.destroy(event: e) }
        if let hostIn { try? gpu.driver.freePinned(hostIn) }
        if let hostOut { try? gpu.driver.freePinned(hostOut) }
        if let routerLogits { try? gpu.driver.freePinned(routerLogits.host) }
        if let routed { try? gpu.driver.freePinned(routed.staging) }
    }

    /// KV cache bytes.
    public var cacheBytes: Int { keys.reduce(0) { $0 + $1.bytes } + values.reduce(0) { $0 + $1.bytes } }

    /// Runs `tokens` at positions start..<start+count, appending to the cache; logits for the
    /// positions `mode` asks for ([n, vocab], n = 0, 1 or count), as DecoderModel.forward.
    public func forward(tokens: [Int32], startPosition: Int, mode: LogitsMode) throws -> [Float] {
        try run(tokens: tokens, startPosition: startPosition, mode: mode, sampling: nil).logits
    }

    /// Runs `tokens` like `forward(mode: .last)`, then picks the next token from the last
    /// position's logits on the GPU (GPUSampler): only the id comes back.
    public func forwardSampling(tokens: [Int32], startPosition: Int, sampling: GPUSampling) throws -> Int32 {
        guard !tokens.isEmpty else { throw CUDAError.invalidArgument("sampling needs at least one token to run") }
        return try run(tokens: tokens, startPosition: startPosition, mode: .last, sampling: sampling).token!
    }

    private func run(tokens: [Int32], startPosition: Int, mode: LogitsMode, sampling: GPUSampling?) throws -> (logits: [Float], token: Int32?) {
        let n = tokens.count
        guard n > 0 else { return ([], nil) }
        try validate(tokens: tokens, startPosition: startPosition)
        try gpu.makeCurrent()
        // Chained picks not taken are abandoned (the stream still orders this run after them).
        chainQueued.removeAll()
        pickOnDevice = false
        var result: [Float] = []
        var token: Int32?
        for c in CUDADecoder.chunks(count: n, maxBatch: maxBatch, mode: mode) {
            let out = try chunk(Array(tokens[c.start..<c.end]), startPosition: startPosition + c.start, first: c.first, rows: c.rows,
                                sampling: c.end == n ? sampling : nil)
            // (One chunk's logits are taken whole, not copied: 0.5 MB a decode step at 128 k words.)
            if result.isEmpty { result = out.logits } else { result += out.logits }
            token = out.token ?? token
        }
        pickOnDevice = sampling != nil && token != nil
        return (result, token)
    }

    // MARK: Chained decode steps

    /// Whether `enqueueChained` can run now: the last run picked its next token on the GPU, and
    /// a decode step is one captured graph (not with CPU blocks, graphs off or kernels timed one
    /// by one) on the piece that ends the model. `SWIFTKT_CUDA_CHAIN=0` turns chaining off (each
    /// step then waits for the host).
    public var canChain: Bool { pickOnDevice && chainable }
    /// (Read once: ProcessInfo's environment is rebuilt on every read, costly per token.)
    private let chainable: Bool

    /// Queues a one-token decode step at `position` whose token is the one the last sampling on
    /// this decoder picked — still on the device, not yet read by the host — and then the pick
    /// of the token after it (`sampling`). The host reads the picks in order with `takeChained`,
    /// so it can queue step n + 1 before it waits for step n's token and the GPU never waits for
    /// the host between tokens. A step queued and never taken is abandoned (the next `forward`
    /// or `forwardSampling` drops it); what it wrote past the session's tokens is overwritten
    /// later, as after a rewind.
    public func enqueueChained(position: Int, sampling: GPUSampling) throws {
        guard canChain, let sampler else {
            throw CUDAError.invalidArgument("a chained decode step needs a token picked on the GPU before it and one captured graph per step")
        }
        guard chainQueued.count < 2 else { throw CUDAError.invalidArgument("at most two chained decode steps wait to be taken") }
        guard position >= 0, position < capacity else {
            throw ModelError.contextOverflow(needed: position + 1, capacity: capacity)
        }
        try gpu.makeCurrent()
        if chainSlots == nil {
            chainSlots = try gpu.driver.allocatePinned(16)
            chainEvents = [try gpu.driver.makeEvent(), try gpu.driver.makeEvent()]
        }
        // (A pick past the embedding table — a head wider than the table — runs as token 0 and
        // makes takeChained throw, as `validate` does for a step one at a time.)
        try gpu.launch("chain_token", grid: (1, 1, 1), block: 32,
                       [.pointer(sampler.resultPointer), .int(Int32(model.model.tokenEmbedding.rows)), .pointer(ids.pointer),
                        .pointer(positions.pointer), .int(Int32(position))])
        try launchDecodeGraph(startPosition: position, rows: 1)
        let slot = chainNext
        chainNext ^= 1
        try sampler.enqueue(logits: logits.pointer, sampling, copyTo: chainSlots! + 8 * slot)
        try gpu.driver.record(chainEvents[slot], on: gpu.stream)
        chainQueued.append(slot)
    }

    /// Waits for the oldest chained step's pick and returns it.
    public func takeChained() throws -> Int32 {
        guard !chainQueued.isEmpty, let sampler, let slots = chainSlots else {
            throw CUDAError.invalidArgument("no chained decode step is waiting to be taken")
        }
        let slot = chainQueued.removeFirst()
        try gpu.driver.synchronize(event: chainEvents[slot])
        let token = sampler.token(at: slots + 8 * slot)
        try validate(tokens: [token], startPosition: 0)  // (the embedding table's rows, as for a step one at a time)
        return token
    }

    /// A run of `n` tokens as chunks of at most `maxBatch`, each with the rows of logits `mode`
    /// asks of it (first row within the chunk, count).
    static func chunks(count n: Int, maxBatch: Int, mode: LogitsMode) -> [(start: Int, end: Int, first: Int, rows: Int)] {
        var out: [(start: Int, end: Int, first: Int, rows: Int)] = []
        var start = 0
        while start < n {
            let end = min(start + maxBatch, n)
            let wanted: (first: Int, rows: Int)
            switch mode {
            case .none: wanted = (0, 0)
            case .last: wanted = end == n ? (end - start - 1, 1) : (0, 0)
            case .all: wanted = (0, end - start)
            case let .from(i):
                let f = min(max(i, 0), n - 1)
                wanted = end <= f ? (0, 0) : (max(f - start, 0), end - max(f, start))
            }
            out.append((start, end, wanted.first, wanted.rows))
            start = end
        }
        return out
    }

    /// Checks a run before any piece of it is queued: it fits the cache, its ids the vocabulary.
    func validate(tokens: [Int32], startPosition: Int) throws {
        guard startPosition + tokens.count <= capacity else {
            throw ModelError.contextOverflow(needed: startPosition + tokens.count, capacity: capacity)
        }
        let vocabRows = model.model.tokenEmbedding.rows
        for t in tokens where t < 0 || Int(t) >= vocabRows {
            throw ModelError.invalidHyperparameter(key: "token id", value: "\(t)", reason: "outside the vocabulary of \(vocabRows)")
        }
    }

    /// A later piece of a split model takes the hidden state of `tokens` rows from the piece
    /// before (whose stream has finished its chunk) into x; this piece's context is current.
    func receive(from previous: CUDADecoder, tokens n: Int) throws {
        let bytes = n * model.model.embedding * 4
        if previous.gpu === gpu {
            try gpu.driver.copyAsync(device: x.pointer, from: previous.x.pointer, bytes: bytes, stream: gpu.stream)
        } else {
            try gpu.driver.copyPeerAsync(device: x.pointer, context: gpu.context, from: previous.x.pointer, context: previous.gpu.context,
                                         bytes: bytes, stream: gpu.stream)
        }
    }

    /// The sampler's device scratch, made on first use.
    private var sampler: GPUSampler?
    /// `SWIFTKT_CUDA_TIMELINE`'s state (CUDAModel+Timeline.swift).
    var timeline = TimelineState()
    /// Chained steps (`enqueueChained`): whether the sampler's result holds the pick of the
    /// token after the newest position run; two page-locked [id, kept] slots and their events,
    /// used in turn; the slots queued and not yet taken, oldest first.
    private var pickOnDevice = false
    private var chainSlots: UnsafeMutableRawPointer?
    private var chainEvents: [CUevent] = []
    private var chainNext = 0
    private var chainQueued: [Int] = []

    /// One chunk: its kernels (a decode step as a captured graph), then its logits or sampled
    /// token. A piece of a split model that does not end it asks no rows and finishes with x.
    func chunk(_ tokens: [Int32], startPosition: Int, first: Int, rows: Int,
               sampling: GPUSampling?) throws -> (logits: [Float], token: Int32?) {
        let n = tokens.count
        defer { if let profile = gpu.kernelProfile { reportKernels(profile, tokens: n) } }
        // The staging words mirror tokenInputs: ids from 0, positions from maxBatch; one upload.
        let st = staging.assumingMemoryBound(to: Int32.self)
        for (i, t) in tokens.enumerated() { st[i] = t; st[maxBatch + i] = Int32(startPosition + i) }
        try gpu.driver.copyAsync(toDevice: tokenInputs.pointer, from: staging, bytes: (maxBatch + n) * 4, stream: gpu.stream)
        let vocab = model.model.vocab
        if n == 1, first == 0, rows == (model.isLast ? 1 : 0), useGraphs || useSegmentGraphs || useHostNodes {
            try launchDecodeGraph(startPosition: startPosition, rows: rows)
        } else {
            try enqueue(tokens: n, maxKeys: startPosition + n, first: first, rows: rows)
        }
        guard rows > 0 else { try gpu.synchronize(); return ([], nil) }
        if let sampling, rows == 1 {
            if sampler == nil { sampler = try GPUSampler(gpu: gpu, vocabulary: vocab) }
            return ([], try sampler!.sample(logits: logits.pointer, sampling))
        }
        if rows == 1 {
            try gpu.driver.copyAsync(toHost: logitsPinned, from: logits.pointer, bytes: vocab * 4, stream: gpu.stream)
            try gpu.synchronize()
            return (Array(UnsafeBufferPointer(start: logitsPinned.assumingMemoryBound(to: Float.self), count: vocab)), nil)
        }
        return (try gpu.download(logits.pointer, count: rows * vocab), nil)
    }

    /// A one-token step (token and position already on the device) as its captured graph,
    /// captured on first use per context bucket.
    private func launchDecodeGraph(startPosition: Int, rows: Int) throws {
        // Below the one-kernel attention's bound (unbounded with the CPU's numerics) the step is
        // captured for that bound, from there on for the whole cache.
        let limit = model.numerics.attentionLikeCPU || !gpu.shortAttentionF32 ? GPUOps.shortAttentionMaxKeys : gpu.shortAttentionF32MaxKeys
        let bound = startPosition < limit ? min(limit, capacity) : capacity
        if useSegmentGraphs {
            try decodeInSegments(bound: bound, rows: rows)
            return
        }
        // One graph for the step (with the CPU blocks as host nodes under useHostNodes).
        if decodeGraphs[bound] == nil {
            capturingHostNodes = useHostNodes
            defer { capturingHostNodes = false; gpu.launchLog = nil }
            if gpu.timelineStep != nil { gpu.launchLog = [] }
            try gpu.driver.beginCapture(gpu.stream)
            do {
                try enqueue(tokens: 1, maxKeys: bound, first: 0, rows: rows)
            } catch {
                if let g = try? gpu.driver.endCapture(gpu.stream) { gpu.driver.destroy(graph: g) }
                throw error
            }
            decodeGraphs[bound] = try gpu.driver.endCapture(gpu.stream)
            if let log = gpu.launchLog { timeline.names[bound] = log }
        }
        timeline.steps += 1
        let timed = gpu.timelineStep == timeline.steps
        if timed { try timelineBegin() }
        try gpu.driver.launch(graph: decodeGraphs[bound]!, stream: gpu.stream)
        if timed { try timelineEnd(names: timeline.names[bound]) }
        if useHostNodes {
            // A host node's error surfaces once the step is done.
            try gpu.synchronize()
            if let error = hostNodeError.take() { throw error }
        }
    }

    /// SWIFTKT_PROFILE_KERNELS=1: every 32 decode steps, their kernels' times to standard error
    /// (prompt chunks' are dropped).
    private func reportKernels(_ profile: KernelProfile, tokens n: Int) {
        try? profile.collect(gpu.driver)
        guard n == 1 else { _ = profile.take(tokens: 1); return }
        profiledSteps += 1
        if profiledSteps % 32 == 0 { try? FileHandle.standardError.write(contentsOf: profile.take(tokens: 32).data(using: .utf8)!) }
    }
    private var profiledSteps = 0

    /// Queues one chunk's kernels on the stream (ids and positions already on the device).
    private func enqueue(tokens n: Int, maxKeys: Int, first: Int, rows: Int) throws {
        let m = model.model, d = m.embedding
        for a in acts.values { GPUOps.invalidate(a) }
        prequantized = nil
        // A later piece of a split model finds its input in x (CUDASplitDecoder copied it there).
        if let table = model.embedding {
            try GPUOps.embed(gpu, table: table, ids: ids.pointer, count: n, scale: m.embeddingScale, out: x.pointer)
        }
        // Each residual add is fused with the norm that reads its result (add_rms_norm).
        let layer0 = model.layers[0]
        try norm(layer0.attentionNorm, x.pointer, h.pointer, rows: n, feeding: layer0.q.matrix)
        for (index, L) in model.layers.enumerated() {
            if let mla = L.mla {
                try latentAttention(L, mla, layer: index, tokens: n, maxKeys: maxKeys)
            } else {
                try selfAttention(L, layer: index, tokens: n, maxKeys: maxKeys)
            }
            if let pn = L.postAttentionNorm { try norm(pn, o.pointer, o.pointer, rows: n) }
            let ffnInput = L.ffnLins.first
            try addNorm(L.ffnNorm, y: o.pointer, feeding: ffnInput?.matrix, tokens: n)
            switch L.ffn {
            case let .gpu(gate, up, down, gelu):
                try gatedMLP(gate: gate, up: up, down: down, gelu: gelu, out: o.pointer, tokens: n)
            case let .cpu(block, shared):
                if let moe = block as? MoEFeedForward, model.streamer?.layers[index] != nil, routed != nil,
                   n >= model.numerics.expertsOnGPUMinTokens {
                    try expertsOnGPU(moe, shared: shared, layer: index, tokens: n, firstOfChunk: index == firstMoELayer)
                } else {
                    try cpuBlock(block, shared: shared, layer: index, tokens: n)
                }
            }
            if let pn = L.postFFNNorm { try norm(pn, o.pointer, o.pointer, rows: n) }
            if index + 1 < model.layers.count {
                let next = model.layers[index + 1]
                try addNorm(next.attentionNorm, y: o.pointer, feeding: next.q.matrix, tokens: n)
            } else {
                try GPUOps.add(gpu, x: x.pointer, y: o.pointer, count: n * d)
            }
        }
        guard rows > 0 else { return }
        guard let outputNorm = model.outputNorm, let headLin = model.headLin else {
            throw CUDAModelError.unsupported("logits asked of layers \(model.layerRange), which do not end the model")
        }
        let xr = x.pointer + UInt64(first * d * 4)
        try norm(outputNorm, xr, h.pointer, rows: rows, feeding: model.head)
        try linears([(headLin, logits.pointer)], input: h.pointer, tokens: rows)
        if let cap = m.finalLogitSoftcap { try GPUOps.softcap(gpu, x: logits.pointer, cap: cap, count: rows * m.vocab) }
    }

    /// A layer's attention (SelfAttention): q, k, v from h, rope and the KV store (in the q/k/v
    /// GEMV, the short attention kernel or rope_store), attention, the output projection into o.
    private func selfAttention(_ L: CUDAModel.Layer, layer index: Int, tokens n: Int, maxKeys: Int) throws {
        // A decode step's q/k/v GEMV may rotate and store the keys itself (qkvRopeEnabled).
        let ropeInGEMV = n == 1 && GPUOps.qkvRopeEnabled && L.qNorm == nil && L.kNorm == nil
            && [L.q, L.k, L.v].allSatisfy({ $0.bias == nil })
            && L.q.matrix.rows == L.heads * L.headDim && L.k.matrix.rows == L.kvHeads * L.headDim
            && GPUOps.qkvRopeApplies(q: L.q.matrix, k: L.k.matrix, v: L.v.matrix, headDim: L.headDim, rotDim: L.rope.dimensions,
                                     neox: L.rope.neox)
        let qkvAct = ropeInGEMV ? acts[L.q.matrix.cols] : nil
        if let act = qkvAct {
            if prequantized != h.pointer { GPUOps.invalidate(act) }
            prequantized = nil
            try GPUOps.linearQKVRope(gpu, q: L.q.matrix, k: L.k.matrix, v: L.v.matrix, x: h.pointer, act: act, yq: qb.pointer,
                                     yk: kb.pointer, yv: vb.pointer, keyCache: keys[index].pointer, valueCache: values[index].pointer,
                                     positions: positions.pointer, headDim: L.headDim, rotDim: L.rope.dimensions, base: L.rope.base,
                                     scale: L.rope.scale, freqFactors: L.ropeFactors)
        } else if !skipped("qkv", n) {
            try linears([(L.q, qb.pointer), (L.k, kb.pointer), (L.v, vb.pointer)], input: h.pointer, tokens: n)
        }
        let ropeDone = qkvAct != nil
        if let qn = L.qNorm { try norm(qn, qb.pointer, qb.pointer, rows: n * L.heads) }
        if let kn = L.kNorm { try norm(kn, kb.pointer, kb.pointer, rows: n * L.kvHeads) }
        let visible = L.window > 0 ? min(L.window, maxKeys) : maxKeys
        // A decode step's short attention kernel rotates and stores the new key itself.
        let ropeInAttention = !ropeDone && model.numerics.attentionLikeCPU
            && GPUOps.shortAttentionTakesRope(gpu, tokens: n, maxKeys: visible, headDim: L.headDim, rotDim: L.rope.dimensions)
        if !ropeInAttention && !ropeDone && !skipped("rope", n) {
            try GPUOps.ropeStore(gpu, q: qb.pointer, k: kb.pointer, v: vb.pointer, keyCache: keys[index].pointer,
                                 valueCache: values[index].pointer, positions: positions.pointer, tokens: n, heads: L.heads,
                                 kvHeads: L.kvHeads, headDim: L.headDim, rotDim: L.rope.dimensions, base: L.rope.base,
                                 scale: L.rope.scale, freqFactors: L.ropeFactors, neox: L.rope.neox)
        }
        // The attention output quantized for the output projection in the attention's last kernel.
        let fused = try skipped("attn", n) || attend(L, layer: index, tokens: n, visible: visible, quantize: quantizeTarget(L.o.matrix, tokens: n),
                               rope: ropeInAttention ? GPUOps.RopeStore(k: kb.pointer, v: vb.pointer, rotDim: L.rope.dimensions,
                                                                        base: L.rope.base, scale: L.rope.scale,
                                                                        freqFactors: L.ropeFactors, neox: L.rope.neox) : nil)
        prequantized = fused ? attn.pointer : nil
        if !skipped("o", n) { try linears([(L.o, o.pointer)], input: attn.pointer, tokens: n) }
    }

    /// Attention of qb over layer `index`'s cache into attn, for `visible` keys at most: the CPU's
    /// numerics below 64 tokens (with `rope`, the short kernel rotates and stores the new key
    /// itself), tiles for prefill chunks of the tiled head dims, else split-K. Returns whether
    /// the last kernel also quantized attn for `quantize`'s matrix.
    func attend(_ L: CUDAModel.Layer, layer index: Int, tokens n: Int, visible: Int, quantize target: (QuantizedActivationsGPU, GGMLType)?,
                rope: GPUOps.RopeStore? = nil) throws -> Bool {
        if model.numerics.attentionLikeCPU && n < 64 {
            return try GPUOps.attentionCPUNumerics(gpu, q: qb.pointer, keys: keys[index].pointer, values: values[index].pointer,
                                                   positions: positions.pointer, out: attn.pointer, scores: scores.pointer, tokens: n,
                                                   heads: L.heads, kvHeads: L.kvHeads, headDim: L.headDim, scale: L.scale,
                                                   window: L.window, maxKeys: visible, quantize: target, rope: rope)
        }
        if n >= GPUOps.tiledAttentionMinTokens, GPUOps.tiledAttentionHeadDims.contains(L.headDim) {
            try GPUOps.attentionTiled(gpu, q: qb.pointer, keys: keys[index].pointer, values: values[index].pointer,
                                      positions: positions.pointer, out: attn.pointer, tokens: n, heads: L.heads, kvHeads: L.kvHeads,
                                      headDim: L.headDim, scale: L.scale, window: L.window)
            return false
        }
        let splits = GPUOps.attentionSplits(gpu: gpu, tokens: n, heads: L.heads, keys: visible, maxSplits: maxSplits)
        return try GPUOps.attention(gpu, q: qb.pointer, keys: keys[index].pointer, values: values[index].pointer,
                                    positions: positions.pointer, out: attn.pointer, scratch: scratch.pointer, tokens: n,
                                    heads: L.heads, kvHeads: L.kvHeads, headDim: L.headDim, scale: L.scale, window: L.window,
                                    maxKeys: visible, splits: splits, quantize: target)
    }

    /// A decode step with CPU blocks as captured segments (`useSegmentGraphs`): replayed when
    /// this key bound's segments exist — segment, wait, CPU block, … , last segment — else
    /// captured while running (`cpuBlock` closes a segment, runs it and opens the next).
    private func decodeInSegments(bound: Int, rows: Int) throws {
        if let graphs = segmentGraphs[bound], graphs.count == segmentBlocks.count + 1 {
            for (graph, (block, layer)) in zip(graphs, segmentBlocks) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try gpu.driver.launch(graph: graph, stream: gpu.stream)
                try runOnCPU(block, tokens: 1, since: t0, gpuLogits: routesOnGPU(layer: layer, tokens: 1),
                             sharedOnGPU: model.layers[layer].sharedExpert != nil)
            }
            try gpu.driver.launch(graph: graphs[graphs.count - 1], stream: gpu.stream)
            return
        }
        capturedSegments = []
        segmentBlocks = []
        defer { capturedSegments = nil }
        do {
            try gpu.driver.beginCapture(gpu.stream)
            try enqueue(tokens: 1, maxKeys: bound, first: 0, rows: rows)
            let last = try gpu.driver.endCapture(gpu.stream)
            capturedSegments!.append(last)
            try gpu.driver.launch(graph: last, stream: gpu.stream)
        } catch {
            if let g = try? gpu.driver.endCapture(gpu.stream) { gpu.driver.destroy(graph: g) }
            for g in capturedSegments ?? [] { gpu.driver.destroy(graph: g) }
            segmentBlocks = []
            throw error
        }
        for g in segmentGraphs[bound] ?? [] { gpu.driver.destroy(graph: g) }
        segmentGraphs[bound] = capturedSegments
    }

    /// A feed-forward block on the CPU: h (the normalized rows) down to page-locked memory, the
    /// block on the CPU's thread pool, its output up into o. While a decode step is captured the
    /// download ends a segment, which runs before the block, and the upload begins the next.
    /// `shared`: the block's shared expert on the GPU, queued after the download (so in the
    /// same segment), added to the CPU's routed experts after the upload.
    private func cpuBlock(_ block: any FeedForward, shared: CUDAModel.SharedExpert?, layer: Int, tokens n: Int) throws {
        guard model.cpuContext != nil, let hostIn, hostOut != nil else {
            throw CUDAModelError.unsupported("a feed-forward block on the CPU without a CPU context")
        }
        let bytes = n * model.model.embedding * 4
        let t0 = DispatchTime.now().uptimeNanoseconds
        let gpuLogits = routesOnGPU(layer: layer, tokens: n)
        if gpuLogits, let router = model.routers[layer], let routerLogits {
            // The router's logits on the GPU, down beside h.
            try GPUOps.routerExact(gpu, router, x: h.pointer, y: routerLogits.device.pointer)
            try gpu.driver.copyAsync(toHost: routerLogits.host, from: routerLogits.device.pointer, bytes: router.rows * 4, stream: gpu.stream)
        }
        try gpu.driver.copyAsync(toHost: hostIn, from: h.pointer, bytes: bytes, stream: gpu.stream)
        if let shared { try sharedExpert(shared, tokens: n) }
        if capturingHostNodes {
            // The block as a host node between the download and the upload.
            let work = HostWork { [unowned self] in
                do {
                    try self.runOnCPU(block, tokens: n, since: DispatchTime.now().uptimeNanoseconds, gpuLogits: gpuLogits,
                                      sharedOnGPU: shared != nil, inStream: true)
                } catch { self.hostNodeError.set(error) }
            }
            hostWork.append(work)
            try gpu.driver.launchHost(HostWork.trampoline, userData: Unmanaged.passUnretained(work).toOpaque(), stream: gpu.stream)
            try blockOutputUp(bytes: bytes, shared: shared, tokens: n)
            return
        }
        if capturedSegments != nil {
            let segment = try gpu.driver.endCapture(gpu.stream)
            capturedSegments!.append(segment)
            segmentBlocks.append((block, layer))
            try gpu.driver.launch(graph: segment, stream: gpu.stream)
            try runOnCPU(block, tokens: n, since: t0, gpuLogits: gpuLogits, sharedOnGPU: shared != nil)
            try gpu.driver.beginCapture(gpu.stream)
            try blockOutputUp(bytes: bytes, shared: shared, tokens: n)
            return
        }
        try runOnCPU(block, tokens: n, since: t0, gpuLogits: gpuLogits, sharedOnGPU: shared != nil)
        try blockOutputUp(bytes: bytes, shared: shared, tokens: n)
    }

    /// A MoE block's shared expert on the GPU, h into sharedOut (and its gate's logits into
    /// sharedGateOut): the dense MLP's kernels.
    private func sharedExpert(_ s: CUDAModel.SharedExpert, tokens n: Int) throws {
        guard let sharedOut, let sharedGateOut else { throw CUDAModelError.unsupported("a shared expert on the GPU without its buffers") }
        try gatedMLP(gate: s.gate, up: s.up, down: s.down, gelu: s.gelu, out: sharedOut.pointer, tokens: n)
        if let sg = s.sharedGate {
            try linears([(sg, sharedGateOut.pointer)], input: h.pointer, tokens: n)
        }
    }

    /// A gated MLP on h into `out`: gate and up, the activation (quantizing for down when it
    /// can), down.
    private func gatedMLP(gate: CUDAModel.Lin, up: CUDAModel.Lin, down: CUDAModel.Lin, gelu: Bool, out: CUdeviceptr,
                          tokens n: Int) throws {
        if !skipped("gateup", n) { try linears([(gate, g.pointer), (up, u.pointer)], input: h.pointer, tokens: n) }
        let activation: GPUOps.Activation = gelu ? (model.numerics.geluTable ? .geluTable : .gelu) : .silu
        if skipped("glu", n) {
            prequantized = g.pointer
        } else if let (act, type) = quantizeTarget(down.matrix, tokens: n) {
            prequantized = try GPUOps.gluQuantized(gpu, gate: g.pointer, up: u.pointer, tokens: n, n: gate.matrix.rows,
                                                   activation: activation, act: act, weightType: type) ? g.pointer : nil
        } else {
            try GPUOps.glu(gpu, gate: g.pointer, up: u.pointer, count: n * gate.matrix.rows, activation: activation)
        }
        if !skipped("down", n) { try linears([(down, out)], input: g.pointer, tokens: n) }
    }

    /// Whether `SWIFTKT_CUDA_DEBUG_SKIP` leaves this family of a one-token step's kernels out
    /// (GPU.debugSkip: a measurement, the step's results are then wrong).
    private func skipped(_ family: String, _ tokens: Int) -> Bool {
        tokens == 1 && gpu.debugSkip.contains(family)
    }

    /// The CPU block's result (hostOut) up into o, plus the GPU's shared expert when it has one.
    private func blockOutputUp(bytes: Int, shared: CUDAModel.SharedExpert?, tokens n: Int) throws {
        guard let hostOut else { throw CUDAModelError.unsupported("a feed-forward block on the CPU without its host buffer") }
        try gpu.driver.copyAsync(toDevice: o.pointer, from: hostOut, bytes: bytes, stream: gpu.stream)
        if let shared { try addShared(shared, tokens: n) }
    }

    /// o += the shared expert's output (times the sigmoid of its gate).
    private func addShared(_ s: CUDAModel.SharedExpert, tokens n: Int) throws {
        guard let sharedOut, let sharedGateOut else { throw CUDAModelError.unsupported("a shared expert on the GPU without its buffers") }
        let d = model.model.embedding
        if s.sharedGate != nil {
            try GPUOps.addGated(gpu, x: o.pointer, y: sharedOut.pointer, gate: sharedGateOut.pointer, n: d, rows: n)
        } else {
            try GPUOps.add(gpu, x: o.pointer, y: sharedOut.pointer, count: n * d)
        }
    }

    /// Whether this block's router runs on the GPU: a one-token step of a MoE layer whose
    /// router was uploaded (model.routers).
    private func routesOnGPU(layer: Int, tokens n: Int) -> Bool {
        n == 1 && routerLogits != nil && model.routers[layer] != nil
    }

    /// Waits for h in hostIn (its download queued), runs the block on the CPU into hostOut.
    /// `t0`: when the host began this block's GPU side (the profile's launch and wait split).
    /// With `gpuLogits` the router's logits are in routerLogits.host: only the routing function
    /// runs here.
    /// `inStream`: called from a host node, whose stream has already finished the download.
    /// `sharedOnGPU`: the GPU computes the block's shared expert; only the routed ones run here.
    private func runOnCPU(_ block: any FeedForward, tokens n: Int, since t0: UInt64, gpuLogits: Bool = false,
                          sharedOnGPU: Bool = false, inStream: Bool = false) throws {
        guard let context = model.cpuContext, let hostIn, let hostOut else {
            throw CUDAModelError.unsupported("a feed-forward block on the CPU without a CPU context")
        }
        if !inStream { try gpu.synchronize() }
        let t1 = DispatchTime.now().uptimeNanoseconds
        let xIn = UnsafePointer(hostIn.assumingMemoryBound(to: Float.self)), out = hostOut.assumingMemoryBound(to: Float.self)
        var routing: UInt64 = 0
        if let moe = block as? MoEFeedForward, sharedOnGPU || (n == 1 && (expertsProfile != nil || gpuLogits)) {
            // The block's own steps (the router timed apart, or its logits from the GPU; the
            // shared expert left to the GPU).
            let ids = UnsafeMutablePointer<Int32>.allocate(capacity: n * moe.used)
            let weights = UnsafeMutablePointer<Float>.allocate(capacity: n * moe.used)
            defer { ids.deallocate(); weights.deallocate() }
            if gpuLogits, let routerLogits {
                moe.select(logits: routerLogits.host.assumingMemoryBound(to: Float.self), tokens: 1, ids: ids, weights: weights)
            } else {
                moe.route(xIn, tokens: n, ids: ids, weights: weights, context: context)
            }
            routing = DispatchTime.now().uptimeNanoseconds - t1
            moe.runExperts(xIn, out, tokens: n, ids: ids, weights: weights, context: context, shared: !sharedOnGPU)
        } else {
            block(xIn, out, tokens: n, context: context)
        }
        if n == 1, let profile = expertsProfile {
            profile.addStep(enqueue: profile.lastBlockEnd.map { t0 - $0 } ?? 0, wait: t1 - t0, cpu: DispatchTime.now().uptimeNanoseconds - t1,
                            routing: routing, blocksPerToken: model.cpuBlocks)
        }
    }

    /// Counting sort of a chunk's (token, slot) pairs by expert: expert e's pairs are entries
    /// start[e] ..< start[e + 1], each with its token, its destination row j · tokens + t in the
    /// slot-major output and its weight; tokens in increasing order within an expert.
    static func groupPairs(ids: [Int32], weights: [Float], tokens n: Int, used k: Int, experts: Int,
                           token: UnsafeMutablePointer<Int32>, destination: UnsafeMutablePointer<Int32>,
                           weight: UnsafeMutablePointer<Float>) throws -> [Int] {
        for id in ids where id < 0 || Int(id) >= experts {
            throw CUDAModelError.unsupported("expert id \(id) outside 0..<\(experts)")
        }
        // The CPU experts operator's counting sort: row i of expert order holds slot order[i] = t · k + j.
        let (start, order, _) = ids.withUnsafeBufferPointer { i in
            weights.withUnsafeBufferPointer { w in
                ExpertsCPU.groupByExpert(ExpertRouting(tokens: n, used: k, ids: i.baseAddress!, weights: w.baseAddress!), experts: experts)
            }
        }
        for (at, slot) in order.enumerated() {
            let t = slot / k, j = slot % k
            token[at] = Int32(t); destination[at] = Int32(j * n + t); weight[at] = weights[slot]
        }
        return start
    }

    /// Where the host's time goes in `expertsOnGPU` (SWIFTKT_PROFILE_EXPERTS=1): per chunk, the
    /// wait for the GPU before routing (its queued work: the last layer's experts, this layer's
    /// attention), the routing on the CPU, and the grouping and launches; to standard error.
    /// Decode steps with their feed-forward blocks on the CPU too: per token, the host's
    /// launches between blocks, the wait for the GPU (its attention) and the CPU blocks, summed
    /// over 32 tokens.
    final class ExpertsProfile {
        var wait: UInt64 = 0, route: UInt64 = 0, enqueue: UInt64 = 0, layers = 0
        var stepEnqueue: UInt64 = 0, stepWait: UInt64 = 0, stepCPU: UInt64 = 0, stepRouting: UInt64 = 0, stepBlocks = 0
        var lastBlockEnd: UInt64?
        func add(wait w: UInt64, route r: UInt64, enqueue e: UInt64) { wait += w; route += r; enqueue += e; layers += 1 }
        func addStep(enqueue e: UInt64, wait w: UInt64, cpu c: UInt64, routing r: UInt64, blocksPerToken: Int) {
            stepEnqueue += e; stepWait += w; stepCPU += c; stepRouting += r; stepBlocks += 1
            lastBlockEnd = DispatchTime.now().uptimeNanoseconds
            if stepBlocks % blocksPerToken == 0 { lastBlockEnd = nil }
            let tokens = 32
            guard stepBlocks == tokens * blocksPerToken else { return }
            let per = { (v: UInt64) in String(format: "%.3f", Double(v) / 1e6 / Double(tokens)) }
            let taken = ExpertsPhaseProfile.take()
            let phases = taken.phases.map(per).joined(separator: " / ")
            // The routed experts' weights per token and the rate the gate + up and down passes read them at
            // (against the host's DRAM bandwidth: the decode's ceiling, issue 9).
            let rate = { (bytes: Int, ns: UInt64) in ns == 0 ? "–" : String(format: "%.1f", Double(bytes) / Double(ns)) }
            let perToken = String(format: "%.1f", Double(taken.gateUpBytes + taken.downBytes) / 1e6 / Double(tokens))
            let reads = taken.phases.count == 5
                ? "; routed expert weights \(perToken) MB per token, read at \(rate(taken.gateUpBytes, taken.phases[1])) GB/s (gate + up) "
                  + "and \(rate(taken.downBytes, taken.phases[3])) GB/s (down)"
                : ""
            try? FileHandle.standardError.write(contentsOf: ("decode with \(blocksPerToken) CPU blocks per token, per token over \(tokens): launches between "
                                            + "blocks \(per(stepEnqueue)) ms, waiting for the GPU \(per(stepWait)) ms, CPU blocks "
                                            + "\(per(stepCPU)) ms (router \(per(stepRouting)); experts' quantize / gate + up / activation / "
                                            + "down / sum \(phases)\(reads))\n").data(using: .utf8)!)
            stepEnqueue = 0; stepWait = 0; stepCPU = 0; stepRouting = 0; stepBlocks = 0
        }
        func report(tokens: Int) {
            let ms = { (v: UInt64) in String(format: "%.1f", Double(v) / 1e6) }
            try? FileHandle.standardError.write(contentsOf: ("experts on the GPU, \(tokens)-token chunk, \(layers) layers: waiting for the GPU \(ms(wait)) ms, "
                                            + "routing \(ms(route)) ms, grouping + launches \(ms(enqueue)) ms\n").data(using: .utf8)!)
            wait = 0; route = 0; enqueue = 0; layers = 0
        }
    }
    private let expertsProfile = ProcessInfo.processInfo.environment["SWIFTKT_PROFILE_EXPERTS"] == "1" ? ExpertsProfile() : nil

    /// The first layer with a streamed MoE block.
    private var firstMoELayer: Int { model.streamer?.order.first ?? -1 }

    /// A MoE block with its routed experts on the GPU: h goes to the host for the router and the
    /// routing function (the CPU path's own code, so the same experts are chosen), the
    /// (token, slot) pairs come back grouped by expert, and per expert its tokens are gathered,
    /// run through gate, up, the activation and down (the GEMV kernels on 8-bit activations, as
    /// the CPU's dot products), weighted and written to their slot rows; the slots are summed in
    /// slot order. A shared expert runs on the GPU after them (`shared`), or, placed on the
    /// CPU, on the CPU meanwhile; it is added at the end.
    private func expertsOnGPU(_ moe: MoEFeedForward, shared: CUDAModel.SharedExpert?, layer index: Int, tokens n: Int,
                              firstOfChunk: Bool) throws {
        guard let streamer = model.streamer, let routed, let context = model.cpuContext, let hostIn, let hostOut else {
            throw CUDAModelError.unsupported("routed experts on the GPU without their buffers")
        }
        if firstOfChunk { try streamer.begin() }
        let d = model.model.embedding, k = moe.used, ff = moe.experts.feedForward, pairs = n * k
        guard pairs <= routed.pairs, let actD = acts[d], let actFF = acts[ff] else {
            throw CUDAModelError.unsupported("routed experts of \(n) tokens × \(k) on the GPU (buffers for \(routed.pairs) pairs)")
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        try gpu.driver.copyAsync(toHost: hostIn, from: h.pointer, bytes: n * d * 4, stream: gpu.stream)
        try gpu.synchronize()
        let t1 = DispatchTime.now().uptimeNanoseconds
        let x = UnsafePointer(hostIn.assumingMemoryBound(to: Float.self))
        var ids = [Int32](repeating: 0, count: pairs), weights = [Float](repeating: 0, count: pairs)
        ids.withUnsafeMutableBufferPointer { i in
            weights.withUnsafeMutableBufferPointer { w in moe.route(x, tokens: n, ids: i.baseAddress!, weights: w.baseAddress!, context: context) }
        }
        let t2 = DispatchTime.now().uptimeNanoseconds
        defer {
            if let profile = expertsProfile {
                let t3 = DispatchTime.now().uptimeNanoseconds
                profile.add(wait: t1 - t0, route: t2 - t1, enqueue: t3 - t2)
                if index == model.streamer?.order.last { profile.report(tokens: n) }
            }
        }
        // The pairs sorted by expert: token, destination row (slot j, token t) and weight.
        let experts = moe.experts.count
        let token = routed.staging.assumingMemoryBound(to: Int32.self), dest = token + pairs
        let weight = UnsafeMutableRawPointer(dest + pairs).assumingMemoryBound(to: Float.self)
        let start = try CUDADecoder.groupPairs(ids: ids, weights: weights, tokens: n, used: k, experts: experts,
                                               token: token, destination: dest, weight: weight)
        guard experts <= routed.experts else {
            throw CUDAModelError.unsupported("\(experts) experts on the GPU (buffers for \(routed.experts))")
        }
        // Each expert's first pair after the three lists, then the tiles of the one-launch
        // kernels' grid rows: gate + up's, then down's when their tile heights differ (32 rows on
        // tensor cores, 8 for the GEMV).
        let firsts = UnsafeMutableRawPointer(weight + pairs).assumingMemoryBound(to: Int32.self)
        for (e, v) in start.enumerated() { firsts[e] = Int32(v) }
        var tileLists: (gate: (at: Int, count: Int, rows: Int), down: (at: Int, count: Int, rows: Int))?
        var listInts = 3 * pairs + experts + 1
        if routed.all != nil, let L = streamer.layers[index] {
            let heights = (GPUOps.expertTileRows(L.gate.type, rows: L.gate.rows, gpu: gpu),
                           GPUOps.expertTileRows(L.down.type, rows: L.down.rows, gpu: gpu))
            let gateTiles = GPUOps.expertTiles(start: start, rows: heights.0)
            let downTiles = heights.1 == heights.0 ? [] : GPUOps.expertTiles(start: start, rows: heights.1)
            for (i, v) in (gateTiles + downTiles).enumerated() { firsts[experts + 1 + i] = v }
            let gate = (at: experts + 1, count: gateTiles.count / 2, rows: heights.0)
            tileLists = (gate, heights.1 == heights.0 ? gate : (at: experts + 1 + gateTiles.count, count: downTiles.count / 2, rows: heights.1))
            listInts += gateTiles.count + downTiles.count
        }
        let lists = routed.lists.pointer
        try gpu.driver.copyAsync(toDevice: lists, from: routed.staging, bytes: listInts * 4, stream: gpu.stream)
        let firstsOnDevice = lists + UInt64(3 * pairs * 4)
        let tiles = tileLists.map { t in
            (gate: GPUOps.ExpertTiles(pointer: firstsOnDevice + UInt64(t.gate.at * 4), count: t.gate.count, rows: t.gate.rows),
             down: GPUOps.ExpertTiles(pointer: firstsOnDevice + UInt64(t.down.at * 4), count: t.down.count, rows: t.down.rows))
        }
        do {
            try routedExperts(streamer, layer: index, d: d, ff: ff, pairs: pairs, start: start, tiles: tiles,
                              actD: actD, actFF: actFF)
        } catch {
            streamer.abandon(layer: index)
            throw error
        }
        GPUOps.invalidate(actD); GPUOps.invalidate(actFF)
        try GPUOps.sumSlots(gpu, slots: routed.slots.pointer, used: k, count: n * d, out: o.pointer)
        if let shared {
            prequantized = nil  // (h's 8-bit rows may have been overwritten by the routed experts')
            try sharedExpert(shared, tokens: n)
            try addShared(shared, tokens: n)
        } else if moe.shared != nil {
            // The shared expert on the CPU while the GPU runs the routed ones.
            let out = hostOut.assumingMemoryBound(to: Float.self)
            out.initialize(repeating: 0, count: n * d)
            moe.addShared(x, out, tokens: n, context: context)
            try gpu.driver.copyAsync(toDevice: routed.results.pointer, from: hostOut, bytes: n * d * 4, stream: gpu.stream)
            try GPUOps.add(gpu, x: o.pointer, y: routed.results.pointer, count: n * d)
        }
    }

    /// Whether `routedExperts` runs all experts in one launch per matrix family (default;
    /// `SWIFTKT_EXPERTS_ONE_LAUNCH=0`: one launch per expert). Bit-identical in the ops check; on
    /// the Qwen3-30B-A3B shape (H100, 1afde63) a 512-token chunk's host launch time fell from
    /// 70 to 6 ms and the GPU's share rose from 405 to ~447 ms: pp512 901.6 against 886.1 t/s.
    static let expertsInOneLaunch = ProcessInfo.processInfo.environment["SWIFTKT_EXPERTS_ONE_LAUNCH"] != "0"

    /// The launches of `expertsOnGPU`: with `expertsInOneLaunch` every pair's row gathered in
    /// expert order, gate + up of all experts in one launch, GLU + quantization, down in one
    /// launch, one weighted scatter; otherwise per expert its rows gathered, gate + up, GLU +
    /// quantization, down, each row weighted into its slot row (five launches per expert).
    private func routedExperts(_ streamer: ExpertStreamer, layer index: Int, d: Int, ff: Int, pairs: Int, start: [Int],
                               tiles: (gate: GPUOps.ExpertTiles, down: GPUOps.ExpertTiles)?,
                               actD: QuantizedActivationsGPU, actFF: QuantizedActivationsGPU) throws {
        guard let routed else { return }
        let lists = routed.lists.pointer
        let mats = try streamer.matrices(layer: index)
        let experts = start.count - 1
        if experts > 0, let all = routed.all, all.actFF.n == ff, let tiles,
           [mats.gate[0], mats.down[0]].allSatisfy({ GPUOps.expertsLaunchTypes.contains($0.type) }) {
            let gateStride = experts > 1 ? Int(mats.gate[1].pointer - mats.gate[0].pointer) : 0
            let downStride = experts > 1 ? Int(mats.down[1].pointer - mats.down[0].pointer) : 0
            let firsts = lists + UInt64(3 * pairs * 4)
            GPUOps.invalidate(all.actD); GPUOps.invalidate(all.actFF)
            try GPUOps.gatherRows(gpu, x: h.pointer, indices: lists, count: pairs, d: d, out: routed.gathered.pointer)
            try GPUOps.linearExperts(gpu, w0: mats.gate[0], w1: mats.up[0], stride: gateStride, x: routed.gathered.pointer,
                                     act: all.actD, y0: all.gate.pointer, y1: all.up.pointer, pairs: pairs, start: firsts,
                                     tiles: tiles.gate)
            _ = try GPUOps.gluQuantized(gpu, gate: all.gate.pointer, up: all.up.pointer, tokens: pairs, n: ff, activation: .silu,
                                        act: all.actFF, weightType: mats.down[0].type)
            try GPUOps.linearExperts(gpu, w0: mats.down[0], w1: nil, stride: downStride, x: all.gate.pointer,
                                     act: all.actFF, y0: routed.results.pointer, y1: nil, pairs: pairs, start: firsts,
                                     tiles: tiles.down)
            try GPUOps.scatterScaled(gpu, y: routed.results.pointer, destinations: lists + UInt64(pairs * 4),
                                     weights: lists + UInt64(2 * pairs * 4), count: pairs, d: d, slots: routed.slots.pointer)
            try streamer.done(layer: index)
            return
        }
        for e in 0..<(start.count - 1) where start[e + 1] > start[e] {
            let rows = start[e + 1] - start[e], off = UInt64(start[e] * 4)
            try GPUOps.gatherRows(gpu, x: h.pointer, indices: lists + off, count: rows, d: d, out: routed.gathered.pointer)
            GPUOps.invalidate(actD); GPUOps.invalidate(actFF)
            try GPUOps.linearMany(gpu, [mats.gate[e], mats.up[e]], x: routed.gathered.pointer, act: actD, ys: [g.pointer, u.pointer],
                                  tokens: rows)
            _ = try GPUOps.gluQuantized(gpu, gate: g.pointer, up: u.pointer, tokens: rows, n: ff, activation: .silu, act: actFF,
                                        weightType: mats.down[e].type)
            try GPUOps.linear(gpu, mats.down[e], x: g.pointer, act: actFF, y: routed.results.pointer, tokens: rows)
            try GPUOps.scatterScaled(gpu, y: routed.results.pointer, destinations: lists + UInt64(pairs * 4) + off,
                                     weights: lists + UInt64(2 * pairs * 4) + off, count: rows, d: d, slots: routed.slots.pointer)
        }
        try streamer.done(layer: index)
    }

    /// The activation buffer and weight type for a norm whose output `matrix` reads next, when
    /// that read is a GEMV (the GEMM and Marlin paths convert to f16 instead).
    func quantizeTarget(_ matrix: DeviceMatrix?, tokens: Int) -> (QuantizedActivationsGPU, GGMLType)? {
        guard let matrix, tokens < model.numerics.gemmMinTokens || blas == nil, let act = acts[matrix.cols] else { return nil }
        // The Marlin GEMM reads f16 activations: nothing to quantize for it.
        if tokens > 1, tokens <= model.numerics.marlinMaxTokens, model.marlinBytes > 0, GPUOps.marlinSupports(matrix) { return nil }
        return (act, matrix.type)
    }

    /// A norm that may also quantize its output for `matrix`, when that reads it next (`linears`
    /// then skips the quantization).
    func norm(_ n: CUDAModel.Norm, _ src: CUdeviceptr, _ dst: CUdeviceptr, rows: Int, feeding matrix: DeviceMatrix? = nil) throws {
        let target = quantizeTarget(matrix, tokens: rows)
        prequantized = try GPUOps.rmsNorm(gpu, x: src, weight: n.weight, out: dst, rows: rows, n: n.n, eps: n.eps, quantize: target) ? dst : nil
    }

    /// x += y, h = norm(x), quantized for `matrix` when it is next.
    private func addNorm(_ n: CUDAModel.Norm, y: CUdeviceptr, feeding matrix: DeviceMatrix?, tokens: Int) throws {
        let target = quantizeTarget(matrix, tokens: tokens)
        if skipped("norm", tokens) { prequantized = target != nil ? h.pointer : nil; return }
        // (x was last written by the add_norm before the attention or feed-forward block, or by
        // the embedding at the step's start: never by one of the two kernels just before.)
        prequantized = try GPUOps.addRMSNorm(gpu, x: x.pointer, y: y, weight: n.weight, out: h.pointer, rows: tokens, n: n.n, eps: n.eps,
                                             quantize: target, xReady: true) ? h.pointer : nil
    }

    /// Linear layers reading the same input: its activations are quantized (or converted to f16
    /// for the GEMM path) once, and GEMVs of one type run in one launch.
    func linears(_ list: [(CUDAModel.Lin, CUdeviceptr)], input: CUdeviceptr, tokens: Int) throws {
        let cols = list[0].0.matrix.cols
        guard let act = acts[cols] else { throw CUDAModelError.unsupported("no activation buffer for rows of \(cols)") }
        // Quantized by the norm that wrote `input` just before, or stale.
        if prequantized != input { GPUOps.invalidate(act) }
        prequantized = nil
        var converted = false, converted16 = false
        var gemv: [(CUDAModel.Lin, CUdeviceptr)] = []
        for (l, y) in list {
            let m = l.matrix
            if tokens > 1, tokens <= model.numerics.marlinMaxTokens, let mm = l.marlin, let marlinX, let marlinPartial,
               tokens * mm.cols * 2 <= marlinX.bytes {
                if !converted16 { try GPUOps.toF16(gpu, x: input, y: marlinX.pointer, count: tokens * mm.cols); converted16 = true }
                try GPUOps.linearMarlin(gpu, mm, x16: marlinX.pointer, y: y, tokens: tokens, partial: marlinPartial.pointer)
            } else if let blas, let gemmW, let gemmX, tokens >= model.numerics.gemmMinTokens, m.rows <= GPUOps.gemmMaxRows,
               2 * m.rows * m.cols <= gemmW.bytes {
                try GPUOps.linearGEMM(gpu, blas: blas, m, x: input, y: y, tokens: tokens, wScratch: gemmW.pointer,
                                      xScratch: gemmX.pointer, xReady: converted)
                converted = true
            } else {
                gemv.append((l, y))
            }
        }
        // Same-type matrices together (a Q4_K_M file mixes q4_K and q6_K among q, k, v).
        var remaining = gemv
        while let first = remaining.first {
            let group = remaining.filter { $0.0.matrix.type == first.0.matrix.type }
            remaining.removeAll { $0.0.matrix.type == first.0.matrix.type }
            try GPUOps.linearMany(gpu, group.map(\.0.matrix), x: input, act: act, ys: group.map(\.1), tokens: tokens)
        }
        for (l, y) in list {
            if let b = l.bias { try GPUOps.addBias(gpu, y: y, bias: b, n: l.matrix.rows, rows: tokens) }
        }
    }
}

/// A host node's work (cuLaunchHostFunc), called through a C trampoline with the object as its
/// user data; the decoder keeps it alive as long as the graph that calls it.
final class HostWork: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
    static let trampoline: Driver.HostFunction = { data in
        guard let data else { return }
        Unmanaged<HostWork>.fromOpaque(data).takeUnretainedValue().body()
    }
}

/// The first error a host node met (they cannot throw into the stream), taken after the step.
final class HostNodeError: @unchecked Sendable {
    private let lock = NSLock()
    private var error: Error?
    func set(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
    func take() -> Error? { lock.lock(); defer { error = nil; lock.unlock() }; return error }
}
