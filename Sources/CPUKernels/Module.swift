// CPUKernels module: see docs/architecture.md.
