// KV cache: per layer, keys and values for every position of the context.
// Layout per layer: [capacity, kvHeads · headDim], position-major. Elements are IEEE half
// (llama.cpp's default cache type, half the memory) or float (exact reference numerics);
// the kernel set picks which.
import Core
import CPUKernels

public enum CacheElement: Sendable { case f16, f32 }

public final class LayerCache: @unchecked Sendable {
    public let element: CacheElement
    /// [capacity, kvHeads · headDim]
    public let keys: UnsafeMutableRawPointer
    /// [capacity, kvHeads · valueDim]
    public let values: UnsafeMutableRawPointer
    let keyWidth: Int, valueWidth: Int

    init(capacity: Int, keyWidth: Int, valueWidth: Int, element: CacheElement) {
        self.element = element; self.keyWidth = keyWidth; self.valueWidth = valueWidth
        let size = element == .f16 ? 2 : 4
        keys = .allocate(byteCount: capacity * keyWidth * size, alignment: 64)
        values = .allocate(byteCount: capacity * valueWidth * size, alignment: 64)
        keys.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * keyWidth * size)
        values.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * valueWidth * size)
    }

    deinit {
        // (Block-sparse attention keeps anchors per key buffer.)
        BlockSparseAttention.forget(keys: UnsafeRawPointer(keys))
        keys.deallocate(); values.deallocate()
    }

    /// Writes one position's keys and values (floats, rounded to half for an f16 cache).
    func store(position p: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) {
        switch element {
        case .f16:
            let kd = keys.assumingMemoryBound(to: UInt16.self) + p * keyWidth
            let vd = values.assumingMemoryBound(to: UInt16.self) + p * valueWidth
            for i in 0..<keyWidth { kd[i] = floatToHalf(k[i]) }
            for i in 0..<valueWidth { vd[i] = floatToHalf(v[i]) }
        case .f32:
            (keys.assumingMemoryBound(to: Float.self) + p * keyWidth).update(from: k, count: keyWidth)
            (values.assumingMemoryBound(to: Float.self) + p * valueWidth).update(from: v, count: valueWidth)
        }
    }
}

public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let layers: [LayerCache]
    /// Bytes held by the cache.
    public let byteCount: Int

    public init(layers: Int, capacity: Int, keyWidth: Int, valueWidth: Int, element: CacheElement = .f16) {
        self.capacity = capacity
        byteCount = layers * capacity * (keyWidth + valueWidth) * (element == .f16 ? 2 : 4)
        self.layers = (0..<layers).map { _ in
            LayerCache(capacity: capacity, keyWidth: keyWidth, valueWidth: valueWidth, element: element)
        }
    }
}
