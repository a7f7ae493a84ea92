// The real models' tokenizers against llama.cpp: identical ids for every corpus case (special
// tokens parsed and not), identical detokenization, special ids and end-of-generation tokens.
import Foundation
@testable import Tokenizer
import XCTest

final class RealModelTokenizerTests: XCTestCase {
    func checkFixture(_ tok: Tokenizer, _ fx: ModelFixture, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(tok.vocabularySize, fx.vocab_size, file: file, line: line)
        XCTAssertEqual(tok.bosID, fx.bos, file: file, line: line)
        XCTAssertEqual(tok.eosID, fx.eos, file: file, line: line)
        XCTAssertEqual(tok.endOfGenerationIDs, fx.eog, "end-of-generation ids", file: file, line: line)
        var mismatches = 0
        for c in fx.cases {
            let ids = tok.encode(c.text)
            if ids != c.ids {
                mismatches += 1
                XCTFail("\(fx.model) encode \(show(c.text)):\n  got      \(ids)\n  llama.cpp \(c.ids)", file: file, line: line)
            }
            let plain = tok.encode(c.text, addSpecial: false, parseSpecial: false)
            if plain != c.ids_no_special {
                mismatches += 1
                XCTFail("\(fx.model) encode (no special) \(show(c.text)):\n  got      \(plain)\n  llama.cpp \(c.ids_no_special)", file: file, line: line)
            }
            XCTAssertEqual(tok.decode(c.ids), c.decoded, "\(fx.model) decode \(show(c.text))", file: file, line: line)
            XCTAssertEqual(tok.decode(c.ids_no_special, skipSpecial: true), c.decoded_no_special,
                           "\(fx.model) decode (skip special) \(show(c.text))", file: file, line: line)
        }
        XCTAssertEqual(mismatches, 0, "\(fx.model): \(mismatches) of \(2 * fx.cases.count) encodings differ from llama.cpp", file: file, line: line)
        XCTAssertGreaterThanOrEqual(fx.cases.count, 80, file: file, line: line)
    }

    func testSmolLM2MatchesLlamaCpp() throws {
        let tok = try RealModels.tokenizer(RealModels.smolLM2, RealModels.smolLM2File)
        checkFixture(tok, try Fixtures.model("smollm2"))
    }

    func testGemma3MatchesLlamaCpp() throws {
        let tok = try RealModels.tokenizer(RealModels.gemma3, RealModels.gemma3File)
        let fx = try Fixtures.model("gemma3")
        checkFixture(tok, fx)
        XCTAssertEqual(tok.eotID, fx.eot)
    }

    func testSmolLM2Metadata() throws {
        let tok = try RealModels.tokenizer(RealModels.smolLM2, RealModels.smolLM2File)
        XCTAssertEqual(tok.modelName, "gpt2")
        XCTAssertFalse(tok.addBOS)
        XCTAssertEqual(tok.tokenText(1), "<|im_start|>")
        XCTAssertTrue(tok.isEndOfGeneration(2))   // <|im_end|>
        XCTAssertTrue(tok.isEndOfGeneration(0))   // <|endoftext|>
        XCTAssertFalse(tok.isEndOfGeneration(1))
        XCTAssertEqual(tok.tokenText(tok.encode(" Hello", addSpecial: false)[0]), "ĠHello")
    }

    func testGemma3Metadata() throws {
        let tok = try RealModels.tokenizer(RealModels.gemma3, RealModels.gemma3File)
        XCTAssertEqual(tok.modelName, "llama")
        XCTAssertTrue(tok.addBOS)
        XCTAssertFalse(tok.addSpacePrefix, "Gemma 3's GGUF sets add_space_prefix = false")
        XCTAssertEqual(tok.encode("").first, 2)
        XCTAssertEqual(tok.encode("", addSpecial: false), [])
        XCTAssertTrue(tok.isEndOfGeneration(106))   // <end_of_turn>
        XCTAssertEqual(tok.tokenText(106), "<end_of_turn>")
    }

    func testParseSpecialOff() throws {
        let smol = try RealModels.tokenizer(RealModels.smolLM2, RealModels.smolLM2File)
        let on = smol.encode("<|im_start|>user", addSpecial: false)
        XCTAssertEqual(on.first, 1)
        let off = smol.encode("<|im_start|>user", addSpecial: false, parseSpecial: false)
        XCTAssertFalse(off.contains(1))
        XCTAssertGreaterThan(off.count, 2)
        XCTAssertEqual(smol.decode(off), "<|im_start|>user")

        let gemma = try RealModels.tokenizer(RealModels.gemma3, RealModels.gemma3File)
        XCTAssertTrue(gemma.encode("<start_of_turn>").contains(105))
        XCTAssertFalse(gemma.encode("<start_of_turn>", parseSpecial: false).contains(105))
    }

    func testDecodeRoundTrip() throws {
        for (which, file) in [(RealModels.smolLM2, RealModels.smolLM2File), (RealModels.gemma3, RealModels.gemma3File)] {
            let tok = try RealModels.tokenizer(which, file)
            // SentencePiece reads a "▁" written in the text as a space.
            for c in try Fixtures.model(file.hasPrefix("smol") ? "smollm2" : "gemma3").cases
            where !(tok.modelName == "llama" && c.text.contains("\u{2581}")) {
                XCTAssertEqual(tok.decode(tok.encode(c.text, addSpecial: false)), c.text, show(c.text))
                XCTAssertEqual(tok.decode(tok.encode(c.text), skipSpecial: true),
                               tok.decode(tok.encode(c.text, addSpecial: false), skipSpecial: true))
            }
        }
    }

