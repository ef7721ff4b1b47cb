//! `altcfi lsp`: the language server over stdio, on tower-lsp 0.20 and tokio.
//!
//! This module is the adapter: the only place that imports `tower_lsp`. It keeps the per-document state, turns
//! protocol messages into calls on [`workspace`] (which objects), [`scheduler`] (analysis off the async threads,
//! newest request wins), [`check`] and [`convert`] (analysis → protocol data), [`watch`] (objects rewritten by
//! builds), [`edits`] (diagnostics moved with a document's edits), [`crate::live`] (the unsaved buffer compiled on
//! `didChange`) and [`crate::fix`] (checked quick fixes for code actions), and it works around tower-lsp's traps (`shared/reference/lsp-notes.md` §3):
//! - the process exits on `exit` and when stdin closes ([`ExitOnExit`], [`run`]);
//! - document state is changed before any `.await` in a handler;
//! - a notification handler never awaits a request to the client (those run in spawned tasks);
//! - analyses run on the blocking pool; each document has a generation counter and only the newest result is
//!   published.
//!
//! Architecture invariant: no analysis logic here, only conversion and scheduling.

pub mod check;
pub mod convert;
pub mod edits;
pub mod scheduler;
pub mod watch;
pub mod workspace;

use crate::kbuild::Kbuild;
use altcfi_analysis::features::FeatureNames;
use altcfi_analysis::Options;
use check::{DocView, Outcome};
use convert::DocText;
use scheduler::{blocking, Generations, ObjectCache, Settings};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tower_lsp::jsonrpc::{self, Request, Response};
use tower_lsp::lsp_types::notification::Progress;
use tower_lsp::lsp_types::request::WorkDoneProgressCreate;
use tower_lsp::lsp_types::*;
use tower_lsp::{Client, ExitedError, LanguageServer, LspService, Server};
use workspace::{Config, Resolution, Workspace};

/// Name of the custom request returning a function's per-instruction CFI/ORC table.
pub const CFI_TABLE_METHOD: &str = "altcfi/cfiTable";

/// The command (`workspace/executeCommand`) that checks every object of the build and publishes the findings for
/// source files that are not open.
pub const CHECK_BUILD_COMMAND: &str = "altcfi.checkBuild";

/// Name of the custom request returning what the server knows of a document: its kernel tree, build directories,
/// objects and the rules they are checked with (for an editor's status item).
pub const STATUS_METHOD: &str = "altcfi/status";

/// Runs the language server on stdin/stdout until `exit` or the end of stdin.
pub fn run() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (service, socket) = LspService::build(Backend::new)
            .custom_method(CFI_TABLE_METHOD, Backend::cfi_table)
            .custom_method(STATUS_METHOD, Backend::status)
            .finish();
        let service = ExitOnExit {
            inner: service,
            shutdown: Arc::new(AtomicBool::new(false)),
        };
        Server::new(tokio::io::stdin(), tokio::io::stdout(), socket)
            .serve(service)
            .await;
    });
    eprintln!("altcfi lsp: input closed, exiting");
    // Do not wait for background analyses: nobody is listening any more.
    std::process::exit(0)
}

/// Wraps the service so that the `exit` notification ends the process (tower-lsp 0.20 keeps serving after it,
/// tower-lsp#399), with status 0 after `shutdown` and 1 without, as the protocol asks.
struct ExitOnExit<S> {
    inner: S,
    shutdown: Arc<AtomicBool>,
}

impl<S> tower_service::Service<Request> for ExitOnExit<S>
where
    S: tower_service::Service<Request, Response = Option<Response>, Error = ExitedError>,
{
    type Response = Option<Response>;
    type Error = ExitedError;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match req.method() {
            "shutdown" => self.shutdown.store(true, Ordering::SeqCst),
            "exit" => {
                let code = if self.shutdown.load(Ordering::SeqCst) {
                    0
                } else {
                    1
                };
                eprintln!("altcfi lsp: exit");
                std::process::exit(code);
            }
            _ => {}
        }
        self.inner.call(req)
    }
}

/// Parameters of `altcfi/cfiTable`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CfiTableParams {
    /// The document.
    pub text_document: TextDocumentIdentifier,
    /// A position inside the function (optional).
    pub position: Option<Position>,
    /// The function's name (optional; wins over `position`).
    pub function: Option<String>,
}

/// Result of `altcfi/cfiTable`: a title and a plain-text table for a read-only view.
#[derive(Debug, Serialize)]
pub struct CfiTableResult {
    /// Title for the view (`save_fl_bad — demo.o`).
    pub title: String,
    /// The table.
    pub content: String,
}

/// Parameters of `altcfi/status`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusParams {
    /// The document.
    pub text_document: TextDocumentIdentifier,
}

/// Result of `altcfi/status`: a short line for a status item and the details for its tooltip.
#[derive(Debug, Serialize)]
pub struct StatusResult {
    /// `altcfi 6.12 · 1 object · 1 finding`, `altcfi: no object`.
    pub text: String,
    /// One line per fact: kernel tree, build directories, objects and how they were found, rules.
    pub details: String,
}

/// What the client said it can do, as far as the server cares.
#[derive(Debug, Default, Clone, Copy)]
struct ClientCaps {
    work_done_progress: bool,
    watch_registration: bool,
    related_information: bool,
    inlay_hint_refresh: bool,
    code_lens_refresh: bool,
}

/// One open document.
struct Doc {
    path: PathBuf,
    text: Arc<DocText>,
    version: i32,
    view: Option<Arc<DocView>>,
    /// The document version and diagnostics last published for it: a rebuild that changes nothing of this
    /// document's results publishes nothing (an edit of the document always publishes, for its new version).
    published: Option<(i32, Vec<Diagnostic>)>,
    /// Whether `view` was made from a live compile of the buffer ([`crate::live`]) rather than the build's object.
    live: bool,
    /// The checked quick fixes computed for (document version, 0-based line).
    fixes: HashMap<(i32, u32), Vec<CodeAction>>,
}

