//! Comparing paths the way every part of the binary needs: canonical when the file exists, lexically normal
//! otherwise.
//!
//! *Invariant:* only `canonicalize` calls; no reads or writes.

pub use altcfi_analysis::lines::normalize;
use std::path::{Path, PathBuf};

/// The canonical form of a path if it exists, else its lexical normal form.
pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| normalize(path))
}

/// Whether two paths name the same file (lexically, or after resolving symbolic links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    normalize(a) == normalize(b) || canonical(a) == canonical(b)
}
