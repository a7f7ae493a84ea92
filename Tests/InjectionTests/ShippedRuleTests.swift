// Shipped rule files: each loads against a tiny synthetic model of every architecture and gives
// the placement in Fixtures/<file>-<arch>.txt (regenerate with SWIFTKT_UPDATE_GOLDENS=1); the
// compiled-in copies match rules/*.yaml; the automatic choice per architecture and kernel set.
import Foundation
import GGUF
@testable import Injection
import Models
import Operators
import XCTest

final class ShippedRuleTests: XCTestCase {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let repoRoot = here.deletingLastPathComponent().deletingLastPathComponent()

    func testCompiledInCopiesMatchRulesDirectory() throws {
        let dir = Self.repoRoot.appendingPathComponent("rules")
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertEqual(onDisk, ShippedRules.names, "run scripts/gen_shipped_rules.py")
        for name in onDisk {
            let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            XCTAssertEqual(ShippedRules.text(name)?.trimmingCharacters(in: .newlines), text.trimmingCharacters(in: .newlines),
                           "\(name) differs from its compiled-in copy: run scripts/gen_shipped_rules.py")
        }
    }

    func testEveryShippedFileGivesTheGoldenPlacement() throws {
        let update = ProcessInfo.processInfo.environment["SWIFTKT_UPDATE_GOLDENS"] == "1"
        for arch in Tiny.architectures {
            let tree = try Tiny.tree(arch)
            XCTAssertEqual(tree.unmappedTensors, [], "\(arch): tensors missing from ModuleNames")
            for name in ShippedRules.names {
                // The GPU files as if this machine had a GPU; cuda.yaml and cuda-fast.yaml place dense models only.
                let devices: [Device] = ShippedRules.gpuFiles.contains(name) ? [.cpu, .cuda(0)] : [.cpu]
                if (name == "cuda.yaml" || name == "cuda-fast.yaml") && tree.contains(.experts) {
                    XCTAssertThrowsError(try Placement.plan(tree: tree, rules: try ShippedRules.load(name), devices: devices, strict: true)) {
                        XCTAssertTrue("\($0)".contains("no default operator"), "\(arch): \($0)")
                    }
                    continue
                }
                let plan = try Placement.plan(tree: tree, rules: try ShippedRules.load(name), devices: devices, strict: true,
                                              rulesSource: "rules/\(name)")
                let golden = Self.here.appendingPathComponent("Fixtures/\(name.replacingOccurrences(of: ".yaml", with: ""))-\(arch).txt")
                if update { try plan.text.write(to: golden, atomically: true, encoding: .utf8); continue }
                let expected = try String(contentsOf: golden, encoding: .utf8)
                XCTAssertEqual(plan.text, expected, "\(name) on \(arch): placement changed (SWIFTKT_UPDATE_GOLDENS=1 to accept)")
            }
        }
    }

