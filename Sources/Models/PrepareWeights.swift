// Building the kernels' weight layouts at load time instead of on the first forward pass: every
// Linear module and every routed expert's matrices are handed to the operators the placement
// bound them to (`LinearOperator.prepare`, `ExpertsOperator.prepare`: the CPU kernels repack
// quantized weights into SIMD panels and drop the file pages they replace). The work is split
// over the thread pool; the first token then pays nothing, and benchmarks time kernels only.
import CPUKernels
import Foundation
import Operators

extension DecoderModel {
    /// The model's weight matrices, each with the module whose operator runs it.
    public enum WeightUse {
        case linear(String, WeightMatrix)
        case experts(String, WeightMatrix)
    }

    /// Every Linear module and routed-expert matrix of the model (found by walking the layers'
    /// stored properties, so that new blocks need no registration here).
    public func weightUses() -> [WeightUse] {
        var uses: [WeightUse] = []
        func walk(_ value: Any, depth: Int) {
            if let l = value as? Linear { uses.append(.linear(l.name, l.weight)); return }
            if let m = value as? MoEFeedForward {
                for w in m.experts.gate + m.experts.up + m.experts.down { uses.append(.experts(m.expertsName, w)) }
                walk(m.router, depth: depth + 1)
                if let s = m.shared { walk(s, depth: depth + 1) }
                if let g = m.sharedGate { walk(g, depth: depth + 1) }
                return
            }
            guard depth < 8, !(value is WeightMatrix) else { return }
            let mirror = Mirror(reflecting: value)
            switch mirror.displayStyle {
            case .struct?, .class?, .enum?, .optional?, .tuple?: break
            case .collection?:
                // Arrays of blocks (per-head Linear lists); never numeric payloads.
                guard let first = mirror.children.first?.value, !(first is Float), !(first is Int32), !(first is UInt8) else { return }
            default: return
            }
            for child in mirror.children { walk(child.value, depth: depth + 1) }
        }
        for layer in layers { walk(layer, depth: 0) }
        uses.append(.linear(lmHead.name, lmHead.weight))
        return uses
    }

    /// Prepares every matrix for the operators `context` binds (both phases), in parallel;
    /// with `boundOnly`, only the modules the binding names (a split model's CPU side).
    /// Returns the number of matrices that got a new layout and the bytes allocated.
    @discardableResult
    public func prepareWeights(context: ForwardContext, boundOnly: Bool = false) -> (matrices: Int, bytes: Int) {
        let ops = context.operators
        let uses = weightUses().filter { use in
            guard boundOnly else { return true }
            switch use {
            case let .linear(name, _): return ops.linear[name] != nil
            case let .experts(name, _): return ops.experts[name] != nil
            }
        }
        let jobs: [() -> Int] = uses.map { use in
            switch use {
            case let .linear(name, w):
                let p = ops.linear[name] ?? ops.fallbackLinear
                return { p.prefill.name == p.generate.name ? p.prefill.prepare(w) : p.prefill.prepare(w) + p.generate.prepare(w) }
            case let .experts(name, w):
                let p = ops.experts[name] ?? ops.fallbackExperts
                return { p.prefill.name == p.generate.name ? p.prefill.prepare(w) : p.prefill.prepare(w) + p.generate.prepare(w) }
            }
        }
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 2 * context.pool.threadCount)
        counts.initialize(repeating: 0, count: 2 * context.pool.threadCount)
        defer { counts.deallocate() }
        let c = UnsafeSendable(counts)
        context.pool.run { thread, threads in
            var i = thread
            while i < jobs.count {
                let bytes = jobs[i]()
                if bytes > 0 { c.pointer[2 * thread] += 1; c.pointer[2 * thread + 1] += bytes }
                i += threads
            }
        }
        // Embedding rows are looked up one token at a time; when the table is also the (repacked)
        // LM head its file pages were dropped, and each lookup should bring back one page only.
        if !boundOnly { tokenEmbedding.adviseRandomAccess() }
        var matrices = 0, bytes = 0
        for t in 0..<context.pool.threadCount { matrices += counts[2 * t]; bytes += counts[2 * t + 1] }
        return (matrices, bytes)
    }
}
