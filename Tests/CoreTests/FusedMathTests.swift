// FusedMath.swift is one source compiled three times (portable, AVX2, AVX-512); every build must
// give the portable build's bits.
import XCTest
@testable import CPUKernels
import Core

final class FusedMathTests: XCTestCase {
    func testSwiGLUIsTheSameOnEveryISA() {
        var rng = SeededGenerator(seed: 5)
        for count in [1, 15, 16, 17, 64, 67, 300] {
            // Wide inputs, so that the exp polynomial's clamps and the tail are exercised.
            let gate = (0..<count).map { _ in 12 * rng.nextNormal() }, up = (0..<count).map { _ in rng.nextNormal() }
            var portable = gate
            Ops.gatedActivation(gate: &portable, up: up, count: count, activation: .siluGGML, isa: .baseline)
            XCTAssertNotEqual(portable, gate)
            for isa in KernelISA.available {
                var other = gate
                Ops.gatedActivation(gate: &other, up: up, count: count, activation: .siluGGML, isa: isa)
                XCTAssertEqual(other.map(\.bitPattern), portable.map(\.bitPattern), "\(isa), \(count) elements")
            }
        }
    }
}
