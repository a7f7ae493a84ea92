// The vocabulary: token pieces (as UTF-8 bytes, so lookups never go through String's Unicode
// canonical equivalence, which would merge distinct tokens such as "é" and "e\u{301}"), per-token
// attributes from `tokenizer.ggml.token_type`, and the byte-keyed piece → id map.
// Token types follow llama.cpp `llama_token_type`: 0 undefined, 1 normal, 2 unknown, 3 control,
// 4 user-defined, 5 unused, 6 byte.

/// What a token is (llama.cpp `llama_token_attr`).
public struct TokenAttributes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let undefined = TokenAttributes(rawValue: 1 << 0)
    public static let unknown = TokenAttributes(rawValue: 1 << 1)
    public static let unused = TokenAttributes(rawValue: 1 << 2)
    public static let normal = TokenAttributes(rawValue: 1 << 3)
    public static let control = TokenAttributes(rawValue: 1 << 4)
    public static let userDefined = TokenAttributes(rawValue: 1 << 5)
    public static let byte = TokenAttributes(rawValue: 1 << 6)

    /// From a GGUF token type; tokens without types are normal.
    public init(tokenType: Int32?) {
        switch tokenType {
        case nil, 1: self = .normal
        case 2: self = .unknown
        case 3: self = .control
        case 4: self = .userDefined
        case 5: self = .unused
        case 6: self = .byte
        default: self = .undefined
        }
    }
}

struct Vocabulary: Sendable {
    /// [vocab] raw pieces as UTF-8 bytes.
    let pieces: [[UInt8]]
    /// [vocab] attributes (after llama.cpp's fix-ups: end-of-generation texts become control).
    let attributes: [TokenAttributes]
    /// [vocab] SentencePiece scores (0 when absent).
    let scores: [Float]
    private let ids: [[UInt8]: Int32]

    init(pieces: [[UInt8]], attributes: [TokenAttributes], scores: [Float]) {
        self.pieces = pieces
        self.attributes = attributes
        self.scores = scores
        var ids: [[UInt8]: Int32] = [:]
        ids.reserveCapacity(pieces.count)
        for (i, p) in pieces.enumerated() { ids[p] = Int32(i) }   // a duplicate piece: the last id wins
        self.ids = ids
    }

    var count: Int { pieces.count }

    @inline(__always) func id(of piece: [UInt8]) -> Int32? { ids[piece] }
    @inline(__always) func id(of piece: ArraySlice<UInt8>) -> Int32? { ids[Array(piece)] }
    func id(of piece: String) -> Int32? { ids[Array(piece.utf8)] }
}
