//! The workspace: configuration (`altcfi.toml` and `initializationOptions`), and finding the object files that
//! hold the code of an open source file.
//!
//! Objects are found, in this order: through a `compile_commands.json` (its `output` field, else the `-o`
//! argument) in the file's parent directories up to the workspace root, their `build/` subdirectories and the
//! configured build directories (an object named outside the root, the build directories and `objectGlobs` is not
//! read); else through an index of the `.o` files under the workspace keyed by the source files their DWARF
//! compile units name; else through the configuration (an object matched by `objectGlobs` whose name is the
//! source's stem).
//!
//! Architecture invariant: plain, synchronous file-system code. Nothing here knows about the protocol, tokio or
//! the analysis beyond asking [`LineMap::source_files`] which sources an object was built from; the adapter runs
//! these functions off the async threads.

use crate::live::CompileCommand;
use altcfi_analysis::lines::LineMap;
use altcfi_analysis::Era;
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The kernel generation whose formats and objtool rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KernelSetting {
    /// Detect from the object's `.altinstructions` layout.
    #[serde(rename = "auto")]
    Auto,
    /// 5.13–6.2 formats (objtool 6.1).
    #[serde(rename = "6.1")]
    V6_1,
    /// 6.4+ formats (objtool 6.12).
    #[serde(rename = "6.12")]
    V6_12,
}

impl KernelSetting {
    /// The era to force, `None` for detection.
    pub fn era(self) -> Option<Era> {
        match self {
            KernelSetting::Auto => None,
            KernelSetting::V6_1 => Some(Era::V6_1),
            KernelSetting::V6_12 => Some(Era::V6_12),
        }
    }
}

/// The server's configuration after merging the defaults, `initializationOptions` and `altcfi.toml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Globs (relative to the workspace root) naming the objects to index; empty = every `*.o` under the root
    /// and the build directories.
    pub object_globs: Vec<String>,
    /// Apply the frame-pointer rules (objtool `--stackval`).
    pub frame_pointer: bool,
    /// Kernel generation.
    pub kernel: KernelSetting,
    /// A `cpufeatures.h` for feature names (relative paths are taken from the root).
    pub cpufeatures: Option<PathBuf>,
    /// Send inlay hints (the CFA rule, or the ORC view in entry code, after lines that produced code).
    pub inlay_hints: bool,
    /// Inlay hints on every line that produced code, not only on lines that change the stack, call, hold an
    /// alternative or are entry code (`"inlayHints": "all"`).
    pub inlay_hints_all: bool,
    /// Build directories (relative to the root) searched for `compile_commands.json` and indexed for objects.
    pub build_dirs: Vec<PathBuf>,
    /// Also compare the object's `.eh_frame`/`.debug_frame` (the `.cfi_*` directives) with the computed CFI, and
    /// its `.orc_unwind` (if objtool already ran) with the computed ORC (`altcfi check --eh-frame --verify-orc`).
    pub eh_frame: bool,
    /// About how many MiB the per-instruction tables and source indexes of open objects may take together; past it
    /// the least recently used are dropped (their findings stay) and rebuilt when a hover or hint needs them.
    pub memory_budget_mib: u64,
    /// Live mode: re-check the unsaved buffer by running its compile command on it (`live.enable`).
    pub live_enable: bool,
    /// Compilers live mode may run (`live.compilers`).
    pub live_compilers: Vec<String>,
    /// Time limit of one live compile in milliseconds (`live.timeoutMs`).
    pub live_timeout_ms: u64,
    /// The compile command of files that have none in a compilation database or kbuild's `.cmd` (`live.command`,
    /// e.g. in `altcfi.toml`): arguments with `{file}` (the document) and `{output}` (its object) put in; run in
    /// the workspace root. Empty: such files get no live check.
    pub live_command: Vec<String>,
}

/// Default of [`Config::memory_budget_mib`].
pub const MEMORY_BUDGET_MIB: u64 = 32;

impl Default for Config {
    fn default() -> Self {
        Config {
            object_globs: Vec::new(),
            frame_pointer: false,
            kernel: KernelSetting::Auto,
            cpufeatures: None,
            inlay_hints: true,
            inlay_hints_all: false,
            build_dirs: Vec::new(),
            eh_frame: false,
            memory_budget_mib: MEMORY_BUDGET_MIB,
            live_enable: true,
            live_compilers: crate::live::command::DEFAULT_COMPILERS
                .iter()
                .map(|c| c.to_string())
                .collect(),
            live_timeout_ms: crate::live::DEFAULT_TIMEOUT_MS,
            live_command: Vec::new(),
        }
    }
}

/// Where a configuration value came from, for messages.
pub const CONFIG_FILE: &str = "altcfi.toml";

