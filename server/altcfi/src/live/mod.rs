//! Live compiles: a source file's build command run on text that is not saved (an editor buffer, a candidate fix),
//! producing an object to analyse without touching the tree.
//!
//! The buffer is written to a private temporary directory under the file's own name; the entry's command is run
//! there with its working directory and include paths as the build sees them (plus `-iquote` of the original
//! directory, so quoted includes still resolve, and a prefix map so that DWARF names the original file), its
//! output replaced by a temporary object and its side outputs (dependency files, `-save-temps`, listings, …)
//! dropped. Compile commands come from files in the workspace, so running one is running code: only allow-listed
//! compilers run, resolved on `PATH`; flags that load plugins or other programs are refused ([`command`]); no
//! shell is ever used; a time limit and cancellation kill the process group ([`process`]).
//!
//! *Invariant:* knows nothing of LSP or the command line; the language server and `altcfi fix` both call
//! [`compile`]. Nothing is written outside the temporary directory, which is removed when [`compile`] returns.

pub mod command;
pub mod process;

pub use command::CompileCommand;
pub use process::FirstError;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Why a live compile gave no object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// The command is not run: the message names the flag or the compiler.
    #[error("live compile refused: {0}")]
    Refused(String),
    /// The compile failed; its first error, if one could be read, and its messages.
    #[error("the compile failed: {}", first_line(.0.as_ref(), .1))]
    Failed(Option<FirstError>, String),
    /// The time limit passed; the compile was killed.
    #[error("the compile took longer than {} ms and was stopped", .0.as_millis())]
    TimedOut(Duration),
    /// A newer request took over; the compile was killed.
    #[error("cancelled")]
    Cancelled,
    /// A file or process could not be handled.
    #[error("{0}")]
    Io(String),
}

fn first_line(e: Option<&FirstError>, stderr: &str) -> String {
    match e {
        Some(e) => format!("{}:{}: {}", e.file.display(), e.line, e.message),
        None => stderr.lines().last().unwrap_or("no message").to_owned(),
    }
}

/// What a live compile may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Compiler names that may run ([`command::compiler_allowed`]).
    pub compilers: Vec<String>,
    /// The workspace root (response files are read only from inside it).
    pub root: Option<PathBuf>,
    /// Time limit of one compile.
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            compilers: command::DEFAULT_COMPILERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            root: None,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
        }
    }
}

/// Default time limit of a live compile (`altcfi.live.timeoutMs`).
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// An object compiled from unsaved text.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The object's bytes.
    pub object: Vec<u8>,
    /// The command that ran (program and arguments, for the log).
    pub argv: Vec<String>,
    /// How long the compile took.
    pub elapsed: Duration,
}

