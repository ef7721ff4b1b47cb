//! A compilation database entry made safe to run on an editor buffer: the command split without a shell, every
//! flag that could run foreign code refused, the compiler checked against the allow-list and resolved on `PATH`,
//! and the argument vector rewritten so that it reads the buffer from a private directory and writes nothing but
//! a temporary object there.
//!
//! *Invariant:* pure argument handling. Nothing here starts a process; the only files read are response files
//! (`@file`) inside the workspace root, and `PATH` directories are only `stat`ed.

use super::LiveError;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// How an entry states its command: `arguments` (already split) or `command` (one string, split here with the
/// shell's quoting rules and never given to a shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// The `arguments` array.
    Arguments(Vec<String>),
    /// The `command` string.
    Command(String),
}

/// One `compile_commands.json` entry, as the build wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileCommand {
    /// The entry's `directory`: the compiler's working directory.
    pub directory: PathBuf,
    /// The entry's `file`, resolved against `directory`.
    pub file: PathBuf,
    /// The command.
    pub invocation: Invocation,
}

impl CompileCommand {
    /// Reads an entry of a compilation database; `None` if it lacks `file` or a command.
    pub fn from_json(entry: &Value) -> Option<CompileCommand> {
        let directory = PathBuf::from(entry.get("directory")?.as_str()?);
        let file = directory.join(entry.get("file")?.as_str()?);
        let invocation = match entry.get("arguments").and_then(Value::as_array) {
            Some(a) => Invocation::Arguments(
                a.iter()
                    .map(|x| x.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()?,
            ),
            None => Invocation::Command(entry.get("command")?.as_str()?.to_owned()),
        };
        Some(CompileCommand {
            directory,
            file,
            invocation,
        })
    }

    /// A command from a template (the `live.command` setting): each argument with `{file}` replaced by `file` and
    /// `{output}` by `output` (or `file` with the extension `.o`), run in `directory`.
    pub fn from_template(
        template: &[String],
        directory: &Path,
        file: &Path,
        output: Option<&Path>,
    ) -> CompileCommand {
        let object = output.map_or_else(|| file.with_extension("o"), Path::to_path_buf);
        let (file_s, object_s) = (file.display().to_string(), object.display().to_string());
        CompileCommand {
            directory: directory.to_path_buf(),
            file: file.to_path_buf(),
            invocation: Invocation::Arguments(
                template
                    .iter()
                    .map(|a| a.replace("{file}", &file_s).replace("{output}", &object_s))
                    .collect(),
            ),
        }
    }

    /// The argument vector (`argv[0]` is the compiler), splitting a `command` string with [`split_command`].
    pub fn argv(&self) -> Result<Vec<String>, LiveError> {
        let argv = match &self.invocation {
            Invocation::Arguments(a) => a.clone(),
            Invocation::Command(c) => split_command(c)?,
        };
        if argv.is_empty() {
            return Err(LiveError::Refused("the compile command is empty".into()));
        }
        Ok(argv)
    }
}

/// Splits a command line with POSIX shell quoting (`'…'`, `"…"`, `\`) without a shell. Refuses anything only a
/// shell could do: pipes, lists, redirections, command substitution, variable expansion, globbing and comments.
pub fn split_command(s: &str) -> Result<Vec<String>, LiveError> {
    split_words(s, true)
}

/// [`split_command`] for reading a command, not running it (the output file of a `compile_commands.json` entry):
/// shell characters are plain characters and an unterminated quote ends the word.
pub fn split_command_lenient(s: &str) -> Vec<String> {
    split_words(s, false).unwrap_or_default()
}

fn split_words(s: &str, strict: bool) -> Result<Vec<String>, LiveError> {
    let refuse = |what: &str| {
        Err(LiveError::Refused(format!(
            "the compile command needs a shell ({what}); altcfi never runs one"
        )))
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None if strict => return refuse("an unterminated quote"),
                        None => break,
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some('\n') => {}
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None if strict => return refuse("an unterminated quote"),
                            None => break,
                        },
                        Some('$') if strict => return refuse("`$` inside double quotes"),
                        Some('`') if strict => return refuse("a backtick"),
                        Some(c) => cur.push(c),
                        None if strict => return refuse("an unterminated quote"),
                        None => break,
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(n) => cur.push(n),
                    None if strict => return refuse("a trailing backslash"),
                    None => {}
                }
            }
            '|' if strict => return refuse("`|`"),
            ';' if strict => return refuse("`;`"),
            '&' if strict => return refuse("`&`"),
            '<' | '>' if strict => return refuse("a redirection"),
            '`' if strict => return refuse("a backtick"),
            '$' if strict && chars.peek() == Some(&'(') => return refuse("`$(`"),
            '$' if strict => return refuse("a `$` expansion"),
            '(' | ')' if strict => return refuse("a subshell"),
            '*' | '?' | '[' if strict => return refuse("a glob pattern"),
            '#' if strict && !in_word => return refuse("a comment"),
            '~' if strict && !in_word => return refuse("`~` expansion"),
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// The compilers live mode runs by default (their versioned and target-prefixed names are allowed too).
pub const DEFAULT_COMPILERS: [&str; 4] = ["gcc", "cc", "clang", "as"];