/// State shared by the handlers and the background tasks.
struct Inner {
    root: Mutex<Option<PathBuf>>,
    init_options: Mutex<Option<Value>>,
    config: Mutex<Config>,
    settings: Mutex<Settings>,
    caps: Mutex<ClientCaps>,
    docs: Mutex<HashMap<Url, Doc>>,
    workspace: Workspace,
    cache: ObjectCache,
    generations: Generations,
    index_lock: tokio::sync::Mutex<()>,
    /// Held from the last generation check to the end of a publication, so that results go out in the order of
    /// their generations (a newer check never publishes before an older one that already passed its check).
    publish_lock: tokio::sync::Mutex<()>,
    watcher: Mutex<Option<watch::DirWatcher>>,
    progress_tokens: AtomicU64,
    /// Files (not open) that the last "check the whole build" published diagnostics for: the next run clears the
    /// ones it no longer has findings for.
    build_published: Mutex<HashSet<Url>>,
    /// Why live mode gave no result, per file, as already logged (a refused command is said once, not per keystroke).
    live_warned: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long after the last `didChange` a live compile of the buffer starts.
const LIVE_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(100);

/// Most quick fixes offered for one conflict.
const MAX_FIXES: usize = 3;

/// Whether a check went live or falls back to the build's object.
enum LiveStep {
    /// The live result (or the compile error) was published, or a newer check took over.
    Done,
    /// No live result: check the build's object.
    UseObject,
}

/// The server: a client handle and the shared state.
#[derive(Clone)]
struct Backend {
    client: Client,
    inner: Arc<Inner>,
}

impl Backend {
    fn new(client: Client) -> Self {
        Backend {
            client,
            inner: Arc::new(Inner {
                root: Mutex::new(None),
                init_options: Mutex::new(None),
                config: Mutex::new(Config::default()),
                settings: Mutex::new(Settings {
                    options: Options::default(),
                    features: Arc::new(FeatureNames::default()),
                    eh_frame: false,
                    kbuild: Some(Arc::new(Kbuild::default())),
                }),
                caps: Mutex::new(ClientCaps::default()),
                docs: Mutex::new(HashMap::new()),
                workspace: Workspace::default(),
                cache: ObjectCache::default(),
                generations: Generations::default(),
                index_lock: tokio::sync::Mutex::new(()),
                publish_lock: tokio::sync::Mutex::new(()),
                watcher: Mutex::new(None),
                progress_tokens: AtomicU64::new(0),
                build_published: Mutex::new(HashSet::new()),
                live_warned: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Logs, without waiting, to the client (`window/logMessage`), and only there: clients that also show the
    /// server's stderr (VS Code's output channel) would print every line twice.
    fn log(&self, typ: MessageType, msg: String) {
        let client = self.client.clone();
        tokio::spawn(async move { client.log_message(typ, msg).await });
    }

    /// (Re)computes the configuration and analysis settings from `altcfi.toml` and the initialization options,
    /// and logs them.
    fn reload_config(&self) {
        let root = lock(&self.inner.root).clone();
        let init = lock(&self.inner.init_options).clone();
        let (config, warnings) = Config::load(root.as_deref(), init.as_ref());
        let mut warnings = warnings;
        let features = match config.cpufeatures_under(root.as_deref()) {
            Some(p) => match std::fs::read_to_string(&p) {
                Ok(text) => match FeatureNames::from_header(&text) {
                    Some(f) => f,
                    None => {
                        warnings.push(format!(
                            "{}: no X86_FEATURE definitions found; using the built-in 6.12 names",
                            p.display()
                        ));
                        FeatureNames::default()
                    }
                },
                Err(e) => {
                    warnings.push(format!(
                        "cpufeatures {}: {e}; using the built-in 6.12 names",
                        p.display()
                    ));
                    FeatureNames::default()
                }
            },
            None => FeatureNames::default(),
        };
        let settings = Settings {
            options: Options {
                era: config.kernel.era(),
                frame_pointer: config.frame_pointer,
                all_conflicts: true,
                ..Options::default()
            },
            features: Arc::new(features),
            eh_frame: config.eh_frame,
            kbuild: Some(Arc::new(Kbuild::default())),
        };
        for w in warnings {
            self.log(MessageType::WARNING, w);
        }
        let shown = serde_json::to_string(&config).unwrap_or_default();
        self.log(
            MessageType::INFO,
            format!(
                "configuration (defaults < initializationOptions < {}): {shown}; root {}",
                workspace::CONFIG_FILE,
                root.as_deref()
                    .map(|r| r.display().to_string())
                    .unwrap_or_else(|| "(none)".into())
            ),
        );
        *lock(&self.inner.config) = config;
        *lock(&self.inner.settings) = settings;
        self.inner.cache.clear();
    }

    /// Starts a check of one document; the newest check of a document wins.
    fn schedule(&self, uri: Url) {
        let ticket = self.inner.generations.next(uri.as_str());
        let this = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            if let Err(e) = this.check(&uri, ticket).await {
                this.log(MessageType::ERROR, format!("{uri}: {e}"));
            } else {
                eprintln!(
                    "altcfi lsp: checked {} in {} ms",
                    uri.path(),
                    started.elapsed().as_millis()
                );
            }
        });
    }

    fn schedule_all(&self) {
        let uris: Vec<Url> = lock(&self.inner.docs).keys().cloned().collect();
        for u in uris {
            self.schedule(u);
        }
    }

    async fn check(&self, uri: &Url, ticket: scheduler::Ticket) -> Result<(), String> {
        let Some((path, text)) = lock(&self.inner.docs)
            .get(uri)
            .map(|d| (d.path.clone(), d.text.clone()))
        else {
            return Ok(());
        };
        let resolution = self.resolve(&path).await?;
        if !self.inner.generations.is_current(&ticket) {
            return Ok(());
        }
        let related = lock(&self.inner.caps).related_information;
        if let Some(command) = self
            .live_command(uri, &path, &text, resolution.as_ref())
            .await
        {
            match self
                .check_live(uri, &ticket, &path, &text, resolution.clone(), command)
                .await
            {
                LiveStep::Done => return Ok(()),
                LiveStep::UseObject => {}
            }
        }
        // An object being written gives no result: keep what is shown and look again (a newer check, e.g. from
        // the watcher, supersedes this loop).
        let view = loop {
            let inner = self.inner.clone();
            let settings = lock(&inner.settings).clone();
            let (path, text, resolution, this_check) = (
                path.clone(),
                text.clone(),
                resolution.clone(),
                ticket.clone(),
            );
            let outcome = blocking(move || {
                let current = || inner.generations.is_current(&this_check);
                check::check_document(
                    &inner.cache,
                    &settings,
                    &path,
                    &text,
                    resolution,
                    related,
                    &current,
                )
            })
            .await?;
            match outcome {
                Outcome::Ready(view) => break view,
                Outcome::Stale => return Ok(()),
                Outcome::Unsettled { object, retry_in } => {
                    eprintln!(
                        "altcfi lsp: {} is being written; looking again in {} ms",
                        object.display(),
                        retry_in.as_millis()
                    );
                    tokio::time::sleep(retry_in).await;
                }
            }
            if !self.inner.generations.is_current(&ticket) {
                return Ok(());
            }
        };
        self.install_view(uri, &path, resolution.as_ref(), view, false, &ticket)
            .await;
        Ok(())
    }

    /// Makes `view` the document's view and publishes its diagnostics (unless a newer check started, or they are
    /// the ones already shown); `live`: it was made from the unsaved buffer.
    async fn install_view(
        &self,
        uri: &Url,
        path: &Path,
        resolution: Option<&Resolution>,
        view: DocView,
        live: bool,
        ticket: &scheduler::Ticket,
    ) {
        let publishing = self.inner.publish_lock.lock().await;
        if !self.inner.generations.is_current(ticket) {
            return;
        }
        for note in &view.notes {
            self.log(MessageType::INFO, note.clone());
        }
        self.watch_for(path, resolution);
        let diagnostics = view.diagnostics.clone();
        let (version, view, same) = {
            let mut docs = lock(&self.inner.docs);
            let Some(doc) = docs.get_mut(uri) else {
                return;
            };
            let previous = doc.view.as_ref().and_then(|v| v.resolution.clone());
            if view.resolution.is_some() && previous != view.resolution {
                if let Some(r) = &view.resolution {
                    let objects: Vec<String> =
                        r.objects.iter().map(|o| o.display().to_string()).collect();
                    self.log(
                        MessageType::INFO,
                        format!(
                            "{}: objects {} (found by {})",
                            path.display(),
                            objects.join(", "),
                            r.found_by
                        ),
                    );
                }
            }
            let changed =
                doc.live || doc.view.as_ref().map(|v| v.fingerprint()) != Some(view.fingerprint());
            let view = Arc::new(view);
            doc.view = Some(view.clone());
            doc.live = live;
            if changed {
                self.refresh_views();
            }
            let same = doc
                .published
                .as_ref()
                .is_some_and(|(v, d)| *v == doc.version && *d == diagnostics);
            doc.published = Some((doc.version, diagnostics.clone()));
            (doc.version, view, same)
        };
        if !same {
            self.client
                .publish_diagnostics(uri.clone(), diagnostics, Some(version))
                .await;
        }
        drop(publishing);
        self.build_tables(view, ticket.clone());
    }

    /// The compile command to run on the buffer, if live mode applies: it is on, the document has a compile
    /// command, and the buffer differs from the file on disk (or it did, its view is still the live one, and the
    /// build has not yet rewritten the object since the file was saved).
    async fn live_command(
        &self,
        uri: &Url,
        path: &Path,
        text: &Arc<DocText>,
        resolution: Option<&Resolution>,
    ) -> Option<Arc<crate::live::CompileCommand>> {
        let template = {
            let c = lock(&self.inner.config);
            if !c.live_enable {
                return None;
            }
            c.live_command.clone()
        };
        let resolution = resolution?;
        // The build's own command, else the `live.command` template (run in the workspace root).
        let command = match resolution.command.clone() {
            Some(c) => c,
            None if !template.is_empty() => {
                let root = lock(&self.inner.root).clone()?;
                Arc::new(crate::live::CompileCommand::from_template(
                    &template,
                    &root,
                    path,
                    resolution.objects.first().map(PathBuf::as_path),
                ))
            }
            None => return None,
        };
        let was_live = lock(&self.inner.docs).get(uri).is_some_and(|d| d.live);
        let (p, t, objects) = (path.to_path_buf(), text.clone(), resolution.objects.clone());
        let needed = blocking(move || {
            let differs = std::fs::read(&p).map_or(true, |disk| disk != t.text().as_bytes());
            differs
                || (was_live
                    && objects.iter().any(|o| {
                        let (Some((_, obj)), Some((_, src))) =
                            (workspace::stat(o), workspace::stat(&p))
                        else {
                            return true;
                        };
                        obj < src
                    }))
        })
        .await
        .unwrap_or(false);
        needed.then_some(command)
    }

    /// Checks the unsaved buffer through a live compile ([`check::check_unsaved`]) and publishes the result, with
    /// `$/progress` for `.c` files. [`LiveStep::UseObject`] when live mode gave no result (refused, timed out):
    /// the build's object is checked instead.
    async fn check_live(
        &self,
        uri: &Url,
        ticket: &scheduler::Ticket,
        path: &Path,
        text: &Arc<DocText>,
        resolution: Option<Resolution>,
        command: Arc<crate::live::CompileCommand>,
    ) -> LiveStep {
        let Some(resolution) = resolution else {
            return LiveStep::UseObject;
        };
        let policy = {
            let c = lock(&self.inner.config);
            crate::live::Policy {
                compilers: c.live_compilers.clone(),
                root: lock(&self.inner.root).clone(),
                timeout: std::time::Duration::from_millis(c.live_timeout_ms),
            }
        };
        let related = lock(&self.inner.caps).related_information;
        let progress = if path.extension().is_some_and(|e| e == "c") {
            self.begin_progress("altcfi: compiling the unsaved text", path)
                .await
        } else {
            None
        };
        let inner = self.inner.clone();
        let settings = lock(&inner.settings).clone();
        let (p, t, r, this_check) = (
            path.to_path_buf(),
            text.clone(),
            resolution.clone(),
            ticket.clone(),
        );
        let outcome = blocking(move || {
            let current = || inner.generations.is_current(&this_check);
            check::check_unsaved(&settings, &p, &t, r, &command, &policy, related, &current)
        })
        .await;
        if let Some(token) = progress {
            self.end_progress(token).await;
        }
        match outcome {
            Ok(check::LiveOutcome::Ready(view, elapsed)) => {
                eprintln!(
                    "altcfi lsp: compiled the unsaved {} in {} ms",
                    path.display(),
                    elapsed.as_millis()
                );
                self.install_view(uri, path, Some(&resolution), view, true, ticket)
                    .await;
                LiveStep::Done
            }
            Ok(check::LiveOutcome::Failed(error)) => {
                self.publish_compile_error(uri, error, ticket).await;
                LiveStep::Done
            }
            Ok(check::LiveOutcome::Cancelled) => LiveStep::Done,
            Ok(check::LiveOutcome::Unavailable(why)) => {
                let msg = format!(
                    "{}: live mode: {why}; showing the build's object",
                    path.display()
                );
                if lock(&self.inner.live_warned).insert(msg.clone()) {
                    self.log(MessageType::WARNING, msg);
                }
                LiveStep::UseObject
            }
            Err(e) => {
                self.log(MessageType::ERROR, format!("{}: {e}", path.display()));
                LiveStep::UseObject
            }
        }
    }

    /// Publishes the error of a buffer that does not compile, with the previous findings kept and marked stale.
    async fn publish_compile_error(
        &self,
        uri: &Url,
        error: Diagnostic,
        ticket: &scheduler::Ticket,
    ) {
        let _publishing = self.inner.publish_lock.lock().await;
        if !self.inner.generations.is_current(ticket) {
            return;
        }
        let published = {
            let mut docs = lock(&self.inner.docs);
            let Some(doc) = docs.get_mut(uri) else {
                return;
            };
            let mut diagnostics = vec![error];
            if let Some((_, previous)) = &doc.published {
                let compile_error = NumberOrString::String(check::COMPILE_ERROR_CODE.into());
                diagnostics.extend(
                    previous
                        .iter()
                        .filter(|d| d.code.as_ref() != Some(&compile_error))
                        .map(edits::mark_stale),
                );
            }
            doc.published = Some((doc.version, diagnostics.clone()));
            (doc.version, diagnostics)
        };
        self.client
            .publish_diagnostics(uri.clone(), published.1, Some(published.0))
            .await;
    }

    /// The checked quick fixes ([`crate::fix`]) for the conflict `diagnostic` on 0-based `line`, computed once per
    /// document version and line; `None` without a compile command.
    async fn fixes_for(
        &self,
        uri: &Url,
        line: u32,
        diagnostic: Diagnostic,
    ) -> Option<Vec<CodeAction>> {
        let (path, text, version, resolution) = {
            let docs = lock(&self.inner.docs);
            let doc = docs.get(uri)?;
            if let Some(found) = doc.fixes.get(&(doc.version, line)) {
                return Some(found.clone());
            }
            let resolution = doc.view.as_ref()?.resolution.clone()?;
            (doc.path.clone(), doc.text.clone(), doc.version, resolution)
        };
        let command = resolution.command.clone()?;
        let object = resolution.objects.first().cloned()?;
        let policy = {
            let c = lock(&self.inner.config);
            crate::live::Policy {
                compilers: c.live_compilers.clone(),
                root: lock(&self.inner.root).clone(),
                timeout: std::time::Duration::from_millis(c.live_timeout_ms),
            }
        };
        let settings = lock(&self.inner.settings).clone();
        let inner = self.inner.clone();
        let (u, t) = (uri.clone(), text.clone());
        let started = Instant::now();
        let found = blocking(move || {
            let kb = settings.kbuild.as_ref().map(|k| k.object(&object));
            let s = settings.for_object(kb.as_ref());
            let with = crate::fix::CheckWith {
                command: &command,
                policy: &policy,
                options: s.options,
                features: &s.features,
            };
            let edited = || lock(&inner.docs).get(&u).map(|d| d.version) != Some(version);
            crate::fix::checked_fixes(t.text(), line, &with, MAX_FIXES, &edited)
        })
        .await;
        let fixes = match found {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                self.log(
                    MessageType::INFO,
                    format!("{}:{}: no quick fix: {e}", path.display(), line + 1),
                );
                Vec::new()
            }
            Err(e) => {
                self.log(MessageType::ERROR, e);
                return None;
            }
        };
        eprintln!(
            "altcfi lsp: {} checked fixes for {}:{} in {} ms",
            fixes.len(),
            path.display(),
            line + 1,
            started.elapsed().as_millis()
        );
        let range = text.lines().range(line);
        let actions: Vec<CodeAction> = fixes
            .into_iter()
            .enumerate()
            .map(|(i, f)| CodeAction {
                title: f.title,
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![diagnostic.clone()]),
                edit: Some(WorkspaceEdit {
                    changes: Some(HashMap::from([(
                        uri.clone(),
                        vec![TextEdit {
                            range,
                            new_text: f.candidate.new_line,
                        }],
                    )])),
                    ..Default::default()
                }),
                is_preferred: Some(i == 0),
                ..Default::default()
            })
            .collect();
        let mut docs = lock(&self.inner.docs);
        let doc = docs.get_mut(uri)?;
        if doc.version == version {
            doc.fixes.retain(|(v, _), _| *v == version);
            doc.fixes.insert((version, line), actions.clone());
        }
        Some(actions)
    }

