// Weight matrices repacked at load for the SIMD matmul kernels (CPUKernelsAVX2, CPUKernelsAVX512):
// panels of 8 rows whose blocks are regrouped so that one panel is one sequential stream and the
// eight rows' scales are one vector load. The bytes are the GGUF rows' (q6_K's six-bit values
// are widened to one byte each); the kernels that read these layouts live in the SIMD targets,
// the packing is plain Swift so that every target can share it.

/// A weight matrix repacked for the SIMD kernels (AVX2 and AVX-512): panels of 8 rows (the last
/// panel padded with copies of the last row), each a sequence of "block octets", one per block
/// of columns. For the 32-element types:
///
///   d[8] (f16)  ·  m[8] (f16, q4_1/q5_1)  ·  qh[8] (u32, q5_0/q5_1)  ·  quants of rows (0,1) (2,3) (4,5) (6,7)
///
/// where a row pair's quants are row A's then row B's (16 nibble bytes each, or 32 int8 for
/// q8_0). The same bytes as the GGUF rows, regrouped so that one panel reads one sequential
/// stream and the eight scales are one vector load. q4_K and q6_K: see `KQuantLayout`.
public final class PackedPanels: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    /// Bytes per block octet and per panel.
    public let octetBytes: Int
    public let panelBytes: Int
    public let data: UnsafeMutableRawPointer

    deinit { data.deallocate() }

    /// The types with a packed layout.
    public static func supports(_ type: GGMLType) -> Bool {
        switch type {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q6_K: return true
        default: return false
        }
    }

    /// Repacks `rows` GGUF rows of `type` (one of `supports`).
    public init(type: GGMLType, rows: Int, cols: Int, weights: UnsafeRawPointer, rowBytes: Int) {
        precondition(PackedPanels.supports(type), "no packed layout for \(type)")
        self.type = type; self.rows = rows; self.cols = cols
        let panels = (rows + 7) / 8
        func row(_ panel: Int, _ i: Int) -> UnsafeRawPointer { weights + min(panel * 8 + i, rows - 1) * rowBytes }
        if type == .q6_K || type == .q4_K {
            octetBytes = type == .q6_K ? KQuantLayout.q6Octet : KQuantLayout.q4Octet
            let blocks = cols / 256, blockBytes = type.typeSize
            panelBytes = blocks * octetBytes
            data = .allocate(byteCount: max(1, panels * panelBytes), alignment: 4096)
            for panel in 0..<panels {
                for b in 0..<blocks {
                    let o = data + panel * panelBytes + b * octetBytes
                    if type == .q6_K {
                        KQuantLayout.packQ6K(o) { row(panel, $0) + b * blockBytes }
                    } else {
                        KQuantLayout.packQ4K(o) { row(panel, $0) + b * blockBytes }
                    }
                }
            }
            return
        }
        let layout = PackedLayout(type)
        octetBytes = layout.octetBytes
        let blocks = cols / 32
        panelBytes = blocks * octetBytes
        data = .allocate(byteCount: max(1, panels * panelBytes), alignment: 4096)
        for panel in 0..<panels {
            for b in 0..<blocks {
                let o = data + panel * panelBytes + b * octetBytes
                for i in 0..<8 {
                    let src = row(panel, i) + b * layout.blockBytes
                    o.storeBytes(of: src.loadUnaligned(as: UInt16.self), toByteOffset: 2 * i, as: UInt16.self)
                    if layout.hasMin {
                        o.storeBytes(of: src.loadUnaligned(fromByteOffset: 2, as: UInt16.self), toByteOffset: 16 + 2 * i, as: UInt16.self)
                    }
                    if let qh = layout.qhSource {
                        o.storeBytes(of: src.loadUnaligned(fromByteOffset: qh, as: UInt32.self),
                                     toByteOffset: layout.qhOffset + 4 * i, as: UInt32.self)
                    }
                    (o + layout.quantsOffset + i * layout.quantBytes).copyMemory(from: src + layout.quantSource,
                                                                                 byteCount: layout.quantBytes)
                }
            }
        }
    }
}

extension PackedPanels {
    /// Whether `rebuildBlock` can restore GGUF blocks (the 32-element types).
    public var canRebuildBlocks: Bool { type != .q4_K && type != .q6_K }

