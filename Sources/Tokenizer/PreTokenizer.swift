// Pre-tokenizers for byte-level BPE: split text into "words" before merges, as llama.cpp does
// for each `tokenizer.ggml.pre` type (src/llama-vocab.cpp, `LLAMA_VOCAB_PRE_TYPE_*`).
//
// llama.cpp applies a *sequence* of regexes: each one splits every fragment left by the previous
// one into its matches and the gaps between them (both kept). We do the same, but each regex is a
// hand-written matcher over Unicode scalars (`match(at:)` returns the end of the leftmost match
// starting at a position, with the regex's alternation order and backtracking), so no regex engine
// is needed. Character classes come from Unicode general categories (`\p{L}` letters, `\p{N}`
// numbers, `\p{P}` punctuation, `\p{S}` symbols, `\p{M}` marks) and `\s` is White_Space.
// The regexes each matcher implements are quoted above it; the fixture script checks the splits
// against Python's `regex` module running those same regexes.

// MARK: - Character classes

/// Unicode class bits of one scalar, as the pre-tokenizer regexes see it.
struct CharClass: OptionSet, Sendable {
    let rawValue: UInt8
    static let letter = CharClass(rawValue: 1)
    static let number = CharClass(rawValue: 2)
    static let punctuation = CharClass(rawValue: 4)
    static let symbol = CharClass(rawValue: 8)
    static let mark = CharClass(rawValue: 16)
    static let whitespace = CharClass(rawValue: 32)

    /// The class of a scalar value (table lookup for the BMP).
    @inline(__always)
    static func of(_ value: UInt32) -> CharClass {
        if value < 0x10000 { return CharClass(rawValue: bmpTable[Int(value)]) }
        guard let scalar = Unicode.Scalar(value) else { return [] }
        return compute(scalar)
    }

    static func compute(_ scalar: Unicode.Scalar) -> CharClass {
        var c: CharClass = []
        let p = scalar.properties
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            c.insert(.letter)
        case .decimalNumber, .letterNumber, .otherNumber:
            c.insert(.number)
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            c.insert(.punctuation)
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            c.insert(.symbol)
        case .nonspacingMark, .spacingMark, .enclosingMark:
            c.insert(.mark)
        default:
            break
        }
        if p.isWhitespace { c.insert(.whitespace) }
        return c
    }

    static let bmpTable: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 0x10000)
        for v in 0..<0x10000 {
            if let s = Unicode.Scalar(UInt32(v)) { table[v] = compute(s).rawValue }
        }
        return table
    }()
}

// MARK: - Pre-tokenizer kinds

/// The pre-tokenizer named by `tokenizer.ggml.pre`.
public enum PreTokenizerKind: String, Sendable, CaseIterable {
    /// llama.cpp's fallback for BPE vocabularies without (or with "default") pre type.
    case defaultBPE = "default"
    /// The original GPT-2 regex.
    case gpt2
    /// SmolLM / StarCoder: digits split one by one, then GPT-2.
    case smollm
    /// Llama 3: contractions any case, up to 3 digits, newline runs.
    case llama3 = "llama-bpe"
    /// Qwen2/3: like Llama 3 with single digits.
    case qwen2
    case deepseekLLM = "deepseek-llm"
    case deepseekV3 = "deepseek-v3"

    /// Maps a `tokenizer.ggml.pre` value (and llama.cpp's aliases) to a kind; nil means default.
    public init?(preName: String?) {
        guard let name = preName, !name.isEmpty else { self = .defaultBPE; return }
        switch name {
        case "default": self = .defaultBPE
        case "gpt2", "gpt-2", "mpt", "olmo", "jais", "trillion", "granite-docling": self = .gpt2
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b": self = .smollm
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
             "dbrx", "smaug-bpe":
            self = .llama3
        case "qwen2", "deepseek-r1-qwen", "stablelm2", "hunyuan": self = .qwen2
        case "deepseek-llm": self = .deepseekLLM
        case "deepseek-v3": self = .deepseekV3
        default: return nil
        }
    }

