// `swiftkt pull NAME...`: download catalog models into the cache ($SWIFTKT_HOME/models), each
// checked against its sha256 before it is moved into place. Progress goes to stderr.
import ArgumentParser
import Engine
import Foundation

struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Download models from the catalog into the model cache.",
        discussion: "Known models: \(ModelStore.catalog.map(\.name).joined(separator: ", ")). "
            + "The cache is $SWIFTKT_HOME/models (default ~/.cache/swiftkt/models)."
    )

    @Argument(help: "Catalog names of the models to pull.")
    var names: [String]

    func validate() throws {
        if names.isEmpty { throw ValidationError("name at least one model; `swiftkt list` shows the catalog") }
    }

    func run() throws {
        var failures: [String] = []
        for name in names {
            let printer = PullProgressPrinter()
            do {
                let path = try ModelStore.pull(name) { printer.print($0) }
                print(path.path)
            } catch {
                try? FileHandle.standardError.write(contentsOf: Data("error: \(error)\n".utf8))
                failures.append(name)
            }
        }
        if !failures.isEmpty {
            throw ExitCode.failure
        }
    }
}
