//! Running analyses off the async threads: the per-object cache, the per-document generation counter (the newest
//! request wins, older results are dropped), and [`blocking`] to move work onto tokio's blocking pool.
//!
//! Architecture invariant: no protocol types here. Reading an object that a build is rewriting never yields a
//! stale or half result: an analysis is only handed out if the file's size and mtime did not move from before the
//! read until after the analysis and it was last written at least [`SETTLE`] ago, and an object that does not parse
//! is only reported as such once it has been left alone for [`ERROR_SETTLE`] (until then the caller is told to
//! look again, [`LoadError::Unsettled`]); an empty object is always one being written ([`EMPTY_RETRY`]). An object
//! that cannot be analysed gives an error, never a panic.
//!
//! Each object version is analysed once, in two stages ([`altcfi_analysis::analyze_staged`]): the result without
//! the per-instruction table ([`Checked::analysis`], enough for diagnostics and code lenses) is handed out as soon
//! as the walk is done, while the same analysis goes on to build the table ([`Checked::table`], for hover, inlay
//! hints and `altcfi/cfiTable`) on its own thread; concurrent callers share that one computation.

use super::workspace::stat;
use crate::kbuild::{Kbuild, ObjectKbuild};
use altcfi_analysis::features::FeatureNames;
use altcfi_analysis::sources::Sources;
use altcfi_analysis::{analyze, analyze_lean, analyze_staged, Analysis, Options};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// What identifies one version of an object file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKey {
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: SystemTime,
    /// Hash of the contents (a rebuild that writes identical bytes keeps the analysis).
    pub hash: u64,
}

/// An analysis, or why the object could not be analysed.
pub type AnalysisResult = Result<Analysis, String>;

/// The analyses of one version of an object's bytes, shared by every [`Checked`] that read those bytes.
#[derive(Debug)]
struct Analyses {
    settings: Settings,
    /// The analysis for diagnostics: without the per-instruction table, unless the unwind-table cross-checks
    /// (`eh_frame`) need it. Emptied once `full` exists (same findings; keeps one copy in memory).
    lean: OnceLock<Mutex<Option<Arc<AnalysisResult>>>>,
    /// The analysis with the per-instruction table.
    full: OnceLock<Arc<AnalysisResult>>,
    /// Set when the table is wanted (the diagnostics are out, or a request needs it): until then the analysis
    /// thread waits after its first stage, so that building the table does not compete with publishing the
    /// diagnostics for the machine's cores (at most [`TABLE_HOLD`]).
    table_wanted: (Mutex<bool>, std::sync::Condvar),
}

/// How long the analysis thread holds the table back for the diagnostics to go out.
const TABLE_HOLD: Duration = Duration::from_millis(500);

impl Analyses {
    fn new(settings: Settings) -> Self {
        Analyses {
            settings,
            lean: OnceLock::new(),
            full: OnceLock::new(),
            table_wanted: (Mutex::new(false), std::sync::Condvar::new()),
        }
    }

    /// Lets the analysis thread build the table now.
    fn want_table(&self) {
        *lock(&self.table_wanted.0) = true;
        self.table_wanted.1.notify_all();
    }

    /// Waits until the table is wanted, or [`TABLE_HOLD`] has passed.
    fn hold_table(&self) {
        let held = lock(&self.table_wanted.0);
        let _ = self
            .table_wanted
            .1
            .wait_timeout_while(held, TABLE_HOLD, |wanted| !*wanted);
    }

    fn analysis(self: &Arc<Self>, data: &Arc<Vec<u8>>) -> Arc<AnalysisResult> {
        if let Some(full) = self.full.get() {
            return full.clone();
        }
        if self.settings.eh_frame {
            // The unwind-table cross-checks read the table: the diagnostics wait for it.
            return self.table(data);
        }
        let slot = self
            .lean
            .get_or_init(|| Mutex::new(Some(self.start_staged(data))));
        let mut held = lock(slot);
        match (self.full.get(), held.clone()) {
            (Some(full), _) => {
                // The table was built while this one was computed: keep one copy.
                *held = None;
                full.clone()
            }
            (None, Some(lean)) => lean,
            // Only emptied after `full` is set; recomputing is the total answer.
            (None, None) => Arc::new(analyze_bytes(data, &self.settings, false)),
        }
    }

