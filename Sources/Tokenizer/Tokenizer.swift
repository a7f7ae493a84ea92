// Tokenizer: text ⇄ token ids for GGUF models, matching llama.cpp's `llama_tokenize` and
// `llama_token_to_piece` id for id. Encoding: special tokens written in the text are cut out
// (SpecialTokens.swift), each remaining text fragment goes through the model's tokenizer —
// byte-level BPE with a pre-tokenizer (BytePairEncoding.swift, PreTokenizer.swift) or SentencePiece
// (SentencePiece.swift) — and BOS/EOS are added as the metadata says. Decoding maps each id to its
// bytes (GPT-2 byte chars undone, "▁" → space, `<0xNN>` → the byte); `StreamDecoder` emits only
// complete UTF-8 across token boundaries.

public final class Tokenizer: Sendable {
    enum Model: Sendable {
        case bpe(BPEMerges, PreTokenizerKind)
        case sentencePiece(SentencePieceModel)
    }

    let vocab: Vocabulary
    let model: Model
    let special: SpecialTokenMatcher
    /// [vocab] bytes each token decodes to (special tokens as their text).
    let decoded: [[UInt8]]
    let endOfGeneration: Set<Int32>

    public let bosID: Int32?
    public let eosID: Int32?
    public let eotID: Int32?
    public let eomID: Int32?
    public let unknownID: Int32?
    public let paddingID: Int32?
    public let addBOS: Bool
    public let addEOS: Bool
    public let addSpacePrefix: Bool
    /// The model name from the config ("gpt2" or "llama").
    public let modelName: String

    public init(config: TokenizerConfig) throws {
        let n = config.tokens.count
        guard n > 0 else { throw TokenizerError.emptyVocabulary }
        if let s = config.scores, s.count < n {
            throw TokenizerError.arrayLengthMismatch(key: "scores", count: s.count, expected: n)
        }
        if let t = config.tokenTypes, t.count < n {
            throw TokenizerError.arrayLengthMismatch(key: "token types", count: t.count, expected: n)
        }
        let pieces = config.tokens.map { Array($0.utf8) }
        var attributes = (0..<n).map { TokenAttributes(tokenType: config.tokenTypes?[$0]) }

        func check(_ name: String, _ id: Int32?) throws -> Int32? {
            guard let id else { return nil }
            guard id >= 0, Int(id) < n else { throw TokenizerError.tokenIDOutOfRange(name: name, id: id, vocabularySize: n) }
            return id
        }
        bosID = try check("BOS", config.bosID)
        eosID = try check("EOS", config.eosID)
        unknownID = try check("UNK", config.unknownID)
        paddingID = try check("PAD", config.paddingID)

        // llama.cpp's fix-ups by token text: EOT/EOM when the metadata names none, the
        // end-of-generation set, and control type for end-of-generation tokens.
        var byText: [String: Int32] = [:]
        for (i, t) in config.tokens.enumerated() where t.hasPrefix("<") || t.hasPrefix("[") || t.hasPrefix("_") {
            byText[t] = Int32(i)
        }
        eotID = try check("EOT", config.eotID) ?? EndOfGeneration.eotTexts.lazy.compactMap { byText[$0] }.first
        eomID = try check("EOM", config.eomID) ?? EndOfGeneration.eomTexts.lazy.compactMap { byText[$0] }.first
        var eog = Set<Int32>()
        for (text, id) in byText where EndOfGeneration.eogTexts.contains(text) { eog.insert(id) }
        for list in EndOfGeneration.fimLists {
            if let id = list.lazy.compactMap({ byText[$0] }).first { eog.insert(id) }
        }
        for id in eog { attributes[Int(id)].insert(.control) }
        for id in [eosID, eotID, eomID].compactMap({ $0 }) { eog.insert(id) }
        endOfGeneration = eog

        let vocab = Vocabulary(pieces: pieces, attributes: attributes, scores: config.scores ?? [Float](repeating: 0, count: n))
        self.vocab = vocab
        modelName = config.model
        switch config.model {
        case "gpt2":
            guard let kind = PreTokenizerKind(preName: config.pre) else {
                throw TokenizerError.unknownPreTokenizer(config.pre ?? "")
            }
            guard let merges = config.merges else { throw TokenizerError.missingMerges }
            model = .bpe(try BPEMerges(merges: merges, vocab: vocab), kind)
        case "llama":
            model = .sentencePiece(SentencePieceModel(vocab: vocab))
        default:
            throw TokenizerError.unsupportedModel(config.model)
        }
        addBOS = config.addBOS
        addEOS = config.addEOS
        addSpacePrefix = config.addSpacePrefix
        special = SpecialTokenMatcher(vocab: vocab)

        let isBPE = config.model == "gpt2"
        decoded = (0..<n).map { i in
            let a = attributes[i]
            let piece = pieces[i]
            if !a.isDisjoint(with: [.control, .unknown, .userDefined]) { return piece }
            if a.contains(.normal) {
                return isBPE ? GPT2Bytes.decode(config.tokens[i]) : replacing(piece, escapedSpace, with: [0x20])
            }
            if a.contains(.byte), piece.count == 6, let b = UInt8(String(decoding: piece[3..<5], as: UTF8.self), radix: 16) {
                return [b]
            }
            return []
        }
    }