    /// llama.cpp's `ignore_merges`: a word that is already a vocabulary token is emitted whole.
    var ignoresMerges: Bool { self == .llama3 }

    /// The stages (regexes) in order.
    var stages: [PreTokenizer.Stage] {
        switch self {
        case .defaultBPE: return [.punctuationRun, .gpt2, .numberRun, .threeASCIIDigits]
        case .gpt2: return [.gpt2]
        case .smollm: return [.singleNumber, .gpt2]
        case .llama3: return [.llama3(maxDigits: 3)]
        case .qwen2: return [.llama3(maxDigits: 1)]
        case .deepseekLLM:
            return [.newline, .deepseekLetters, .deepseekPunctuation, .trailingWhitespace, .deepseekCJK, .numberRun]
        case .deepseekV3: return [.numbersUpTo3, .deepseekV3Kana, .deepseekV3Main]
        }
    }
}

// MARK: - Splitter

enum PreTokenizer {
    enum Stage: Sendable {
        /// `[\p{P}\$\+<=>\^~\|]+`
        case punctuationRun
        /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
        case gpt2
        /// `\p{N}+`
        case numberRun
        /// `[0-9][0-9][0-9]`
        case threeASCIIDigits
        /// `\p{N}`
        case singleNumber
        /// `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
        ///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` (Qwen2: `\p{N}` instead of `\p{N}{1,3}`)
        case llama3(maxDigits: Int)
        /// `[\r\n]`
        case newline
        /// `\s?[A-Za-zµÀ-ÖØ-öø-ƺ…]+` (deepseek-llm's explicit letter ranges)
        case deepseekLetters
        /// `\s?[!-/:-~！-／：-～‘-‟　-。]+`
        case deepseekPunctuation
        /// `\s+$`
        case trailingWhitespace
        /// `[一-龥ࠀ-一가-퟿]+`
        case deepseekCJK
        /// `\p{N}{1,3}`
        case numbersUpTo3
        /// `[一-龥぀-ゟ゠-ヿ]+`
        case deepseekV3Kana
        /// `[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
        ///  ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
        case deepseekV3Main
    }

    /// Splits scalars into word ranges (offsets into `text`), applying the stages in order.
    static func split(_ text: [UInt32], stages: [Stage]) -> [Range<Int>] {
        var fragments: [Range<Int>] = text.isEmpty ? [] : [0..<text.count]
        for stage in stages {
            var next: [Range<Int>] = []
            next.reserveCapacity(fragments.count * 2)
            for fragment in fragments {
                let m = Matcher(text: text, end: fragment.upperBound)
                var pos = fragment.lowerBound
                var gapStart = pos
                while pos < fragment.upperBound {
                    if let e = m.match(stage, at: pos), e > pos {
                        if gapStart < pos { next.append(gapStart..<pos) }
                        next.append(pos..<e)
                        pos = e
                        gapStart = e
                    } else {
                        pos += 1
                    }
                }
                if gapStart < fragment.upperBound { next.append(gapStart..<fragment.upperBound) }
            }
            fragments = next
        }
        return fragments
    }

    /// Convenience for tests: the words of a string.
    static func split(_ string: String, kind: PreTokenizerKind) -> [String] {
        let scalars = string.unicodeScalars.map(\.value)
        return split(scalars, stages: kind.stages).map { r in
            var s = String.UnicodeScalarView()
            for v in scalars[r] { s.append(Unicode.Scalar(v)!) }
            return String(s)
        }
    }
}

// MARK: - Matchers

/// Matches one stage's regex at a position inside a fragment that ends at `end`.
private struct Matcher {
    let text: [UInt32]
    let end: Int

    @inline(__always) func cls(_ i: Int) -> CharClass { i < end ? CharClass.of(text[i]) : [] }
    @inline(__always) func ch(_ i: Int) -> UInt32 { i < end ? text[i] : 0xFFFF_FFFF }

