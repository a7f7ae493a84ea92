// Rule semantics, read as a spec: first match wins, recursive false, class default, class-only /
// name-only / layer-range matches, per-phase operators and threshold, kwargs validation, and the
// errors a user sees for malformed YAML, bad regexes, unknown operators / kwargs / devices.
import CPUKernels
import Foundation
@testable import Injection
import Models
import Operators
import XCTest

final class RuleTests: XCTestCase {
    // MARK: - Matching

    func testFirstMatchingRuleWins() throws {
        let p = try plan("""
        - match: {name: "q_proj$"}
          replace: {class: LinearCPUReference}
        - match: {class: Linear}
          replace: {class: LinearCPUQuantized}
        """)
        XCTAssertEqual(p.module("model.layers.0.self_attn.q_proj")?.generateOp, "LinearCPUReference")
        XCTAssertEqual(p.module("model.layers.0.self_attn.q_proj")?.rule, 1)
        XCTAssertEqual(p.module("model.layers.0.self_attn.k_proj")?.generateOp, "LinearCPUQuantized")
        XCTAssertEqual(p.module("model.layers.0.self_attn.k_proj")?.rule, 2)
    }

    func testRecursiveFalseStopsRulesAtTheModule() throws {
        let p = try plan("""
        - match: {name: "^model\\\\.layers\\\\.0\\\\.mlp$"}
          replace: {class: MLPCPU, kwargs: {gelu: exact}}
          recursive: false
        - match: {class: Linear}
          replace: {class: LinearCPUReference}
        """)
        XCTAssertEqual(p.module("model.layers.0.mlp")?.kwargs["gelu"], .string("exact"))
        // Children of layer 0's MLP keep the default; layer 1's are reached by rule 2.
        XCTAssertEqual(p.module("model.layers.0.mlp.gate_proj")?.generateOp, "LinearCPUQuantized")
        XCTAssertNil(p.module("model.layers.0.mlp.gate_proj")?.rule)
        XCTAssertEqual(p.module("model.layers.0.self_attn.q_proj")?.generateOp, "LinearCPUReference")
        XCTAssertEqual(p.module("model.layers.1.mlp.gate_proj")?.generateOp, "LinearCPUReference")
    }

    func testClassDefaultKeepsTheDefaultOperatorAndPassesSettingsDown() throws {
        let p = try plan("""
        - match: {name: "^model\\\\.layers\\\\.1$"}
          replace: {class: default, kwargs: {prefill_threshold: 8}}
        """)
        XCTAssertEqual(p.module("model.layers.1")?.generateOp, "DecoderLayerCPU")
        XCTAssertEqual(p.module("model.layers.1.mlp.up_proj")?.prefillThreshold, 8)
        XCTAssertEqual(p.module("model.layers.1.mlp.up_proj")?.generateOp, "LinearCPUQuantized")
        XCTAssertEqual(p.module("model.layers.0.mlp.up_proj")?.prefillThreshold, 1)
        // A replace without class is class default.
        let q = try plan("""
        - match: {class: Attention}
          replace: {kwargs: {device: cpu}}
        """)
        XCTAssertEqual(q.module("model.layers.0.self_attn")?.generateOp, "AttentionCPUFlashF16")
    }