    /// Starts the one analysis of these bytes on its own thread and waits for its first stage. The thread then
    /// builds the table into `full` (a `table` caller waits for it there).
    fn start_staged(self: &Arc<Self>, data: &Arc<Vec<u8>>) -> Arc<AnalysisResult> {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<AnalysisResult>>();
        let me = self.clone();
        let bytes = data.clone();
        let spawned = std::thread::Builder::new()
            .name("altcfi-table".into())
            .spawn(move || {
                let mut sent = false;
                let full = me.full.get_or_init(|| {
                    let r = analyze_staged(
                        &bytes,
                        me.settings.options,
                        &me.settings.features,
                        |lean| {
                            sent = tx.send(Arc::new(Ok(lean))).is_ok();
                            me.hold_table();
                        },
                    );
                    Arc::new(r.map_err(|e| e.to_string()))
                });
                // No first stage (the table was built by a `table` caller, or the analysis stopped early): the
                // whole result is the answer.
                if !sent {
                    let _ = tx.send(full.clone());
                }
            });
        match spawned {
            Ok(_) => rx.recv().unwrap_or_else(|_| {
                Arc::new(Err("the analysis thread ended without a result".into()))
            }),
            Err(_) => Arc::new(analyze_bytes(data, &self.settings, false)),
        }
    }

    fn table(&self, data: &[u8]) -> Arc<AnalysisResult> {
        self.want_table();
        let full = self.full.get_or_init(|| {
            let lean = self.lean.get().and_then(|slot| lock(slot).clone());
            match lean {
                // With `eh_frame` the diagnostics' analysis has the table already; an object that cannot be
                // analysed gives the same error either way.
                Some(lean) if self.settings.eh_frame || lean.is_err() => lean,
                _ => Arc::new(analyze_bytes(data, &self.settings, true)),
            }
        });
        if let Some(slot) = self.lean.get() {
            *lock(slot) = None;
        }
        full.clone()
    }
}

/// One version of an object and what the analysis made of it.
#[derive(Debug)]
pub struct Checked {
    /// Object path.
    pub path: PathBuf,
    /// Version.
    pub key: ObjectKey,
    /// Its bytes (the source mapping reads DWARF from them).
    pub data: Arc<Vec<u8>>,
    /// When the bytes were read (see [`RACY`]).
    pub read_at: SystemTime,
    /// The analyses; replaced by a lean copy when [`Checked::shed`] lets the table go.
    analyses: Mutex<Arc<Analyses>>,
    /// The thread that keeps this version's [`Sources`] (see [`Checked::with_table_sources`]); `None` until the
    /// first call and after [`Checked::shed`].
    sources: Mutex<Option<mpsc::Sender<SourcesJob>>>,
    /// When the table or the source index was last asked for, for [`ObjectCache::enforce_budget`].
    used: Mutex<std::time::Instant>,
}

