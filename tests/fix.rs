//! `altcfi fix`: the checked fixes of the demo's conflict printed as unified diffs, `--apply` writes the first, and
//! the file then builds to an object `altcfi check` finds clean; a command the live-compile rules refuse is an
//! error that names the flag.

#[path = "support/lsp_client.rs"]
mod lsp_client;
mod support;

use lsp_client::{alternative_line, gcc, workspace};
use serde_json::json;
use std::process::Command;

fn altcfi(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_altcfi"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run altcfi")
}

/// `altcfi fix examples/demo.S --compile-commands compile_commands.json [extra…]` in `root`.
fn fix_demo(root: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "fix",
        "examples/demo.S",
        "--compile-commands",
        "compile_commands.json",
    ];
    args.extend_from_slice(extra);
    altcfi(&args, root)
}

#[test]
fn fix_prints_checked_diffs_and_apply_makes_the_file_clean() {
    let (_dir, root) = workspace();
    lsp_client::compile_commands(&root, "build/demo.o");
    let src = root.join("examples/demo.S");
    let text = std::fs::read_to_string(&src).expect("read");
    let bad = alternative_line(&text, "save_fl_bad") + 1;

    let out = fix_demo(&root, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("examples/demo.S:{bad}: pad ")),
        "{stdout}"
    );
    assert!(stdout.contains(": the site becomes clean"), "{stdout}");
    assert!(
        stdout.contains("--- a/examples/demo.S") && stdout.contains("+++ b/examples/demo.S"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&src).expect("read"),
        text,
        "fix without --apply changed the file"
    );

    let out = fix_demo(&root, &["--apply"]);
    assert_eq!(out.status.code(), Some(0));
    assert_ne!(std::fs::read_to_string(&src).expect("read"), text);
    gcc(&root, "build/demo.o");
    let check = altcfi(&["check", "build/demo.o"], &root);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // Nothing left to fix.
    let out = fix_demo(&root, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no stack layout conflict"));
}

#[test]
fn fix_refuses_a_plugin_and_names_it() {
    let (_dir, root) = workspace();
    let db = json!([{
        "directory": root,
        "file": "examples/demo.S",
        "arguments": ["gcc", "-fplugin=./evil.so", "-c", "-g", "examples/demo.S", "-o", "build/demo.o"],
    }]);
    std::fs::write(root.join("compile_commands.json"), db.to_string()).expect("write db");
    let out = fix_demo(&root, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("-fplugin=./evil.so") && stderr.contains("plugin"),
        "{stderr}"
    );
}
