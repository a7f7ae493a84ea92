// The `swiftkt` command line. Each subcommand lives in its own file (*Command.swift).
import ArgumentParser
import Foundation
import CSupport

@main
struct SwiftKT: AsyncParsableCommand {
    static func main() async {
        #if os(Linux)
        // A forward pass allocates megabytes of temporaries per layer: keep them in the heap for
        // reuse instead of faulting fresh pages in for every layer (~10 % of an MoE prompt's time).
        swiftkt_malloc_keep_blocks_below(64 << 20)
        #endif
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            // Its own: help (the help subcommand and --help run as commands), validation, exit codes.
            exit(withError: error)
        } catch {
            // Errors quote names from model and rules files: control characters escaped.
            log("Error: " + printable("\(error)"))
            Foundation.exit(1)
        }
        // print() buffers: what it could not write shows only as the stream's error flag.
        if swiftkt_stdout_failed() != 0 {
            failedOutput(POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO))
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "swiftkt",
        abstract: "Fast local LLM inference on CPUs and NVIDIA GPUs, driven by GGUF files and YAML rules.",
        subcommands: [RunCommand.self, ChatCommand.self, ServeCommand.self, PerplexityCommand.self, BenchCommand.self, InspectCommand.self, SynthCommand.self, PullCommand.self, ListCommand.self, DevicesCommand.self, OpsCheckCommand.self, KernelsCommand.self]
    )
}
