//! End-to-end tests of `altcfi lsp`: the real binary driven over stdio with JSON-RPC framing by the small client in
//! `tests/support/lsp_client.rs`. A temporary workspace holds a copy of `examples/demo.S` (and the macro header it
//! includes), built with `gcc -c -g`; the tests open it, check the published diagnostics, hover, inlay hints, code
//! lenses and the `altcfi/cfiTable` request, rebuild the object with the conflict fixed and wait for the diagnostic
//! to go (file watching), and check that the server exits on `exit` and when its input closes. Other tests cover
//! finding the object through the DWARF index (no `compile_commands.json`), a corrupt object, and a `didSave` while
//! the object is being rewritten (the new object's diagnostics, hover and table; a truncated object reported late).

#[path = "support/lsp_client.rs"]
mod lsp_client;
mod support;

use lsp_client::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::repo_root;

#[test]
fn demo_conflict_hover_table_and_live_rebuild() {
    let BuiltDemo {
        dir: _dir,
        root,
        src,
        text,
        bad,
    } = built_demo();
    let ok = alternative_line(&text, "save_fl_ok");

    let mut c = Client::start(&root);
    // The file is edited on disk behind the server's back below (no didChange): live mode, which would check the
    // buffer the server was given, is off; `live_mode_*` covers it.
    let init = c.initialize(
        &root,
        json!({"inlayHints": true, "kernel": "auto", "live": {"enable": false}}),
    );
    let caps = &init["capabilities"];
    assert_eq!(caps["hoverProvider"], true, "{init}");
    assert!(caps.get("inlayHintProvider").is_some() && caps.get("codeLensProvider").is_some());

    let t0 = Instant::now();
    let uri = c.open(&src, "asm");
    let diags = c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    eprintln!("timing: open → diagnostics {} ms", t0.elapsed().as_millis());

    let conflict: Vec<&Value> = diags.iter().filter(|d| is_conflict(d)).collect();
    assert_eq!(conflict.len(), 1, "{diags:#?}");
    let d = conflict[0];
    assert_eq!(d["range"]["start"]["line"], bad, "{d:#}");
    assert_eq!(d["source"], "altcfi");
    assert_eq!(d["severity"], 1);
    let msg = d["message"].as_str().expect("message");
    for needle in ["X86_FEATURE_XENPV", "+0x2", "rsp+8", "rsp+24"] {
        assert!(msg.contains(needle), "message lacks {needle}: {msg}");
    }
    assert!(d["codeDescription"]["href"]
        .as_str()
        .is_some_and(|h| h.ends_with("alt-stack-conflict.md")));
    let related = d["relatedInformation"]
        .as_array()
        .expect("relatedInformation");
    assert!(!related.is_empty());
    for r in related {
        assert!(r["location"]["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("file://")));
        assert!(r["location"]["range"]["start"]["line"].is_u64(), "{r}");
    }
    assert!(
        !diags
            .iter()
            .any(|d| d["range"]["start"]["line"] == ok && d["severity"] == 1),
        "save_fl_ok is clean: {diags:#?}"
    );

    // Hover the conflicting line: CFI of the original and of the replacement.
    let value = c.hover_text(&uri, bad, 3);
    for needle in ["```", "pushf", "%rcx", "rsp+8", "rsp+24"] {
        assert!(value.contains(needle), "hover lacks {needle}:\n{value}");
    }
    // Per variant and offset, whether an unwind from there is right; the verdict in the site's header.
    for needle in [
        "unwind ✓",
        "unwind ✗ ra read at rsp+16, is at rsp+0",
        "breaks: an unwind from a ✗ place is wrong",
    ] {
        assert!(value.contains(needle), "hover lacks {needle}:\n{value}");
    }
    // A line that produced no code has no hover.
    let none = c.hover(&uri, 0, 0);
    assert!(none.is_null(), "{none}");

    // Inlay hints: a CFA rule after the lines that produced code.
    let hints = c.request(
        "textDocument/inlayHint",
        json!({"textDocument": {"uri": uri},
               "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1000, "character": 0}}}),
    );
    let hints = hints.as_array().cloned().unwrap_or_default();
    assert!(
        hints.iter().any(|h| h["position"]["line"] == bad
            && h["label"].as_str().is_some_and(|l| l.contains("CFA"))),
        "{hints:#?}"
    );

    // Code lenses: the bad site conflicts at +0x2, the good one is consistent.
    let lenses = c.request(
        "textDocument/codeLens",
        json!({"textDocument": {"uri": uri}}),
    );
    let lenses = lenses.as_array().cloned().unwrap_or_default();
    let title_at = |line: u32| -> String {
        lenses
            .iter()
            .find(|l| l["range"]["start"]["line"] == line)
            .and_then(|l| l["command"]["title"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    assert!(title_at(bad).contains("conflict at +0x2"), "{lenses:#?}");
    assert!(title_at(bad).contains("breaks the unwinder"), "{lenses:#?}");
    assert!(title_at(bad).contains("X86_FEATURE_XENPV"), "{lenses:#?}");
    assert!(title_at(ok).contains("consistent"), "{lenses:#?}");

    // The CFI table, by position and by name.
    let table = c.request(
        "altcfi/cfiTable",
        json!({"textDocument": {"uri": uri}, "position": {"line": bad, "character": 0}}),
    );
    let content = table["content"].as_str().expect("table content");
    assert!(
        table["title"]
            .as_str()
            .is_some_and(|t| t.contains("save_fl_bad")),
        "{table}"
    );
    for needle in [
        "save_fl_bad+0x0",
        "pushf",
        "CFA=rsp+8",
        "replacement #1",
        "X86_FEATURE_XENPV",
        ", unwind breaks:",
        "unwind ✗ ra read at rsp+16, is at rsp+0",
    ] {
        assert!(content.contains(needle), "table lacks {needle}:\n{content}");
    }
    let table = c.request(
        "altcfi/cfiTable",
        json!({"textDocument": {"uri": uri}, "function": "save_fl_ok"}),
    );
    assert!(
        table["content"]
            .as_str()
            .is_some_and(|t| t.contains("save_fl_ok+0x0")),
        "{table}"
    );

    // Edit the source (fix the replacement) and save: the object is now older than the source.
    let fixed = fixed_demo(&text);
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&src, &fixed).expect("write fixed source");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": uri}}),
    );
    let stale = c.wait_diagnostics(&uri, |d| {
        d.len() == 1
            && d[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("older than"))
    });
    assert_eq!(stale[0]["severity"], 3, "{stale:#?}");

    // Rebuild: the watcher sees the new object and the conflict is gone.
    gcc(&root, "build/demo.o");
    let t1 = Instant::now();
    let after = c.wait_diagnostics(&uri, |d| {
        !d.iter()
            .any(|x| is_conflict(x) || x["message"].as_str().is_some_and(|m| m.contains("older")))
    });
    eprintln!(
        "timing: object rebuilt → diagnostics {} ms",
        t1.elapsed().as_millis()
    );
    assert!(after.iter().all(|d| d["severity"] != 1), "{after:#?}");

    // shutdown + exit: status 0, promptly.
    let r = c.request("shutdown", Value::Null);
    assert!(r.is_null());
    c.notify("exit", Value::Null);
    let t2 = Instant::now();
    let status = c.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    eprintln!(
        "timing: exit → process gone {} ms",
        t2.elapsed().as_millis()
    );
}

#[test]
fn dwarf_index_finds_the_object_without_compile_commands() {
    let (_dir, root) = workspace();
    // A name unrelated to the source's, so only the DWARF compile unit can connect them.
    gcc(&root, "out/objects/unrelated-name.o");
    let src = root.join("examples/demo.S");
    let text = std::fs::read_to_string(&src).expect("read");
    let bad = alternative_line(&text, "save_fl_bad");

    let mut c = Client::start(&root);
    c.initialize(&root, json!({}));
    let uri = c.open(&src, "asm");
    let diags = c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    let d = diags.iter().find(|d| is_conflict(d)).expect("conflict");
    assert_eq!(d["range"]["start"]["line"], bad);
    // Indexing reported progress (the client advertised window.workDoneProgress).
    let progress: Vec<&Value> = c
        .pending
        .iter()
        .filter(|m| m["method"] == "$/progress")
        .collect();
    assert!(
        progress
            .iter()
            .any(|m| m["params"]["value"]["kind"] == "begin"),
        "{progress:#?}"
    );
    assert!(
        progress
            .iter()
            .any(|m| m["params"]["value"]["kind"] == "end"),
        "{progress:#?}"
    );

    // Closing the server's input ends it.
    drop(c.stdin.take());
    let status = c.wait_exit(Duration::from_secs(5));
    assert!(status.code().is_some(), "{status:?}");
}

/// A frame-pointer function whose replacement pushes and pops `%rax` (as `tests/fixtures/alt/rbp-depth-only-612.S`):
/// the states differ only in stack size below an rbp-based CFA, so every ORC row is right.
const STRICT_ONLY: &str = include_str!("../examples/strict-only.S");

#[test]
fn strict_only_site_is_a_warning_whose_hover_names_the_field_and_the_verdict() {
    let (_dir, root) = workspace();
    let src = root.join("examples/strict.S");
    std::fs::write(&src, STRICT_ONLY).expect("write source");
    assemble(
        &root,
        Path::new("examples/strict.S"),
        Path::new("out/strict.o"),
    );
    let line = alternative_line(STRICT_ONLY, "rbp_depth");

    let mut c = Client::start(&root);
    c.initialize(&root, json!({}));
    let uri = c.open(&src, "asm");
    let diags = c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    let d = diags.iter().find(|d| is_conflict(d)).expect("conflict");
    assert_eq!(d["range"]["start"]["line"], line);
    assert_eq!(d["severity"], 2, "strict-only is a Warning: {d}");
    assert!(
        d["message"]
            .as_str()
            .is_some_and(|m| m.contains("strict-only")),
        "{d}"
    );
    let value = c.hover_text(&uri, line, 3);
    for needle in [
        "<< conflict: stack size 16 vs 24",
        "strict-only: unwind ✓ in every variant",
        "unwind ✓",
    ] {
        assert!(value.contains(needle), "hover lacks {needle}:\n{value}");
    }
    assert!(!value.contains('✗'), "{value}");
    c.shutdown();
}

#[test]
fn corrupt_object_gives_one_diagnostic_and_the_server_keeps_answering() {
    let (_dir, root) = workspace();
    compile_commands(&root, "build/demo.o");
    std::fs::create_dir_all(root.join("build")).expect("mkdir");
    let mut junk = b"\x7fELF\x02\x01\x01\x00".to_vec();
    junk.extend(std::iter::repeat_n(0xa5u8, 300));
    std::fs::write(root.join("build/demo.o"), &junk).expect("write junk");
    let src = root.join("examples/demo.S");

    let mut c = Client::start(&root);
    c.initialize(&root, json!({"objectGlobs": ["build/*.o"]}));
    let uri = c.open(&src, "asm");
    let diags = c.wait_diagnostics(&uri, |d| !d.is_empty());
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(
        diags[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot analyse")),
        "{diags:#?}"
    );
    let hover = c.hover(&uri, 20, 0);
    assert!(hover.is_null());
    let table = c.request(
        "altcfi/cfiTable",
        json!({"textDocument": {"uri": uri}, "function": "x"}),
    );
    assert!(table.is_null());

    // A real build replaces the junk: the server recovers.
    gcc(&root, "build/demo.o");
    c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));

    c.shutdown();
}

/// A workspace holding `alt/c-conflict-612.c` and the headers it includes (a C file whose inline helper in a
/// header has an alternatives conflict).
fn c_fixture_workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical tempdir");
    let alt = root.join("alt");
    std::fs::create_dir_all(&alt).expect("mkdir");
    let fixtures = repo_root().join("tests/fixtures/alt");
    for f in [
        "c-conflict-612.c",
        "alt-macros-612.h",
        "fixture-common.h",
        "paravirt-inline.h",
    ] {
        std::fs::copy(fixtures.join(f), alt.join(f)).expect("copy fixture");
    }
    (dir, root)
}

#[test]
fn conflict_in_an_inlined_header_helper_shows_at_the_c_call_site_and_in_the_header() {
    let (_dir, root) = c_fixture_workspace();
    let alt = root.join("alt");
    // The fixture build rules for .c (tests/fixtures/README.md) plus the file's own flags.
    let o = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
        .args([
            "-c",
            "-O2",
            "-fno-asynchronous-unwind-tables",
            "-fno-pic",
            "-mno-red-zone",
            "-fno-stack-protector",
            "-g",
            "-fno-omit-frame-pointer",
            "c-conflict-612.c",
            "-o",
            "c-conflict-612.o",
        ])
        .current_dir(&alt)
        .output()
        .expect("run gcc");
    assert!(
        o.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let c_file = alt.join("c-conflict-612.c");
    let header = alt.join("paravirt-inline.h");
    let line_of = |p: &Path, needle: &str| -> u32 {
        std::fs::read_to_string(p)
            .expect("read")
            .lines()
            .position(|l| l.contains(needle))
            .expect("needle") as u32
    };
    let call = line_of(&c_file, "pv_broken_fence();");
    let asm = line_of(&header, "push %%rax; pop %%rax");

    let mut c = Client::start(&root);
    c.initialize(&root, json!({}));
    let c_uri = c.open(&c_file, "c");
    let h_uri = c.open(&header, "c");
    let in_c = c.wait_diagnostics(&c_uri, |d| d.iter().any(is_conflict));
    let d = in_c
        .iter()
        .find(|d| is_conflict(d))
        .expect("conflict in .c");
    assert_eq!(d["range"]["start"]["line"], call, "{d:#}");
    let msg = d["message"].as_str().expect("message");
    assert!(
        msg.contains("X86_FEATURE_XENPV") && msg.contains("+0x1"),
        "{msg}"
    );
    let related = d["relatedInformation"].as_array().expect("related");
    assert!(
        related.iter().any(
            |r| r["location"]["uri"] == h_uri && r["location"]["range"]["start"]["line"] == asm
        ),
        "{related:#?}"
    );
    let in_h = c.wait_diagnostics(&h_uri, |d| d.iter().any(is_conflict));
    let d = in_h
        .iter()
        .find(|d| is_conflict(d))
        .expect("conflict in header");
    assert_eq!(d["range"]["start"]["line"], asm, "{d:#}");
    // Hovering the call in the .c file shows the inlined alternative's CFI.
    let value = c.hover_text(&c_uri, call, 2);
    assert!(
        value.contains("push %rax") && value.contains("CFA=rbp+16"),
        "{value}"
    );
}

/// The Neovim side of [`neovim_headless_shows_the_conflict_hover_and_the_rebuild`]: attach `altcfi lsp` with
/// `vim.lsp.start`, wait for the diagnostic, hover the line, rebuild the object with the conflict fixed, wait for the
/// diagnostic to go. Writes one `key value` line per observation to `$ALTCFI_OUT`.
const NVIM_SCRIPT: &str = r#"
local ws, bin, out = os.getenv('ALTCFI_WS'), os.getenv('ALTCFI_BIN'), os.getenv('ALTCFI_OUT')
local results = {}
local function put(k, v) table.insert(results, k .. ' ' .. tostring(v)) end
local ok_all, err = pcall(function()
  vim.cmd('edit ' .. ws .. '/examples/demo.S')
  local buf = vim.api.nvim_get_current_buf()
  -- The source is rewritten on disk behind the buffer below: live mode (which checks the buffer) is off.
  local id = vim.lsp.start({ name = 'altcfi', cmd = { bin, 'lsp' }, root_dir = ws,
    init_options = { live = { enable = false } } })
  put('client', id ~= nil)
  local function conflict()
    for _, d in ipairs(vim.diagnostic.get(buf)) do
      if d.code == 'alt-stack-conflict' then return d end
    end
  end
  local t0 = vim.uv.hrtime()
  put('diagnostic', vim.wait(20000, function() return conflict() ~= nil end, 20))
  put('open_ms', math.floor((vim.uv.hrtime() - t0) / 1e6))
  local d = conflict()
  if d then
    put('line', d.lnum)
    put('message', (d.message:gsub('\n', ' ')))
  end
  local bad = tonumber(os.getenv('ALTCFI_BAD'))
  local res = vim.lsp.buf_request_sync(buf, 'textDocument/hover',
    { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = bad, character = 2 } }, 10000)
  for _, r in pairs(res or {}) do
    if r.result and r.result.contents then put('hover', (r.result.contents.value:gsub('\n', '\\n'))) end
  end
  local src = ws .. '/examples/demo.S'
  local lines = vim.fn.readfile(src)
  for i, l in ipairs(lines) do
    lines[i] = l:gsub('"push %%rcx; push %%rcx; pop %%rax; pop %%rcx"', '"call xen_save_fl"')
  end
  vim.fn.writefile(lines, src)
  vim.fn.system({ 'gcc', '-c', '-g', src, '-o', ws .. '/build/demo.o' })
  put('gcc', vim.v.shell_error)
  local t1 = vim.uv.hrtime()
  put('gone', vim.wait(20000, function() return conflict() == nil end, 20))
  put('rebuild_ms', math.floor((vim.uv.hrtime() - t1) / 1e6))
  vim.lsp.stop_client(id)
end)
if not ok_all then put('error', err) end
vim.fn.writefile(results, out)
vim.cmd('qa!')
"#;

/// A Neovim 0.11+ on `PATH` (or in `$ALTCFI_NVIM`), if any.
fn neovim() -> Option<PathBuf> {
    let bin = std::env::var_os("ALTCFI_NVIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nvim"));
    let out = Command::new(&bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next()?.strip_prefix("NVIM v")?.to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next()?, parts.next()?);
    (major > 0 || minor >= 11).then_some(bin)
}

#[test]
fn neovim_headless_shows_the_conflict_hover_and_the_rebuild() {
    let Some(nvim) = neovim() else {
        // scripts/test.sh (and so CI) always provides one: there a missing Neovim is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "no Neovim 0.11+: run scripts/deps-nvim.sh and set ALTCFI_NVIM (scripts/test.sh does)"
        );
        eprintln!(
            "skipped: no Neovim 0.11+ on PATH (bash scripts/deps-nvim.sh, then set ALTCFI_NVIM)"
        );
        return;
    };
    let BuiltDemo {
        dir: _dir,
        root,
        bad,
        ..
    } = built_demo();
    let script = root.join("test.lua");
    std::fs::write(&script, NVIM_SCRIPT).expect("write script");
    let out = root.join("result.txt");
    let status = Command::new(&nvim)
        .args(["--headless", "--clean", "-u"])
        .arg(&script)
        .env("ALTCFI_WS", &root)
        .env("ALTCFI_BIN", env!("CARGO_BIN_EXE_altcfi"))
        .env("ALTCFI_OUT", &out)
        .env("ALTCFI_BAD", bad.to_string())
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .expect("run nvim");
    let result = std::fs::read_to_string(&out).unwrap_or_else(|_| {
        panic!(
            "nvim wrote no results: {}",
            String::from_utf8_lossy(&status.stderr)
        )
    });
    eprintln!("{result}");
    let get = |k: &str| -> String {
        result
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(get("error"), "", "{result}");
    assert_eq!(get("diagnostic"), "true", "{result}");
    assert_eq!(get("line"), bad.to_string(), "{result}");
    for needle in ["X86_FEATURE_XENPV", "+0x2", "rsp+8", "rsp+24"] {
        assert!(get("message").contains(needle), "{result}");
    }
    for needle in ["pushf", "%rcx", "CFA=rsp+24", "ORC"] {
        assert!(
            get("hover").contains(needle),
            "hover lacks {needle}: {result}"
        );
    }
    assert_eq!(get("gcc"), "0", "{result}");
    assert_eq!(get("gone"), "true", "{result}");
}

#[test]
fn client_side_file_watching_through_did_change_watched_files() {
    let (_dir, root) = workspace();
    compile_commands(&root, "build/demo.o");
    gcc(&root, "build/demo.o");
    let src = root.join("examples/demo.S");

    let mut c = Client::start(&root);
    // The source is rewritten on disk without a didChange: live mode (which checks the buffer) is off.
    c.initialize_with(&root, json!({"live": {"enable": false}}), true);
    let uri = c.open(&src, "asm");
    c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    // The server asked the client to watch objects and compilation databases.
    let reg = c
        .pending
        .iter()
        .find(|m| m["method"] == "client/registerCapability")
        .cloned()
        .expect("registerCapability request");
    let r = &reg["params"]["registrations"][0];
    assert_eq!(r["method"], "workspace/didChangeWatchedFiles", "{reg}");
    let globs = r["registerOptions"]["watchers"].to_string();
    assert!(
        globs.contains("**/*.o") && globs.contains("compile_commands.json"),
        "{globs}"
    );

    // Fix and rebuild; the client (here: the test) reports the changed object.
    let text = std::fs::read_to_string(&src).expect("read");
    let fixed = fixed_demo(&text);
    std::fs::write(&src, fixed).expect("write");
    gcc(&root, "build/demo.o");
    c.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": [{"uri": uri_of(&root.join("build/demo.o")), "type": 2}]}),
    );
    c.wait_diagnostics(&uri, |d| !d.iter().any(is_conflict));
    c.shutdown();
}

/// The server reads only under the workspace root and the configured paths: a `compile_commands.json` above the
/// root is not consulted, and an object a database in the root names outside it is not read (and the log says why).
#[test]
fn compilation_databases_and_objects_outside_the_root_are_not_read() {
    let (_dir, outer) = workspace();
    // The workspace root is `outer/ws`. Above it, `outer/compile_commands.json` names an object inside the root
    // (so only the stop at the root keeps it from being used; `objectGlobs` keeps the DWARF index from finding it).
    let root = outer.join("ws");
    let above = json!([{
        "directory": outer,
        "file": "ws/examples/demo.S",
        "output": "ws/build/demo.o",
    }]);
    std::fs::write(outer.join("compile_commands.json"), above.to_string()).expect("write db");
    for f in [
        "examples/demo.S",
        "tests/fixtures/alt/alt-macros-612.h",
        "tests/fixtures/alt/fixture-common.h",
    ] {
        std::fs::create_dir_all(root.join(f).parent().expect("parent")).expect("mkdir");
        std::fs::copy(outer.join(f), root.join(f)).expect("copy");
    }
    gcc(&root, "build/demo.o");
    gcc(&root, "../outside/demo.o");
    let src = root.join("examples/demo.S");

    let mut c = Client::start(&root);
    c.initialize(&root, json!({"objectGlobs": ["none/*.o"]}));
    let uri = c.open(&src, "asm");
    let note = c.wait_log(|m| m.contains("no object file found"));
    assert!(note.contains("demo.S"), "{note}");

    // A database inside the root that names the object outside it.
    let db = json!([{
        "directory": root,
        "file": "examples/demo.S",
        "output": outer.join("outside/demo.o"),
    }]);
    std::fs::write(root.join("compile_commands.json"), db.to_string()).expect("write db");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": uri}}),
    );
    let why = c.wait_log(|m| m.contains("not reading"));
    assert!(
        why.contains("outside/demo.o") && why.contains("outside the workspace root"),
        "{why}"
    );
    let leaked = c.pending.iter().any(|m| {
        m["method"] == "textDocument/publishDiagnostics"
            && m["params"]["diagnostics"]
                .as_array()
                .is_some_and(|d| d.iter().any(is_conflict))
    });
    assert!(
        !leaked,
        "diagnostics from an object outside the root: {:#?}",
        c.pending
    );

    // Configured as a build directory, the same object is read.
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"altcfi": {"buildDirs": ["../outside"]}}}),
    );
    c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    c.shutdown();
}

