//! altcfi's analysis library: compiled x86-64 ELF objects in, CFI per instruction, alternative-group findings, ORC
//! rows and source locations out.
//!
//! The pipeline runs one way, one module per stage:
//! [`object`] (bytes → sections, symbols, relocations) → [`decode`] (instructions and their stack operations) →
//! [`flow`] (functions, branch targets, jump tables, noreturn calls) → [`special`] (alternatives, jump labels,
//! exception fixups, hints and annotations) → [`cfi`] (the walk, per-instruction CFI, the shared per-offset arrays,
//! findings) → [`orc`] (ORC rows) → [`lines`] (DWARF source locations) → [`report`] (text, JSON, SARIF).
//!
//! Architecture invariant: this crate does no I/O of its own beyond what a caller hands it as bytes, never panics on
//! input, and knows nothing about LSP, tokio or the command line.

pub mod lines;
