//! Knowledge of kernel trees and kbuild: where an object's tree is (in-tree or `O=` build directory), which kernel
//! generation it is, whether kbuild gives the object to objtool at all, and with which arguments.
//!
//! It reads files (`.NAME.o.cmd`, `include/config/auto.conf`, `include/config/kernel.release`, the top `Makefile`,
//! the object's directory `Makefile`/`Kbuild`, thin `built-in.a` archives) and hands the analysis plain
//! [`altcfi_analysis::Options`] values: the analysis never opens a file. Nothing here runs make or objtool.
//!
//! *Invariant:* every answer says where it came from (the `.cmd` file, `auto.conf`, `kernel.release`, …), so the
//! user can see why a rule set was chosen; an unreadable or missing file means "not known", never an error.

use altcfi_analysis::{Era, ObjtoolArgs, Options};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A kbuild build directory (the source tree itself for an in-tree build).
#[derive(Debug)]
pub struct Tree {
    /// The build directory (holds `include/config/auto.conf`, `.config` and the objects).
    pub build: PathBuf,
    /// The source tree (`build/source` for an `O=` build, else `build`).
    pub source: PathBuf,
    /// `include/config/auto.conf`, read when first asked for (an object kbuild ran objtool on needs none of it).
    config: std::sync::OnceLock<Config>,
    /// [`Tree::objtool_args`] for built-in objects and for modules, built once.
    args: [std::sync::OnceLock<ObjtoolArgs>; 2],
    /// The kernel version and where it was read (`6.12.118` from `include/config/kernel.release`).
    pub version: Option<(u32, u32, String)>,
    /// The directory Makefiles and thin archives read so far, each with the size and mtime it was read at: every
    /// object of a directory asks the same ones.
    files: Mutex<HashMap<PathBuf, CachedFile>>,
}

/// A file's bytes as read, with the (size, mtime) they belong to.
type CachedFile = (u64, std::time::SystemTime, Arc<Vec<u8>>);

impl Tree {
    /// Reads the tree whose build directory is `build` (which holds `include/config/auto.conf`).
    fn read(build: &Path) -> Option<Tree> {
        if !build.join("include/config/auto.conf").is_file() {
            return None;
        }
        let source =
            std::fs::canonicalize(build.join("source")).unwrap_or_else(|_| build.to_path_buf());
        let version = std::fs::read_to_string(build.join("include/config/kernel.release"))
            .ok()
            .and_then(|r| {
                let r = r.trim().to_string();
                parse_version(&r)
                    .map(|(a, b)| (a, b, format!("{r} (include/config/kernel.release)")))
            })
            .or_else(|| makefile_version(&source));
        Some(Tree {
            build: build.to_path_buf(),
            source,
            config: std::sync::OnceLock::new(),
            args: Default::default(),
            version,
            files: Mutex::new(HashMap::new()),
        })
    }

    /// The bytes of a file of the tree, read once per version of it (`None` if it cannot be read).
    fn file(&self, path: &Path) -> Option<Arc<Vec<u8>>> {
        let meta = std::fs::metadata(path).ok()?;
        let key = (meta.len(), meta.modified().ok()?);
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((len, mtime, bytes)) = files.get(path) {
            if (*len, *mtime) == key {
                return Some(bytes.clone());
            }
        }
        let bytes = Arc::new(std::fs::read(path).ok()?);
        files.insert(path.to_path_buf(), (key.0, key.1, bytes.clone()));
        Some(bytes)
    }

    /// The configuration (`include/config/auto.conf`), read once.
    fn config(&self) -> &Config {
        self.config.get_or_init(|| {
            Config::new(
                &std::fs::read_to_string(self.build.join("include/config/auto.conf"))
                    .unwrap_or_default(),
            )
        })
    }

    /// Whether `CONFIG_name` is `y`.
    pub fn enabled(&self, name: &str) -> bool {
        self.config().get(name) == Some("y")
    }

    /// The generation whose rules apply, and why (`6.12.118 (include/config/kernel.release)`).
    pub fn era(&self) -> Option<(Era, String)> {
        let (major, minor, from) = self.version.as_ref()?;
        Some((era_of_version(*major, *minor), from.clone()))
    }

    /// kbuild delays objtool to `vmlinux.o` (`CONFIG_X86_KERNEL_IBT` or `CONFIG_LTO_CLANG`): the objects never saw it.
    pub fn delays_objtool(&self) -> bool {
        self.enabled("X86_KERNEL_IBT") || self.enabled("LTO_CLANG")
    }

