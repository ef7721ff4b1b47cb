//! The real-tree differential: subsets of real Linux trees (Debian's `linux-source-6.12` and `linux-source-6.1`,
//! `arch/x86/{entry,xen,lib}` and `kernel/sched`), each built twice by `scripts/kernel-tree.sh`:
//! - IBT off: kbuild runs objtool on every object; altcfi's warnings must be the build log's and its ORC the table
//!   objtool embedded;
//! - IBT on (6.12's `x86_64_defconfig` default): objtool never runs per object; altcfi must find kbuild's arguments by
//!   itself and equal the tree's own objtool run with them on copies.
//!
//! Objects kbuild never validates (the vdso, `OBJECT_FILES_NON_STANDARD`) must be noted as such and give no finding.
//! altcfi gets no option in any case. `scripts/kernel-diff.py` holds the oracle side and says what differs. A third
//! build, in the 6.12 source tree itself (`intree`: `arch/x86/entry`), covers the in-tree layout, for the
//! differential and for Neovim.
//!
//! The sources are downloaded once into `.cache/kernel` (about 150 MB per generation) and each build takes a few
//! minutes on two cores; later runs reuse them.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::repo_root;

/// Builds `GEN-CONFIG` (idempotent) and returns its build directory.
fn tree(gen: &str, config: &str) -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/kernel-tree.sh"))
        .args([gen, config])
        .output()
        .expect("run scripts/kernel-tree.sh");
    assert!(
        out.status.success(),
        "kernel-tree.sh {gen} {config} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Runs the differential on `build` (with `standard_from` as the oracle for which objects kbuild validates when
/// objtool was delayed) and returns its summary line; panics with its report when any object differs.
fn differential(build: &Path, standard_from: Option<&Path>) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("scripts/kernel-diff.py"))
        .arg(build)
        .arg("--altcfi")
        .arg(env!("CARGO_BIN_EXE_altcfi"))
        .arg("-v");
    if let Some(s) = standard_from {
        cmd.arg("--standard-from").arg(s);
    }
    let out = cmd.output().expect("run scripts/kernel-diff.py");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{} differs from objtool:\n{text}\n{}",
        build.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = text.lines().last().unwrap_or_default().to_string();
    println!("{summary}");
    summary
}