/// Whether `name` (a file name, no directory) is one of `allowed` or a versioned (`gcc-12`, `clang-16`,
/// `gcc-12.2`) or target-prefixed (`x86_64-linux-gnu-gcc-12`) form of one.
pub fn compiler_allowed(name: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| {
        let Some(pos) = name.rfind(a.as_str()) else {
            return false;
        };
        let (prefix, rest) = (&name[..pos], &name[pos + a.len()..]);
        let prefix_ok = prefix.is_empty()
            || (prefix.ends_with('-')
                && prefix[..prefix.len() - 1].split('-').all(|p| {
                    !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                }));
        let version_ok = rest.is_empty()
            || rest.strip_prefix('-').is_some_and(|v| {
                !v.is_empty()
                    && v.starts_with(|c: char| c.is_ascii_digit())
                    && v.chars().all(|c| c.is_ascii_digit() || c == '.')
            });
        prefix_ok && version_ok
    })
}

/// Which kind of program the compiler is: a driver (`gcc`, `clang`: preprocesses, takes `-Wa,`, `-iquote`) or the
/// assembler itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// gcc, cc or clang.
    Driver,
    /// GNU as.
    Assembler,
}

fn kind_of(name: &str) -> Kind {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    if base == "as" || base.ends_with("-as") {
        Kind::Assembler
    } else {
        Kind::Driver
    }
}

/// Finds `name` on `path` (a `PATH` value): the first executable regular file.
pub fn resolve_on_path(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// What [`rewrite`] needs besides the command.
#[derive(Debug, Clone)]
pub struct Rewrite<'a> {
    /// The workspace root: response files must lie inside it (`None`: none are accepted).
    pub root: Option<&'a Path>,
    /// The compiler names allowed ([`compiler_allowed`]).
    pub compilers: &'a [String],
    /// The `PATH` the compiler is resolved on.
    pub path_var: &'a std::ffi::OsStr,
    /// The private directory the buffer is written to.
    pub temp_dir: &'a Path,
    /// The buffer's file in `temp_dir` (same file name as the original).
    pub temp_source: &'a Path,
    /// The object to write instead of the build's.
    pub temp_object: &'a Path,
}

/// The program and arguments of a live compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeCommand {
    /// The compiler, resolved on `PATH`.
    pub program: PathBuf,
    /// Its arguments (without `argv[0]`).
    pub args: Vec<String>,
    /// Driver or assembler.
    pub kind: Kind,
}

/// Flags a live compile refuses: each could run code the workspace chose, or a program other than the allowed
/// compiler. (`prefix`, why).
const REFUSED_PREFIXES: [(&str, &str); 11] = [
    ("-fplugin", "loads a compiler plugin"),
    ("-fpass-plugin", "loads an LLVM pass plugin"),
    (
        "-wrapper",
        "runs the compiler's subprograms under another program",
    ),
    (
        "-B",
        "makes the driver run subprograms from another directory",
    ),
    ("-specs", "spec files can run any program"),
    ("--specs", "spec files can run any program"),
    ("-ccc-", "changes which programs clang runs"),
    ("--gcc-toolchain", "changes which assembler and tools run"),
    ("--gcc-install-dir", "changes which assembler and tools run"),
    ("-fuse-ld", "names a linker program"),
    ("--param=plugin", "plugin parameters"),
];