    /// objtool's arguments as `scripts/Makefile.lib` builds `objtool-args` from this configuration (6.1–6.12
    /// spellings; the `MITIGATION_` renames of 6.9 accepted under both names).
    pub fn objtool_args(&self, module: bool) -> ObjtoolArgs {
        *self.args[usize::from(module)].get_or_init(|| self.build_objtool_args(module))
    }

    fn build_objtool_args(&self, module: bool) -> ObjtoolArgs {
        let y = |n: &str| self.enabled(n);
        let mut a = ObjtoolArgs {
            hack_jump_label: y("HAVE_JUMP_LABEL_HACK"),
            hack_noinstr: y("HAVE_NOINSTR_HACK"),
            hack_skylake: y("MITIGATION_CALL_DEPTH_TRACKING") || y("CALL_DEPTH_TRACKING"),
            ibt: y("X86_KERNEL_IBT"),
            cfi: y("FINEIBT"),
            mcount: y("FTRACE_MCOUNT_USE_OBJTOOL"),
            mnop: y("FTRACE_MCOUNT_USE_OBJTOOL") && y("HAVE_OBJTOOL_NOP_MCOUNT"),
            orc: y("UNWINDER_ORC"),
            retpoline: y("MITIGATION_RETPOLINE") || y("RETPOLINE"),
            rethunk: y("MITIGATION_RETHUNK") || y("RETHUNK"),
            sls: y("MITIGATION_SLS") || y("SLS"),
            stackval: y("STACK_VALIDATION"),
            static_call: y("HAVE_STATIC_CALL_INLINE"),
            uaccess: y("HAVE_UACCESS_VALIDATION"),
            no_unreachable: y("GCOV_KERNEL") || y("KCOV"),
            link: self.delays_objtool(),
            module,
            ..ObjtoolArgs::default()
        };
        if y("PREFIX_SYMBOLS") {
            a.prefix = self
                .config()
                .get("FUNCTION_PADDING_BYTES")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        a
    }
}

/// The symbols kbuild's objtool rules read (`scripts/Makefile.lib`'s `objtool-args`, and whether objtool runs and
/// when): [`Config`] finds them all in one pass.
const OBJTOOL_SYMBOLS: [&str; 24] = [
    "OBJTOOL",
    "STACK_VALIDATION",
    "UNWINDER_ORC",
    "X86_KERNEL_IBT",
    "LTO_CLANG",
    "HAVE_JUMP_LABEL_HACK",
    "HAVE_NOINSTR_HACK",
    "MITIGATION_CALL_DEPTH_TRACKING",
    "CALL_DEPTH_TRACKING",
    "FINEIBT",
    "FTRACE_MCOUNT_USE_OBJTOOL",
    "HAVE_OBJTOOL_NOP_MCOUNT",
    "MITIGATION_RETPOLINE",
    "RETPOLINE",
    "MITIGATION_RETHUNK",
    "RETHUNK",
    "MITIGATION_SLS",
    "SLS",
    "HAVE_STATIC_CALL_INLINE",
    "HAVE_UACCESS_VALIDATION",
    "GCOV_KERNEL",
    "KCOV",
    "PREFIX_SYMBOLS",
    "FUNCTION_PADDING_BYTES",
];

/// The text of `include/config/auto.conf` (`CONFIG_NAME=value` lines). A process asks for a couple of dozen of its
/// ~1,800 symbols, each once: the ones in [`OBJTOOL_SYMBOLS`] are found in one pass when the file is read, any
/// other is looked up in the text; no map of the whole file is built.
#[derive(Debug)]
struct Config {
    /// The file's text after a newline, so every line starts after one.
    text: String,
    /// Where the value of each of [`OBJTOOL_SYMBOLS`] lies in `text`, if set.
    known: [Option<std::ops::Range<usize>>; OBJTOOL_SYMBOLS.len()],
}

impl Config {
    fn new(text: &str) -> Config {
        let text = format!("\n{text}");
        let mut known: [Option<std::ops::Range<usize>>; OBJTOOL_SYMBOLS.len()] = Default::default();
        let bytes = text.as_bytes();
        let mut start = 1;
        for end in memchr::memchr_iter(b'\n', bytes)
            .skip(1)
            .chain([bytes.len()])
        {
            let line = bytes.get(start..end).unwrap_or(&[]);
            let at = start;
            start = end + 1;
            let Some(rest) = line.strip_prefix(b"CONFIG_") else {
                continue;
            };
            let Some(eq) = memchr::memchr(b'=', rest) else {
                continue;
            };
            let key = &rest[..eq];
            if let Some(i) = OBJTOOL_SYMBOLS.iter().position(|s| s.as_bytes() == key) {
                let value = at + "CONFIG_".len() + eq + 1;
                known[i].get_or_insert(value..end);
            }
        }
        Config { text, known }
    }