/// The numbers of a summary line: (objects matching, objects, processed, delayed, not validated, ORC rows).
fn counts(summary: &str) -> Vec<u64> {
    summary
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn generation(gen: &str) {
    let noibt = tree(gen, "noibt");
    let ibt = tree(gen, "ibt");
    for (build, standard, processed) in [(&noibt, None, true), (&ibt, Some(noibt.as_path()), false)]
    {
        let summary = differential(build, standard);
        // "N of N objects match (P processed by kbuild, D delayed to vmlinux.o, X not validated); ORC rows R of R"
        let n: Vec<u64> = counts(&summary[summary.find(": ").unwrap_or(0)..]);
        assert!(n.len() >= 7, "unexpected summary: {summary}");
        let (matching, total, by_kbuild, delayed, skipped) = (n[0], n[1], n[2], n[3], n[4]);
        assert_eq!(matching, total, "{summary}");
        // A subset that silently lost its objects would match trivially.
        assert!(total >= 60, "too few objects: {summary}");
        if processed {
            assert!(by_kbuild >= 50 && delayed == 0, "{summary}");
        } else {
            assert!(delayed >= 50 && by_kbuild == 0, "{summary}");
        }
        assert!(
            skipped >= 5,
            "the vdso objects should be noted as not validated: {summary}"
        );
        assert!(n[n.len() - 1] >= 5000, "too few ORC rows: {summary}");
    }
}

/// An in-tree build (objects beside the sources, no `O=`), as most developers build: the same differential.
#[test]
fn linux_6_12_in_tree_build_matches_objtool() {
    let build = tree("6.12", "intree");
    let summary = differential(&build, None);
    let n: Vec<u64> = counts(&summary[summary.find(": ").unwrap_or(0)..]);
    assert!(n.len() >= 7, "unexpected summary: {summary}");
    assert_eq!(n[0], n[1], "{summary}");
    assert!(
        n[2] >= 10 && n[3] == 0,
        "objtool ran on the entry objects: {summary}"
    );
    assert!(n[n.len() - 1] >= 1000, "too few ORC rows: {summary}");
}

#[test]
fn linux_6_12_tree_matches_objtool() {
    generation("6.12");
}

#[test]
fn linux_6_1_tree_matches_objtool() {
    generation("6.1");
}

/// Neovim's side of a kernel developer opening an assembler source of an `O=` build: the plugin with no setting
/// but its command. Writes `key=value` lines (newlines as `\n`) to `$ALTCFI_OUT`.
const NVIM_SCRIPT: &str = r#"
vim.opt.rtp:prepend(os.getenv('ALTCFI_REPO') .. '/editors/nvim')
vim.cmd('runtime plugin/altcfi.lua')
require('altcfi').setup({ cmd = { os.getenv('ALTCFI_BIN'), 'lsp' } })
local out = {}
local function put(k, v) table.insert(out, k .. '=' .. (tostring(v):gsub('\n', '\\n'))) end
vim.cmd('edit ' .. os.getenv('ALTCFI_SRC'))
local buf = vim.api.nvim_get_current_buf()
put('filetype', vim.bo[buf].filetype)
put('attached', vim.wait(30000, function() return require('altcfi').client(buf) ~= nil end, 50))
local c = require('altcfi').client(buf)
if c then
  put('root', c.config.root_dir)
  local uri = vim.uri_from_bufnr(buf)
  local st
  vim.wait(60000, function()
    st = c.request_sync('altcfi/status', { textDocument = { uri = uri } }, 10000)
    return st and st.result and st.result.text:match('[1-9]%d* object') ~= nil
  end, 200)
  if st and st.result then put('status', st.result.text); put('details', st.result.details) end
  local line = tonumber(os.getenv('ALTCFI_LINE'))
  local res = c.request_sync('textDocument/hover',
    { textDocument = { uri = uri }, position = { line = line - 1, character = 2 } }, 30000)
  if res and res.result then put('hover', res.result.contents.value) end
  vim.cmd('edit ' .. os.getenv('ALTCFI_HEADER'))
  local hbuf = vim.api.nvim_get_current_buf()
  put('header_filetype', vim.bo[hbuf].filetype)
  put('header_attached', vim.wait(20000, function() return require('altcfi').client(hbuf) ~= nil end, 50))
end
vim.fn.writefile(out, os.getenv('ALTCFI_OUT'))
vim.cmd('qall!')
"#;

/// Opens `arch/x86/entry/entry_64.S` in headless Neovim with no setting, in generation `gen`'s source tree built
/// as `config` says: `noibt` is an out-of-tree (`O=`) build, found through its `source` link (6.1's
/// compile_commands.json has no `.S` entries, so there the object is found through kbuild's layout); `intree` is
/// built in the tree itself. The tree root is the root, the object is found, the hover of the `UNTRAIN_RET` line
/// shows its sites with symbol names, and a header gets the plugin too.
fn neovim_in_build(gen: &str, config: &str) {
    let Some(nvim) = std::env::var_os("ALTCFI_NVIM").map(PathBuf::from) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Neovim: scripts/test.sh sets ALTCFI_NVIM (scripts/deps-nvim.sh)"
        );
        eprintln!("skipped: set ALTCFI_NVIM to a Neovim 0.11+ (bash scripts/deps-nvim.sh)");
        return;
    };
    let build = tree(gen, config);
    let src = std::fs::canonicalize(build.join("source"))
        .or_else(|_| std::fs::canonicalize(&build))
        .expect("the source tree");
    let asm = src.join("arch/x86/entry/entry_64.S");
    let text = std::fs::read_to_string(&asm).expect("read entry_64.S");
    let line = text
        .lines()
        .position(|l| l.trim() == "UNTRAIN_RET")
        .expect("an UNTRAIN_RET line")
        + 1;
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("test.lua");
    std::fs::write(&script, NVIM_SCRIPT).expect("write script");
    let out = dir.path().join("out.txt");
    let run = Command::new(&nvim)
        .args(["--headless", "--clean", "-c"])
        .arg(format!("luafile {}", script.display()))
        .env("ALTCFI_REPO", repo_root())
        .env("ALTCFI_BIN", env!("CARGO_BIN_EXE_altcfi"))
        .env("ALTCFI_SRC", &asm)
        .env("ALTCFI_LINE", line.to_string())
        .env("ALTCFI_HEADER", src.join("arch/x86/include/asm/paravirt.h"))
        .env("ALTCFI_OUT", &out)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run nvim");
    let result = std::fs::read_to_string(&out).unwrap_or_else(|_| {
        panic!(
            "nvim wrote no results: {}",
            String::from_utf8_lossy(&run.stderr)
        )
    });
    eprintln!("{gen}: {}", result.chars().take(3000).collect::<String>());
    let get = |k: &str| -> String {
        result
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .replace("\\n", "\n")
    };
    assert_eq!(get("filetype"), "asm", "{result}");
    assert_eq!(get("attached"), "true", "{result}");
    assert_eq!(PathBuf::from(get("root")), src, "the tree's root: {result}");
    assert!(
        get("status").starts_with(&format!("altcfi {gen}")),
        "{result}"
    );
    let details = get("details");
    assert!(
        details
            .lines()
            .any(|l| l.starts_with("object: ") && l.contains("/arch/x86/entry/entry_64.o")),
        "{details}"
    );
    let hover = get("hover");
    assert!(hover.contains("alternative site"), "{hover}");
    assert!(
        hover
            .lines()
            .any(|l| l.contains("call ") && !l.contains("call 0x") && !l.contains("call *0x")),
        "call targets by name: {hover}"
    );
    assert!(
        hover.lines().any(|l| l.contains("nop ×")),
        "runs of padding NOPs under one ORC row are folded: {hover}"
    );
    assert!(
        hover.lines().count() <= 80,
        "the compact hover: {} lines",
        hover.lines().count()
    );
    assert!(
        ["c", "cpp"].contains(&get("header_filetype").as_str()),
        "{result}"
    );
    assert_eq!(get("header_attached"), "true", "{result}");
}

#[test]
fn neovim_opens_a_6_12_source_of_an_o_build_with_no_settings() {
    neovim_in_build("6.12", "noibt");
}

#[test]
fn neovim_opens_a_6_1_source_of_an_o_build_with_no_settings() {
    neovim_in_build("6.1", "noibt");
}

#[test]
fn neovim_opens_a_6_12_source_of_an_in_tree_build_with_no_settings() {
    neovim_in_build("6.12", "intree");
}