/// Whether one argument is refused; the message names it.
fn refused(arg: &str, next: Option<&str>) -> Option<String> {
    for (p, why) in REFUSED_PREFIXES {
        if arg.starts_with(p) {
            return Some(format!("refusing `{arg}`: it {why}"));
        }
    }
    if arg == "--param" && next.is_some_and(|n| n.starts_with("plugin")) {
        return Some(format!(
            "refusing `--param {}`: plugin parameters",
            next.unwrap_or_default()
        ));
    }
    if arg == "-Xclang" {
        if let Some(n) = next {
            if n == "-load" || n.starts_with("-plugin") || n.starts_with("-add-plugin") {
                return Some(format!("refusing `-Xclang {n}`: it loads a clang plugin"));
            }
        }
    }
    None
}

/// Expands `@file` response files (only inside `root`), checking every argument they hold like the others.
fn expand_response_files(
    args: &[String],
    cwd: &Path,
    root: Option<&Path>,
    depth: usize,
) -> Result<Vec<String>, LiveError> {
    let mut out = Vec::new();
    for a in args {
        let Some(name) = a.strip_prefix('@') else {
            out.push(a.clone());
            continue;
        };
        let path = crate::paths::canonical(&cwd.join(name));
        let inside = root.is_some_and(|r| path.starts_with(crate::paths::canonical(r)));
        if !inside || depth > 4 {
            return Err(LiveError::Refused(format!(
                "refusing `{a}`: response files are only read from inside the workspace root"
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            LiveError::Refused(format!("cannot read response file {}: {e}", path.display()))
        })?;
        let inner = split_command(&text)?;
        out.extend(expand_response_files(&inner, cwd, root, depth + 1)?);
    }
    Ok(out)
}

/// Whether one `-Wa,`/`-Xassembler` item writes a file of its own (a listing `-a…=file`, `--MD file`).
fn assembler_side_output(item: &str) -> bool {
    (item.starts_with("-a") && !item.starts_with("-august")) || item.starts_with("--MD")
}

/// The argument vector of a live compile: `argv` checked for refused flags and response files from outside the
/// root, the compiler checked against the allow-list and resolved on `PATH`, the source argument replaced by
/// `temp_source`, the output by `temp_object`, side outputs (dependency files, `-save-temps`, `-fstack-usage`,
/// `-fdump-*`, listings) removed, and `-iquote`/`-ffile-prefix-map` (`-I`/`--debug-prefix-map` for `as`) added so
/// that quoted includes resolve as in the build and DWARF names the original file.
pub fn rewrite(
    argv: &[String],
    cmd: &CompileCommand,
    opts: &Rewrite<'_>,
) -> Result<SafeCommand, LiveError> {
    let (compiler, rest) = argv
        .split_first()
        .ok_or_else(|| LiveError::Refused("the compile command is empty".into()))?;
    let name = Path::new(compiler)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if !compiler_allowed(name, opts.compilers) {
        return Err(LiveError::Refused(format!(
            "refusing to run `{compiler}`: not on the live-mode compiler allow-list ({}; setting altcfi.live.compilers)",
            opts.compilers.join(", ")
        )));
    }
    let program = resolve_on_path(name, opts.path_var)
        .ok_or_else(|| LiveError::Refused(format!("`{name}` is not on PATH")))?;
    if compiler.contains('/') {
        let given = crate::paths::canonical(&cmd.directory.join(compiler));
        if given != crate::paths::canonical(&program) {
            return Err(LiveError::Refused(format!(
                "refusing to run `{compiler}`: live mode runs only the `{name}` found on PATH ({})",
                program.display()
            )));
        }
    }
    let kind = kind_of(name);
    let rest = expand_response_files(rest, &cmd.directory, opts.root, 0)?;
    let original = crate::paths::canonical(&cmd.file);
    let mut args = Vec::new();
    let mut source_seen = false;
    let mut has_c = kind == Kind::Assembler;
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].as_str();
        let next = rest.get(i + 1).map(String::as_str);
        if let Some(why) = refused(a, next) {
            return Err(LiveError::Refused(why));
        }
        i += 1;
        match a {
            "-o" => {
                i += 1;
                continue;
            }
            "-MF" | "-MT" | "-MQ" | "-aux-info" => {
                i += 1;
                continue;
            }
            "-MD" | "-MMD" | "-MP" | "-MG" | "-fstack-usage" | "-save-temps" | "--MD" => continue,
            "-M" | "-MM" | "-E" | "-S" => {
                return Err(LiveError::Refused(format!(
                    "the compile command has `{a}`: it does not produce an object"
                )))
            }
            "-c" => has_c = true,
            "-Xassembler" | "-Xpreprocessor" => {
                let item = next.unwrap_or_default();
                i += 1;
                let drop = if a == "-Xassembler" {
                    assembler_side_output(item)
                } else {
                    item.starts_with("-M")
                };
                if !drop {
                    args.push(a.to_owned());
                    args.push(item.to_owned());
                }
                continue;
            }
            _ => {}
        }
        if a.starts_with("-o") && a.len() > 2 && kind == Kind::Driver {
            continue;
        }
        if a.starts_with("-MF") || a.starts_with("-MT") || a.starts_with("-MQ") {
            continue;
        }
        if a.starts_with("-save-temps")
            || a.starts_with("-fdump-")
            || a.starts_with("-fcallgraph-info")
            || a.starts_with("-fopt-info")
            || a.starts_with("-fstack-usage")
        {
            continue;
        }
        if let Some(list) = a.strip_prefix("-Wp,") {
            // kbuild's `-Wp,-MMD,dir/.x.o.d`: the dependency file and its name go together.
            if list.starts_with("-MD") || list.starts_with("-MMD") || list.starts_with("-MF") {
                continue;
            }
        }
        if let Some(list) = a.strip_prefix("-Wa,") {
            let kept: Vec<&str> = list
                .split(',')
                .filter(|it| !assembler_side_output(it))
                .collect();
            if !kept.is_empty() {
                args.push(format!("-Wa,{}", kept.join(",")));
            }
            continue;
        }
        if kind == Kind::Assembler && (a.starts_with("-a") || a.starts_with("--MD")) {
            continue;
        }
        if !a.starts_with('-') && !source_seen {
            let p = cmd.directory.join(a);
            if p == cmd.file || crate::paths::same_file(&p, &original) {
                source_seen = true;
                args.push(opts.temp_source.display().to_string());
                continue;
            }
        }
        args.push(a.to_owned());
    }
    if !source_seen {
        return Err(LiveError::Refused(format!(
            "the compile command does not name its source file {}",
            cmd.file.display()
        )));
    }
    if !has_c {
        return Err(LiveError::Refused(
            "the compile command has no `-c`: it would link".into(),
        ));
    }
    let orig_dir = original
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cmd.directory.clone());
    let map = format!("{}={}", opts.temp_dir.display(), orig_dir.display());
    match kind {
        Kind::Driver => {
            args.push("-iquote".into());
            args.push(orig_dir.display().to_string());
            args.push(format!("-ffile-prefix-map={map}"));
        }
        Kind::Assembler => {
            args.push("-I".into());
            args.push(orig_dir.display().to_string());
            args.push("--debug-prefix-map".into());
            args.push(map);
        }
    }
    args.push("-o".into());
    args.push(opts.temp_object.display().to_string());
    Ok(SafeCommand {
        program,
        args,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_list_takes_versioned_and_prefixed_names() {
        let allowed = names(&DEFAULT_COMPILERS);
        for ok in [
            "gcc",
            "cc",
            "clang",
            "as",
            "gcc-12",
            "clang-16",
            "gcc-12.2",
            "x86_64-linux-gnu-gcc-12",
            "x86_64-linux-gnu-as",
            "x86_64-linux-gnu-gcc",
        ] {
            assert!(compiler_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "python3",
            "sh",
            "gcc-evil",
            "mygcc",
            "gcc-",
            "ccache",
            "clang-tidy",
            "gcc12",
            "-gcc",
        ] {
            assert!(!compiler_allowed(bad, &allowed), "{bad}");
        }
        assert_eq!(kind_of("x86_64-linux-gnu-as"), Kind::Assembler);
        assert_eq!(kind_of("as"), Kind::Assembler);
        assert_eq!(kind_of("gcc-12"), Kind::Driver);
    }

    #[test]
    fn commands_that_need_a_shell_are_refused() {
        for (cmd, what) in [
            ("gcc -c a.S -o a.o; rm -rf x", "`;`"),
            ("gcc -c a.S -o a.o | tee log", "`|`"),
            ("gcc -c a.S -o a.o && touch x", "`&`"),
            ("gcc -c `echo a.S` -o a.o", "backtick"),
            ("gcc -c $(echo a.S) -o a.o", "`$(`"),
            ("gcc -c a.S -o a.o > log", "redirection"),
            ("gcc -c a.S -o a.o 2>/dev/null", "redirection"),
            ("gcc -c $SRC -o a.o", "`$` expansion"),
            ("gcc -c \"$SRC\" -o a.o", "`$` inside double quotes"),
            ("gcc -c *.S", "glob"),
            ("gcc -c 'a.S", "unterminated"),
        ] {
            match split_command(cmd) {
                Err(LiveError::Refused(m)) => {
                    assert!(m.contains(what) && m.contains("shell"), "{cmd}: {m}")
                }
                other => panic!("{cmd}: {other:?}"),
            }
        }
        assert_eq!(
            split_command(r#"gcc -DX='"a b"' -DY="c\"d" e\ f"#).expect("plain quoting"),
            names(&["gcc", "-DX=\"a b\"", "-DY=c\"d", "e f"])
        );
    }

    /// A rewrite in a scratch directory, with the real `PATH` (the tests need gcc and as there).
    fn try_rewrite(argv: &[&str], root: Option<&Path>) -> Result<SafeCommand, LiveError> {
        let cmd = CompileCommand {
            directory: PathBuf::from("/k/build"),
            file: PathBuf::from("/k/src/arch/x86/entry/entry_64.S"),
            invocation: Invocation::Arguments(names(argv)),
        };
        let path = std::env::var_os("PATH").unwrap_or_default();
        rewrite(
            &names(argv),
            &cmd,
            &Rewrite {
                root,
                compilers: &names(&DEFAULT_COMPILERS),
                path_var: &path,
                temp_dir: Path::new("/tmp/live-x"),
                temp_source: Path::new("/tmp/live-x/entry_64.S"),
                temp_object: Path::new("/tmp/live-x/live.o"),
            },
        )
    }

    #[test]
    fn every_unsafe_flag_is_refused_by_name() {
        let src = "/k/src/arch/x86/entry/entry_64.S";
        for (flag, extra) in [
            ("-fplugin=/tmp/evil.so", None),
            ("-fplugin-arg-evil-x=1", None),
            ("-fpass-plugin=/tmp/p.so", None),
            ("-wrapper", Some("gdb,--args")),
            ("-B/tmp/evil", None),
            ("-B", Some("/tmp/evil")),
            ("-specs=/tmp/evil.specs", None),
            ("--specs=/tmp/evil.specs", None),
            ("--param=plugin-x=1", None),
            ("--param", Some("plugin-x=1")),
            ("-Xclang", Some("-load")),
            ("-Xclang", Some("-plugin")),
            ("-ccc-gcc-name", Some("x")),
            ("--gcc-toolchain=/tmp/t", None),
            ("-fuse-ld=/tmp/ld", None),
            ("@/etc/evil.rsp", None),
        ] {
            let mut argv = vec!["gcc", "-c", flag];
            argv.extend(extra);
            argv.extend([src, "-o", "x.o"]);
            match try_rewrite(&argv, Some(Path::new("/k"))) {
                Err(LiveError::Refused(m)) => {
                    let shown = flag.split('=').next().unwrap_or(flag);
                    assert!(m.contains(shown), "{flag}: message does not name it: {m}")
                }
                other => panic!("{flag}: {other:?}"),
            }
        }
        match try_rewrite(&["python3", "-c", src], None) {
            Err(LiveError::Refused(m)) => {
                assert!(m.contains("python3") && m.contains("allow-list"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match try_rewrite(&["/tmp/evil/gcc", "-c", src], None) {
            Err(LiveError::Refused(m)) => assert!(m.contains("found on PATH"), "{m}"),
            other => panic!("{other:?}"),
        }
        match try_rewrite(&["gcc", "-c", "other.S", "-o", "x.o"], None) {
            Err(LiveError::Refused(m)) => assert!(m.contains("does not name its source"), "{m}"),
            other => panic!("{other:?}"),
        }
        match try_rewrite(&["gcc", src, "-o", "x"], None) {
            Err(LiveError::Refused(m)) => assert!(m.contains("-c"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_files_inside_the_root_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::write(root.join("ok.rsp"), "-DFROM_RSP=1 -Iinc").expect("write");
        std::fs::write(root.join("bad.rsp"), "-fplugin=x.so").expect("write");
        let cmd = CompileCommand {
            directory: root.clone(),
            file: root.join("a.S"),
            invocation: Invocation::Arguments(Vec::new()),
        };
        let path = std::env::var_os("PATH").unwrap_or_default();
        let compilers = names(&DEFAULT_COMPILERS);
        let opts = Rewrite {
            root: Some(&root),
            compilers: &compilers,
            path_var: &path,
            temp_dir: Path::new("/tmp/t"),
            temp_source: Path::new("/tmp/t/a.S"),
            temp_object: Path::new("/tmp/t/live.o"),
        };
        let ok = rewrite(&names(&["gcc", "-c", "@ok.rsp", "a.S"]), &cmd, &opts).expect("ok.rsp");
        assert!(ok.args.contains(&"-DFROM_RSP=1".to_string()), "{ok:?}");
        match rewrite(&names(&["gcc", "-c", "@bad.rsp", "a.S"]), &cmd, &opts) {
            Err(LiveError::Refused(m)) => assert!(m.contains("-fplugin"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kbuild_command_line_is_rewritten() {
        // arch/x86/entry/entry_64.S of a 6.12 `make O=…` build, as its compile_commands.json has it.
        let line = r#"gcc -Wp,-MMD,arch/x86/entry/.entry_64.o.d -nostdinc -I/k/src/arch/x86/include -I./arch/x86/include/generated -I/k/src/include -I./include -include /k/src/include/linux/kconfig.h -D__KERNEL__ -fmacro-prefix-map=/k/src/= -D__ASSEMBLY__ -fno-PIE -m64 -g -gdwarf-5 -I/k/src/arch/x86/entry -Iarch/x86/entry    -DKBUILD_MODFILE='"arch/x86/entry/entry_64"' -DKBUILD_MODNAME='"entry_64"' -D__KBUILD_MODNAME=kmod_entry_64 -c -o arch/x86/entry/entry_64.o /k/src/arch/x86/entry/entry_64.S -MD -MF x.d -MT x.o -save-temps=obj -fstack-usage -fdump-rtl-expand -Wa,-adhln=entry.lst,--64 -Wa,--MD,as.d"#;
        let argv = split_command(line).expect("split");
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let safe = try_rewrite(&argv, None).expect("rewrite");
        assert!(safe.program.is_absolute() && safe.program.ends_with("gcc"));
        assert_eq!(safe.kind, Kind::Driver);
        let a = &safe.args;
        let has = |s: &str| a.iter().any(|x| x == s);
        for gone in [
            "-Wp,-MMD,arch/x86/entry/.entry_64.o.d",
            "arch/x86/entry/entry_64.o",
            "/k/src/arch/x86/entry/entry_64.S",
            "-MD",
            "-MF",
            "x.d",
            "-MT",
            "x.o",
            "-save-temps=obj",
            "-fstack-usage",
            "-fdump-rtl-expand",
            "-Wa,--MD,as.d",
        ] {
            assert!(!has(gone), "{gone} still in {a:?}");
        }
        for kept in [
            "-nostdinc",
            "-I./include",
            "-Iarch/x86/entry",
            "-DKBUILD_MODFILE=\"arch/x86/entry/entry_64\"",
            "-include",
            "/k/src/include/linux/kconfig.h",
            "-c",
            "-g",
            "-Wa,--64",
            "/tmp/live-x/entry_64.S",
            "-iquote",
            "/k/src/arch/x86/entry",
            "-ffile-prefix-map=/tmp/live-x=/k/src/arch/x86/entry",
        ] {
            assert!(has(kept), "{kept} missing from {a:?}");
        }
        assert_eq!(&a[a.len() - 2..], ["-o", "/tmp/live-x/live.o"]);
        assert_eq!(a.iter().filter(|x| *x == "-o").count(), 1);
        // The assembler itself: listings go, the original directory is searched, gas's own prefix map.
        let safe = try_rewrite(
            &[
                "as",
                "--64",
                "-aln=x.lst",
                "-g",
                "/k/src/arch/x86/entry/entry_64.S",
                "-o",
                "y.o",
            ],
            None,
        )
        .expect("as");
        assert_eq!(safe.kind, Kind::Assembler);
        assert!(
            !safe.args.iter().any(|x| x.starts_with("-aln")),
            "{:?}",
            safe.args
        );
        assert!(safe
            .args
            .windows(2)
            .any(|w| w == ["--debug-prefix-map", "/tmp/live-x=/k/src/arch/x86/entry"]));
    }
}