impl Config {
    /// Applies the keys present in `v` (a JSON object; camelCase or snake_case keys). Returns one warning per key
    /// that is unknown or has a value of the wrong type; such keys are ignored.
    pub fn apply(&mut self, v: &Value, origin: &str) -> Vec<String> {
        let mut warnings = Vec::new();
        let Some(map) = v.as_object() else {
            if !v.is_null() {
                warnings.push(format!("{origin}: expected an object of settings, ignored"));
            }
            return warnings;
        };
        for (key, value) in map {
            let mut bad = |what: &str| {
                warnings.push(format!("{origin}: `{key}` must be {what}; ignored"));
            };
            match key.as_str() {
                "objectGlobs" | "object_globs" => match string_list(value) {
                    Some(l) => self.object_globs = l,
                    None => bad("a list of strings"),
                },
                "buildDirs" | "build_dirs" => match string_list(value) {
                    Some(l) => self.build_dirs = l.into_iter().map(PathBuf::from).collect(),
                    None => bad("a list of strings"),
                },
                "framePointer" | "frame_pointer" => match value.as_bool() {
                    Some(b) => self.frame_pointer = b,
                    None => bad("true or false"),
                },
                "inlayHints" | "inlay_hints" => match (value.as_bool(), value.as_str()) {
                    (Some(b), _) => {
                        self.inlay_hints = b;
                        self.inlay_hints_all = false;
                    }
                    (_, Some("all")) => (self.inlay_hints, self.inlay_hints_all) = (true, true),
                    (_, Some("changes")) => {
                        (self.inlay_hints, self.inlay_hints_all) = (true, false)
                    }
                    (_, Some("off")) => (self.inlay_hints, self.inlay_hints_all) = (false, false),
                    _ => bad("true, false, \"changes\", \"all\" or \"off\""),
                },
                "memoryBudgetMiB" | "memory_budget_mib" => match value.as_u64() {
                    Some(n) => self.memory_budget_mib = n,
                    None => bad("a whole number of MiB"),
                },
                "ehFrame" | "eh_frame" => match value.as_bool() {
                    Some(b) => self.eh_frame = b,
                    None => bad("true or false"),
                },
                "live" => match value.as_object() {
                    Some(m) => {
                        for (k, v) in m {
                            let dotted = serde_json::json!({ format!("live.{k}"): v });
                            warnings.extend(self.apply(&dotted, origin));
                        }
                    }
                    None => bad("an object (enable, compilers, timeoutMs, command)"),
                },
                "live.enable" => match value.as_bool() {
                    Some(b) => self.live_enable = b,
                    None => bad("true or false"),
                },
                "live.compilers" => match string_list(value) {
                    Some(l) if !l.is_empty() => self.live_compilers = l,
                    _ => bad("a non-empty list of compiler names"),
                },
                "live.timeoutMs" | "live.timeout_ms" => match value.as_u64() {
                    Some(ms) if ms > 0 => self.live_timeout_ms = ms,
                    _ => bad("a positive number of milliseconds"),
                },
                "live.command" => match string_list(value) {
                    Some(l) if l.is_empty() || l.iter().any(|a| a.contains("{file}")) => {
                        self.live_command = l
                    }
                    _ => bad("a list of arguments naming the source as {file}"),
                },
                "kernel" => {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => String::new(),
                    };
                    match text.as_str() {
                        "auto" => self.kernel = KernelSetting::Auto,
                        "6.1" => self.kernel = KernelSetting::V6_1,
                        "6.12" => self.kernel = KernelSetting::V6_12,
                        _ => bad("\"auto\", \"6.1\" or \"6.12\""),
                    }
                }
                "cpufeatures" => match value {
                    Value::Null => self.cpufeatures = None,
                    Value::String(s) if s.is_empty() => self.cpufeatures = None,
                    Value::String(s) => self.cpufeatures = Some(PathBuf::from(s)),
                    _ => bad("a path or null"),
                },
                _ => warnings.push(format!("{origin}: unknown setting `{key}`, ignored")),
            }
        }
        warnings
    }

    /// Reads `altcfi.toml` text into the JSON shape [`Config::apply`] takes.
    pub fn toml_to_json(text: &str) -> Result<Value, String> {
        let v: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        serde_json::to_value(v).map_err(|e| e.to_string())
    }

    /// The configuration of a workspace: defaults, then `init` (`initializationOptions`), then the root's
    /// `altcfi.toml` (the project file wins). Returns the warnings to log with it.
    pub fn load(root: Option<&Path>, init: Option<&Value>) -> (Config, Vec<String>) {
        let mut config = Config::default();
        let mut warnings = Vec::new();
        if let Some(init) = init {
            warnings.extend(config.apply(init, "initializationOptions"));
        }
        if let Some(root) = root {
            let path = root.join(CONFIG_FILE);
            match std::fs::read_to_string(&path) {
                Ok(text) => match Config::toml_to_json(&text) {
                    Ok(v) => warnings.extend(config.apply(&v, &path.display().to_string())),
                    Err(e) => warnings.push(format!("{}: {e}", path.display())),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warnings.push(format!("{}: {e}", path.display())),
            }
        }
        (config, warnings)
    }

    /// The build directories as absolute paths.
    pub fn build_dirs_under(&self, root: &Path) -> Vec<PathBuf> {
        self.build_dirs.iter().map(|d| root.join(d)).collect()
    }

    /// The `cpufeatures.h` path as an absolute path.
    pub fn cpufeatures_under(&self, root: Option<&Path>) -> Option<PathBuf> {
        let p = self.cpufeatures.as_ref()?;
        Some(match root {
            Some(r) if p.is_relative() => r.join(p),
            _ => p.clone(),
        })
    }
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

pub use crate::paths::{canonical, normalize, same_file};

/// A file's modification time and size, the cheap part of a cache key.
pub fn stat(path: &Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// How the objects of a source file were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundBy {
    /// An entry of this `compile_commands.json`.
    CompileCommands(PathBuf),
    /// The DWARF index of the workspace's objects.
    DwarfIndex,
    /// kbuild's layout in this build directory of the file's kernel tree.
    KbuildLayout(PathBuf),
    /// An object matched by `objectGlobs` with the source's stem.
    Config,
}

impl std::fmt::Display for FoundBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FoundBy::CompileCommands(p) => write!(f, "{}", p.display()),
            FoundBy::DwarfIndex => write!(f, "the DWARF index of the workspace's objects"),
            FoundBy::KbuildLayout(b) => write!(f, "kbuild's layout in {}", b.display()),
            FoundBy::Config => write!(f, "objectGlobs (matching file name)"),
        }
    }
}

