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
            guard let v = file.int(key) else { throw ModelError.missingKey(key.resolved(architecture: arch)) }
            guard v > 0 else {
                throw ModelError.invalidHyperparameter(key: key.resolved(architecture: arch), value: "\(v)", reason: "must be positive")
            }
            return v
        }
        blockCount = try required(.blockCount)
        embedding = try required(.embeddingLength)
        headCount = try required(.headCount)
        headCountKV = file.int(.headCountKV) ?? headCount
        feedForward = try required(.feedForwardLength)
        headDim = file.int(.keyLength) ?? embedding / headCount
        valueDim = file.int(.valueLength) ?? headDim
        contextLength = file.int(.contextLength) ?? 2048
        rmsEpsilon = file.float(.layerNormRMSEpsilon) ?? 1e-5
        ropeBase = file.float(.ropeFreqBase) ?? 10_000
        ropeDim = file.int(.ropeDimensionCount) ?? headDim
        let scalingType = file.string(.ropeScalingType)
        if scalingType == nil || scalingType == "linear", let f = file.float(.ropeScalingFactor), f > 0 {
            ropeScale = f
        } else {
            ropeScale = 1
        }
        let tokenCount = file.tensor(named: "token_embd.weight")?.shape.last
        vocab = file.int(.vocabSize) ?? tokenCount ?? 0
        guard headCountKV > 0, headCount % headCountKV == 0 else {
            throw ModelError.invalidHyperparameter(key: GGUFKey.headCountKV.resolved(architecture: arch),
                                                   value: "\(headCountKV)", reason: "must divide head_count \(headCount)")
        }
        guard vocab > 0 else { throw ModelError.missingKey("\(arch).vocab_size") }
        guard ropeDim <= headDim, ropeDim % 2 == 0 else {
            throw ModelError.invalidHyperparameter(key: GGUFKey.ropeDimensionCount.resolved(architecture: arch),
                                                   value: "\(ropeDim)", reason: "must be even and ≤ head dim \(headDim)")
        }
    }
}