/// Writes `bytes` over `path` in place (truncating it first, as a compiler does), in two pieces with `pause`
/// between them; `then` runs during the pause, while the file holds only a prefix.
fn write_in_two_pieces(path: &Path, bytes: &[u8], pause: Duration, then: impl FnOnce()) {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path).expect("create object");
    let cut = bytes.len() / 2;
    f.write_all(&bytes[..cut]).expect("write");
    f.flush().expect("flush");
    then();
    std::thread::sleep(pause);
    f.write_all(&bytes[cut..]).expect("write");
}

/// The per-object-version results after a rewrite: a `didSave` sent while the object is half-written publishes
/// the new object's diagnostics (never the half-written file's error, never the old object's); a hover, inlay hints
/// and the CFI table asked for right after those diagnostics describe the new object (the per-instruction table is
/// built after the diagnostics are published); an object left truncated is reported only after it has been left
/// alone for a while, and the previous diagnostics stay until then.
#[test]
fn save_during_a_rewrite_publishes_the_new_object_and_hover_follows_it() {
    let DemoSession {
        dir: _dir,
        obj,
        conflict,
        fixed,
        uri,
        bad,
        client: mut c,
        ..
    } = demo_session();
    c.forget_diagnostics(&uri);

    // The fixed build, written in two pieces 60 ms apart (longer than the server's quiet times); `didSave` goes
    // out while only the first piece is there.
    let saved = std::cell::Cell::new(None);
    write_in_two_pieces(&obj, &fixed, Duration::from_millis(60), || {
        c.notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": uri}}),
        );
        saved.set(Some(Instant::now()));
    });
    let (first, at) = c.next_diagnostics(&uri);
    eprintln!(
        "timing: save during a rewrite → diagnostics {} ms",
        saved.get().map_or(0, |t| at.duration_since(t).as_millis())
    );
    assert!(
        !first.iter().any(|d| is_conflict(d) || is_status(d)),
        "the first diagnostics after the save are the fixed object's: {first:#?}"
    );

    // Right after the diagnostics: hover, inlay hints and the table are the fixed object's.
    let hover = c.hover(&uri, bad, 0);
    let value = hover["contents"]["value"].as_str().unwrap_or("").to_owned();
    assert!(
        value.contains("call") && value.contains("consistent") && !value.contains("<< conflict"),
        "hover of the fixed object:\n{value}"
    );
    let hints = c.request(
        "textDocument/inlayHint",
        json!({"textDocument": {"uri": uri},
               "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1000, "character": 0}}}),
    );
    let label = hints
        .as_array()
        .and_then(|h| h.iter().find(|h| h["position"]["line"] == bad))
        .and_then(|h| h["label"].as_str())
        .unwrap_or("")
        .to_owned();
    assert!(
        label.contains("CFA") && !label.contains("conflict"),
        "inlay hint on line {bad}: {hints}"
    );
    let table = c.request(
        "altcfi/cfiTable",
        json!({"textDocument": {"uri": uri}, "function": "save_fl_bad"}),
    );
    let content = table["content"].as_str().unwrap_or("");
    assert!(
        content.contains("call") && !content.contains("push %rcx"),
        "table of the fixed object:\n{content}"
    );

    // A truncated object left alone: the fixed diagnostics stay while it may still be written; then it is
    // reported (the server waits ERROR_SETTLE, 2 s, after the last write, by the file's mtime).
    c.forget_diagnostics(&uri);
    let written = Instant::now();
    std::fs::write(&obj, &conflict[..conflict.len() / 2]).expect("write truncated");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": uri}}),
    );
    // (A re-check of the complete fixed object may still have been under way: it publishes the same.)
    let (truncated, at) = loop {
        let (d, at) = c.next_diagnostics(&uri);
        if d.iter().any(|d| is_conflict(d) || is_status(d)) {
            break (d, at);
        }
    };
    let waited = at.duration_since(written);
    assert!(
        truncated.len() == 1
            && truncated[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot analyse")),
        "{truncated:#?}"
    );
    assert!(
        waited >= Duration::from_millis(1900),
        "a truncated object was reported {waited:?} after it was written"
    );

    // The complete conflict build: the conflict is back, and so is the hover's.
    std::fs::write(&obj, &conflict).expect("write object");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": uri}}),
    );
    let back = c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    assert!(!back.iter().any(is_status), "{back:#?}");
    let hover = c.hover(&uri, bad, 0);
    assert!(
        hover["contents"].to_string().contains("<< conflict"),
        "{hover}"
    );

    c.shutdown();
}

