// Tokenizers built from small hand-written configs: BPE merge order, SentencePiece score order and
// byte fallback, special-token partition priority, EOG detection. No model files needed.
import Foundation
@testable import Tokenizer
import XCTest

final class SyntheticTokenizerTests: XCTestCase {
    /// Byte-level BPE vocabulary: all 256 byte chars plus merged tokens.
    func bpe(merges: [String], extra: [String] = [], types: [Int32: Int32] = [:], pre: String = "gpt2") throws -> Tokenizer {
        var tokens = (0..<256).map { String(Character(Unicode.Scalar(GPT2Bytes.byteToScalar[$0])!)) }
        for m in merges { tokens.append(m.replacingOccurrences(of: " ", with: "")) }
        tokens += extra
        var tt = [Int32](repeating: 1, count: tokens.count)
        for (i, t) in types { tt[Int(i)] = t }
        return try Tokenizer(config: TokenizerConfig(model: "gpt2", pre: pre, tokens: tokens, tokenTypes: tt, merges: merges))
    }

    func testBPEMergesLowestRankFirst() throws {
        let tok = try bpe(merges: ["a b", "b c", "ab c"])
        // "abc": (a,b) rank 0 beats (b,c) rank 1 → "ab" "c" → rank 2 → "abc".
        XCTAssertEqual(tok.encode("abc").map(tok.tokenText), ["abc"])
        XCTAssertEqual(tok.encode("bc").map(tok.tokenText), ["bc"])
        XCTAssertEqual(tok.encode("cab").map(tok.tokenText), ["c", "ab"])
    }

    func testBPELeftmostOnTies() throws {
        let tok = try bpe(merges: ["a a"])
        XCTAssertEqual(tok.encode("aaa").map(tok.tokenText), ["aa", "a"])
    }

    func testSpecialTokensLongestFirst() throws {
        // "<x>" and "<x><y>" both special: the longer one is claimed first.
        let tok = try bpe(merges: [], extra: ["<x>", "<x><y>"], types: [256: 3, 257: 3])
        let ids = tok.encode("a<x><y>b<x>")
        XCTAssertEqual(ids.map(tok.tokenText), ["a", "<x><y>", "b", "<x>"])
        XCTAssertEqual(tok.encode("a<x>", parseSpecial: false).map(tok.tokenText), ["a", "<", "x", ">"])
    }

    func testUserDefinedTokensSplitEvenWithoutParseSpecial() throws {
        let tok = try bpe(merges: [], extra: ["<u>"], types: [256: 4])
        XCTAssertEqual(tok.encode("a<u>b", parseSpecial: false).map(tok.tokenText), ["a", "<u>", "b"])
    }

    func testEndOfGenerationByText() throws {
        let tok = try bpe(merges: [], extra: ["<|im_end|>", "<|endoftext|>", "<|im_start|>"], types: [256: 3, 257: 3, 258: 3])
        XCTAssertEqual(tok.eotID, 256)
        XCTAssertTrue(tok.isEndOfGeneration(256))
        XCTAssertTrue(tok.isEndOfGeneration(257))
        XCTAssertFalse(tok.isEndOfGeneration(258))
    }

    func spm(addSpacePrefix: Bool) throws -> Tokenizer {
        var tokens = ["<unk>", "<s>", "</s>"]
        var types: [Int32] = [2, 3, 3]
        var scores: [Float] = [0, 0, 0]
        for b in 0..<256 { tokens.append(String(format: "<0x%02X>", b)); types.append(6); scores.append(0) }
        for (t, s) in [("▁", -1.0), ("h", -2), ("i", -2), ("▁h", -1.5), ("hi", -0.5), ("▁hi", -0.1), ("x", -3)] as [(String, Float)] {
            tokens.append(t); types.append(1); scores.append(s)
        }
        return try Tokenizer(config: TokenizerConfig(
            model: "llama", tokens: tokens, scores: scores, tokenTypes: types,
            bosID: 1, eosID: 2, unknownID: 0, addBOS: true, addSpacePrefix: addSpacePrefix))
    }

    func testSentencePieceHighestScoreFirstAndByteFallback() throws {
        let tok = try spm(addSpacePrefix: true)
        XCTAssertEqual(tok.encode("hi").map(tok.tokenText), ["<s>", "▁hi"])
        XCTAssertEqual(tok.encode("hi hi", addSpecial: false).map(tok.tokenText), ["▁hi", "▁hi"])
        // "é" is not in the vocabulary: its two UTF-8 bytes.
        XCTAssertEqual(tok.encode("é", addSpecial: false).map(tok.tokenText), ["▁", "<0xC3>", "<0xA9>"])
        // llama_detokenize strips the prefix space from the first token only; a leading BOS takes
        // that place (and when skipSpecial drops the BOS, the space stays).
        XCTAssertEqual(tok.decode(tok.encode("hi é")), "<s> hi é")
        XCTAssertEqual(tok.decode(tok.encode("hi é"), skipSpecial: true), " hi é")
        XCTAssertEqual(tok.decode(tok.encode("hi é", addSpecial: false)), "hi é")
        // Streaming (generated text) keeps every space.
        var stream = tok.makeStreamDecoder()
        XCTAssertEqual(tok.encode("hi", addSpecial: false).map { stream.append($0) }.joined(), " hi")
        let noPrefix = try spm(addSpacePrefix: false)
        XCTAssertEqual(noPrefix.encode("hi", addSpecial: false).map(noPrefix.tokenText), ["hi"])
    }

    func testStreamDecoderBuffersIncompleteUTF8() throws {
        let tok = try spm(addSpacePrefix: false)
        let ids = Array("€".utf8).map { tok.tokenID(forPiece: String(format: "<0x%02X>", $0))! }
        var s = tok.makeStreamDecoder()
        XCTAssertEqual(ids.map { s.append($0) }, ["", "", "€"])
    }
}