/// The objects that hold a source file's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Object paths (absolute); may name files that do not exist yet (not built).
    pub objects: Vec<PathBuf>,
    /// How they were found.
    pub found_by: FoundBy,
    /// The compile command of the source (from the `compile_commands.json` entry), for live compiles.
    pub command: Option<Arc<CompileCommand>>,
}

/// One entry of a compilation database: the source and the object it produces.
#[derive(Debug, Clone)]
struct CompileEntry {
    /// The source: canonical if it existed when the database was read, else its lexical normal form.
    file: PathBuf,
    /// Whether `file` is canonical (the source existed when the database was read).
    resolved: bool,
    /// The entry's `output`, if it has one (kbuild's database has none: see [`CompileEntry::output`]).
    output: Option<PathBuf>,
    /// The entry's command, for live compiles of the unsaved buffer.
    command: Option<Arc<CompileCommand>>,
}

impl CompileEntry {
    /// The object the entry writes: its `output`, else the `-o` of its command, relative to its directory. Worked
    /// out when asked: splitting every command of a kernel's database (thousands of 2 KiB lines) when it is read
    /// would cost more than all the rest of reading it.
    fn output(&self) -> Option<PathBuf> {
        if let Some(o) = &self.output {
            return Some(o.clone());
        }
        let c = self.command.as_ref()?;
        let args = match &c.invocation {
            crate::live::command::Invocation::Arguments(a) => a.clone(),
            crate::live::command::Invocation::Command(s) => shell_words(s),
        };
        output_arg(&args).map(|o| normalize(&c.directory.join(o)))
    }
}

/// A parsed `compile_commands.json`, with the stat it was read at.
struct CompileDb {
    key: Option<(u64, SystemTime)>,
    entries: Vec<CompileEntry>,
    /// Entry indices by `file` (a kernel's database has tens of thousands of entries: a look-up must not
    /// resolve each one's path).
    by_file: HashMap<PathBuf, Vec<usize>>,
    /// Entries whose source did not exist when the database was read: compared with [`same_file`] at each
    /// look-up, since it may exist now.
    unresolved: Vec<usize>,
}

impl CompileDb {
    fn new(key: Option<(u64, SystemTime)>, entries: Vec<CompileEntry>) -> Self {
        let mut by_file: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        let mut unresolved = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            by_file.entry(e.file.clone()).or_default().push(i);
            if !e.resolved {
                unresolved.push(i);
            }
        }
        CompileDb {
            key,
            entries,
            by_file,
            unresolved,
        }
    }

    /// The entries for `source` (whose canonical form is `wanted`), in database order: the same as comparing
    /// every entry's file with [`same_file`], except that a source path resolved when the database was read is not
    /// resolved again (a symbolic link changed since then is seen when the database next changes).
    fn entries_for(&self, source: &Path, wanted: &Path) -> Vec<&CompileEntry> {
        let mut found: Vec<usize> = Vec::new();
        for key in [wanted.to_path_buf(), normalize(source)] {
            if let Some(list) = self.by_file.get(&key) {
                found.extend(list);
            }
        }
        found.extend(
            self.unresolved
                .iter()
                .filter(|&&i| same_file(&self.entries[i].file, source)),
        );
        found.sort_unstable();
        found.dedup();
        found.iter().map(|&i| &self.entries[i]).collect()
    }
}