/// A miniature kernel source tree (the top `Makefile` with VERSION/PATCHLEVEL, `MAINTAINERS`, a `Kbuild` in
/// `arch/x86` as in the real tree) with `examples/demo.S` at `arch/x86/entry/demo.S`; built out of tree into
/// `<tmp>/build` (`include/config/auto.conf`, `kernel.release`, a `source` link back) when `build` is set.
fn kernel_tree(build: bool) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (dir, ws) = workspace();
    let tree = ws.join("linux");
    let entry = tree.join("arch/x86/entry");
    std::fs::create_dir_all(&entry).expect("mkdir");
    std::fs::write(
        tree.join("Makefile"),
        "# SPDX-License-Identifier: GPL-2.0\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\n",
    )
    .expect("write Makefile");
    std::fs::write(tree.join("MAINTAINERS"), "List of maintainers\n").expect("write MAINTAINERS");
    std::fs::write(tree.join("arch/x86/Kbuild"), "obj-y += entry/\n").expect("write Kbuild");
    let text = std::fs::read_to_string(ws.join("examples/demo.S")).expect("read demo");
    // The headers stay where demo.S finds them relative to the workspace.
    let text = text.replace(
        "#include \"../tests/fixtures/alt/",
        &format!("#include \"{}/tests/fixtures/alt/", ws.display()),
    );
    std::fs::write(entry.join("demo.S"), text).expect("write demo.S");
    let out = ws.join("build");
    if build {
        std::fs::create_dir_all(out.join("include/config")).expect("mkdir");
        std::fs::write(
            out.join("include/config/auto.conf"),
            "CONFIG_OBJTOOL=y\nCONFIG_UNWINDER_ORC=y\n",
        )
        .expect("write auto.conf");
        std::fs::write(out.join("include/config/kernel.release"), "6.12.0\n").expect("release");
        std::os::unix::fs::symlink(&tree, out.join("source")).expect("source link");
        assemble(
            &ws,
            &entry.join("demo.S"),
            &out.join("arch/x86/entry/demo.o"),
        );
    }
    (dir, tree, out)
}

