// The one table of GGUF metadata keys SwiftKT reads. Key strings appear nowhere else in the code
// base: architectures, the tokenizer and the CLI reach metadata through these constants.
// Architecture-specific keys hold "{arch}" and are resolved with the file's general.architecture
// (e.g. "{arch}.block_count" → "llama.block_count"). Spellings follow gguf-py `constants.Keys`
// (including llama.cpp's "seperator").

/// One metadata key: its template and the value type writers use for it.
public struct GGUFKey: Sendable, Hashable, CustomStringConvertible {
    public let template: String
    /// The type llama.cpp's converters write (readers accept any compatible type).
    public let type: GGUFValueType
    /// For arrays: the element type.
    public let elementType: GGUFValueType?

    public init(_ template: String, _ type: GGUFValueType, of elementType: GGUFValueType? = nil) {
        self.template = template
        self.type = type
        self.elementType = elementType
    }

    /// True when the key contains "{arch}".
    public var isArchitectureSpecific: Bool { template.contains("{arch}") }

    /// The concrete key for an architecture.
    public func resolved(architecture: String) -> String {
        isArchitectureSpecific ? template.replacing("{arch}", with: architecture) : template
    }

    public var description: String { template }
}

// MARK: - The table

extension GGUFKey {
    // general
    public static let architecture = GGUFKey("general.architecture", .string)
    public static let name = GGUFKey("general.name", .string)
    public static let alignment = GGUFKey("general.alignment", .uint32)
    public static let fileType = GGUFKey("general.file_type", .uint32)
    public static let quantizationVersion = GGUFKey("general.quantization_version", .uint32)

    // hyperparameters
    public static let contextLength = GGUFKey("{arch}.context_length", .uint32)
    public static let embeddingLength = GGUFKey("{arch}.embedding_length", .uint32)
    public static let blockCount = GGUFKey("{arch}.block_count", .uint32)
    /// A single value, or an array with one entry per layer in some architectures.
    public static let feedForwardLength = GGUFKey("{arch}.feed_forward_length", .uint32)
    public static let headCount = GGUFKey("{arch}.attention.head_count", .uint32)
    public static let headCountKV = GGUFKey("{arch}.attention.head_count_kv", .uint32)
    public static let keyLength = GGUFKey("{arch}.attention.key_length", .uint32)
    public static let valueLength = GGUFKey("{arch}.attention.value_length", .uint32)
    /// DeepSeek MLA files with split `attn_k_b` / `attn_v_b`: the per-head key / value widths after
    /// decompression (key_length / value_length are then those of the compressed cache).
    public static let keyLengthMLA = GGUFKey("{arch}.attention.key_length_mla", .uint32)
    public static let valueLengthMLA = GGUFKey("{arch}.attention.value_length_mla", .uint32)
    public static let layerNormRMSEpsilon = GGUFKey("{arch}.attention.layer_norm_rms_epsilon", .float32)
    public static let layerNormEpsilon = GGUFKey("{arch}.attention.layer_norm_epsilon", .float32)
    public static let ropeFreqBase = GGUFKey("{arch}.rope.freq_base", .float32)
    public static let ropeFreqBaseSWA = GGUFKey("{arch}.rope.freq_base_swa", .float32)
    public static let ropeDimensionCount = GGUFKey("{arch}.rope.dimension_count", .uint32)
    public static let ropeScalingType = GGUFKey("{arch}.rope.scaling.type", .string)
    public static let ropeScalingFactor = GGUFKey("{arch}.rope.scaling.factor", .float32)
    public static let ropeScalingOriginalContextLength = GGUFKey("{arch}.rope.scaling.original_context_length", .uint32)
    public static let ropeScalingAttnFactor = GGUFKey("{arch}.rope.scaling.attn_factor", .float32)
    public static let ropeScalingYarnLogMul = GGUFKey("{arch}.rope.scaling.yarn_log_multiplier", .float32)
    public static let slidingWindow = GGUFKey("{arch}.attention.sliding_window", .uint32)
    public static let slidingWindowPattern = GGUFKey("{arch}.attention.sliding_window_pattern", .uint32)
    public static let finalLogitSoftcapping = GGUFKey("{arch}.final_logit_softcapping", .float32)
    public static let attnLogitSoftcapping = GGUFKey("{arch}.attn_logit_softcapping", .float32)
    public static let vocabSize = GGUFKey("{arch}.vocab_size", .uint32)

