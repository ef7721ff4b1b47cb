//! Checking one open document: load (from the cache) each object that holds its code, decide whether the results
//! may be shown (the object exists, is readable, is not older than the source), and collect the diagnostics.
//!
//! Architecture invariant: blocking code, run on the blocking pool; it produces a [`DocView`] of plain data and
//! protocol values (or says why there is none to show yet, [`Outcome`]) and never talks to the client.

use super::convert;
use super::scheduler::{Checked, LoadError, ObjectCache, ObjectKey, Settings};
use super::workspace::{stat, FoundBy, Resolution};
use altcfi_analysis::sources::LineSummary;
use lsp_types::{CodeLens, Diagnostic, DiagnosticSeverity, NumberOrString, Position, Range};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What altcfi knows about one open document after a check.
#[derive(Debug, Default)]
pub struct DocView {
    /// How its objects were found (`None`: no object found).
    pub resolution: Option<Resolution>,
    /// The objects whose results are shown (present, analysable, not older than the source).
    pub objects: Vec<Arc<Checked>>,
    /// Every object looked at, with the version seen (`None`: missing or unreadable).
    pub seen: Vec<(PathBuf, Option<(u64, std::time::SystemTime)>)>,
    /// What to publish.
    pub diagnostics: Vec<Diagnostic>,
    /// Lines for the log.
    pub notes: Vec<String>,
    /// Per source line of the document, what it produced (for inlay hints); filled on first use.
    pub summaries: OnceLock<Vec<LineSummary>>,
    /// The code lenses; filled on first use.
    pub lenses: OnceLock<Vec<CodeLens>>,
}

impl DocView {
    /// What the view was computed from; equal fingerprints mean equal hints and lenses.
    pub fn fingerprint(&self) -> Vec<(PathBuf, Option<ObjectKey>)> {
        self.seen
            .iter()
            .map(|(p, _)| {
                let key = self.objects.iter().find(|c| &c.path == p).map(|c| c.key);
                (p.clone(), key)
            })
            .collect()
    }

    /// Whether an object changed on disk since the view was made (a cheap `stat` per object).
    pub fn outdated(&self) -> bool {
        self.seen.iter().any(|(p, key)| stat(p) != *key)
    }
}

/// The code of altcfi's own status diagnostics (not findings).
pub const STATUS_CODE: &str = "altcfi-status";

fn status(severity: DiagnosticSeverity, message: String) -> Diagnostic {
    Diagnostic {
        range: Range::new(Position::new(0, 0), Position::new(0, 0)),
        severity: Some(severity),
        code: Some(NumberOrString::String(STATUS_CODE.into())),
        source: Some("altcfi".into()),
        message,
        ..Default::default()
    }
}

/// What a check of a document came to.
#[derive(Debug)]
pub enum Outcome {
    /// The view to show.
    Ready(DocView),
    /// An object is being written ([`LoadError::Unsettled`]): show nothing new, look again after `retry_in`.
    Unsettled {
        /// The object.
        object: PathBuf,
        /// When to look again.
        retry_in: Duration,
    },
    /// A newer check of the document started: this one stopped, its result would not be shown.
    Stale,
}

