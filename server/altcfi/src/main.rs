//! The `altcfi` binary: a thin command line over the analysis library (and, in `lsp`, the language server).
//!
//! I/O lives here: reading objects and headers, printing reports, exit codes. No analysis logic.

mod alloc;
mod cli;
mod fix;
mod kbuild;
mod live;
mod lsp;
mod objfile;
mod paths;

#[global_allocator]
static ALLOCATOR: alloc::HugeForLarge = alloc::HugeForLarge;

fn main() {
    reset_sigpipe();
    std::process::exit(cli::run());
}

/// Like C command-line tools, end quietly when the reader of stdout goes away (`altcfi check … | head`) instead of
/// panicking inside `print!`. Rust starts programs with SIGPIPE ignored; this restores the default action.
#[cfg(unix)]
fn reset_sigpipe() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: installing the default disposition for SIGPIPE at start-up, before any thread exists.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn reset_sigpipe() {}