/// Most objects one header maps to (a header is inlined into many).
pub const MAX_OBJECTS_PER_FILE: usize = 8;

/// Object discovery state shared by every document of a workspace.
#[derive(Default)]
pub struct Workspace {
    dbs: Mutex<HashMap<PathBuf, CompileDb>>,
    /// Databases left unparsed because they do not name a file looked up in them: the version (stat) they were read
    /// at and the file names they do not contain.
    unnamed: Mutex<HashMap<PathBuf, Unnamed>>,
    index: Mutex<DwarfIndex>,
    /// Objects a compilation database names outside the readable places, already reported (each is logged once).
    refused: Mutex<HashSet<(PathBuf, PathBuf)>>,
    /// Kernel source trees seen, by root: their build directories and when they were looked for.
    kernels: Mutex<HashMap<PathBuf, (Instant, Vec<PathBuf>)>>,
}

/// A database's version (its stat) and the file names it was found not to contain.
type Unnamed = ((u64, SystemTime), HashSet<std::ffi::OsString>);

/// How long the build directories of a kernel tree are trusted before they are looked for again (a first `make
/// O=…` while the editor is open is found within this time).
const KERNEL_TTL: Duration = Duration::from_secs(5);

/// A kernel source tree a file lies in: its root and its build directories (in-tree, `O=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTree {
    /// The source tree's root (`Makefile` with `VERSION`, `MAINTAINERS`).
    pub root: PathBuf,
    /// Its build directories (each with `include/config/auto.conf`).
    pub builds: Vec<PathBuf>,
}

impl KernelTree {
    /// The directories whose `compile_commands.json` and objects belong to the tree.
    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.root).chain(&self.builds)
    }
}

/// Progress of indexing, for `$/progress`: `(done, total)`.
pub type ProgressFn<'a> = &'a mut dyn FnMut(usize, usize);

