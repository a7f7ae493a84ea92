// Writer → reader round trips: every value type (extremes, empty and nested arrays), key order,
// tensor placement and alignment, v2 files, and the typed key table.
import Core
import GGUF
import XCTest

final class GGUFRoundTripTests: XCTestCase {
    static let allScalars: [(String, GGUFValue)] = [
        ("t.u8", .uint8(255)), ("t.i8", .int8(-128)), ("t.u16", .uint16(65535)), ("t.i16", .int16(-32768)),
        ("t.u32", .uint32(.max)), ("t.i32", .int32(.min)), ("t.f32", .float32(-1.5e-38)), ("t.bool.t", .bool(true)),
        ("t.bool.f", .bool(false)), ("t.str", .string("héllo ✓ 🦙\n\0tab\t")), ("t.empty", .string("")),
        ("t.u64", .uint64(.max)), ("t.i64", .int64(.min)), ("t.f64", .float64(.pi)),
        ("t.f32.inf", .float32(.infinity)),
    ]

    static var allArrays: [(String, GGUFValue)] {
        [
            ("a.u8", .array(.uint8, [.uint8(0), .uint8(255)])),
            ("a.i8", .array(.int8, [.int8(-1), .int8(127)])),
            ("a.u16", .array(.uint16, [.uint16(1), .uint16(65535)])),
            ("a.i16", .array(.int16, [.int16(-2), .int16(3)])),
            ("a.u32", .array(.uint32, [.uint32(7)])),
            ("a.i32", .array(.int32, (-3...3).map { .int32(Int32($0)) })),
            ("a.f32", .array(.float32, [.float32(0.25), .float32(-0.0), .float32(1e30)])),
            ("a.bool", .array(.bool, [.bool(true), .bool(false)])),
            ("a.str", .array(.string, [.string("a"), .string(""), .string("ünï")])),
            ("a.u64", .array(.uint64, [.uint64(.max)])),
            ("a.i64", .array(.int64, [.int64(.min), .int64(.max)])),
            ("a.f64", .array(.float64, [.float64(1e300), .float64(-2)])),
            ("a.empty", .array(.float32, [])),
            ("a.empty.str", .array(.string, [])),
            ("a.nested", .array(.array, [
                .array(.string, [.string("x"), .string("y")]),
                .array(.int32, []),
                .array(.array, [.array(.uint8, [.uint8(1)]), .array(.float64, [.float64(2)])]),
            ])),
        ]
    }

    func testEveryValueTypeRoundTrips() throws {
        var w = GGUFWriter()
        let all = Self.allScalars + Self.allArrays
        for (k, v) in all { w.set(k, v) }
        let bytes = try w.serialized()
        try withParsed(bytes) { f in
            XCTAssertEqual(f.version, 3)
            XCTAssertEqual(f.metadataKeys, all.map(\.0))
            for (k, v) in all { XCTAssertEqual(f.metadata[k], v, k) }
            XCTAssertTrue(f.tensors.isEmpty)
        }
        // Every value type id appears.
        let types = Set(all.map(\.1.type))
        XCTAssertEqual(types, Set(GGUFValueType.allCases))
    }

    func testSetReplacesInPlace() throws {
        var w = GGUFWriter()
        w.set("a", .uint32(1))
        w.set("b", .uint32(2))
        w.set("a", .string("again"))
        try withParsed(try w.serialized()) { f in
            XCTAssertEqual(f.metadataKeys, ["a", "b"])
            XCTAssertEqual(f.metadata["a"], .string("again"))
        }
    }

    func testTensorsRoundTripAligned() throws {
        for alignment in [32, 64, 1, 4096] {
            var w = GGUFWriter(alignment: alignment)
            w.set(GGUFKey.architecture, .string("llama"))
            w.set(GGUFKey.blockCount, .uint32(2), architecture: "llama")
            var rng = SplitMix(seed: UInt64(alignment))
            let specs: [(String, GGMLType, [Int])] = [
                ("a", .f32, [3]), ("b", .q4_0, [64, 3]), ("c", .q4_K, [256, 2, 1, 2]), ("d", .f16, [5, 7, 1]),
                ("e", .i8, [1]), ("f", .q8_0, [32, 1, 3]),
            ]
            var datas: [[UInt8]] = []
            for (name, type, shape) in specs {
                let n = type.byteCount(elements: shape.reduce(1, *))
                let d = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                datas.append(d)
                try w.addTensor(name: name, type: type, shape: shape, data: d)
            }
            try withParsed(try w.serialized()) { f in
                XCTAssertEqual(f.alignment, alignment)
                XCTAssertEqual(f.int(.blockCount), 2)
                XCTAssertEqual(f.dataOffsets[0] % alignment, 0)
                XCTAssertEqual(f.tensors.map(\.name), specs.map(\.0))
                for ((name, type, shape), d) in zip(specs, datas) {
                    let t = try XCTUnwrap(f.tensor(named: name))
                    XCTAssertEqual(t.type, type)
                    XCTAssertEqual(t.shape, shape)
                    XCTAssertEqual(t.byteCount, d.count)
                    XCTAssertEqual(t.rowCount, shape.dropFirst().reduce(1, *))
                    XCTAssertEqual(t.offset % alignment, 0)
                    XCTAssertEqual(Array(f.data(for: t)), d, name)
                }
            }
        }
    }

