// DecoderModel: the decoder-only transformer stack that every architecture shares (llama, qwen2,
// qwen3, gemma3, and the MoE ones: mixtral, qwen2moe, qwen3moe, deepseek2). Each architecture file fills in
// the blocks (which norms exist, rope settings per layer, activation, a dense MLP or a mixture of
// experts, embedding scale, soft-capping); the forward pass below is read top to bottom:
//
//   x = embed(tokens) · embeddingScale
//   for each layer:
//       x += postAttnNorm?(attention(attnNorm(x)))
//       x += postFFNNorm?(mlp(ffnNorm(x)))
//   logits = softcap?(lmHead(outputNorm(x)))
import Core
import CPUKernels
import Foundation

/// The feed-forward half of a decoder layer: out [tokens, embedding] from x [tokens, embedding].
/// The dense `GatedMLP` (Blocks.swift) or a mixture of experts (`MoEFeedForward`, MoE.swift).
public protocol FeedForward: Sendable {
    func callAsFunction(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, tokens: Int, context: ForwardContext)
}

extension GatedMLP: FeedForward {}

public struct DecoderLayer: Sendable {
    public let attentionNorm: RMSNorm
    /// `SelfAttention`, or DeepSeek's `MultiLatentAttention` (MLA.swift).
    public let attention: any AttentionBlock
    /// Gemma: norm of the attention output before the residual add.
    public let postAttentionNorm: RMSNorm?
    public let ffnNorm: RMSNorm
    /// The dense MLP or the mixture of experts.
    public let mlp: any FeedForward
    /// Gemma: norm of the MLP output before the residual add.
    public let postFFNNorm: RMSNorm?

    public init(attentionNorm: RMSNorm, attention: any AttentionBlock, postAttentionNorm: RMSNorm? = nil,
                ffnNorm: RMSNorm, mlp: any FeedForward, postFFNNorm: RMSNorm? = nil) {
        self.attentionNorm = attentionNorm; self.attention = attention; self.postAttentionNorm = postAttentionNorm
        self.ffnNorm = ffnNorm; self.mlp = mlp; self.postFFNNorm = postFFNNorm
    }
}

/// Which positions' logits a forward pass returns.
public enum LogitsMode: Sendable, Equatable {
    case none, last, all
    /// Positions `index…` of the chunk (perplexity scores only the second half of a window).
    case from(Int)
}

public final class DecoderModel: @unchecked Sendable {
    public let hyperparameters: Hyperparameters
    /// [vocab, embedding]
    public let tokenEmbedding: WeightMatrix
    public let embeddingScale: Float
    public let layers: [DecoderLayer]
    public let outputNorm: RMSNorm
    /// [vocab, embedding]; the token embedding when tied.
    public let lmHead: Linear
    public let finalLogitSoftcap: Float?

    public init(hyperparameters: Hyperparameters, tokenEmbedding: WeightMatrix, embeddingScale: Float = 1,
                layers: [DecoderLayer], outputNorm: RMSNorm, lmHead: Linear, finalLogitSoftcap: Float? = nil) {
        self.hyperparameters = hyperparameters; self.tokenEmbedding = tokenEmbedding
        self.embeddingScale = embeddingScale; self.layers = layers; self.outputNorm = outputNorm
        self.lmHead = lmHead; self.finalLogitSoftcap = finalLogitSoftcap
    }

    public var vocab: Int { lmHead.outFeatures }
    public var embedding: Int { hyperparameters.embedding }

    public func makeCache(capacity: Int, element: CacheElement) -> KVCache {
        let (keyWidth, valueWidth) = cacheWidths
        return KVCache(layers: layers.count, capacity: capacity, keyWidth: keyWidth, valueWidth: valueWidth, element: element)
    }

    /// Every layer's cache rows are as wide as the widest layer's (all layers alike in practice).
    private var cacheWidths: (key: Int, value: Int) {
        (layers.map(\.attention.cacheKeyWidth).max() ?? 0, layers.map(\.attention.cacheValueWidth).max() ?? 0)
    }

    /// The bytes `makeCache(capacity:element:)` would allocate, without allocating; nil past Int.
    public func cacheByteCount(capacity: Int, element: CacheElement) -> Int? {
        let (keyWidth, valueWidth) = cacheWidths
        var bytes = keyWidth + valueWidth, overflow = false
        for factor in [capacity, layers.count, element == .f16 ? 2 : 4] {
            (bytes, overflow) = bytes.multipliedReportingOverflow(by: factor)
            if overflow { return nil }
        }
        return bytes
    }