    func testAutomaticChoice() throws {
        for arch in Tiny.architectures {
            let tree = try Tiny.tree(arch)
            let dense = !tree.contains(.experts), gpuAttention = ShippedRules.gpuRunsAttention(tree)
            let c = try RuleChoice.choose(path: nil, architecture: arch, devices: [.cpu], dense: dense, gpuAttention: gpuAttention)
            XCTAssertEqual(c.file.source, "rules/cpu.yaml")
            XCTAssertEqual(c.description, "rules/cpu.yaml (shipped default for \(arch) on cpu)")
            XCTAssertEqual(try RuleChoice.choose(path: nil, architecture: arch, reference: true).file.source,
                           "rules/cpu-reference.yaml")
            // With a GPU: dense models go to it, mixtures of experts split their experts off to the
            // CPU (cuda-moe.yaml), except absorbed MLA files (the tiny deepseek2 preset: split
            // attn_k_b / attn_v_b, no GPU attention for them).
            XCTAssertEqual(gpuAttention, arch != "deepseek2", arch)
            let g = try RuleChoice.choose(path: nil, architecture: arch, devices: [.cpu, .cuda(0)], dense: dense,
                                          gpuAttention: gpuAttention)
            XCTAssertEqual(g.file.source, dense ? "rules/cuda.yaml" : gpuAttention ? "rules/cuda-moe.yaml" : "rules/cpu.yaml", arch)
            XCTAssertEqual(try RuleChoice.choose(path: nil, architecture: arch, devices: [.cpu, .cuda(0)], reference: true,
                                                 dense: dense, gpuAttention: gpuAttention).file.source, "rules/cpu-reference.yaml")
        }
        // deepseek2 with attn_kv_b (the tiny-lite and tiny-v2 presets: MLA the GPU runs) splits like the other mixtures:
        // cuda-moe.yaml is its default with a GPU (the MLA kernels checked on an H100: BENCHMARKS.md, session 10).
        for shape in ["tiny-lite", "tiny-v2"] {
            let s = try SyntheticModel.shape(architecture: "deepseek2", name: shape)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkt-inj-deepseek2-\(shape)-\(getpid()).gguf").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            try SyntheticModel.build(architecture: "deepseek2", shape: s, type: .q8_0, seed: 11).write(to: path)
            let tree = try Architectures.moduleTree(file: try GGUFFile.open(path))
            XCTAssertTrue(ShippedRules.gpuRunsAttention(tree), shape)
            let d = try RuleChoice.choose(path: nil, architecture: "deepseek2", devices: [.cpu], dense: false,
                                          gpuAttention: ShippedRules.gpuRunsAttention(tree))
            XCTAssertEqual(d.file.source, "rules/cpu.yaml", shape)
            let g = try RuleChoice.choose(path: nil, architecture: "deepseek2", devices: [.cpu, .cuda(0)], dense: false,
                                          gpuAttention: ShippedRules.gpuRunsAttention(tree))
            XCTAssertEqual(g.file.source, "rules/cuda-moe.yaml", shape)
            // Attention and its linear layers on cuda:0, the MoE blocks on the CPU; the cache as the
            // GPU keeps it: per layer 2 heads × 192 f16 keys and as many (zero-padded) values.
            let plan = try Placement.plan(tree: tree, rules: g.file, devices: [.cpu, .cuda(0)], strict: true)
            for name in ["model.layers.1.self_attn", "model.layers.1.self_attn.kv_a_proj_with_mqa", "model.layers.1.self_attn.kv_b_proj",
                         "model.layers.1.self_attn.kv_a_layernorm", "model.layers.1.self_attn.o_proj"] {
                XCTAssertEqual(plan.modules.first { $0.name == name }?.generateDevice, .cuda(0), "\(shape) \(name)")
            }
            XCTAssertEqual(plan.modules.first { $0.name == "model.layers.1.mlp" }?.generateDevice, .cpu, shape)
            XCTAssertEqual(plan.kvBytesPerPosition[.cuda(0)], 3 * 2 * (2 * 192) * 2, shape)
        }
        // cuda.yaml on a machine without a GPU: a clear error naming the device.
        XCTAssertThrowsError(try Placement.plan(tree: try Tiny.tree("llama"), rules: try ShippedRules.load("cuda.yaml"), devices: [.cpu])) {
            XCTAssertTrue("\($0)".contains("cuda:0"), "\($0)")
        }
        XCTAssertThrowsError(try RuleChoice.choose(path: "/nonexistent/rules.yaml", architecture: "llama"))
    }

    func testModuleNamesRoundTrip() throws {
        let tree = try Tiny.tree("gemma3")
        for (node, _, _) in tree.flattened {
            for t in node.tensors where !node.tied {
                XCTAssertEqual(ModuleNames.module(forTensor: t.name, naming: .gemma)?.name, node.name, t.name)
                let base = t.name.replacingOccurrences(of: ".weight", with: "").replacingOccurrences(of: ".bias", with: "")
                XCTAssertEqual(ModuleNames.tensorBase(forModule: node.name, naming: .gemma), base)
            }
        }
        XCTAssertEqual(ModuleNames.module(forTensor: "blk.3.ffn_norm.weight")?.name, "model.layers.3.post_attention_layernorm")
        XCTAssertEqual(ModuleNames.module(forTensor: "blk.3.ffn_norm.weight", naming: .gemma)?.name,
                       "model.layers.3.pre_feedforward_layernorm")
        XCTAssertEqual(ModuleNames.tensorBase(forModule: "model.layers.12.self_attn.q_proj"), "blk.12.attn_q")
        XCTAssertEqual(tree.module(named: "lm_head")?.tied, true)
    }
}
