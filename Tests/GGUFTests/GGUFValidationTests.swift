// Bad input: each case builds a file byte by byte (noting where the faulty field sits) and asserts
// the exact error and offset. The reader must never trap, whatever the bytes.
import Core
import GGUF
import XCTest

/// A hand-built GGUF image; `pos` is the offset of the next byte written.
struct RawGGUF {
    var b: [UInt8] = []
    var pos: Int { b.count }

    mutating func u8(_ v: UInt8) { b.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
    mutating func str(_ s: String) { rawStr(Array(s.utf8)) }
    mutating func rawStr(_ bytes: [UInt8]) { u64(UInt64(bytes.count)); b.append(contentsOf: bytes) }
    mutating func header(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) {
        u32(0x4655_4747); u32(version); u64(tensors); u64(kvs)
    }
    mutating func kvU32(_ key: String, _ v: UInt32) { str(key); u32(4); u32(v) }
    /// Writes a tensor info; returns the offset of its offset field.
    @discardableResult
    mutating func tensor(_ name: String, _ dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0) -> Int {
        str(name); u32(UInt32(dims.count)); for d in dims { u64(d) }; u32(type)
        let at = pos
        u64(offset)
        return at
    }
    mutating func pad(_ alignment: Int = 32) { while pos % alignment != 0 { u8(0) } }
    mutating func zeros(_ n: Int) { b.append(contentsOf: repeatElement(0, count: n)) }
}

final class GGUFValidationTests: XCTestCase {
    // MARK: header

    func testWrongMagic() {
        var r = RawGGUF()
        r.u32(0x5855_4747); r.u32(3); r.u64(0); r.u64(0)
        assertThrows(.badMagic(offset: 0, found: 0x5855_4747)) { try parse(r.b) }
        assertThrows(.truncated(offset: 0, needed: 4, available: 2, what: "magic")) { try parse([0x47, 0x47]) }
        assertThrows(.truncated(offset: 0, needed: 4, available: 0, what: "magic")) { try parse([]) }
    }

    func testUnsupportedVersions() {
        for v: UInt32 in [0, 1, 4, 0x0300_0000] {
            var r = RawGGUF()
            r.header(version: v, tensors: 0, kvs: 0)
            assertThrows(.unsupportedVersion(offset: 4, version: v)) { try parse(r.b) }
        }
        XCTAssertTrue(GGUFError.unsupportedVersion(offset: 4, version: 1).description.contains("unsupported GGUF version 1"))
    }

    // MARK: truncation in every section

    func testTruncatedHeader() {
        var r = RawGGUF()
        r.header(tensors: 0, kvs: 0)
        assertThrows(.truncated(offset: 4, needed: 4, available: 2, what: "version")) { try parse(Array(r.b[0..<6])) }
        assertThrows(.truncated(offset: 8, needed: 8, available: 7, what: "tensor count")) { try parse(Array(r.b[0..<15])) }
        assertThrows(.truncated(offset: 16, needed: 8, available: 0, what: "metadata key/value count")) { try parse(Array(r.b[0..<16])) }
        XCTAssertNoThrow(try parse(r.b))  // an empty but complete file
    }

    func testTruncatedMetadata() {
        var r = RawGGUF()
        r.header(tensors: 0, kvs: 2)
        r.kvU32("general.alignment", 32)
        let secondKey = r.pos
        r.str("name"); r.u32(8)
        let valueLength = r.pos
        r.str("llama")
        // inside the key length, the key bytes, the value type, the string value
        assertThrows(.truncated(offset: secondKey, needed: 8, available: 3, what: "metadata key length")) {
            try parse(Array(r.b[0..<(secondKey + 3)]))
        }
        assertThrows(.truncated(offset: secondKey + 8, needed: 4, available: 2, what: "metadata key")) {
            try parse(Array(r.b[0..<(secondKey + 10)]))
        }
        assertThrows(.truncated(offset: secondKey + 12, needed: 4, available: 1, what: "value type")) {
            try parse(Array(r.b[0..<(secondKey + 13)]))
        }
        assertThrows(.truncated(offset: valueLength + 8, needed: 5, available: 4, what: "string value")) {
            try parse(Array(r.b[0..<(valueLength + 12)]))
        }
        // inside a scalar value
        assertThrows(.truncated(offset: 24 + 8 + 17 + 4, needed: 4, available: 1, what: "u32 value")) {
            try parse(Array(r.b[0..<(24 + 8 + 17 + 4 + 1)]))
        }
    }

