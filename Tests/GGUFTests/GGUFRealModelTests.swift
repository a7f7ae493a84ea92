// The two real models load with the tensor counts and types of shared/reference/README.md, and
// their metadata and tensor offsets equal what the independent python `gguf` 0.19.0 reader reads
// (expectations computed once with gguf.GGUFReader and written here as constants).
import Core
import GGUF
import XCTest

final class GGUFRealModelTests: XCTestCase {
    func typeCounts(_ f: GGUFFile) -> [GGMLType: Int] {
        var c: [GGMLType: Int] = [:]
        for t in f.tensors { c[t.type, default: 0] += 1 }
        return c
    }

    func testSmolLM2() throws {
        let f = try GGUFFile.open(TestModels.path(TestModels.smolLM2))
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 32)
        XCTAssertEqual(f.tensors.count, 272)
        XCTAssertEqual(typeCounts(f), [.q4_1: 210, .q8_0: 1, .f32: 61])
        XCTAssertEqual(f.metadataKeys.count, 33)
        XCTAssertEqual(f.metadataKeys.first, "general.architecture")
        XCTAssertEqual(f.metadataKeys.last, "general.quantization_version")
        XCTAssertEqual(f.dataOffsets, [1_785_664])
        XCTAssertEqual(f.totalFileSize, 98_362_432)

        XCTAssertEqual(f.architecture, "llama")
        XCTAssertEqual(f.string(.name), "Smollm2 135M 8k Lc100K Mix1 Ep2")
        XCTAssertEqual(f.int(.blockCount), 30)
        XCTAssertEqual(f.int(.contextLength), 8192)
        XCTAssertEqual(f.int(.embeddingLength), 576)
        XCTAssertEqual(f.int(.feedForwardLength), 1536)
        XCTAssertEqual(f.int(.headCount), 9)
        XCTAssertEqual(f.int(.headCountKV), 3)
        XCTAssertEqual(f.int(.ropeDimensionCount), 64)
        XCTAssertEqual(f.int(.vocabSize), 49152)
        XCTAssertEqual(f.float(.ropeFreqBase), 100_000)
        XCTAssertEqual(f[.layerNormRMSEpsilon], .float32(9.999999747378752e-06))
        XCTAssertEqual(f.int(.fileType), 3)
        XCTAssertEqual(f.int(.quantizationVersion), 2)
        XCTAssertEqual(f.metadata["general.languages"], .array(.string, [.string("en")]))

        XCTAssertEqual(f.string(.tokenizerModel), "gpt2")
        XCTAssertEqual(f.string(.tokenizerPre), "smollm")
        XCTAssertEqual(f.bool(.addBOS), false)
        XCTAssertEqual(f.bool(.addSpacePrefix), false)
        XCTAssertEqual(f.int(.bosID), 1)
        XCTAssertEqual(f.int(.eosID), 2)
        XCTAssertEqual(f.int(.unknownID), 0)
        XCTAssertEqual(f.int(.paddingID), 2)
        XCTAssertNil(f.int(.eotID))
        let tokens = try XCTUnwrap(f.strings(.tokens))
        XCTAssertEqual(tokens.count, 49152)
        XCTAssertEqual(tokens[1], "<|im_start|>")
        XCTAssertEqual(tokens[2], "<|im_end|>")
        XCTAssertEqual(f.ints(.tokenType)?.count, 49152)
        XCTAssertEqual(f.strings(.merges)?.count, 48900)
        XCTAssertEqual(f[.merges]?.arrayElementType, .string)
        XCTAssertEqual(f[.tokenType]?.arrayElementType, .int32)
        XCTAssertTrue(f.string(.chatTemplate)?.hasPrefix("{% for message in messages %}") ?? false)