impl Workspace {
    /// The `compile_commands.json` files that could describe `source`, nearest first: each parent directory and
    /// its `build/`, up to and including the workspace root (none above it; without a root only the source's own
    /// directory), then the configured build directories.
    pub fn compile_db_candidates(
        source: &Path,
        root: Option<&Path>,
        config: &Config,
        kernel: Option<&KernelTree>,
    ) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut push = |p: PathBuf| {
            if seen.insert(p.clone()) {
                out.push(p);
            }
        };
        let source = canonical(source);
        let parents = source.ancestors().skip(1);
        let parents: Vec<&Path> = match root {
            Some(root) => parents.take_while(|d| d.starts_with(root)).collect(),
            None => parents.take(1).collect(),
        };
        for dir in parents {
            push(dir.join("compile_commands.json"));
            push(dir.join("build").join("compile_commands.json"));
        }
        if let Some(root) = root {
            for d in config.build_dirs_under(root) {
                push(d.join("compile_commands.json"));
            }
        }
        // A kernel tree's own databases: at its root (often a link into the build directory) and in each build
        // directory (`make O=…` writes it there).
        for d in kernel.into_iter().flat_map(KernelTree::dirs) {
            push(d.join("compile_commands.json"));
        }
        out
    }

    /// The kernel source tree `source` lies in, with its build directories (cached for [`KERNEL_TTL`]).
    pub fn kernel_of(&self, source: &Path) -> Option<KernelTree> {
        let source = canonical(source);
        let root = crate::kbuild::source_tree_root(source.parent()?)?;
        let mut kernels = lock(&self.kernels);
        if let Some((at, builds)) = kernels.get(&root) {
            if at.elapsed() < KERNEL_TTL {
                return Some(KernelTree {
                    root,
                    builds: builds.clone(),
                });
            }
        }
        let builds = crate::kbuild::build_dirs_of(&root);
        kernels.insert(root.clone(), (Instant::now(), builds.clone()));
        Some(KernelTree { root, builds })
    }

    /// The object kbuild writes for `source` in a build directory of its kernel tree (`entry_64.S` →
    /// `BUILD/arch/x86/entry/entry_64.o`): 6.1's `gen_compile_commands.py` lists no assembler sources, and a tree
    /// without a compilation database still has this layout.
    pub fn by_kbuild_layout(&self, source: &Path) -> Option<Resolution> {
        let kernel = self.kernel_of(source)?;
        kernel.builds.iter().find_map(|b| {
            crate::kbuild::object_in_build(&kernel.root, b, source).map(|o| Resolution {
                command: crate::kbuild::compile_command_of(b, &o, &canonical(source)).map(Arc::new),
                objects: vec![o],
                found_by: FoundBy::KbuildLayout(b.clone()),
            })
        })
    }

    /// The object `source` compiles to according to the first compilation database that has an entry for it.
    /// Objects outside the readable places ([`may_read`]) are left out; the first time each is, a message saying
    /// why is added to `refused`.
    pub fn by_compile_commands(
        &self,
        source: &Path,
        root: Option<&Path>,
        config: &Config,
        refused: &mut Vec<String>,
    ) -> Option<Resolution> {
        let wanted = canonical(source);
        let kernel = self.kernel_of(source);
        for db in Self::compile_db_candidates(source, root, config, kernel.as_ref()) {
            let Some(key) = stat(&db) else { continue };
            let mut dbs = self.dbs.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = dbs.get(&db).is_some_and(|d| d.key == Some(key));
            if !fresh {
                if self.known_not_to_name(&db, key, source, &wanted) {
                    continue;
                }
                let bytes = std::fs::read(&db).ok();
                if bytes
                    .as_deref()
                    .is_some_and(|b| !may_name(b, source, &wanted))
                {
                    let mut unnamed = lock(&self.unnamed);
                    let (at, names) = unnamed
                        .entry(db.clone())
                        .or_insert_with(|| (key, HashSet::new()));
                    if *at != key {
                        *at = key;
                        names.clear();
                    }
                    names.extend(source.file_name().map(ToOwned::to_owned));
                    continue;
                }
                let entries = bytes
                    .and_then(|bytes| parse_compile_db(&bytes))
                    .unwrap_or_default();
                dbs.insert(db.clone(), CompileDb::new(Some(key), entries));
            }
            let Some(parsed) = dbs.get(&db) else { continue };
            let mut objects: Vec<PathBuf> = Vec::new();
            let mut command = None;
            for e in parsed.entries_for(source, &wanted) {
                if command.is_none() {
                    command = e.command.clone();
                }
                if let Some(o) = &e.output() {
                    let in_kernel = kernel
                        .as_ref()
                        .is_some_and(|k| k.dirs().any(|d| canonical(o).starts_with(d)));
                    if !in_kernel && !may_read(o, source, root, config) {
                        let first = lock(&self.refused).insert((db.clone(), o.clone()));
                        if first {
                            refused.push(format!(
                                "{}: not reading {}, which {} names: it is outside the workspace root and \
                                 the configured buildDirs/objectGlobs",
                                source.display(),
                                o.display(),
                                db.display()
                            ));
                        }
                    } else if !objects.contains(o) {
                        objects.push(o.clone());
                    }
                }
            }
            if !objects.is_empty() {
                return Some(Resolution {
                    objects,
                    found_by: FoundBy::CompileCommands(db),
                    command,
                });
            }
        }
        None
    }

    /// Whether the database `db`, at version `key`, was read and found not to name `source`'s file.
    fn known_not_to_name(
        &self,
        db: &Path,
        key: (u64, SystemTime),
        source: &Path,
        wanted: &Path,
    ) -> bool {
        let unnamed = lock(&self.unnamed);
        let Some((at, names)) = unnamed.get(db) else {
            return false;
        };
        *at == key
            && source.file_name() == wanted.file_name()
            && source.file_name().is_some_and(|n| names.contains(n))
    }

    /// Brings the DWARF index up to date (re-reading only objects whose size or mtime changed) and reports
    /// progress while doing so. Returns the number of objects indexed.
    pub fn refresh_index(&self, root: &Path, config: &Config, progress: ProgressFn<'_>) -> usize {
        let files = object_files(root, config);
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        index.refresh(&files, progress);
        index.objects.len()
    }

    /// Whether the index has been built at least once.
    pub fn index_built(&self) -> bool {
        self.index.lock().unwrap_or_else(|e| e.into_inner()).built
    }

    /// Marks the index as possibly out of date (an object changed on disk).
    pub fn index_dirty(&self) {
        self.index.lock().unwrap_or_else(|e| e.into_inner()).dirty = true;
    }

    /// Whether the index needs a refresh before its answers can be trusted.
    pub fn index_needs_refresh(&self) -> bool {
        let i = self.index.lock().unwrap_or_else(|e| e.into_inner());
        !i.built || i.dirty
    }

    /// The objects whose DWARF names `source`, from the index as it is.
    pub fn by_index(&self, source: &Path) -> Option<Resolution> {
        let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let objects = index.lookup(source);
        (!objects.is_empty()).then_some(Resolution {
            objects,
            found_by: FoundBy::DwarfIndex,
            command: None,
        })
    }

    /// The configuration fallback: objects matched by `objectGlobs` whose file stem is `source`'s stem.
    pub fn by_config(&self, source: &Path, root: &Path, config: &Config) -> Option<Resolution> {
        if config.object_globs.is_empty() {
            return None;
        }
        let stem = source.file_stem()?;
        let mut objects: Vec<PathBuf> = glob_objects(root, &config.object_globs)
            .into_iter()
            .filter(|o| o.file_stem() == Some(stem))
            .collect();
        objects.truncate(MAX_OBJECTS_PER_FILE);
        (!objects.is_empty()).then_some(Resolution {
            objects,
            found_by: FoundBy::Config,
            command: None,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the server may read `object`, named by a compilation database for `source`: it must be under the
/// workspace root or a configured build directory, or match an `objectGlobs` pattern (after resolving symbolic
/// links). Without a workspace root, under the source's directory.
pub fn may_read(object: &Path, source: &Path, root: Option<&Path>, config: &Config) -> bool {
    let object = canonical(object);
    let mut dirs: Vec<PathBuf> = Vec::new();
    match root {
        Some(root) => {
            dirs.push(canonical(root));
            dirs.extend(config.build_dirs_under(root).iter().map(|d| canonical(d)));
        }
        None => dirs.extend(canonical(source).parent().map(Path::to_path_buf)),
    }
    if dirs.iter().any(|d| object.starts_with(d)) {
        return true;
    }
    let Some(root) = root else { return false };
    config.object_globs.iter().any(|g| {
        let pattern = if Path::new(g).is_absolute() {
            g.clone()
        } else {
            root.join(g).to_string_lossy().into_owned()
        };
        glob::Pattern::new(&pattern).is_ok_and(|p| p.matches_path(&object))
    })
}

/// Whether the text of a compilation database may have an entry for `source` (canonical form `wanted`): `false`
/// only when neither file name appears in it anywhere. A kernel 6.1 database lists no assembler sources, and one of
/// a whole kernel is tens of megabytes: opening `entry_64.S` would parse it for nothing. Names JSON may spell
/// otherwise (quotes, backslashes, control or non-ASCII characters) always answer `true`; so does a database entry
/// that is a link with another name to the source (never seen in generated databases), which this misses.
fn may_name(db: &[u8], source: &Path, wanted: &Path) -> bool {
    [source.file_name(), wanted.file_name()]
        .into_iter()
        .flatten()
        .any(|name| {
            let Some(name) = name.to_str() else {
                return true;
            };
            let plain = name
                .bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_control() && b != b'"' && b != b'\\');
            !plain || memchr::memmem::find(db, name.as_bytes()).is_some()
        })
}

/// Parses a compilation database; `None` if it is not one.
fn parse_compile_db(bytes: &[u8]) -> Option<Vec<CompileEntry>> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let mut out = Vec::new();
    // A kernel's database names thousands of files in a few hundred directories: resolve each directory once
    // (realpath reads every component's link) and only the file's own name per entry.
    let mut dirs: HashMap<PathBuf, Option<PathBuf>> = HashMap::new();
    let mut resolve = |joined: &Path| -> Option<PathBuf> {
        let (parent, name) = (joined.parent()?, joined.file_name()?);
        let meta = std::fs::symlink_metadata(joined).ok()?;
        if meta.file_type().is_symlink() {
            return std::fs::canonicalize(joined).ok();
        }
        let parent = dirs
            .entry(parent.to_path_buf())
            .or_insert_with(|| std::fs::canonicalize(parent).ok())
            .clone()?;
        Some(parent.join(name))
    };
    for e in v.as_array()? {
        let dir = PathBuf::from(e.get("directory").and_then(Value::as_str).unwrap_or("."));
        let Some(file) = e.get("file").and_then(Value::as_str) else {
            continue;
        };
        let joined = dir.join(file);
        let (file, resolved) = match resolve(&joined) {
            Some(p) => (p, true),
            None => (normalize(&joined), false),
        };
        let output = e
            .get("output")
            .and_then(Value::as_str)
            .map(|o| normalize(&dir.join(o)));
        out.push(CompileEntry {
            file,
            resolved,
            output,
            command: CompileCommand::from_json(e).map(Arc::new),
        });
    }
    Some(out)
}

/// The value of `-o X` / `-oX` in a command line.
fn output_arg(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-o" {
            return it.next().cloned();
        }
        if let Some(rest) = a.strip_prefix("-o") {
            if !rest.is_empty() {
                return Some(rest.to_owned());
            }
        }
    }
    None
}

