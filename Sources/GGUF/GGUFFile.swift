// GGUFFile: a GGUF model opened by memory-mapping its file(s) read-only (MAP_PRIVATE). Metadata
// and the tensor index are parsed and validated once (GGUFParser.swift documents the byte layout);
// tensor data is never copied: `data(for:)` returns a view into the mapping.
//
// Split models (llama.cpp `gguf-split`): parts are named `NAME-00001-of-0000N.gguf`; opening the
// first part opens all N as one model. Every part carries `split.no` (0-based) and `split.count`;
// the first holds the model's metadata and `split.tensors.count`. Tensors keep the index of their
// part (`fileIndex`) and their absolute offset inside it.
import Core
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Tensor info

/// One tensor of the index. Shapes are in ggml order: `shape[0]` (ne0) is the contiguous dimension.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let type: GGMLType
    /// [ne0, ne1, …]; ne0 is contiguous.
    public let shape: [Int]
    public let elementCount: Int
    public let byteCount: Int
    /// Which split part holds the data (0 for single files).
    public let fileIndex: Int
    /// Absolute byte offset of the data inside its part.
    public let offset: Int

    public init(name: String, type: GGMLType, shape: [Int], elementCount: Int, byteCount: Int, fileIndex: Int, offset: Int) {
        self.name = name
        self.type = type
        self.shape = shape
        self.elementCount = elementCount
        self.byteCount = byteCount
        self.fileIndex = fileIndex
        self.offset = offset
    }

    /// Rows of ne0 elements (the product of all dimensions but the first).
    public var rowCount: Int { shape.isEmpty ? 0 : elementCount / shape[0] }
    /// Bytes of one row.
    public var rowByteCount: Int { type.byteCount(elements: shape.first ?? 0) }
}

// MARK: - Mapping