        let embd = try XCTUnwrap(f.tensor(named: "token_embd.weight"))
        XCTAssertEqual(embd.type, .q8_0)
        XCTAssertEqual(embd.shape, [576, 49152])
        XCTAssertEqual(embd.offset, 1_785_664)
        XCTAssertEqual(embd.byteCount, 30_081_024)
        XCTAssertEqual(embd.rowCount, 49152)
        XCTAssertEqual(f.tensors[0].name, "token_embd.weight")
        XCTAssertEqual(f.tensors[1].name, "blk.0.attn_norm.weight")
        XCTAssertEqual(f.tensors[1].offset, 31_866_688)
        XCTAssertEqual(f.tensors[1].byteCount, 2304)
        XCTAssertEqual(f.tensors.last?.name, "output_norm.weight")
        XCTAssertEqual(f.tensors.last?.offset, 98_360_128)
        XCTAssertEqual(f.data(for: embd).count, 30_081_024)
        // output_norm.weight is all-positive f32 RMSNorm gains; its view reads straight from the map.
        let norm = f.data(for: try XCTUnwrap(f.tensor(named: "output_norm.weight")))
        XCTAssertEqual(norm.count, 2304)
        XCTAssertTrue(norm.loadUnaligned(as: Float.self).isFinite)
    }

    func testGemma3() throws {
        let f = try GGUFFile.open(TestModels.path(TestModels.gemma3))
        XCTAssertEqual(f.tensors.count, 236)
        XCTAssertEqual(typeCounts(f), [.q8_0: 10, .q5_0: 81, .q4_K: 27, .q6_K: 9, .f32: 109])
        XCTAssertEqual(f.metadataKeys.count, 33)
        XCTAssertEqual(f.dataOffsets, [6_525_120])
        XCTAssertEqual(f.totalFileSize, 253_113_024)

        XCTAssertEqual(f.architecture, "gemma3")
        XCTAssertEqual(f.string(.name), "Gemma 3 270m")
        XCTAssertEqual(f.int(.contextLength), 32768)
        XCTAssertEqual(f.int(.embeddingLength), 640)
        XCTAssertEqual(f.int(.blockCount), 18)
        XCTAssertEqual(f.int(.feedForwardLength), 2048)
        XCTAssertEqual(f.int(.headCount), 4)
        XCTAssertEqual(f.int(.headCountKV), 1)
        XCTAssertEqual(f.int(.keyLength), 256)
        XCTAssertEqual(f.int(.valueLength), 256)
        XCTAssertEqual(f.int(.slidingWindow), 512)
        XCTAssertEqual(f.float(.ropeFreqBase), 1_000_000)
        XCTAssertEqual(f[.layerNormRMSEpsilon], .float32(9.999999974752427e-07))
        XCTAssertEqual(f.int(.fileType), 15)
        XCTAssertEqual(f.array(GGUFKey("general.tags", .array))?.count, 4)

        XCTAssertEqual(f.string(.tokenizerModel), "llama")
        XCTAssertEqual(f.string(.tokenizerPre), "default")
        XCTAssertEqual(f.bool(.addBOS), true)
        XCTAssertEqual(f.bool(.addEOS), false)
        XCTAssertEqual(f.int(.bosID), 2)
        XCTAssertEqual(f.int(.eosID), 1)
        XCTAssertEqual(f.int(.unknownID), 3)
        XCTAssertEqual(f.int(.paddingID), 0)
        XCTAssertNil(f.string(.chatTemplate))
        let tokens = try XCTUnwrap(f.strings(.tokens))
        XCTAssertEqual(tokens.count, 262_144)
        XCTAssertEqual(tokens[106], "<end_of_turn>")
        XCTAssertEqual(f.floats(.scores)?.count, 262_144)
        XCTAssertEqual(f.ints(.tokenType)?.count, 262_144)

        XCTAssertEqual(f.tensors[0].name, "output_norm.weight")
        XCTAssertEqual(f.tensors[0].offset, 6_525_120)
        XCTAssertEqual(f.tensors[0].byteCount, 2560)
        let embd = try XCTUnwrap(f.tensor(named: "token_embd.weight"))
        XCTAssertEqual(embd.type, .q8_0)
        XCTAssertEqual(embd.shape, [640, 262_144])
        XCTAssertEqual(embd.offset, 6_527_680)
        XCTAssertEqual(embd.byteCount, 178_257_920)
        XCTAssertEqual(f.tensors.last?.name, "blk.17.post_ffw_norm.weight")
        XCTAssertEqual(f.tensors.last?.offset, 253_110_464)
    }

    /// Every tensor (name, type id, shape, absolute offset, bytes), every key with its type(s) in
    /// file order, and every vocabulary entry hash to the same FNV-1a values as gguf-py reads them:
    ///   fnv("\(name) \(typeID) \(ne0,ne1,…) \(offset) \(bytes)\n" …), fnv("\(key) \(type[,elementType])\n" …),
    ///   fnv("\(token)\n" …)   (computed with gguf.GGUFReader 0.19.0, see the commit message)
    func testMatchesPythonGGUFReader() throws {
        let expected: [(String, UInt64, UInt64, UInt64)] = [
            (TestModels.smolLM2, 0x7181_6E47_F528_6174, 0xA5C1_32C1_0C36_C1F9, 0x96C1_03F4_8515_3E62),
            (TestModels.gemma3, 0x3AA8_CB22_A08B_61B5, 0x8D9F_F83C_102B_382B, 0x37DE_14B0_C926_3BBA),
        ]
        for (name, tensorHash, keyHash, tokenHash) in expected {
            let f = try GGUFFile.open(TestModels.path(name))
            var t = FNV1a()
            for x in f.tensors {
                t.add("\(x.name) \(x.type.rawValue) \(x.shape.map(String.init).joined(separator: ",")) \(x.offset) \(x.byteCount)\n")
            }
            var k = FNV1a()
            for key in f.metadataKeys {
                guard let v = f.metadata[key] else { continue }
                let types = v.arrayElementType.map { "\(v.type.rawValue),\($0.rawValue)" } ?? "\(v.type.rawValue)"
                k.add("\(key) \(types)\n")
            }
            var v = FNV1a()
            for token in f.strings(.tokens) ?? [] { v.add(token); v.add("\n") }
            XCTAssertEqual(t.hash, tensorHash, "\(name): tensor table differs from gguf-py")
            XCTAssertEqual(k.hash, keyHash, "\(name): keys or key types differ from gguf-py")
            XCTAssertEqual(v.hash, tokenHash, "\(name): vocabulary differs from gguf-py")
        }
    }

    /// Opening maps the file instead of reading it: RSS grows by far less than the file size.
    func testOpenMapsRatherThanReads() throws {
        for name in [TestModels.smolLM2, TestModels.gemma3] {
            let path = try TestModels.path(name)
            let before = residentBytes()
            let start = clock_gettime_ns()
            let f = try GGUFFile.open(path)
            let seconds = Double(clock_gettime_ns() - start) / 1e9
            let after = residentBytes()
            let grown = after - before
            print("open \(name): \(format3(seconds * 1000)) ms, RSS \(before >> 20) → \(after >> 20) MiB (+\(grown >> 20) MiB; file \(f.totalFileSize >> 20) MiB)")
            // Metadata (vocabularies) is parsed into memory, tensor data is not touched.
            XCTAssertLessThan(grown, f.totalFileSize / 2, "\(name): opening grew RSS by \(grown) bytes")
            XCTAssertLessThan(grown, f.dataOffsets[0] * 12 + (32 << 20))
        }
    }
}

func clock_gettime_ns() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

func format3(_ x: Double) -> String {
    let r = (x * 1000).rounded() / 1000
    return String(r)
}

struct FNV1a {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    mutating func add(_ s: String) {
        for b in s.utf8 { hash = (hash ^ UInt64(b)) &* 0x100_0000_01B3 }
    }
}
