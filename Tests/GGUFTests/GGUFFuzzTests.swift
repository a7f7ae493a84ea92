// Seeded fuzzing of the real models' headers: byte flips, truncations, inserted and removed
// bytes, and structural fields (counts, lengths, dims, types, offsets) set to extreme values.
// Every case must end in a thrown GGUFError or a clean load whose tensor views lie in bounds;
// a trap anywhere fails the whole run.
//
// The model is mapped copy-on-write (PROT_WRITE + MAP_PRIVATE), so a mutation touches only the
// header pages in memory and the rest of the file keeps its real size; each case is undone by
// copying the saved header back. SWIFTKT_FUZZ_CASES scales the case counts.
import Core
import GGUF
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class GGUFFuzzTests: XCTestCase {
    func testFuzzSmolLM2Header() throws {
        try fuzz(TestModels.smolLM2, cases: 1200, seed: 0x5EED_0001)
    }

    func testFuzzGemma3Header() throws {
        try fuzz(TestModels.gemma3, cases: 200, seed: 0x5EED_0002)
    }

    func fuzz(_ model: String, cases baseCases: Int, seed: UInt64) throws {
        let path = try TestModels.path(model)
        let scale = getenv("SWIFTKT_FUZZ_CASES").flatMap { Double(String(cString: $0)) } ?? 1
        let cases = Int(Double(baseCases) * scale)
        let fd = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var st = stat()
        fstat(fd, &st)
        let size = Int(st.st_size)
        let raw = try XCTUnwrap(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0))
        close(fd)
        XCTAssertNotEqual(raw, UnsafeMutableRawPointer(bitPattern: -1))
        defer { munmap(raw, size) }
        let file = UnsafeMutableRawBufferPointer(start: raw, count: size)

        let headerSize = try GGUFFile.parse(UnsafeRawBufferPointer(file)).dataOffsets[0]
        let window = min(size, headerSize + 4096)  // the region mutations may touch
        let original = [UInt8](file[0..<window])
        let fields = structuralFields(UnsafeRawBufferPointer(file))
        var rng = SplitMix(seed: seed)
        var outcomes: [String: Int] = [:]
        let start = clock_gettime_ns()

        func position() -> Int {
            switch rng.next() % 4 {
            case 0: return Int(rng.next() % 4096)                                  // header, first keys
            case 1: return headerSize - 1 - Int(rng.next() % UInt64(min(headerSize, 32 * 1024)))  // tensor infos
            default: return Int(rng.next() % UInt64(headerSize))
            }
        }
        let extremes: [UInt64] = [.max, 1 << 63, UInt64(Int64.max), 1 << 40, 1 << 32, 0xFFFF_FFFF, 0, 5, 13, 1 << 31]

        for i in 0..<cases {
            var length = size
            var dirty = 0..<0
            let kind = rng.next() % 6
            switch kind {
            case 0:  // flip 1-4 bytes
                for _ in 0...(rng.next() % 4) {
                    let p = position()
                    file[p] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
                    dirty = min(dirty.lowerBound == dirty.upperBound ? p : dirty.lowerBound, p)..<max(dirty.upperBound, p + 1)
                }
            case 1:  // truncate
                length = Int(rng.next() % UInt64(window))
            case 2, 3:  // a structural field set to an extreme or random value
                let p = fields[Int(rng.next() % UInt64(fields.count))]
                let v = rng.next() % 3 == 0 ? rng.next() : extremes[Int(rng.next() % UInt64(extremes.count))]
                let width = rng.next() % 2 == 0 ? 4 : 8
                withUnsafeBytes(of: v.littleEndian) { b in
                    for j in 0..<width { file[p + j] = b[j] }
                }
                dirty = p..<(p + width)
            case 4:  // insert 1-16 bytes
                let p = position(), k = Int(1 + rng.next() % 16)
                memmove(raw + p + k, raw + p, window - p - k)
                for j in 0..<k { file[p + j] = UInt8(truncatingIfNeeded: rng.next()) }
                dirty = p..<window
            default:  // remove 1-16 bytes
                let p = position(), k = Int(1 + rng.next() % 16)
                memmove(raw + p, raw + p + k, window - p - k)
                dirty = p..<window
            }

            do {
                let f = try GGUFFile.parse(UnsafeRawBufferPointer(rebasing: file[0..<length]))
                for t in f.tensors {
                    XCTAssertTrue(t.offset >= 0 && t.offset + t.byteCount <= length, "case \(i): \(t.name) out of bounds")
                    let view = f.data(for: t)
                    XCTAssertEqual(view.count, t.byteCount)
                    _ = view[0] &+ view[view.count - 1]
                }
                outcomes["loaded", default: 0] += 1
            } catch let e as GGUFError {
                XCTAssertNotNil(e.offset, "case \(i): \(e)")
                outcomes[Mirror(reflecting: e).children.first?.label ?? "\(e)", default: 0] += 1
            } catch {
                XCTFail("case \(i): unexpected error type \(error)")
            }

            if !dirty.isEmpty {
                original[dirty].withUnsafeBytes { file.baseAddress!.advanced(by: dirty.lowerBound).copyMemory(from: $0.baseAddress!, byteCount: dirty.count) }
            }
        }
        let seconds = Double(clock_gettime_ns() - start) / 1e9
        print("fuzz \(model): \(cases) cases in \(format3(seconds)) s: \(outcomes.sorted { $0.value > $1.value }.prefix(12))")
        // The mapping is back to the original file.
        XCTAssertEqual(Array(file[0..<window]), original)
    }

    /// Offsets of the structural fields of a valid file: header counts, key lengths, value types,
    /// array element types and counts, the first string lengths of each array, tensor info fields.
    func structuralFields(_ p: UnsafeRawBufferPointer) -> [Int] {
        var fields = [8, 16]
        var pos = 24
        func u32() -> UInt32 { defer { pos += 4 }; return p.loadUnaligned(fromByteOffset: pos, as: UInt32.self) }
        func u64() -> Int { defer { pos += 8 }; return Int(p.loadUnaligned(fromByteOffset: pos, as: UInt64.self)) }
        func skipString(record: Bool) { if record { fields.append(pos) }; pos += u64() }
        func skipValue(_ t: UInt32) {
            guard let type = GGUFValueType(rawValue: t) else { return }
            if let s = type.fixedSize { pos += s; return }
            if type == .string { skipString(record: true); return }
            fields.append(pos)
            let et = u32()
            fields.append(pos)
            let n = u64()
            for j in 0..<n {
                if let s = GGUFValueType(rawValue: et)?.fixedSize { pos += s * (n - j); break }
                if et == GGUFValueType.string.rawValue { skipString(record: j < 64) } else { skipValue(et) }
            }
        }
        let tensorCount = Int(p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        let kvCount = Int(p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        for _ in 0..<kvCount {
            skipString(record: true)
            fields.append(pos)
            skipValue(u32())
        }
        for _ in 0..<tensorCount {
            skipString(record: true)
            fields.append(pos)
            let n = Int(u32())
            for _ in 0..<n { fields.append(pos); pos += 8 }
            fields.append(pos); pos += 4
            fields.append(pos); pos += 8
        }
        return fields
    }
}
