//! Watching object files, `compile_commands.json` and `altcfi.toml` on disk with `notify`, for clients that do
//! not watch files for us (Neovim on Linux offers no `workspace/didChangeWatchedFiles` registration), and
//! debouncing bursts of events per path (a build rewrites an object in several writes).
//!
//! Architecture invariant: only reports paths that changed; deciding what to re-check is the adapter's job.

use notify::{RecursiveMode, Watcher as _};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
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

/// How long a path must be quiet (no event) before its change is handed on. Short: the object cache checks that
/// an object did not move while it was read and analysed and holds back results of objects that do not parse yet
/// ([`super::scheduler::SETTLE`], [`super::scheduler::ERROR_SETTLE`]), so this only has to group the events of one
/// write.
pub const QUIET: Duration = Duration::from_millis(5);

/// Groups the events of each path: a path is handed on once it has been quiet for [`QUIET`], on its own (a build
/// that keeps writing other objects in the same directory does not hold it back).
#[derive(Debug)]
pub struct Debouncer {
    quiet: Duration,
    /// Paths with events not handed on yet, and when each last had one.
    pending: HashMap<PathBuf, Instant>,
}

impl Default for Debouncer {
    fn default() -> Self {
        Debouncer::new(QUIET)
    }
}

impl Debouncer {
    /// A debouncer that hands on a path after `quiet` without events for it.
    pub fn new(quiet: Duration) -> Self {
        Debouncer {
            quiet,
            pending: HashMap::new(),
        }
    }

    /// Waits until at least one path has been quiet for the quiet time and returns every such path; `None` when the
    /// channel is closed and nothing is pending.
    pub async fn next_batch(
        &mut self,
        rx: &mut UnboundedReceiver<PathBuf>,
    ) -> Option<HashSet<PathBuf>> {
        loop {
            let Some(due) = self.pending.values().min().map(|t| *t + self.quiet) else {
                let p = rx.recv().await?;
                self.pending.insert(p, Instant::now());
                continue;
            };
            tokio::select! {
                event = rx.recv() => match event {
                    Some(p) => {
                        self.pending.insert(p, Instant::now());
                    }
                    // Closed: hand on what is left.
                    None => return Some(self.pending.drain().map(|(p, _)| p).collect()),
                },
                () = tokio::time::sleep_until(due.into()) => {
                    let now = Instant::now();
                    let ready: HashSet<PathBuf> = self
                        .pending
                        .iter()
                        .filter(|(_, t)| **t + self.quiet <= now)
                        .map(|(p, _)| p.clone())
                        .collect();
                    if !ready.is_empty() {
                        self.pending.retain(|p, _| !ready.contains(p));
                        return Some(ready);
                    }
                }
            }
        }
    }
}

/// Whether a changed path can change what altcfi shows.
pub fn is_relevant(path: &std::path::Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".o") || name == "compile_commands.json" || name == super::workspace::CONFIG_FILE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path is handed on once it is quiet, while another one that keeps changing is held back.
    #[tokio::test]
    async fn each_path_is_handed_on_when_it_is_quiet() {
        // Generous times, so that a loaded machine does not make the busy path look quiet.
        let quiet = Duration::from_millis(300);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let busy = PathBuf::from("/b/busy.o");
        let done = PathBuf::from("/b/done.o");
        let writer = tokio::spawn(async move {
            tx.send(done.clone()).expect("send");
            for _ in 0..20 {
                tx.send(busy.clone()).expect("send");
                tokio::time::sleep(quiet / 10).await;
            }
        });
        let mut d = Debouncer::new(quiet);
        let first = d.next_batch(&mut rx).await.expect("batch");
        assert_eq!(first, HashSet::from([PathBuf::from("/b/done.o")]));
        let second = d.next_batch(&mut rx).await.expect("batch");
        assert_eq!(second, HashSet::from([PathBuf::from("/b/busy.o")]));
        writer.await.expect("writer");
        assert!(d.next_batch(&mut rx).await.is_none());
    }
}