/// Checks one document against the objects `resolution` names; `current` says whether the check is still wanted
/// (it stops early when not). Blocking.
pub fn check_document(
    cache: &ObjectCache,
    settings: &Settings,
    source: &Path,
    text: &convert::DocText,
    resolution: Option<Resolution>,
    related_information: bool,
    current: &dyn Fn() -> bool,
) -> Outcome {
    let mut view = DocView {
        resolution: resolution.clone(),
        ..DocView::default()
    };
    let Some(resolution) = resolution else {
        let why =
            "no compile_commands.json entry, no object's DWARF names it, no objectGlobs match";
        view.notes.push(format!(
            "{}: no object file found ({why})",
            source.display()
        ));
        // Said once, on the file itself, with what to do: the log alone goes unread.
        let what = match source.parent().and_then(crate::kbuild::source_tree_root) {
            Some(root) if crate::kbuild::build_dirs_of(&root).is_empty() => format!(
                "this kernel tree ({}) has no build directory altcfi can see: build it in the tree, or with                  `make O=DIR` with DIR beside or inside the tree (or set altcfi.buildDirs)",
                root.display()
            ),
            Some(_) => "build this file (`make path/to/file.o`); `make compile_commands.json` in the build \
                        directory helps headers and files included into others"
                .to_string(),
            None => "build it and write a compile_commands.json, or set altcfi.buildDirs / altcfi.objectGlobs"
                .to_string(),
        };
        view.diagnostics.push(status(
            DiagnosticSeverity::INFORMATION,
            format!("altcfi: no object file holds this file's code yet ({why}); {what}"),
        ));
        return Outcome::Ready(view);
    };
    let source_mtime = stat(source).map(|(_, m)| m);
    let lines = text.lines();
    for object in &resolution.objects {
        let shown = object.display();
        let kb = settings.kbuild.as_ref().map(|k| k.object(object));
        if let Some(why) = kb.as_ref().and_then(|k| k.not_validated()) {
            view.notes
                .push(format!("{shown}: not validated by kbuild ({why})"));
            view.diagnostics.push(status(
                DiagnosticSeverity::HINT,
                format!("altcfi: {shown} is not validated by kbuild ({why}); objtool never checks it, so neither does altcfi"),
            ));
            continue;
        }
        let loaded = cache.load(object, &settings.for_object(kb.as_ref()));
        if !current() {
            return Outcome::Stale;
        }
        match loaded {
            Err(LoadError::Unsettled(retry_in)) => {
                return Outcome::Unsettled {
                    object: object.clone(),
                    retry_in,
                }
            }
            Err(LoadError::Missing) => {
                view.seen.push((object.clone(), None));
                view.diagnostics.push(status(
                    DiagnosticSeverity::INFORMATION,
                    format!(
                        "altcfi: {shown} (from {}) does not exist yet; build it to check this file",
                        resolution.found_by
                    ),
                ));
            }
            Err(LoadError::Io(e)) => {
                view.seen.push((object.clone(), None));
                view.notes.push(e.clone());
                view.diagnostics.push(status(
                    DiagnosticSeverity::WARNING,
                    format!("altcfi: cannot read {e}"),
                ));
            }
            Ok(checked) => {
                view.seen
                    .push((object.clone(), Some((checked.key.size, checked.key.mtime))));
                let analysis = checked.analysis();
                match analysis.as_ref() {
                    Err(e) => {
                        view.notes.push(format!("{shown}: cannot analyse: {e}"));
                        view.diagnostics.push(status(
                            DiagnosticSeverity::WARNING,
                            format!("altcfi: cannot analyse {shown}: {e}"),
                        ));
                    }
                    Ok(_) if source_mtime.is_some_and(|s| checked.key.mtime < s) => {
                        view.diagnostics.push(status(
                            DiagnosticSeverity::INFORMATION,
                            format!(
                                "altcfi: {shown} is older than this file; rebuild it to re-check (its results are hidden until then)"
                            ),
                        ));
                    }
                    Ok(analysis) => {
                        let main_file = matches!(resolution.found_by, FoundBy::CompileCommands(_))
                            || object.file_stem() == source.file_stem();
                        let converted = convert::diagnostics(
                            analysis,
                            &checked.data,
                            source,
                            lines,
                            main_file,
                            related_information,
                        );
                        match converted {
                            Ok(d) => view.diagnostics.extend(d),
                            Err(e) => view.diagnostics.push(status(
                                DiagnosticSeverity::WARNING,
                                format!("altcfi: cannot read the source lines of {shown}: {e}"),
                            )),
                        }
                        view.objects.push(checked.clone());
                    }
                }
            }
        }
    }
    Outcome::Ready(view)
}

/// The diagnostic source of results computed from the unsaved buffer.
pub const UNSAVED_SOURCE: &str = "altcfi (unsaved)";