    /// Starts a `$/progress` report (clients that advertise `window.workDoneProgress`); `None` otherwise.
    async fn begin_progress(&self, title: &str, path: &Path) -> Option<NumberOrString> {
        if !lock(&self.inner.caps).work_done_progress {
            return None;
        }
        let token = NumberOrString::String(format!(
            "altcfi/live/{}",
            self.inner.progress_tokens.fetch_add(1, Ordering::Relaxed)
        ));
        self.client
            .send_request::<WorkDoneProgressCreate>(WorkDoneProgressCreateParams {
                token: token.clone(),
            })
            .await
            .ok()?;
        self.client
            .send_notification::<Progress>(ProgressParams {
                token: token.clone(),
                value: ProgressParamsValue::WorkDone(WorkDoneProgress::Begin(
                    WorkDoneProgressBegin {
                        title: title.into(),
                        cancellable: Some(false),
                        message: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                        percentage: None,
                    },
                )),
            })
            .await;
        Some(token)
    }

    /// Ends a `$/progress` report.
    async fn end_progress(&self, token: NumberOrString) {
        self.client
            .send_notification::<Progress>(ProgressParams {
                token,
                value: ProgressParamsValue::WorkDone(WorkDoneProgress::End(WorkDoneProgressEnd {
                    message: None,
                })),
            })
            .await;
    }