    /// The value of `CONFIG_name` (`y`, `m`, a number, a string without its quotes), if set.
    fn get(&self, name: &str) -> Option<&str> {
        let value = match OBJTOOL_SYMBOLS.iter().position(|s| *s == name) {
            Some(i) => self.text.get(self.known[i].clone()?)?,
            None => {
                let needle = format!("\nCONFIG_{name}=");
                let at =
                    memchr::memmem::find(self.text.as_bytes(), needle.as_bytes())? + needle.len();
                self.text.get(at..)?.lines().next().unwrap_or("")
            }
        };
        Some(value.trim_matches('"'))
    }
}

/// `6.12.118-amd64` → (6, 12).
fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// VERSION and PATCHLEVEL of the source tree's top `Makefile`.
fn makefile_version(source: &Path) -> Option<(u32, u32, String)> {
    let text = std::fs::read_to_string(source.join("Makefile")).ok()?;
    let field = |name: &str| {
        text.lines().take(20).find_map(|l| {
            l.strip_prefix(name)?
                .trim_start()
                .strip_prefix('=')?
                .trim()
                .parse()
                .ok()
        })
    };
    let (major, minor) = (field("VERSION")?, field("PATCHLEVEL")?);
    Some((
        major,
        minor,
        format!("{major}.{minor} (Makefile VERSION/PATCHLEVEL)"),
    ))
}

/// The analysis rules for a kernel version: 6.4+ formats (ORC types with UNDEFINED=0, hint numbering, 14-byte
/// `.altinstructions` from 6.3) are 6.12's; older kernels are read with 6.1's.
pub fn era_of_version(major: u32, minor: u32) -> Era {
    if (major, minor) >= (6, 4) {
        Era::V6_12
    } else {
        Era::V6_1
    }
}

/// The root of the kernel source tree `path` lies in: the nearest ancestor (or `path`) whose `Makefile` sets
/// `VERSION` and `PATCHLEVEL` and which has `MAINTAINERS` beside it (subdirectories such as `arch/x86` have a
/// `Kbuild` or `Makefile` of their own, never both of these).
pub fn source_tree_root(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|d| is_source_tree_root(d))
        .map(Path::to_path_buf)
}

fn is_source_tree_root(dir: &Path) -> bool {
    dir.join("MAINTAINERS").is_file() && makefile_version(dir).is_some()
}

/// The kbuild build directories of the source tree at `root`: the tree itself after an in-tree build, the target
/// of a `compile_commands.json` symbolic link in it, `$KBUILD_OUTPUT`, and every directory beside the tree or
/// inside it (one level) whose `source` link leads back to it (`make O=…`). Each holds `include/config/auto.conf`.
pub fn build_dirs_of(root: &Path) -> Vec<PathBuf> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let is_build = |d: &Path| d.join("include/config/auto.conf").is_file();
    let leads_back =
        |d: &Path| std::fs::canonicalize(d.join("source")).is_ok_and(|s| s == root) && is_build(d);
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |d: PathBuf| {
        let d = std::fs::canonicalize(&d).unwrap_or(d);
        if !out.contains(&d) {
            out.push(d);
        }
    };
    if is_build(&root) {
        push(root.clone());
    }
    if let Ok(target) = std::fs::canonicalize(root.join("compile_commands.json")) {
        if let Some(dir) = target.parent().filter(|d| *d != root && leads_back(d)) {
            push(dir.to_path_buf());
        }
    }
    if let Some(o) = std::env::var_os("KBUILD_OUTPUT").map(PathBuf::from) {
        if leads_back(&o) {
            push(o);
        }
    }
    for dir in [Some(root.as_path()), root.parent()].into_iter().flatten() {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let d = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir())
                && d != root
                && d.join("source").exists()
                && leads_back(&d)
            {
                push(d);
            }
        }
    }
    out
}

/// The object kbuild writes for a source file of the tree at `root` in build directory `build`
/// (`arch/x86/entry/entry_64.S` → `BUILD/arch/x86/entry/entry_64.o`), if it exists.
pub fn object_in_build(root: &Path, build: &Path, source: &Path) -> Option<PathBuf> {
    let source = std::fs::canonicalize(source).ok()?;
    let root = std::fs::canonicalize(root).ok()?;
    let rel = source.strip_prefix(&root).ok()?;
    let obj = build.join(rel).with_extension("o");
    obj.is_file().then_some(obj)
}

