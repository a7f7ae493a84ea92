// Special tokens written in text (llama.cpp `tokenizer_st_partition`): every CONTROL, USER_DEFINED
// and UNKNOWN token whose piece occurs in the input is cut out as its own token before the model
// tokenizes the text between them. llama.cpp goes through the special tokens longest first and, for
// each, takes its leftmost non-overlapping occurrences inside the text not yet claimed. We find all
// occurrences in one pass with a byte trie, then claim them in that same priority order, which gives
// the same partition. With `parseSpecial` off, CONTROL and UNKNOWN tokens are plain text;
// USER_DEFINED tokens are still cut out (as in llama.cpp and HF tokenizers).
//
// Also here: llama.cpp's end-of-generation detection by token text.

struct SpecialTokenMatcher: Sendable {
    /// Trie over piece bytes. `children[node]` maps a byte to the child node; `terminal[node]` is the
    /// token ending there (-1 none).
    private var children: [[UInt8: Int32]] = [[:]]
    private var terminal: [Int32] = [-1]
    /// Token ids in claim order: longer pieces first, then lower id.
    let priority: [Int32: Int]
    let isEmpty: Bool

    init(vocab: Vocabulary) {
        var ids: [Int32] = []
        for i in 0..<vocab.count {
            let a = vocab.attributes[i]
            if !a.isDisjoint(with: [.control, .userDefined, .unknown]), !vocab.pieces[i].isEmpty { ids.append(Int32(i)) }
        }
        ids.sort { a, b in
            let la = vocab.pieces[Int(a)].count, lb = vocab.pieces[Int(b)].count
            return la != lb ? la > lb : a < b
        }
        var priority: [Int32: Int] = [:]
        for (rank, id) in ids.enumerated() { priority[id] = rank }
        self.priority = priority
        self.isEmpty = ids.isEmpty
        for id in ids { insert(vocab.pieces[Int(id)], id) }
    }

    private mutating func insert(_ piece: [UInt8], _ id: Int32) {
        var node = 0
        for b in piece {
            if let c = children[node][b] {
                node = Int(c)
            } else {
                children.append([:]); terminal.append(-1)
                let c = Int32(children.count - 1)
                children[node][b] = c
                node = Int(c)
            }
        }
        if terminal[node] < 0 { terminal[node] = id }
    }

    enum Fragment { case text(Range<Int>), token(Int32) }

    /// Splits UTF-8 text into raw-text ranges and special tokens.
    func partition(_ text: [UInt8], vocab: Vocabulary, parseSpecial: Bool) -> [Fragment] {
        if text.isEmpty { return [] }
        if isEmpty { return [.text(0..<text.count)] }
        // All occurrences, grouped by token.
        var occurrences: [Int32: [Int]] = [:]
        for start in 0..<text.count {
            var node = 0
            var i = start
            while i < text.count, let c = children[node][text[i]] {
                node = Int(c); i += 1
                let t = terminal[node]
                if t >= 0 {
                    if !parseSpecial, !vocab.attributes[Int(t)].isDisjoint(with: [.control, .unknown]) { continue }
                    occurrences[t, default: []].append(start)
                }
            }
        }
        if occurrences.isEmpty { return [.text(0..<text.count)] }
        // Claim in priority order.
        var owner = [Int32](repeating: -1, count: text.count)
        var claims: [(start: Int, id: Int32)] = []
        for id in occurrences.keys.sorted(by: { priority[$0]! < priority[$1]! }) {
            let len = vocab.pieces[Int(id)].count
            var lastEnd = -1
            for start in occurrences[id]! where start >= lastEnd {
                if owner[start] >= 0 || owner[start + len - 1] >= 0 { continue }   // the common overlap, fast
                var free = true
                for k in start..<(start + len) where owner[k] >= 0 { free = false; break }
                if !free { continue }
                for k in start..<(start + len) { owner[k] = id }
                claims.append((start, id))
                lastEnd = start + len
            }
        }
        claims.sort { $0.start < $1.start }
        var out: [Fragment] = []
        var pos = 0
        for c in claims {
            if c.start > pos { out.append(.text(pos..<c.start)) }
            out.append(.token(c.id))
            pos = c.start + vocab.pieces[Int(c.id)].count
        }
        if pos < text.count { out.append(.text(pos..<text.count)) }
        return out
    }
}

// MARK: - End of generation

enum EndOfGeneration {
    /// Texts llama.cpp takes as the EOT token when the metadata names none, in preference order.
    static let eotTexts = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
        "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
    ]
    static let eomTexts = ["<|eom_id|>"]
    /// Texts of tokens that end generation (llama.cpp `special_eog_ids`).
    static let eogTexts: Set<String> = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
        "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>",
        "<｜end▁of▁sentence｜>", "</s>", "<|calls|>", "<|flush|>", "<eos>", "<turn|>", "<|tool_response>", "[e~[",
    ]
    /// Fill-in-the-middle pad / repo / file-separator tokens, which llama.cpp also treats as EOG
    /// (the first present of each list).
    static let fimLists: [[String]] = [
        ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
        ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"],
        ["<|file_sep|>"],
    ]
}