    /// Builds the per-instruction tables of a view's objects in the background, after its diagnostics are out, so
    /// that hover, inlay hints and `altcfi/cfiTable` find them ready (a request that comes first builds it, and one
    /// that comes meanwhile waits for this build). Skipped if a newer check of the document started.
    fn build_tables(&self, view: Arc<DocView>, ticket: scheduler::Ticket) {
        if view.objects.iter().all(|c| c.has_table()) {
            return;
        }
        let inner = self.inner.clone();
        let budget = lock(&self.inner.config).memory_budget_mib;
        tokio::spawn(blocking(move || {
            for c in &view.objects {
                if !inner.generations.is_current(&ticket) {
                    return;
                }
                if !c.has_table() {
                    let started = Instant::now();
                    c.table();
                    eprintln!(
                        "altcfi lsp: per-instruction table of {} in {} ms",
                        c.path.display(),
                        started.elapsed().as_millis()
                    );
                }
            }
            within_budget(&inner, budget);
        }));
    }

    /// Keeps the tables and source indexes of the cached objects within the `memoryBudgetMiB` setting (in the
    /// background, after a request that used them).
    fn keep_budget(&self) {
        let budget = lock(&self.inner.config).memory_budget_mib;
        let inner = self.inner.clone();
        tokio::spawn(blocking(move || within_budget(&inner, budget)));
    }

    /// Asks the client to re-query inlay hints and code lenses (in the background; never awaited by a handler).
    fn refresh_views(&self) {
        let caps = *lock(&self.inner.caps);
        let client = self.client.clone();
        tokio::spawn(async move {
            if caps.inlay_hint_refresh {
                let _ = client.inlay_hint_refresh().await;
            }
            if caps.code_lens_refresh {
                let _ = client.code_lens_refresh().await;
            }
        });
    }

