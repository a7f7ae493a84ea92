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
        let text = KernelSource.all
        var names = Set<String>()
        for pattern in [#"__global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\("#, #"(?:EMBED|MMVQ|MMVF|DEQ|MREPACK)\(\w+, (\w+)\)"#] {
            let re = try! NSRegularExpression(pattern: pattern)
            for m in re.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.insert(String(text[Range(m.range(at: 1), in: text)!]))
            }
        }
        names.remove("name")  // the macros' own parameter
        // Macro-built families: MMVQ's one-token instances, the vectorized norms.
        func matches(_ pattern: String) -> [[String]] {
            let re = try! NSRegularExpression(pattern: pattern)
            return re.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { m in
                (1..<m.numberOfRanges).map { String(text[Range(m.range(at: $0), in: text)!]) }
            }
        }
        for g in matches(#"MMVQ\(\w+, (\w+)\)"#) where g[0] != "name" { names.insert(g[0] + "_1") }
        for g in matches(#"MARLIN\((\d)\)"#) { names.insert("marlin_q4_" + g[0]) }
        for g in matches(#"MMV1R?\((\w+), \d+(?:, \w+)?\)"#) { names.insert(g[0]) }
        for g in matches(#"NORM4\((\d)\)"#) { names.insert("rms_norm4_" + g[0]); names.insert("add_rms_norm4_" + g[0]) }
        for g in matches(#"NORM4Q\(\d, (\w+)\)"#) { names.insert("rms_norm4q_" + g[0]); names.insert("add_rms_norm4q_" + g[0]) }
        for g in matches(#"ATTN_SHORT\((\d+), (\w*), \d\)"#) { names.insert("attn_short_\(g[1])\(g[0])"); names.insert("attn_short_rope_\(g[1])\(g[0])") }
        for g in matches(#"ATTN_SHORT_F32\((\d+)\)"#) { names.insert("attn_short_f32_" + g[0]) }
        for g in matches(#"ATTN_SPLIT\((\d+)\)"#) { names.insert("attn_split_" + g[0]) }
        return names
    }

    func testEveryLaunchedKernelIsDefined() throws {
        let defined = Self.definedKernels()
        var launched = ["quantize_q8_32", "quantize_q8_K", "rms_norm", "rope", "glu", "add", "add_bias", "softcap", "store_kv",
                        "argmax_rows", "attn_combine", "attn_scores_f16q", "attn_seq_f16acc", "add_rms_norm", "to_f16"]
        launched += ["mmv1_q4_K", "mmv1p1_q4_K", "mmv1p2_q4_K", "mmv1r_q4_K", "mmv1rp1_q4_K", "mmv1rp2_q4_K", "attn_short_192", "attn_short_scan_192", "glu_q", "apply_penalties", "sample_topk_slices", "sample_finish", "marlin_reduce"]
        launched += ["mla_rope", "mla_store", "mla_merge", "chain_token", "timeline_set"]
        for d in GPUOps.shortAttentionHeadDims where d != 192 {
            launched += ["attn_short_\(d)", "attn_short_scan_\(d)", "attn_short_rope_\(d)", "attn_short_rope_scan_\(d)", "attn_short_f32_\(d)"]
        }
        launched += (1...8).map { "attn_split_\(32 * $0)" }  // every head width `attention` takes
        launched += (1...8).map { "marlin_q4_\($0)" } + GPUOps.marlinTypes.map { "marlin_repack_" + $0.name }
        for t in GPUOps.supportedTypes {
            launched.append("embed_" + t.name)
            launched.append((GPUOps.isFloat(t) ? "mmv_" : "mmvq_") + t.name)
            if !GPUOps.isFloat(t) && t != .q4_K { launched.append("mmvq_" + t.name + "_1") }
            launched.append("dequant_f16_" + t.name)
        }
        for n in [64, 576, 640, 2048, 4096, 8192, 16384, 20_000, 32768] {
            for prefix in ["rms_norm4_", "add_rms_norm4_"] {
                let (name, threads) = try XCTUnwrap(GPUOps.norm4(n, prefix: prefix), "norm4 for \(n)")
                launched.append(name)
                let v = Int(name.dropFirst(prefix.count))!
                XCTAssertTrue(threads % 32 == 0 && threads <= 1024 && threads * v * 4 >= n, "\(name) with \(threads) threads for \(n)")
            }
        }
        XCTAssertNil(GPUOps.norm4(257, prefix: "rms_norm4_"), "widths that are not a multiple of 4 take the scalar kernel")
        XCTAssertNil(GPUOps.norm4(40_000, prefix: "rms_norm4_"), "past 8 float4 per thread the scalar kernel")
        for k in ["K", "32"] { launched += ["rms_norm4q_" + k, "add_rms_norm4q_" + k] }
        for name in launched { XCTAssertTrue(defined.contains(name), "GPUOps launches \(name) but KernelSource does not define it") }
    }

    func testSourceCompilesWithNVRTC() throws {
        let nvrtc: NVRTC
        do { nvrtc = try NVRTC() } catch {
            throw XCTSkip("NVRTC not available here (\(error)); scripts/test.sh installs it from PyPI")
        }
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-nvrtc-\(getpid())")
        defer { try? FileManager.default.removeItem(at: cache) }
        for arch in ["sm_90", "sm_80", "sm_75"] {
            let cubin = try nvrtc.compile(source: KernelSource.all, name: "swiftkt-ops", architecture: arch, options: ["-lineinfo"],
                                          cacheDirectory: cache)
            XCTAssertGreaterThan(cubin.count, 10_000, arch)
            // The second call comes from the disk cache, byte for byte.
            XCTAssertEqual(try nvrtc.compile(source: KernelSource.all, name: "swiftkt-ops", architecture: arch, options: ["-lineinfo"],
                                             cacheDirectory: cache), cubin)
        }
        // SWIFTKT_CUDA_TIMELINE's build (every kernel with TimelineMark) compiles too, to another cubin.
        let timeline = try nvrtc.compile(source: KernelSource.all, name: "swiftkt-ops", architecture: "sm_90",
                                         options: ["-lineinfo", "-DSWIFTKT_TIMELINE"], cacheDirectory: cache)
        XCTAssertGreaterThan(timeline.count, 10_000)
        XCTAssertNotEqual(timeline, try nvrtc.compile(source: KernelSource.all, name: "swiftkt-ops", architecture: "sm_90", options: ["-lineinfo"],
                                                      cacheDirectory: cache))
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
