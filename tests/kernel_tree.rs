//! The real-tree differential: subsets of real Linux trees (Debian's `linux-source-6.12` and `linux-source-6.1`,
//! `arch/x86/{entry,xen,lib}` and `kernel/sched`), each built twice by `scripts/kernel-tree.sh`:
//! - IBT off: kbuild runs objtool on every object; altcfi's warnings must be the build log's and its ORC the table
//!   objtool embedded;
//! - IBT on (6.12's `x86_64_defconfig` default): objtool never runs per object; altcfi must find kbuild's arguments by
//!   itself and equal the tree's own objtool run with them on copies.
//!
//! Objects kbuild never validates (the vdso, `OBJECT_FILES_NON_STANDARD`) must be noted as such and give no finding.
//! altcfi gets no option in any case. `scripts/kernel-diff.py` holds the oracle side and says what differs.
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

#[test]
fn linux_6_12_tree_matches_objtool() {
    generation("6.12");
}

#[test]
fn linux_6_1_tree_matches_objtool() {
    generation("6.1");
}