    func testClassOnlyAndNameOnlyMatches() throws {
        let p = try plan("""
        - match: {class: LMHead}
          replace: {class: LinearCPUReference}
        - match: {name: "down_proj"}
          replace: {class: LinearCPUReference}
        """)
        XCTAssertEqual(p.module("lm_head")?.generateOp, "LinearCPUReference")
        let reference = p.modules.filter { $0.generateOp == "LinearCPUReference" }.map(\.name)
        XCTAssertEqual(reference, ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj", "lm_head"])
    }

    func testLayerRanges() throws {
        for range in ["\"1\"", "\"1-1\"", "[1, 1]", "\"1-3,7\""] {
            let p = try plan("""
            - match: {layers: \(range), class: Linear}
              replace: {class: LinearCPUReference}
            """)
            XCTAssertEqual(p.module("model.layers.1.self_attn.v_proj")?.generateOp, "LinearCPUReference", range)
            XCTAssertEqual(p.module("model.layers.0.self_attn.v_proj")?.generateOp, "LinearCPUQuantized", range)
            XCTAssertEqual(p.module("lm_head")?.generateOp, "LinearCPUQuantized", range)
        }
        let e = injectionError { _ = try rules("- match: {layers: \"3-1\"}\n  replace: {class: default}\n") }
        XCTAssertTrue(e?.description.contains("layers must be") ?? false, e?.description ?? "")
    }

    func testPhaseOperatorsAndThreshold() throws {
        let p = try plan("""
        - match: {class: Linear}
          replace:
            class: LinearCPUQuantized
            kwargs: {prefill_op: LinearCPUReference, prefill_threshold: 4}
        """)
        let m = try XCTUnwrap(p.module("model.layers.0.mlp.gate_proj"))
        XCTAssertEqual([m.prefillOp, m.generateOp], ["LinearCPUReference", "LinearCPUQuantized"])
        let b = try Placement.binding(for: p)
        XCTAssertEqual(b.linear(m.name, tokens: 4).name, "LinearCPUQuantized")
        XCTAssertEqual(b.linear(m.name, tokens: 5).name, "LinearCPUReference")
        XCTAssertEqual(b.linear(m.name, tokens: 1).name, "LinearCPUQuantized")
        XCTAssertEqual(b.linear("lm_head", tokens: 100).name, "LinearCPUQuantized")
    }

    /// Block-sparse attention keeps anchors of the keys written, so it must run both phases.
    func testBlockSparseAttentionRunsBothPhases() throws {
        let p = try plan("""
        - match: {class: Attention}
          replace: {class: AttentionCPUBlockSparse, kwargs: {block_size: 32, second_select_num: 4, anchor: mean}}
        """)
        let m = try XCTUnwrap(p.module("model.layers.0.self_attn"))
        XCTAssertEqual([m.prefillOp, m.generateOp], ["AttentionCPUBlockSparse", "AttentionCPUBlockSparse"])
        let op = try XCTUnwrap(try Placement.binding(for: p).attention(m.name, tokens: 1) as? AttentionCPUBlockSparse)
        XCTAssertEqual(op.config, BlockSparseConfig(blockSize: 32, initTokens: 64, localTokens: 512, selectBlocks: 4, anchor: .mean))
        let e = injectionError { _ = try plan("""
        - match: {class: Attention}
          replace: {class: AttentionCPUBlockSparse, kwargs: {prefill_op: AttentionCPUFlashF16}}
        """) }
        XCTAssertTrue(e?.message.contains("must run the module's prefill too") == true, "\(String(describing: e))")
        XCTAssertTrue(injectionError { _ = try plan("""
        - match: {class: Attention}
          replace: {class: AttentionCPUBlockSparse, kwargs: {anchor: maximum}}
        """) }?.message.contains("valid: quest, mean") == true)
    }

    func testUnmatchedRuleWarnsAndStrictFails() throws {
        let yaml = """
        - match: {class: Experts}
          replace: {class: default}
        """
        let p = try plan(yaml)
        XCTAssertEqual(p.warnings.count, 1)
        XCTAssertTrue(p.warnings[0].contains("test.yaml:1: rule 1 matches no module"), p.warnings[0])
        let e = injectionError { _ = try plan(yaml, strict: true) }
        XCTAssertEqual(e?.line, 1)
    }

    // MARK: - Errors a user sees

    func testUnknownOperatorSuggestsTheClosestName() {
        let e = injectionError { _ = try rules("""
        - match: {class: Linear}
          replace:
            class: LinearCPUQuantised
        """) }
        XCTAssertEqual(e?.line, 3)
        XCTAssertTrue(e?.message.contains("unknown operator 'LinearCPUQuantised'") ?? false)
        XCTAssertTrue(e?.message.contains("did you mean 'LinearCPUQuantized'?") ?? false, e?.message ?? "")
        XCTAssertTrue(e?.message.contains("AttentionCPUExact") ?? false, "lists the valid operators")
    }

    func testUnknownKwargAndBadValues() {
        var e = injectionError { _ = try rules("""
        - match: {class: MLP}
          replace: {class: MLPCPU, kwargs: {gelo: exact}}
        """) }
        XCTAssertTrue(e?.message.contains("unknown kwarg 'gelo' for MLPCPU") ?? false, e?.message ?? "")
        XCTAssertTrue(e?.message.contains("did you mean 'gelu'?") ?? false, e?.message ?? "")
        e = injectionError { _ = try rules("- match: {class: MLP}\n  replace: {class: MLPCPU, kwargs: {gelu: fast}}\n") }
        XCTAssertTrue(e?.message.contains("valid: table, exact") ?? false, e?.message ?? "")
        e = injectionError { _ = try rules("- match: {class: Linear}\n  replace: {kwargs: {prefill_threshold: -3}}\n") }
        XCTAssertTrue(e?.message.contains("prefill_threshold") ?? false, e?.message ?? "")
        e = injectionError { _ = try rules("- match: {class: Linar}\n  replace: {class: default}\n") }
        XCTAssertTrue(e?.message.contains("did you mean 'Linear'?") ?? false, e?.message ?? "")
        e = injectionError { _ = try rules("- match: {class: Linear}\n  replac: {class: default}\n") }
        XCTAssertTrue(e?.message.contains("did you mean 'replace'?") ?? false, e?.message ?? "")
        e = injectionError { _ = try rules("- match: {class: Attention}\n  replace: {class: LinearCPUReference}\n") }
        XCTAssertTrue(e?.message.contains("does not run Attention") ?? false, e?.message ?? "")
    }

    func testUnknownDeviceAndCUDA() {
        let e = injectionError { _ = try rules("- match: {class: Linear}\n  replace: {kwargs: {generate_device: gpu}}\n") }
        XCTAssertEqual(e?.line, 2)
        XCTAssertTrue(e?.message.contains("unknown device 'gpu' for generate_device; valid: cpu, cuda:N") ?? false, e?.message ?? "")
        // cuda:N parses, and placement says why it cannot be used.
        XCTAssertNoThrow(try rules("- match: {class: Linear}\n  replace: {kwargs: {device: \"cuda:0\"}}\n"))
        let p = injectionError { _ = try plan("- match: {class: Linear}\n  replace: {kwargs: {device: \"cuda:0\"}}\n") }
        if Device.available.contains(.cuda(0)) {
            XCTAssertNil(p, "with a GPU here, Linear on cuda:0 runs LinearCUDA")
        } else {
            XCTAssertTrue(p?.message.contains("no such CUDA device here") ?? false, p?.message ?? "")
        }
    }

    func testMalformedYAMLHasALineNumber() {
        let e = injectionError { _ = try rules("""
        - match: {class: Linear}
          replace: {class: default}
        - match: {class: Linear
          replace: {class: default}
        """) }
        XCTAssertNotNil(e?.line)
        XCTAssertTrue((3...4).contains(e?.line ?? 0), e?.description ?? "")
        XCTAssertTrue(e?.message.hasPrefix("malformed YAML") ?? false)
        let notAList = injectionError { _ = try rules("match: {class: Linear}\n") }
        XCTAssertTrue(notAList?.message.contains("list of rules") ?? false)
    }

    func testDuplicateKeysEmptyLayersAndDeepNestingAreErrors() {
        let twice = injectionError { _ = try rules("- match: {class: Linear, class: MLP}\n  replace: {class: default}\n") }
        XCTAssertTrue(twice?.message.contains("key 'class' appears twice in match") ?? false, twice?.description ?? "")
        let kwargs = injectionError { _ = try rules("- match: {class: Linear}\n  replace: {class: default, kwargs: {device: cpu, device: cuda:0}}\n") }
        XCTAssertTrue(kwargs?.message.contains("appears twice in kwargs") ?? false, kwargs?.description ?? "")
        let empty = injectionError { _ = try rules("- match: {layers: \"\"}\n  replace: {class: default}\n") }
        XCTAssertTrue(empty?.message.contains("layers must be") ?? false, empty?.description ?? "")
        // Thousands of levels would overflow the YAML parser's stack: refused before it.
        let deep = injectionError { _ = try rules(String(repeating: "[", count: 3000)) }
        XCTAssertTrue(deep?.message.contains("nests too deeply") ?? false, deep?.description ?? "")
        XCTAssertNil(RuleFile.tooDeep("- match: {name: \"[[[[\"}  # [[[[\n  replace: {class: default}\n"), "quotes and comments do not count")
    }

    func testInvalidRegex() {
        let e = injectionError { _ = try rules("""
        - match:
            name: "model.layers.(0"
          replace: {class: default}
        """) }
        XCTAssertEqual(e?.line, 2)
        XCTAssertTrue(e?.message.contains("invalid regex 'model.layers.(0'") ?? false, e?.message ?? "")
    }

    func testOperatorMustRunTheMatchedKind() {
        let e = injectionError { _ = try plan("""
        - match: {name: "\\\\.mlp"}
          replace: {class: LinearCPUReference}
        """) }
        XCTAssertTrue(e?.message.contains("matches model.layers.0.mlp (MLP) but LinearCPUReference runs") ?? false, e?.message ?? "")
        XCTAssertTrue(e?.message.contains("add `class: …`") ?? false)
    }

    func testAttentionOperatorsMustShareTheCacheElement() {
        let e = injectionError { _ = try plan("""
        - match: {class: Attention, layers: "0"}
          replace: {class: AttentionCPUExact}
        """) }
        XCTAssertTrue(e?.message.contains("disagree on the KV cache element") ?? false, e?.message ?? "")
    }
}
