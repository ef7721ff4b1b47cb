//! Emitted unwind tables against altcfi's CFI (`altcfi_analysis::ehframe`, `orc::verify`), see `docs/eh-frame.md`.
//!
//! - Hand-written `.S` fixtures in `tests/fixtures/ehframe/` with correct and deliberately wrong `.cfi_*`
//!   directives: every `# expect: CODE` marker names the source line whose instruction must carry a finding of that
//!   code, and there must be no other findings.
//! - gcc-compiled C (every `tests/fixtures/core/*.c` and `tests/fixtures/ehframe/*.c`, with
//!   `-fasynchronous-unwind-tables -g`, at several optimisation/frame-pointer settings): gcc's `.eh_frame` must agree
//!   with altcfi at every instruction, apart from the differences listed in [`KNOWN`] (explained in
//!   `docs/eh-frame.md`).
//! - `readelf -wF` is the oracle for the table evaluation: its rows must equal ours for every object above.
//! - `.orc_unwind` written by objtool 6.12 into a copy of every fixture object must verify against altcfi's ORC.

mod support;

use altcfi_analysis::ehframe::{self, CfaRule, SavedRule, UnwindTables};
use altcfi_analysis::lines::LineMap;
use altcfi_analysis::orc::{self, DumpFormat};
use altcfi_analysis::{analyze, features::FeatureNames, report, Analysis, Era, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{build_fixture, fixtures, oracle_env, repo_root};

/// Disagreements between gcc's `.eh_frame` and altcfi that are genuine differences in what the two describe, as
/// `(object label, function)`; each is explained in `docs/eh-frame.md`.
const KNOWN: &[(&str, &str)] = &[];

fn ehframe_dir() -> PathBuf {
    repo_root().join("tests/fixtures/ehframe")
}

fn analyze_file(obj: &Path, era: Option<Era>) -> (Vec<u8>, Analysis) {
    let data = std::fs::read(obj).expect("read object");
    let opts = Options {
        era,
        frame_pointer: false,
        all_conflicts: true,
        ..Options::default()
    };
    let a = analyze(&data, opts, &FeatureNames::default()).expect("analysis runs");
    (data, a)
}

fn gcc(args: &[&str], src: &Path, out: &Path) {
    let o = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
        .args(args)
        .arg(src)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run gcc");
    assert!(
        o.status.success(),
        "gcc {args:?} {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `(code, line)` markers of a hand-written fixture: `# expect: CODE` at the end of a line.
fn markers(src: &Path) -> Vec<(String, u32)> {
    let text = std::fs::read_to_string(src).expect("read fixture");
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some((_, rest)) = line.split_once("# expect: ") {
            if line.trim_start().starts_with('#') {
                continue;
            }
            out.push((rest.trim().to_string(), i as u32 + 1));
        }
    }
    out.sort();
    out
}

fn asm_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(ehframe_dir())
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "S"))
        .collect();
    v.sort();
    v
}

