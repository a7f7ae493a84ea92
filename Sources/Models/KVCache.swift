// KV cache: per layer, keys and values for every position of the context, stored as IEEE half
// (llama.cpp's default cache type). Layout per layer: [capacity, kvHeads · headDim], position-major.
import Core
public final class LayerCache: @unchecked Sendable {
    /// [capacity, kvHeads · headDim]
    public let keys: UnsafeMutablePointer<UInt16>
    /// [capacity, kvHeads · valueDim]
    public let values: UnsafeMutablePointer<UInt16>

    init(capacity: Int, keyWidth: Int, valueWidth: Int) {
        keys = .allocate(capacity: capacity * keyWidth)
        values = .allocate(capacity: capacity * valueWidth)
        keys.initialize(repeating: 0, count: capacity * keyWidth)
        values.initialize(repeating: 0, count: capacity * valueWidth)
    }

    deinit { keys.deallocate(); values.deallocate() }

    /// Stores `count` floats at `destination`, rounded to half.
    static func store(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, count: Int) {
        for i in 0..<count { destination[i] = floatToHalf(source[i]) }
    }
}

public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let layers: [LayerCache]
    /// Bytes held by the cache.
    public let byteCount: Int

    public init(layers: Int, capacity: Int, keyWidth: Int, valueWidth: Int) {
        self.capacity = capacity
        byteCount = layers * capacity * (keyWidth + valueWidth) * MemoryLayout<UInt16>.size
        self.layers = (0..<layers).map { _ in LayerCache(capacity: capacity, keyWidth: keyWidth, valueWidth: valueWidth) }
    }
}
