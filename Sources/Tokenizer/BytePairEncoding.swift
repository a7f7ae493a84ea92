// Byte-level BPE (GPT-2 style, `tokenizer.ggml.model = "gpt2"`), as llama.cpp's
// `llm_tokenizer_bpe_session`: each pre-tokenized word is turned into bytes, each byte into the
// vocabulary token of its GPT-2 "byte char" (printable stand-ins for the 256 byte values), then the
// adjacent pair with the lowest merge rank is merged (leftmost on ties) until no pair has a rank.
// Merges come from `tokenizer.ggml.merges` ("left right", rank = index) and are keyed by the pair
// of token ids, so the merge loop never builds strings.

// MARK: - GPT-2 byte chars

enum GPT2Bytes {
    /// byte → the code point GPT-2 uses for it.
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var isDirect = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { isDirect[b] = true }
        for b in 0xA1...0xAC { isDirect[b] = true }
        for b in 0xAE...0xFF { isDirect[b] = true }
        var n: UInt32 = 0
        for b in 0..<256 {
            if isDirect[b] { table[b] = UInt32(b) } else { table[b] = 256 + n; n += 1 }
        }
        return table
    }()

    /// code point → byte, for the 256 byte chars.
    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for b in 0..<256 { map[byteToScalar[b]] = UInt8(b) }
        return map
    }()

    /// The UTF-8 of byte `b`'s stand-in char.
    static func utf8(ofByte b: UInt8) -> [UInt8] {
        Array(String(Character(Unicode.Scalar(byteToScalar[Int(b)])!)).utf8)
    }

    /// Decodes a vocabulary piece written in byte chars back to raw bytes (llama.cpp
    /// `llama_decode_text`; a char that is not a byte char is kept as its UTF-8).
    static func decode(_ piece: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(piece.utf8.count)
        for s in piece.unicodeScalars {
            if let b = scalarToByte[s.value] { out.append(b) } else { out.append(contentsOf: String(s).utf8) }
        }
        return out
    }
}

// MARK: - Merge table

struct BPEMerges: Sendable {
    struct Merge: Sendable { var rank: Int32; var result: Int32 }

    /// (left id << 32 | right id) → rank and merged token id.
    let table: [UInt64: Merge]
    /// byte → id of its byte-char token (-1 when missing).
    let byteToken: [Int32]

    @inline(__always) static func key(_ l: Int32, _ r: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
    }

    init(merges: [String], vocab: Vocabulary) throws {
        var table: [UInt64: Merge] = [:]
        table.reserveCapacity(merges.count)
        for (rank, line) in merges.enumerated() {
            // llama.cpp splits at the first space after position 0.
            let bytes = Array(line.utf8)
            guard bytes.count > 1, let sp = bytes[1...].firstIndex(of: 0x20) else {
                throw TokenizerError.badMerge(index: rank, text: line)
            }
            let left = Array(bytes[..<sp]), right = Array(bytes[(sp + 1)...])
            guard let l = vocab.id(of: left), let r = vocab.id(of: right), let m = vocab.id(of: left + right) else {
                continue   // a merge whose parts are not tokens can never fire on token symbols
            }
            let k = Self.key(l, r)
            if table[k] == nil { table[k] = Merge(rank: Int32(rank), result: m) }
        }
        self.table = table
        self.byteToken = (0..<256).map { b in vocab.id(of: GPT2Bytes.utf8(ofByte: UInt8(b))) ?? -1 }
    }
}

// MARK: - Merging one word

extension BPEMerges {
    /// Token ids of one word given as raw UTF-8 bytes.
    func encode(word: ArraySlice<UInt8>, vocab: Vocabulary, ignoreMerges: Bool, into out: inout [Int32]) {
        if word.isEmpty { return }
        if ignoreMerges {
            let encoded = word.flatMap { GPT2Bytes.utf8(ofByte: $0) }
            if let id = vocab.id(of: encoded) { out.append(id); return }
        }
        // Symbols: one per byte, linked list; a missing byte char leaves a hole (-1).
        var ids = word.map { byteToken[Int($0)] }
        let n = ids.count
        if n == 1 {
            if ids[0] >= 0 { out.append(ids[0]) }
            return
        }
        var next = Array(1...n); next[n - 1] = -1
        var prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)

        var heap = PairHeap()
        for i in 0..<(n - 1) { push(i, i + 1, ids, &heap) }
        while let top = heap.pop() {
            let l = top.left, r = top.right
            guard alive[l], alive[r], next[l] == r, top.leftID == ids[l], top.rightID == ids[r] else { continue }
            ids[l] = top.result
            alive[r] = false
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            if prev[l] >= 0 { push(prev[l], l, ids, &heap) }
            if next[l] >= 0 { push(l, next[l], ids, &heap) }
        }
        var i = 0
        while i >= 0 {
            if ids[i] >= 0 { out.append(ids[i]) }
            i = next[i]
        }
    }

    @inline(__always)
    private func push(_ l: Int, _ r: Int, _ ids: [Int32], _ heap: inout PairHeap) {
        let a = ids[l], b = ids[r]
        guard a >= 0, b >= 0, let m = table[Self.key(a, b)] else { return }
        heap.push(.init(rank: m.rank, left: l, right: r, leftID: a, rightID: b, result: m.result))
    }
}

/// A candidate BPE merge; the heap pops the lowest (rank, left position) first.
struct PairEntry: HeapOrdered {
    var rank: Int32; var left: Int; var right: Int; var leftID: Int32; var rightID: Int32; var result: Int32

    @inline(__always) static func before(_ a: PairEntry, _ b: PairEntry) -> Bool {
        a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
    }
}

typealias PairHeap = BinaryHeap<PairEntry>
