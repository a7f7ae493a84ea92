// swift-tools-version:6.0
// SwiftKT: local LLM inference on CPU + NVIDIA GPUs. See docs/architecture.md for the target graph.
import PackageDescription

let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "SwiftKT",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "swiftkt", targets: ["swiftkt"]),
        .library(name: "Engine", targets: ["Engine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Tensor views, quant types and block layouts, thread pool, errors.
        .target(name: "Core"),
        // GGUF reader (mmap, typed metadata, tensor index, split files) and writer.
        .target(name: "GGUF", dependencies: ["Core"]),
        // Scalar reference + SIMD kernels.
        .target(name: "CPUKernels", dependencies: ["Core"], swiftSettings: optimize),
        // BPE / SentencePiece tokenizers built from GGUF metadata.
        .target(name: "Tokenizer", dependencies: ["Core", "GGUF"]),
        // A Jinja subset for chat templates (no dependencies).
        .target(name: "ChatTemplate"),
        // Architectures: hyperparameters, tensor tables, forward passes.
        .target(name: "Models", dependencies: ["Core", "GGUF", "CPUKernels"], swiftSettings: optimize),
        // Composition root: loading, model store, sessions, sampling, generation.
        .target(name: "Engine", dependencies: ["Core", "GGUF", "CPUKernels", "Tokenizer", "ChatTemplate", "Models"]),
        .executableTarget(name: "swiftkt", dependencies: [
            "Engine",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "CoreTests", dependencies: ["Core", "CPUKernels"]),
        .testTarget(name: "GGUFTests", dependencies: ["Core", "GGUF"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "GGUF"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ChatTemplateTests", dependencies: ["ChatTemplate"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ModelTests", dependencies: ["Engine", "Models", "GGUF", "Core"], exclude: ["Fixtures"]),
    ]
)
