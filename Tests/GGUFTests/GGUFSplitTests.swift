// Split models: NAME-0000i-of-0000N.gguf parts opened as one model from the first part.
import Core
import GGUF
import XCTest

final class GGUFSplitTests: XCTestCase {
    /// Writes `parts` parts of a small model (2 f32 tensors per part) into `dir`; returns paths.
    func writeSplit(_ dir: String, parts: Int, tensorsCount: Int? = nil,
                    edit: (Int, inout GGUFWriter) throws -> Void = { _, _ in }) throws -> [String] {
        var paths: [String] = []
        for i in 0..<parts {
            var w = GGUFWriter()
            if i == 0 {
                w.set(GGUFKey.architecture, .string("llama"))
                w.set(GGUFKey.blockCount, .uint32(UInt32(parts)), architecture: "llama")
            }
            w.set(GGUFKey.splitNo.template, .uint16(UInt16(i)))
            w.set(GGUFKey.splitCount.template, .uint16(UInt16(parts)))
            if i == 0 { w.set(GGUFKey.splitTensorsCount.template, .int32(Int32(tensorsCount ?? 2 * parts))) }
            for j in 0..<2 {
                let value = Float(i * 10 + j)
                let data = (0..<3).flatMap { _ in withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init) }
                try w.addTensor(name: "blk.\(i).t\(j)", type: .f32, shape: [3], data: data)
            }
            try edit(i, &w)
            let path = "\(dir)/model-\(String(format5(i + 1)))-of-\(String(format5(parts))).gguf"
            try w.write(to: path)
            paths.append(path)
        }
        return paths
    }

    func testOpensAllParts() throws {
        let dir = temporaryDirectory(self)
        let paths = try writeSplit(dir, parts: 3)
        let f = try GGUFFile.open(paths[0])
        XCTAssertEqual(f.partPaths, paths)
        XCTAssertEqual(f.architecture, "llama")
        XCTAssertEqual(f.int(.blockCount), 3)
        XCTAssertEqual(f.int(.splitCount), 3)
        XCTAssertEqual(f.tensors.count, 6)
        XCTAssertEqual(f.tensors.map(\.fileIndex), [0, 0, 1, 1, 2, 2])
        for i in 0..<3 {
            for j in 0..<2 {
                let t = try XCTUnwrap(f.tensor(named: "blk.\(i).t\(j)"))
                let v = f.data(for: t).loadUnaligned(fromByteOffset: 8, as: Float.self)
                XCTAssertEqual(v, Float(i * 10 + j))
            }
        }
        XCTAssertEqual(f.fileSizes.count, 3)
    }

    func testMissingPart() throws {
        let dir = temporaryDirectory(self)
        let paths = try writeSplit(dir, parts: 3)
        unlink(paths[2])
        XCTAssertThrowsError(try GGUFFile.open(paths[0])) { e in
            guard case let .inPart(index, path, .cannotOpen)? = e as? GGUFError else { return XCTFail("\(e)") }
            XCTAssertEqual(index, 2)
            XCTAssertEqual(path, paths[2])
        }
    }

    func testOpeningALaterPartFails() throws {
        let dir = temporaryDirectory(self)
        let paths = try writeSplit(dir, parts: 2)
        XCTAssertThrowsError(try GGUFFile.open(paths[1])) { e in
            XCTAssertTrue("\(e)".contains("open the first part"), "\(e)")
        }
    }

    func testWrongSplitNumber() throws {
        let dir = temporaryDirectory(self)
        let paths = try writeSplit(dir, parts: 3) { i, w in
            if i == 2 { w.set(GGUFKey.splitNo.template, .uint16(1)) }
        }
        assertThrows(.invalidSplit(path: paths[2], reason: "expected split.no 2 of split.count 3, found 1 of 3")) {
            try GGUFFile.open(paths[0])
        }
    }

    func testTensorCountMismatch() throws {
        let dir = temporaryDirectory(self)
        let paths = try writeSplit(dir, parts: 2, tensorsCount: 5)
        assertThrows(.invalidSplit(path: paths[0], reason: "split.tensors.count is 5 but the 2 parts hold 4 tensors")) {
            try GGUFFile.open(paths[0])
        }
    }

    func testDuplicateTensorAcrossParts() throws {
        let dir = temporaryDirectory(self)
        let paths = try writeSplit(dir, parts: 2) { i, w in
            if i == 1 { try w.addTensor(name: "blk.0.t0", type: .f32, shape: [1], data: [0, 0, 0, 0]) }
        }
        XCTAssertThrowsError(try GGUFFile.open(paths[0])) { e in
            guard case let .inPart(1, path, .duplicateTensor(_, name))? = e as? GGUFError else { return XCTFail("\(e)") }
            XCTAssertEqual(path, paths[1])
            XCTAssertEqual(name, "blk.0.t0")
        }
    }

    func testBadPartIsReportedWithItsPath() throws {
        let dir = temporaryDirectory(self)
        let paths = try writeSplit(dir, parts: 2)
        var bytes = readFile(paths[1])
        bytes[4] = 1
        writeFile(paths[1], bytes)
        assertThrows(.inPart(index: 1, path: paths[1], error: .unsupportedVersion(offset: 4, version: 1))) {
            try GGUFFile.open(paths[0])
        }
    }

    func testSplitNamingRequired() throws {
        let dir = temporaryDirectory(self)
        let paths = try writeSplit(dir, parts: 2)
        let renamed = dir + "/renamed.gguf"
        rename(paths[0], renamed)
        XCTAssertThrowsError(try GGUFFile.open(renamed)) { e in
            XCTAssertTrue("\(e)".contains("NAME-00001-of-00002.gguf"), "\(e)")
        }
    }
}

func format5(_ n: Int) -> String {
    let s = String(n)
    return String(repeating: "0", count: max(0, 5 - s.count)) + s
}