/// A question for the thread that keeps an object version's [`Sources`]: the table analysis, the bytes, and the
/// `Sources` over them.
type SourcesJob = Box<dyn FnOnce(&Analysis, &[u8], &Sources<'_>) + Send>;

impl Checked {
    /// The analysis diagnostics and code lenses come from: findings, ORC, sites and states, without the
    /// per-instruction table (`Analysis::insns` may be empty). Computed on the first call; concurrent callers
    /// wait for that one computation. Blocking.
    pub fn analysis(&self) -> Arc<AnalysisResult> {
        self.analyses().analysis(&self.data)
    }

    fn analyses(&self) -> Arc<Analyses> {
        lock(&self.analyses).clone()
    }

    fn touch(&self) {
        *lock(&self.used) = std::time::Instant::now();
    }

    /// The analysis with the per-instruction table (hover, inlay hints, `altcfi/cfiTable`): the same findings as
    /// [`Checked::analysis`], plus `Analysis::insns`. Built by the analysis [`Checked::analysis`] started (or on
    /// the first call, if none did); concurrent callers wait for that one computation. Blocking.
    pub fn table(&self) -> Arc<AnalysisResult> {
        self.touch();
        self.analyses().table(&self.data)
    }

    /// Runs `f` with the table analysis ([`Checked::table`]), the bytes and a [`Sources`] over them that lives as
    /// long as this version: the DWARF is relocated, parsed and indexed once for all of the version's hovers, inlay
    /// hints and `altcfi/cfiTable` requests instead of once per request (a hover on a 1 MiB-text object re-parsed
    /// it, ~200 ms). `Sources` fills its caches behind `&self` and cannot be shared between threads, so it lives on
    /// a thread of its own, started by the first call and ended when this `Checked` is dropped; calls are answered
    /// in turn. `None` if the analysis failed or the ELF headers cannot be read. Blocking.
    pub fn with_table_sources<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Analysis, &[u8], &Sources<'_>) -> R + Send + 'static,
    ) -> Option<R> {
        self.touch();
        let jobs = lock(&self.sources)
            .get_or_insert_with(|| self.start_sources())
            .clone();
        let (reply, answer) = mpsc::channel();
        let job: SourcesJob = Box::new(move |analysis, data, sources| {
            let _ = reply.send(f(analysis, data, sources));
        });
        jobs.send(job).ok()?;
        answer.recv().ok()
    }

    fn start_sources(&self) -> mpsc::Sender<SourcesJob> {
        let (jobs, queue) = mpsc::channel::<SourcesJob>();
        let table = self.table();
        let data = Arc::clone(&self.data);
        // Should the thread not start, the queue is dropped with the closure and every call gets `None`.
        let _ = std::thread::Builder::new()
            .name("altcfi-sources".into())
            .spawn(move || {
                let Ok(analysis) = table.as_ref() else { return };
                let Ok(sources) = Sources::new(analysis, &data) else {
                    return;
                };
                for job in queue {
                    job(analysis, &data, &sources);
                }
            });
        jobs
    }

    /// An object that is not on disk: compiled from the unsaved buffer ([`crate::live`]). `path` is the build's
    /// object it stands in for (named in hovers and tables). Not cached.
    pub fn unsaved(path: PathBuf, data: Vec<u8>, settings: &Settings) -> Arc<Checked> {
        let now = SystemTime::now();
        let key = ObjectKey {
            size: data.len() as u64,
            mtime: now,
            hash: content_hash(&data),
        };
        Arc::new(Checked {
            path,
            key,
            data: Arc::new(data),
            read_at: now,
            analyses: Mutex::new(Arc::new(Analyses::new(settings.clone()))),
            sources: Mutex::new(None),
            used: Mutex::new(std::time::Instant::now()),
        })
    }

    /// Whether [`Checked::table`] has been built.
    pub fn has_table(&self) -> bool {
        self.analyses().full.get().is_some()
    }

    /// About how many bytes the table and the source index of this version hold (0 when neither is built): the
    /// instruction rows with their text, plus twice the object's size for the parsed DWARF and its indexes (the
    /// ratio measured on the kernel's large C objects; `scripts/lsp-memory.py`).
    pub fn heavy_bytes(&self) -> usize {
        let table = match self.analyses().full.get().map(|r| r.as_ref()) {
            Some(Ok(a)) => a
                .insns
                .iter()
                .map(|i| std::mem::size_of_val(i) + i.text.capacity() + i.location.capacity())
                .sum(),
            _ => 0,
        };
        let sources = if lock(&self.sources).is_some() {
            self.data.len() * 2
        } else {
            0
        };
        table + sources
    }

    /// Lets the table and the source index go, keeping the findings (a lean copy of the analysis): they are
    /// built again when a hover or hint asks. Not with the unwind-table cross-checks, whose findings need the
    /// table. Returns whether anything was let go.
    pub fn shed(&self) -> bool {
        let sources_gone = lock(&self.sources).take().is_some();
        let current = self.analyses();
        if current.settings.eh_frame {
            return sources_gone;
        }
        let Some(full) = current.full.get() else {
            return sources_gone;
        };
        let lean: AnalysisResult = match full.as_ref() {
            Ok(a) => Ok(a.without_table()),
            Err(e) => Err(e.clone()),
        };
        let fresh = Analyses::new(current.settings.clone());
        let _ = fresh.lean.set(Mutex::new(Some(Arc::new(lean))));
        *lock(&self.analyses) = Arc::new(fresh);
        true
    }
}

