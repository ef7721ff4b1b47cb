//! Differential tests against the reference objtool: every fixture under `tests/fixtures/{core,alt}` (assembled or
//! compiled here, following `tests/fixtures/README.md`) and every object of the real-macro kernel module in
//! `tests/kmod` (built against Debian's 6.12 headers) must give altcfi the same warning lines (`altcfi` for
//! `objtool`) and the same `--dump=orc` rows as objtool 6.12 and, for the 6.1-layout fixtures, objtool 6.1.
//!
//! The oracles come from `scripts/deps.sh` (`.cache/oracle/env`, or `OBJTOOL_612`/`OBJTOOL_61`/`KHEADERS_612` in the
//! environment). A missing oracle fails the test: this suite is the proof that altcfi mirrors objtool. Deliberate
//! divergences are listed in `tests/known-divergences.txt`, each documented in `docs/objtool-differences.md`.

mod support;

use altcfi_analysis::orc::DumpFormat;
use altcfi_analysis::{analyze, features::FeatureNames, Era, ObjtoolArgs, Options};
use std::path::Path;
use std::process::Command;
use support::verdict::{self, altcfi_warnings, Verdict};
use support::{
    build_fixture, build_fixture_with, build_kmod, fixtures, generated_object, oracle_env,
    repo_root, Fixture,
};

/// objtool `--stackval` (frame-pointer kernels: no ORC) warnings; `None` when objtool itself crashed.
fn objtool_stackval(bin: &Path, obj: &Path, args: &[String]) -> Option<Vec<String>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = obj.file_name().expect("object name");
    std::fs::copy(obj, dir.path().join(name)).expect("copy object");
    let out = Command::new(bin)
        .arg("--stackval")
        .args(args)
        .arg(name)
        .current_dir(dir.path())
        .output()
        .expect("run objtool");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let mut w: Vec<String> = text
        .lines()
        .filter(|l| l.contains(": warning: objtool: "))
        .map(str::to_string)
        .collect();
    w.sort();
    Some(w)
}

fn altcfi(obj: &Path, era: Era, args: &[String]) -> Verdict {
    altcfi_with(obj, era, false, args)
}

fn altcfi_with(obj: &Path, era: Era, frame_pointer: bool, args: &[String]) -> Verdict {
    let opts = Options {
        era: Some(era),
        frame_pointer,
        all_conflicts: true,
        objtool: ObjtoolArgs::parse(args.iter().map(String::as_str)).expect("known objtool args"),
        ..Options::default()
    };
    let format = match era {
        Era::V6_12 => DumpFormat::Modern,
        Era::V6_1 => DumpFormat::Legacy,
    };
    verdict::altcfi(obj, opts, format)
}

fn known_divergences() -> Vec<String> {
    let path = repo_root().join("tests/known-divergences.txt");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn describe(a: &Verdict, b: &Verdict) -> String {
    let mut s = String::new();
    if a.warnings != b.warnings {
        s.push_str(&format!(
            "  warnings: objtool {:#?}\n            altcfi  {:#?}\n",
            a.warnings, b.warnings
        ));
    }
    if a.orc != b.orc {
        let first = a
            .orc
            .iter()
            .zip(&b.orc)
            .position(|(x, y)| x != y)
            .unwrap_or(a.orc.len().min(b.orc.len()));
        s.push_str(&format!(
            "  orc: objtool {} rows, altcfi {} rows; first difference at row {first}: objtool {:?} altcfi {:?}\n",
            a.orc.len(),
            b.orc.len(),
            a.orc.get(first),
            b.orc.get(first)
        ));
    }
    s
}

/// Runs one (object, oracle) comparison: `Ok(true)` match, `Ok(false)` a listed divergence, `Err` a failure.
fn compare(
    label: &str,
    obj: &Path,
    bin: &Path,
    era: Era,
    args: &[String],
    known: &[String],
) -> Result<bool, String> {
    let reference = verdict::objtool(bin, obj, args);
    let ours = altcfi(obj, era, args);
    let key = format!("{label} {}", era.name());
    if reference == ours {
        if known.contains(&key) {
            eprintln!(
                "note: {key} is listed in tests/known-divergences.txt but now matches; remove it"
            );
        }
        return Ok(true);
    }
    if known.contains(&key) {
        eprintln!("known divergence {key}:\n{}", describe(&reference, &ours));
        return Ok(false);
    }
    Err(format!("{key}:\n{}", describe(&reference, &ours)))
}

/// The reference objtool binaries a fixture is valid for, with their era.
fn oracles_for<'a>(f: &Fixture, env: &'a support::OracleEnv) -> Vec<(Era, &'a Path)> {
    [
        (Era::V6_12, env.objtool_612.as_path()),
        (Era::V6_1, env.objtool_61.as_path()),
    ]
    .into_iter()
    .filter(|(era, _)| f.oracles.contains(era))
    .collect()
}

/// Counts of one differential test: matches, listed divergences, failures.
#[derive(Default)]
struct Tally {
    runs: usize,
    divergent: usize,
    failures: Vec<String>,
}

