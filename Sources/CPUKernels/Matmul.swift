// Matrix multiplication straight on GGUF-quantized weights: the reference path.
//
// Shapes: a weight matrix W is [rows = out features, cols = in features] in ggml order
// (ne0 = cols is contiguous, each row is cols / blockSize blocks). Activations x are
// [tokens, cols] row-major float; the result y is [tokens, rows].
//   y[t, r] = Σ_i W[r, i] · x[t, i]
// The reference dequantizes one weight row at a time into a per-thread scratch buffer and
// dots it with every token, so each weight byte is read once per call. Rows are split across
// the pool's threads. SIMD kernels that work on the quantized blocks directly are judged
// against this one.
import Core
import Foundation

/// A read-only view of a 2-D weight in its storage type (usually an mmapped GGUF tensor).
public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    /// Output features (ggml ne1).
    public let rows: Int
    /// Input features (ggml ne0), a multiple of the type's block size.
    public let cols: Int
    public let data: UnsafeRawPointer
    /// Kernel-specific repacked copies, built on first use and shared by copies of this value.
    public let packed = PackedCache()
    /// `data` lies in a read-only private file mapping: once repacked, its pages can be dropped
    /// (they fault back in from the file if a row is read again, e.g. an embedding lookup).
    public let fileMapped: Bool

    public init(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer, fileMapped: Bool = false) {
        self.type = type; self.rows = rows; self.cols = cols; self.data = data; self.fileMapped = fileMapped
    }

    /// Drops this matrix's whole pages from the process (MADV_DONTNEED) when file-mapped.
    public func releaseMappedPages() {
        #if os(Linux)
        guard fileMapped else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: data) + page - 1) / page * page
        let end = (Int(bitPattern: data) + byteCount) / page * page
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
        #endif
    }

    /// Tells the kernel this matrix is read a row at a time in random order (an embedding table
    /// looked up by token id): no read-ahead or fault-around, so a lookup maps one page of the
    /// file, not dozens (MADV_RANDOM; file mappings only).
    public func adviseRandomAccess() {
        #if os(Linux)
        guard fileMapped else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: data) / page * page
        let end = (Int(bitPattern: data) + byteCount + page - 1) / page * page
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_RANDOM) }
        #endif
    }

    /// Bytes per row.
    @inlinable public var rowBytes: Int { type.byteCount(elements: cols) }
    /// Bytes of the whole matrix (rows · rowBytes).
    @inlinable public var byteCount: Int { rows * rowBytes }

    /// Pointer to the start of row `r`.
    @inlinable public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// Dequantizes row `r` into `out` (cols floats).
    /// When the matrix has been repacked (its file pages dropped), the row is rebuilt from the
    /// packed copy, block by block, so that a lookup (a tied embedding) does not fault the file
    /// back in (the kernel maps ~16 pages around each fault); the values are the same.
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        if let p = packed.current as? PackedPanels, p.canRebuildBlocks {
            withUnsafeTemporaryAllocation(byteCount: type.typeSize, alignment: 8) { block in
                for b in 0..<(cols / type.blockSize) {
                    p.rebuildBlock(row: r, block: b, into: block.baseAddress!)
                    try! Quant.dequantize(type, from: UnsafeRawPointer(block.baseAddress!), to: out + b * type.blockSize,
                                          count: type.blockSize)
                }
            }
            return
        }
        // Types are validated when the model is loaded; a failure here is a programmer error.
        try! Quant.dequantize(type, from: row(r), to: out, count: cols)
    }
}

/// A lazily built alternative layout of one weight matrix (e.g. the AVX-512 kernels' 8-row
/// panels), built once under a lock by the first caller.
public final class PackedCache: @unchecked Sendable {
    private let lock = NSLock()
    private var layout: AnyObject?

    public init() {}

    /// The layout built so far, if any.
    public var current: AnyObject? {
        lock.lock(); defer { lock.unlock() }
        return layout
    }

    public func value<T: AnyObject>(_ make: () -> T) -> T {
        lock.lock(); defer { lock.unlock() }
        if let existing = layout as? T { return existing }
        let made = make()
        layout = made
        return made
    }
}

public enum Matmul {
    /// y[t, r] = Σ_i W[r, i] · x[t, i] for t in 0..<tokens, on the reference path.
    public static func reference(_ w: WeightMatrix, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                 tokens: Int, pool: ThreadPool) {
        let cols = w.cols, rows = w.rows
        let xs = UnsafeSendable(x), ys = UnsafeSendable(y)
        pool.parallelFor(rows) { range in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: cols)
            defer { scratch.deallocate() }
            for r in range {
                w.dequantizeRow(r, into: scratch)
                for t in 0..<tokens {
                    ys.pointer[t * rows + r] = dot(scratch, xs.pointer + t * cols, cols)
                }
            }
        }
    }

    /// Σ a[i]·b[i] with 16 independent float lanes (the order differs from a scalar loop by rounding only).
    @inlinable
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 32 <= n {
            acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            acc1 += ra.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD16<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD16<Float>.self)
            i += 32
        }
        var sum = (acc0 + acc1).sum()
        while i < n { sum += a[i] * b[i]; i += 1 }
        return sum
    }
}

/// Carries a raw pointer into a `@Sendable`-checked closure; the caller guarantees disjoint use.
public struct UnsafeSendable<T>: @unchecked Sendable {
    public let pointer: T
    @inlinable public init(_ pointer: T) { self.pointer = pointer }
}
