// Host-side planning of the GPU kernels (no GPU needed): how the Marlin GEMM splits its columns
// and how the GPU sampler slices the vocabulary.
@testable import CUDA
import XCTest

final class PlanningTests: XCTestCase {
    // A full GPU names the way out; other driver errors stay as they are.
    func testOutOfMemoryErrorSaysWhatToChange() {
        let full = "\(CUDAError.driver(call: "cuMemAlloc_v2(1073741824 bytes)", result: 2, name: "CUDA_ERROR_OUT_OF_MEMORY"))"
        XCTAssertTrue(full.hasPrefix("cuMemAlloc_v2(1073741824 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (2)"), full)
        XCTAssertTrue(full.contains("--ctx-size") && full.contains("--rules rules/cpu.yaml"), full)
        let other = "\(CUDAError.driver(call: "cuLaunchKernel(add)", result: 1, name: "CUDA_ERROR_INVALID_VALUE"))"
        XCTAssertEqual(other, "cuLaunchKernel(add) failed: CUDA_ERROR_INVALID_VALUE (1)")
    }

    // SWIFTKT_PROFILE_KERNELS's table: per token, most time first, shares of the sum.
    func testKernelProfileTable() {
        let t = KernelProfile.table(["mmv1_q4_K": (ms: 48, launches: 96), "add_rms_norm": (ms: 16, launches: 64)], tokens: 32)
        let lines = t.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines[0], "kernels over 32 tokens: 2.000 ms of GPU time per token")
        XCTAssertEqual(lines[3], "| mmv1_q4_K | 3.0 | 1.500 | 500.00 | 75.0 % |")
        XCTAssertEqual(lines[4], "| add_rms_norm | 2.0 | 0.500 | 250.00 | 25.0 % |")
    }

    func testMarlinSplitsCoverTheColumnsInWholeStages() {
        for sms in [1, 114, 132] {
            for (rows, cols) in [(16, 64), (208, 576), (256, 4096), (4096, 4096), (4096, 14336), (14336, 4096), (128_256, 4096)] {
                let (count, columns) = GPUOps.marlinSplits(multiprocessors: sms, rows: rows, cols: cols)
                XCTAssertEqual(columns % 128, 0, "splits are whole 128-column stages")
                XCTAssertGreaterThanOrEqual(count * columns, cols, "the splits cover every column")
                XCTAssertLessThan((count - 1) * columns, cols, "no empty split")
                XCTAssertLessThanOrEqual(count, 16)
                // Enough blocks: about two per multiprocessor (whole stages round the split down),
                // unless the columns run out first.
                let blocks = (rows + 127) / 128 * count
                XCTAssertTrue(2 * blocks >= min(2 * sms, (rows + 127) / 128 * 16) || count == (cols + 127) / 128,
                              "\(rows)×\(cols) on \(sms) SMs: \(count) splits")
            }
        }
        XCTAssertEqual(GPUOps.marlinSplits(multiprocessors: 132, rows: 128_256, cols: 4096).count, 1, "the LM head fills the GPU alone")
    }

    func testMarlinSupportsOnlyWholeTiles() {
        XCTAssertTrue(GPUOps.marlinSupports(DeviceMatrix(type: .q4_K, rows: 4096, cols: 4096, pointer: 0)))
        XCTAssertTrue(GPUOps.marlinSupports(DeviceMatrix(type: .q4_1, rows: 208, cols: 576, pointer: 0)))
        XCTAssertFalse(GPUOps.marlinSupports(DeviceMatrix(type: .q4_1, rows: 200, cols: 576, pointer: 0)), "rows not a multiple of 16")
        XCTAssertFalse(GPUOps.marlinSupports(DeviceMatrix(type: .q4_0, rows: 64, cols: 96, pointer: 0)), "columns not a multiple of 64")
        XCTAssertFalse(GPUOps.marlinSupports(DeviceMatrix(type: .q6_K, rows: 4096, cols: 4096, pointer: 0)), "6-bit weights")
        XCTAssertEqual(GPUOps.marlinBytes(rows: 16, cols: 64).q, 512)
        XCTAssertEqual(GPUOps.marlinBytes(rows: 16, cols: 64).s, 128, "16 rows × 2 groups × (s, m) f16")
    }

    func testSamplerSlicesHoldTopK() {
        for n in [1, 40, 1000, 49_152, 128_256, 262_144] {
            for k in [1, 40, 300, 1024] where k <= n {
                let (count, length) = GPUSampler.slices(n: n, k: k)
                XCTAssertTrue(count >= 1 && count <= 64)
                XCTAssertGreaterThanOrEqual(count * length, n, "slices cover the vocabulary")
                XCTAssertGreaterThanOrEqual(length, k, "every slice but the last holds k candidates")
                XCTAssertLessThanOrEqual(count * k, 64 * GPUSampling.maxTopK, "candidates fit the scratch")
            }
        }
    }

    /// The one-launch experts GEMV's grid rows: one (expert, first row) per 8 rows of each expert,
    /// none for an expert without tokens, at most pairs / 8 + experts of them.
    func testExpertTilesCoverEveryRowOnce() {
        let start = [0, 3, 3, 20, 21, 37]   // 3, 0, 17, 1, 16 rows
        let tiles = GPUOps.expertTiles(start: start)
        let pairs = stride(from: 0, to: tiles.count, by: 2).map { (Int(tiles[$0]), Int(tiles[$0 + 1])) }
        XCTAssertEqual(pairs.map(\.0), [0, 2, 2, 2, 3, 4, 4])
        XCTAssertEqual(pairs.map(\.1), [0, 0, 8, 16, 0, 0, 8])
        var covered = [Int](repeating: 0, count: 37)
        for (e, t0) in pairs { for r in (start[e] + t0)..<min(start[e] + t0 + 8, start[e + 1]) { covered[r] += 1 } }
        XCTAssertEqual(covered, [Int](repeating: 1, count: 37))
        XCTAssertLessThanOrEqual(pairs.count, 37 / 8 + 5)
        XCTAssertTrue(GPUOps.expertTiles(start: [0]).isEmpty)
    }

    /// The tensor-core experts kernel's 32-row tiles: every row once, at most pairs / 32 + experts
    /// of them (the tile list's reserved room).
    func testExpertTilesOf32Rows() {
        let start = [0, 40, 40, 41, 105, 137]   // 40, 0, 1, 64, 32 rows
        let tiles = GPUOps.expertTiles(start: start, rows: 32)
        let pairs = stride(from: 0, to: tiles.count, by: 2).map { (Int(tiles[$0]), Int(tiles[$0 + 1])) }
        XCTAssertEqual(pairs.map(\.0), [0, 0, 2, 3, 3, 4])
        XCTAssertEqual(pairs.map(\.1), [0, 32, 0, 0, 32, 0])
        var covered = [Int](repeating: 0, count: 137)
        for (e, t0) in pairs { for r in (start[e] + t0)..<min(start[e] + t0 + 32, start[e + 1]) { covered[r] += 1 } }
        XCTAssertEqual(covered, [Int](repeating: 1, count: 137))
        XCTAssertLessThanOrEqual(pairs.count, 137 / 32 + 5)
    }

    /// NCCL_VERSION_CODE in both of NCCL's encodings (2.9 and later: major·10000 + minor·100 + patch).
    func testNCCLVersionCodes() {
        XCTAssertTrue(NCCL.decodeVersion(23203) == (2, 32, 3))
        XCTAssertTrue(NCCL.decodeVersion(21903) == (2, 19, 3))
        XCTAssertTrue(NCCL.decodeVersion(2708) == (2, 7, 8))
    }
}