    /// Runs `tokens` at positions start..<start+count through the model, appending to `cache`.
    /// Returns logits [n, vocab] for the positions `mode` asks for (n = 0, 1 or tokens.count).
    public func forward(tokens: [Int32], startPosition: Int, cache: KVCache, mode: LogitsMode,
                        context: ForwardContext) throws -> [Float] {
        let n = tokens.count
        guard n > 0 else { return [] }
        guard startPosition + n <= cache.capacity else {
            throw ModelError.contextOverflow(needed: startPosition + n, capacity: cache.capacity)
        }
        for t in tokens where t < 0 || Int(t) >= tokenEmbedding.rows {
            throw ModelError.invalidHyperparameter(key: "token id", value: "\(t)", reason: "outside the vocabulary of \(tokenEmbedding.rows)")
        }
        let d = embedding
        let x = UnsafeMutablePointer<Float>.allocate(capacity: n * d)
        let h = UnsafeMutablePointer<Float>.allocate(capacity: n * d)
        let o = UnsafeMutablePointer<Float>.allocate(capacity: n * d)
        defer { x.deallocate(); h.deallocate(); o.deallocate() }
        let positions = (0..<n).map { Int32(startPosition + $0) }

        for (t, id) in tokens.enumerated() {
            tokenEmbedding.dequantizeRow(Int(id), into: x + t * d)
            if embeddingScale != 1 { for i in 0..<d { x[t * d + i] *= embeddingScale } }
        }
        if Trace.enabled { Trace.record("inp_scaled", x, rows: n, cols: d) }

        // Rows whose logits are wanted. As in llama.cpp, the last layer runs its feed-forward
        // part only on those rows (after the attention, which every row's KV entry needs).
        let first: Int, rows: Int
        switch mode {
        case .none: first = n; rows = 0
        case .last: first = n - 1; rows = 1
        case .all: first = 0; rows = n
        case let .from(index): first = min(max(index, 0), n - 1); rows = n - first
        }

        try positions.withUnsafeBufferPointer { pos in
            for (index, layer) in layers.enumerated() {
                try Task.checkCancellation()
                let last = index == layers.count - 1
                let r0 = last ? first : 0, m = last ? rows : n
                layer.attentionNorm(x, h, rows: n, pool: context.pool)
                if Trace.enabled { Trace.record("attn_norm-\(index)", h, rows: n, cols: d) }
                layer.attention(h, o, tokens: n, positions: pos.baseAddress!, cache: cache.layers[index], context: context)
                if Trace.enabled { Trace.record("attn_out-\(index)", o, rows: n, cols: d) }
                if m == 0 { continue }
                let xr = x + r0 * d, orow = o + r0 * d
                if let norm = layer.postAttentionNorm {
                    norm(orow, orow, rows: m, pool: context.pool)
                    if Trace.enabled { Trace.record("attn_post_norm-\(index)", orow, rows: m, cols: d) }
                }
                Ops.add(xr, orow, count: m * d)
                if Trace.enabled && layer.postAttentionNorm != nil { Trace.record("sa_out-\(index)", xr, rows: m, cols: d) }
                if Trace.enabled { Trace.record("ffn_inp-\(index)", xr, rows: m, cols: d) }
                layer.ffnNorm(xr, h, rows: m, pool: context.pool)
                if Trace.enabled { Trace.record("ffn_norm-\(index)", h, rows: m, cols: d) }
                layer.mlp(h, o, tokens: m, context: context)
                if Trace.enabled { Trace.record("ffn_out-\(index)", o, rows: m, cols: d) }
                if let norm = layer.postFFNNorm {
                    norm(o, o, rows: m, pool: context.pool)
                    if Trace.enabled { Trace.record("ffn_post_norm-\(index)", o, rows: m, cols: d) }
                }
                Ops.add(xr, o, count: m * d)
                if Trace.enabled { Trace.record("l_out-\(index)", xr, rows: m, cols: d) }
            }
        }

        if rows == 0 { return [] }
        outputNorm(x + first * d, h, rows: rows, pool: context.pool)
        if Trace.enabled { Trace.record("result_norm", h, rows: rows, cols: d) }
        var logits = [Float](repeating: 0, count: rows * vocab)
        logits.withUnsafeMutableBufferPointer { lp in
            lmHead(h, lp.baseAddress!, tokens: rows, context: context)
            if let cap = finalLogitSoftcap { Ops.softcap(lp.baseAddress!, count: lp.count, cap: cap) }
            if Trace.enabled { Trace.record("result_output", lp.baseAddress!, rows: rows, cols: vocab) }
        }
        return logits
    }
}