    func testTruncatedArray() {
        var r = RawGGUF()
        r.header(tensors: 0, kvs: 1)
        r.str("arr"); r.u32(9)
        let elementType = r.pos
        r.u32(8); r.u64(2); r.str("ab")
        let second = r.pos
        r.str("cd")
        assertThrows(.truncated(offset: elementType, needed: 4, available: 3, what: "value type")) {
            try parse(Array(r.b[0..<(elementType + 3)]))
        }
        assertThrows(.truncated(offset: elementType + 4, needed: 8, available: 4, what: "array count")) {
            try parse(Array(r.b[0..<(elementType + 8)]))
        }
        assertThrows(.truncated(offset: second + 8, needed: 2, available: 1, what: "string value")) {
            try parse(Array(r.b[0..<(second + 9)]))
        }
        // a fixed-size array whose elements run past the end is an impossible count
        var f = RawGGUF()
        f.header(tensors: 0, kvs: 1)
        f.str("f"); f.u32(9); f.u32(6)
        let count = f.pos
        f.u64(3); f.u32(0); f.u32(0)
        assertThrows(.absurdCount(offset: count, what: "array count", count: 3, bytesLeft: 8)) { try parse(f.b) }
    }

    func testTruncatedTensorInfo() {
        var r = RawGGUF()
        r.header(tensors: 1, kvs: 0)
        r.str("blk.0.attn_q.weight")
        let nDims = r.pos
        r.u32(2); r.u64(32); r.u64(1); r.u32(0); r.u64(0)
        r.pad(); r.zeros(128)
        XCTAssertNoThrow(try parse(r.b))
        // A tensor info needs ≥ 32 bytes: cut shorter than that and the tensor count is impossible.
        assertThrows(.absurdCount(offset: 8, what: "tensor count", count: 1, bytesLeft: 30)) { try parse(Array(r.b[0..<54])) }
        assertThrows(.truncated(offset: nDims + 4 + 8, needed: 8, available: 4, what: "tensor dimension")) {
            try parse(Array(r.b[0..<(nDims + 16)]))
        }
        assertThrows(.truncated(offset: nDims + 20, needed: 4, available: 3, what: "tensor type")) {
            try parse(Array(r.b[0..<(nDims + 23)]))
        }
        assertThrows(.truncated(offset: nDims + 24, needed: 8, available: 7, what: "tensor data offset")) {
            try parse(Array(r.b[0..<(nDims + 31)]))
        }
    }

    func testTruncatedData() {
        var r = RawGGUF()
        r.header(tensors: 2, kvs: 0)
        r.tensor("a", [8])
        let second = r.tensor("b", [8], offset: 32)
        r.pad(); r.zeros(32 + 31)
        assertThrows(.tensorOutOfBounds(offset: second, tensor: "b", end: UInt64(r.pos + 1), fileSize: r.pos)) { try parse(r.b) }
        r.zeros(1)
        XCTAssertNoThrow(try parse(r.b))
    }

    // MARK: absurd counts and lengths

    func testAbsurdCounts() {
        var r = RawGGUF()
        r.header(tensors: 0, kvs: UInt64.max)
        assertThrows(.absurdCount(offset: 16, what: "metadata key/value count", count: .max, bytesLeft: 0)) { try parse(r.b) }

        var t = RawGGUF()
        t.header(tensors: 1 << 40, kvs: 0)
        t.zeros(100)
        assertThrows(.absurdCount(offset: 8, what: "tensor count", count: 1 << 40, bytesLeft: 100)) { try parse(t.b) }

        var s = RawGGUF()
        s.header(tensors: 0, kvs: 1)
        let len = s.pos
        s.u64(UInt64.max - 3); s.zeros(20)
        assertThrows(.absurdCount(offset: len, what: "metadata key length", count: .max - 3, bytesLeft: 20)) { try parse(s.b) }

        var a = RawGGUF()
        a.header(tensors: 0, kvs: 1)
        a.str("a"); a.u32(9); a.u32(8)
        let count = a.pos
        a.u64(1 << 61); a.zeros(64)
        assertThrows(.absurdCount(offset: count, what: "array count", count: 1 << 61, bytesLeft: 64)) { try parse(a.b) }

        // nested arrays: each level needs 12 bytes, a huge inner count is caught at its own offset
        var n = RawGGUF()
        n.header(tensors: 0, kvs: 1)
        n.str("n"); n.u32(9); n.u32(9); n.u64(1); n.u32(0)
        let inner = n.pos
        n.u64(1000); n.zeros(10)
        assertThrows(.absurdCount(offset: inner, what: "array count", count: 1000, bytesLeft: 10)) { try parse(n.b) }
    }

