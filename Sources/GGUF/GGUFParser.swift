// GGUF byte-level parser: validates one GGUF file (one split part) held in memory (normally a
// read-only mmap) and returns its metadata and tensor index. Follows ggml docs/gguf.md (v3).
//
// Byte layout (all integers little-endian; offsets in bytes from the start of the file):
//
//   0   u32   magic        "GGUF" = 0x47 0x47 0x55 0x46 (0x46554747 read as LE u32)
//   4   u32   version      2 or 3 (v1, which used u32 counts, is rejected; v3 only added big-endian
//                          files, which are not read here; a byte-swapped version reads as ≥ 2^24)
//   8   u64   tensor_count
//   16  u64   metadata_kv_count
//   24  metadata_kv_count × key/value:
//         string key            string = u64 length + UTF-8 bytes (no terminator)
//         u32    value_type     GGUFValueType: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32,
//                               7 bool (1 byte), 8 string, 9 array, 10 u64, 11 i64, 12 f64
//         value                 fixed-size scalar | string |
//                               array = u32 element type + u64 count + count × element
//                               (arrays may nest: an element type of 9 holds further arrays)
//       tensor_count × tensor info:
//         string name
//         u32    n_dims         1...4
//         u64    ne[n_dims]     ne[0] is the contiguous dimension; ne[0] % block size == 0
//         u32    type           GGMLType raw value
//         u64    offset         relative to the data section; a multiple of the alignment
//   padding to a multiple of `general.alignment` (a u32 key, default 32, a power of two)
//   data section: tensor bytes at data_start + offset, each followed by padding to the alignment
//
// Every count read from the file is bounded by the bytes left before anything is allocated,
// all size arithmetic is overflow-checked, and every error names the offset of the field at fault.
import Core
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The default `general.alignment`.
public let ggufDefaultAlignment = 32
let ggufMagic: UInt32 = 0x4655_4747
/// Nested arrays deeper than this are rejected (keeps the recursive parser's stack bounded).
let ggufMaxArrayDepth = 16

/// One parsed file (one split part).
struct GGUFParsedPart {
    var version: UInt32 = 0
    var alignment = ggufDefaultAlignment
    var metadata: [String: GGUFValue] = [:]
    var metadataKeys: [String] = []
    /// Offset of each key's value type field (for error messages about values).
    var valueOffsets: [String: Int] = [:]
    var tensors: [GGUFTensorInfo] = []
    /// Offset of each tensor's info record.
    var tensorInfoOffsets: [Int] = []
    /// Absolute offset of the data section.
    var dataOffset = 0
}

struct GGUFParser {
    let bytes: UnsafeRawBufferPointer
    let fileIndex: Int
    var pos = 0

    init(bytes: UnsafeRawBufferPointer, fileIndex: Int) {
        self.bytes = bytes
        self.fileIndex = fileIndex
    }

    var left: Int { bytes.count - pos }