    /// Writes block `b` of row `r` in its GGUF bytes to `dst` (`type.typeSize` bytes): the
    /// packing undone.
    public func rebuildBlock(row r: Int, block b: Int, into dst: UnsafeMutableRawPointer) {
        precondition(canRebuildBlocks && r >= 0 && r < rows, "row \(r) of \(rows) \(type) rows")
        let layout = PackedLayout(type)
        let i = r % 8, o = UnsafeRawPointer(data + (r / 8) * panelBytes + b * octetBytes)
        dst.storeBytes(of: o.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self), as: UInt16.self)
        if layout.hasMin {
            dst.storeBytes(of: o.loadUnaligned(fromByteOffset: 16 + 2 * i, as: UInt16.self), toByteOffset: 2, as: UInt16.self)
        }
        if let qh = layout.qhSource {
            dst.storeBytes(of: o.loadUnaligned(fromByteOffset: layout.qhOffset + 4 * i, as: UInt32.self), toByteOffset: qh, as: UInt32.self)
        }
        (dst + layout.quantSource).copyMemory(from: o + layout.quantsOffset + i * layout.quantBytes, byteCount: layout.quantBytes)
    }
}

/// Where a block's parts are in the GGUF block and in the packed octet.
public struct PackedLayout {
    public let blockBytes: Int, hasMin: Bool
    /// Byte offset of qh in the GGUF block (q5 types).
    public let qhSource: Int?
    public let quantSource: Int, quantBytes: Int
    public var qhOffset: Int { hasMin ? 32 : 16 }
    public var quantsOffset: Int { qhOffset + (qhSource == nil ? 0 : 32) }
    public var octetBytes: Int { quantsOffset + 8 * quantBytes }

    public init(_ type: GGMLType) {
        switch type {
        case .q4_0: (blockBytes, hasMin, qhSource, quantSource, quantBytes) = (18, false, nil, 2, 16)
        case .q4_1: (blockBytes, hasMin, qhSource, quantSource, quantBytes) = (20, true, nil, 4, 16)
        case .q5_0: (blockBytes, hasMin, qhSource, quantSource, quantBytes) = (22, false, 2, 6, 16)
        case .q5_1: (blockBytes, hasMin, qhSource, quantSource, quantBytes) = (24, true, 4, 8, 16)
        default: (blockBytes, hasMin, qhSource, quantSource, quantBytes) = (34, false, nil, 2, 32)  // q8_0
        }
    }
}

/// q4_K and q6_K in the AVX-512 kernels' layout: one "octet" per 8 rows × 256 columns, rows in pairs.
///   q6_K  d[8] f16 · scales[8][16] i8 · for each group g of 32 elements and row pair p:
///         row A's 32 six-bit values then row B's (unsigned bytes 0…63)          = 2192 bytes
///   q4_K  d[8] f16 · dmin[8] f16 · scales[8 sub-blocks][8 rows] u8 · mins[8][8] u8 · for each chunk c of 64
///         elements and row pair p: row A's 32 nibble bytes then row B's        = 1184 bytes
public enum KQuantLayout {
    public static let q6Octet = 16 + 128 + 8 * 4 * 64
    public static let q4Octet = 16 + 16 + 64 + 64 + 4 * 4 * 64

    /// Packs one 8-row octet of q6_K superblock `b` from rows `src(i)`.
    public static func packQ6K(_ o: UnsafeMutableRawPointer, _ src: (Int) -> UnsafeRawPointer) {
        for i in 0..<8 {
            let blk = src(i)
            o.storeBytes(of: blk.loadUnaligned(fromByteOffset: 208, as: UInt16.self), toByteOffset: 2 * i, as: UInt16.self)
            (o + 16 + 16 * i).copyMemory(from: blk + 192, byteCount: 16)
            var q = [UInt8](repeating: 0, count: 256)
            q6Values(blk, into: &q)
            let pair = i / 2, side = i % 2
            for g in 0..<8 {
                let dst = o + 144 + (g * 4 + pair) * 64 + side * 32
                q.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress! + 32 * g, byteCount: 32) }
            }
        }
    }

    /// The 256 six-bit values (0…63, element order) of the q6_K block at `blk`.
    public static func q6Values(_ blk: UnsafeRawPointer, into q: inout [UInt8]) {
        for half in 0..<2 {
            for l in 0..<32 {
                let l0 = blk.load(fromByteOffset: 64 * half + l, as: UInt8.self)
                let l1 = blk.load(fromByteOffset: 64 * half + l + 32, as: UInt8.self)
                let h = blk.load(fromByteOffset: 128 + 32 * half + l, as: UInt8.self)
                q[128 * half + l] = l0 & 0xF | (h & 3) << 4
                q[128 * half + l + 32] = l1 & 0xF | ((h >> 2) & 3) << 4
                q[128 * half + l + 64] = l0 >> 4 | ((h >> 4) & 3) << 4
                q[128 * half + l + 96] = l1 >> 4 | ((h >> 6) & 3) << 4
            }
        }
    }

    /// Packs one 8-row octet of q4_K superblock `b` from rows `src(i)`.
    public static func packQ4K(_ o: UnsafeMutableRawPointer, _ src: (Int) -> UnsafeRawPointer) {
        for i in 0..<8 {
            let blk = src(i)
            o.storeBytes(of: blk.loadUnaligned(as: UInt16.self), toByteOffset: 2 * i, as: UInt16.self)
            o.storeBytes(of: blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self), toByteOffset: 16 + 2 * i, as: UInt16.self)
            for j in 0..<8 {
                let (sc, m) = QuantK.scaleMin(blk, 4, j)
                o.storeBytes(of: sc, toByteOffset: 32 + 8 * j + i, as: UInt8.self)
                o.storeBytes(of: m, toByteOffset: 96 + 8 * j + i, as: UInt8.self)
            }
            let pair = i / 2, side = i % 2
            for c in 0..<4 {
                (o + 160 + (c * 4 + pair) * 64 + side * 32).copyMemory(from: blk + 16 + 32 * c, byteCount: 32)
            }
        }
    }

}