    // MARK: - Vocabulary

    public var vocabularySize: Int { vocab.count }

    /// The raw vocabulary piece (GPT-2 byte chars or "▁" not undone).
    public func tokenText(_ id: Int32) -> String {
        guard id >= 0, Int(id) < vocab.count else { return "" }
        return String(decoding: vocab.pieces[Int(id)], as: UTF8.self)
    }

    /// The token's attributes (control, user-defined, byte…), nil for an id outside the vocabulary.
    public func attributes(of id: Int32) -> TokenAttributes? {
        guard id >= 0, Int(id) < vocab.count else { return nil }
        return vocab.attributes[Int(id)]
    }

    /// The id of a vocabulary piece written exactly (e.g. "<|im_end|>").
    public func tokenID(forPiece piece: String) -> Int32? { vocab.id(of: piece) }

    /// EOS, EOT, EOM and the other tokens llama.cpp treats as end of generation.
    public func isEndOfGeneration(_ id: Int32) -> Bool { endOfGeneration.contains(id) }

    /// All end-of-generation ids, sorted.
    public var endOfGenerationIDs: [Int32] { endOfGeneration.sorted() }

    // MARK: - Encoding

    /// Token ids of `text`. `addSpecial` adds BOS/EOS as the model's metadata says; `parseSpecial`
    /// turns control tokens written in the text (e.g. "<|im_start|>") into their ids.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = true) -> [Int32] {
        let bytes = Array(text.utf8)
        var out: [Int32] = []
        out.reserveCapacity(bytes.count / 3 + 2)
        if addSpecial, addBOS, let bos = bosID { out.append(bos) }
        let fragments = special.partition(bytes, vocab: vocab, parseSpecial: parseSpecial)
        switch model {
        case .sentencePiece(let spm):
            var previousIsSpecial = true
            for f in fragments {
                switch f {
                case .token(let id):
                    out.append(id)
                    previousIsSpecial = true
                case .text(let r):
                    var t: [UInt8] = []
                    t.reserveCapacity(r.count + 8)
                    if addSpacePrefix, previousIsSpecial { t.append(contentsOf: escapedSpace) }
                    for b in bytes[r] {
                        if b == 0x20 { t.append(contentsOf: escapedSpace) } else { t.append(b) }
                    }
                    spm.encode(t, vocab: vocab, unknownID: unknownID, into: &out)
                    previousIsSpecial = false
                }
            }
        case .bpe(let merges, let kind):
            var cache: [[UInt8]: [Int32]] = [:]
            for f in fragments {
                switch f {
                case .token(let id): out.append(id)
                case .text(let r): encodeBPE(bytes[r], merges: merges, kind: kind, cache: &cache, into: &out)
                }
            }
        }
        if addSpecial, addEOS, let eos = eosID { out.append(eos) }
        return out
    }

    private func encodeBPE(
        _ bytes: ArraySlice<UInt8>, merges: BPEMerges, kind: PreTokenizerKind,
        cache: inout [[UInt8]: [Int32]], into out: inout [Int32]
    ) {
        // Scalars and the byte offset where each starts (the fragment is valid UTF-8).
        var scalars: [UInt32] = []
        var offsets: [Int] = []
        scalars.reserveCapacity(bytes.count)
        offsets.reserveCapacity(bytes.count + 1)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b0 = bytes[i]
            let len = min(utf8Length(lead: b0), bytes.endIndex - i)
            var v: UInt32
            switch len {
            case 2: v = UInt32(b0 & 0x1F)
            case 3: v = UInt32(b0 & 0x0F)
            case 4: v = UInt32(b0 & 0x07)
            default: v = UInt32(b0)
            }
            if len > 1 { for k in 1..<len { v = v << 6 | UInt32(bytes[i + k] & 0x3F) } }
            scalars.append(v)
            offsets.append(i)
            i += len
        }
        offsets.append(bytes.endIndex)
        for word in PreTokenizer.split(scalars, stages: kind.stages) {
            let key = Array(bytes[offsets[word.lowerBound]..<offsets[word.upperBound]])
            if let ids = cache[key] { out.append(contentsOf: ids); continue }
            var ids: [Int32] = []
            merges.encode(word: key[...], vocab: vocab, ignoreMerges: kind.ignoresMerges, into: &ids)
            cache[key] = ids
            out.append(contentsOf: ids)
        }
    }

    // MARK: - Decoding

    /// The bytes of one token; control and unknown tokens are empty when `skipSpecial`.
    public func pieceBytes(_ id: Int32, skipSpecial: Bool = false) -> [UInt8] {
        guard id >= 0, Int(id) < vocab.count else { return [] }
        if skipSpecial, !vocab.attributes[Int(id)].isDisjoint(with: [.control, .unknown]) { return [] }
        return decoded[Int(id)]
    }

    /// Text of `ids` (llama.cpp `llama_detokenize` without space clean-up). With `skipSpecial`,
    /// control tokens are dropped, and a leading BOS / trailing EOS the tokenizer adds is removed.
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        var ids = ids[...]
        var removeSpace = addSpacePrefix
        if skipSpecial, addBOS, let bos = bosID, ids.first == bos { ids = ids.dropFirst(); removeSpace = false }
        if skipSpecial, addEOS, let eos = eosID, ids.last == eos { ids = ids.dropLast() }
        for id in ids {
            var p = pieceBytes(id, skipSpecial: skipSpecial)[...]
            if removeSpace, p.first == 0x20 { p = p.dropFirst() }
            removeSpace = false
            bytes.append(contentsOf: p)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A decoder for generated tokens that emits only complete UTF-8 characters.
    public func makeStreamDecoder(skipSpecial: Bool = false) -> StreamDecoder {
        StreamDecoder(tokenizer: self, skipSpecial: skipSpecial)
    }
}