    // MARK: - Primitive reads

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        if n > left { throw GGUFError.truncated(offset: pos, needed: n, available: left, what: what()) }
    }

    // Non-generic loads (memcpy): unspecialized generics dominate parse time in debug builds.
    @inline(__always)
    func u8(at offset: Int) -> UInt8 { bytes[offset] }

    @inline(__always)
    func u16(at offset: Int) -> UInt16 {
        var v: UInt16 = 0
        withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 2)])) }
        return UInt16(littleEndian: v)
    }

    @inline(__always)
    func u32(at offset: Int) -> UInt32 {
        var v: UInt32 = 0
        if let base = bytes.baseAddress { memcpy(&v, base + offset, 4) }
        return UInt32(littleEndian: v)
    }

    @inline(__always)
    func u64(at offset: Int) -> UInt64 {
        var v: UInt64 = 0
        if let base = bytes.baseAddress { memcpy(&v, base + offset, 8) }
        return UInt64(littleEndian: v)
    }

    mutating func readU8(_ what: @autoclosure () -> String) throws -> UInt8 {
        try need(1, what())
        defer { pos += 1 }
        return u8(at: pos)
    }

    mutating func readU16(_ what: @autoclosure () -> String) throws -> UInt16 {
        try need(2, what())
        defer { pos += 2 }
        return u16(at: pos)
    }

    mutating func readU32(_ what: @autoclosure () -> String) throws -> UInt32 {
        try need(4, what())
        defer { pos += 4 }
        return u32(at: pos)
    }

    mutating func readU64(_ what: @autoclosure () -> String) throws -> UInt64 {
        try need(8, what())
        defer { pos += 8 }
        return u64(at: pos)
    }

    /// A u64 count whose elements take at least `minimumSize` bytes each.
    mutating func count(_ what: String, minimumSize: Int) throws -> Int {
        let at = pos
        let n = try readU64(what)
        guard n <= UInt64(left / max(minimumSize, 1)) else {
            throw GGUFError.absurdCount(offset: at, what: what, count: n, bytesLeft: left)
        }
        return Int(n)
    }

    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let at = pos
        let n = try readU64(what() + " length")
        guard n <= UInt64(left) else {
            if n > UInt64(bytes.count) {
                throw GGUFError.absurdCount(offset: at, what: what() + " length", count: n, bytesLeft: left)
            }
            throw GGUFError.truncated(offset: pos, needed: Int(n), available: left, what: what())
        }
        let len = Int(n)
        if len == 0 { return "" }
        guard let base = bytes.baseAddress else { return "" }
        let utf8 = UnsafeBufferPointer(start: (base + pos).assumingMemoryBound(to: UInt8.self), count: len)
        guard let s = Self.makeString(utf8) else { throw GGUFError.invalidUTF8(offset: pos, what: what()) }
        pos += len
        return s
    }

    /// A String from UTF-8 bytes, nil if invalid. ASCII (most vocabulary entries) takes a fast path.
    static func makeString(_ utf8: UnsafeBufferPointer<UInt8>) -> String? {
        var ascii = true
        if let p = utf8.baseAddress {
            // 8 bytes at a time, then the tail.
            var i = 0
            let n = utf8.count
            while i + 8 <= n {
                var w: UInt64 = 0
                memcpy(&w, p + i, 8)
                if w & 0x8080_8080_8080_8080 != 0 { ascii = false; break }
                i += 8
            }
            while ascii && i < n {
                if p[i] >= 0x80 { ascii = false }
                i += 1
            }
        }
        return ascii ? String(decoding: utf8, as: UTF8.self) : String(validating: utf8, as: UTF8.self)
    }

    // MARK: - Values

    mutating func valueType() throws -> GGUFValueType {
        let at = pos
        let raw = try readU32("value type")
        guard let t = GGUFValueType(rawValue: raw) else { throw GGUFError.unknownValueType(offset: at, raw: raw) }
        return t
    }

    mutating func value(_ type: GGUFValueType, depth: Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try readU8("u8 value"))
        case .int8: return .int8(try Int8(bitPattern: readU8("i8 value")))
        case .uint16: return .uint16(try readU16("u16 value"))
        case .int16: return .int16(try Int16(bitPattern: readU16("i16 value")))
        case .uint32: return .uint32(try readU32("u32 value"))
        case .int32: return .int32(try Int32(bitPattern: readU32("i32 value")))
        case .float32: return .float32(Float(bitPattern: try readU32("f32 value")))
        case .bool: return .bool(try readU8("bool value") != 0)
        case .string: return .string(try string("string value"))
        case .uint64: return .uint64(try readU64("u64 value"))
        case .int64: return .int64(try Int64(bitPattern: readU64("i64 value")))
        case .float64: return .float64(Double(bitPattern: try readU64("f64 value")))
        case .array: return try array(depth: depth + 1)
        }
    }

    mutating func array(depth: Int) throws -> GGUFValue {
        let at = pos
        if depth > ggufMaxArrayDepth { throw GGUFError.nestingTooDeep(offset: at, depth: ggufMaxArrayDepth) }
        let elementType = try valueType()
        let n = try count("array count", minimumSize: elementType.minimumEncodedSize)
        var out: [GGUFValue] = []
        out.reserveCapacity(n)
        // Fixed-size elements: one bounds check for the whole array (already done by `count`).
        if let size = elementType.fixedSize {
            var p = pos
            switch elementType {
            case .uint8: for _ in 0..<n { out.append(.uint8(u8(at: p))); p += size }
            case .int8: for _ in 0..<n { out.append(.int8(Int8(bitPattern: u8(at: p)))); p += size }
            case .uint16: for _ in 0..<n { out.append(.uint16(u16(at: p))); p += size }
            case .int16: for _ in 0..<n { out.append(.int16(Int16(bitPattern: u16(at: p)))); p += size }
            case .uint32: for _ in 0..<n { out.append(.uint32(u32(at: p))); p += size }
            case .int32: for _ in 0..<n { out.append(.int32(Int32(bitPattern: u32(at: p)))); p += size }
            case .float32:
                for _ in 0..<n { out.append(.float32(Float(bitPattern: u32(at: p)))); p += size }
            case .bool: for _ in 0..<n { out.append(.bool(u8(at: p) != 0)); p += size }
            case .uint64: for _ in 0..<n { out.append(.uint64(u64(at: p))); p += size }
            case .int64: for _ in 0..<n { out.append(.int64(Int64(bitPattern: u64(at: p)))); p += size }
            case .float64:
                for _ in 0..<n { out.append(.float64(Double(bitPattern: u64(at: p)))); p += size }
            case .string, .array: break
            }
            pos = p
        } else if elementType == .string {
            for _ in 0..<n { out.append(.string(try string("string value"))) }
        } else {
            for _ in 0..<n { out.append(try value(elementType, depth: depth)) }
        }
        return .array(elementType, out)
    }

    // MARK: - File

    mutating func parse() throws -> GGUFParsedPart {
        var part = GGUFParsedPart()

        // Header.
        let magic = try readU32("magic")
        guard magic == ggufMagic else { throw GGUFError.badMagic(offset: 0, found: magic) }
        part.version = try readU32("version")
        guard part.version == 2 || part.version == 3 else {
            throw GGUFError.unsupportedVersion(offset: 4, version: part.version)
        }
        // A tensor info takes at least 8 (name length) + 4 + 8 (one dim) + 4 + 8 = 32 bytes,
        // a key/value at least 8 (key length) + 4 (type) + 1 = 13 bytes.
        let tensorCountOffset = pos
        let rawTensorCount = try readU64("tensor count")
        let kvCount = try count("metadata key/value count", minimumSize: 13)
        guard rawTensorCount <= UInt64(left / 32) else {
            throw GGUFError.absurdCount(offset: tensorCountOffset, what: "tensor count", count: rawTensorCount, bytesLeft: left)
        }
        let tensorCount = Int(rawTensorCount)

        // Metadata.
        part.metadata.reserveCapacity(kvCount)
        part.metadataKeys.reserveCapacity(kvCount)
        for _ in 0..<kvCount {
            let keyOffset = pos
            let key = try string("metadata key")
            if part.metadata[key] != nil { throw GGUFError.duplicateKey(offset: keyOffset, key: key) }
            part.valueOffsets[key] = pos
            let t = try valueType()
            part.metadata[key] = try value(t, depth: 0)
            part.metadataKeys.append(key)
        }
        if let a = part.metadata[GGUFKey.alignment.template] {
            let at = part.valueOffsets[GGUFKey.alignment.template] ?? 0
            guard let v = a.int else {
                throw GGUFError.wrongKeyType(offset: at, key: GGUFKey.alignment.template, expected: "an integer", found: a.type)
            }
            guard v > 0, v & (v - 1) == 0 else { throw GGUFError.invalidAlignment(offset: at, value: v) }
            part.alignment = v
        }

        // Tensor infos.
        var names = Set<String>()
        var relativeOffsets: [UInt64] = []
        var offsetFieldOffsets: [Int] = []
        part.tensors.reserveCapacity(tensorCount)
        for _ in 0..<tensorCount {
            let infoOffset = pos
            let name = try string("tensor name")
            if names.contains(name) { throw GGUFError.duplicateTensor(offset: infoOffset, name: name) }
            names.insert(name)
            let nDimsOffset = pos
            let nDims = try readU32("tensor dimension count")
            guard (1...4).contains(nDims) else {
                throw GGUFError.invalidDimensionCount(offset: nDimsOffset, tensor: name, count: nDims)
            }
            var shape: [Int] = []
            shape.reserveCapacity(Int(nDims))
            var elements = 1
            for i in 0..<Int(nDims) {
                let at = pos
                let d = try readU64("tensor dimension")
                guard d >= 1, d <= UInt64(Int64.max) else {
                    throw GGUFError.invalidDimension(offset: at, tensor: name, index: i, value: d)
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                if overflow { throw GGUFError.shapeOverflow(offset: at, tensor: name) }
                elements = product
                shape.append(Int(d))
            }
            let typeOffset = pos
            let rawType = try readU32("tensor type")
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError.unknownTensorType(offset: typeOffset, tensor: name, raw: rawType)
            }
            guard shape[0] % type.blockSize == 0 else {
                throw GGUFError.notBlockMultiple(offset: nDimsOffset + 4, tensor: name, type: type, ne0: shape[0])
            }
            let (byteCount, overflow) = (elements / type.blockSize).multipliedReportingOverflow(by: type.typeSize)
            if overflow { throw GGUFError.shapeOverflow(offset: typeOffset, tensor: name) }
            let offsetField = pos
            let relative = try readU64("tensor data offset")
            guard relative % UInt64(part.alignment) == 0 else {
                throw GGUFError.misalignedTensor(offset: offsetField, tensor: name, dataOffset: relative, alignment: part.alignment)
            }
            relativeOffsets.append(relative)
            offsetFieldOffsets.append(offsetField)
            part.tensorInfoOffsets.append(infoOffset)
            part.tensors.append(GGUFTensorInfo(name: name, type: type, shape: shape, elementCount: elements,
                                               byteCount: byteCount, fileIndex: fileIndex, offset: 0))
        }

        // Data section: starts at the next multiple of the alignment (pos ≤ file size, no overflow).
        let padding = (part.alignment - pos % part.alignment) % part.alignment
        part.dataOffset = pos + padding
        let fileSize = UInt64(bytes.count)
        for i in part.tensors.indices {
            let (start, o1) = UInt64(part.dataOffset).addingReportingOverflow(relativeOffsets[i])
            let (end, o2) = start.addingReportingOverflow(UInt64(part.tensors[i].byteCount))
            guard !o1, !o2, end <= fileSize else {
                throw GGUFError.tensorOutOfBounds(offset: offsetFieldOffsets[i], tensor: part.tensors[i].name,
                                                  end: o1 || o2 ? UInt64.max : end, fileSize: bytes.count)
            }
            let t = part.tensors[i]
            part.tensors[i] = GGUFTensorInfo(name: t.name, type: t.type, shape: t.shape, elementCount: t.elementCount,
                                             byteCount: t.byteCount, fileIndex: t.fileIndex, offset: Int(start))
        }
        // Overlaps: walk the tensors by start offset, keeping the furthest end seen so far.
        let order = part.tensors.indices.sorted { part.tensors[$0].offset < part.tensors[$1].offset }
        var furthest: (end: Int, index: Int)? = nil
        for i in order {
            let t = part.tensors[i]
            let end = t.offset + t.byteCount
            if let f = furthest {
                if t.offset < f.end {
                    throw GGUFError.overlappingTensors(offset: offsetFieldOffsets[i], first: part.tensors[f.index].name, second: t.name)
                }
                if end > f.end { furthest = (end, i) }
            } else {
                furthest = (end, i)
            }
        }
        return part
    }
}