    /// The objects of a source file: compilation database, else the DWARF index, else the configuration.
    async fn resolve(&self, path: &Path) -> Result<Option<Resolution>, String> {
        let root = lock(&self.inner.root).clone();
        let config = lock(&self.inner.config).clone();
        let inner = self.inner.clone();
        let (p, r, c) = (path.to_path_buf(), root.clone(), config.clone());
        let (found, refused) = blocking(move || {
            let mut refused = Vec::new();
            let found = inner
                .workspace
                .by_compile_commands(&p, r.as_deref(), &c, &mut refused);
            (found, refused)
        })
        .await?;
        for msg in refused {
            self.log(MessageType::WARNING, msg);
        }
        if found.is_some() {
            return Ok(found);
        }
        let inner = self.inner.clone();
        let p = path.to_path_buf();
        if let Some(found) = blocking(move || inner.workspace.by_kbuild_layout(&p)).await? {
            return Ok(Some(found));
        }
        let Some(root) = root else {
            return Ok(None);
        };
        self.ensure_index(&root, &config).await?;
        let inner = self.inner.clone();
        let p = path.to_path_buf();
        blocking(move || {
            inner
                .workspace
                .by_index(&p)
                .or_else(|| inner.workspace.by_config(&p, &root, &config))
        })
        .await
    }

    /// Builds or refreshes the DWARF index of the workspace's objects, with `$/progress`; one at a time.
    async fn ensure_index(&self, root: &Path, config: &Config) -> Result<(), String> {
        if !self.inner.workspace.index_needs_refresh() {
            return Ok(());
        }
        let _guard = self.inner.index_lock.lock().await;
        if !self.inner.workspace.index_needs_refresh() {
            return Ok(());
        }
        let first = !self.inner.workspace.index_built();
        let started = Instant::now();
        let token = NumberOrString::String(format!(
            "altcfi/index/{}",
            self.inner.progress_tokens.fetch_add(1, Ordering::Relaxed)
        ));
        let progress = lock(&self.inner.caps).work_done_progress
            && self
                .client
                .send_request::<WorkDoneProgressCreate>(WorkDoneProgressCreateParams {
                    token: token.clone(),
                })
                .await
                .is_ok();
        let send = |value: WorkDoneProgress| {
            let client = self.client.clone();
            let token = token.clone();
            async move {
                client
                    .send_notification::<Progress>(ProgressParams {
                        token,
                        value: ProgressParamsValue::WorkDone(value),
                    })
                    .await;
            }
        };
        if progress {
            send(WorkDoneProgress::Begin(WorkDoneProgressBegin {
                title: "altcfi: indexing objects".into(),
                cancellable: Some(false),
                message: Some(root.display().to_string()),
                percentage: Some(0),
            }))
            .await;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, usize)>();
        let inner = self.inner.clone();
        let (r, c) = (root.to_path_buf(), config.clone());
        let job = blocking(move || {
            inner.workspace.refresh_index(&r, &c, &mut |done, total| {
                let _ = tx.send((done, total));
            })
        });
        tokio::pin!(job);
        let count = loop {
            tokio::select! {
                res = &mut job => break res?,
                Some((done, total)) = rx.recv() => {
                    if progress {
                        send(WorkDoneProgress::Report(WorkDoneProgressReport {
                            cancellable: Some(false),
                            message: Some(format!("{done}/{total} objects")),
                            percentage: Some((done * 100).checked_div(total).unwrap_or(100) as u32),
                        }))
                        .await;
                    }
                }
            }
        };
        if progress {
            send(WorkDoneProgress::End(WorkDoneProgressEnd {
                message: Some(format!("{count} objects")),
            }))
            .await;
        }
        if first {
            self.log(
                MessageType::INFO,
                format!(
                    "indexed {count} objects under {} in {} ms",
                    root.display(),
                    started.elapsed().as_millis()
                ),
            );
        }
        Ok(())
    }

    /// Watches the directories of a document's objects and compilation databases (our own watcher, when the
    /// client does not watch files, or for directories outside the workspace).
    fn watch_for(&self, source: &Path, resolution: Option<&Resolution>) {
        let root = lock(&self.inner.root).clone();
        let client_watches = lock(&self.inner.caps).watch_registration;
        let config = lock(&self.inner.config).clone();
        let mut dirs: HashSet<PathBuf> = HashSet::new();
        if let Some(r) = resolution {
            for o in &r.objects {
                if let Some(d) = o.parent() {
                    dirs.insert(d.to_path_buf());
                }
            }
        }
        let kernel = self.inner.workspace.kernel_of(source);
        for db in
            Workspace::compile_db_candidates(source, root.as_deref(), &config, kernel.as_ref())
        {
            if let Some(d) = db.parent() {
                if d.is_dir() && root.as_ref().is_none_or(|r| d.starts_with(r)) {
                    dirs.insert(d.to_path_buf());
                }
            }
        }
        if let Some(r) = &root {
            dirs.insert(r.clone());
            dirs.extend(config.build_dirs_under(r));
        }
        if client_watches {
            dirs.retain(|d| root.as_ref().is_some_and(|r| !d.starts_with(r)));
        }
        let errors = match lock(&self.inner.watcher).as_mut() {
            Some(w) => w.watch_dirs(dirs),
            None => Vec::new(),
        };
        for e in errors {
            self.log(MessageType::WARNING, e);
        }
    }

    /// Files changed on disk (our watcher or the client's): re-check what they can affect.
    fn files_changed(&self, paths: impl IntoIterator<Item = PathBuf>) {
        let mut relevant = false;
        let mut config_changed = false;
        let open: Vec<PathBuf> = lock(&self.inner.docs)
            .values()
            .map(|d| d.path.clone())
            .collect();
        for p in paths {
            if p.file_name().and_then(|n| n.to_str()) == Some(workspace::CONFIG_FILE) {
                config_changed = true;
            }
            if p.extension().is_some_and(|e| e == "o") {
                self.inner.workspace.index_dirty();
            }
            relevant |= watch::is_relevant(&p) || open.iter().any(|o| o == &p);
        }
        if config_changed {
            self.reload_config();
        }
        if relevant || config_changed {
            self.schedule_all();
        }
    }

    /// The document's current view; schedules a re-check if an object changed on disk since it was made.
    fn view(&self, uri: &Url) -> Option<(Arc<DocView>, PathBuf, Arc<DocText>)> {
        let docs = lock(&self.inner.docs);
        let doc = docs.get(uri)?;
        let view = doc.view.clone()?;
        let out = (view.clone(), doc.path.clone(), doc.text.clone());
        drop(docs);
        if view.outdated() {
            self.schedule(uri.clone());
        }
        Some(out)
    }

