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

    /// Each `extern "C" __global__` kernel of the source (macro bodies included; macro-built names
    /// stay as written, e.g. `attn_short_##SFX##D`) with how many thread-counting guards its
    /// body holds: `TL_BEGIN()` / `PDL_ENTRY()` directly or through a helper function that has
    /// one (`helpers`, the functions defined with a guard in their body).
    static func kernelGuards() throws -> (kernels: [(name: String, guards: Int)], helpers: [String]) {
        // Macro lines joined, comments out; UTF-16 units, the offsets NSRegularExpression reports.
        var text = KernelSource.all.replacingOccurrences(of: "\\\n", with: " ")
        text = try NSRegularExpression(pattern: "//[^\n]*").stringByReplacingMatches(
            in: text, range: NSRange(location: 0, length: text.utf16.count), withTemplate: "")
        let u = Array(text.utf16)
        func matching(_ open: UInt16, _ close: UInt16, from i: Int) -> Int? {
            var depth = 0
            for j in i..<u.count {
                if u[j] == open { depth += 1 } else if u[j] == close { depth -= 1; if depth == 0 { return j } }
            }
            return nil
        }
        let lp = UInt16(UInt8(ascii: "(")), rp = UInt16(UInt8(ascii: ")")), lb = UInt16(UInt8(ascii: "{")), rb = UInt16(UInt8(ascii: "}"))
        let space = Set(" \t\n".utf16)
        // The body `{…}` of the function whose parameter list opens at `paren`; nil for a declaration.
        func body(paren: Int) -> String? {
            guard let close = matching(lp, rp, from: paren) else { return nil }
            var k = close + 1
            while k < u.count, space.contains(u[k]) { k += 1 }
            guard k < u.count, u[k] == lb, let end = matching(lb, rb, from: k) else { return nil }
            return String(utf16CodeUnits: Array(u[k...end]), count: end - k + 1)
        }
        func count(_ pattern: String, in s: String) throws -> Int {
            try NSRegularExpression(pattern: pattern).numberOfMatches(in: s, range: NSRange(location: 0, length: s.utf16.count))
        }
        let guardPattern = #"\b(?:TL_BEGIN|PDL_ENTRY)\(\)"#
        var helpers: [String] = []
        for m in try NSRegularExpression(pattern: #"(?:DEV|__device__)[^;{()]*?\b(\w+)\s*\("#)
            .matches(in: text, range: NSRange(location: 0, length: u.count)) {
            let name = String(utf16CodeUnits: Array(u[m.range(at: 1).location..<NSMaxRange(m.range(at: 1))]), count: m.range(at: 1).length)
            if let b = body(paren: NSMaxRange(m.range) - 1), try count(guardPattern, in: b) > 0 { helpers.append(name) }
        }
        var kernels: [(name: String, guards: Int)] = []
        for m in try NSRegularExpression(pattern: #"extern "C" __global__ void (?:__launch_bounds__\([^)]*\) )?(\w+(?:##\w+)*)\s*\("#)
            .matches(in: text, range: NSRange(location: 0, length: u.count)) {
            let name = String(utf16CodeUnits: Array(u[m.range(at: 1).location..<NSMaxRange(m.range(at: 1))]), count: m.range(at: 1).length)
            guard let b = body(paren: NSMaxRange(m.range) - 1) else { continue }
            var n = try count(guardPattern, in: b)
            for h in helpers { n += try count("\\b" + h + "\\s*[<(]", in: b) }
            kernels.append((name, n))
        }
        return (kernels, helpers)
    }

    /// The counted hand-over (SWIFTKT_CUDA_HANDOVER, KernelSource `HandMark`) lets a kernel start
    /// once a device counter reaches the threads of every launch before it: a kernel counting its
    /// threads twice would let the next one start early (a race), so none may; one counting none
    /// only costs the 200 µs fallback, and only the step's bookkeeping kernels may.
    func testEveryKernelCountsItsThreadsOnce() throws {
        let (kernels, helpers) = try Self.kernelGuards()
        XCTAssertGreaterThan(kernels.count, 50, "the scan found the kernels")
        XCTAssertEqual(kernels.filter { $0.guards > 1 }.map(\.name), [], "kernels that would count their threads twice")
        XCTAssertEqual(kernels.filter { $0.guards == 0 }.map(\.name).sorted(), ["hand_check", "hand_read", "hand_reset", "timeline_set"])
        // The scan sees through helpers: the q/k/v GEMV with rope counts in mmv1r_impl.
        XCTAssertEqual(helpers, ["mmv1r_impl"])
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
        // The weight-load measurement switches (SWIFTKT_NVRTC_EXTRA, KernelSource's ld_weights16)
        // and the counted hand-over (SWIFTKT_CUDA_HANDOVER, with its poll backoff)
        // compile too, each to a cubin other than the default's (the switch reached the code).
        let plain = try nvrtc.compile(source: KernelSource.all, name: "swiftkt-ops", architecture: "sm_90", options: ["-lineinfo"],
                                      cacheDirectory: cache)
        for define in ["-DSWIFTKT_W_EVICT_FIRST", "-DSWIFTKT_W_NO_L1", "-DSWIFTKT_W_CS",
                       "-DSWIFTKT_HANDOVER -DSWIFTKT_HAND_BACKOFF=32", "-DSWIFTKT_HANDOVER -DSWIFTKT_TIMELINE"] {
            let variant = try nvrtc.compile(source: KernelSource.all, name: "swiftkt-ops", architecture: "sm_90",
                                            options: ["-lineinfo"] + define.split(separator: " ").map(String.init), cacheDirectory: cache)
            XCTAssertGreaterThan(variant.count, 10_000, define)
            XCTAssertNotEqual(variant, plain, define)
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
