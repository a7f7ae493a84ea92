// `swiftkt synth`: write a synthetic GGUF (random weights, real layout) for tests and benchmarks,
// or upcycle a dense llama model into an equivalent mixture of experts (Models/Upcycle.swift).
import ArgumentParser
import Core
import Engine
import Foundation
import GGUF
import Models

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a synthetic GGUF model with seeded random weights, or upcycle a dense model into an MoE.",
        discussion: """
        Presets: \(SyntheticModel.presets.keys.sorted().map { "\($0): \(SyntheticModel.presets[$0]!.map(\.name).joined(separator: ", "))" }.joined(separator: "; "))
        (mixtral files are general.architecture = llama with experts, as llama.cpp expects.)
        Example: swiftkt synth --arch llama --shape llama3-8b --type q4_K --seed 1 -o llama8b.gguf

        --upcycle MODEL --experts N: split every FFN of a dense llama GGUF (a path or a model name)
        into N experts along its intermediate dimension, with a router that selects all of them
        with weight 1 (N a power of two; the width / N a multiple of ffn_down's quant block).
        The result is a Mixtral-style GGUF whose greedy output equals the dense model's.
        Example: swiftkt synth --upcycle smollm2-135m-instruct --experts 4 -o smollm2-moe4.gguf
        """)

    @Option(help: "Architecture (general.architecture, or mixtral). Default: llama.")
    var arch: String?

    @Option(help: "Shape preset of the architecture. Default: tiny.")
    var shape: String?

    @Option(help: "Weight type of the 2-D weights (f32, f16, q4_0, q4_K, …). Default: q4_K.")
    var type: String?

    @Option(name: .customLong("down-type"), help: "Weight type of the down projections instead (q6_K with --type q4_K: a Q4_K_M-like mix).")
    var downType: String?

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Option(help: "A dense llama GGUF (path or model name) to split into experts instead of random weights.")
    var upcycle: String?

    @Option(help: "Experts per FFN with --upcycle (a power of two).")
    var experts: Int = 4

    @Option(name: [.customShort("o"), .long], help: "Output file.")
    var output: String

    func run() throws {
        let started = Date()
        func stage(_ s: String) { try? FileHandle.standardError.write(contentsOf: Data("\r\u{1B}[Kgenerating \(s)".utf8)) }
        let writer: GGUFWriter
        if let upcycle {
            guard arch == nil, shape == nil, type == nil, downType == nil else {
                throw ValidationError("--upcycle takes its architecture, shape and weight types from the model; "
                                      + "leave out --arch, --shape and --type")
            }
            let path = try ModelStore.resolve(upcycle)
            writer = try Upcycle.build(from: try GGUFFile.open(path), experts: experts, progress: stage)
        } else {
            let typeName = type ?? "q4_K"
            guard let t = GGMLType(name: typeName) else {
                throw ValidationError("unknown type '\(typeName)'; known: \(GGMLType.allCases.filter { Quant.canQuantize($0) }.map(\.name).joined(separator: ", "))")
            }
            let down = try downType.map { name -> GGMLType in
                guard let d = GGMLType(name: name) else { throw ValidationError("unknown --down-type '\(name)'") }
                return d
            }
            let a = arch ?? "llama"
            let s = try SyntheticModel.shape(architecture: a, name: shape ?? "tiny")
            writer = try SyntheticModel.build(architecture: a, shape: s, type: t, downType: down, seed: seed, progress: stage)
        }
        try? FileHandle.standardError.write(contentsOf: Data("\r\u{1B}[Kwriting \(output)\n".utf8))
        try writer.write(to: output)
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        try? FileHandle.standardError.write(contentsOf: Data(String(format: "wrote %@ (%.1f MiB) in %.1f s\n", output,
                                                   Double(size) / 1048576, Date().timeIntervalSince(started)).utf8))
    }
}