/// The objects under `dir` (sorted; symbolic links and hidden directories not followed): every `*.o` but
/// `*.mod.o` and `vmlinux.o`. The second value names a directory that could not be listed, if any.
pub fn objects_under(dir: &Path) -> (Vec<PathBuf>, Option<String>) {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut problem = None;
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                problem = Some(format!("{}: cannot list: {e}", d.display()));
                continue;
            }
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let path = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if kind.is_dir() {
                if !name.starts_with('.') {
                    stack.push(path);
                }
            } else if kind.is_file()
                && name.ends_with(".o")
                && !name.ends_with(".mod.o")
                && !name.starts_with('.')
                && name != "vmlinux.o"
            {
                found.push(path);
            }
        }
    }
    found.sort();
    (found, problem)
}

/// What kbuild does with one object.
#[derive(Debug, Clone)]
pub enum Validation {
    /// kbuild ran objtool on it with these arguments (read from the `.cmd` file).
    Ran(ObjtoolArgs),
    /// kbuild gives it to objtool, but only as part of `vmlinux.o` (IBT/LTO): these are the per-object arguments
    /// `scripts/Makefile.lib` builds.
    Delayed(ObjtoolArgs),
    /// kbuild never validates it, and why.
    Never(String),
    /// Not known (no tree, no `.cmd`).
    Unknown,
}

/// Everything known about one object from its tree.
#[derive(Debug, Clone)]
pub struct ObjectKbuild {
    /// The tree the object lies in.
    pub tree: Option<Arc<Tree>>,
    /// What kbuild does with it.
    pub validation: Validation,
}

impl ObjectKbuild {
    /// objtool's arguments for the object, if kbuild validates it.
    pub fn objtool_args(&self) -> Option<ObjtoolArgs> {
        match &self.validation {
            Validation::Ran(a) | Validation::Delayed(a) => Some(*a),
            Validation::Never(_) | Validation::Unknown => None,
        }
    }

    /// `base` with the object's objtool arguments (and `--stackval`'s frame-pointer rules) and, unless `base` names
    /// a generation, the tree's.
    pub fn options(&self, mut base: Options) -> Options {
        if let Some(a) = self.objtool_args() {
            base.objtool = a;
        }
        base.frame_pointer |= base.objtool.stackval;
        if base.era.is_none() {
            base.era = self.tree.as_ref().and_then(|t| t.era()).map(|(e, _)| e);
        }
        base
    }

    /// The reason kbuild never validates the object, if it does not.
    pub fn not_validated(&self) -> Option<&str> {
        match &self.validation {
            Validation::Never(why) => Some(why),
            _ => None,
        }
    }

    /// Where the arguments came from, for messages.
    pub fn args_source(&self) -> &'static str {
        match self.validation {
            Validation::Ran(_) => "the object's .cmd file (kbuild ran objtool on it)",
            Validation::Delayed(_) => {
                "include/config/auto.conf as scripts/Makefile.lib builds objtool-args (objtool runs on vmlinux.o only)"
            }
            Validation::Never(_) => "none: kbuild never validates it",
            Validation::Unknown => "none: nothing in the tree says how kbuild validates it",
        }
    }
}

/// Kernel trees found so far, by build directory, and the answer for every directory looked at.
#[derive(Default)]
pub struct Kbuild {
    dirs: Mutex<HashMap<PathBuf, Option<Arc<Tree>>>>,
}

impl std::fmt::Debug for Kbuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kbuild")
            .field("dirs", &self.lock().len())
            .finish()
    }
}