/// `make O=…` with no compilation database anywhere, the editor's root at `arch/x86` (the nearest `Kbuild`, as
/// the plugin used to pick): the server finds the tree, its build directory beside it and the object by kbuild's
/// layout, and the conflict shows.
#[test]
fn out_of_tree_kernel_build_is_found_without_settings() {
    let (_dir, tree, out) = kernel_tree(true);
    let src = tree.join("arch/x86/entry/demo.S");
    let mut c = Client::start(&tree);
    c.initialize(&tree.join("arch/x86"), json!({}));
    let uri = c.open(&src, "asm");
    let diags = c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    assert_eq!(
        diags.iter().filter(|d| is_conflict(d)).count(),
        1,
        "{diags:#?}"
    );
    let log = c.wait_log(|m| m.contains("found by kbuild's layout"));
    assert!(log.contains(&out.display().to_string()), "{log}");
    // The state on request (the editors' status item).
    let status = c.request("altcfi/status", json!({"textDocument": {"uri": uri}}));
    let text = status["text"].as_str().unwrap_or("");
    let details = status["details"].as_str().unwrap_or("");
    assert!(
        text.starts_with("altcfi 6.12 · 1 object · 1 finding"),
        "{status}"
    );
    for needle in [
        format!("kernel tree: {}", tree.display()),
        format!("build directory: {}", out.display()),
        "found by kbuild's layout".to_string(),
        "rules: 6.12 (from 6.12.0 (include/config/kernel.release))".to_string(),
    ] {
        assert!(details.contains(&needle), "{needle} not in:\n{details}");
    }
    c.shutdown();
}