#[test]
fn hand_written_directives_are_checked_on_the_right_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    let all = asm_fixtures();
    assert!(all.len() >= 6, "fixtures: {all:?}");
    for src in &all {
        let name = src
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let obj = dir.path().join(format!("{name}.o"));
        gcc(&["-c", "-g"], src, &obj);
        let (data, a) = analyze_file(&obj, None);
        assert!(
            a.findings.is_empty(),
            "{name}: the core analysis has findings of its own: {:?}",
            a.findings
        );
        let findings = ehframe::check_unwind_tables(&data, &a).expect("tables read");
        let lines = LineMap::new(&data).expect("line map");
        let mut got: Vec<(String, u32)> = findings
            .iter()
            .map(|f| {
                let l = f.location.as_ref().expect("located");
                let line = lines
                    .locate(l.section, l.offset)
                    .ok()
                    .and_then(|fr| fr.first().and_then(|f| f.line))
                    .unwrap_or(0);
                (f.kind.code().to_string(), line)
            })
            .collect();
        got.sort();
        let want = markers(src);
        if got != want {
            failures.push(format!(
                "{name}: want {want:?}, got {got:?}\n{}",
                report::text(&format!("{name}.o"), &findings, &[])
            ));
        }
        // The report keeps objtool's first-line shape.
        for line in report::text(&format!("{name}.o"), &findings, &[])
            .lines()
            .filter(|l| !l.starts_with(' '))
        {
            assert!(
                line.starts_with(&format!("{name}.o: warning: altcfi: ")),
                "{line}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn wrong_directive_findings_explain_both_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = ehframe_dir().join("wrong-save-slot.S");
    let obj = dir.path().join("wrong-save-slot.o");
    gcc(&["-c", "-g"], &src, &obj);
    let (data, a) = analyze_file(&obj, None);
    let findings = ehframe::check_unwind_tables(&data, &a).expect("tables read");
    let text = report::text("wrong-save-slot.o", &findings, &[]);
    assert!(
        text.contains(
            "wrong-save-slot.o: warning: altcfi: wrong_slot2+0x1: cfi directive disagrees with code\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("rbx: the table says saved at CFA-24, the code has saved at CFA-16"),
        "{text}"
    );
    // The hover look-up gives the emitted rule next to the computed one.
    let tables = UnwindTables::read(&data).expect("tables");
    let f = findings
        .iter()
        .find(|f| {
            f.location
                .as_ref()
                .is_some_and(|l| l.display == "wrong_slot2+0x1")
        })
        .expect("finding");
    let l = f.location.as_ref().expect("location");
    let at = ehframe::emitted_rule_at(&tables, l.section, l.offset).expect("covered");
    assert_eq!(
        at.row.cfa,
        CfaRule::Register {
            reg: ehframe::dwarf_reg::RSP,
            offset: 16
        }
    );
    assert_eq!(at.row.reg(ehframe::dwarf_reg::RBX), SavedRule::AtCfa(-24));
}

/// One C build variant.
struct Variant {
    label: &'static str,
    flags: &'static [&'static str],
}

const VARIANTS: &[Variant] = &[
    Variant {
        label: "O0",
        flags: &["-O0"],
    },
    Variant {
        label: "O2",
        flags: &["-O2"],
    },
    Variant {
        label: "O2-fp",
        flags: &["-O2", "-fno-omit-frame-pointer"],
    },
    Variant {
        label: "O0-nofp",
        flags: &["-O0", "-fomit-frame-pointer"],
    },
    Variant {
        label: "Os",
        flags: &["-Os"],
    },
];

fn c_sources() -> Vec<support::Fixture> {
    let mut v: Vec<support::Fixture> = fixtures()
        .into_iter()
        .filter(|f| {
            f.src.extension().is_some_and(|x| x == "c")
                && f.src.parent().is_some_and(|d| d.ends_with("core"))
        })
        .collect();
    for e in std::fs::read_dir(ehframe_dir()).expect("dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "c") {
            v.push(support::Fixture {
                name: p.file_stem().expect("stem").to_string_lossy().into_owned(),
                src: p,
                flags: Vec::new(),
                oracles: vec![Era::V6_12],
                objtool_args: Vec::new(),
            });
        }
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Builds every C source in every variant with unwind tables and debug info; returns (label, object).
fn build_c_objects(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for f in c_sources() {
        for v in VARIANTS {
            if f.flags.iter().any(|x| x == "-pg") && v.flags.contains(&"-fomit-frame-pointer") {
                // gcc: -pg and -fomit-frame-pointer are incompatible.
                continue;
            }
            let label = format!("{}@{}", f.name, v.label);
            let obj = dir.join(format!("{label}.o"));
            let mut args: Vec<&str> = vec![
                "-c",
                "-fasynchronous-unwind-tables",
                "-g",
                "-fno-pic",
                "-mno-red-zone",
                "-fno-stack-protector",
            ];
            args.extend(v.flags);
            // The fixture's own flags last, so they win (as in tests/fixtures/README.md).
            args.extend(f.flags.iter().map(String::as_str));
            gcc(&args, &f.src, &obj);
            out.push((label, obj));
        }
    }
    out
}

#[test]
fn gcc_eh_frame_agrees_with_altcfi() {
    let dir = tempfile::tempdir().expect("temp dir");
    let objs = build_c_objects(dir.path());
    assert!(
        objs.len() >= 50,
        "expected the C corpus, got {}",
        objs.len()
    );
    let mut failures = Vec::new();
    let mut total = 0;
    let mut summary = Vec::new();
    for (label, obj) in &objs {
        let (data, a) = analyze_file(obj, None);
        let parsed = altcfi_analysis::object::Object::parse(&data).expect("parses");
        let tables = UnwindTables::from_object(&parsed).expect("tables read");
        assert!(!tables.is_empty(), "{label}: gcc wrote no .eh_frame");
        let c = ehframe::compare_counted(&parsed, &tables, &a);
        total += c.compared;
        summary.push(format!(
            "{label}: {} instructions compared, {} disagree, {} equivalent descriptions",
            c.compared, c.disagreeing, c.equivalent
        ));
        let base = label.split('@').next().unwrap_or("");
        let unexplained: Vec<_> = c
            .findings
            .iter()
            .filter(|f| {
                let func = f
                    .location
                    .as_ref()
                    .map(|l| l.display.split('+').next().unwrap_or("").to_string())
                    .unwrap_or_default();
                !KNOWN.iter().any(|&(o, fun)| o == base && fun == func)
            })
            .collect();
        if !unexplained.is_empty() {
            let v: Vec<_> = unexplained.into_iter().cloned().collect();
            failures.push(format!(
                "{label}:\n{}",
                report::text(&format!("{label}.o"), &v, &[])
            ));
        }
        if c.compared == 0 && !a.is_fatal() {
            failures.push(format!("{label}: nothing compared"));
        }
    }
    eprintln!("{}", summary.join("\n"));
    eprintln!(
        "eh_frame: {} objects, {total} (instruction, FDE) pairs compared",
        objs.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `readelf -wF` of one object: per FDE (in table order), (pc range, rows of (loc, column → text)).
type ReadelfFde = ((u64, u64), Vec<(u64, BTreeMap<String, String>)>);

fn readelf_frames(obj: &Path, debug: bool) -> Vec<ReadelfFde> {
    let out = Command::new("readelf")
        .arg(if debug {
            "--debug-dump=frames-interp"
        } else {
            "-wF"
        })
        .arg(obj)
        .output()
        .expect("run readelf");
    assert!(out.status.success(), "readelf failed on {}", obj.display());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let wanted = if debug { ".debug_frame" } else { ".eh_frame" };
    let mut fdes = Vec::new();
    let mut in_section = false;
    let mut header: Vec<String> = Vec::new();
    let mut cur: Option<ReadelfFde> = None;
    // CIE rows by CIE offset: an FDE without instructions prints no rows and has its CIE's.
    let mut cies: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    let mut cie: Option<String> = None;
    let mut fde_cie: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Contents of the ") {
            in_section = rest.starts_with(&format!("{wanted} section"));
            continue;
        }
        if !in_section {
            continue;
        }
        let t = line.trim();
        if t.contains(" FDE ") {
            if let Some(f) = cur.take() {
                fdes.push(f);
            }
            cie = None;
            fde_cie.push(
                t.split("cie=")
                    .nth(1)
                    .and_then(|x| x.split_whitespace().next())
                    .unwrap_or("")
                    .to_string(),
            );
            let pc = t.split("pc=").nth(1).expect("pc=");
            let (a, b) = pc.split_once("..").expect("range");
            let hex = |s: &str| u64::from_str_radix(s.trim(), 16).expect("hex");
            cur = Some(((hex(a), hex(b)), Vec::new()));
            continue;
        }
        if t.contains(" CIE ") {
            if let Some(f) = cur.take() {
                fdes.push(f);
            }
            header.clear();
            let off = t.split_whitespace().next().unwrap_or("").to_string();
            cies.insert(off.clone(), Vec::new());
            cie = Some(off);
            continue;
        }
        if t.starts_with("LOC") {
            header = t.split_whitespace().map(str::to_string).collect();
            continue;
        }
        let cols: Vec<&str> = t.split_whitespace().collect();
        if cols.len() != header.len() || cols.is_empty() {
            continue;
        }
        if let Some(c) = &cie {
            let mut m = BTreeMap::new();
            for (h, c) in header.iter().zip(&cols).skip(1) {
                m.insert(h.clone(), c.to_string());
            }
            cies.entry(c.clone()).or_default().push(m);
            continue;
        }
        let Some(f) = cur.as_mut() else { continue };
        let Ok(loc) = u64::from_str_radix(cols[0], 16) else {
            continue;
        };
        let mut m = BTreeMap::new();
        for (h, c) in header.iter().zip(&cols).skip(1) {
            m.insert(h.clone(), c.to_string());
        }
        f.1.push((loc, m));
    }
    if let Some(f) = cur.take() {
        fdes.push(f);
    }
    for (f, c) in fdes.iter_mut().zip(&fde_cie) {
        if f.1.is_empty() {
            if let Some(rows) = cies.get(c).and_then(|r| r.first()) {
                f.1.push((f.0 .0, rows.clone()));
            }
        }
    }
    fdes
}

/// Our rule for a readelf column, in readelf's notation.
fn our_column(row: &ehframe::EmittedRow, column: &str) -> String {
    if column == "CFA" {
        return match &row.cfa {
            CfaRule::Register { reg, offset } => {
                format!("{}{offset:+}", ehframe::dwarf_reg::name(*reg))
            }
            _ => "exp".into(),
        };
    }
    let reg = (0..=16u16)
        .find(|&r| ehframe::dwarf_reg::name(r) == column)
        .unwrap_or_else(|| panic!("unknown readelf column {column}"));
    match row.reg(reg) {
        SavedRule::AtRegOffset { .. } => "exp".into(),
        r => r.readelf(),
    }
}

fn compare_with_readelf(label: &str, obj: &Path, failures: &mut Vec<String>) -> usize {
    let data = std::fs::read(obj).expect("read");
    let tables = UnwindTables::read(&data).expect("tables read");
    let mut rows = 0;
    for (kind, debug) in [
        (ehframe::TableKind::EhFrame, false),
        (ehframe::TableKind::DebugFrame, true),
    ] {
        let ours: Vec<_> = tables.fdes.iter().filter(|f| f.table == kind).collect();
        let theirs = readelf_frames(obj, debug);
        if ours.len() != theirs.len() {
            failures.push(format!(
                "{label} {kind}: {} FDEs, readelf {}",
                ours.len(),
                theirs.len()
            ));
            continue;
        }
        for (f, ((a, b), rrows)) in ours.iter().zip(&theirs) {
            if (f.start, f.end) != (*a, *b) {
                failures.push(format!(
                    "{label} {kind} FDE {:#x}: range {:#x}..{:#x}, readelf {a:#x}..{b:#x}",
                    f.offset, f.start, f.end
                ));
                continue;
            }
            // Every address where either side starts a row: the rule in effect must be the same.
            let mut locs: Vec<u64> = rrows.iter().map(|(l, _)| *l).collect();
            locs.extend(f.rows.iter().map(|r| r.start));
            locs.sort();
            locs.dedup();
            for loc in locs {
                let Some(row) = f.row_at(loc) else {
                    failures.push(format!("{label} {kind}: no row of ours at {loc:#x}"));
                    continue;
                };
                let i = rrows.partition_point(|(l, _)| *l <= loc);
                let Some((_, cols)) = i.checked_sub(1).and_then(|i| rrows.get(i)) else {
                    failures.push(format!("{label} {kind}: no readelf row at {loc:#x}"));
                    continue;
                };
                rows += 1;
                for (col, want) in cols {
                    let got = our_column(row, col);
                    if &got != want {
                        failures.push(format!(
                            "{label} {kind} FDE {:#x} at {loc:#x}: {col} readelf {want}, ours {got}",
                            f.offset
                        ));
                    }
                }
                // Registers we have a rule for must have a readelf column (else readelf says `u`).
                for (r, rule) in &row.regs {
                    let name = ehframe::dwarf_reg::name(*r);
                    if !cols.contains_key(&name) && !matches!(rule, SavedRule::Undefined) {
                        failures.push(format!(
                            "{label} {kind} at {loc:#x}: {name} {rule} but readelf has no column"
                        ));
                    }
                }
            }
        }
    }
    rows
}

#[test]
fn table_evaluation_matches_readelf() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut objs = build_c_objects(dir.path());
    for src in asm_fixtures() {
        let name = src
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let obj = dir.path().join(format!("{name}.o"));
        gcc(&["-c", "-g"], &src, &obj);
        objs.push((name, obj));
    }
    // .debug_frame: C without .eh_frame but with -g.
    for f in c_sources().iter().take(4) {
        let obj = dir.path().join(format!("{}@debug_frame.o", f.name));
        let mut args = vec!["-c", "-O2", "-g", "-fno-asynchronous-unwind-tables"];
        args.extend(f.flags.iter().map(String::as_str));
        gcc(&args, &f.src, &obj);
        let data = std::fs::read(&obj).expect("read");
        let t = UnwindTables::read(&data).expect("tables");
        assert!(
            t.fdes
                .iter()
                .all(|f| f.table == ehframe::TableKind::DebugFrame)
                && !t.is_empty(),
            "{}: expected .debug_frame only",
            obj.display()
        );
        objs.push((format!("{}@debug_frame", f.name), obj));
    }
    let mut failures = Vec::new();
    let mut rows = 0;
    for (label, obj) in &objs {
        rows += compare_with_readelf(label, obj, &mut failures);
    }
    eprintln!(
        "readelf -wF: {} objects, {rows} row addresses agree",
        objs.len()
    );
    assert!(rows > 500, "too few rows compared: {rows}");
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn debug_frame_is_checked_like_eh_frame() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = ehframe_dir().join("push-no-adjust.S");
    // Only .debug_frame: `.cfi_sections .debug_frame` via the assembler option.
    let text = std::fs::read_to_string(&src).expect("read");
    let patched = dir.path().join("push-no-adjust-debug.S");
    std::fs::write(
        &patched,
        text.replacen("\t.text\n", "\t.cfi_sections .debug_frame\n\t.text\n", 1),
    )
    .expect("write");
    let obj = dir.path().join("push-no-adjust-debug.o");
    gcc(&["-c", "-g"], &patched, &obj);
    let (data, a) = analyze_file(&obj, None);
    let tables = UnwindTables::read(&data).expect("tables");
    assert!(tables
        .fdes
        .iter()
        .all(|f| f.table == ehframe::TableKind::DebugFrame));
    let findings = ehframe::check_unwind_tables(&data, &a).expect("read");
    let heads: Vec<String> = findings.iter().map(|f| f.headline()).collect();
    assert_eq!(
        heads,
        vec!["push_no_adjust+0x1: cfi directive disagrees with code".to_string()]
    );
}

#[test]
fn malformed_tables_are_errors_not_panics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let obj = dir.path().join("clean.o");
    gcc(&["-c"], &ehframe_dir().join("clean.S"), &obj);
    let data = std::fs::read(&obj).expect("read");
    let parsed = altcfi_analysis::object::Object::parse(&data).expect("parses");
    let sec = parsed.section_by_name(".eh_frame").expect(".eh_frame");
    let start = sec.data.as_ptr() as usize - data.as_ptr() as usize;
    let len = sec.data.len();
    // Corrupt every byte of .eh_frame in turn (a few values each): never a panic.
    for i in 0..len {
        for v in [0x00u8, 0xff, 0x7f, 0x80] {
            let mut d = data.clone();
            d[start + i] = v;
            let _ = UnwindTables::read(&d);
        }
    }
    // Truncated: a length running past the end.
    let mut d = data.clone();
    d[start..start + 4].copy_from_slice(&0xfff0u32.to_le_bytes());
    assert!(UnwindTables::read(&d).is_err());
}

fn objtool_copy(bin: &Path, obj: &Path, dir: &Path) -> Option<PathBuf> {
    let copy = dir.join(obj.file_name().expect("name"));
    std::fs::copy(obj, &copy).expect("copy");
    let out = Command::new(bin)
        .arg("--orc")
        .arg(copy.file_name().expect("name"))
        .current_dir(dir)
        .output()
        .expect("run objtool");
    assert!(out.status.success(), "objtool failed on {}", obj.display());
    let data = std::fs::read(&copy).expect("read");
    let parsed = altcfi_analysis::object::Object::parse(&data).expect("parses");
    parsed.section_by_name(".orc_unwind").map(|_| copy)
}

#[test]
fn orc_written_by_objtool_612_verifies() {
    let env = oracle_env();
    let out = tempfile::tempdir().expect("temp dir");
    let known: Vec<String> =
        std::fs::read_to_string(repo_root().join("tests/known-divergences.txt"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
    let mut verified = 0;
    let mut rows = 0;
    let mut failures = Vec::new();
    for f in fixtures() {
        if !f.oracles.contains(&Era::V6_12) || known.contains(&format!("{} 6.12", f.name)) {
            continue;
        }
        let obj = build_fixture(&f, out.path());
        let dir = tempfile::tempdir().expect("temp dir");
        let Some(copy) = objtool_copy(&env.objtool_612, &obj, dir.path()) else {
            continue;
        };
        let (_, a) = analyze_file(&copy, Some(Era::V6_12));
        let existing = a.existing_orc.clone().expect("read .orc_unwind");
        let computed = a.orc.clone().unwrap_or_default();
        let locate = |s: usize, o: u64| ehframe::location_in(&a, s, o);
        let diffs = orc::verify(&existing, &computed, DumpFormat::Modern, &locate);
        rows += existing.len();
        verified += 1;
        if !diffs.is_empty() {
            failures.push(format!(
                "{}:\n{}",
                f.name,
                report::text(&f.name, &diffs, &[])
            ));
        }
    }
    eprintln!("orc --verify: {verified} objtool-processed objects, {rows} rows");
    assert!(verified >= 50, "only {verified} objects verified");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn orc_verify_reports_a_changed_entry_in_words() {
    let env = oracle_env();
    let out = tempfile::tempdir().expect("temp dir");
    let f = fixtures()
        .into_iter()
        .find(|f| f.name == "push-pop")
        .expect("push-pop fixture");
    let obj = build_fixture(&f, out.path());
    let odir = tempfile::tempdir().expect("temp dir");
    let copy = objtool_copy(&env.objtool_612, &obj, odir.path()).expect("orc written");
    let (_, a) = analyze_file(&copy, Some(Era::V6_12));
    let mut existing = a.existing_orc.clone().expect("rows");
    let row = existing
        .iter_mut()
        .find(|r| r.entry.sp_offset == 16)
        .expect("a row with sp+16");
    row.entry.sp_offset = 24;
    let computed = a.orc.clone().unwrap_or_default();
    let locate = |s: usize, o: u64| ehframe::location_in(&a, s, o);
    let diffs = orc::verify(&existing, &computed, DumpFormat::Modern, &locate);
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    let text = report::text("push-pop.o", &diffs, &[]);
    assert!(text.contains("in the object: type:call sp:sp+24"), "{text}");
    assert!(text.contains("computed:      type:call sp:sp+16"), "{text}");
    assert!(text.contains("call frame, CFA=rsp+16"), "{text}");
}

#[test]
fn cli_check_eh_frame_and_verify_orc() {
    let exe = env!("CARGO_BIN_EXE_altcfi");
    let dir = tempfile::tempdir().expect("temp dir");
    let obj = dir.path().join("sub-wrong-offset.o");
    gcc(
        &["-c", "-g"],
        &ehframe_dir().join("sub-wrong-offset.S"),
        &obj,
    );
    // Without the flag: clean (the code itself is fine).
    let plain = Command::new(exe)
        .arg("check")
        .arg(&obj)
        .output()
        .expect("run");
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    let o = Command::new(exe)
        .args(["check", "--eh-frame"])
        .arg(&obj)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.ends_with(
            "sub-wrong-offset.o: warning: altcfi: sub_wrong+0x4: cfi directive disagrees with code"
        )),
        "{text}"
    );
    assert!(
        text.contains("CFA: the table says rsp+24, the code has rsp+40"),
        "{text}"
    );
    // --verify-orc on an objtool-processed copy is clean; `orc --verify` agrees.
    let env = oracle_env();
    let clean = dir.path().join("clean.o");
    gcc(&["-c", "-g"], &ehframe_dir().join("clean.S"), &clean);
    let odir = tempfile::tempdir().expect("temp dir");
    let copy = objtool_copy(&env.objtool_612, &clean, odir.path()).expect("orc written");
    let o = Command::new(exe)
        .args(["check", "--verify-orc", "--eh-frame"])
        .arg(&copy)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = Command::new(exe)
        .args(["orc", "--verify"])
        .arg(&copy)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("ORC verified"));
}

/// gcc's known gap: in compiled C, stack changes inside inline `asm` and functions written in top-level `asm` are
/// not described by gcc's tables. They are `asm-cfi-gap` notes, one per function with each place as a related
/// location, and do not make `check` fail; the same instructions assembled from a hand-written `.S` (no compiler
/// `.ident`) stay `cfi-directive-mismatch` warnings.
#[test]
fn compiler_gaps_in_inline_asm_are_notes_grouped_per_function() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = repo_root().join("tests/fixtures/asm-gap/inline-asm.c");
    let obj = dir.path().join("inline-asm.o");
    gcc(
        &["-c", "-O2", "-g", "-fasynchronous-unwind-tables"],
        &src,
        &obj,
    );
    let (data, a) = analyze_file(&obj, None);
    let found = ehframe::check_unwind_tables(&data, &a).expect("tables read");
    let summary: Vec<(&str, &str, usize)> = found
        .iter()
        .map(|f| {
            let func = f.message.split("()").next().unwrap_or_default();
            (f.kind.code(), func, f.related.len())
        })
        .collect();
    let gap = |func: &str| summary.iter().find(|(_, f, _)| *f == func).copied();
    assert!(
        found
            .iter()
            .all(|f| f.kind.code() == "asm-cfi-gap" && f.kind.is_note()),
        "{summary:?}"
    );
    // One note per function: two asm statements in flags_twice() are one finding with several places.
    assert_eq!(found.len(), 3, "{summary:?}");
    assert!(
        gap("flags_twice").is_some_and(|(_, _, places)| places >= 2),
        "{summary:?}"
    );
    assert!(
        gap("flags_once").is_some_and(|(_, _, places)| places == 1),
        "{summary:?}"
    );
    assert!(gap("asm_tramp").is_some(), "{summary:?}");
    assert!(gap("plain").is_none(), "{summary:?}");
    let twice = found
        .iter()
        .find(|f| f.message.starts_with("flags_twice()"))
        .expect("flags_twice note");
    assert!(
        twice
            .message
            .ends_with("does not describe the stack changes of inline asm (3 places)"),
        "{}",
        twice.message
    );
    assert!(
        twice
            .related
            .iter()
            .all(|(w, _)| w.starts_with("inline asm moved the stack (")),
        "{:?}",
        twice.related
    );

    // The CLI: `note:` lines, exit 0, and the summary counts notes apart from findings.
    let exe = env!("CARGO_BIN_EXE_altcfi");
    let o = Command::new(exe)
        .args(["check", "--eh-frame", "--no-source"])
        .arg(&obj)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.lines().any(|l| l.ends_with(
            "/inline-asm.o: note: altcfi: flags_once+0x1: flags_once(): the compiler's CFI does not describe the \
                stack changes of inline asm"
        )),
        "{text}"
    );

    // The same code from a hand-written .S (gcc -S output without its `.ident`): the table is someone's
    // directives, and a wrong one is a warning.
    let asm = dir.path().join("inline-asm.s");
    gcc(&["-S", "-O2", "-fasynchronous-unwind-tables"], &src, &asm);
    let text = std::fs::read_to_string(&asm).expect("read .s");
    let stripped: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with(".ident"))
        .map(|l| format!("{l}\n"))
        .collect();
    let hand = dir.path().join("hand.s");
    std::fs::write(&hand, stripped).expect("write .s");
    let hand_obj = dir.path().join("hand.o");
    gcc(&["-c"], &hand, &hand_obj);
    let (data, a) = analyze_file(&hand_obj, None);
    let found = ehframe::check_unwind_tables(&data, &a).expect("tables read");
    assert!(
        found
            .iter()
            .any(|f| f.kind.code() == "cfi-directive-mismatch")
            && found.iter().all(|f| !f.kind.is_note()),
        "{:?}",
        found.iter().map(|f| f.headline()).collect::<Vec<_>>()
    );
}