/// A cached read is trusted on size and mtime alone only if it was made at least this long after the file's
/// mtime. A file rewritten with the same size within one tick of the file system's timestamp clock (coarse on
/// many kernels and file systems) after it was read keeps its mtime, so such a "racily clean" entry is re-read and
/// compared byte for byte instead (the analysis is kept when the bytes are the same).
pub const RACY: Duration = Duration::from_secs(2);

/// How long an object must have been left alone (by its mtime, and by its size and mtime not moving from before it
/// was read until after it was analysed) before its analysis is handed out. A build that is still writing it
/// writes again within this time; an analysis that takes longer is its own quiet period.
pub const SETTLE: Duration = Duration::from_millis(10);

/// How long an object that cannot be analysed must have been left alone before that is reported: a build writing
/// an object in pieces leaves it unparseable for a while, and that must not show as an error.
pub const ERROR_SETTLE: Duration = Duration::from_millis(2000);

/// How long to wait before looking again at an empty object: assemblers and compilers create their output empty
/// and write it whole at the end (GNU as keeps it at 0 bytes for the whole assembly), so an empty object is
/// always one being written, never an error to report.
pub const EMPTY_RETRY: Duration = Duration::from_millis(250);

/// Why no analysis is available for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file does not exist (not built yet).
    Missing,
    /// The file could not be read.
    Io(String),
    /// The file is being written: it changed while it was read or analysed, or it does not parse and was written
    /// less than [`ERROR_SETTLE`] ago. Nothing about this version may be shown; look again after the duration.
    Unsettled(Duration),
}

/// The analysis inputs that do not come from the object.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Analysis options.
    pub options: Options,
    /// Feature names.
    pub features: Arc<FeatureNames>,
    /// Add the unwind-table cross-checks (`.eh_frame`/`.debug_frame` against the code, `.orc_unwind` against the
    /// computed ORC) to the findings.
    pub eh_frame: bool,
    /// The kernel trees objects lie in (objtool's arguments and the generation per object); `None`: options only.
    pub kbuild: Option<Arc<Kbuild>>,
}

impl Settings {
    /// The settings for one object: objtool's arguments from its tree (`.cmd` or `auto.conf`) and the tree's
    /// generation unless the configuration names one.
    pub fn for_object(&self, kb: Option<&ObjectKbuild>) -> Settings {
        let mut s = self.clone();
        if let Some(kb) = kb {
            s.options = kb.options(s.options);
        }
        s
    }
}

impl Settings {
    /// Whether analyses made with `self` and `other` are the same.
    fn same(&self, other: &Settings) -> bool {
        self.options == other.options
            && Arc::ptr_eq(&self.features, &other.features)
            && self.eh_frame == other.eh_frame
    }
}

/// Analyses keyed by object path and version.
#[derive(Default)]
pub struct ObjectCache {
    map: Mutex<HashMap<PathBuf, Arc<Checked>>>,
}

impl ObjectCache {
    /// Drops the analyses of every object `keep` does not name (the objects no open document shows any more), so
    /// that closing files gives their memory back.
    pub fn retain(&self, keep: impl Fn(&Path) -> bool) {
        lock(&self.map).retain(|p, _| keep(p));
    }