/// Compiles `text` as the source of `cmd` under `policy`; `cancelled()` is polled while the compiler runs and
/// kills it when true. Blocking.
pub fn compile(
    cmd: &CompileCommand,
    text: &str,
    policy: &Policy,
    cancelled: &dyn Fn() -> bool,
) -> Result<Compiled, LiveError> {
    let started = Instant::now();
    let argv = cmd.argv()?;
    let dir = tempfile::Builder::new()
        .prefix("altcfi-live-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(|e| LiveError::Io(format!("cannot make a temporary directory: {e}")))?;
    // Canonical, so that the prefix map matches the names the compiler writes.
    let temp_dir = dir
        .path()
        .canonicalize()
        .map_err(|e| LiveError::Io(format!("{}: {e}", dir.path().display())))?;
    let name = cmd
        .file
        .file_name()
        .ok_or_else(|| LiveError::Refused(format!("{} names no file", cmd.file.display())))?;
    let temp_source = temp_dir.join(name);
    let temp_object = temp_dir.join("live.o");
    std::fs::write(&temp_source, text)
        .map_err(|e| LiveError::Io(format!("{}: {e}", temp_source.display())))?;
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let safe = command::rewrite(
        &argv,
        cmd,
        &command::Rewrite {
            root: policy.root.as_deref(),
            compilers: &policy.compilers,
            path_var: &path_var,
            temp_dir: &temp_dir,
            temp_source: &temp_source,
            temp_object: &temp_object,
        },
    )?;
    let stderr_file = temp_dir.join("stderr.txt");
    let mut child = process::spawn(&safe.program, &safe.args, &cmd.directory, &stderr_file)?;
    let ok = process::wait(&mut child, policy.timeout, cancelled)?;
    let mut shown = vec![safe.program.display().to_string()];
    shown.extend(safe.args.iter().cloned());
    if !ok {
        let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
        let original_dir = crate::paths::canonical(&cmd.file)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        let first = process::first_error(&stderr, &temp_dir, &original_dir);
        return Err(LiveError::Failed(first, stderr));
    }
    let object = std::fs::read(&temp_object)
        .map_err(|e| LiveError::Io(format!("the compiler wrote no object: {e}")))?;
    Ok(Compiled {
        object,
        argv: shown,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::command::Invocation;
    use super::*;
    use std::path::Path;

    /// A scratch workspace with `examples/demo.S` and the header it includes, and its compile command.
    pub(crate) fn demo() -> (tempfile::TempDir, CompileCommand, String) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir_all(root.join("examples")).expect("mkdir");
        std::fs::create_dir_all(root.join("tests/fixtures/alt")).expect("mkdir");
        for f in [
            "examples/demo.S",
            "tests/fixtures/alt/alt-macros-612.h",
            "tests/fixtures/alt/fixture-common.h",
        ] {
            std::fs::copy(repo.join(f), root.join(f)).expect("copy");
        }
        let text = std::fs::read_to_string(root.join("examples/demo.S")).expect("read");
        let cmd = CompileCommand {
            directory: root.clone(),
            file: root.join("examples/demo.S"),
            invocation: Invocation::Command(
                "gcc -Wp,-MMD,build/.demo.o.d -c -g examples/demo.S -o build/demo.o".into(),
            ),
        };
        (dir, cmd, text)
    }

    fn listing(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(listing(&p));
            }
            out.push(p);
        }
        out.sort();
        out
    }

    #[test]
    fn compiles_the_buffer_without_touching_the_tree() {
        let (_dir, cmd, text) = demo();
        let before = listing(&cmd.directory);
        let edited = text.replace(
            "ret\nSYM_FUNC_END(save_fl_ok)",
            "nop\n\tret\nSYM_FUNC_END(save_fl_ok)",
        );
        let c = compile(&cmd, &edited, &Policy::default(), &|| false).expect("compile");
        assert!(c.object.starts_with(b"\x7fELF"));
        assert_eq!(
            listing(&cmd.directory),
            before,
            "the live compile wrote into the tree"
        );
        // DWARF names the document, not the temporary copy.
        let a = altcfi_analysis::analyze(&c.object, Default::default(), &Default::default())
            .expect("analyse");
        let s = altcfi_analysis::sources::Sources::new(&a, &c.object).expect("sources");
        let files = s.source_files();
        assert!(files.contains(&cmd.file), "{files:?}");
        assert!(
            !files
                .iter()
                .any(|f| f.to_string_lossy().contains("altcfi-live-")),
            "{files:?}"
        );
    }

    #[test]
    fn a_buffer_that_does_not_assemble_gives_its_first_error_line() {
        let (_dir, cmd, text) = demo();
        let broken = text.replacen("\tret\n", "\tpusx %rcx\n\tret\n", 1);
        let line = broken
            .lines()
            .position(|l| l.contains("pusx"))
            .expect("line") as u32
            + 1;
        match compile(&cmd, &broken, &Policy::default(), &|| false) {
            Err(LiveError::Failed(Some(e), _)) => {
                assert_eq!(e.line, line, "{e:?}");
                assert_eq!(e.file, cmd.file);
                assert!(e.message.contains("pusx"), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// Assembler input that keeps gas busy for minutes with little memory: nested `.rept` of a symbol update.
    fn slow_source(marker: &str) -> String {
        format!("/* {marker} */\n.rept 100000\n.rept 100000\n.set x, x+1\n.endr\n.endr\n")
    }

    /// Processes (not zombies) whose command line mentions `marker`.
    fn running_with(marker: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let p = e.path();
            let Ok(cmdline) = std::fs::read(p.join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let state = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
            let zombie = state
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z'));
            if cmdline.contains(marker) && !zombie {
                out.push(cmdline);
            }
        }
        out
    }

    fn slow_command(name: &str) -> (tempfile::TempDir, CompileCommand) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        let cmd = CompileCommand {
            directory: root.clone(),
            file: root.join(name),
            invocation: Invocation::Arguments(
                ["gcc", "-c", name, "-o", "x.o"].map(String::from).to_vec(),
            ),
        };
        (dir, cmd)
    }

    #[test]
    fn a_newer_edit_cancels_the_compile_and_leaves_no_process() {
        let marker = format!("altcfi-cancel-{}", std::process::id());
        let (_dir, cmd) = slow_command(&format!("{marker}.S"));
        let started = Instant::now();
        let cancel_at = Duration::from_millis(300);
        let r = compile(&cmd, &slow_source(&marker), &Policy::default(), &|| {
            started.elapsed() >= cancel_at
        });
        assert_eq!(r.map(|_| ()), Err(LiveError::Cancelled));
        assert!(started.elapsed() < Duration::from_secs(5));
        let left = running_with(&marker);
        assert!(left.is_empty(), "orphaned compiler processes: {left:?}");
    }

    #[test]
    fn the_time_limit_kills_the_compile() {
        let marker = format!("altcfi-timeout-{}", std::process::id());
        let (_dir, cmd) = slow_command(&format!("{marker}.S"));
        let policy = Policy {
            timeout: Duration::from_millis(300),
            ..Policy::default()
        };
        let r = compile(&cmd, &slow_source(&marker), &policy, &|| false);
        assert_eq!(r.map(|_| ()), Err(LiveError::TimedOut(policy.timeout)));
        let left = running_with(&marker);
        assert!(left.is_empty(), "compiler processes left: {left:?}");
    }
}