    func testNestingTooDeep() {
        var r = RawGGUF()
        r.header(tensors: 0, kvs: 1)
        r.str("deep"); r.u32(9)
        var offsets: [Int] = []
        for _ in 0..<40 { offsets.append(r.pos); r.u32(9); r.u64(1) }
        r.u32(0); r.u64(0)
        assertThrows(.nestingTooDeep(offset: offsets[16], depth: 16)) { try parse(r.b) }
    }

    // MARK: metadata values

    func testUnknownValueType() {
        var r = RawGGUF()
        r.header(tensors: 0, kvs: 1)
        r.str("k")
        let at = r.pos
        r.u32(13); r.u32(0)
        assertThrows(.unknownValueType(offset: at, raw: 13)) { try parse(r.b) }
    }

    func testInvalidUTF8() {
        var r = RawGGUF()
        r.header(tensors: 0, kvs: 1)
        r.rawStr([0x61, 0xC3, 0x28]); r.u32(4); r.u32(0)
        assertThrows(.invalidUTF8(offset: 32, what: "metadata key")) { try parse(r.b) }

        var v = RawGGUF()
        v.header(tensors: 0, kvs: 1)
        v.str("k"); v.u32(9); v.u32(8); v.u64(2); v.str("ok")
        let bad = v.pos
        v.rawStr([0xED, 0xA0, 0x80])  // an encoded surrogate
        assertThrows(.invalidUTF8(offset: bad + 8, what: "string value")) { try parse(v.b) }

        var t = RawGGUF()
        t.header(tensors: 1, kvs: 0)
        t.rawStr([0xFF]); t.u32(1); t.u64(1); t.u32(0); t.u64(0); t.pad(); t.zeros(32)
        assertThrows(.invalidUTF8(offset: 32, what: "tensor name")) { try parse(t.b) }
    }

    func testDuplicateKey() {
        var r = RawGGUF()
        r.header(tensors: 0, kvs: 2)
        r.kvU32("k", 1)
        let at = r.pos
        r.kvU32("k", 2)
        assertThrows(.duplicateKey(offset: at, key: "k")) { try parse(r.b) }
    }

    func testAlignment() throws {
        for (bad, expected) in [(UInt32(0), 0), (48, 48), (3, 3)] {
            var r = RawGGUF()
            r.header(tensors: 0, kvs: 1)
            r.str("general.alignment")
            let at = r.pos
            r.u32(4); r.u32(bad)
            assertThrows(.invalidAlignment(offset: at, value: expected)) { try parse(r.b) }
        }
        var s = RawGGUF()
        s.header(tensors: 0, kvs: 1)
        s.str("general.alignment")
        let at = s.pos
        s.u32(8); s.str("32")
        assertThrows(.wrongKeyType(offset: at, key: "general.alignment", expected: "an integer", found: .string)) { try parse(s.b) }

        var ok = RawGGUF()
        ok.header(tensors: 1, kvs: 1)
        ok.kvU32("general.alignment", 64)
        ok.tensor("t", [16], offset: 64)
        ok.pad(64); ok.zeros(128)
        try withParsed(ok.b) { f in
            XCTAssertEqual(f.alignment, 64)
            XCTAssertEqual(f.dataOffsets, [128])  // 57 bytes of header and key, 33 of tensor info
            XCTAssertEqual(f.tensors[0].offset, 192)
        }
    }

    // MARK: tensor infos

    func testUnknownTensorType() {
        for raw: UInt32 in [4, 5, 31, 40, .max] {
            var r = RawGGUF()
            r.header(tensors: 1, kvs: 0)
            r.str("t"); r.u32(1); r.u64(32)
            let at = r.pos
            r.u32(raw); r.u64(0); r.pad(); r.zeros(64)
            assertThrows(.unknownTensorType(offset: at, tensor: "t", raw: raw)) { try parse(r.b) }
        }
    }

    func testDimensionCounts() {
        for n: UInt32 in [0, 5, .max] {
            var r = RawGGUF()
            r.header(tensors: 1, kvs: 0)
            r.str("t")
            let at = r.pos
            r.u32(n); r.zeros(64)
            assertThrows(.invalidDimensionCount(offset: at, tensor: "t", count: n)) { try parse(r.b) }
        }
    }

