// The CUDA kernel source without a GPU: every kernel the operators launch is defined, and the
// source compiles with NVRTC for Hopper and Ampere when NVRTC is on this machine (scripts/test.sh
// installs it from PyPI and sets SWIFTKT_NVRTC; elsewhere the compile test is skipped).
@testable import CUDA
import Foundation
import XCTest

final class KernelSourceTests: XCTestCase {
    /// Kernel names defined in the source: `extern "C" __global__ void NAME(` and the macro
    /// instantiations EMBED(T, NAME), MMVQ(T, NAME), MMVF(T, NAME).
    static func definedKernels() -> Set<String> {
        let text = KernelSource.text
        var names = Set<String>()
        for pattern in [#"__global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\("#, #"(?:EMBED|MMVQ|MMVF|DEQ)\(\w+, (\w+)\)"#] {
            let re = try! NSRegularExpression(pattern: pattern)
            for m in re.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.insert(String(text[Range(m.range(at: 1), in: text)!]))
            }
        }
        names.remove("name")  // the macros' own parameter
        return names
    }

    func testEveryLaunchedKernelIsDefined() throws {
        let defined = Self.definedKernels()
        var launched = ["quantize_q8_32", "quantize_q8_K", "rms_norm", "rope", "glu", "add", "add_bias", "softcap", "store_kv",
                        "argmax_rows", "attn_split", "attn_combine", "attn_scores_f16q", "attn_seq_f16acc", "add_rms_norm", "to_f16"]
        for t in GPUOps.supportedTypes {
            launched.append("embed_" + t.name)
            launched.append((GPUOps.isFloat(t) ? "mmv_" : "mmvq_") + t.name)
            launched.append("dequant_f16_" + t.name)
        }
        for name in launched { XCTAssertTrue(defined.contains(name), "GPUOps launches \(name) but KernelSource does not define it") }
    }

    func testSourceCompilesWithNVRTC() throws {
        let nvrtc: NVRTC
        do { nvrtc = try NVRTC() } catch {
            throw XCTSkip("NVRTC not available here (\(error)); scripts/test.sh installs it from PyPI")
        }
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-nvrtc-\(getpid())")
        defer { try? FileManager.default.removeItem(at: cache) }
        for arch in ["sm_90", "sm_80"] {
            let cubin = try nvrtc.compile(source: KernelSource.text, name: "swiftkt-ops", architecture: arch, options: ["-lineinfo"],
                                          cacheDirectory: cache)
            XCTAssertGreaterThan(cubin.count, 10_000, arch)
            // The second call comes from the disk cache, byte for byte.
            XCTAssertEqual(try nvrtc.compile(source: KernelSource.text, name: "swiftkt-ops", architecture: arch, options: ["-lineinfo"],
                                             cacheDirectory: cache), cubin)
        }
    }

    func testCompileErrorsCarryTheLog() throws {
        let nvrtc: NVRTC
        do { nvrtc = try NVRTC() } catch { throw XCTSkip("NVRTC not available here") }
        XCTAssertThrowsError(try nvrtc.compile(source: "extern \"C\" __global__ void k() { undefined_thing(); }", name: "bad",
                                               architecture: "sm_90", cacheDirectory: nil)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("NVRTC_ERROR_COMPILATION"), text)
            XCTAssertTrue(text.contains("undefined_thing"), text)
        }
    }

    func testAllocatorRounding() {
        XCTAssertEqual(CachingAllocator.rounded(1), 256)
        XCTAssertEqual(CachingAllocator.rounded(257), 512)
        XCTAssertEqual(CachingAllocator.rounded(1 << 20), 1 << 20)
        XCTAssertEqual(CachingAllocator.rounded((1 << 20) + 1), 2 << 20)
        XCTAssertEqual(CachingAllocator.rounded(5 << 20), 6 << 20)
    }
}
