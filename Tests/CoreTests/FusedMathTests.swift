// FusedMath.swift is one source compiled three times (portable, AVX2, AVX-512); every build must
// give the portable build's bits.
import XCTest
@testable import CPUKernels
import Core

final class FusedMathTests: XCTestCase {
    func testGeGLUIsTheSameOnEveryISAAndTheTableLookup() {
        var rng = SeededGenerator(seed: 6)
        for count in [1, 7, 8, 9, 64, 67, 300] {
            // Around and past ±10 (the table's ends), and exact ±10.
            var gate = (0..<count).map { _ in 7 * rng.nextNormal() }
            if count > 4 { gate[0] = 10; gate[1] = -10; gate[2] = 0; gate[3] = -0.0 }
            let up = (0..<count).map { _ in rng.nextNormal() }
            let expected = (0..<count).map { gate[$0] <= -10 ? 0 : Ops.geluTable(gate[$0]) * up[$0] }
            for isa in KernelISA.available {
                var other = gate
                Ops.gatedActivation(gate: &other, up: up, count: count, activation: .geluTable, isa: isa)
                XCTAssertEqual(other.map(\.bitPattern), expected.map(\.bitPattern), "\(isa), \(count) elements")
            }
        }
    }

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
