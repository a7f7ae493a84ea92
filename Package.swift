// swift-tools-version:6.0
// SwiftKT: local LLM inference on CPU + NVIDIA GPUs. See docs/architecture.md for the target graph.
import PackageDescription

let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

/// `-target-cpu NAME` for the x86-64 SIMD targets; nothing on other architectures, where their
/// sources compile to the portable code (the manifest is evaluated on the host).
func targetCPU(_ name: String) -> [SwiftSetting] {
    #if arch(x86_64)
    return [.unsafeFlags(["-target-cpu", name], .when(platforms: [.linux]))]
    #else
    return []
    #endif
}

let package = Package(
    name: "SwiftKT",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "swiftkt", targets: ["swiftkt"]),
        .library(name: "Engine", targets: ["Engine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // Tensor views, quant types and block layouts, thread pool, errors.
        .target(name: "Core"),
        // GGUF reader (mmap, typed metadata, tensor index, split files) and writer.
        .target(name: "GGUF", dependencies: ["Core"]),
        // CPU hints Swift cannot spell (software prefetch), header-only C.
        .target(name: "CSupport"),
        // Scalar reference + SIMD kernels.
        .target(name: "CPUKernels", dependencies: ["Core", "CSupport", "CPUKernelsAMX",
                                                   .target(name: "CPUKernelsAVX2", condition: .when(platforms: [.linux])),
                                                   .target(name: "CPUKernelsAVX512", condition: .when(platforms: [.linux]))],
                swiftSettings: optimize),
        // CPUKernels/QuantizedPanels.swift (a symbolic link) compiled for AVX2 CPUs; CPUKernels
        // calls it when /proc/cpuinfo has the flags (x86-64 Linux only: -target-cpu is an x86 name).
        .target(name: "CPUKernelsAVX2", dependencies: ["Core", "CSupport"],
                swiftSettings: optimize + targetCPU("haswell") + [.define("SWIFTKT_AVX2")]),
        // AVX-512 VNNI kernels (intrinsics from Clang's headers), compiled for Cascade Lake class
        // CPUs (Intel since 2019, AMD since Zen 4); CPUKernels calls them when the CPU has the flags.
        // CPUKernels/FusedMath.swift (a symbolic link) is compiled here too, for 16-lane attention,
        // and CPUKernelsAVX2/Q4KLanes.swift with VNNI dot products.
        .target(name: "CPUKernelsAVX512", dependencies: ["Core", "CSupport"],
                swiftSettings: optimize + targetCPU("cascadelake") + [.define("SWIFTKT_AVX2"), .define("SWIFTKT_VNNI")]),
        // Intel AMX tile kernels (C: Swift cannot spell the tile instructions) for q4_K batches,
        // each also built on a software model of the tiles so that any CPU tests them.
        .target(name: "CPUKernelsAMX"),
        // CUDA driver API and NVRTC loaded at run time (dlopen); nothing CUDA at build time.
        .target(name: "CUDA", dependencies: ["Core"]),
        // Dense decoders (Models' DecoderModel) on one CUDA device: weights uploaded in their GGUF
        // blocks, forward passes with CUDA/GPUOps, decode steps replayed as CUDA graphs.
        .target(name: "ModelsCUDA", dependencies: ["Core", "CPUKernels", "CUDA", "Models", "Operators"], swiftSettings: optimize),
        // BPE / SentencePiece tokenizers built from GGUF metadata.
        .target(name: "Tokenizer", dependencies: ["Core", "GGUF"]),
        // A Jinja subset for chat templates (no dependencies).
        .target(name: "ChatTemplate"),
        // Operator protocols, today's CPU implementations and the registry by name (devices,
        // module kinds, kwargs schema). Rules choose among them; models call them through protocols.
        .target(name: "Operators", dependencies: ["Core", "CPUKernels", "CUDA"], swiftSettings: optimize),
        // Architectures: hyperparameters, tensor tables, module trees, forward passes.
        .target(name: "Models", dependencies: ["Core", "GGUF", "CPUKernels", "Operators"], swiftSettings: optimize),
        // YAML rules → typed rules → placement plan; shipped rule files; the plan printer.
        .target(name: "Injection", dependencies: [
            "Core", "GGUF", "Models", "Operators", .product(name: "Yams", package: "Yams"),
        ]),
        // Composition root: loading, model store, sessions, sampling, generation.
        .target(name: "Engine", dependencies: ["Core", "GGUF", "CPUKernels", "Tokenizer", "ChatTemplate", "Models",
                                               "Operators", "Injection", "CUDA", "ModelsCUDA", "CSupport"]),
        // OpenAI- and Ollama-compatible HTTP APIs on POSIX sockets (no dependencies beyond Foundation).
        .target(name: "Server", dependencies: ["Engine", "ChatTemplate", "GGUF"]),
        .executableTarget(name: "swiftkt", dependencies: [
            "Engine", "Server", "CUDA", "CPUKernels", "Core", "CSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "CoreTests", dependencies: ["Core", "CPUKernels"]),
        .testTarget(name: "GGUFTests", dependencies: ["Core", "GGUF"]),
        .testTarget(name: "CUDATests", dependencies: ["CUDA", "Core"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "GGUF"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ChatTemplateTests", dependencies: ["ChatTemplate"], resources: [.copy("Fixtures")]),
        .testTarget(name: "InjectionTests", dependencies: ["Injection", "Engine", "Models", "Operators", "GGUF", "Core", "CPUKernels"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Engine"]),
        .testTarget(name: "ModelTests", dependencies: ["Engine", "Models", "ModelsCUDA", "CUDA", "GGUF", "Core"], exclude: ["Fixtures"]),
    ]
)
