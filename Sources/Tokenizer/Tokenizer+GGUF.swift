// Building a tokenizer from a GGUF file's `tokenizer.ggml.*` metadata, with llama.cpp's defaults
// for keys a file leaves out (llama_vocab::impl::load): SentencePiece adds BOS and a space prefix
// unless told otherwise and defaults BOS/EOS/UNK to 1/2/0; BPE adds BOS only for Llama 3 style
// pre-tokenizers.

import GGUF

extension TokenizerConfig {
    /// Reads the tokenizer metadata of a GGUF file.
    public init(gguf file: GGUFFile) throws {
        guard let model = file.string(.tokenizerModel) else { throw TokenizerError.missingMetadata(GGUFKey.tokenizerModel.template) }
        guard let tokens = file.strings(.tokens) else { throw TokenizerError.missingMetadata(GGUFKey.tokens.template) }
        let pre = file.string(.tokenizerPre)
        let isSPM = model == "llama"
        func id(_ key: GGUFKey) -> Int32? { file.int(key).map { Int32(truncatingIfNeeded: $0) } }

        var addBOS = isSPM
        if !isSPM, let kind = PreTokenizerKind(preName: pre), kind == .llama3 { addBOS = true }
        self.init(
            model: model,
            pre: pre,
            tokens: tokens,
            scores: file.floats(.scores),
            tokenTypes: file.ints(.tokenType)?.map { Int32(truncatingIfNeeded: $0) },
            merges: file.strings(.merges),
            bosID: id(.bosID) ?? (isSPM ? 1 : nil),
            eosID: id(.eosID) ?? (isSPM ? 2 : nil),
            eotID: id(.eotID),
            eomID: id(.eomID),
            unknownID: id(.unknownID) ?? (isSPM ? 0 : nil),
            paddingID: id(.paddingID),
            addBOS: file.bool(.addBOS) ?? addBOS,
            addEOS: file.bool(.addEOS) ?? false,
            addSpacePrefix: file.bool(.addSpacePrefix) ?? isSPM
        )
    }
}

extension Tokenizer {
    /// The tokenizer of a GGUF model.
    public convenience init(gguf file: GGUFFile) throws {
        try self.init(config: TokenizerConfig(gguf: file))
    }

    /// Opens a GGUF file and reads its tokenizer.
    public convenience init(ggufPath path: String) throws {
        try self.init(gguf: GGUFFile.open(path))
    }
}