impl Tally {
    /// Records one comparison (see [`compare`]).
    fn record(&mut self, r: Result<bool, String>) {
        self.runs += 1;
        match r {
            Ok(true) => {}
            Ok(false) => self.divergent += 1,
            Err(e) => self.failures.push(e),
        }
    }

    /// Prints the figures and fails the test on any unlisted difference.
    fn finish(self, what: &str) {
        let Tally {
            runs,
            divergent,
            failures,
        } = self;
        eprintln!(
            "{what}: {runs} oracle runs, {} match, {divergent} known divergences",
            runs - failures.len() - divergent
        );
        assert!(
            failures.is_empty(),
            "{} of {runs} runs differ from objtool:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn fixtures_match_objtool() {
    let env = oracle_env();
    let known = known_divergences();
    let out = tempfile::tempdir().expect("temp dir");
    let all: Vec<Fixture> = fixtures();
    assert!(
        all.len() >= 100,
        "expected the fixture corpus, found {}",
        all.len()
    );
    let mut tally = Tally::default();
    for f in &all {
        let obj = build_fixture(f, out.path());
        for (era, bin) in oracles_for(f, &env) {
            tally.record(compare(&f.name, &obj, bin, era, &f.objtool_args, &known));
        }
    }
    tally.finish(&format!("differential: {} fixtures", all.len()));
}

/// The same fixtures with DWARF 4 and DWARF 5 debug info, and C with `-ffunction-sections`: relocations in
/// `.debug_*` and many executable sections at address 0 must not change a verdict.
#[test]
fn fixtures_with_debug_info_and_function_sections_match_objtool() {
    let env = oracle_env();
    let known = known_divergences();
    let mut tally = Tally::default();
    for (variant, flags) in [
        ("dwarf4", &["-g", "-gdwarf-4", "-ffunction-sections"][..]),
        ("dwarf5", &["-g", "-gdwarf-5"][..]),
    ] {
        let out = tempfile::tempdir().expect("temp dir");
        for f in fixtures() {
            let obj = build_fixture_with(&f, out.path(), flags);
            for (era, bin) in oracles_for(&f, &env) {
                let label = format!("{}[{variant}]", f.name);
                tally.record(compare(&label, &obj, bin, era, &f.objtool_args, &known));
            }
        }
    }
    tally.finish("differential (debug info variants)");
}

/// Frame-pointer rules: objtool `--stackval` against `altcfi check --frame-pointer`, warnings only.
#[test]
fn fixtures_match_objtool_frame_pointer_rules() {
    let env = oracle_env();
    let known = known_divergences();
    let out = tempfile::tempdir().expect("temp dir");
    let mut tally = Tally::default();
    for f in &fixtures() {
        let obj = build_fixture(f, out.path());
        for (era, bin) in oracles_for(f, &env) {
            let key = format!("{} {} fp", f.name, era.name());
            let ours = altcfi_with(&obj, era, true, &f.objtool_args).warnings;
            tally.record(match objtool_stackval(bin, &obj, &f.objtool_args) {
                Some(reference) if reference == ours => Ok(true),
                _ if known.contains(&key) => {
                    eprintln!("known divergence {key}");
                    Ok(false)
                }
                Some(reference) => Err(format!(
                    "{key}:\n  objtool {reference:#?}\n  altcfi  {ours:#?}"
                )),
                None => Err(format!("{key}: objtool --stackval crashed")),
            });
        }
    }
    tally.finish("differential (--stackval)");
}

#[test]
fn kernel_module_objects_match_objtool_612() {
    let env = oracle_env();
    let known = known_divergences();
    let out = tempfile::tempdir().expect("temp dir");
    let objs = build_kmod(&env, out.path());
    let mut tally = Tally::default();
    for obj in &objs {
        let label = format!("kmod/{}", obj.file_name().expect("name").to_string_lossy());
        tally.record(compare(
            &label,
            obj,
            &env.objtool_612,
            Era::V6_12,
            &[],
            &known,
        ));
    }
    tally.finish(&format!(
        "differential: {} kernel module objects (objtool 6.12)",
        objs.len()
    ));
}

/// Large generated objects (`scripts/gen-big-asm.py`: thousands of functions and alternative sites, a `.text` big
/// enough for the two-thread decoder), clean and with a conflict in every 9th function.
#[test]
fn generated_large_objects_match_objtool_612() {
    let env = oracle_env();
    let known = known_divergences();
    let out = tempfile::tempdir().expect("temp dir");
    let mut tally = Tally::default();
    for (seed, conflict_every) in [(3, 0), (4, 9)] {
        let obj = generated_object(
            out.path(),
            &format!("big-{seed}"),
            160,
            seed,
            conflict_every,
            false,
        );
        let label = format!("generated/seed-{seed}-conflict-every-{conflict_every}");
        tally.record(compare(
            &label,
            &obj,
            &env.objtool_612,
            Era::V6_12,
            &[],
            &known,
        ));
    }
    tally.finish("differential: generated large objects (objtool 6.12)");
}

/// The flags kbuild 6.12 passes to objtool for a module (`tests/kmod/README.md`).
const KBUILD_OBJTOOL_FLAGS: &[&str] = &[
    "--hacks=jump_label",
    "--hacks=noinstr",
    "--hacks=skylake",
    "--ibt",
    "--orc",
    "--retpoline",
    "--rethunk",
    "--sls",
    "--static-call",
    "--uaccess",
    "--prefix=16",
    "--link",
    "--module",
];

/// Messages of objtool passes altcfi does not implement (IBT, retpoline, rethunk, SLS, uaccess).
fn is_other_pass(line: &str) -> bool {
    [
        "data relocation to !ENDBR",
        "MITIGATION_",
        "missing int3",
        "UACCESS",
        "uaccess",
        "ENDBR",
    ]
    .iter()
    .any(|m| line.contains(m))
}

/// A linked module object as a user's build tree has it: objtool 6.12 already ran with kbuild's full flag set
/// (`__pfx_` symbols added, `.orc_unwind` written). Re-analysing it must give objtool's stack-validation warnings
/// and exactly the ORC rows objtool wrote (`altcfi orc --verify`).
#[test]
fn kbuild_processed_module_reanalysis_matches_objtool() {
    let env = oracle_env();
    let out = tempfile::tempdir().expect("temp dir");
    build_kmod(&env, out.path());
    let obj = out.path().join("altcfi_kmod.o");
    let run = Command::new(&env.objtool_612)
        .args(KBUILD_OBJTOOL_FLAGS)
        .arg("altcfi_kmod.o")
        .current_dir(out.path())
        .output()
        .expect("run objtool");
    assert!(run.status.success(), "objtool failed");
    let text = String::from_utf8_lossy(&run.stderr);
    let mut reference: Vec<String> = text
        .lines()
        .filter(|l| l.contains(": warning: objtool: ") && !is_other_pass(l))
        .map(str::to_string)
        .collect();
    reference.sort();
    assert!(
        reference
            .iter()
            .any(|l| l.contains("stack layout conflict")),
        "the module has conflicts: {reference:#?}"
    );

    let data = std::fs::read(&obj).expect("read processed object");
    let a = analyze(&data, Options::default(), &FeatureNames::default()).expect("analysis runs");
    let ours = altcfi_warnings("altcfi_kmod.o", &a.findings);
    assert_eq!(
        reference, ours,
        "stack-validation warnings on the processed object"
    );

    let existing = a.existing_orc.as_ref().expect("objtool wrote .orc_unwind");
    let computed = a.orc.as_ref().expect("altcfi computes ORC");
    assert!(
        existing.len() > 100,
        "expected a real ORC table, got {} rows",
        existing.len()
    );
    assert_eq!(
        existing, computed,
        "altcfi's ORC must equal the rows objtool wrote"
    );
}

/// altcfi's own `unchecked-alt-unwind` notes (sites objtool never checks whose unwind breaks) are never among the
/// objtool-shaped warning lines the comparisons above use, and name exactly the unchecked sites that break:
/// `ANNOTATE_IGNORE_ALTERNATIVE` and `STACK_FRAME_NON_STANDARD`, in both layouts. Needs no oracle.
#[test]
fn unchecked_alternatives_get_notes_outside_objtools_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "ignore-alternative-612",
            Some("ANNOTATE_IGNORE_ALTERNATIVE"),
        ),
        ("ignore-alternative-61", Some("ANNOTATE_IGNORE_ALTERNATIVE")),
        ("ignore-alternative-ok-612", None),
        ("ignore-alternative-ok-61", None),
        ("non-standard-alt-612", Some("STACK_FRAME_NON_STANDARD")),
        ("non-standard-alt-61", Some("STACK_FRAME_NON_STANDARD")),
    ];
    for (name, why) in cases {
        let f = fixtures()
            .into_iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("fixture {name}"));
        let obj = build_fixture(&f, dir.path());
        let data = std::fs::read(&obj).expect("read object");
        let era = if name.ends_with("-61") {
            Era::V6_1
        } else {
            Era::V6_12
        };
        let opts = Options {
            era: Some(era),
            all_conflicts: true,
            ..Options::default()
        };
        let a = analyze(&data, opts, &FeatureNames::default()).expect("analysis runs");
        assert!(
            altcfi_warnings(name, &a.findings).is_empty(),
            "{name}: objtool reports nothing here: {:#?}",
            a.findings
        );
        let notes: Vec<_> = a
            .findings
            .iter()
            .filter(|f| f.kind == altcfi_analysis::FindingKind::UncheckedAltUnwind)
            .collect();
        match why {
            Some(why) => {
                assert_eq!(notes.len(), 1, "{name}: {:#?}", a.findings);
                assert!(
                    notes[0].message.contains(why),
                    "{name}: {}",
                    notes[0].message
                );
                let text = altcfi_analysis::report::text(name, &a.findings, &[]);
                assert!(text.contains(": note: altcfi: "), "{text}");
                assert!(!text.contains(": warning: "), "{text}");
            }
            None => assert!(notes.is_empty(), "{name}: {notes:#?}"),
        }
    }
}
