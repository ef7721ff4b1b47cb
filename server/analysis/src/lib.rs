//! altcfi's analysis library: compiled x86-64 ELF objects in, CFI per instruction, alternative-group findings, ORC
//! rows and source locations out.
//!
//! The pipeline runs one way, one module per stage:
//! [`object`] (bytes → sections, symbols, relocations) → [`decode`] (instructions and their stack operations) →
//! [`special`] (alternatives, jump labels, exception fixups, unwind hints as data) → [`flow`] and [`alternatives`]
//! (functions, branch targets, jump tables, noreturn calls, alternative groups) → [`cfi`] and [`validate`] (the walk,
//! per-instruction CFI, the shared per-offset arrays, findings) → [`orc`] (ORC rows; [`ehframe`] compares the
//! emitted `.eh_frame`/`.debug_frame` tables with the computed CFI) → [`lines`] (DWARF source
//! locations) → [`sources`] (findings and explanations on source lines) → [`report`] (text, JSON, SARIF).
//! [`analysis`] runs the stages for one object.
//!
//! Architecture invariant: this crate does no I/O of its own (callers hand it bytes), never panics on input, and
//! knows nothing about LSP, tokio or the command line.

pub mod alternatives;
pub mod analysis;
pub mod cfi;
pub mod decode;
pub mod ehframe;
pub mod features;
pub mod findings;
pub mod flow;
pub mod lines;
pub mod object;
pub mod options;
pub mod orc;
pub mod report;
pub mod sources;
pub mod special;
pub mod symbols;
pub mod uaccess;
pub mod unwind;
pub mod validate;

pub use analysis::{
    analyze, analyze_findings, analyze_lean, analyze_staged, Analysis, AnalysisError, EraSource,
};
pub use findings::{Finding, FindingKind};
pub use options::{Era, ObjtoolArgs, Options};
