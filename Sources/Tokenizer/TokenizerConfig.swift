// Plain-data description of a tokenizer (what GGUF's `tokenizer.ggml.*` keys hold), independent of
// the GGUF reader, plus the module's error enum. `Tokenizer.init(config:)` validates and indexes it.

/// The tokenizer's vocabulary and options. Ids are Int32 like llama.cpp's `llama_token`.
public struct TokenizerConfig: Sendable {
    /// "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE).
    public var model: String
    /// `tokenizer.ggml.pre`: the BPE pre-tokenizer (see `PreTokenizerKind`); ignored for "llama".
    public var pre: String?
    /// [vocab] token pieces.
    public var tokens: [String]
    /// [vocab] SentencePiece scores.
    public var scores: [Float]?
    /// [vocab] GGUF token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    public var tokenTypes: [Int32]?
    /// BPE merges "left right", in rank order.
    public var merges: [String]?
    public var bosID: Int32?
    public var eosID: Int32?
    public var eotID: Int32?
    /// End of message (Llama 3.1 tool calls); also ends generation.
    public var eomID: Int32?
    public var unknownID: Int32?
    public var paddingID: Int32?
    public var addBOS: Bool
    public var addEOS: Bool
    /// SentencePiece: prepend a space to text (llama.cpp prepends it to each text fragment that
    /// starts the input or follows a special token) and strip it again when decoding.
    public var addSpacePrefix: Bool

    public init(
        model: String, pre: String? = nil, tokens: [String], scores: [Float]? = nil, tokenTypes: [Int32]? = nil,
        merges: [String]? = nil, bosID: Int32? = nil, eosID: Int32? = nil, eotID: Int32? = nil, eomID: Int32? = nil,
        unknownID: Int32? = nil, paddingID: Int32? = nil, addBOS: Bool = false, addEOS: Bool = false,
        addSpacePrefix: Bool = false
    ) {
        self.model = model
        self.pre = pre
        self.tokens = tokens
        self.scores = scores
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.bosID = bosID
        self.eosID = eosID
        self.eotID = eotID
        self.eomID = eomID
        self.unknownID = unknownID
        self.paddingID = paddingID
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.addSpacePrefix = addSpacePrefix
    }
}

public enum TokenizerError: Error, CustomStringConvertible {
    case unsupportedModel(String)
    case unknownPreTokenizer(String)
    case missingMerges
    case badMerge(index: Int, text: String)
    case arrayLengthMismatch(key: String, count: Int, expected: Int)
    case tokenIDOutOfRange(name: String, id: Int32, vocabularySize: Int)
    case emptyVocabulary
    case missingMetadata(String)

    public var description: String {
        switch self {
        case .unsupportedModel(let m):
            return "unsupported tokenizer model '\(m)' (supported: gpt2, llama)"
        case .unknownPreTokenizer(let p):
            let known = PreTokenizerKind.allCases.map(\.rawValue).joined(separator: ", ")
            return "unknown BPE pre-tokenizer '\(p)' (supported: \(known) and llama.cpp's aliases)"
        case .missingMerges:
            return "BPE tokenizer without tokenizer.ggml.merges"
        case .badMerge(let i, let t):
            return "BPE merge \(i) is not 'left right': \(t.debugDescription)"
        case .arrayLengthMismatch(let key, let count, let expected):
            return "\(key) has \(count) entries, expected \(expected) (one per token)"
        case .tokenIDOutOfRange(let name, let id, let n):
            return "\(name) id \(id) is outside the vocabulary of \(n) tokens"
        case .emptyVocabulary:
            return "tokenizer has no tokens"
        case .missingMetadata(let key):
            return "GGUF file lacks tokenizer metadata \(key)"
        }
    }
}