    /// End of the run of scalars from `i` whose class intersects `set`.
    @inline(__always) func run(_ i: Int, _ set: CharClass) -> Int {
        var j = i
        while j < end, !CharClass.of(text[j]).isDisjoint(with: set) { j += 1 }
        return j
    }

    @inline(__always) func runWhere(_ i: Int, _ pred: (UInt32) -> Bool) -> Int {
        var j = i
        while j < end, pred(text[j]) { j += 1 }
        return j
    }

    /// `[^\s\p{L}\p{N}]`
    @inline(__always) func isOther(_ i: Int) -> Bool {
        i < end && CharClass.of(text[i]).isDisjoint(with: [.whitespace, .letter, .number])
    }

    func match(_ stage: PreTokenizer.Stage, at i: Int) -> Int? {
        switch stage {
        case .punctuationRun:
            let j = runWhere(i) { v in
                CharClass.of(v).contains(.punctuation) || v == 0x24 || v == 0x2B || v == 0x3C || v == 0x3D
                    || v == 0x3E || v == 0x5E || v == 0x7E || v == 0x7C
            }
            return j > i ? j : nil
        case .gpt2:
            return gpt2(i)
        case .numberRun:
            let j = run(i, .number)
            return j > i ? j : nil
        case .threeASCIIDigits:
            if i + 2 < end, isASCIIDigit(text[i]), isASCIIDigit(text[i + 1]), isASCIIDigit(text[i + 2]) {
                return i + 3
            }
            return nil
        case .singleNumber:
            return cls(i).contains(.number) ? i + 1 : nil
        case .llama3(let maxDigits):
            return llama3(i, maxDigits: maxDigits)
        case .newline:
            return ch(i) == 0x0D || ch(i) == 0x0A ? i + 1 : nil
        case .deepseekLetters:
            return optionalWhitespaceThenRun(i, DeepSeekRanges.isLetter)
        case .deepseekPunctuation:
            return optionalWhitespaceThenRun(i, DeepSeekRanges.isPunctuation)
        case .trailingWhitespace:
            let j = run(i, .whitespace)
            return j > i && j == end ? j : nil
        case .deepseekCJK:
            let j = runWhere(i, DeepSeekRanges.isCJK)
            return j > i ? j : nil
        case .numbersUpTo3:
            var j = i
            while j < end, j - i < 3, CharClass.of(text[j]).contains(.number) { j += 1 }
            return j > i ? j : nil
        case .deepseekV3Kana:
            let j = runWhere(i, DeepSeekRanges.isV3Kana)
            return j > i ? j : nil
        case .deepseekV3Main:
            return deepseekV3(i)
        }
    }

    @inline(__always) func isASCIIDigit(_ v: UInt32) -> Bool { v >= 0x30 && v <= 0x39 }
    @inline(__always) func isASCIILetter(_ v: UInt32) -> Bool { (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) }
    @inline(__always) func isCRLF(_ v: UInt32) -> Bool { v == 0x0D || v == 0x0A }

    /// `\s?[set]+`
    func optionalWhitespaceThenRun(_ i: Int, _ pred: (UInt32) -> Bool) -> Int? {
        if cls(i).contains(.whitespace), i + 1 < end, pred(text[i + 1]) {
            return runWhere(i + 1, pred)
        }
        let j = runWhere(i, pred)
        return j > i ? j : nil
    }

    /// `\s+(?!\S)|\s+` (the two whitespace alternatives that end the GPT-2 family regexes).
    func whitespaceTail(_ i: Int) -> Int? {
        let j = run(i, .whitespace)
        let n = j - i
        if n == 0 { return nil }
        if j < end && n > 1 { return j - 1 }   // \s+(?!\S): leave the last space to the next word
        return j                                // at the fragment end, or a single space: \s+
    }