/// The same tree never built: the file says so, once, with what to do (not only the server log).
#[test]
fn unbuilt_kernel_tree_says_what_to_do_on_the_file() {
    let (_dir, tree, _out) = kernel_tree(false);
    let src = tree.join("arch/x86/entry/demo.S");
    let mut c = Client::start(&tree);
    c.initialize(&tree, json!({}));
    let uri = c.open(&src, "asm");
    let diags = c.wait_diagnostics(&uri, |d| !d.is_empty());
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let msg = diags[0]["message"].as_str().unwrap_or("");
    assert_eq!(diags[0]["severity"], 3, "{diags:#?}");
    assert!(
        msg.contains("no build directory") && msg.contains("make O="),
        "{msg}"
    );
    c.shutdown();
}

/// A rebuild that rewrites an open file's object without changing its results (a touched header, a directory
/// rebuilt) publishes nothing for that file; the next change does.
#[test]
fn rebuild_without_a_change_publishes_nothing() {
    let mut s = demo_session();
    let c = &mut s.client;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(30));
        std::fs::write(&s.obj, &s.conflict).expect("rewrite the same object");
        c.notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": s.uri}}),
        );
    }
    // Long enough for those checks to finish; then a real change.
    std::thread::sleep(Duration::from_millis(700));
    std::fs::write(&s.obj, &s.fixed).expect("write the fixed object");
    c.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": s.uri}}),
    );
    let (next, _) = c.next_diagnostics(&s.uri);
    assert!(
        !next.iter().any(is_conflict),
        "a publication for a rebuild that changed nothing came first: {next:#?}"
    );
    c.shutdown();
}

