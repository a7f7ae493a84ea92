// `swiftkt list`: the models in the cache (name, size, checked or not, path) and the catalog of
// names `swiftkt pull` knows. `--verify` hashes cached catalog models now and records the result.
import ArgumentParser
import Engine
import Foundation

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List cached models and the catalog of pullable models."
    )

    @Flag(help: "Check the sha256 of cached catalog models (reads each file once).")
    var verify = false

    func run() throws {
        var models = ModelStore.cached()
        if verify {
            for (i, model) in models.enumerated() where model.catalogEntry != nil {
                try? FileHandle.standardError.write(contentsOf: Data("verifying \(model.name)…\n".utf8))
                models[i].verified = try ModelStore.verify(model.name)
            }
        }
        print("Cached models in \(ModelStore.home.appendingPathComponent("models").path):")
        if models.isEmpty { print("  (none)") }
        let width = max(models.map(\.name.count).max() ?? 0, ModelStore.catalog.map(\.name.count).max() ?? 0)
        for model in models {
            let state: String
            switch model.verified {
            case true?: state = "verified"
            case false?: state = "BAD SIZE"
            case nil: state = model.catalogEntry == nil ? "local" : "unchecked"
            }
            print("  \(pad(model.name, width))  \(pad(ModelStore.formatBytes(model.size), 9))  \(pad(state, 9))  \(model.path.path)")
        }
        print("")
        print("Catalog (swiftkt pull NAME):")
        let cachedNames = Set(models.map(\.name))
        for entry in ModelStore.catalog {
            let mark = cachedNames.contains(entry.name) ? "cached" : ""
            print("  \(pad(entry.name, width))  \(pad(ModelStore.formatBytes(entry.size), 9))  \(pad(mark, 9))  \(entry.summary)")
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}