    /// Keeps the tables and source indexes of the cached objects within `budget` bytes: the least recently used
    /// are shed ([`Checked::shed`]) until the rest fit, the most recently used one always stays. Returns how many
    /// were shed; the freed memory is handed back to the system.
    pub fn enforce_budget(&self, budget: usize) -> usize {
        let mut held: Vec<(std::time::Instant, usize, Arc<Checked>)> = lock(&self.map)
            .values()
            .map(|c| (*lock(&c.used), c.heavy_bytes(), c.clone()))
            .filter(|(_, bytes, _)| *bytes > 0)
            .collect();
        held.sort_by_key(|h| std::cmp::Reverse(h.0));
        let mut total = 0usize;
        let mut shed = 0;
        for (k, (_, bytes, c)) in held.iter().enumerate() {
            if k > 0 && total.saturating_add(*bytes) > budget {
                shed += usize::from(c.shed());
            } else {
                total = total.saturating_add(*bytes);
            }
        }
        if shed > 0 {
            crate::alloc::trim();
        }
        shed
    }

    /// Number of objects whose analyses are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fast hash of the contents (8 bytes at a time); equal hashes are confirmed byte for byte where it matters.
fn content_hash(data: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = data.len() as u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    for &b in words.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
    }
    h
}

/// How long ago `mtime` was. A modification time in the future (clock skew, `touch -d`) says nothing about when
/// the file was written: then only the size-and-mtime stability checks apply.
fn quiet_for(mtime: SystemTime) -> Duration {
    SystemTime::now()
        .duration_since(mtime)
        .unwrap_or(Duration::MAX)
}

impl ObjectCache {
    /// Forgets every analysis (the settings changed).
    pub fn clear(&self) {
        lock(&self.map).clear();
    }

    /// The cached analysis of `path` if it is still the file on disk (same size and mtime, read well after it).
    pub fn cached(&self, path: &Path) -> Option<Arc<Checked>> {
        let (size, mtime) = stat(path)?;
        let map = lock(&self.map);
        map.get(path)
            .filter(|c| {
                c.key.size == size
                    && c.key.mtime == mtime
                    && c.read_at.duration_since(mtime).is_ok_and(|d| d >= RACY)
            })
            .cloned()
    }

    /// The object at `path` as it is now on disk, with its analysis for diagnostics computed
    /// ([`Checked::analysis`]). Blocking: call through [`blocking`]. [`LoadError::Unsettled`] while the file is being
    /// written.
    pub fn load(&self, path: &Path, settings: &Settings) -> Result<Arc<Checked>, LoadError> {
        self.load_with(path, settings, ERROR_SETTLE)
    }

    fn load_with(
        &self,
        path: &Path,
        settings: &Settings,
        error_settle: Duration,
    ) -> Result<Arc<Checked>, LoadError> {
        let Some((size, mtime)) = stat(path) else {
            return Err(if path.exists() {
                LoadError::Io(format!("{}: cannot stat", path.display()))
            } else {
                LoadError::Missing
            });
        };
        if size == 0 {
            return Err(LoadError::Unsettled(EMPTY_RETRY));
        }
        let checked = match self.cached(path) {
            Some(c) if c.analyses().settings.same(settings) => c,
            _ => self.read(path, size, mtime, settings)?,
        };
        let analysis = checked.analysis();
        // Hand it out only if the file was left alone from before the read until now, and for SETTLE after its
        // last write (an analysis shorter than that waits out the rest).
        let quiet = quiet_for(mtime);
        if quiet < SETTLE {
            std::thread::sleep(SETTLE - quiet);
        }
        if stat(path) != Some((size, mtime)) {
            return Err(LoadError::Unsettled(SETTLE));
        }
        if analysis.is_err() {
            let quiet = quiet_for(mtime);
            if quiet < error_settle {
                return Err(LoadError::Unsettled(error_settle - quiet));
            }
        }
        Ok(checked)
    }

