// A binary heap over an array, shared by the BPE and SentencePiece merge loops. The element
// type says which of two entries comes out first.

protocol HeapOrdered {
    /// True when `a` must be popped before `b`.
    static func before(_ a: Self, _ b: Self) -> Bool
}

struct BinaryHeap<Element: HeapOrdered> {
    private var items: [Element] = []

    init() {}

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if Element.before(items[i], items[p]) { items.swapAt(i, p); i = p } else { break }
        }
    }

    mutating func pop() -> Element? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n, Element.before(items[l], items[m]) { m = l }
                if r < n, Element.before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return first
    }
}
