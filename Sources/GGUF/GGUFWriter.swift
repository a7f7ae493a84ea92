// GGUFWriter: builds GGUF v3 files (layout in GGUFParser.swift) for test fixtures and synthetic
// models. Metadata keeps insertion order (setting an existing key replaces it in place); tensor
// data is laid out in insertion order, each tensor at a multiple of the alignment.
import Core
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct GGUFWriter: Sendable {
    public let alignment: Int
    public private(set) var keys: [String] = []
    public private(set) var values: [String: GGUFValue] = [:]
    private var tensors: [(name: String, type: GGMLType, shape: [Int], data: [UInt8])] = []

    /// `alignment` must be a power of two; other than 32 it is written as `general.alignment`.
    public init(alignment: Int = ggufDefaultAlignment) {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "alignment must be a power of two")
        self.alignment = alignment
        if alignment != ggufDefaultAlignment { set(GGUFKey.alignment.template, .uint32(UInt32(alignment))) }
    }

    public mutating func set(_ key: String, _ value: GGUFValue) {
        if values[key] == nil { keys.append(key) }
        values[key] = value
    }

    /// Sets a table key; "{arch}" keys need `architecture`.
    public mutating func set(_ key: GGUFKey, _ value: GGUFValue, architecture: String = "") {
        set(key.resolved(architecture: architecture), value)
    }

    public mutating func addTensor(name: String, type: GGMLType, shape: [Int], data: [UInt8]) throws {
        guard !tensors.contains(where: { $0.name == name }) else {
            throw GGUFError.invalidWriterInput("duplicate tensor '\(name)'")
        }
        guard (1...4).contains(shape.count), shape.allSatisfy({ $0 > 0 }) else {
            throw GGUFError.invalidWriterInput("tensor '\(name)': shape \(shape) needs 1...4 positive dimensions")
        }
        guard shape[0] % type.blockSize == 0 else {
            throw GGUFError.invalidWriterInput("tensor '\(name)': ne0 \(shape[0]) is not a multiple of \(type)'s block size \(type.blockSize)")
        }
        var elements = 1
        for d in shape {
            let (p, o) = elements.multipliedReportingOverflow(by: d)
            guard !o else { throw GGUFError.invalidWriterInput("tensor '\(name)': shape \(shape) overflows") }
            elements = p
        }
        let bytes = type.byteCount(elements: elements)
        guard data.count == bytes else {
            throw GGUFError.invalidWriterInput("tensor '\(name)': \(data.count) data bytes, \(type) \(shape) needs \(bytes)")
        }
        tensors.append((name, type, shape, data))
    }

    // MARK: - Encoding

    /// The whole file in memory.
    public func serialized() throws -> [UInt8] {
        var out = try header()
        for t in tensors {
            out.append(contentsOf: t.data)
            out.append(contentsOf: repeatElement(0, count: padded(t.data.count) - t.data.count))
        }
        return out
    }

    /// Everything before the tensor data (header, metadata, tensor infos, padding to the
    /// alignment); the data follows tensor by tensor, each padded to the alignment.
    private func header() throws -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); out.append(contentsOf: s.utf8) }
        func value(_ v: GGUFValue) throws {
            switch v {
            case let .uint8(x): out.append(x)
            case let .int8(x): out.append(UInt8(bitPattern: x))
            case let .uint16(x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case let .int16(x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case let .uint32(x): u32(x)
            case let .int32(x): u32(UInt32(bitPattern: x))
            case let .float32(x): u32(x.bitPattern)
            case let .bool(x): out.append(x ? 1 : 0)
            case let .string(s): str(s)
            case let .uint64(x): u64(x)
            case let .int64(x): u64(UInt64(bitPattern: x))
            case let .float64(x): u64(x.bitPattern)
            case let .array(t, elements):
                u32(t.rawValue)
                u64(UInt64(elements.count))
                for e in elements {
                    guard e.type == t else {
                        throw GGUFError.invalidWriterInput("array of \(t) holds a \(e.type) element")
                    }
                    try value(e)
                }
            }
        }

        u32(ggufMagic)
        u32(3)
        u64(UInt64(tensors.count))
        u64(UInt64(keys.count))
        for k in keys {
            guard let v = values[k] else { continue }
            str(k)
            u32(v.type.rawValue)
            try value(v)
        }
        var relative = 0
        for t in tensors {
            str(t.name)
            u32(UInt32(t.shape.count))
            for d in t.shape { u64(UInt64(d)) }
            u32(t.type.rawValue)
            u64(UInt64(relative))
            relative += padded(t.data.count)
        }
        out.append(contentsOf: repeatElement(0, count: padded(out.count) - out.count))
        return out
    }

    private func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// Writes the file tensor by tensor (no second copy of the data in memory: synthetic models
    /// of tens of GB are written from the arrays they were built in).
    public func write(to path: String) throws {
        guard let f = fopen(path, "wb") else {
            throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        defer { fclose(f) }
        func put(_ bytes: [UInt8]) throws {
            let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
            guard written == bytes.count else {
                throw GGUFError.cannotOpen(path: path, reason: "short write: " + String(cString: strerror(errno)))
            }
        }
        try put(try header())
        for t in tensors {
            try put(t.data)
            let pad = padded(t.data.count) - t.data.count
            if pad > 0 { try put([UInt8](repeating: 0, count: pad)) }
        }
    }
}
