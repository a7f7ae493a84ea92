// Shared helpers: tiny synthetic models written to temp files once per process, rule parsing
// from inline YAML, plan lookups.
import Core
import Foundation
import GGUF
@testable import Injection
import Models
import Operators
import XCTest

enum Tiny {
    nonisolated(unsafe) private static var paths: [String: String] = [:]
    private static let lock = NSLock()

    /// The tiny preset of `arch` (Q8_0 weights), written once per test process.
    static func path(_ arch: String) throws -> String {
        lock.lock(); defer { lock.unlock() }
        if let p = paths[arch] { return p }
        let shape = try SyntheticModel.shape(architecture: arch, name: "tiny")
        let writer = try SyntheticModel.build(architecture: arch, shape: shape, type: .q8_0, seed: 11)
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-inj-\(arch)-\(getpid()).gguf").path
        try writer.write(to: p)
        paths[arch] = p
        return p
    }

    static func tree(_ arch: String) throws -> ModuleTree {
        try Architectures.moduleTree(file: try GGUFFile.open(try path(arch)))
    }

    static let architectures = ["llama", "qwen2", "qwen3", "gemma3", "mixtral", "qwen2moe", "qwen3moe", "deepseek2"]
}

func rules(_ yaml: String) throws -> RuleFile { try RuleFile.parse(yaml: yaml, source: "test.yaml") }

func plan(_ yaml: String, arch: String = "llama", strict: Bool = false, devices: [Device] = [.cpu]) throws -> PlacementPlan {
    try Placement.plan(tree: try Tiny.tree(arch), rules: try rules(yaml), devices: devices, strict: strict)
}

/// The InjectionError a throwing expression gives (fails the test if none).
func injectionError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> InjectionError? {
    do { try body() } catch let e as InjectionError { return e } catch {
        XCTFail("expected an InjectionError, got \(error)", file: file, line: line); return nil
    }
    XCTFail("expected an error", file: file, line: line)
    return nil
}
