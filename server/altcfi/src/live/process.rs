//! Running a live compile: no shell, its own process group, a time limit and cancellation that kill the whole
//! group (the driver and the preprocessor, compiler and assembler it started), and the first error of a failed
//! compile read from its messages.
//!
//! *Invariant:* owns child processes from start to reaping; never leaves one running when it returns.

use super::LiveError;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first error of a compile that failed, on its source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstError {
    /// The file the message names (the temporary source is named as the original).
    pub file: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// The message after `Error: ` / `error: `.
    pub message: String,
}

/// Starts `program args` in `cwd` in a new process group, stdin and stdout closed, stderr into `stderr_file`.
pub fn spawn(
    program: &Path,
    args: &[String],
    cwd: &Path,
    stderr_file: &Path,
) -> Result<Child, LiveError> {
    use std::os::unix::process::CommandExt;
    let err = std::fs::File::create(stderr_file)
        .map_err(|e| LiveError::Io(format!("{}: {e}", stderr_file.display())))?;
    Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
        .map_err(|e| LiveError::Io(format!("cannot run {}: {e}", program.display())))
}

/// Kills `child`'s whole process group and reaps it.
pub fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: sending a signal to the process group this module created for the child (its id is the group's).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

/// Waits for `child`, killing its process group when `timeout` passes (`TimedOut`) or `cancelled()` says so
/// (`Cancelled`). Returns whether it exited successfully.
pub fn wait(
    child: &mut Child,
    timeout: Duration,
    cancelled: &dyn Fn() -> bool,
) -> Result<bool, LiveError> {
    let started = Instant::now();
    let mut pause = Duration::from_micros(500);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.success()),
            Ok(None) => {}
            Err(e) => {
                kill_group(child);
                return Err(LiveError::Io(format!("waiting for the compiler: {e}")));
            }
        }
        if cancelled() {
            kill_group(child);
            return Err(LiveError::Cancelled);
        }
        if started.elapsed() >= timeout {
            kill_group(child);
            return Err(LiveError::TimedOut(timeout));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// The first error in a compiler's or assembler's messages: `file:LINE: Error: …` (GNU as) or
/// `file:LINE:COL: error: …` (gcc, clang). Names of `temp_dir` are given back as in `original_dir`.
pub fn first_error(stderr: &str, temp_dir: &Path, original_dir: &Path) -> Option<FirstError> {
    for line in stderr.lines() {
        let Some((head, message)) = line
            .split_once(": Error: ")
            .or_else(|| line.split_once(": error: "))
            .or_else(|| line.split_once(": fatal error: "))
        else {
            continue;
        };
        // head: `file:LINE` or `file:LINE:COL`.
        let Some((rest, last)) = head.rsplit_once(':') else {
            continue;
        };
        let Ok(last) = last.parse::<u32>() else {
            continue;
        };
        let (file, line_no) = match rest.rsplit_once(':') {
            Some((f, l)) if l.parse::<u32>().is_ok() => (f, l.parse::<u32>().unwrap_or(last)),
            _ => (rest, last),
        };
        let path = Path::new(file);
        let file = match path.strip_prefix(temp_dir) {
            Ok(rest) => original_dir.join(rest),
            Err(_) => path.to_path_buf(),
        };
        return Some(FirstError {
            file,
            line: line_no,
            message: message.trim().to_owned(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_error_of_gas_and_gcc() {
        let gas = "/tmp/a1/demo.S: Assembler messages:\n/tmp/a1/demo.S:21: Error: no such instruction: `pusx %rcx'\n/tmp/a1/demo.S:22: Error: junk\n";
        let e = first_error(gas, Path::new("/tmp/a1"), Path::new("/src/x")).expect("error");
        assert_eq!(e.file, Path::new("/src/x/demo.S"));
        assert_eq!(e.line, 21);
        assert_eq!(e.message, "no such instruction: `pusx %rcx'");
        let gcc = "In file included from /tmp/a1/x.c:3:\n/src/x/h.h:7:5: error: unknown type name 'foo'\n";
        let e = first_error(gcc, Path::new("/tmp/a1"), Path::new("/src/x")).expect("error");
        assert_eq!((e.file.as_path(), e.line), (Path::new("/src/x/h.h"), 7));
        assert!(first_error("warning: nothing\n", Path::new("/t"), Path::new("/s")).is_none());
    }
}
