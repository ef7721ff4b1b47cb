//! `altcfi check --format sarif` against Microsoft's reference SARIF validator (`Sarif.Multitool validate`, npm
//! package `@microsoft/sarif-multitool-linux`, installed into `.cache/sarif/` by `scripts/deps-sarif.sh`, which this
//! test runs when `ALTCFI_SARIF_MULTITOOL` does not name the binary). The validator's rules are the spec: every log
//! (fixture objects with findings and DWARF, the same objects without DWARF, a run without results) must draw no
//! error and no warning from it. A validator that cannot be installed fails the test, it never skips it.
//!
//! Also the links of the reports: JSON `docs`, SARIF `helpUri`/`informationUri` point at the finding pages shipped
//! in this repository (`docs/findings`, found beside the binary), at `--docs-base`, or nowhere.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use support::{build_fixture_with, fixtures, repo_root};

/// Fixtures with findings of several kinds: alternative conflicts in `.S` and in C through an inline header (related
/// locations in two files), stack state mismatches, a return with a modified frame, a fall-through.
const WITH_FINDINGS: &[&str] = &[
    "conflict-nop-vs-push-612",
    "multi-conflicts-612",
    "c-conflict-612",
    "stack-state-mismatch",
    "return-modified-frame",
    "falls-through",
];

/// The validator binary: `ALTCFI_SARIF_MULTITOOL`, else what `scripts/deps-sarif.sh` installs (once per process).
fn multitool() -> &'static Path {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        if let Some(p) = std::env::var_os("ALTCFI_SARIF_MULTITOOL").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let script = repo_root().join("scripts/deps-sarif.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "the SARIF validator (Sarif.Multitool from npm @microsoft/sarif-multitool-linux) could not be installed, \
             and this test needs it: {} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(|l| PathBuf::from(l.trim()))
            .unwrap_or_default();
        assert!(
            path.is_file(),
            "{} printed no validator path (got {:?})",
            script.display(),
            path
        );
        path
    })
}

