//! A minimal JSON-RPC/LSP client driving the real `altcfi lsp` binary over stdio, and the demo workspace
//! (`examples/demo.S` built with `gcc -c -g`, a `compile_commands.json`), shared by `tests/lsp.rs` and
//! `tests/lsp_stress.rs` (each includes it with `#[path]`).

#![allow(dead_code)]

use crate::support::repo_root;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long any one expected message may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A minimal LSP client over a child process's stdio.
pub struct Client {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub rx: Receiver<Value>,
    /// Notifications received while waiting for something else.
    pub pending: VecDeque<Value>,
    pub next_id: i64,
}

pub fn read_message(r: &mut impl BufRead) -> Option<Value> {
    let mut len = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length:") {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len?];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

impl Client {
    pub fn start(root: &Path) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_altcfi"))
            .arg("lsp")
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start altcfi lsp");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Some(m) = read_message(&mut r) {
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        Client {
            child,
            stdin,
            rx,
            pending: VecDeque::new(),
            next_id: 1,
        }
    }

    pub fn send(&mut self, v: &Value) {
        let body = serde_json::to_string(v).expect("json");
        let stdin = self.stdin.as_mut().expect("stdin open");
        write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        stdin.flush().expect("flush");
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        let mut m = json!({"jsonrpc": "2.0", "method": method});
        if !params.is_null() {
            m["params"] = params;
        }
        self.send(&m);
    }

    /// The next message from the server, answering server→client requests on the way.
    pub fn recv(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => {
                    if m.get("method").is_some() && m.get("id").is_some() {
                        // workDoneProgress/create, registerCapability, …/refresh: accept.
                        let id = m["id"].clone();
                        self.send(&json!({"jsonrpc": "2.0", "id": id, "result": null}));
                        self.pending.push_back(m);
                        continue;
                    }
                    return Some(m);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// `textDocument/hover` at (`line`, `character`) of `uri`: the raw result (`null` when there is none).
    pub fn hover(&mut self, uri: &str, line: impl Into<Value>, character: u32) -> Value {
        let params = json!({
            "textDocument": {"uri": uri},
            "position": {"line": line.into(), "character": character},
        });
        self.request("textDocument/hover", params)
    }

    /// The markdown of [`Client::hover`]; empty when there is no hover.
    pub fn hover_text(&mut self, uri: &str, line: impl Into<Value>, character: u32) -> String {
        let hover = self.hover(uri, line, character);
        hover["contents"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut m = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            m["params"] = params;
        }
        self.send(&m);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let m = self
                .recv(deadline)
                .unwrap_or_else(|| panic!("no response to {method} within {TIMEOUT:?}"));
            if m.get("id") == Some(&json!(id)) {
                assert!(m.get("error").is_none(), "{method} failed: {m}");
                return m["result"].clone();
            }
            self.pending.push_back(m);
        }
    }

    /// Waits for a `textDocument/publishDiagnostics` for `uri` whose diagnostics satisfy `pred`.
    pub fn wait_diagnostics(&mut self, uri: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + TIMEOUT;
        let matches = |m: &Value| {
            m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["uri"] == uri
                && m["params"]["diagnostics"]
                    .as_array()
                    .is_some_and(|d| pred(d))
        };
        if let Some(i) = self.pending.iter().position(matches) {
            let m = self.pending.remove(i).expect("pending");
            return m["params"]["diagnostics"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        loop {
            let Some(m) = self.recv(deadline) else {
                let seen: Vec<&Value> = self
                    .pending
                    .iter()
                    .filter(|m| m["method"] == "textDocument/publishDiagnostics")
                    .collect();
                panic!("no matching diagnostics for {uri} within {TIMEOUT:?}; seen: {seen:#?}");
            };
            if matches(&m) {
                return m["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
            self.pending.push_back(m);
        }
    }

    /// Waits for a `window/logMessage` whose text satisfies `pred`; its text.
    pub fn wait_log(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let matches = |m: &Value| {
            m["method"] == "window/logMessage" && m["params"]["message"].as_str().is_some_and(&pred)
        };
        if let Some(i) = self.pending.iter().position(matches) {
            let m = self.pending.remove(i).expect("pending");
            return m["params"]["message"].as_str().unwrap_or("").to_owned();
        }
        loop {
            let m = self
                .recv(deadline)
                .unwrap_or_else(|| panic!("no matching log message within {TIMEOUT:?}"));
            if matches(&m) {
                return m["params"]["message"].as_str().unwrap_or("").to_owned();
            }
            self.pending.push_back(m);
        }
    }

    pub fn initialize(&mut self, root: &Path, options: Value) -> Value {
        self.initialize_with(root, options, false)
    }

    /// `initialize` + `initialized`; `watch` offers dynamic registration of `workspace/didChangeWatchedFiles`.
    pub fn initialize_with(&mut self, root: &Path, options: Value, watch: bool) -> Value {
        let root_uri = uri_of(root);
        let result = self.request(
            "initialize",
            json!({
                "processId": null,
                "rootUri": root_uri,
                "workspaceFolders": [{"uri": root_uri, "name": "ws"}],
                "initializationOptions": options,
                "capabilities": {
                    "window": {"workDoneProgress": true},
                    "textDocument": {
                        "publishDiagnostics": {"relatedInformation": true, "codeDescriptionSupport": true},
                        "hover": {"contentFormat": ["markdown", "plaintext"]},
                        "inlayHint": {}, "codeLens": {}
                    },
                    "workspace": {"didChangeWatchedFiles": {"dynamicRegistration": watch}}
                }
            }),
        );
        self.notify("initialized", json!({}));
        result
    }

    pub fn open(&mut self, path: &Path, language: &str) -> String {
        let uri = uri_of(path);
        let text = std::fs::read_to_string(path).expect("read source");
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}}),
        );
        uri
    }

    /// Ends the session as an editor does: `shutdown` (answered with null), `exit`, and the server gone with
    /// status 0 within 5 s.
    pub fn shutdown(&mut self) {
        assert!(self.request("shutdown", Value::Null).is_null());
        self.notify("exit", Value::Null);
        assert!(self.wait_exit(Duration::from_secs(5)).success());
    }

    /// Waits for the process to end; its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("altcfi lsp did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn uri_of(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// A temporary workspace with `examples/demo.S` and the headers it includes, at the same relative places.
pub fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical tempdir");
    let repo = repo_root();
    std::fs::create_dir_all(root.join("examples")).expect("mkdir");
    std::fs::create_dir_all(root.join("tests/fixtures/alt")).expect("mkdir");
    std::fs::copy(repo.join("examples/demo.S"), root.join("examples/demo.S")).expect("copy demo");
    for h in ["alt-macros-612.h", "fixture-common.h"] {
        let rel = format!("tests/fixtures/alt/{h}");
        std::fs::copy(repo.join(&rel), root.join(&rel)).expect("copy header");
    }
    (dir, root)
}

/// A [`workspace`] whose demo is built as its compilation database says (`build/demo.o`, with the conflict).
pub struct BuiltDemo {
    /// The temporary directory (removed when dropped).
    pub dir: tempfile::TempDir,
    /// The workspace root.
    pub root: PathBuf,
    /// `examples/demo.S`.
    pub src: PathBuf,
    /// Its text.
    pub text: String,
    /// 0-based line of `save_fl_bad`'s `ALTERNATIVE`.
    pub bad: u32,
}

/// Makes a [`BuiltDemo`].
pub fn built_demo() -> BuiltDemo {
    let (dir, root) = workspace();
    compile_commands(&root, "build/demo.o");
    gcc(&root, "build/demo.o");
    let src = root.join("examples/demo.S");
    let text = std::fs::read_to_string(&src).expect("read");
    let bad = alternative_line(&text, "save_fl_bad");
    BuiltDemo {
        dir,
        root,
        src,
        text,
        bad,
    }
}

/// `examples/demo.S`'s text with save_fl_bad's conflicting replacement fixed (`call xen_save_fl`, as save_fl_ok).
pub fn fixed_demo(text: &str) -> String {
    let fixed = text.replace(
        "\"push %rcx; push %rcx; pop %rax; pop %rcx\"",
        "\"call xen_save_fl\"",
    );
    assert_ne!(
        fixed, text,
        "save_fl_bad's replacement is not in the demo any more"
    );
    fixed
}

/// Assembles `examples/demo.S` of the workspace `root` into `out` (relative to `root`), as its compilation
/// database says.
pub fn gcc(root: &Path, out: &str) {
    assemble(root, Path::new("examples/demo.S"), Path::new(out));
}

/// Runs `$CC -c -g src -o obj` in `dir` (relative paths are from there), making `obj`'s directory first.
pub fn assemble(dir: &Path, src: &Path, obj: &Path) {
    std::fs::create_dir_all(dir.join(obj).parent().expect("parent")).expect("mkdir");
    let o = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
        .args(["-c", "-g"])
        .arg(src)
        .arg("-o")
        .arg(obj)
        .current_dir(dir)
        .output()
        .expect("run gcc");
    assert!(
        o.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn compile_commands(root: &Path, out: &str) {
    let db = json!([{
        "directory": root,
        "file": "examples/demo.S",
        "arguments": ["gcc", "-c", "-g", "examples/demo.S", "-o", out],
        "output": out,
    }]);
    std::fs::write(root.join("compile_commands.json"), db.to_string()).expect("write db");
}

/// 0-based line of the `ALTERNATIVE` inside `func`.
pub fn alternative_line(text: &str, func: &str) -> u32 {
    let start = text
        .lines()
        .position(|l| l.contains(&format!("SYM_FUNC_START({func})")))
        .expect("function in demo.S");
    let off = text
        .lines()
        .skip(start)
        .position(|l| l.trim_start().starts_with("ALTERNATIVE"))
        .expect("ALTERNATIVE line");
    (start + off) as u32
}

pub fn is_conflict(d: &Value) -> bool {
    d["code"] == "alt-stack-conflict"
}

/// The demo built twice: with the conflict (`.0`) and with it fixed (`.1`); `examples/demo.S` is left as it was
/// (the conflict version), older than both objects.
pub fn conflict_and_fixed(root: &Path) -> (Vec<u8>, Vec<u8>) {
    let src = root.join("examples/demo.S");
    let text = std::fs::read_to_string(&src).expect("read");
    let fixed = text.replace(
        "\"push %rcx; push %rcx; pop %rax; pop %rcx\"",
        "\"call xen_save_fl\"",
    );
    assert_ne!(fixed, text);
    std::fs::write(&src, &fixed).expect("write fixed");
    gcc(root, "build/fixed.o");
    std::fs::write(&src, &text).expect("restore");
    std::thread::sleep(Duration::from_millis(20));
    gcc(root, "build/conflict.o");
    let read = |p: &str| std::fs::read(root.join(p)).expect("read object");
    (read("build/conflict.o"), read("build/fixed.o"))
}

/// A server session on the demo, built with its conflict into `build/demo.o` (found through a
/// `compile_commands.json`), with `examples/demo.S` open and its first diagnostics (the conflict) received.
pub struct DemoSession {
    /// Keeps the temporary workspace alive.
    pub dir: tempfile::TempDir,
    /// The workspace root.
    pub root: PathBuf,
    /// The object the server reads.
    pub obj: PathBuf,
    /// The demo's object with the conflict.
    pub conflict: Vec<u8>,
    /// The demo's object with the conflict fixed.
    pub fixed: Vec<u8>,
    /// The open source's URI.
    pub uri: String,
    /// 0-based line of `save_fl_bad`'s `ALTERNATIVE`.
    pub bad: u32,
    /// The running server.
    pub client: Client,
}

/// Starts a [`DemoSession`].
pub fn demo_session() -> DemoSession {
    let (dir, root) = workspace();
    compile_commands(&root, "build/demo.o");
    let (conflict, fixed) = conflict_and_fixed(&root);
    let obj = root.join("build/demo.o");
    std::fs::write(&obj, &conflict).expect("write object");
    let src = root.join("examples/demo.S");
    let text = std::fs::read_to_string(&src).expect("read");
    let bad = alternative_line(&text, "save_fl_bad");
    let mut client = Client::start(&root);
    client.initialize(&root, json!({}));
    let uri = client.open(&src, "asm");
    client.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    DemoSession {
        dir,
        root,
        obj,
        conflict,
        fixed,
        uri,
        bad,
        client,
    }
}

/// Whether a diagnostic is one of altcfi's status diagnostics (not a finding).
pub fn is_status(d: &Value) -> bool {
    d["code"] == "altcfi-status"
}

impl Client {
    /// Drops the diagnostics already received for `uri` (so that [`Client::next_diagnostics`] sees only newer ones).
    pub fn forget_diagnostics(&mut self, uri: &str) {
        self.pending.retain(|m| {
            !(m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri)
        });
    }

    /// The next `textDocument/publishDiagnostics` for `uri`, whatever it holds, and when it arrived.
    pub fn next_diagnostics(&mut self, uri: &str) -> (Vec<Value>, Instant) {
        let is_pub = |m: &Value| {
            m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri
        };
        let diags = |m: &Value| {
            m["params"]["diagnostics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        if let Some(i) = self.pending.iter().position(is_pub) {
            let m = self.pending.remove(i).expect("pending");
            return (diags(&m), Instant::now());
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let m = self
                .recv(deadline)
                .unwrap_or_else(|| panic!("no diagnostics for {uri} within {TIMEOUT:?}"));
            if is_pub(&m) {
                return (diags(&m), Instant::now());
            }
            self.pending.push_back(m);
        }
    }
}