    /// GPT-2 contractions, case-sensitive or not.
    func contraction(_ i: Int, anyCase: Bool) -> Int? {
        guard ch(i) == 0x27, i + 1 < end else { return nil }
        func lower(_ v: UInt32) -> UInt32 { anyCase && v >= 0x41 && v <= 0x5A ? v + 32 : v }
        let a = lower(text[i + 1])
        if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 { return i + 2 }   // s t m d
        if i + 2 < end {
            let b = lower(text[i + 2])
            if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) { return i + 3 }  // re ve ll
        }
        return nil
    }

    func gpt2(_ i: Int) -> Int? {
        if let e = contraction(i, anyCase: false) { return e }
        let start = ch(i) == 0x20 ? i + 1 : i
        let c = cls(start)
        if start < end {
            if c.contains(.letter) { return run(start, .letter) }
            if c.contains(.number) { return run(start, .number) }
            if isOther(start) {
                var j = start
                while isOther(j) { j += 1 }
                return j
            }
        }
        return whitespaceTail(i)
    }

    func llama3(_ i: Int, maxDigits: Int) -> Int? {
        if let e = contraction(i, anyCase: true) { return e }
        let c0 = ch(i), k0 = cls(i)
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if k0.contains(.letter) { return run(i, .letter) }
        if !isCRLF(c0), !k0.contains(.number), cls(i + 1).contains(.letter) { return run(i + 1, .letter) }
        // \p{N}{1,maxDigits}
        if k0.contains(.number) {
            var j = i
            while j < end, j - i < maxDigits, CharClass.of(text[j]).contains(.number) { j += 1 }
            return j
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        let start = c0 == 0x20 && isOther(i + 1) ? i + 1 : i
        if isOther(start) {
            var j = start
            while isOther(j) { j += 1 }
            while j < end, isCRLF(text[j]) { j += 1 }
            return j
        }
        // \s*[\r\n]+
        let j = run(i, .whitespace)
        var lastNewline = -1
        for k in i..<j where isCRLF(text[k]) { lastNewline = k }
        if lastNewline >= 0 { return lastNewline + 1 }
        return whitespaceTail(i)
    }

    func deepseekV3(_ i: Int) -> Int? {
        let c0 = ch(i), k0 = cls(i)
        // [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+
        if DeepSeekRanges.isASCIIPunctuation(c0), i + 1 < end, isASCIILetter(text[i + 1]) {
            return runWhere(i + 1, isASCIILetter)
        }
        // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
        let letterOrMark: CharClass = [.letter, .mark]
        if !k0.isDisjoint(with: letterOrMark) { return run(i, letterOrMark) }
        if i < end, !isCRLF(c0), k0.isDisjoint(with: [.letter, .punctuation, .symbol]),
           !cls(i + 1).isDisjoint(with: letterOrMark) {
            return run(i + 1, letterOrMark)
        }
        //  ?[\p{P}\p{S}]+[\r\n]*
        let punctOrSymbol: CharClass = [.punctuation, .symbol]
        let start = c0 == 0x20 && !cls(i + 1).isDisjoint(with: punctOrSymbol) ? i + 1 : i
        if !cls(start).isDisjoint(with: punctOrSymbol) {
            var j = run(start, punctOrSymbol)
            while j < end, isCRLF(text[j]) { j += 1 }
            return j
        }
        // \s*[\r\n]+
        let j = run(i, .whitespace)
        var lastNewline = -1
        for k in i..<j where isCRLF(text[k]) { lastNewline = k }
        if lastNewline >= 0 { return lastNewline + 1 }
        return whitespaceTail(i)
    }
}

// MARK: - DeepSeek's explicit ranges