    /// Reads `path`, which `stat` said has `size` and `mtime`, and enters it in the cache (sharing the analyses of
    /// the previous entry if the bytes are the same, so that a check started while another one analyses the same
    /// version waits for that analysis instead of repeating it).
    fn read(
        &self,
        path: &Path,
        size: u64,
        mtime: SystemTime,
        settings: &Settings,
    ) -> Result<Arc<Checked>, LoadError> {
        let read_at = SystemTime::now();
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LoadError::Missing),
            Err(e) => return Err(LoadError::Io(format!("{}: {e}", path.display()))),
        };
        if data.len() as u64 != size || stat(path) != Some((size, mtime)) {
            // Being written: look again when the writer has moved on.
            return Err(LoadError::Unsettled(SETTLE));
        }
        let hash = content_hash(&data);
        let key = ObjectKey { size, mtime, hash };
        let mut map = lock(&self.map);
        let (data, analyses) = match map.get(path) {
            Some(p)
                if p.key.hash == hash
                    && p.key.size == size
                    && p.analyses().settings.same(settings)
                    && *p.data == data =>
            {
                (p.data.clone(), p.analyses())
            }
            _ => (Arc::new(data), Arc::new(Analyses::new(settings.clone()))),
        };
        let checked = Arc::new(Checked {
            path: path.to_path_buf(),
            key,
            data,
            read_at,
            analyses: Mutex::new(analyses),
            sources: Mutex::new(None),
            used: Mutex::new(std::time::Instant::now()),
        });
        map.insert(path.to_path_buf(), checked.clone());
        Ok(checked)
    }
}

fn analyze_bytes(data: &[u8], settings: &Settings, table: bool) -> AnalysisResult {
    // The unwind-table cross-checks read the per-instruction table.
    let mut a = if table || settings.eh_frame {
        analyze(data, settings.options, &settings.features)
    } else {
        analyze_lean(data, settings.options, &settings.features)
    }
    .map_err(|e| e.to_string())?;
    if settings.eh_frame {
        // A table that cannot be read is not a reason to hide the stack-validation findings.
        if let Ok(extra) = altcfi_analysis::ehframe::check_unwind_tables(data, &a) {
            a.findings.extend(extra);
        }
        let orc = altcfi_analysis::ehframe::verify_orc_findings(&a);
        a.findings.extend(orc);
    }
    Ok(a)
}

/// One request for fresh results of a document; see [`Generations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    key: String,
    generation: u64,
}

/// Per-document generation counters: each new check of a document takes a ticket, and only the newest ticket's
/// result is published.
#[derive(Default)]
pub struct Generations {
    map: Mutex<HashMap<String, u64>>,
}

impl Generations {
    /// A new ticket for `key`, making every older one stale.
    pub fn next(&self, key: &str) -> Ticket {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let g = map.entry(key.to_owned()).or_insert(0);
        *g += 1;
        Ticket {
            key: key.to_owned(),
            generation: *g,
        }
    }

    /// Whether `t` is still the newest ticket of its document.
    pub fn is_current(&self, t: &Ticket) -> bool {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&t.key) == Some(&t.generation)
    }

    /// Forgets a document (closed): all its tickets become stale.
    pub fn forget(&self, key: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = map.get_mut(key) {
            *g += 1;
        }
    }
}