    func testVersion2Reads() throws {
        var w = GGUFWriter()
        w.set("k", .string("v"))
        try w.addTensor(name: "t", type: .f32, shape: [2], data: [0, 0, 128, 63, 0, 0, 0, 64])
        var bytes = try w.serialized()
        bytes[4] = 2
        try withParsed(bytes) { f in
            XCTAssertEqual(f.version, 2)
            XCTAssertEqual(f.metadata["k"], .string("v"))
            let t = try XCTUnwrap(f.tensor(named: "t"))
            let view = f.data(for: t)
            XCTAssertEqual(view.loadUnaligned(fromByteOffset: 4, as: Float.self), 2)
        }
    }

    func testWriteToFileAndOpen() throws {
        let dir = temporaryDirectory(self)
        var w = GGUFWriter()
        w.set(GGUFKey.architecture, .string("gemma3"))
        w.set(GGUFKey.headCountKV, .array(.int32, [.int32(1), .int32(2)]), architecture: "gemma3")
        w.set(GGUFKey.tokens, .array(.string, [.string("<s>"), .string("a")]))
        w.set(GGUFKey.scores, .array(.float32, [.float32(0), .float32(-1)]))
        try w.addTensor(name: "x", type: .f32, shape: [1], data: [0, 0, 0, 0])
        try w.write(to: dir + "/m.gguf")
        let f = try GGUFFile.open(dir + "/m.gguf")
        XCTAssertEqual(f.keyString(.headCountKV), "gemma3.attention.head_count_kv")
        XCTAssertNil(f.int(.headCountKV))
        XCTAssertEqual(f.ints(.headCountKV), [1, 2])
        XCTAssertEqual(f.perLayerInts(.headCountKV, layers: 2), [1, 2])
        XCTAssertEqual(f.strings(.tokens), ["<s>", "a"])
        XCTAssertEqual(f.floats(.scores), [0, -1])
        XCTAssertNil(f.strings(.scores))
        XCTAssertEqual(f.partPaths, [dir + "/m.gguf"])
    }

    func testValueAccessors() {
        XCTAssertEqual(GGUFValue.uint64(5).int, 5)
        XCTAssertNil(GGUFValue.uint64(.max).int)
        XCTAssertNil(GGUFValue.bool(true).int)
        XCTAssertNil(GGUFValue.float32(1).int)
        XCTAssertEqual(GGUFValue.int8(-3).double, -3)
        XCTAssertEqual(GGUFValue.float64(0.5).float, 0.5)
        XCTAssertNil(GGUFValue.string("1").double)
        XCTAssertEqual(GGUFValue.bool(true).bool, true)
        XCTAssertEqual(GGUFValue.array(.uint8, [.uint8(1)]).array, [.uint8(1)])
        XCTAssertEqual(GGUFKey.ropeFreqBase.resolved(architecture: "qwen3"), "qwen3.rope.freq_base")
        XCTAssertEqual(GGUFKey.bosID.resolved(architecture: "qwen3"), "tokenizer.ggml.bos_token_id")
        XCTAssertEqual(GGUFKey.separatorID.template, "tokenizer.ggml.seperator_token_id")
    }

    func testWriterRejectsBadInput() {
        var w = GGUFWriter()
        XCTAssertThrowsError(try w.addTensor(name: "t", type: .q4_0, shape: [16], data: []))
        XCTAssertThrowsError(try w.addTensor(name: "t", type: .f32, shape: [2], data: [0]))
        XCTAssertThrowsError(try w.addTensor(name: "t", type: .f32, shape: [], data: []))
        XCTAssertNoThrow(try w.addTensor(name: "t", type: .f32, shape: [1], data: [0, 0, 0, 0]))
        XCTAssertThrowsError(try w.addTensor(name: "t", type: .f32, shape: [1], data: [0, 0, 0, 0]))
        w.set("bad", .array(.uint8, [.string("x")]))
        XCTAssertThrowsError(try w.serialized())
    }
}

/// A small deterministic generator (SplitMix64) for test data and fuzzing.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