/// "Check the whole build" (`workspace/executeCommand` `altcfi.checkBuild`): every object of the tree's build is
/// checked and the findings land on source files that are not open.
#[test]
fn check_the_whole_build_publishes_for_files_not_open() {
    let (_dir, tree, _out) = kernel_tree(true);
    let src = tree.join("arch/x86/entry/demo.S");
    let mut c = Client::start(&tree);
    let init = c.initialize(&tree, json!({}));
    assert_eq!(
        init["capabilities"]["executeCommandProvider"]["commands"][0], "altcfi.checkBuild",
        "{init}"
    );
    let summary = c.request(
        "workspace/executeCommand",
        json!({"command": "altcfi.checkBuild", "arguments": []}),
    );
    let summary = summary.as_str().unwrap_or("").to_string();
    assert!(summary.contains("checked 1 objects"), "{summary}");
    let uri = uri_of(&src);
    let diags = c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    assert_eq!(
        diags.iter().filter(|d| is_conflict(d)).count(),
        1,
        "{diags:#?}"
    );
    c.shutdown();
}

/// Sends the whole new text of a document.
fn change(c: &mut Client, uri: &str, version: i32, text: &str) {
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
    );
}

fn is_unsaved_conflict(d: &Value) -> bool {
    is_conflict(d) && d["source"] == "altcfi (unsaved)"
}