// MARK: - Streaming

/// Turns tokens into text as they are generated. A character whose bytes are split across tokens
/// (byte-fallback tokens, GPT-2 byte pieces of an emoji) is held back until it is complete.
/// Unlike `decode`, no prefix space is stripped: generated text continues a prompt (as llama.cpp's
/// `common_token_to_piece` streaming does).
public struct StreamDecoder: Sendable {
    let tokenizer: Tokenizer
    let skipSpecial: Bool
    private var pending: [UInt8] = []

    init(tokenizer: Tokenizer, skipSpecial: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// The text that became complete with this token (often the whole piece, sometimes "").
    public mutating func append(_ id: Int32) -> String {
        pending.append(contentsOf: tokenizer.pieceBytes(id, skipSpecial: skipSpecial))
        let cut = completePrefixLength(pending)
        if cut == 0 { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Whatever is held back (an incomplete character becomes U+FFFD).
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return pending.isEmpty ? "" : String(decoding: pending, as: UTF8.self)
    }

    /// Length of the prefix that does not end inside a possibly still incomplete character.
    private func completePrefixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        var k = n - 1
        // Walk back over at most 3 continuation bytes to the last lead byte.
        while k >= 0, n - k <= 4, b[k] & 0xC0 == 0x80 { k -= 1 }
        if k < 0 || n - k > 4 { return n }
        let need = utf8Length(lead: b[k])
        let lead = b[k]
        let isLead = lead >= 0xC2 && lead <= 0xF4
        if isLead, n - k < need { return k }   // incomplete: hold back from the lead byte
        return n
    }
}

// MARK: - Helpers

/// "▁" (U+2581), SentencePiece's space.
let escapedSpace: [UInt8] = [0xE2, 0x96, 0x81]

func replacing(_ bytes: [UInt8], _ pattern: [UInt8], with replacement: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = 0
    while i < bytes.count {
        if i + pattern.count <= bytes.count, bytes[i] == pattern[0], Array(bytes[i..<(i + pattern.count)]) == pattern {
            out.append(contentsOf: replacement)
            i += pattern.count
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    return out
}
