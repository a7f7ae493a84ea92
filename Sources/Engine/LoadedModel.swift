// LoadedModel: a GGUF file opened (mmapped), its architecture built, its tokenizer and chat
// template ready. Immutable and shareable; sessions hold the mutable state (KV cache).
import ChatTemplate
import Core
import CPUKernels
import Foundation
import GGUF
import CSupport
import CUDA
import Injection
import Models
import ModelsCUDA
import Operators
import Tokenizer

public struct LoadOptions: Sendable {
    /// Context size in tokens; nil = min(model's trained context, 4096).
    public var contextSize: Int?
    /// Worker threads, the caller included.
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// "auto" (fastest available) or "reference" (scalar kernels, for debugging): a shorthand
    /// for the shipped rule files cpu.yaml and cpu-reference.yaml.
    public var kernels: String = "auto"
    /// A rules file (YAML) placing every module; nil = the shipped one for the architecture.
    public var rules: String?
    /// Rules that match nothing are errors instead of warnings.
    public var strictRules = false
    /// Prompt tokens per forward call during prefill.
    public var batchSize: Int = 512

    public init() {}
}

public enum EngineError: Error, CustomStringConvertible {
    case unknownKernels(String, valid: [String])
    case promptTooLong(tokens: Int, context: Int)
    case emptyPrompt
    case noChatTemplate(architecture: String)
    case invalidOption(String)

    public var description: String {
        switch self {
        case let .unknownKernels(k, valid): return "unknown kernel set '\(k)'; valid: \(valid.joined(separator: ", "))"
        case let .promptTooLong(n, c):
            return "the prompt is \(n) tokens but the context holds \(c) (raise --ctx-size or shorten the prompt)"
        case .emptyPrompt: return "the prompt is empty"
        case let .noChatTemplate(a): return "the model has no chat template and there is no built-in one for '\(a)'"
        case let .invalidOption(s): return s
        }
    }
}

public final class LoadedModel: @unchecked Sendable {
    public let path: String
    public let file: GGUFFile
    public let model: DecoderModel
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate?
    /// Why the file's own chat template did not parse (nil when it did, or there is none).
    public let chatTemplateError: Error?
    public let options: LoadOptions
    public let context: ForwardContext
    public let contextSize: Int
    /// Which operator runs each module, on which device.
    public let placement: PlacementPlan
    /// The rules used and why ("rules/cpu.yaml (shipped default for llama on cpu)").
    public let rulesDescription: String
    /// The weights on the GPU when the placement puts the model there (rules/cuda.yaml).
    public let cuda: CUDAModel?
    /// Every piece of a model split over several GPUs by layer ranges (one piece when it runs
    /// whole on one GPU; none on the CPU). `cuda` is the first.
    public let cudaPieces: [CUDAModel]

    public static let kernelSets: [String: KernelSet] = ["reference": .reference, "quantized": .quantized, "auto": .quantized]

