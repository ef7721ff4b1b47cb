//! Running analyses off the async threads: the per-object cache, the per-document generation counter (the newest
//! request wins, older results are dropped), and [`blocking`] to move work onto tokio's blocking pool.
//!
//! Architecture invariant: no protocol types here. Reading an object that a build is rewriting never yields a
//! stale or half result: a read is retried while the file's size or mtime moves under it, and an object that still
//! cannot be analysed gives one error, never a panic.

use super::workspace::stat;
use altcfi_analysis::features::FeatureNames;
use altcfi_analysis::{analyze, Analysis, Options};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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

/// One version of an object and what the analysis made of it.
#[derive(Debug)]
pub struct Checked {
    /// Object path.
    pub path: PathBuf,
    /// Version.
    pub key: ObjectKey,
    /// Its bytes (the source mapping reads DWARF from them).
    pub data: Arc<Vec<u8>>,
    /// The analysis, or why the object could not be analysed.
    pub analysis: Arc<Result<Analysis, String>>,
    /// When the bytes were read (see [`RACY`]).
    pub read_at: SystemTime,
}

/// A cached read is trusted on size and mtime alone only if it was made at least this long after the file's
/// mtime. A file rewritten with the same size within one tick of the file system's timestamp clock (coarse on
/// many kernels and file systems) after it was read keeps its mtime, so such a "racily clean" entry is re-read and
/// compared byte for byte instead (the analysis is kept when the bytes are the same).
pub const RACY: Duration = Duration::from_secs(2);

/// Why no analysis is available for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file does not exist (not built yet).
    Missing,
    /// The file could not be read.
    Io(String),
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
}

/// Analyses keyed by object path and version.
#[derive(Default)]
pub struct ObjectCache {
    map: Mutex<HashMap<PathBuf, Arc<Checked>>>,
}

/// How often a read is retried while the file keeps changing under it.
const READ_ATTEMPTS: usize = 5;
/// Pause between attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(120);

fn content_hash(data: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

impl ObjectCache {
    /// Forgets every analysis (the settings changed).
    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The cached analysis of `path` if it is still the file on disk (same size and mtime).
    pub fn cached(&self, path: &Path) -> Option<Arc<Checked>> {
        let (size, mtime) = stat(path)?;
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(path)
            .filter(|c| {
                c.key.size == size
                    && c.key.mtime == mtime
                    && c.read_at.duration_since(mtime).is_ok_and(|d| d >= RACY)
            })
            .cloned()
    }

    /// The analysis of the object at `path` as it is now on disk. Blocking: call through [`blocking`].
    pub fn load(&self, path: &Path, settings: &Settings) -> Result<Arc<Checked>, LoadError> {
        let mut last: Option<Arc<Checked>> = None;
        for attempt in 0..READ_ATTEMPTS {
            let Some((size, mtime)) = stat(path) else {
                return Err(if path.exists() {
                    LoadError::Io(format!("{}: cannot stat", path.display()))
                } else {
                    LoadError::Missing
                });
            };
            if let Some(c) = self.cached(path) {
                return Ok(c);
            }
            let read_at = SystemTime::now();
            let data = match std::fs::read(path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(LoadError::Missing)
                }
                Err(e) => return Err(LoadError::Io(format!("{}: {e}", path.display()))),
            };
            if stat(path) != Some((size, mtime)) || data.len() as u64 != size {
                // Being written: wait for the writer.
                std::thread::sleep(RETRY_PAUSE);
                continue;
            }
            let hash = content_hash(&data);
            let key = ObjectKey { size, mtime, hash };
            let previous = self
                .map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(path)
                .cloned();
            let (data, analysis) = match previous {
                // Same bytes, new mtime: keep the analysis.
                Some(p) if p.key.hash == hash && p.key.size == size && *p.data == data => {
                    (p.data.clone(), p.analysis.clone())
                }
                _ => {
                    let analysis = Arc::new(analyze_bytes(&data, settings));
                    (Arc::new(data), analysis)
                }
            };
            let checked = Arc::new(Checked {
                path: path.to_path_buf(),
                key,
                data,
                analysis,
                read_at,
            });
            if checked.analysis.is_err() && attempt + 1 < READ_ATTEMPTS {
                // A half-written object often parses as garbage: look again shortly, unless it is settled.
                std::thread::sleep(RETRY_PAUSE);
                if stat(path) != Some((size, mtime)) {
                    last = Some(checked);
                    continue;
                }
            }
            self.map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(path.to_path_buf(), checked.clone());
            return Ok(checked);
        }
        match last {
            Some(c) => Ok(c),
            None => Err(LoadError::Io(format!(
                "{}: the file kept changing while it was read",
                path.display()
            ))),
        }
    }
}

fn analyze_bytes(data: &[u8], settings: &Settings) -> Result<Analysis, String> {
    let mut a = analyze(data, settings.options, &settings.features).map_err(|e| e.to_string())?;
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

    /// An object rewritten with the same size and mtime after it was read (a coarse timestamp clock) is not
    /// mistaken for the version in the cache.
    #[test]
    fn same_size_same_mtime_rewrite_is_not_served_from_the_cache() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.o");
        let settings = Settings {
            options: Options::default(),
            features: Arc::new(FeatureNames::default()),
            eh_frame: false,
        };
        let cache = ObjectCache::default();
        std::fs::write(&path, b"first version").expect("write");
        let mtime = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        let first = cache.load(&path, &settings).expect("load");
        assert_eq!(first.data.as_slice(), b"first version");
        std::fs::write(&path, b"other version").expect("rewrite");
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_modified(mtime).expect("set mtime");
        drop(f);
        let second = cache.load(&path, &settings).expect("load");
        assert_eq!(second.data.as_slice(), b"other version");
    }

    /// With `ehFrame`, a wrong `.cfi_*` directive is a finding of the same analysis the diagnostics come from.
    #[test]
    fn eh_frame_setting_adds_the_unwind_table_findings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/ehframe/push-no-adjust.S");
        let obj = dir.path().join("push-no-adjust.o");
        let status = std::process::Command::new("gcc")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .expect("run gcc");
        assert!(status.success(), "gcc failed on {}", src.display());
        let data = std::fs::read(&obj).expect("read object");
        let codes = |eh_frame| {
            let s = Settings {
                options: Options::default(),
                features: Arc::new(FeatureNames::default()),
                eh_frame,
            };
            let a = analyze_bytes(&data, &s).expect("analyses");
            a.findings.iter().map(|f| f.kind.code()).collect::<Vec<_>>()
        };
        assert!(!codes(false).contains(&"cfi-directive-mismatch"));
        assert!(
            codes(true).contains(&"cfi-directive-mismatch"),
            "{:?}",
            codes(true)
        );
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

    #[test]
    fn corrupt_object_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("bad.o");
        std::fs::write(&p, b"\x7fELF garbage").expect("write");
        let cache = ObjectCache::default();
        let s = Settings {
            options: Options::default(),
            features: Arc::new(FeatureNames::default()),
            eh_frame: false,
        };
        let c = cache.load(&p, &s).expect("loaded");
        assert!(c.analysis.is_err());
        assert_eq!(
            cache.load(&dir.path().join("none.o"), &s).err(),
            Some(LoadError::Missing)
        );
    }
}
