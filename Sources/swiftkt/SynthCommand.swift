// `swiftkt synth`: write a synthetic GGUF (random weights, real layout) for tests and benchmarks.
import ArgumentParser
import Core
import Foundation
import GGUF
import Models

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a synthetic GGUF model with seeded random weights.",
        discussion: """
        Presets: \(SyntheticModel.presets.keys.sorted().map { "\($0): \(SyntheticModel.presets[$0]!.map(\.name).joined(separator: ", "))" }.joined(separator: "; "))
        Example: swiftkt synth --arch llama --shape llama3-8b --type q4_K --seed 1 -o llama8b.gguf
        """)

    @Option(help: "Architecture (general.architecture).")
    var arch: String = "llama"

    @Option(help: "Shape preset of the architecture.")
    var shape: String = "tiny"

    @Option(help: "Weight type of the 2-D weights (f32, f16, q4_0, q4_K, …).")
    var type: String = "q4_K"

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Option(name: [.customShort("o"), .long], help: "Output file.")
    var output: String

    func run() throws {
        guard let t = GGMLType(name: type) else {
            throw ValidationError("unknown type '\(type)'; known: \(GGMLType.allCases.filter { Quant.canQuantize($0) }.map(\.name).joined(separator: ", "))")
        }
        let s = try SyntheticModel.shape(architecture: arch, name: shape)
        let started = Date()
        let writer = try SyntheticModel.build(architecture: arch, shape: s, type: t, seed: seed) { stage in
            FileHandle.standardError.write(Data("\r\u{1B}[Kgenerating \(stage)".utf8))
        }
        FileHandle.standardError.write(Data("\r\u{1B}[Kwriting \(output)\n".utf8))
        try writer.write(to: output)
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        FileHandle.standardError.write(Data(String(format: "wrote %@ (%.1f MiB) in %.1f s\n", output,
                                                   Double(size) / 1048576, Date().timeIntervalSince(started)).utf8))
    }
}
