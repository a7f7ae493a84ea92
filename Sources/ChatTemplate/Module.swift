// ChatTemplate module: see docs/architecture.md.
