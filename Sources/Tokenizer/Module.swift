// Tokenizer module: see docs/architecture.md.