#[test]
fn live_mode_shows_a_conflict_typed_without_saving_and_clears_it_on_revert() {
    let (_dir, root) = workspace();
    compile_commands(&root, "build/demo.o");
    let src = root.join("examples/demo.S");
    let conflicting = std::fs::read_to_string(&src).expect("read");
    let bad = alternative_line(&conflicting, "save_fl_bad");
    // The file on disk and its object are the fixed version.
    let fixed = fixed_demo(&conflicting);
    std::fs::write(&src, &fixed).expect("write fixed");
    gcc(&root, "build/demo.o");
    let obj_before = std::fs::read(root.join("build/demo.o")).expect("object");
    let listing = |root: &Path| {
        let mut v: Vec<PathBuf> = walk(root);
        v.sort();
        v
    };
    let files_before = listing(&root);

    let mut c = Client::start(&root);
    c.initialize(&root, json!({}));
    let uri = c.open(&src, "asm");
    let first = c.wait_diagnostics(&uri, |_| true);
    assert!(!first.iter().any(is_conflict), "{first:#?}");

    // Type the conflicting replacement, do not save.
    let t0 = Instant::now();
    change(&mut c, &uri, 2, &conflicting);
    let diags = c.wait_diagnostics(&uri, |d| d.iter().any(is_unsaved_conflict));
    eprintln!(
        "timing: keystroke → unsaved diagnostics {} ms",
        t0.elapsed().as_millis()
    );
    let d = diags
        .iter()
        .find(|d| is_unsaved_conflict(d))
        .expect("conflict");
    assert_eq!(d["range"]["start"]["line"], bad, "{d:#}");
    // Hover comes from the unsaved text's object too.
    let hover = c.hover(&uri, bad, 3);
    let value = hover["contents"]["value"].as_str().unwrap_or_default();
    assert!(
        value.contains("%rcx") && value.contains("rsp+24"),
        "{hover}"
    );

    // Two lines inserted above: the squiggle moves with them at once, then the new result keeps it there.
    let shifted = format!("/* one */\n/* two */\n{conflicting}");
    c.forget_diagnostics(&uri);
    change(&mut c, &uri, 3, &shifted);
    let (moved, _) = c.next_diagnostics(&uri);
    let lines: Vec<&Value> = moved
        .iter()
        .filter(|d| is_conflict(d))
        .map(|d| &d["range"]["start"]["line"])
        .collect();
    assert_eq!(lines, [&json!(bad + 2)], "{moved:#?}");
    // (The new result equals the moved diagnostics, so nothing more is published for it.)

    // A typo: one error at its line; the conflict stays, marked stale.
    let broken = shifted.replacen("\tret\n", "\tpusx %rcx\n\tret\n", 1);
    let typo = broken
        .lines()
        .position(|l| l.contains("pusx"))
        .expect("typo") as u64;
    change(&mut c, &uri, 4, &broken);
    let diags = c.wait_diagnostics(&uri, |d| d.iter().any(|x| x["code"] == "compile-error"));
    let err = diags
        .iter()
        .find(|x| x["code"] == "compile-error")
        .expect("error");
    assert_eq!(err["range"]["start"]["line"], typo, "{err:#}");
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("pusx")),
        "{err:#}"
    );
    let stale = diags
        .iter()
        .find(|d| is_conflict(d))
        .expect("stale conflict kept");
    assert!(
        stale["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("(stale)")),
        "{stale:#}"
    );
    assert_eq!(stale["tags"], json!([1]), "{stale:#}");

    // Back to the text on disk: the conflict goes.
    change(&mut c, &uri, 5, &fixed);
    let diags = c.wait_diagnostics(&uri, |d| {
        !d.iter().any(is_conflict) && !d.iter().any(|x| x["code"] == "compile-error")
    });
    assert!(diags.iter().all(|d| d["severity"] != 1), "{diags:#?}");

    // The build's object and the tree were never touched.
    assert_eq!(
        std::fs::read(root.join("build/demo.o")).expect("object"),
        obj_before
    );
    assert_eq!(listing(&root), files_before);
    c.shutdown();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// No compilation database: the object is found through the DWARF index, and the command for live mode comes from
/// the `live.command` template in `altcfi.toml`.
#[test]
fn live_mode_uses_the_command_template_of_altcfi_toml() {
    let (_dir, root) = workspace();
    let src = root.join("examples/demo.S");
    let conflicting = std::fs::read_to_string(&src).expect("read");
    let bad = alternative_line(&conflicting, "save_fl_bad");
    let fixed = fixed_demo(&conflicting);
    std::fs::write(&src, &fixed).expect("write fixed");
    gcc(&root, "build/demo.o");
    std::fs::write(
        root.join("altcfi.toml"),
        "[live]\ncommand = [\"gcc\", \"-c\", \"-g\", \"{file}\", \"-o\", \"{output}\"]\n",
    )
    .expect("write altcfi.toml");

    let mut c = Client::start(&root);
    c.initialize(&root, json!({}));
    let uri = c.open(&src, "asm");
    let first = c.wait_diagnostics(&uri, |_| true);
    assert!(!first.iter().any(is_conflict), "{first:#?}");
    change(&mut c, &uri, 2, &conflicting);
    let diags = c.wait_diagnostics(&uri, |d| d.iter().any(is_unsaved_conflict));
    let d = diags
        .iter()
        .find(|d| is_unsaved_conflict(d))
        .expect("conflict");
    assert_eq!(d["range"]["start"]["line"], bad, "{d:#}");
    // The template's `{output}` is replaced by a temporary object: the build's is untouched.
    assert!(!root.join("examples/demo.o").exists());
    c.shutdown();
}

#[test]
fn code_action_offers_a_checked_fix_that_makes_the_site_clean() {
    let BuiltDemo {
        dir: _dir,
        root,
        src,
        text,
        bad,
    } = built_demo();

    let mut c = Client::start(&root);
    let init = c.initialize(&root, json!({}));
    assert!(
        init["capabilities"]["codeActionProvider"].is_object(),
        "{init}"
    );
    let uri = c.open(&src, "asm");
    let diags = c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    let conflict = diags
        .iter()
        .find(|d| is_conflict(d))
        .expect("conflict")
        .clone();

    let t0 = Instant::now();
    let actions = c.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": conflict["range"],
               "context": {"diagnostics": [conflict]}}),
    );
    eprintln!(
        "timing: code action with every candidate checked {} ms",
        t0.elapsed().as_millis()
    );
    let actions = actions.as_array().cloned().expect("actions");
    assert!(!actions.is_empty());
    for a in &actions {
        let title = a["title"].as_str().expect("title");
        assert!(
            title.starts_with("pad ") && title.ends_with(": the site becomes clean"),
            "{title}"
        );
        assert_eq!(a["kind"], "quickfix");
    }
    // Apply the first: one edit of the ALTERNATIVE line.
    let edits = actions[0]["edit"]["changes"][&uri]
        .as_array()
        .cloned()
        .expect("edits");
    assert_eq!(edits.len(), 1);
    assert_eq!(edits[0]["range"]["start"]["line"], bad);
    let new_line = edits[0]["newText"].as_str().expect("newText");
    let fixed: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i as u32 == bad {
                format!("{new_line}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    // In the editor first (unsaved): the conflict goes.
    change(&mut c, &uri, 2, &fixed);
    c.wait_diagnostics(&uri, |d| !d.iter().any(is_conflict));
    c.shutdown();

    // Saved and built for real: altcfi check finds the file clean.
    std::fs::write(&src, &fixed).expect("write");
    gcc(&root, "build/demo.o");
    let out = Command::new(env!("CARGO_BIN_EXE_altcfi"))
        .arg("check")
        .arg(root.join("build/demo.o"))
        .output()
        .expect("altcfi check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A line without a conflict gets no action.
    let mut c = Client::start(&root);
    c.initialize(&root, json!({}));
    let uri = c.open(&src, "asm");
    c.wait_diagnostics(&uri, |_| true);
    let none = c.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri},
               "range": {"start": {"line": bad, "character": 0}, "end": {"line": bad, "character": 0}},
               "context": {"diagnostics": []}}),
    );
    assert!(none.is_null(), "{none}");
    c.shutdown();
}