impl Kbuild {
    /// The tree that `dir` (a canonical path) lies in: the nearest ancestor (or `dir`) with
    /// `include/config/auto.conf`.
    fn tree_of(&self, dir: &Path) -> Option<Arc<Tree>> {
        let mut seen = Vec::new();
        let mut found = None;
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if let Some(known) = self.lock().get(d) {
                found = known.clone();
                break;
            }
            seen.push(d.to_path_buf());
            if d.join("include/config/auto.conf").is_file() {
                found = Tree::read(d).map(Arc::new);
                break;
            }
            cur = d.parent();
        }
        let mut dirs = self.lock();
        for d in seen {
            dirs.insert(d, found.clone());
        }
        found
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Option<Arc<Tree>>>> {
        self.dirs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What kbuild does with the object at `obj`.
    pub fn object(&self, obj: &Path) -> ObjectKbuild {
        let dir = obj
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // The object's real path: its directory's (resolved once, for the tree too), unless it is a link itself.
        let real_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let real = match (std::fs::symlink_metadata(obj), obj.file_name()) {
            (Ok(m), Some(name)) if !m.file_type().is_symlink() => Some(real_dir.join(name)),
            _ => std::fs::canonicalize(obj).ok(),
        };
        let tree = self.tree_of(&real_dir);
        let cmd = read_cmd(obj);
        let validation = match (cmd.as_deref().and_then(objtool_in_cmd), &tree) {
            // objtool validates the stack only with --orc, --stackval or --uaccess; `vmlinux.o` in a tree without
            // IBT gets `--noinstr --link` alone.
            (Some(Ok(a)), _) if !(a.orc || a.stackval || a.uaccess) => Validation::Never(format!(
                "kbuild runs objtool on it without stack validation ({}), for checks altcfi does not do",
                a.to_args().join(" ")
            )),
            (Some(Ok(a)), _) => Validation::Ran(a),
            (Some(Err(_)), _) | (None, None) => Validation::Unknown,
            (None, Some(tree)) => validation_in_tree(tree, real.as_deref(), cmd.as_deref()),
        };
        ObjectKbuild { tree, validation }
    }
}

/// The compile step of the command kbuild built `obj` with (its `.NAME.o.cmd`, run in the build directory `build`):
/// the text before the first `;` (the objtool step and anything else kbuild chains after it are never run), for
/// live compiles of `source` ([`crate::live`] checks and rewrites it like a `compile_commands.json` entry). `None`
/// without a `.cmd` file.
pub fn compile_command_of(
    build: &Path,
    obj: &Path,
    source: &Path,
) -> Option<crate::live::CompileCommand> {
    let cmd = read_cmd(obj)?;
    let (_, command) = cmd.split_once(" := ")?;
    let first = command.split(';').next()?.trim();
    (!first.is_empty()).then(|| crate::live::CompileCommand {
        directory: build.to_path_buf(),
        file: source.to_path_buf(),
        invocation: crate::live::command::Invocation::Command(first.to_string()),
    })
}

/// The first line of the object's `.NAME.o.cmd` (the command that built it).
fn read_cmd(obj: &Path) -> Option<String> {
    use std::io::BufRead;
    let name = obj.file_name()?.to_str()?;
    let path = obj.with_file_name(format!(".{name}.cmd"));
    // The command is the first line; the dependency list after it is most of the file.
    let mut line = String::new();
    std::io::BufReader::new(std::fs::File::open(path).ok()?)
        .read_line(&mut line)
        .ok()?;
    let line = line.trim_end_matches('\n');
    (!line.is_empty()).then(|| line.to_string())
}

/// objtool's arguments in a kbuild command (`…; ./tools/objtool/objtool ARGS OBJ`): `None` when objtool is not in
/// it, `Some(Err)` when its arguments are not understood.
fn objtool_in_cmd(cmd: &str) -> Option<Result<ObjtoolArgs, String>> {
    let step = cmd.split(';').map(str::trim).find(|s| {
        s.split_whitespace()
            .next()
            .is_some_and(|p| p.ends_with("tools/objtool/objtool"))
    })?;
    let words: Vec<&str> = step.split_whitespace().collect();
    // objtool, its arguments, the object.
    let args = words.get(1..words.len().saturating_sub(1)).unwrap_or(&[]);
    Some(ObjtoolArgs::parse(args.iter().copied()).map_err(|e| e.to_string()))
}

/// Whether kbuild validates an object objtool has not run on, from the tree's configuration and Makefiles. `obj`
/// is the object's real path (`None` if it could not be resolved).
fn validation_in_tree(tree: &Tree, obj: Option<&Path>, cmd: Option<&str>) -> Validation {
    if !tree.enabled("OBJTOOL")
        && !tree.enabled("STACK_VALIDATION")
        && !tree.enabled("UNWINDER_ORC")
    {
        return Validation::Never(
            "the tree's configuration does not run objtool (CONFIG_OBJTOOL is off)".into(),
        );
    }
    let Some(cmd) = cmd else {
        // No .cmd: not built by kbuild in this tree (or built by hand); nothing says kbuild would skip it.
        return Validation::Unknown;
    };
    let compiled = cmd.contains(" -c ");
    if !tree.delays_objtool() {
        // kbuild runs objtool right after compiling every object it validates: no objtool step means it does not.
        return if compiled {
            Validation::Never(
                "kbuild compiled it without an objtool step (OBJECT_FILES_NON_STANDARD, or not part of the kernel)"
                    .into(),
            )
        } else {
            Validation::Unknown
        };
    }
    let Some(rel) = obj.and_then(|o| o.strip_prefix(&tree.build).ok()) else {
        return Validation::Unknown;
    };
    if !compiled {
        return Validation::Unknown;
    }
    if let Some(why) = non_standard(tree, rel) {
        return Validation::Never(why);
    }
    match kernel_object(tree, rel, cmd) {
        Some(KernelObject::Builtin) => Validation::Delayed(tree.objtool_args(false)),
        Some(KernelObject::Module) => Validation::Delayed(tree.objtool_args(true)),
        None => Validation::Never(
            "not linked into the kernel or a module (kbuild's is-kernel-object), e.g. the vdso"
                .into(),
        ),
    }
}

/// `OBJECT_FILES_NON_STANDARD` of the object's directory Makefile (or Kbuild), as scripts/Makefile.build reads it:
/// the per-file value, then the directory's, then `n`; the first letter decides.
fn non_standard(tree: &Tree, rel: &Path) -> Option<String> {
    // The Makefile of the nearest ancestor directory that has one (vdso32/note.o is named in vdso/Makefile).
    let mut dir = rel.parent();
    while let Some(d) = dir {
        for name in ["Kbuild", "Makefile"] {
            let path = tree.source.join(d).join(name);
            let Some(bytes) = tree.file(&path) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let stem = rel.strip_prefix(d).ok()?.to_str()?.to_string();
            let per_file = format!("OBJECT_FILES_NON_STANDARD_{stem}");
            let mut file_value = String::new();
            let mut dir_value = String::new();
            for line in text.lines() {
                let Some((lhs, rhs)) = line.split_once('=') else {
                    continue;
                };
                let lhs = lhs.trim_end_matches([':', '+', '?']).trim();
                let rhs = rhs.trim();
                if lhs == per_file {
                    file_value = rhs.to_string();
                } else if lhs == "OBJECT_FILES_NON_STANDARD" {
                    dir_value = rhs.to_string();
                }
            }
            let decided = format!("{file_value}{dir_value}n");
            return decided.starts_with('y').then(|| {
                let which = if file_value.starts_with('y') {
                    per_file
                } else {
                    "OBJECT_FILES_NON_STANDARD".into()
                };
                format!(
                    "{which} := y in {}",
                    path.strip_prefix(&tree.source).unwrap_or(&path).display()
                )
            });
        }
        dir = d.parent().filter(|p| !p.as_os_str().is_empty());
    }
    None
}

enum KernelObject {
    Builtin,
    Module,
}

/// kbuild's `is-kernel-object`: the object is a member of a thin `built-in.a`/`lib.a` (paths relative to each
/// archive's directory) or listed in a module's `.mod` file. Without any archive to ask, a kernel compile
/// (`-D__KERNEL__`, not `-DBUILD_VDSO`) counts as one.
fn kernel_object(tree: &Tree, rel: &Path, cmd: &str) -> Option<KernelObject> {
    let mut any_archive = false;
    let mut dir = rel.parent();
    while let Some(d) = dir {
        let inner = rel.strip_prefix(d).ok()?.to_str()?;
        let needle = format!("{inner}/\n");
        for archive in ["built-in.a", "lib.a"] {
            if let Some(bytes) = tree.file(&tree.build.join(d).join(archive)) {
                any_archive = true;
                if memchr::memmem::find(&bytes, needle.as_bytes()).is_some() {
                    return Some(KernelObject::Builtin);
                }
            }
        }
        dir = d.parent().filter(|p| !p.as_os_str().is_empty());
    }
    // Modules: `NAME.mod` in the object's directory lists its objects by path from the build directory.
    if let Ok(entries) = std::fs::read_dir(tree.build.join(rel.parent().unwrap_or(Path::new("")))) {
        let me = rel.to_str()?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "mod") {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    if text.split_whitespace().any(|w| w == me) {
                        return Some(KernelObject::Module);
                    }
                }
            }
        }
    }
    if any_archive {
        return None;
    }
    // No archive to ask (a single object built by hand): a kernel compile outside the host-tool directories.
    let host = rel.starts_with("scripts") || rel.starts_with("tools");
    (cmd.contains("-D__KERNEL__") && !cmd.contains("-DBUILD_VDSO") && !host)
        .then_some(KernelObject::Builtin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_looked_up_in_place() {
        let c = Config::new(
            "CONFIG_RETPOLINE_EXTRA=y\n#\n# CONFIG_SLS is not set\nCONFIG_RETPOLINE=y\nCONFIG_NAME=\"x86 64\"\nCONFIG_PAD=16",
        );
        assert_eq!(c.get("RETPOLINE_EXTRA"), Some("y"));
        assert_eq!(c.get("RETPOLINE"), Some("y"));
        assert_eq!(c.get("RETPOLINE_EXT"), None);
        assert_eq!(c.get("SLS"), None);
        assert_eq!(c.get("NAME"), Some("x86 64"));
        assert_eq!(c.get("PAD"), Some("16"));
        assert_eq!(Config::new("").get("PAD"), None);
        // The symbols found in the first pass, and any other, answer alike; the first definition counts.
        let c = Config::new(
            "CONFIG_RETPOLINE_X=n\nCONFIG_RETPOLINE=y\nCONFIG_FUNCTION_PADDING_BYTES=16\nCONFIG_X86_KERNEL_IBT=y\nCONFIG_RETPOLINE=n\nCONFIG_OTHER=\"a b\"\nCONFIG_KCOV=",
        );
        assert_eq!(c.get("RETPOLINE"), Some("y"));
        assert_eq!(c.get("FUNCTION_PADDING_BYTES"), Some("16"));
        assert_eq!(c.get("X86_KERNEL_IBT"), Some("y"));
        assert_eq!(c.get("KCOV"), Some(""));
        assert_eq!(c.get("SLS"), None);
        assert_eq!(c.get("OTHER"), Some("a b"));
        assert_eq!(c.get("RETPOLINE_X"), Some("n"));
    }

    #[test]
    fn compile_step_of_a_cmd_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let obj = dir.path().join("entry_64.o");
        std::fs::write(
            dir.path().join(".entry_64.o.cmd"),
            "savedcmd_arch/x86/entry/entry_64.o := gcc -Wp,-MMD,x.d -c -o arch/x86/entry/entry_64.o /s/entry_64.S ; ./tools/objtool/objtool --orc arch/x86/entry/entry_64.o\nsource_x := y\n",
        )
        .expect("write");
        let c = compile_command_of(dir.path(), &obj, Path::new("/s/entry_64.S")).expect("command");
        assert_eq!(c.directory, dir.path());
        assert_eq!(
            c.argv().expect("argv"),
            [
                "gcc",
                "-Wp,-MMD,x.d",
                "-c",
                "-o",
                "arch/x86/entry/entry_64.o",
                "/s/entry_64.S"
            ]
        );
        assert!(
            compile_command_of(dir.path(), &dir.path().join("none.o"), Path::new("/s/x.S"))
                .is_none()
        );
    }

    #[test]
    fn objtool_step_of_a_cmd_line() {
        let cmd = "savedcmd_arch/x86/entry/entry_64.o := gcc -c -o arch/x86/entry/entry_64.o x.S; \
                   ./tools/objtool/objtool --hacks=jump_label --hacks=noinstr --hacks=skylake --orc --retpoline \
                   --rethunk --static-call --uaccess --prefix=16   arch/x86/entry/entry_64.o";
        let a = objtool_in_cmd(cmd)
            .expect("objtool step")
            .expect("known args");
        assert_eq!(a.prefix, 16);
        assert!(a.uaccess && a.hack_jump_label && a.hack_noinstr && a.orc && !a.ibt && !a.link);
        assert_eq!(
            a.to_args().join(" "),
            "--hacks=jump_label --hacks=noinstr --hacks=skylake --orc --retpoline --rethunk --static-call \
             --uaccess --prefix=16"
        );
        assert!(objtool_in_cmd("savedcmd_x.o := gcc -c -o x.o x.c").is_none());
        assert!(
            objtool_in_cmd("cmd_x.o := gcc -c x.c; ./tools/objtool/objtool --frobnicate x.o")
                .is_some_and(|r| r.is_err())
        );
    }

    #[test]
    fn versions_choose_rules() {
        assert_eq!(parse_version("6.12.118"), Some((6, 12)));
        assert_eq!(parse_version("6.1.0-28-amd64"), Some((6, 1)));
        assert_eq!(era_of_version(6, 12), Era::V6_12);
        assert_eq!(era_of_version(6, 4), Era::V6_12);
        assert_eq!(era_of_version(6, 1), Era::V6_1);
        assert_eq!(era_of_version(5, 15), Era::V6_1);
    }

    /// A miniature `O=` build of a tree: the source tree with its top Makefile and MAINTAINERS, the build directory
    /// beside it with `auto.conf`, `kernel.release` and a `source` link.
    fn fake_tree(config: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("linux");
        let out = dir.path().join("build");
        std::fs::create_dir_all(src.join("arch/x86/entry/vdso")).expect("mkdir");
        std::fs::create_dir_all(out.join("include/config")).expect("mkdir");
        std::fs::create_dir_all(out.join("arch/x86/entry/vdso")).expect("mkdir");
        std::fs::write(src.join("Makefile"), "VERSION = 6\nPATCHLEVEL = 12\n").expect("write");
        std::fs::write(src.join("MAINTAINERS"), "").expect("write");
        std::fs::write(
            src.join("arch/x86/entry/Makefile"),
            "OBJECT_FILES_NON_STANDARD_foo.o := y\n",
        )
        .expect("write");
        std::fs::write(
            src.join("arch/x86/entry/vdso/Makefile"),
            "OBJECT_FILES_NON_STANDARD := y\nOBJECT_FILES_NON_STANDARD_vma.o := n\n",
        )
        .expect("write");
        std::fs::write(out.join("include/config/auto.conf"), config).expect("write");
        std::fs::write(out.join("include/config/kernel.release"), "6.12.0\n").expect("write");
        std::os::unix::fs::symlink(&src, out.join("source")).expect("link");
        (dir, src, out)
    }

    /// An object and its `.cmd` (a compile, with or without an objtool step).
    fn object(out: &Path, rel: &str, objtool: Option<&str>) -> PathBuf {
        let obj = out.join(rel);
        std::fs::write(&obj, b"\x7fELF").expect("write object");
        let step = objtool.map_or(String::new(), |a| {
            format!("; ./tools/objtool/objtool {a} {rel}")
        });
        let name = obj
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        std::fs::write(
            obj.with_file_name(format!(".{name}.cmd")),
            format!("savedcmd_{rel} := gcc -D__KERNEL__ -c -o {rel} x.c{step}\n"),
        )
        .expect("write cmd");
        obj
    }

    const IBT: &str = "CONFIG_OBJTOOL=y\nCONFIG_UNWINDER_ORC=y\nCONFIG_X86_KERNEL_IBT=y\nCONFIG_HAVE_UACCESS_VALIDATION=y\n\
                       CONFIG_PREFIX_SYMBOLS=y\nCONFIG_FUNCTION_PADDING_BYTES=16\nCONFIG_MITIGATION_RETPOLINE=y\n";

    #[test]
    fn delayed_objtool_arguments_come_from_auto_conf() {
        let (_dir, src, out) = fake_tree(IBT);
        let obj = object(&out, "arch/x86/entry/entry_64.o", None);
        let kb = Kbuild::default();
        let o = kb.object(&obj);
        let a = o.objtool_args().expect("validated");
        assert!(
            matches!(o.validation, Validation::Delayed(_)),
            "{:?}",
            o.validation
        );
        assert_eq!(
            a.to_args().join(" "),
            "--ibt --orc --retpoline --uaccess --prefix=16 --link"
        );
        let tree = o.tree.expect("tree");
        assert_eq!(tree.source, std::fs::canonicalize(&src).expect("canonical"));
        assert_eq!(tree.era().map(|(e, _)| e), Some(Era::V6_12));
        assert_eq!(
            source_tree_root(&src.join("arch/x86/entry")),
            Some(src.clone())
        );
        assert_eq!(
            build_dirs_of(&src),
            vec![std::fs::canonicalize(&out).expect("canonical")]
        );
    }

    #[test]
    fn objects_kbuild_never_validates_are_named_with_the_reason() {
        let (_dir, _src, out) = fake_tree(IBT);
        let kb = Kbuild::default();
        // Per-file and per-directory OBJECT_FILES_NON_STANDARD, and a per-file `n` over a directory `y`.
        let foo = object(&out, "arch/x86/entry/foo.o", None);
        assert!(kb
            .object(&foo)
            .not_validated()
            .is_some_and(|w| w.contains("OBJECT_FILES_NON_STANDARD_foo.o")));
        let vdso = object(&out, "arch/x86/entry/vdso/vgetcpu.o", None);
        assert!(kb.object(&vdso).not_validated().is_some());
        let vma = object(&out, "arch/x86/entry/vdso/vma.o", None);
        assert!(
            kb.object(&vma).not_validated().is_none(),
            "{:?}",
            kb.object(&vma).validation
        );
        // A tree that runs objtool per object: an object compiled without the step is not validated; one with it
        // carries its own arguments.
        let (_dir, _src, out) = fake_tree("CONFIG_OBJTOOL=y\nCONFIG_UNWINDER_ORC=y\n");
        let plain = object(&out, "arch/x86/entry/plain.o", None);
        assert!(kb.object(&plain).not_validated().is_some());
        let ran = object(&out, "arch/x86/entry/ran.o", Some("--orc --uaccess"));
        match kb.object(&ran).validation {
            Validation::Ran(a) => assert!(a.orc && a.uaccess && !a.ibt),
            v => panic!("{v:?}"),
        }
        // objtool without stack validation (vmlinux.o: --noinstr --link) checks nothing altcfi checks.
        let vmlinux = object(&out, "arch/x86/entry/linked.o", Some("--noinstr --link"));
        assert!(kb
            .object(&vmlinux)
            .not_validated()
            .is_some_and(|w| w.contains("without stack validation")));
    }
}