/// q4_K and q6_K repacked with the rows of a panel in the lanes of a vector (the AVX2 kernels):
/// panels of 8 rows (the last padded with copies of the last row), one octet per 256 columns in
/// which every 4 consecutive elements of the 8 rows are one 32-byte group — row r's bytes at 4r —
/// so that one `vpmaddubsw` against 4 broadcast activation bytes gives each row's pair sums in
/// its own lanes. Integer sums per row then need no horizontal reduction.
///
///   q4_K  d[8] f16 · dmin[8] f16 · scales[8 sub-blocks][8 rows] u8 · mins[8][8] u8 ·
///         for chunk c (64 elements) and group k (0…7): rows' GGUF qs bytes 32c+4k…32c+4k+3
///         (low nibble: element 64c+4k+i, high nibble: element 64c+32+4k+i)       = 1184 bytes
///   q6_K  d[8] f16 · scales[16 sub-blocks][8 rows] i8 · for group g (32 elements) and k (0…7):
///         the rows' six-bit values of elements 32g+4k…32g+4k+3 as bytes 0…63        = 2192 bytes
public final class KQuantLanePanels: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let octetBytes: Int
    public let panelBytes: Int
    public let data: UnsafeMutableRawPointer

    deinit { data.deallocate() }

    public static let q4Octet = 16 + 16 + 64 + 64 + 1024
    public static let q6Octet = 16 + 128 + 2048

    public static func supports(_ type: GGMLType) -> Bool { type == .q4_K || type == .q6_K }

    public init(type: GGMLType, rows: Int, cols: Int, weights: UnsafeRawPointer, rowBytes: Int) {
        precondition(KQuantLanePanels.supports(type), "no lane layout for \(type)")
        self.type = type; self.rows = rows; self.cols = cols
        octetBytes = type == .q4_K ? KQuantLanePanels.q4Octet : KQuantLanePanels.q6Octet
        let panels = (rows + 7) / 8, blocks = cols / 256, blockBytes = type.typeSize
        panelBytes = blocks * octetBytes
        data = .allocate(byteCount: max(1, panels * panelBytes), alignment: 4096)
        var values = [UInt8](repeating: 0, count: 256)
        for panel in 0..<panels {
            for b in 0..<blocks {
                let o = data + panel * panelBytes + b * octetBytes
                for r in 0..<8 {
                    let blk = weights + min(panel * 8 + r, rows - 1) * rowBytes + b * blockBytes
                    if type == .q4_K {
                        o.storeBytes(of: blk.loadUnaligned(as: UInt16.self), toByteOffset: 2 * r, as: UInt16.self)
                        o.storeBytes(of: blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self), toByteOffset: 16 + 2 * r, as: UInt16.self)
                        for j in 0..<8 {
                            let (sc, m) = QuantK.scaleMin(blk, 4, j)
                            o.storeBytes(of: sc, toByteOffset: 32 + 8 * j + r, as: UInt8.self)
                            o.storeBytes(of: m, toByteOffset: 96 + 8 * j + r, as: UInt8.self)
                        }
                        for c in 0..<4 {
                            for k in 0..<8 {
                                (o + 160 + (8 * c + k) * 32 + 4 * r).copyMemory(from: blk + 16 + 32 * c + 4 * k, byteCount: 4)
                            }
                        }
                    } else {
                        o.storeBytes(of: blk.loadUnaligned(fromByteOffset: 208, as: UInt16.self), toByteOffset: 2 * r, as: UInt16.self)
                        for s in 0..<16 { o.storeBytes(of: blk.load(fromByteOffset: 192 + s, as: UInt8.self), toByteOffset: 16 + 8 * s + r, as: UInt8.self) }
                        KQuantLayout.q6Values(blk, into: &values)
                        for g in 0..<8 {
                            for k in 0..<8 {
                                for i in 0..<4 {
                                    o.storeBytes(of: values[32 * g + 4 * k + i], toByteOffset: 144 + (8 * g + k) * 32 + 4 * r + i, as: UInt8.self)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
