//! Watching object files, `compile_commands.json` and `altcfi.toml` on disk with `notify`, for clients that do
//! not watch files for us (Neovim on Linux offers no `workspace/didChangeWatchedFiles` registration), and
//! debouncing bursts of events (a build rewrites an object in several writes).
//!
//! Architecture invariant: only reports paths that changed; deciding what to re-check is the adapter's job.

use notify::{RecursiveMode, Watcher as _};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// A directory watcher that sends every changed path to a channel.
pub struct DirWatcher {
    inner: notify::RecommendedWatcher,
    watched: HashSet<PathBuf>,
}

impl DirWatcher {
    /// A watcher sending changed paths to `tx`.
    pub fn new(tx: UnboundedSender<PathBuf>) -> notify::Result<Self> {
        let inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res {
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                for p in event.paths {
                    let _ = tx.send(p);
                }
            }
        })?;
        Ok(DirWatcher {
            inner,
            watched: HashSet::new(),
        })
    }

    /// Watches each of `dirs` (not recursively) that is not watched yet; returns the errors, one line each.
    pub fn watch_dirs(&mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Vec<String> {
        let mut errors = Vec::new();
        for d in dirs {
            if self.watched.contains(&d) || !d.is_dir() {
                continue;
            }
            match self.inner.watch(&d, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(d);
                }
                Err(e) => errors.push(format!("cannot watch {}: {e}", d.display())),
            }
        }
        errors
    }
}

/// How long the file system must be quiet before a batch of changes is handed on.
pub const QUIET: Duration = Duration::from_millis(150);

/// Waits for the next change and every change that follows it until the file system has been quiet for
/// [`QUIET`]; `None` when the channel is closed.
pub async fn next_batch(rx: &mut UnboundedReceiver<PathBuf>) -> Option<HashSet<PathBuf>> {
    let first = rx.recv().await?;
    let mut batch = HashSet::from([first]);
    loop {
        match tokio::time::timeout(QUIET, rx.recv()).await {
            Ok(Some(p)) => {
                batch.insert(p);
            }
            Ok(None) | Err(_) => return Some(batch),
        }
    }
}

/// Whether a changed path can change what altcfi shows.
pub fn is_relevant(path: &std::path::Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".o") || name == "compile_commands.json" || name == super::workspace::CONFIG_FILE
}