    // mixture of experts, MLA
    public static let expertCount = GGUFKey("{arch}.expert_count", .uint32)
    public static let expertUsedCount = GGUFKey("{arch}.expert_used_count", .uint32)
    public static let expertFeedForwardLength = GGUFKey("{arch}.expert_feed_forward_length", .uint32)
    public static let expertSharedCount = GGUFKey("{arch}.expert_shared_count", .uint32)
    public static let expertSharedFeedForwardLength = GGUFKey("{arch}.expert_shared_feed_forward_length", .uint32)
    public static let expertWeightsScale = GGUFKey("{arch}.expert_weights_scale", .float32)
    public static let expertWeightsNorm = GGUFKey("{arch}.expert_weights_norm", .bool)
    /// 1 = softmax, 2 = sigmoid (llama.cpp `llama_expert_gating_func_type`).
    public static let expertGatingFunc = GGUFKey("{arch}.expert_gating_func", .uint32)
    public static let leadingDenseBlockCount = GGUFKey("{arch}.leading_dense_block_count", .uint32)
    public static let qLoraRank = GGUFKey("{arch}.attention.q_lora_rank", .uint32)
    public static let kvLoraRank = GGUFKey("{arch}.attention.kv_lora_rank", .uint32)
    public static let expertGroupCount = GGUFKey("{arch}.expert_group_count", .uint32)
    public static let expertGroupUsedCount = GGUFKey("{arch}.expert_group_used_count", .uint32)

    // tokenizer
    public static let tokenizerModel = GGUFKey("tokenizer.ggml.model", .string)
    public static let tokenizerPre = GGUFKey("tokenizer.ggml.pre", .string)
    public static let tokens = GGUFKey("tokenizer.ggml.tokens", .array, of: .string)
    public static let scores = GGUFKey("tokenizer.ggml.scores", .array, of: .float32)
    public static let tokenType = GGUFKey("tokenizer.ggml.token_type", .array, of: .int32)
    public static let merges = GGUFKey("tokenizer.ggml.merges", .array, of: .string)
    public static let bosID = GGUFKey("tokenizer.ggml.bos_token_id", .uint32)
    public static let eosID = GGUFKey("tokenizer.ggml.eos_token_id", .uint32)
    public static let eotID = GGUFKey("tokenizer.ggml.eot_token_id", .uint32)
    public static let eomID = GGUFKey("tokenizer.ggml.eom_token_id", .uint32)
    public static let unknownID = GGUFKey("tokenizer.ggml.unknown_token_id", .uint32)
    public static let separatorID = GGUFKey("tokenizer.ggml.seperator_token_id", .uint32)
    public static let paddingID = GGUFKey("tokenizer.ggml.padding_token_id", .uint32)
    public static let addBOS = GGUFKey("tokenizer.ggml.add_bos_token", .bool)
    public static let addEOS = GGUFKey("tokenizer.ggml.add_eos_token", .bool)
    public static let addSpacePrefix = GGUFKey("tokenizer.ggml.add_space_prefix", .bool)
    public static let chatTemplate = GGUFKey("tokenizer.chat_template", .string)

    // split models
    public static let splitCount = GGUFKey("split.count", .uint16)
    public static let splitNo = GGUFKey("split.no", .uint16)
    public static let splitTensorsCount = GGUFKey("split.tensors.count", .int32)

    /// The hyperparameter keys, in display order (for `swiftkt inspect`).
    public static let hyperparameters: [GGUFKey] = [
        .contextLength, .embeddingLength, .blockCount, .feedForwardLength, .headCount, .headCountKV,
        .keyLength, .valueLength, .keyLengthMLA, .valueLengthMLA, .layerNormRMSEpsilon, .layerNormEpsilon, .ropeFreqBase, .ropeFreqBaseSWA,
        .ropeDimensionCount, .ropeScalingType, .ropeScalingFactor, .ropeScalingOriginalContextLength,
        .ropeScalingAttnFactor, .ropeScalingYarnLogMul, .slidingWindow, .slidingWindowPattern,
        .finalLogitSoftcapping, .attnLogitSoftcapping, .vocabSize,
        .expertCount, .expertUsedCount, .expertFeedForwardLength, .expertSharedCount,
        .expertSharedFeedForwardLength, .expertWeightsScale, .expertWeightsNorm, .expertGatingFunc,
        .leadingDenseBlockCount, .qLoraRank, .kvLoraRank, .expertGroupCount, .expertGroupUsedCount,
    ]
}