    /// "Check the whole build": every object of the workspace's build (the kernel tree's build directories, else
    /// the root and `buildDirs`) that kbuild validates is analysed, and the findings are published on the source
    /// files that are not open (open ones keep their own diagnostics). Returns the summary.
    async fn check_build(&self) -> String {
        let root = lock(&self.inner.root).clone();
        let config = lock(&self.inner.config).clone();
        let settings = lock(&self.inner.settings).clone();
        let related = lock(&self.inner.caps).related_information;
        let open: HashSet<PathBuf> = lock(&self.inner.docs)
            .values()
            .map(|d| d.path.clone())
            .collect();
        let started = Instant::now();
        let result = blocking(move || {
            check_build_blocking(root.as_deref(), &config, &settings, related, &open)
        })
        .await;
        let Ok((per_file, checked, skipped, failed)) = result else {
            return "altcfi: the build check failed".into();
        };
        let mut published = HashSet::new();
        let mut findings = 0;
        for (file, diagnostics) in per_file {
            let Ok(uri) = Url::from_file_path(&file) else {
                continue;
            };
            findings += diagnostics.len();
            published.insert(uri.clone());
            self.client
                .publish_diagnostics(uri, diagnostics, None)
                .await;
        }
        let stale: Vec<Url> = {
            let mut previous = lock(&self.inner.build_published);
            let stale = previous.difference(&published).cloned().collect();
            *previous = published.clone();
            stale
        };
        for uri in stale {
            self.client.publish_diagnostics(uri, Vec::new(), None).await;
        }
        format!(
            "altcfi: checked {checked} objects of the build in {:.1} s: {findings} diagnostics in {} files that are not \
             open; {skipped} objects not validated by kbuild, {failed} could not be read",
            started.elapsed().as_secs_f64(),
            published.len()
        )
    }

    /// `altcfi/status`: the kernel tree, build directories, objects and rules of an open document.
    async fn status(&self, params: StatusParams) -> jsonrpc::Result<Option<StatusResult>> {
        let uri = params.text_document.uri;
        let (path, view) = {
            let docs = lock(&self.inner.docs);
            let Some(doc) = docs.get(&uri) else {
                return Ok(None);
            };
            (doc.path.clone(), doc.view.clone())
        };
        let inner = self.inner.clone();
        let kbuild = lock(&self.inner.settings).kbuild.clone();
        let result = blocking(move || {
            let mut details = vec![format!("file: {}", path.display())];
            match inner.workspace.kernel_of(&path) {
                Some(k) => {
                    details.push(format!("kernel tree: {}", k.root.display()));
                    if k.builds.is_empty() {
                        details.push("build directories: none found (build in the tree or with make O=DIR beside it, or set buildDirs)".into());
                    }
                    for b in &k.builds {
                        details.push(format!("build directory: {}", b.display()));
                    }
                }
                None => details.push("kernel tree: none (not in a Linux source tree)".into()),
            }
            let Some(view) = view else {
                details.push("not checked yet".into());
                return StatusResult {
                    text: "altcfi: …".into(),
                    details: details.join("\n"),
                };
            };
            let mut era = None;
            match &view.resolution {
                None => details.push("objects: none found".into()),
                Some(r) => {
                    for o in &r.objects {
                        details.push(format!("object: {} (found by {})", o.display(), r.found_by));
                        if let Some(kb) = &kbuild {
                            let ctx = kb.object(o);
                            if let Some(why) = ctx.not_validated() {
                                details.push(format!("  not validated by kbuild: {why}"));
                            } else if let Some(a) = ctx.objtool_args() {
                                details.push(format!(
                                    "  objtool arguments: {} (from {})",
                                    a.to_args().join(" "),
                                    ctx.args_source()
                                ));
                            }
                            if let Some((e, from)) = ctx.tree.as_ref().and_then(|t| t.era()) {
                                details.push(format!("  rules: {} (from {from})", e.name()));
                            }
                        }
                    }
                }
            }
            let mut findings = 0;
            for c in &view.objects {
                if let Ok(a) = c.analysis().as_ref() {
                    era = Some(a.era);
                    findings += a.findings.len();
                    if let altcfi_analysis::EraSource::Object(why) = a.era_source {
                        details.push(format!("  {}: rules {} from {why}", c.path.display(), a.era.name()));
                    }
                }
            }
            details.extend(view.notes.iter().map(|n| format!("note: {n}")));
            let text = match (&view.resolution, era) {
                (None, _) => "altcfi: no object".to_string(),
                (Some(r), Some(e)) => format!(
                    "altcfi {} · {} object{} · {findings} finding{}",
                    e.name(),
                    r.objects.len(),
                    if r.objects.len() == 1 { "" } else { "s" },
                    if findings == 1 { "" } else { "s" }
                ),
                (Some(_), None) => "altcfi: object not analysed".to_string(),
            };
            StatusResult {
                text,
                details: details.join("\n"),
            }
        })
        .await
        .map_err(internal_error)?;
        Ok(Some(result))
    }

