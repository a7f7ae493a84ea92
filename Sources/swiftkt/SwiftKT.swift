// The `swiftkt` command line. Each subcommand lives in its own file (*Command.swift).
import ArgumentParser

@main
struct SwiftKT: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftkt",
        abstract: "Fast local LLM inference on CPUs and NVIDIA GPUs, driven by GGUF files and YAML rules.",
        subcommands: [RunCommand.self, ChatCommand.self, PerplexityCommand.self, BenchCommand.self, InspectCommand.self, SynthCommand.self, PullCommand.self, ListCommand.self, DevicesCommand.self, OpsCheckCommand.self, KernelsCommand.self]
    )
}