    func testStreamingDecodeHoldsBackSplitCharacters() throws {
        for (which, file) in [(RealModels.smolLM2, RealModels.smolLM2File), (RealModels.gemma3, RealModels.gemma3File)] {
            let tok = try RealModels.tokenizer(which, file)
            var heldBack = 0
            for text in ["🪿🫠 👨‍👩‍👧‍👦 family 🏳️‍🌈", "日本語 テキスト", "🇫🇷🇯🇵 x 🫠🪿", "naïve ∑ 😀"] {
                let ids = tok.encode(text, addSpecial: false)
                var stream = tok.makeStreamDecoder()
                var out = ""
                var pieces: [String] = []
                for id in ids {
                    let s = stream.append(id)
                    XCTAssertFalse(s.contains("\u{FFFD}"), "\(file): a split character leaked as U+FFFD in \(show(text))")
                    pieces.append(s)
                    out += s
                }
                out += stream.flush()
                XCTAssertEqual(out, text, file)
                heldBack += pieces.filter(\.isEmpty).count
            }
            XCTAssertGreaterThan(heldBack, 0, "\(file): some character should span several tokens")
        }
    }

    func testStreamingDecodeOfByteFallbackTokens() throws {
        let gemma = try RealModels.tokenizer(RealModels.gemma3, RealModels.gemma3File)
        // "😀" as four <0xNN> byte tokens.
        let bytes = Array("😀".utf8)
        let ids = bytes.map { b in gemma.tokenID(forPiece: String(format: "<0x%02X>", b))! }
        var s = gemma.makeStreamDecoder()
        XCTAssertEqual(s.append(ids[0]), "")
        XCTAssertEqual(s.append(ids[1]), "")
        XCTAssertEqual(s.append(ids[2]), "")
        XCTAssertEqual(s.append(ids[3]), "😀")
        XCTAssertEqual(s.flush(), "")
        XCTAssertEqual(gemma.decode(ids), "😀")
        // An incomplete character at the end comes out of flush() as U+FFFD.
        var t = gemma.makeStreamDecoder()
        XCTAssertEqual(t.append(ids[0]), "")
        XCTAssertEqual(t.flush(), "\u{FFFD}")
    }

    func testFuzzNeverCrashesAndRoundTrips() throws {
        let smol = try RealModels.tokenizer(RealModels.smolLM2, RealModels.smolLM2File)
        let gemma = try RealModels.tokenizer(RealModels.gemma3, RealModels.gemma3File)
        var rng = SplitMix64(seed: 0x5EED)
        let pools: [ClosedRange<UInt32>] = [0x20...0x7E, 0x00...0x7F, 0xA0...0x24F, 0x370...0x4FF, 0x600...0x6FF,
                                            0x900...0x97F, 0x3040...0x30FF, 0x4E00...0x4FFF, 0xAC00...0xAD00,
                                            0x1F300...0x1F6FF, 0x200B...0x200F, 0xFE00...0xFE0F, 0x10000...0x10FFFF]
        let representable = (0..<256).map { b in
            smol.tokenID(forPiece: String(Character(Unicode.Scalar(GPT2Bytes.byteToScalar[b])!))) != nil
        }
        XCTAssertEqual(representable.filter { !$0 }.count, 21)
        var representableCount = 0
        for iteration in 0..<300 {
            var s: String
            if iteration % 3 == 0 {
                // Random bytes, repaired to valid UTF-8.
                let n = Int(rng.next() % 64)
                s = String(decoding: (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, as: UTF8.self)
            } else {
                var scalars = String.UnicodeScalarView()
                for _ in 0..<Int(rng.next() % 40) {
                    let pool = pools[Int(rng.next() % UInt64(pools.count))]
                    let v = pool.lowerBound + UInt32(rng.next() % UInt64(pool.count))
                    if let u = Unicode.Scalar(v) { scalars.append(u) }
                }
                s = String(scalars)
            }
            // SmolLM2's vocabulary lacks the byte chars of 21 byte values (0x04, 0xF2, …); like
            // llama.cpp we drop those bytes. Everything else must come back byte for byte.
            let ids = smol.encode(s, addSpecial: false, parseSpecial: false)
            let expected = Array(s.utf8).filter { representable[Int($0)] }
            XCTAssertEqual(ids.flatMap { smol.pieceBytes($0) }, expected, "BPE round trip of \(show(s))")
            if expected.count == s.utf8.count {
                XCTAssertEqual(smol.decode(ids), s, "BPE round trip of \(show(s))")
                representableCount += 1
            }
            let gids = gemma.encode(s, addSpecial: false, parseSpecial: false)
            XCTAssertTrue(gids.allSatisfy { $0 >= 0 && Int($0) < gemma.vocabularySize })
            _ = gemma.decode(gids)
        }
        XCTAssertGreaterThan(representableCount, 50, "too few fuzz strings were fully representable")
    }

    func testEncodingSpeed() throws {
        let smol = try RealModels.tokenizer(RealModels.smolLM2, RealModels.smolLM2File)
        var text = ""
        let fx = try Fixtures.model("smollm2")
        while text.utf8.count < 100_000 { for c in fx.cases { text += c.text + "\n" } }
        let start = Date()
        let ids = smol.encode(text)
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(smol.decode(ids), text)
        // Debug builds are far slower than release; this only catches quadratic blow-ups.
        XCTAssertLessThan(elapsed, 30, "encoding 100 kB took \(elapsed) s")
        print("SmolLM2 encode of \(text.utf8.count) bytes: \(ids.count) tokens in \(String(format: "%.3f", elapsed)) s")
    }
}

/// Deterministic random numbers for the fuzz test.
struct SplitMix64 {
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