/// The literal character ranges of the deepseek regexes (copied as code points from llama.cpp).
enum DeepSeekRanges {
    static let letters: [ClosedRange<UInt32>] = [
        0x41...0x5A, 0x61...0x7A, 0xB5...0xB5, 0xC0...0xD6, 0xD8...0xF6, 0xF8...0x1BA, 0x1BC...0x1BF,
        0x1C4...0x293, 0x295...0x2AF, 0x370...0x373, 0x376...0x377, 0x37B...0x37D, 0x37F...0x37F,
        0x386...0x386, 0x388...0x38A, 0x38C...0x38C, 0x38E...0x3A1, 0x3A3...0x3F5, 0x3F7...0x481,
        0x48A...0x52F, 0x531...0x556, 0x10A0...0x10C5, 0x13A0...0x13F5, 0x13F8...0x13FD, 0x1C90...0x1CBA,
        0x1CBD...0x1CBF, 0x1D00...0x1D2B, 0x1D6B...0x1D77, 0x1D79...0x1D9A, 0x1E00...0x1F15,
        0x1F18...0x1F1D, 0x1F20...0x1F45, 0x1F48...0x1F4D, 0x1F50...0x1F57, 0x1F59...0x1F59,
        0x1F5B...0x1F5B, 0x1F5D...0x1F5D, 0x1F5F...0x1F7D, 0x1F80...0x1FB4, 0x1FB6...0x1FBC,
        0x1FBE...0x1FBE, 0x1FC2...0x1FC4, 0x1FC6...0x1FCC, 0x1FD0...0x1FD3, 0x1FD6...0x1FDB,
        0x1FE0...0x1FEC, 0x1FF2...0x1FF4, 0x1FF6...0x1FFC, 0x2102...0x2102, 0x2107...0x2107,
        0x210A...0x2113, 0x2115...0x2115, 0x2119...0x211D, 0x2124...0x2124, 0x2126...0x2126,
        0x2128...0x2128, 0x212A...0x212D, 0x212F...0x2134, 0x2139...0x2139, 0x213C...0x213F,
        0x2145...0x2149, 0x214E...0x214E, 0x2183...0x2184, 0x2C00...0x2C7B, 0x2C7E...0x2CE4,
        0x2CEB...0x2CEE, 0x2CF2...0x2CF3, 0xA640...0xA66D, 0xA680...0xA69B, 0xA722...0xA76F,
        0xA771...0xA787, 0xA78B...0xA78E, 0xAB70...0xABBF, 0xFB00...0xFB06, 0xFB13...0xFB17,
        0xFF21...0xFF3A, 0xFF41...0xFF5A, 0x10400...0x1044F, 0x104B0...0x104D3, 0x104D8...0x104FB,
        0x10C80...0x10CB2, 0x10CC0...0x10CF2, 0x118A0...0x118DF, 0x1E900...0x1E943,
    ]

    static func isLetter(_ v: UInt32) -> Bool {
        if v < 0x80 { return (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) }
        return letters.contains { $0.contains(v) }
    }

    /// `[!-/:-~！-／：-～‘-‟　-。]`
    static func isPunctuation(_ v: UInt32) -> Bool {
        (0x21...0x2F).contains(v) || (0x3A...0x7E).contains(v) || (0xFF01...0xFF0F).contains(v)
            || (0xFF1A...0xFF5E).contains(v) || (0x2018...0x201F).contains(v) || (0x3000...0x3002).contains(v)
    }

    /// `[一-龥ࠀ-一가-퟿]`
    static func isCJK(_ v: UInt32) -> Bool {
        (0x4E00...0x9FA5).contains(v) || (0x0800...0x4E00).contains(v) || (0xAC00...0xD7FF).contains(v)
    }

    /// `[一-龥぀-ゟ゠-ヿ]`
    static func isV3Kana(_ v: UInt32) -> Bool {
        (0x4E00...0x9FA5).contains(v) || (0x3040...0x309F).contains(v) || (0x30A0...0x30FF).contains(v)
    }

    /// `[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]`: all ASCII punctuation and symbols.
    static func isASCIIPunctuation(_ v: UInt32) -> Bool {
        (0x21...0x2F).contains(v) || (0x3A...0x40).contains(v) || (0x5B...0x60).contains(v) || (0x7B...0x7E).contains(v)
    }
}
