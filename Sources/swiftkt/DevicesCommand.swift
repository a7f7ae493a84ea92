// `swiftkt devices`: the CPU's SIMD features and the CUDA devices this binary can use.
import ArgumentParser
import CUDA
import Foundation
import Operators

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "Show the CPU features and the CUDA devices found at run time.",
        discussion: "CUDA is loaded with dlopen (libcuda, libnvrtc, libnccl when present); nothing CUDA-specific is needed to build or run on a CPU-only machine.")

    @Flag(help: "Compile a kernel with NVRTC and run it on every GPU, checking the result; with NCCL, an all-reduce over every GPU too.")
    var selftest = false

    func run() throws {
        let cpu = CPUInfo.current()
        print("cpu     \(cpu.model), \(cpu.cores) threads")
        print("        SIMD: \(cpu.simdFeatures.isEmpty ? "none beyond the baseline" : cpu.simdFeatures.joined(separator: " "))")
        let report = CUDAProbe.probe()
        if let v = report.driverVersion { print("cuda    driver \(v / 1000).\(v % 1000 / 10)") }
        if let (major, minor) = report.nvrtcVersion { print("nvrtc   \(major).\(minor)") }
        for d in report.devices {
            print(String(format: "cuda:%d  %@, compute %d.%d (%@), %d SMs, %.1f GiB", d.ordinal, d.name,
                         d.computeCapability.major, d.computeCapability.minor, d.architecture, d.multiprocessors,
                         Double(d.totalMemory) / 1_073_741_824))
        }
        if let problem = report.problem { print("cuda    not available: \(problem)") }
        if let nccl = report.nccl { print("nccl    \(nccl.version) (\(nccl.path))") } else if report.ncclProblem != nil {
            print("nccl    not found (collectives between GPUs unavailable; SWIFTKT_NCCL names the library)")
        }
        // SWIFTKT_CUDA_STAND_IN: devices the rules may name beyond the GPUs found.
        for case let .cuda(i) in Device.available where i >= report.devices.count {
            print("cuda:\(i)  stands in on cuda:\(Device.physicalOrdinal(i)) (SWIFTKT_CUDA_STAND_IN)")
        }
        guard selftest else { return }
        guard !report.devices.isEmpty, report.nvrtcVersion != nil else {
            throw ValidationError("--selftest needs a CUDA device and NVRTC")
        }
        for d in report.devices {
            let error = try CUDAProbe.selfTest(ordinal: d.ordinal)
            print(String(format: "cuda:%d  selftest axpy (1,000,003 floats): max |error| %.2e — %@", d.ordinal, error,
                         error < 1e-5 ? "ok" : "FAILED"))
            if error >= 1e-5 { throw ExitCode.failure }
        }
        if report.nccl != nil {
            let ordinals = report.devices.map(\.ordinal)
            let error = try CUDAProbe.ncclSelfTest(ordinals: ordinals)
            print(String(format: "nccl    selftest all-reduce over %d GPU(s) (1,048,576 floats): max |error| %.2e — %@", ordinals.count, error,
                         error == 0 ? "ok" : "FAILED"))
            if error != 0 { throw ExitCode.failure }
        }
    }
}