/// The code of the diagnostic that says the unsaved buffer does not compile.
pub const COMPILE_ERROR_CODE: &str = "compile-error";

/// What a live check of the unsaved buffer came to.
#[derive(Debug)]
pub enum LiveOutcome {
    /// The buffer compiled: the view of its object (diagnostics marked [`UNSAVED_SOURCE`]) and the compile's time.
    Ready(DocView, Duration),
    /// The buffer does not compile: one diagnostic at the first error.
    Failed(Diagnostic),
    /// No live result: the compile was refused, timed out or could not run (the message says which); the build's
    /// object is used.
    Unavailable(String),
    /// A newer check took over; the compile was killed.
    Cancelled,
}

/// Compiles the unsaved `text` of `source` with its compile command ([`crate::live::compile`]) and checks the
/// object as [`check_document`] checks the build's. Blocking.
#[allow(clippy::too_many_arguments)]
pub fn check_unsaved(
    settings: &Settings,
    source: &Path,
    text: &convert::DocText,
    resolution: Resolution,
    command: &crate::live::CompileCommand,
    policy: &crate::live::Policy,
    related_information: bool,
    current: &dyn Fn() -> bool,
) -> LiveOutcome {
    use crate::live::LiveError;
    let cancelled = || !current();
    let compiled = match crate::live::compile(command, text.text(), policy, &cancelled) {
        Ok(c) => c,
        Err(LiveError::Cancelled) => return LiveOutcome::Cancelled,
        Err(LiveError::Failed(first, stderr)) => {
            let (line, message) = match &first {
                Some(e) if super::workspace::same_file(&e.file, source) => (
                    e.line.saturating_sub(1),
                    format!("does not compile: {}", e.message),
                ),
                Some(e) => (
                    0,
                    format!(
                        "does not compile: {}:{}: {}",
                        e.file.display(),
                        e.line,
                        e.message
                    ),
                ),
                None => (
                    0,
                    format!(
                        "does not compile: {}",
                        stderr.lines().last().unwrap_or("the compiler failed")
                    ),
                ),
            };
            return LiveOutcome::Failed(Diagnostic {
                range: text.lines().range(line),
                severity: Some(DiagnosticSeverity::ERROR),
                code: Some(NumberOrString::String(COMPILE_ERROR_CODE.into())),
                source: Some(UNSAVED_SOURCE.into()),
                message,
                ..Default::default()
            });
        }
        Err(e) => return LiveOutcome::Unavailable(e.to_string()),
    };
    let elapsed = compiled.elapsed;
    eprintln!("altcfi lsp: live compile: {}", compiled.argv.join(" "));
    let object = resolution
        .objects
        .first()
        .cloned()
        .unwrap_or_else(|| source.with_extension("o"));
    let kb = settings.kbuild.as_ref().map(|k| k.object(&object));
    let checked = Checked::unsaved(
        object.clone(),
        compiled.object,
        &settings.for_object(kb.as_ref()),
    );
    let mut view = DocView {
        resolution: Some(resolution),
        ..DocView::default()
    };
    if !current() {
        return LiveOutcome::Cancelled;
    }
    let analysis = checked.analysis();
    match analysis.as_ref() {
        Err(e) => {
            return LiveOutcome::Unavailable(format!(
                "the object compiled from the unsaved text cannot be analysed: {e}"
            ))
        }
        Ok(a) => {
            match convert::diagnostics(
                a,
                &checked.data,
                source,
                text.lines(),
                true,
                related_information,
            ) {
                Ok(d) => view.diagnostics.extend(d.into_iter().map(|mut d| {
                    d.source = Some(UNSAVED_SOURCE.into());
                    d
                })),
                Err(e) => {
                    return LiveOutcome::Unavailable(format!(
                        "cannot read the source lines of the live object: {e}"
                    ))
                }
            }
        }
    }
    view.objects.push(checked);
    LiveOutcome::Ready(view, elapsed)
}