/// Runs `f` on tokio's blocking pool; `Err` if it panicked or the runtime is shutting down.
pub async fn blocking<T, F>(f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("background task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(eh_frame: bool) -> Settings {
        Settings {
            options: Options::default(),
            kbuild: None,
            features: Arc::new(FeatureNames::default()),
            eh_frame,
        }
    }

    /// Sets the modification time of `path` to `ago` before now.
    fn age(path: &Path, ago: Duration) {
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        f.set_modified(SystemTime::now() - ago).expect("set mtime");
    }

    /// A small real object (`gcc -c` of an ehframe fixture) in `dir`.
    fn build_object(dir: &Path) -> PathBuf {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/ehframe/push-no-adjust.S");
        let obj = dir.join("push-no-adjust.o");
        let status = std::process::Command::new("gcc")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .expect("run gcc");
        assert!(status.success(), "gcc failed on {}", src.display());
        obj
    }

    /// An object rewritten with the same size and mtime after it was read (a coarse timestamp clock) is not
    /// mistaken for the version in the cache.
    #[test]
    fn same_size_same_mtime_rewrite_is_not_served_from_the_cache() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.o");
        let settings = settings(false);
        let cache = ObjectCache::default();
        std::fs::write(&path, b"first version").expect("write");
        let mtime = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        // Neither version parses: report that at once.
        let first = cache
            .load_with(&path, &settings, Duration::ZERO)
            .expect("load");
        assert_eq!(first.data.as_slice(), b"first version");
        std::fs::write(&path, b"other version").expect("rewrite");
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_modified(mtime).expect("set mtime");
        drop(f);
        let second = cache
            .load_with(&path, &settings, Duration::ZERO)
            .expect("load");
        assert_eq!(second.data.as_slice(), b"other version");
    }

    /// Closing the documents that showed an object gives its analyses back.
    #[test]
    fn retain_drops_the_objects_no_document_shows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let obj = build_object(dir.path());
        let other = dir.path().join("other.o");
        std::fs::copy(&obj, &other).expect("copy object");
        let cache = ObjectCache::default();
        for p in [&obj, &other] {
            cache
                .load_with(p, &settings(false), Duration::ZERO)
                .expect("load");
        }
        assert_eq!(cache.len(), 2);
        cache.retain(|p| p == obj.as_path());
        assert_eq!(cache.len(), 1);
        cache.retain(|_| false);
        assert_eq!(cache.len(), 0);
    }

    /// With `ehFrame`, a wrong `.cfi_*` directive is a finding of the same analysis the diagnostics come from.
    #[test]
    fn eh_frame_setting_adds_the_unwind_table_findings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = std::fs::read(build_object(dir.path())).expect("read object");
        let codes = |eh_frame| {
            let a = analyze_bytes(&data, &settings(eh_frame), false).expect("analyses");
            a.findings.iter().map(|f| f.kind.code()).collect::<Vec<_>>()
        };
        assert!(!codes(false).contains(&"cfi-directive-mismatch"));
        assert!(
            codes(true).contains(&"cfi-directive-mismatch"),
            "{:?}",
            codes(true)
        );
    }

    /// Every question about one object version goes to the same `Sources` (its DWARF read once), on the table
    /// analysis; the thread ends with the version.
    #[test]
    fn sources_are_kept_per_object_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = build_object(dir.path());
        let cache = ObjectCache::default();
        let c = cache.load(&path, &settings(false)).expect("load");
        let first = c.with_table_sources(|analysis, data, sources| {
            assert!(!analysis.insns.is_empty());
            assert!(!data.is_empty());
            let before = sources.dwarf_used();
            sources.code_for_line(Path::new("push-no-adjust.S"), 1);
            (before, sources.dwarf_used())
        });
        assert_eq!(first, Some((false, true)));
        // A second question finds the first one's DWARF already read: the same `Sources`.
        let second = c.with_table_sources(|_, _, sources| sources.dwarf_used());
        assert_eq!(second, Some(true));
        let bytes = Arc::downgrade(&c.data);
        drop(c);
        drop(cache);
        // The version is gone: the thread ends and lets go of the bytes.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while bytes.upgrade().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the sources thread did not end"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Over the memory budget, the least recently used object lets its table and source index go and keeps its
    /// findings; a later hover builds them again with the same answers. The most recently used one always stays.
    #[test]
    fn the_memory_budget_sheds_the_least_recently_used_tables() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = build_object(dir.path());
        let second = dir.path().join("second.o");
        std::fs::copy(&first, &second).expect("copy");
        let cache = ObjectCache::default();
        let s = settings(false);
        let old = cache.load(&first, &s).expect("load");
        let lines = |c: &Checked| {
            c.with_table_sources(|a, _, _| (a.insns.len(), a.findings.len()))
                .expect("sources")
        };
        let before = lines(&old);
        assert!(before.0 > 0);
        let new = cache.load(&second, &s).expect("load");
        lines(&new);
        assert!(old.heavy_bytes() > 0 && new.heavy_bytes() > 0);
        // A budget both fit in: nothing goes.
        assert_eq!(cache.enforce_budget(usize::MAX), 0);
        assert!(old.has_table());
        // A budget of one byte: only the most recently used keeps its table.
        assert_eq!(cache.enforce_budget(1), 1);
        assert!(!old.has_table() && old.heavy_bytes() == 0);
        assert!(new.has_table());
        let findings = |c: &Checked| {
            let a = c.analysis();
            a.as_ref()
                .as_ref()
                .map(|a| a.findings.len())
                .expect("analysis")
        };
        assert_eq!(findings(&old), before.1, "the findings stay");
        // Asked again, the shed object answers as before (and becomes the most recently used).
        assert_eq!(lines(&old), before);
        assert!(old.has_table());
        assert_eq!(cache.enforce_budget(1), 1);
        assert!(!new.has_table() && old.has_table());
    }

    /// Diagnostics come from the first stage of the analysis (without the per-instruction table, unless the
    /// same analysis already finished it); the table has the same findings and replaces the first stage (one
    /// copy in memory). A rewrite with the same bytes keeps both.
    #[test]
    fn the_per_instruction_table_is_built_on_request_and_shared() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = build_object(dir.path());
        let cache = ObjectCache::default();
        let s = settings(false);
        let c = cache.load(&path, &s).expect("load");
        let lean = c.analysis();
        let lean = lean.as_ref().as_ref().expect("analyses");
        // The same analysis goes on to build the table.
        let full = c.table();
        assert!(c.has_table());
        let full_ref = full.as_ref().as_ref().expect("analyses");
        assert!(!full_ref.insns.is_empty());
        let codes = |a: &Analysis| {
            a.findings
                .iter()
                .map(|f| f.message.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(lean), codes(full_ref));
        assert!(Arc::ptr_eq(&c.analysis(), &full));

        // Same bytes, new mtime: the analyses (and the table) are kept.
        let bytes = std::fs::read(&path).expect("read");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, &bytes).expect("rewrite");
        let again = cache.load(&path, &s).expect("load");
        assert_ne!(again.key.mtime, c.key.mtime);
        assert!(again.has_table());
        assert!(Arc::ptr_eq(&again.table(), &full));

        // With the unwind-table cross-checks the diagnostics' analysis has the table already.
        let eh = ObjectCache::default()
            .load(&path, &settings(true))
            .expect("load");
        let a = eh.analysis();
        assert!(!a.as_ref().as_ref().expect("analyses").insns.is_empty());
        assert!(Arc::ptr_eq(&eh.table(), &a));
    }

    #[test]
    fn newest_ticket_wins() {
        let g = Generations::default();
        let a = g.next("x");
        let b = g.next("x");
        assert!(!g.is_current(&a));
        assert!(g.is_current(&b));
        g.forget("x");
        assert!(!g.is_current(&b));
    }

    /// An object that does not parse is an error, never a panic; while it was written recently it is reported as
    /// unsettled (it may be half-written), once it has been left alone as an error.
    #[test]
    fn corrupt_object_is_an_error_once_settled_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("bad.o");
        std::fs::write(&p, b"\x7fELF garbage").expect("write");
        let cache = ObjectCache::default();
        let s = settings(false);
        match cache.load(&p, &s) {
            Err(LoadError::Unsettled(d)) => assert!(d <= ERROR_SETTLE, "{d:?}"),
            other => panic!("a fresh unparseable object is unsettled: {other:?}"),
        }
        age(&p, Duration::from_secs(10));
        let c = cache.load(&p, &s).expect("loaded");
        assert!(c.analysis().is_err());
        assert!(c.table().is_err());
        assert_eq!(
            cache.load(&dir.path().join("none.o"), &s).err(),
            Some(LoadError::Missing)
        );
    }

    /// A complete object is handed out at once, however recently it was written (after the short settle time).
    #[test]
    fn a_fresh_complete_object_is_not_held_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = build_object(dir.path());
        let t = std::time::Instant::now();
        let c = ObjectCache::default()
            .load(&path, &settings(false))
            .expect("load");
        assert!(c.analysis().is_ok());
        assert!(t.elapsed() < ERROR_SETTLE, "{:?}", t.elapsed());
    }
}