/// Splits a command line like a POSIX shell would for its quoting (`'…'`, `"…"`, `\`), without refusing anything.
fn shell_words(s: &str) -> Vec<String> {
    crate::live::command::split_command_lenient(s)
}

/// Directories never walked for objects.
const SKIP_DIRS: [&str; 2] = ["target", "node_modules"];

/// Every candidate object: the `objectGlobs` matches if any are configured, else every `*.o` under the root and
/// the build directories.
fn object_files(root: &Path, config: &Config) -> Vec<PathBuf> {
    if !config.object_globs.is_empty() {
        return glob_objects(root, &config.object_globs);
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut dirs = vec![root.to_path_buf()];
    dirs.extend(config.build_dirs_under(root));
    for d in dirs {
        walk(&d, &mut out, &mut seen, 0);
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>, depth: usize) {
    if depth > 32 || !seen.insert(canonical(dir)) {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(ft) = e.file_type() else { continue };
        let path = e.path();
        if ft.is_dir() {
            if name.starts_with('.') || SKIP_DIRS.contains(&name.as_ref()) {
                continue;
            }
            walk(&path, out, seen, depth + 1);
        } else if ft.is_file() && name.ends_with(".o") && seen.insert(path.clone()) {
            out.push(path);
        }
    }
}

fn glob_objects(root: &Path, globs: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for g in globs {
        let pattern = if Path::new(g).is_absolute() {
            g.clone()
        } else {
            root.join(g).to_string_lossy().into_owned()
        };
        let Ok(paths) = glob::glob(&pattern) else {
            continue;
        };
        for p in paths.flatten() {
            if p.is_file() && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Source files of the workspace's objects, from their DWARF compile units.
#[derive(Default)]
struct DwarfIndex {
    built: bool,
    dirty: bool,
    objects: HashMap<PathBuf, IndexedObject>,
}

struct IndexedObject {
    key: (u64, SystemTime),
    /// Canonical source paths.
    sources: HashSet<PathBuf>,
}

impl DwarfIndex {
    fn refresh(&mut self, files: &[PathBuf], progress: ProgressFn<'_>) {
        let total = files.len();
        let keep: HashSet<&PathBuf> = files.iter().collect();
        self.objects.retain(|p, _| keep.contains(p));
        let mut canon: HashMap<PathBuf, PathBuf> = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            if i % 16 == 0 {
                progress(i, total);
            }
            let Some(key) = stat(f) else {
                self.objects.remove(f);
                continue;
            };
            if self.objects.get(f).is_some_and(|o| o.key == key) {
                continue;
            }
            let sources = std::fs::read(f)
                .ok()
                .and_then(|data| {
                    let map = LineMap::new(&data).ok()?;
                    map.source_files().ok()
                })
                .unwrap_or_default()
                .into_iter()
                .map(|s| {
                    canon
                        .entry(s.clone())
                        .or_insert_with(|| canonical(&s))
                        .clone()
                })
                .collect();
            self.objects
                .insert(f.clone(), IndexedObject { key, sources });
        }
        progress(total, total);
        self.built = true;
        self.dirty = false;
    }

    fn lookup(&self, source: &Path) -> Vec<PathBuf> {
        let wanted = canonical(source);
        let mut out: Vec<PathBuf> = self
            .objects
            .iter()
            .filter(|(_, o)| o.sources.contains(&wanted))
            .map(|(p, _)| p.clone())
            .collect();
        out.sort();
        out.truncate(MAX_OBJECTS_PER_FILE);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn live_settings_as_an_object_dotted_keys_or_toml() {
        let mut c = Config::default();
        assert!(c.live_enable && c.live_compilers.len() == 4);
        let w = c.apply(
            &json!({"live": {"enable": false, "compilers": ["gcc-12"], "timeoutMs": 2500}}),
            "test",
        );
        assert!(w.is_empty(), "{w:?}");
        assert!(!c.live_enable);
        assert_eq!(c.live_compilers, vec!["gcc-12".to_string()]);
        assert_eq!(c.live_timeout_ms, 2500);
        let w = c.apply(
            &json!({"live.enable": true, "live.timeoutMs": -1, "live.compilers": []}),
            "test",
        );
        assert!(c.live_enable);
        assert_eq!(w.len(), 2, "{w:?}");
        let toml =
            Config::toml_to_json("[live]\nenable = false\ntimeout_ms = 900\n").expect("toml");
        let mut t = Config::default();
        assert!(t.apply(&toml, "altcfi.toml").is_empty());
        assert!(!t.live_enable);
        assert_eq!(t.live_timeout_ms, 900);
        // A command template must name the source.
        let toml = Config::toml_to_json("[live]\ncommand = [\"gcc\", \"-c\", \"{file}\"]\n")
            .expect("toml");
        assert!(t.apply(&toml, "altcfi.toml").is_empty());
        assert_eq!(t.live_command, ["gcc", "-c", "{file}"]);
        let w = t.apply(&json!({"live": {"command": ["gcc", "-c", "x.S"]}}), "test");
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(t.live_command, ["gcc", "-c", "{file}"]);
    }

    #[test]
    fn config_accepts_both_spellings_and_reports_bad_keys() {
        let mut c = Config::default();
        let w = c.apply(
            &json!({"objectGlobs": ["build/**/*.o"], "frame_pointer": true, "kernel": "6.1",
                    "cpufeatures": null, "inlay_hints": false, "buildDirs": ["out"], "bogus": 1, "framePointer": "x"}),
            "test",
        );
        assert_eq!(c.object_globs, vec!["build/**/*.o".to_string()]);
        assert!(c.frame_pointer);
        assert_eq!(c.kernel, KernelSetting::V6_1);
        assert!(!c.inlay_hints);
        assert_eq!(c.build_dirs, vec![PathBuf::from("out")]);
        assert_eq!(w.len(), 2, "{w:?}");
    }

    #[test]
    fn toml_config() {
        let v = Config::toml_to_json(
            "kernel = \"6.12\"\nobject_globs = [\"a/*.o\"]\ninlayHints = false\n",
        )
        .expect("toml");
        let mut c = Config::default();
        assert!(c.apply(&v, "t").is_empty());
        assert_eq!(c.kernel, KernelSetting::V6_12);
        assert!(!c.inlay_hints);
    }

    /// The indexed look-up finds what comparing every entry with `same_file` finds: the source by its canonical
    /// path, through a symbolic link, by a non-normal spelling, and an entry whose source was created after the
    /// database was read; entries keep the database's order.
    #[test]
    fn compile_db_lookup_matches_same_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir_all(root.join("src")).expect("mkdir");
        std::fs::write(root.join("src/a.S"), "").expect("write");
        std::fs::write(root.join("src/b.S"), "").expect("write");
        std::os::unix::fs::symlink(root.join("src"), root.join("link")).expect("symlink");
        let db = json!([
            {"directory": root, "file": "src/a.S", "output": "a1.o"},
            {"directory": root, "file": "src/b.S", "output": "b.o"},
            {"directory": root, "file": "link/a.S", "output": "a2.o"},
            {"directory": root, "file": "src/late.S", "output": "late.o"},
        ]);
        let entries = parse_compile_db(db.to_string().as_bytes()).expect("parse");
        let db = CompileDb::new(None, entries);
        let names = |entries: Vec<&CompileEntry>| -> Vec<String> {
            entries
                .iter()
                .filter_map(|e| e.output())
                .map(|o| {
                    o.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        };
        let outputs = |source: &Path| -> Vec<String> {
            let expected = names(
                db.entries
                    .iter()
                    .filter(|e| same_file(&e.file, source))
                    .collect(),
            );
            let found = names(db.entries_for(source, &canonical(source)));
            assert_eq!(found, expected, "{}", source.display());
            found
        };
        assert_eq!(outputs(&root.join("src/a.S")), ["a1.o", "a2.o"]);
        assert_eq!(outputs(&root.join("link/a.S")), ["a1.o", "a2.o"]);
        assert_eq!(outputs(&root.join("src/../src/b.S")), ["b.o"]);
        assert!(outputs(&root.join("src/late.S")).contains(&"late.o".to_string()));
        std::fs::write(root.join("src/late.S"), "").expect("write");
        assert_eq!(outputs(&root.join("link/late.S")), ["late.o"]);
    }

    /// A database that does not name the file anywhere is not parsed (6.1's lists no `.S` file), and the answer
    /// is the same as parsing it: none. Once it names the file (a new version), it is parsed and answers.
    #[test]
    fn database_that_does_not_name_the_file_is_not_parsed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::write(root.join("entry.S"), "").expect("write");
        std::fs::write(root.join("main.c"), "").expect("write");
        std::fs::write(root.join("entry.o"), "").expect("write");
        let db = root.join("compile_commands.json");
        std::fs::write(
            &db,
            json!([{"directory": root, "file": "main.c", "output": "main.o"}]).to_string(),
        )
        .expect("write");
        let ws = Workspace::default();
        let config = Config::default();
        let mut refused = Vec::new();
        let entry = root.join("entry.S");
        assert!(ws
            .by_compile_commands(&entry, Some(&root), &config, &mut refused)
            .is_none());
        assert!(
            !lock(&ws.dbs).contains_key(&db),
            "parsed a database that does not name entry.S"
        );
        assert!(ws.known_not_to_name(&db, stat(&db).expect("stat"), &entry, &entry));
        // A file it does name: parsed.
        assert!(ws
            .by_compile_commands(&root.join("main.c"), Some(&root), &config, &mut refused)
            .is_some());
        assert!(lock(&ws.dbs).contains_key(&db));
        // A new version that names entry.S (another size): read again and found.
        std::fs::write(
            &db,
            json!([{"directory": root, "file": "main.c", "output": "main.o"},
                   {"directory": root, "file": "entry.S", "output": "entry.o"}])
            .to_string(),
        )
        .expect("write");
        let found = ws
            .by_compile_commands(&entry, Some(&root), &config, &mut refused)
            .expect("found once named");
        assert_eq!(found.objects, [root.join("entry.o")]);
        // Names JSON may escape are never ruled out.
        assert!(may_name(
            b"[]",
            Path::new("/x/caf\u{e9}.S"),
            Path::new("/x/caf\u{e9}.S")
        ));
        assert!(may_name(
            b"[]",
            Path::new("/x/a\"b.S"),
            Path::new("/x/a\"b.S")
        ));
        assert!(!may_name(b"[]", Path::new("/x/a.S"), Path::new("/x/a.S")));
    }

    #[test]
    fn output_from_command() {
        let w = shell_words("gcc -c 'a b.c' -o \"out dir/a.o\" -DX=\\\"y\\\"");
        assert_eq!(output_arg(&w).as_deref(), Some("out dir/a.o"));
        assert_eq!(
            output_arg(&["-ofoo.o".to_string()]).as_deref(),
            Some("foo.o")
        );
    }
}