#[test]
fn live_mode_refuses_an_unsafe_command_by_name_and_keeps_the_build_object() {
    let (_dir, root) = workspace();
    gcc(&root, "build/demo.o");
    let db = json!([{
        "directory": root,
        "file": "examples/demo.S",
        "arguments": ["gcc", "-fplugin=./evil.so", "-c", "-g", "examples/demo.S", "-o", "build/demo.o"],
    }]);
    std::fs::write(root.join("compile_commands.json"), db.to_string()).expect("write db");
    let src = root.join("examples/demo.S");
    let text = std::fs::read_to_string(&src).expect("read");
    let mut c = Client::start(&root);
    c.initialize(&root, json!({}));
    let uri = c.open(&src, "asm");
    c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    change(&mut c, &uri, 2, &format!("{text}/* edited */\n"));
    let log = c.wait_log(|m| m.contains("live mode"));
    assert!(
        log.contains("refusing `-fplugin=./evil.so`") && log.contains("plugin"),
        "{log}"
    );
    // Still the build's object's findings (the same as before, so nothing new is published), never the unsaved
    // text's: a hover still answers from the object.
    let hover = c.hover(&uri, alternative_line(&text, "save_fl_bad"), 2);
    assert!(
        hover["contents"]["value"]
            .as_str()
            .is_some_and(|v| v.contains("rsp+24")),
        "{hover}"
    );
    assert!(
        !c.pending
            .iter()
            .any(|m| m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["diagnostics"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(is_unsaved_conflict))),
        "{:#?}",
        c.pending
    );
    c.shutdown();
}

#[test]
fn live_mode_on_a_c_file_reports_progress_while_compiling() {
    let (_dir, root) = c_fixture_workspace();
    let alt = root.join("alt");
    let args = [
        "gcc",
        "-c",
        "-O2",
        "-fno-asynchronous-unwind-tables",
        "-fno-pic",
        "-mno-red-zone",
        "-fno-stack-protector",
        "-g",
        "-fno-omit-frame-pointer",
        "alt/c-conflict-612.c",
        "-o",
        "alt/c-conflict-612.o",
    ];
    let db = json!([{"directory": root, "file": "alt/c-conflict-612.c", "arguments": args}]);
    std::fs::write(root.join("compile_commands.json"), db.to_string()).expect("write db");
    let o = Command::new(args[0])
        .args(&args[1..])
        .current_dir(&root)
        .output()
        .expect("gcc");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c_file = alt.join("c-conflict-612.c");
    let text = std::fs::read_to_string(&c_file).expect("read");

    let mut c = Client::start(&root);
    c.initialize(&root, json!({}));
    let uri = c.open(&c_file, "c");
    c.wait_diagnostics(&uri, |d| d.iter().any(is_conflict));
    change(&mut c, &uri, 2, &format!("{text}/* edited */\n"));
    let diags = c.wait_diagnostics(&uri, |d| d.iter().any(is_unsaved_conflict));
    assert!(diags.iter().any(is_unsaved_conflict));
    let kinds: Vec<String> = c
        .pending
        .iter()
        .filter(|m| {
            m["method"] == "$/progress"
                && m["params"]["token"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("altcfi/live/"))
        })
        .map(|m| {
            m["params"]["value"]["kind"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["begin", "end"], "{:#?}", c.pending);
    c.shutdown();
}
