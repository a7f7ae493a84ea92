// SentencePiece BPE (`tokenizer.ggml.model = "llama"`), as llama.cpp's `llm_tokenizer_spm_session`:
// the text (spaces already replaced by U+2581 "▁") starts as one symbol per UTF-8 character; the
// adjacent pair whose concatenation is a vocabulary token with the highest score is merged
// (leftmost on ties) until no pair forms a token. A final symbol that is not a token falls back to
// its bytes as `<0xNN>` tokens (or a token spelling the single byte, or UNK).

struct SentencePieceModel: Sendable {
    /// byte → `<0xNN>` token (or the one-byte piece), -1 when neither exists.
    let byteToken: [Int32]

    init(vocab: Vocabulary) {
        let hex = Array("0123456789ABCDEF".utf8)
        byteToken = (0..<256).map { b in
            let name: [UInt8] = Array("<0x".utf8) + [hex[b >> 4], hex[b & 15], UInt8(ascii: ">")]
            return vocab.id(of: name) ?? vocab.id(of: [UInt8(b)]) ?? -1
        }
    }

    /// Encodes escaped UTF-8 bytes, appending token ids.
    func encode(_ text: [UInt8], vocab: Vocabulary, unknownID: Int32?, into out: inout [Int32]) {
        if text.isEmpty { return }
        // One symbol per UTF-8 character (by lead byte, clipped to the text).
        var starts: [Int] = []
        var lengths: [Int] = []
        var o = 0
        while o < text.count {
            let len = min(utf8Length(lead: text[o]), text.count - o)
            starts.append(o); lengths.append(len)
            o += len
        }
        let n = starts.count
        var next = Array(1...n); next[n - 1] = -1
        var prev = Array(-1..<(n - 1))

        var heap = ScoreHeap()
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let piece = text[starts[l]..<(starts[l] + lengths[l] + lengths[r])]
            guard let id = vocab.id(of: piece) else { return }
            heap.push(.init(score: vocab.scores[Int(id)], left: l, right: r, size: piece.count))
        }
        for i in 1..<n { tryAdd(i - 1, i) }
        while let top = heap.pop() {
            let l = top.left, r = top.right
            guard lengths[l] > 0, lengths[r] > 0, lengths[l] + lengths[r] == top.size else { continue }
            lengths[l] += lengths[r]
            lengths[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            tryAdd(prev[l], l)
            tryAdd(l, next[l])
        }

        var i = 0
        while i >= 0 {
            let piece = text[starts[i]..<(starts[i] + lengths[i])]
            if let id = vocab.id(of: piece) {
                out.append(id)
            } else {
                for b in piece {
                    let t = byteToken[Int(b)]
                    if t >= 0 { out.append(t) } else if let u = unknownID { out.append(u) }
                }
            }
            i = next[i]
        }
    }
}

@inline(__always)
func utf8Length(lead: UInt8) -> Int {
    switch lead >> 4 {
    case 0xC, 0xD: return 2
    case 0xE: return 3
    case 0xF: return 4
    default: return 1
    }
}

/// A candidate SentencePiece merge; the heap pops the highest score (then leftmost) first.
struct ScoreEntry: HeapOrdered {
    var score: Float; var left: Int; var right: Int; var size: Int

    @inline(__always) static func before(_ a: ScoreEntry, _ b: ScoreEntry) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }
}

typealias ScoreHeap = BinaryHeap<ScoreEntry>
