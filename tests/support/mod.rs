//! Shared test support: the repository root, the fixture corpus and its build rules (`tests/fixtures/README.md`),
//! and the reference objtool binaries fetched by `scripts/deps.sh`.

#![allow(dead_code)]

pub mod binutils;
pub mod verdict;

use altcfi_analysis::Era;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// One fixture source and its directives.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Base name without extension.
    pub name: String,
    /// Source path.
    pub src: PathBuf,
    /// Extra gcc flags.
    pub flags: Vec<String>,
    /// Oracle eras the fixture is valid for.
    pub oracles: Vec<Era>,
    /// objtool options given to both tools besides `--orc` (`altcfi-objtool-args:`, e.g. `--retpoline --prefix=16`).
    pub objtool_args: Vec<String>,
}

fn directive(text: &str, key: &str) -> Option<String> {
    for line in text.lines() {
        let t = line.trim_start();
        if !(t.is_empty() || t.starts_with('#') || t.starts_with("//")) {
            break;
        }
        let body = t
            .trim_start_matches('#')
            .trim_start_matches("//")
            .trim_start();
        if let Some(v) = body.strip_prefix(&format!("altcfi-{key}:")) {
            return Some(v.trim().to_string());
        }
    }
    None
}

/// Every fixture under `tests/fixtures/{core,alt}`, sorted by name.
pub fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for dir in ["core", "alt"] {
        let d = repo_root().join("tests/fixtures").join(dir);
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
            if ext != "S" && ext != "c" {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("read fixture");
            let flags = directive(&text, "flags")
                .map(|f| f.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            let oracles = match directive(&text, "oracle").as_deref() {
                Some("612") => vec![Era::V6_12],
                Some("61") => vec![Era::V6_1],
                _ => vec![Era::V6_12, Era::V6_1],
            };
            let objtool_args = directive(&text, "objtool-args")
                .map(|f| f.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            let name = p.file_stem().expect("stem").to_string_lossy().into_owned();
            out.push(Fixture {
                name,
                src: p,
                flags,
                oracles,
                objtool_args,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Builds a fixture into `outdir`, returning the object path.
pub fn build_fixture(f: &Fixture, outdir: &Path) -> PathBuf {
    build_fixture_with(f, outdir, &[])
}

/// Builds a fixture with `extra` gcc flags after the fixture's own (e.g. `-gdwarf-4`), returning the object path.
pub fn build_fixture_with(f: &Fixture, outdir: &Path, extra: &[&str]) -> PathBuf {
    let out = outdir.join(format!("{}.o", f.name));
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()));
    cmd.arg("-c");
    if f.src.extension().is_some_and(|x| x == "c") {
        cmd.args([
            "-O2",
            "-fno-asynchronous-unwind-tables",
            "-fno-pic",
            "-mno-red-zone",
            "-fno-stack-protector",
        ]);
        cmd.args(&f.flags)
            .args(extra)
            .arg(&f.src)
            .arg("-o")
            .arg(&out);
    } else {
        cmd.arg(&f.src)
            .arg("-o")
            .arg(&out)
            .args(&f.flags)
            .args(extra);
    }
    let o = cmd.output().expect("run gcc");
    assert!(
        o.status.success(),
        "building {} failed:\n{}",
        f.src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Paths of the reference tools.
pub struct OracleEnv {
    /// objtool 6.12 (x86 binary).
    pub objtool_612: PathBuf,
    /// objtool 6.1.
    pub objtool_61: PathBuf,
    /// Extracted `linux-headers-6.12.*-amd64` directory.
    pub kheaders_612: PathBuf,
}

/// Reads the oracle paths from the environment or `.cache/oracle/env`; panics with a clear message when absent.
pub fn oracle_env() -> OracleEnv {
    let cache = std::env::var("ALTCFI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".cache"));
    let file = cache.join("oracle/env");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let get = |key: &str| -> Option<PathBuf> {
        std::env::var(key).ok().map(PathBuf::from).or_else(|| {
            text.lines().find_map(|l| {
                l.strip_prefix(&format!("{key}="))
                    .map(|v| PathBuf::from(v.trim_matches('"')))
            })
        })
    };
    let need = |key: &str| -> PathBuf {
        match get(key) {
            Some(p) if p.exists() => p,
            _ => panic!(
                "the reference objtool is missing ({key} not set and not in {}): run scripts/deps.sh (scripts/test.sh does)",
                file.display()
            ),
        }
    };
    OracleEnv {
        objtool_612: need("OBJTOOL_612"),
        objtool_61: need("OBJTOOL_61"),
        kheaders_612: need("KHEADERS_612"),
    }
}

/// Builds the real-macro kernel module (`tests/kmod`, `scripts/build-kmod.sh`) into `outdir` and returns its
/// objects, sorted.
pub fn build_kmod(env: &OracleEnv, outdir: &Path) -> Vec<PathBuf> {
    let status = Command::new("bash")
        .arg(repo_root().join("scripts/build-kmod.sh"))
        .arg(outdir)
        .env("KHEADERS_612", &env.kheaders_612)
        .output()
        .expect("run build-kmod.sh");
    assert!(
        status.status.success(),
        "kernel module build failed:\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mut objs: Vec<PathBuf> = std::fs::read_dir(outdir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    objs.sort();
    assert!(
        objs.len() >= 10,
        "expected the module objects, found {objs:?}"
    );
    objs
}

/// Writes `NAME.S` with `scripts/gen-big-asm.py` (`text_kb` KiB of kernel-shaped text, a stack layout conflict in
/// every `conflict_every`th function, 0 for none) into `dir` and assembles it (with `-g` if `debug`); returns the
/// object's path.
pub fn generated_object(
    dir: &Path,
    name: &str,
    text_kb: u32,
    seed: u32,
    conflict_every: u32,
    debug: bool,
) -> PathBuf {
    let root = repo_root();
    let src = dir.join(format!("{name}.S"));
    let obj = dir.join(format!("{name}.o"));
    let gen = Command::new("python3")
        .arg(root.join("scripts/gen-big-asm.py"))
        .args([
            "--text-kb",
            &text_kb.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--conflict-every", &conflict_every.to_string()])
        .arg("-o")
        .arg(&src)
        .status()
        .expect("run gen-big-asm.py");
    assert!(gen.success(), "gen-big-asm.py failed");
    let cc = Command::new("gcc")
        .args(if debug {
            &["-c", "-g"][..]
        } else {
            &["-c"][..]
        })
        .arg("-I")
        .arg(root.join("tests/fixtures/alt"))
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .expect("run gcc");
    assert!(cc.success(), "gcc failed on {}", src.display());
    obj
}
