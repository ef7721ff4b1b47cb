//! The `altcfi` binary: a thin command line over the analysis library (and, in `lsp`, the language server).
//!
//! I/O lives here: reading objects and headers, printing reports, exit codes. No analysis logic.

mod cli;
mod lsp;

fn main() {
    std::process::exit(cli::run());
}