    public init(path: String, options: LoadOptions = LoadOptions(), progress: (String) -> Void = { _ in }) throws {
        guard let kernels = LoadedModel.kernelSets[options.kernels] else {
            throw EngineError.unknownKernels(options.kernels, valid: LoadedModel.kernelSets.keys.sorted())
        }
        if options.rules != nil, options.kernels != "auto" {
            throw EngineError.invalidOption("--kernels \(options.kernels) and --rules both choose operators; use one "
                                            + "(rules/cpu-reference.yaml is what --kernels reference selects)")
        }
        guard options.threads >= 1 else { throw EngineError.invalidOption("--threads must be at least 1") }
        guard options.threads <= ThreadPool.maxThreads else {
            throw EngineError.invalidOption("--threads \(options.threads) is more than \(ThreadPool.maxThreads) "
                                            + "(4 per core; this machine has \(ProcessInfo.processInfo.activeProcessorCount) cores)")
        }
        guard options.batchSize >= 1 else { throw EngineError.invalidOption("--batch-size must be at least 1") }
        self.path = path
        self.options = options
        file = try GGUFFile.open(path)
        model = try Architectures.load(file: file)
        let tree = try Architectures.moduleTree(file: file)
        // A kernel set named explicitly (--kernels quantized / reference) means the CPU's numerics.
        let choice = try RuleChoice.choose(path: options.rules, architecture: tree.architecture,
                                           devices: options.kernels == "auto" ? Placement.availableDevices : [.cpu],
                                           reference: kernels.cacheElement == .f32, dense: !tree.contains(.experts),
                                           gpuAttention: ShippedRules.gpuRunsAttention(tree))
        placement = try Placement.plan(tree: tree, rules: choice.file, strict: options.strictRules,
                                       rulesSource: choice.description)
        rulesDescription = choice.description
        let binding = try Placement.binding(for: placement)
        tokenizer = try Tokenizer(gguf: file)
        if tokenizer.vocabularySize != model.hyperparameters.vocab {
            progress("warning: the tokenizer has \(tokenizer.vocabularySize) tokens but the model's vocabulary is "
                     + "\(model.hyperparameters.vocab) (vocab_size / token_embd rows): "
                     + (tokenizer.vocabularySize < model.hyperparameters.vocab ? "ids past the tokenizer's decode to nothing"
                                                                              : "prompt tokens past the vocabulary are refused"))
        }
        let arch = file.architecture ?? ""
        if let source = file.string(.chatTemplate) {
            // A template that does not parse is reported when a chat needs it (not at load: `run`
            // without --chat does not use it).
            do { chatTemplate = try ChatTemplate(source: source); chatTemplateError = nil } catch {
                chatTemplate = nil; chatTemplateError = error
            }
        } else if let name = BuiltinChatTemplates.defaultName(forArchitecture: arch, modelName: file.string(.name)),
                  let source = BuiltinChatTemplates.template(named: name) {
            chatTemplate = try? ChatTemplate(source: source); chatTemplateError = nil
        } else {
            chatTemplate = nil; chatTemplateError = nil
        }
        let trained = model.hyperparameters.contextLength
        if let c = options.contextSize, c < 1 { throw EngineError.invalidOption("--ctx-size must be at least 1") }
        contextSize = options.contextSize ?? min(trained, 4096)
        // The KV cache must fit this machine's memory: past it the allocation would abort the
        // process instead of failing.
        let cacheBytes = model.cacheByteCount(capacity: contextSize, element: kernels.cacheElement)
        let memory = ProcessInfo.processInfo.physicalMemory
        if cacheBytes.map({ UInt64($0) > memory }) ?? true {
            throw EngineError.invalidOption(String(format: "--ctx-size %d needs %@ of KV cache; this machine has %.1f GiB of memory",
                                                   contextSize, cacheBytes.map { String(format: "%.1f GiB", Double($0) / 1_073_741_824) }
                                                       ?? "more than 2^63 bytes", Double(memory) / 1_073_741_824))
        }
        if contextSize > trained {
            progress("warning: --ctx-size \(contextSize) is past the model's trained context of \(trained) tokens; text past it may degrade")
        }
        context = ForwardContext(pool: ThreadPool(threads: options.threads), operators: binding,
                                 name: options.rules == nil ? kernels.name : "rules")
        if context.pool.nodeThreads.count > 1 {
            let pool = context.pool
            progress("NUMA: \(pool.nodeThreads.count) nodes (\(pool.nodeIDs.map { "node\($0)" }.joined(separator: ", ")));"
                     + " CPU threads pinned \(pool.nodeThreads.map { "\($0.count)" }.joined(separator: " + ")) per node; each node's"
                     + " threads compute their slice of every matrix, whose packed copy is placed on that node (SWIFTKT_NUMA=0: off)")
        }
        cudaPieces = try LoadedModel.placeOnGPU(model, placement, cpuContext: context, progress: progress)
        cuda = cudaPieces.first
        if cuda == nil || cuda!.cpuBlocks > 0 {
            let start = DispatchTime.now().uptimeNanoseconds
            // On a split model only the CPU's modules (those the binding holds) are repacked.
            let (matrices, bytes) = model.prepareWeights(context: context, boundOnly: cuda != nil)
            LoadedModel.releaseFreeMemory()
            if matrices > 0 {
                progress(String(format: "repacked %d weight matrices (%.1f MiB) for the CPU kernels in %.2f s", matrices,
                                Double(bytes) / 1_048_576, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
            }
        }
    }

    /// The CUDA model when the plan puts modules on a GPU: all of them, in both phases, on one
    /// device — except mixtures of experts, whose MoE blocks may stay on the CPU (cuda-moe.yaml) —
    /// or a dense model's layers in ranges over several GPUs (one piece per range); other mixed
    /// CPU/GPU placements are not supported yet.
    static func placeOnGPU(_ model: DecoderModel, _ plan: PlacementPlan, cpuContext: ForwardContext,
                           progress: (String) -> Void) throws -> [CUDAModel] {
        let moeBlocks = plan.modules.filter { $0.kind == .moe }.map(\.name)
        func inMoEBlock(_ m: PlacedModule) -> Bool { moeBlocks.contains { m.name == $0 || m.name.hasPrefix($0 + ".") } }
        let cpuBlocks = plan.modules.filter { $0.kind == .moe && $0.prefillDevice == .cpu && $0.generateDevice == .cpu }
        let devices = Set(plan.modules.filter { !(inMoEBlock($0) && !cpuBlocks.isEmpty) }.flatMap { [$0.prefillDevice, $0.generateDevice] })
        let gpus = devices.compactMap { d -> Int? in if case let .cuda(i) = d { return i } else { return nil } }
        guard !gpus.isEmpty else { return [] }
        var numerics = try cudaNumerics(plan)
        if cpuBlocks.isEmpty, !devices.contains(.cpu), devices.count > 1 {
            return try splitOverGPUs(model, plan, numerics: numerics, progress: progress)
        }
        // In a split plan every module of an MoE block must be on the CPU, in both phases, except
        // the shared experts (and their gates): all of them on the CPU, or all on the GPU.
        func isShared(_ m: PlacedModule) -> Bool { m.name.contains(".mlp.shared_expert") }
        func onCPU(_ m: PlacedModule) -> Bool { m.prefillDevice == .cpu && m.generateDevice == .cpu }
        let shared = cpuBlocks.isEmpty ? [] : plan.modules.filter { inMoEBlock($0) && isShared($0) }
        let sharedOnGPU = !shared.isEmpty && !shared.contains(where: onCPU)
        if !shared.isEmpty && !sharedOnGPU && !shared.allSatisfy(onCPU) {
            throw EngineError.invalidOption("\(plan.rulesSource) puts some of the shared experts' modules on the CPU and some on a GPU "
                                            + "(e.g. \(shared.first(where: onCPU)!.name) and \(shared.first { !onCPU($0) }!.name)); "
                                            + "place the shared experts and their gates all on the GPU or all on the CPU")
        }
        numerics.sharedExpertsOnGPU = sharedOnGPU
        let splitBlockOnGPU = cpuBlocks.isEmpty ? nil
            : plan.modules.first { inMoEBlock($0) && !(sharedOnGPU && isShared($0)) && !onCPU($0) }
        guard devices.count == 1, let ordinal = gpus.first, splitBlockOnGPU == nil else {
            let cpuNames = plan.modules.filter { $0.prefillDevice == .cpu || $0.generateDevice == .cpu }.prefix(3).map(\.name)
            throw EngineError.invalidOption("\(plan.rulesSource) splits the model over " + devices.sorted().map(\.description).joined(separator: ", ")
                                            + " (e.g. \(cpuNames.joined(separator: ", ")) on the CPU); the CUDA backend runs a whole "
                                            + "dense model on one GPU or over several by layer ranges, or a mixture of experts with its "
                                            + "MoE blocks (all of each, or all but their shared experts) on the CPU — use rules/cuda.yaml, "
                                            + "rules/cuda-moe.yaml or rules/cpu.yaml")
        }
        if sharedOnGPU, let m = shared.first(where: { $0.prefillDevice != .cuda(ordinal) || $0.generateDevice != .cuda(ordinal) }) {
            throw EngineError.invalidOption("\(plan.rulesSource) puts \(m.name) on \(m.prefillDevice) (prefill) and \(m.generateDevice) "
                                            + "(generate); the shared experts go on "
                                            + "cuda:\(ordinal) with the rest of the GPU's modules, or on the CPU")
        }
        let gpu = try openGPU(ordinal, progress: progress)
        let cuda = try CUDAModel(model: model, gpu: gpu, numerics: numerics, cpuContext: cpuBlocks.isEmpty ? nil : cpuContext,
                                 progress: progress)
        if cuda.cpuBlocks > 0 {
            progress("\(cuda.cpuBlocks) MoE blocks on the CPU (\(cpuContext.pool.threadCount) threads)"
                     + (sharedOnGPU ? " but their shared experts" : "") + ", the rest on cuda:\(ordinal)")
        }
        return [cuda]
    }

    /// Opens cuda:`ordinal` (on the GPU that stands in for it, SWIFTKT_CUDA_STAND_IN).
    static func openGPU(_ ordinal: Int, progress: (String) -> Void) throws -> GPU {
        let physical = Device.physicalOrdinal(ordinal)
        let gpu = try GPU(ordinal: physical)
        progress(String(format: "cuda:%d %@ (sm_%d%d)%@, kernels %@", ordinal, gpu.device.name, gpu.device.computeCapability.major,
                        gpu.device.computeCapability.minor, physical != ordinal ? " standing in on GPU \(physical)" : "",
                        gpu.compileSeconds > 0.05 ? String(format: "compiled by NVRTC in %.1f s", gpu.compileSeconds) : "from the cache"))
        return gpu
    }

    /// The CUDA operators' numerics from the plan's kwargs.
    static func cudaNumerics(_ plan: PlacementPlan) throws -> CUDANumerics {
        var numerics = CUDANumerics()
        if let a = plan.modules.first(where: { $0.kind == .attention }) { numerics.attentionLikeCPU = a.kwargs["numerics"] != .string("fast") }
        if let m = plan.modules.first(where: { $0.kind == .mlp }) { numerics.geluTable = m.kwargs["gelu"] != .string("exact") }
        if let l = plan.modules.first(where: { $0.kind == .linear }), case let .int(n)? = l.kwargs["gemm_min_tokens"] {
            numerics.gemmMinTokens = n
        }
        if let l = plan.modules.first(where: { $0.kind == .linear }), case let .int(n)? = l.kwargs["marlin_max_tokens"] {
            guard n <= GPUOps.marlinMaxTokens else {
                throw EngineError.invalidOption("\(plan.rulesSource): marlin_max_tokens \(n) is above \(GPUOps.marlinMaxTokens), "
                                                + "the most one Marlin launch takes")
            }
            numerics.marlinMaxTokens = n
        }
        if let e = plan.modules.first(where: { $0.kind == .experts }), case let .int(n)? = e.kwargs["stream_to_gpu_min_tokens"] {
            numerics.expertsOnGPUMinTokens = n
        }
        return numerics
    }

    /// A dense model over several GPUs: each decoder layer whole on one device, the embedding
    /// with the first layer, the final norm and LM head with the last; one CUDAModel per run of
    /// consecutive layers on a device (CUDASplitDecoder copies the hidden state between them).
    static func splitOverGPUs(_ model: DecoderModel, _ plan: PlacementPlan, numerics: CUDANumerics,
                              progress: (String) -> Void) throws -> [CUDAModel] {
        func devices(_ mods: [PlacedModule]) -> Set<Device> { Set(mods.flatMap { [$0.prefillDevice, $0.generateDevice] }) }
        var layerDevices: [Int] = []
        for i in model.layers.indices {
            let name = "model.layers.\(i)"
            let ds = devices(plan.modules.filter { $0.name == name || $0.name.hasPrefix(name + ".") })
            guard ds.count == 1, case let .cuda(d)? = ds.first else {
                let on = ds.isEmpty ? "no device" : ds.sorted().map(\.description).joined(separator: " and ")
                throw EngineError.invalidOption("\(plan.rulesSource) puts \(name) on \(on); a model split over GPUs keeps each layer "
                                                + "whole on one GPU, in both phases")
            }
            layerDevices.append(d)
        }
        let trunkEnds: [(ModuleKind, Int, String)] = [(.embedding, layerDevices.first ?? 0, "the first layer"),
                                                      (.rmsNorm, layerDevices.last ?? 0, "the last layer"),
                                                      (.lmHead, layerDevices.last ?? 0, "the last layer")]
        for (kind, d, with) in trunkEnds {
            for m in plan.modules where m.depth <= 1 && m.kind == kind && devices([m]) != [.cuda(d)] {
                throw EngineError.invalidOption("\(plan.rulesSource) puts \(m.name) on " + devices([m]).sorted().map(\.description).joined(separator: " and ")
                                                + "; a model split over GPUs keeps it with \(with) (cuda:\(d))")
            }
        }
        if model.layers.contains(where: { !($0.mlp is GatedMLP) }) {
            throw EngineError.invalidOption("\(plan.rulesSource) splits a mixture of experts over GPUs; only dense models split by layers "
                                            + "(mixtures of experts: rules/cuda-moe.yaml on one GPU)")
        }
        var pieces: [CUDAModel] = []
        // One GPU object per physical device (pieces on one device share its stream and copy
        // the hidden state within it); peer access between neighbouring devices where allowed.
        var opened: [Int: GPU] = [:]
        for (d, range) in CUDASplitDecoder.pieces(layerDevices: layerDevices) {
            let physical = Device.physicalOrdinal(d)
            let gpu = try opened[physical] ?? openGPU(d, progress: progress)
            opened[physical] = gpu
            if let before = pieces.last?.gpu, before !== gpu {
                try before.makeCurrent()
                let direct = try before.driver.enablePeerAccess(from: before.device, to: gpu.device, toContext: gpu.context)
                try gpu.makeCurrent()
                let back = try gpu.driver.enablePeerAccess(from: gpu.device, to: before.device, toContext: before.context)
                progress("cuda:\(before.device.ordinal) → cuda:\(gpu.device.ordinal): "
                         + (direct && back ? "peer to peer" : "no peer access, copies staged through host memory"))
            }
            progress("cuda:\(d): layers \(range.lowerBound)–\(range.upperBound - 1)" + (range.lowerBound == 0 ? " with the embedding" : "")
                     + (range.upperBound == model.layers.count ? " with the final norm and LM head" : ""))
            pieces.append(try CUDAModel(model: model, gpu: gpu, numerics: numerics, layers: range, progress: progress))
        }
        return pieces
    }

    /// Hands the memory the allocator keeps free (temporaries of loading or of a finished
    /// request) back to the system. Cheap when there is little; call it when going idle.
    public static func releaseFreeMemory() {
        #if os(Linux)
        swiftkt_malloc_trim()
        #endif
    }

    /// A session's forward path: the GPU's when the model is there, else the CPU operators.
    func makeBackend() throws -> ForwardBackend {
        if cudaPieces.count > 1 {
            return try CUDASplitDecoder(pieces: cudaPieces.map { try $0.makeDecoder(capacity: contextSize, maxBatch: options.batchSize) })
        }
        if let cuda { return try cuda.makeDecoder(capacity: contextSize, maxBatch: options.batchSize) }
        return CPUForward(model: model, capacity: contextSize, context: context)
    }

    /// Where forward passes run, for logs: "cpu" or "cuda:0 (NVIDIA H100 …)".
    public var backendDescription: String {
        if cudaPieces.count > 1 {
            return cudaPieces.map { "layers \($0.layerRange.lowerBound)–\($0.layerRange.upperBound - 1) on GPU \($0.gpu.device.ordinal)" }
                .joined(separator: ", ") + " (\(cudaPieces[0].gpu.device.name))"
        }
        return cuda.map { "cuda:\($0.gpu.device.ordinal) (\($0.gpu.device.name))" } ?? "cpu"
    }

    /// Renders a conversation with the model's chat template (or the built-in one for its family).
    public func renderChat(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> String {
        guard let template = chatTemplate else {
            if let chatTemplateError { throw EngineError.invalidOption("the model's chat template does not parse: \(chatTemplateError)") }
            throw EngineError.noChatTemplate(architecture: file.architecture ?? "?")
        }
        let bos = tokenizer.bosID.map { tokenizer.tokenText($0) } ?? ""
        let eos = tokenizer.eosID.map { tokenizer.tokenText($0) } ?? ""
        return try template.render(messages: messages, addGenerationPrompt: addGenerationPrompt, bosToken: bos, eosToken: eos)
    }

    /// Tokenizes a prompt. Special tokens written in the text are parsed; BOS is added when the
    /// model asks for it, unless the text already starts with it (chat templates often write it).
    public func tokenize(_ text: String, parseSpecial: Bool = true) -> [Int32] {
        var ids = tokenizer.encode(text, addSpecial: true, parseSpecial: parseSpecial)
        if let bos = tokenizer.bosID, ids.count >= 2, ids[0] == bos, ids[1] == bos { ids.removeFirst() }
        return ids
    }

    public func makeSession() -> Session { Session(model: self) }
}