/// Runs `altcfi` in `cwd` with `env` set; (exit status, stdout, stderr).
fn altcfi(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_altcfi"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("ALTCFI_DOCS_BASE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run altcfi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Builds the named fixtures into `dir` with `extra` gcc flags; the objects' paths.
fn build(names: &[&str], dir: &Path, extra: &[&str]) -> Vec<String> {
    let all = fixtures();
    std::fs::create_dir_all(dir).expect("object dir");
    names
        .iter()
        .map(|n| {
            let f = all
                .iter()
                .find(|f| f.name == *n)
                .unwrap_or_else(|| panic!("no fixture {n}"));
            let o = build_fixture_with(f, dir, extra);
            o.to_str().expect("utf-8 path").to_string()
        })
        .collect()
}

/// The level of a validator result: its own, else its rule's default, else SARIF's default (`warning`).
fn level(result: &Value, rules: &[Value]) -> String {
    if let Some(l) = result["level"].as_str() {
        return l.to_string();
    }
    let rule = result["ruleIndex"]
        .as_u64()
        .and_then(|i| rules.get(i as usize))
        .or_else(|| rules.iter().find(|r| r["id"] == result["ruleId"]));
    rule.and_then(|r| r["defaultConfiguration"]["level"].as_str())
        .unwrap_or("warning")
        .to_string()
}

/// Validates `sarif` (written to `dir/name.sarif`) with the reference validator and asserts it reports no error and
/// no warning (its notes are advice such as "consider numeric rule ids" and are allowed).
fn assert_valid(sarif: &str, dir: &Path, name: &str) {
    let input = dir.join(format!("{name}.sarif"));
    let output = dir.join(format!("{name}.validation.sarif"));
    std::fs::write(&input, sarif).expect("write SARIF");
    let out = Command::new(multitool())
        .arg("validate")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--log", "ForceOverwrite"])
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .output()
        .expect("run Sarif.Multitool");
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "Sarif.Multitool validate failed to run:\n{console}"
    );
    let text = std::fs::read_to_string(&output)
        .unwrap_or_else(|e| panic!("{}: {e}\n{console}", output.display()));
    let log: Value = serde_json::from_str(&text).expect("validator output is JSON");
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut problems = Vec::new();
    for r in run["results"].as_array().into_iter().flatten() {
        let l = level(r, &rules);
        if l == "error" || l == "warning" {
            problems.push(format!(
                "{} {l}: {}",
                r["ruleId"].as_str().unwrap_or("?"),
                r["message"]
            ));
        }
    }
    for inv in run["invocations"].as_array().into_iter().flatten() {
        if inv["executionSuccessful"] != true {
            problems.push(format!("the validation did not complete: {inv}"));
        }
        for key in [
            "toolExecutionNotifications",
            "toolConfigurationNotifications",
        ] {
            for n in inv[key].as_array().into_iter().flatten() {
                if n["level"] == "error" || n["level"] == "warning" {
                    problems.push(format!("{key}: {n}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the reference validator rejects the SARIF of {name} ({}):\n{}\n\nvalidator output:\n{console}",
        input.display(),
        problems.join("\n")
    );
}

/// Every artifact location of `log`: relative to `%SRCROOT%`, or an absolute `file://` URI.
fn artifact_locations(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "artifactLocation" || k == "analysisTarget" {
                    out.push(x.clone());
                }
                artifact_locations(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| artifact_locations(x, out)),
        _ => {}
    }
}

fn parse(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// A `file://` URL's path (no percent-escapes in the paths these tests use).
fn file_path(url: &str) -> PathBuf {
    PathBuf::from(
        url.strip_prefix("file://")
            .unwrap_or_else(|| panic!("not a file:// URL: {url}")),
    )
}

/// Objects with DWARF: one run, every finding on its source line relative to `%SRCROOT%` (the repository, the
/// current directory), the objects (outside it) as absolute `file://` analysis targets, rules linking to the shipped
/// pages; and the validator accepts it.
#[test]
fn sarif_with_findings_and_dwarf_is_valid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let objs = build(WITH_FINDINGS, &dir.path().join("objs"), &["-g"]);
    let root = repo_root();
    let mut args = vec!["check", "--format", "sarif"];
    args.extend(objs.iter().map(String::as_str));
    let (code, out, err) = altcfi(&root, &args, &[]);
    assert_eq!(code, 1, "{err}");
    assert_valid(&out, dir.path(), "dwarf");
    let log = parse(&out);
    let runs = log["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "one run for many objects");
    let run = &runs[0];
    assert_eq!(
        run["originalUriBaseIds"]["%SRCROOT%"]["uri"],
        format!("file://{}/", root.display())
    );
    let results = run["results"].as_array().expect("results");
    assert!(results.len() >= WITH_FINDINGS.len(), "{out}");
    for r in results {
        let loc = &r["locations"][0]["physicalLocation"];
        if r["properties"]["section"].is_null() {
            // No machine location (`X() falls through to next function Y()`): the whole object.
            assert_eq!(loc["region"]["byteOffset"], 0, "{r:#}");
            continue;
        }
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "%SRCROOT%", "{r:#}");
        let uri = loc["artifactLocation"]["uri"].as_str().expect("uri");
        assert!(
            uri.starts_with("tests/fixtures/") && root.join(uri).is_file(),
            "{uri}"
        );
        assert!(loc["region"]["startLine"].as_u64().is_some_and(|l| l > 0));
        let target = r["analysisTarget"]["uri"].as_str().expect("analysisTarget");
        assert!(
            target.starts_with("file:///") && file_path(target).is_file(),
            "{target}"
        );
        assert!(r["locations"][0]["logicalLocations"][0]["name"].is_string());
    }
    assert!(
        results.iter().any(|r| r["relatedLocations"]
            .as_array()
            .is_some_and(|a| a.len() > 1)),
        "related locations: {out}"
    );
    let mut locs = Vec::new();
    artifact_locations(&log, &mut locs);
    for l in &locs {
        let uri = l["uri"].as_str().expect("uri");
        assert!(
            (l["uriBaseId"] == "%SRCROOT%" && !uri.starts_with('/') && !uri.contains(':'))
                || (l.get("uriBaseId").is_none() && uri.starts_with("file:///")),
            "{l}"
        );
    }
    // Links: the pages shipped in this repository, as file:// URLs that exist.
    let driver = &run["tool"]["driver"];
    let info = driver["informationUri"].as_str().expect("informationUri");
    assert!(file_path(info).is_file(), "{info}");
    for rule in driver["rules"].as_array().expect("rules") {
        let help = rule["helpUri"].as_str().expect("helpUri");
        assert!(
            help.ends_with(&format!(
                "/docs/findings/{}.md",
                rule["id"].as_str().unwrap()
            )) && file_path(help).is_file(),
            "{help}"
        );
    }

    // --sarif-root: the objects' directory; sources outside it become absolute file:// URIs, the objects relative.
    let objs_dir = dir.path().join("objs");
    let (_, out, err) = altcfi(
        &root,
        &[
            &[
                "check",
                "--format",
                "sarif",
                "--sarif-root",
                objs_dir.to_str().unwrap(),
            ],
            &args[3..],
        ]
        .concat(),
        &[],
    );
    assert_valid(&out, dir.path(), "dwarf-root");
    let log = parse(&out);
    let r = &log["runs"][0]["results"][0];
    assert_eq!(
        r["analysisTarget"]["uriBaseId"], "%SRCROOT%",
        "{err}\n{r:#}"
    );
    assert!(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("file:///"))
    );
}

/// Objects without DWARF (in a directory whose name needs escaping in a URI): every result is placed on its
/// instruction's bytes in the object (a region a binary artifact can have), and the validator accepts it. The same
/// with `--no-source` on objects that have DWARF.
#[test]
fn sarif_without_dwarf_is_valid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let objs_dir = dir.path().join("objs #1");
    let objs = build(WITH_FINDINGS, &objs_dir, &["-g0"]);
    let mut args = vec!["check", "--format", "sarif"];
    args.extend(objs.iter().map(String::as_str));
    let (code, out, err) = altcfi(dir.path(), &args, &[]);
    assert_eq!(code, 1, "{err}");
    assert_valid(&out, dir.path(), "no-dwarf");
    let log = parse(&out);
    let results = log["runs"][0]["results"].as_array().expect("results");
    assert!(results.len() >= WITH_FINDINGS.len(), "{out}");
    for r in results {
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "%SRCROOT%", "{r:#}");
        let uri = loc["artifactLocation"]["uri"].as_str().expect("uri");
        assert!(
            uri.starts_with("objs%20%231/") && uri.ends_with(".o"),
            "{uri}"
        );
        let (off, len) = (
            loc["region"]["byteOffset"].as_u64().expect("byteOffset"),
            loc["region"]["byteLength"].as_u64().expect("byteLength"),
        );
        let obj = objs_dir.join(uri.trim_start_matches("objs%20%231/"));
        let size = std::fs::metadata(&obj).expect("object").len();
        assert!(len > 0 && off + len <= size, "{r:#}");
        assert!(
            r.get("analysisTarget").is_none(),
            "the object is the location"
        );
    }

    let with_g = build(WITH_FINDINGS, &dir.path().join("g"), &["-g"]);
    let mut args = vec!["check", "--format", "sarif", "--no-source"];
    args.extend(with_g.iter().map(String::as_str));
    let (code, out, err) = altcfi(dir.path(), &args, &[]);
    assert_eq!(code, 1, "{err}");
    assert_valid(&out, dir.path(), "no-source");
}

/// A run without results (a clean object) is valid too.
#[test]
fn sarif_without_results_is_valid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let objs = build(&["clean-call-612"], dir.path(), &["-g"]);
    let (code, out, err) = altcfi(dir.path(), &["check", "--format", "sarif", &objs[0]], &[]);
    assert_eq!(code, 0, "{err}");
    assert_valid(&out, dir.path(), "empty");
    let log = parse(&out);
    assert_eq!(log["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        log["runs"][0]["results"].as_array().map(Vec::len),
        Some(0),
        "{out}"
    );
}

/// The docs links: the shipped pages by default (`file://`, existing), `--docs-base` and `ALTCFI_DOCS_BASE` when
/// given, and none at all (JSON `"docs": null`, no `helpUri`) when the base is empty.
#[test]
fn docs_links_point_at_pages_that_exist_or_nowhere() {
    let dir = tempfile::tempdir().expect("temp dir");
    let objs = build(&["conflict-nop-vs-push-612"], dir.path(), &[]);
    let o = objs[0].as_str();
    let json = |extra: &[&str], env: &[(&str, &str)]| {
        let args = [&["check", "--format", "json"], extra, &[o]].concat();
        let (code, out, err) = altcfi(dir.path(), &args, env);
        assert_eq!(code, 1, "{err}");
        parse(&out)["files"][0]["findings"][0]["docs"].clone()
    };
    let shipped = json(&[], &[]);
    let shipped = shipped.as_str().expect("docs link");
    assert!(
        shipped.ends_with("/docs/findings/alt-stack-conflict.md"),
        "{shipped}"
    );
    assert_eq!(
        file_path(shipped),
        repo_root().join("docs/findings/alt-stack-conflict.md")
    );
    assert_eq!(
        json(
            &["--docs-base", "https://example.org/altcfi/findings/"],
            &[]
        ),
        "https://example.org/altcfi/findings/alt-stack-conflict.md"
    );
    assert_eq!(
        json(&[], &[("ALTCFI_DOCS_BASE", "https://example.org/f")]),
        "https://example.org/f/alt-stack-conflict.md"
    );
    assert_eq!(json(&[], &[("ALTCFI_DOCS_BASE", "")]), Value::Null);
    assert_eq!(json(&["--docs-base", ""], &[]), Value::Null);

    let (_, out, _) = altcfi(
        dir.path(),
        &["check", "--format", "sarif", "--docs-base", "", o],
        &[],
    );
    let log = parse(&out);
    let driver = &log["runs"][0]["tool"]["driver"];
    assert!(driver.get("informationUri").is_none(), "{driver}");
    assert!(driver["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .all(|r| r.get("helpUri").is_none()));
}
