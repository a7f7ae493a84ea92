// Hyperparameters shared by the dense decoder architectures, read through GGUF's key table.
// Names follow STYLE.md: shared part first (headCount, headCountKV), dimensions as
// embedding / headDim / feedForward / vocab.
import Core
import GGUF

public struct Hyperparameters: Sendable {
    public var architecture: String
    public var blockCount: Int
    /// Width of the residual stream.
    public var embedding: Int
    public var headCount: Int
    public var headCountKV: Int
    /// Per-head width of queries and keys (`attention.key_length`, default embedding / heads).
    public var headDim: Int
    /// Per-head width of values (`attention.value_length`).
    public var valueDim: Int
    public var feedForward: Int
    public var vocab: Int
    public var contextLength: Int
    public var rmsEpsilon: Float
    public var ropeBase: Float
    /// Rotated dimensions per head (`rope.dimension_count`, default headDim).
    public var ropeDim: Int
    /// Linear rope scaling factor (positions are divided by it); 1 when absent.
    public var ropeScale: Float

    public init(file: GGUFFile) throws {
        guard let arch = file.architecture else { throw ModelError.missingKey("general.architecture") }
        architecture = arch
        func required(_ key: GGUFKey) throws -> Int {
            guard let v = try file.checkedInt(key) else { throw ModelError.missingKey(key.resolved(architecture: arch)) }
            return v
        }
        blockCount = try required(.blockCount)
        // Every layer has tensors named blk.N.…: a block count past them would only fail later,
        // after per-layer state for all of them was allocated.
        let lastLayer = "blk.\(blockCount - 1)."
        guard file.tensors.contains(where: { $0.name.hasPrefix(lastLayer) }) else {
            throw ModelError.invalidHyperparameter(key: GGUFKey.blockCount.resolved(architecture: arch), value: "\(blockCount)",
                                                   reason: "the file has no tensors of layer \(blockCount - 1) (\(lastLayer)*)")
        }
        embedding = try required(.embeddingLength)
        headCount = try required(.headCount)
        headCountKV = try file.checkedInt(.headCountKV) ?? headCount
        feedForward = try required(.feedForwardLength)
        headDim = try file.checkedInt(.keyLength) ?? embedding / headCount
        valueDim = try file.checkedInt(.valueLength) ?? headDim
        contextLength = try file.checkedInt(.contextLength) ?? 2048
        rmsEpsilon = try file.checkedFloat(.layerNormRMSEpsilon, positive: true) ?? 1e-5
        ropeBase = try file.checkedFloat(.ropeFreqBase, positive: true) ?? 10_000
        ropeDim = try file.checkedInt(.ropeDimensionCount, positive: false) ?? headDim
        let scalingType = file.string(.ropeScalingType)
        if scalingType == nil || scalingType == "linear", let f = try file.checkedFloat(.ropeScalingFactor, positive: false), f > 0 {
            ropeScale = f
        } else {
            ropeScale = 1
        }
        let tokenCount = file.tensor(named: "token_embd.weight")?.shape.last
        vocab = try file.checkedInt(.vocabSize) ?? tokenCount ?? 0
        guard headCount % headCountKV == 0 else {
            throw ModelError.invalidHyperparameter(key: GGUFKey.headCountKV.resolved(architecture: arch),
                                                   value: "\(headCountKV)", reason: "must divide head_count \(headCount)")
        }
        guard vocab > 0 else { throw ModelError.missingKey("\(arch).vocab_size") }
        guard ropeDim >= 0, ropeDim <= headDim, ropeDim % 2 == 0 else {
            throw ModelError.invalidHyperparameter(key: GGUFKey.ropeDimensionCount.resolved(architecture: arch),
                                                   value: "\(ropeDim)", reason: "must be even and ≤ head dim \(headDim)")
        }
    }
}

extension GGUFFile {
    /// An integer hyperparameter: nil when absent; an error (not a default) when present with a
    /// value of another type, or not positive when `positive`.
    func checkedInt(_ key: GGUFKey, positive: Bool = true) throws -> Int? {
        guard let value = self[key] else { return nil }
        let name = keyString(key) ?? key.template
        guard let v = value.int else {
            throw ModelError.invalidHyperparameter(key: name, value: "of type \(value.type)", reason: "must be an integer")
        }
        guard !positive || v > 0 else { throw ModelError.invalidHyperparameter(key: name, value: "\(v)", reason: "must be positive") }
        return v
    }

    /// A float hyperparameter: nil when absent; an error when present with a value of another
    /// type, not finite, or not positive when `positive` (NaN or infinite epsilons, rope bases
    /// and softcaps would only give NaN logits).
    func checkedFloat(_ key: GGUFKey, positive: Bool) throws -> Float? {
        guard let value = self[key] else { return nil }
        let name = keyString(key) ?? key.template
        guard let v = value.float else {
            throw ModelError.invalidHyperparameter(key: name, value: "of type \(value.type)", reason: "must be a number")
        }
        guard v.isFinite, !positive || v > 0 else {
            throw ModelError.invalidHyperparameter(key: name, value: "\(v)", reason: positive ? "must be positive and finite" : "must be finite")
        }
        return v
    }
}