    func testBadDimensions() {
        for (dims, index) in [([UInt64(4), 0], 1), ([0], 0), ([1, UInt64(Int64.max) + 1], 1), ([UInt64.max], 0)] {
            var r = RawGGUF()
            r.header(tensors: 1, kvs: 0)
            let at = 24 + 8 + 1 + 4 + 8 * index
            r.tensor("t", dims)
            r.zeros(64)
            assertThrows(.invalidDimension(offset: at, tensor: "t", index: index, value: dims[index])) { try parse(r.b) }
        }
        // each dimension fits, the product does not
        var o = RawGGUF()
        o.header(tensors: 1, kvs: 0)
        o.tensor("t", [1 << 32, 1 << 30, 4])
        o.zeros(64)
        assertThrows(.shapeOverflow(offset: 24 + 8 + 1 + 4 + 16, tensor: "t")) { try parse(o.b) }
        // the element count fits, the byte count does not (f32: × 4)
        var b = RawGGUF()
        b.header(tensors: 1, kvs: 0)
        b.tensor("t", [1 << 31, 1 << 31])
        b.zeros(64)
        assertThrows(.shapeOverflow(offset: 24 + 8 + 1 + 4 + 16, tensor: "t")) { try parse(b.b) }  // the type field
    }

    func testNotBlockMultiple() {
        var r = RawGGUF()
        r.header(tensors: 1, kvs: 0)
        r.tensor("q", [48, 2], type: GGMLType.q4_0.rawValue)
        r.pad(); r.zeros(128)
        assertThrows(.notBlockMultiple(offset: 24 + 9 + 4, tensor: "q", type: .q4_0, ne0: 48)) { try parse(r.b) }
        // the same element count laid out with ne0 a multiple of 32 is fine
        var ok = RawGGUF()
        ok.header(tensors: 1, kvs: 0)
        ok.tensor("q", [32, 3], type: GGMLType.q4_0.rawValue)
        ok.pad(); ok.zeros(64)
        XCTAssertNoThrow(try parse(ok.b))
    }

    func testDuplicateTensorName() {
        var r = RawGGUF()
        r.header(tensors: 2, kvs: 0)
        r.tensor("t", [8])
        let at = r.pos
        r.tensor("t", [8], offset: 32)
        r.pad(); r.zeros(64)
        assertThrows(.duplicateTensor(offset: at, name: "t")) { try parse(r.b) }
    }

    func testMisalignedTensor() {
        var r = RawGGUF()
        r.header(tensors: 1, kvs: 0)
        let at = r.tensor("t", [8], offset: 4)
        r.pad(); r.zeros(64)
        assertThrows(.misalignedTensor(offset: at, tensor: "t", dataOffset: 4, alignment: 32)) { try parse(r.b) }
    }

    func testOverlappingTensors() {
        var r = RawGGUF()
        r.header(tensors: 3, kvs: 0)
        r.tensor("big", [64])             // [0, 256)
        r.tensor("after", [8], offset: 256)
        let at = r.tensor("inside", [8], offset: 128)
        r.pad(); r.zeros(512)
        assertThrows(.overlappingTensors(offset: at, first: "big", second: "inside")) { try parse(r.b) }

        var s = RawGGUF()
        s.header(tensors: 2, kvs: 0)
        s.tensor("a", [8])
        let same = s.tensor("b", [8])
        s.pad(); s.zeros(64)
        assertThrows(.overlappingTensors(offset: same, first: "a", second: "b")) { try parse(s.b) }
    }

    func testTensorPastEndOfFile() {
        var r = RawGGUF()
        r.header(tensors: 1, kvs: 0)
        let at = r.tensor("t", [1 << 40], offset: 0)
        r.pad()
        let size = r.pos + 100
        r.zeros(100)
        assertThrows(.tensorOutOfBounds(offset: at, tensor: "t", end: UInt64(r.pos - 100) + (1 << 42), fileSize: size)) { try parse(r.b) }
        // an offset that overflows when added to the data start
        var o = RawGGUF()
        o.header(tensors: 1, kvs: 0)
        let ao = o.tensor("t", [8], offset: UInt64.max - 31)
        o.pad(); o.zeros(64)
        assertThrows(.tensorOutOfBounds(offset: ao, tensor: "t", end: .max, fileSize: o.pos)) { try parse(o.b) }
    }

    func testErrorsNameTheirOffset() {
        let e = GGUFError.truncated(offset: 1234, needed: 8, available: 3, what: "tensor count")
        XCTAssertEqual(e.offset, 1234)
        XCTAssertTrue(e.description.contains("offset 1234"))
        XCTAssertEqual(GGUFError.inPart(index: 1, path: "p", error: e).offset, 1234)
    }
}