/// A read-only private mapping of a whole file, unmapped on deinit.
final class GGUFMapping: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    private let owned: Bool
    var isOwnedMapping: Bool { owned || bytes.count == 0 }

    /// Wraps memory owned by the caller (tests, fuzzing).
    init(borrowing bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        owned = false
    }

    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw GGUFError.cannotOpen(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            owned = false
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw GGUFError.cannotOpen(path: path, reason: "mmap: " + String(cString: strerror(errno)))
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
        owned = true
    }

    deinit {
        if owned, let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

// MARK: - File

public final class GGUFFile: @unchecked Sendable {
    /// The path given to `open` (the first part of a split model).
    public let path: String
    /// All part paths, in order (one entry for single files).
    public let partPaths: [String]
    public let version: UInt32
    public let alignment: Int
    public let metadata: [String: GGUFValue]
    /// Keys in file order.
    public let metadataKeys: [String]
    /// Tensors in file order, all parts.
    public let tensors: [GGUFTensorInfo]
    /// Absolute offset of each part's data section.
    public let dataOffsets: [Int]
    private let mappings: [GGUFMapping]
    private let tensorIndex: [String: Int]

    /// Byte size of each part.
    public var fileSizes: [Int] { mappings.map(\.bytes.count) }
    /// Total bytes of all parts.
    public var totalFileSize: Int { fileSizes.reduce(0, +) }
    /// Whether every part is a read-only private file mapping (not caller-owned memory): its
    /// pages may then be dropped with MADV_DONTNEED and fault back in from the file.
    public var isFileMapped: Bool { mappings.allSatisfy(\.isOwnedMapping) }

    private init(path: String, partPaths: [String], parts: [GGUFParsedPart], mappings: [GGUFMapping]) {
        self.path = path
        self.partPaths = partPaths
        self.mappings = mappings
        let first = parts[0]
        version = first.version
        alignment = first.alignment
        metadata = first.metadata
        metadataKeys = first.metadataKeys
        tensors = parts.flatMap(\.tensors)
        dataOffsets = parts.map(\.dataOffset)
        var index: [String: Int] = [:]
        index.reserveCapacity(tensors.count)
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        tensorIndex = index
    }

    /// Maps and validates the file at `path`; for the first part of a split model, all parts.
    public static func open(_ path: String) throws -> GGUFFile {
        let mapping = try GGUFMapping(path: path)
        var parser = GGUFParser(bytes: mapping.bytes, fileIndex: 0)
        let first = try parser.parse()
        let splitCount = try splitValue(.splitCount, in: first) ?? 1
        if splitCount == 1 {
            return GGUFFile(path: path, partPaths: [path], parts: [first], mappings: [mapping])
        }
        guard splitCount > 1, splitCount <= 99_999 else {
            throw GGUFError.invalidSplit(path: path, reason: "split.count is \(splitCount)")
        }
        let no = try splitValue(.splitNo, in: first) ?? 0
        guard no == 0 else {
            throw GGUFError.invalidSplit(path: path, reason: "this is part \(no + 1) of \(splitCount); open the first part")
        }
        guard let prefix = splitPrefix(path, count: splitCount) else {
            throw GGUFError.invalidSplit(path: path, reason: "split.count is \(splitCount) but the file is not named NAME-00001-of-\(splitPartNumber(splitCount)).gguf")
        }
        var parts = [first], mappings = [mapping], paths = [path]
        var names = Set(first.tensors.map(\.name))
        for i in 1..<splitCount {
            let partPath = splitPath(prefix: prefix, number: i + 1, count: splitCount)
            do {
                let m = try GGUFMapping(path: partPath)
                var p = GGUFParser(bytes: m.bytes, fileIndex: i)
                let part = try p.parse()
                let partCount = try splitValue(.splitCount, in: part)
                let partNo = try splitValue(.splitNo, in: part)
                guard partCount == splitCount, partNo == i else {
                    throw GGUFError.invalidSplit(path: partPath, reason: "expected split.no \(i) of split.count \(splitCount), found \(partNo.map(String.init) ?? "none") of \(partCount.map(String.init) ?? "none")")
                }
                for (t, infoOffset) in zip(part.tensors, part.tensorInfoOffsets) where !names.insert(t.name).inserted {
                    throw GGUFError.duplicateTensor(offset: infoOffset, name: t.name)
                }
                parts.append(part)
                mappings.append(m)
                paths.append(partPath)
            } catch let e as GGUFError {
                if case .invalidSplit = e { throw e }
                throw GGUFError.inPart(index: i, path: partPath, error: e)
            }
        }
        let total = parts.reduce(0) { $0 + $1.tensors.count }
        if let expected = try splitValue(.splitTensorsCount, in: first), expected != total {
            throw GGUFError.invalidSplit(path: path, reason: "split.tensors.count is \(expected) but the \(splitCount) parts hold \(total) tensors")
        }
        return GGUFFile(path: path, partPaths: paths, parts: parts, mappings: mappings)
    }

    /// Parses a GGUF image already in memory (a single file; split keys are not followed).
    /// The memory must stay valid and unchanged for the lifetime of the returned file.
    public static func parse(_ bytes: UnsafeRawBufferPointer, path: String = "<memory>") throws -> GGUFFile {
        let mapping = GGUFMapping(borrowing: bytes)
        var parser = GGUFParser(bytes: bytes, fileIndex: 0)
        let part = try parser.parse()
        return GGUFFile(path: path, partPaths: [path], parts: [part], mappings: [mapping])
    }

    // MARK: Tensors

    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// A zero-copy view of a tensor's bytes inside the mapping; valid while this file is alive.
    public func data(for tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        precondition(mappings.indices.contains(tensor.fileIndex), "tensor '\(tensor.name)' is not from this file")
        let bytes = mappings[tensor.fileIndex].bytes
        precondition(tensor.offset >= 0 && tensor.byteCount >= 0 && tensor.offset <= bytes.count - tensor.byteCount,
                     "tensor '\(tensor.name)' is not from this file")
        return UnsafeRawBufferPointer(rebasing: bytes[tensor.offset..<(tensor.offset + tensor.byteCount)])
    }

    /// Byte totals per tensor type, largest first.
    public var bytesByType: [(type: GGMLType, count: Int, bytes: Int)] {
        var acc: [GGMLType: (Int, Int)] = [:]
        for t in tensors { acc[t.type, default: (0, 0)].0 += 1; acc[t.type, default: (0, 0)].1 += t.byteCount }
        return acc.map { (type: $0.key, count: $0.value.0, bytes: $0.value.1) }.sorted { $0.bytes > $1.bytes }
    }

    // MARK: Metadata through the key table

    public var architecture: String? { metadata[GGUFKey.architecture.template]?.string }

    /// The concrete key string for this file ("{arch}" resolved); nil if the key needs an
    /// architecture and the file names none.
    public func keyString(_ key: GGUFKey) -> String? {
        guard key.isArchitectureSpecific else { return key.template }
        return architecture.map { key.resolved(architecture: $0) }
    }

    public subscript(key: GGUFKey) -> GGUFValue? {
        keyString(key).flatMap { metadata[$0] }
    }

    public func int(_ key: GGUFKey) -> Int? { self[key]?.int }
    public func float(_ key: GGUFKey) -> Float? { self[key]?.float }
    public func double(_ key: GGUFKey) -> Double? { self[key]?.double }
    public func string(_ key: GGUFKey) -> String? { self[key]?.string }
    public func bool(_ key: GGUFKey) -> Bool? { self[key]?.bool }
    public func array(_ key: GGUFKey) -> [GGUFValue]? { self[key]?.array }

    /// A string array (vocabularies, merges); nil if absent or not an array of strings.
    public func strings(_ key: GGUFKey) -> [String]? {
        guard case let .array(.string, elements)? = self[key] else { return nil }
        var out: [String] = []
        out.reserveCapacity(elements.count)
        for case let .string(s) in elements { out.append(s) }
        return out
    }

    /// A numeric array as floats (scores); nil if absent or not numeric.
    public func floats(_ key: GGUFKey) -> [Float]? {
        guard case let .array(_, elements)? = self[key] else { return nil }
        var out: [Float] = []
        out.reserveCapacity(elements.count)
        for e in elements {
            if case let .float32(v) = e { out.append(v) } else if let v = e.float { out.append(v) } else { return nil }
        }
        return out
    }

    /// An integer array (token types, per-layer counts); nil if absent or not all integers.
    public func ints(_ key: GGUFKey) -> [Int]? {
        guard case let .array(_, elements)? = self[key] else { return nil }
        var out: [Int] = []
        out.reserveCapacity(elements.count)
        for e in elements {
            if case let .int32(v) = e { out.append(Int(v)) } else if let v = e.int { out.append(v) } else { return nil }
        }
        return out
    }

    /// An integer key that may also be stored per layer (e.g. head_count_kv as an array):
    /// returns one value per layer, repeating a scalar.
    public func perLayerInts(_ key: GGUFKey, layers: Int) -> [Int]? {
        if let v = int(key) { return Array(repeating: v, count: max(layers, 0)) }
        return ints(key)
    }

    // MARK: Split helpers

    private static func splitValue(_ key: GGUFKey, in part: GGUFParsedPart) throws -> Int? {
        guard let v = part.metadata[key.template] else { return nil }
        guard let n = v.int else {
            throw GGUFError.wrongKeyType(offset: part.valueOffsets[key.template] ?? 0, key: key.template,
                                         expected: "an integer", found: v.type)
        }
        return n
    }

    static func splitPartNumber(_ n: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, 5 - s.count)) + s
    }

    static func splitPath(prefix: String, number: Int, count: Int) -> String {
        "\(prefix)-\(splitPartNumber(number))-of-\(splitPartNumber(count)).gguf"
    }

    /// "dir/NAME-00001-of-00003.gguf" → "dir/NAME" when the tail matches part 1 of `count`.
    static func splitPrefix(_ path: String, count: Int) -> String? {
        let tail = "-" + splitPartNumber(1) + "-of-" + splitPartNumber(count) + ".gguf"
        guard path.hasSuffix(tail), path.count > tail.count else { return nil }
        return String(path.dropLast(tail.count))
    }
}