    async fn cfi_table(&self, params: CfiTableParams) -> jsonrpc::Result<Option<CfiTableResult>> {
        let uri = params.text_document.uri;
        let Some((view, path, _)) = self.view(&uri) else {
            return Ok(None);
        };
        let line = params.position.map(|p| p.line + 1);
        let function = params.function;
        let res = blocking(move || convert::cfi_table(&view, &path, line, function.as_deref()))
            .await
            .map_err(internal_error)?;
        self.keep_budget();
        Ok(res.map(|(title, content)| CfiTableResult { title, content }))
    }
}

/// A JSON-RPC internal error for a custom request whose background work failed.
/// Keeps the cached objects' tables and source indexes within `mib` MiB ([`scheduler::ObjectCache::enforce_budget`]).
/// Blocking.
fn within_budget(inner: &Inner, mib: u64) {
    let bytes = usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let shed = inner.cache.enforce_budget(bytes);
    if shed > 0 {
        eprintln!("altcfi lsp: memory budget {mib} MiB: let the tables of {shed} least recently used objects go");
    }
}

fn internal_error(message: String) -> jsonrpc::Error {
    jsonrpc::Error {
        code: jsonrpc::ErrorCode::InternalError,
        message: message.into(),
        data: None,
    }
}

/// The blocking part of [`Backend::check_build`]: (diagnostics per source file, objects checked, not validated,
/// unreadable).
fn check_build_blocking(
    root: Option<&Path>,
    config: &Config,
    settings: &Settings,
    related: bool,
    open: &HashSet<PathBuf>,
) -> (
    std::collections::BTreeMap<PathBuf, Vec<Diagnostic>>,
    usize,
    usize,
    usize,
) {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(r) = root {
        if let Some(tree) = crate::kbuild::source_tree_root(r) {
            dirs.extend(crate::kbuild::build_dirs_of(&tree));
        }
        if dirs.is_empty() {
            dirs.push(r.to_path_buf());
            dirs.extend(config.build_dirs_under(r));
        }
    }
    let mut per_file: std::collections::BTreeMap<PathBuf, Vec<Diagnostic>> = Default::default();
    let (mut checked, mut skipped, mut failed) = (0, 0, 0);
    let mut seen = HashSet::new();
    for dir in dirs {
        for obj in crate::kbuild::objects_under(&dir).0 {
            if !seen.insert(obj.clone()) {
                continue;
            }
            let kb = settings.kbuild.as_ref().map(|k| k.object(&obj));
            if kb.as_ref().is_some_and(|k| k.not_validated().is_some()) {
                skipped += 1;
                continue;
            }
            let s = settings.for_object(kb.as_ref());
            let Ok(data) = std::fs::read(&obj) else {
                failed += 1;
                continue;
            };
            let Ok(a) = altcfi_analysis::analyze_lean(&data, s.options, &s.features) else {
                failed += 1;
                continue;
            };
            checked += 1;
            if a.findings.is_empty() {
                continue;
            }
            let Ok(sources) = altcfi_analysis::sources::Sources::new(&a, &data) else {
                continue;
            };
            let files: std::collections::BTreeSet<PathBuf> = a
                .findings
                .iter()
                .filter_map(|f| sources.for_finding(f).primary.map(|p| p.path))
                .collect();
            for file in files {
                if open.contains(&workspace::canonical(&file)) {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&file) else {
                    continue;
                };
                let lines = convert::LineTable::new(&text);
                let main = file.file_stem() == obj.file_stem();
                if let Ok(d) = convert::diagnostics(&a, &data, &file, &lines, main, related) {
                    per_file.entry(file).or_default().extend(d);
                }
            }
        }
    }
    (per_file, checked, skipped, failed)
}

fn file_path(uri: &Url) -> Option<PathBuf> {
    if uri.scheme() != "file" {
        return None;
    }
    uri.to_file_path().ok()
}

#[tower_lsp::async_trait]
impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        let root = params
            .workspace_folders
            .as_ref()
            .and_then(|f| f.first())
            .and_then(|f| file_path(&f.uri))
            .or_else(|| params.root_uri.as_ref().and_then(file_path));
        #[allow(deprecated)]
        let root = root.or_else(|| params.root_path.as_ref().map(PathBuf::from));
        *lock(&self.inner.root) = root.map(|r| workspace::canonical(&r));
        *lock(&self.inner.init_options) = params.initialization_options.clone();
        let c = &params.capabilities;
        let caps = ClientCaps {
            work_done_progress: c
                .window
                .as_ref()
                .and_then(|w| w.work_done_progress)
                .unwrap_or(false),
            watch_registration: c
                .workspace
                .as_ref()
                .and_then(|w| w.did_change_watched_files.as_ref())
                .and_then(|d| d.dynamic_registration)
                .unwrap_or(false),
            related_information: c
                .text_document
                .as_ref()
                .and_then(|t| t.publish_diagnostics.as_ref())
                .and_then(|p| p.related_information)
                .unwrap_or(false),
            inlay_hint_refresh: c
                .workspace
                .as_ref()
                .and_then(|w| w.inlay_hint.as_ref())
                .and_then(|i| i.refresh_support)
                .unwrap_or(false),
            code_lens_refresh: c
                .workspace
                .as_ref()
                .and_then(|w| w.code_lens.as_ref())
                .and_then(|i| i.refresh_support)
                .unwrap_or(false),
        };
        *lock(&self.inner.caps) = caps;
        self.reload_config();
        Ok(InitializeResult {
            server_info: Some(ServerInfo {
                name: "altcfi".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Options(
                    TextDocumentSyncOptions {
                        open_close: Some(true),
                        change: Some(TextDocumentSyncKind::FULL),
                        save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                        ..Default::default()
                    },
                )),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                code_action_provider: Some(CodeActionProviderCapability::Options(
                    CodeActionOptions {
                        code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
                        ..Default::default()
                    },
                )),
                inlay_hint_provider: Some(OneOf::Left(true)),
                code_lens_provider: Some(CodeLensOptions {
                    resolve_provider: Some(false),
                }),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: vec![CHECK_BUILD_COMMAND.into()],
                    work_done_progress_options: WorkDoneProgressOptions::default(),
                }),
                experimental: Some(serde_json::json!({
                    "cfiTable": CFI_TABLE_METHOD,
                    "status": STATUS_METHOD,
                })),
                ..Default::default()
            },
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        let caps = *lock(&self.inner.caps);
        if caps.watch_registration {
            let client = self.client.clone();
            let this = self.clone();
            tokio::spawn(async move {
                let watchers = ["**/*.o", "**/compile_commands.json", "**/altcfi.toml"]
                    .iter()
                    .map(|g| FileSystemWatcher {
                        glob_pattern: GlobPattern::String((*g).into()),
                        kind: None,
                    })
                    .collect();
                let reg = Registration {
                    id: "altcfi-watch".into(),
                    method: "workspace/didChangeWatchedFiles".into(),
                    register_options: serde_json::to_value(
                        DidChangeWatchedFilesRegistrationOptions { watchers },
                    )
                    .ok(),
                };
                if let Err(e) = client.register_capability(vec![reg]).await {
                    this.log(
                        MessageType::WARNING,
                        format!("file watch registration failed ({e}); watching with notify"),
                    );
                    lock(&this.inner.caps).watch_registration = false;
                }
            });
        }
        // Our own watcher: always created (the client only sees files inside the workspace).
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        match watch::DirWatcher::new(tx) {
            Ok(w) => {
                *lock(&self.inner.watcher) = Some(w);
                let this = self.clone();
                tokio::spawn(async move {
                    let mut debouncer = watch::Debouncer::default();
                    while let Some(batch) = debouncer.next_batch(&mut rx).await {
                        this.files_changed(batch);
                    }
                });
            }
            Err(e) => self.log(
                MessageType::WARNING,
                format!("cannot watch files ({e}); objects are re-read on open, save and hover"),
            ),
        }
        self.log(
            MessageType::INFO,
            format!(
                "file watching: {}",
                if caps.watch_registration {
                    "client (workspace/didChangeWatchedFiles) + notify outside the workspace"
                } else {
                    "notify"
                }
            ),
        );
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        let Some(path) = file_path(&doc.uri) else {
            return;
        };
        lock(&self.inner.docs).insert(
            doc.uri.clone(),
            Doc {
                path: workspace::canonical(&path),
                text: Arc::new(DocText::new(doc.text)),
                version: doc.version,
                view: None,
                published: None,
                live: false,
                fixes: HashMap::new(),
            },
        );
        self.schedule(doc.uri);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let uri = params.text_document.uri;
        let shift = {
            let mut docs = lock(&self.inner.docs);
            let Some(doc) = docs.get_mut(&uri) else {
                return;
            };
            doc.version = params.text_document.version;
            let Some(change) = params.content_changes.into_iter().last() else {
                return;
            };
            let old = std::mem::replace(&mut doc.text, Arc::new(DocText::new(change.text)));
            edits::LineShift::between(old.text(), doc.text.text())
        };
        // Supersede any check of the older text, then move what is shown with the edit while the new results are
        // computed (after any publication already under way, whose diagnostics are for the older text too).
        let live = lock(&self.inner.config).live_enable;
        // (Without live mode nothing is re-checked on a change: a check under way stays current.)
        let ticket = live.then(|| self.inner.generations.next(uri.as_str()));
        if !shift.is_identity() {
            let _publishing = self.inner.publish_lock.lock().await;
            let moved = {
                let mut docs = lock(&self.inner.docs);
                docs.get_mut(&uri).and_then(|doc| {
                    let (v, d) = doc.published.as_mut()?;
                    let moved: Vec<Diagnostic> =
                        d.iter().map(|x| shift.diagnostic(x, &uri)).collect();
                    *v = doc.version;
                    if moved == *d {
                        return None;
                    }
                    *d = moved;
                    Some((doc.version, d.clone()))
                })
            };
            if let Some((version, diagnostics)) = moved {
                self.client
                    .publish_diagnostics(uri.clone(), diagnostics, Some(version))
                    .await;
            }
        }
        if let Some(ticket) = ticket {
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(LIVE_DEBOUNCE).await;
                if this.inner.generations.is_current(&ticket) {
                    if let Err(e) = this.check(&uri, ticket).await {
                        this.log(MessageType::ERROR, format!("{uri}: {e}"));
                    }
                }
            });
        }
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        self.schedule(params.text_document.uri);
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri;
        {
            let mut docs = lock(&self.inner.docs);
            docs.remove(&uri);
            // The analyses of objects no open document looks at go with the last one that did.
            let wanted: HashSet<PathBuf> = docs
                .values()
                .filter_map(|d| d.view.as_ref())
                .flat_map(|v| v.seen.iter().map(|(p, _)| p.clone()))
                .collect();
            self.inner.cache.retain(|p| wanted.contains(p));
        }
        tokio::spawn(blocking(crate::alloc::trim));
        self.inner.generations.forget(uri.as_str());
        // After any publication already under way for the document.
        let _publishing = self.inner.publish_lock.lock().await;
        self.client.publish_diagnostics(uri, Vec::new(), None).await;
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        let paths = params.changes.iter().filter_map(|c| file_path(&c.uri));
        self.files_changed(paths.collect::<Vec<_>>());
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        let settings = params.settings;
        let settings = settings.get("altcfi").cloned().unwrap_or(settings);
        if settings.as_object().is_some_and(|m| !m.is_empty()) {
            {
                let mut init = lock(&self.inner.init_options);
                let mut merged = init.clone().unwrap_or_else(|| serde_json::json!({}));
                if let (Some(m), Some(s)) = (merged.as_object_mut(), settings.as_object()) {
                    for (k, v) in s {
                        m.insert(k.clone(), v.clone());
                    }
                }
                *init = Some(merged);
            }
            self.reload_config();
            self.inner.workspace.index_dirty();
            self.schedule_all();
        }
    }

    async fn hover(&self, params: HoverParams) -> jsonrpc::Result<Option<Hover>> {
        let pos = params.text_document_position_params;
        let Some((view, path, _)) = self.view(&pos.text_document.uri) else {
            return Ok(None);
        };
        let line = pos.position.line + 1;
        let text = blocking(move || convert::hover_text(&view, &path, line))
            .await
            .unwrap_or(None);
        self.keep_budget();
        Ok(text.map(|value| Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value,
            }),
            range: None,
        }))
    }

    async fn inlay_hint(&self, params: InlayHintParams) -> jsonrpc::Result<Option<Vec<InlayHint>>> {
        let (enabled, all) = {
            let c = lock(&self.inner.config);
            (c.inlay_hints, c.inlay_hints_all)
        };
        if !enabled {
            return Ok(None);
        }
        let Some((view, path, text)) = self.view(&params.text_document.uri) else {
            return Ok(None);
        };
        let range = params.range;
        let hints = blocking(move || convert::inlay_hints(&view, &path, &text, range, all))
            .await
            .unwrap_or_default();
        self.keep_budget();
        Ok(Some(hints))
    }

    async fn execute_command(
        &self,
        params: ExecuteCommandParams,
    ) -> jsonrpc::Result<Option<Value>> {
        if params.command != CHECK_BUILD_COMMAND {
            return Err(jsonrpc::Error::invalid_params(format!(
                "unknown command {}",
                params.command
            )));
        }
        let summary = self.check_build().await;
        self.client
            .show_message(MessageType::INFO, summary.clone())
            .await;
        Ok(Some(Value::String(summary)))
    }

    async fn code_action(
        &self,
        params: CodeActionParams,
    ) -> jsonrpc::Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri;
        let conflict = NumberOrString::String("alt-stack-conflict".into());
        let mut lines: Vec<(u32, Diagnostic)> = params
            .context
            .diagnostics
            .into_iter()
            .filter(|d| d.code.as_ref() == Some(&conflict) && !d.message.starts_with(edits::STALE))
            .map(|d| (d.range.start.line, d))
            .collect();
        lines.dedup_by_key(|(l, _)| *l);
        if lines.is_empty() || !lock(&self.inner.config).live_enable {
            return Ok(None);
        }
        let mut actions = Vec::new();
        for (line, diagnostic) in lines {
            if let Some(found) = self.fixes_for(&uri, line, diagnostic).await {
                actions.extend(found.into_iter().map(CodeActionOrCommand::CodeAction));
            }
        }
        Ok((!actions.is_empty()).then_some(actions))
    }

    async fn code_lens(&self, params: CodeLensParams) -> jsonrpc::Result<Option<Vec<CodeLens>>> {
        let uri = params.text_document.uri;
        let Some((view, path, text)) = self.view(&uri) else {
            return Ok(None);
        };
        let lenses = blocking(move || convert::code_lenses(&view, &path, &text, &uri))
            .await
            .unwrap_or_default();
        Ok(Some(lenses))
    }
}
