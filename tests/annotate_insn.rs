//! Linux 6.14+'s `.discard.annotate_insn` (one section of 8-byte `{ s32 insn - . ; u32 type }` entries) against the
//! sections of their own that carried the same annotations before (`.discard.ignore_alts`,
//! `.discard.intra_function_calls`).
//!
//! No 6.14 objtool or kernel is available here, so the fixtures (`tests/fixtures/annotate/`, outside the differential
//! suite) are hand-made and each is built once per spelling from the same source: the code is byte for byte the same
//! and only the annotation sections differ. The legacy spelling must give altcfi exactly what the real objtool 6.12
//! gives (warnings and `--dump=orc` rows), and the 6.14 spelling, or a mix of both, exactly what the legacy one gives.
//! Without the annotation the same code conflicts (or is an unannotated intra-function call), so the comparisons
//! fail if `.discard.annotate_insn` is not read. Malformed sections end in a fatal finding or are skipped as
//! `docs/objtool-differences.md` says, never in a panic.

mod support;

use altcfi_analysis::features::FeatureNames;
use altcfi_analysis::object::Object;
use altcfi_analysis::orc::DumpFormat;
use altcfi_analysis::{analyze, AnalysisError, Era, Options};
use std::path::{Path, PathBuf};
use support::verdict::{self, Verdict};
use support::{build_fixture, oracle_env, repo_root, Fixture};

/// The annotation section of 6.14+.
const ANNOTATE_INSN: &str = ".discard.annotate_insn";

/// A spelling of an annotation: the value of `SPELL_A`/`SPELL_B` in `tests/fixtures/annotate/annotate.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spelling {
    /// No annotation.
    None,
    /// The section of its own (kernels before 6.14).
    Legacy,
    /// A `.discard.annotate_insn` entry (6.14+).
    AnnotateInsn,
}

impl Spelling {
    /// The `-D` value.
    fn define(self) -> &'static str {
        match self {
            Spelling::None => "0",
            Spelling::Legacy => "612",
            Spelling::AnnotateInsn => "614",
        }
    }
}

/// Builds `tests/fixtures/annotate/SRC.S` with the given `-D` flags into `out/SRC-TAG/SRC.o` (the object keeps the
/// source's base name, so warning lines of all variants compare equal).
fn build(src: &str, defines: &[String], tag: &str, out: &Path) -> PathBuf {
    let dir = out.join(format!("{src}-{tag}"));
    std::fs::create_dir_all(&dir).expect("variant dir");
    let f = Fixture {
        name: src.to_string(),
        src: repo_root().join(format!("tests/fixtures/annotate/{src}.S")),
        flags: defines.iter().map(|d| format!("-D{d}")).collect(),
        oracles: vec![Era::V6_12],
        objtool_args: Vec::new(),
    };
    build_fixture(&f, &dir)
}

/// Builds `src` with site A spelled `a` and site B spelled `b`.
fn build_spelled(src: &str, a: Spelling, b: Spelling, out: &Path) -> PathBuf {
    let tag = format!("{}-{}", a.define(), b.define());
    let defines = [
        format!("SPELL_A={}", a.define()),
        format!("SPELL_B={}", b.define()),
    ];
    build(src, &defines, &tag, out)
}

/// The options of every analysis here: the era given (6.4+ rules, as objtool 6.12).
fn options() -> Options {
    Options {
        era: Some(Era::V6_12),
        ..Options::default()
    }
}

/// The analysis of an object.
fn analysis(data: &[u8]) -> Result<altcfi_analysis::Analysis, AnalysisError> {
    analyze(data, options(), &FeatureNames::default())
}

/// altcfi's verdict in the differential suite's terms.
fn altcfi(obj: &Path) -> Verdict {
    verdict::altcfi(obj, options(), DumpFormat::Modern)
}

/// objtool 6.12's verdict (`--orc`, then `--dump=orc` on the rewritten copy), as `tests/differential.rs` runs it.
fn objtool_612(obj: &Path) -> Verdict {
    verdict::objtool(&oracle_env().objtool_612, obj, &[])
}

/// Names of the object's sections.
fn section_names(obj: &Path) -> Vec<String> {
    let data = std::fs::read(obj).expect("read object");
    let parsed = Object::parse(&data).expect("parses");
    parsed.sections.iter().map(|s| s.name.clone()).collect()
}

/// Checks that a variant's object carries exactly the annotation sections its spellings ask for (so a comparison
/// below is between the spellings it claims to be).
fn assert_spelled(obj: &Path, legacy: &str, a: Spelling, b: Spelling) {
    let names = section_names(obj);
    let has = |n: &str| names.iter().any(|s| s == n);
    let want = |s: Spelling| [a, b].contains(&s);
    assert_eq!(
        has(legacy),
        want(Spelling::Legacy),
        "{legacy} in {}",
        obj.display()
    );
    assert_eq!(
        has(ANNOTATE_INSN),
        want(Spelling::AnnotateInsn),
        "{ANNOTATE_INSN} in {}",
        obj.display()
    );
}

/// The spelling pairs that annotate both sites: each spelling alone and both mixes.
const ANNOTATED: [(Spelling, Spelling); 3] = [
    (Spelling::AnnotateInsn, Spelling::AnnotateInsn),
    (Spelling::Legacy, Spelling::AnnotateInsn),
    (Spelling::AnnotateInsn, Spelling::Legacy),
];

/// The differential of one fixture: unannotated it gives `unannotated` (and objtool 6.12 agrees); the legacy
/// spelling is clean and matches objtool 6.12; the 6.14 spelling and the mixes give what the legacy spelling gives.
fn spellings_agree(src: &str, legacy: &str, unannotated: &[&str]) {
    let out = tempfile::tempdir().expect("temp dir");
    let (none, old) = (Spelling::None, Spelling::Legacy);

    let bare = build_spelled(src, none, none, out.path());
    assert_spelled(&bare, legacy, none, none);
    let bare_verdict = altcfi(&bare);
    assert_eq!(
        bare_verdict,
        objtool_612(&bare),
        "{src} without annotations"
    );
    for want in unannotated {
        assert!(
            bare_verdict.warnings.iter().any(|w| w.contains(want)),
            "{src} without annotations: no {want:?} in {:#?}",
            bare_verdict.warnings
        );
    }

    let legacy_obj = build_spelled(src, old, old, out.path());
    assert_spelled(&legacy_obj, legacy, old, old);
    let reference = altcfi(&legacy_obj);
    assert_eq!(
        reference,
        objtool_612(&legacy_obj),
        "{src}, legacy spelling"
    );
    assert!(
        reference.warnings.is_empty(),
        "{src}: {:#?}",
        reference.warnings
    );
    assert!(!reference.orc.is_empty(), "{src}: no ORC rows");

    for (a, b) in ANNOTATED {
        let obj = build_spelled(src, a, b, out.path());
        assert_spelled(&obj, legacy, a, b);
        assert_eq!(altcfi(&obj), reference, "{src}, site A {a:?}, site B {b:?}");
    }
}

#[test]
fn ignore_alternative_in_either_spelling_is_the_same() {
    spellings_agree(
        "ignore-alts",
        ".discard.ignore_alts",
        &[
            "ignore_a+0x4: stack layout conflict in alternatives: ignore_a+0x5",
            "ignore_b+0x0: stack layout conflict in alternatives: ignore_b+0x1",
        ],
    );
}

#[test]
fn intra_function_call_in_either_spelling_is_the_same() {
    spellings_agree(
        "intra-call",
        ".discard.intra_function_calls",
        &["intra_a+0x1: unannotated intra-function call"],
    );
}

/// One site annotated in one spelling only: the other site still conflicts, so each spelling is read on its own
/// (not only when the other is present).
#[test]
fn each_spelling_is_read_on_its_own() {
    let out = tempfile::tempdir().expect("temp dir");
    for (a, b, left) in [
        (Spelling::AnnotateInsn, Spelling::None, "ignore_b+0x0"),
        (Spelling::None, Spelling::AnnotateInsn, "ignore_a+0x4"),
        (Spelling::Legacy, Spelling::None, "ignore_b+0x0"),
    ] {
        let obj = build_spelled("ignore-alts", a, b, out.path());
        let v = altcfi(&obj);
        assert_eq!(
            v.warnings.len(),
            1,
            "site A {a:?}, site B {b:?}: {:#?}",
            v.warnings
        );
        assert!(
            v.warnings[0].contains(&format!("{left}: stack layout conflict")),
            "site A {a:?}, site B {b:?}: {:#?}",
            v.warnings
        );
    }
}

/// What a malformed case of `bad-entries.S` must give.
enum Expect {
    /// A fatal finding with this message and no ORC.
    Fatal(&'static str),
    /// The site's conflict, exactly as objtool 6.12 (which ignores the section) reports it.
    LikeObjtool612,
    /// Clean, with ORC.
    Clean,
}

#[test]
fn malformed_entries_are_fatal_or_skipped() {
    let out = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            1,
            Expect::Fatal("bad .discard.annotate_insn entry: 1 of type 3"),
        ),
        (
            2,
            Expect::Fatal("bad .discard.annotate_insn entry: 0 of type 7"),
        ),
        (
            3,
            Expect::Fatal(
                "bad .discard.annotate_insn entry: 1: its type lies outside the section's 12 bytes",
            ),
        ),
        (4, Expect::LikeObjtool612),
        (5, Expect::LikeObjtool612),
        (
            6,
            Expect::Fatal("bad_entries+0x3: intra_function_call not a direct call"),
        ),
        (7, Expect::Clean),
    ];
    for (case, expect) in cases {
        let obj = build(
            "bad-entries",
            &[format!("CASE={case}")],
            &case.to_string(),
            out.path(),
        );
        let data = std::fs::read(&obj).expect("read object");
        let a = analysis(&data).unwrap_or_else(|e| panic!("case {case}: {e}"));
        let v = altcfi(&obj);
        match expect {
            Expect::Fatal(msg) => {
                assert!(a.is_fatal(), "case {case}: not fatal: {:#?}", v.warnings);
                assert!(a.orc.is_none(), "case {case}: ORC after a fatal finding");
                assert_eq!(
                    v.warnings,
                    [format!("bad-entries.o: warning: objtool: {msg}")],
                    "case {case}"
                );
            }
            Expect::LikeObjtool612 => {
                assert!(
                    v.warnings
                        .iter()
                        .any(|w| w.contains("stack layout conflict")),
                    "case {case}: {:#?}",
                    v.warnings
                );
                assert_eq!(v, objtool_612(&obj), "case {case}");
            }
            Expect::Clean => {
                assert!(v.warnings.is_empty(), "case {case}: {:#?}", v.warnings);
                assert!(!v.orc.is_empty(), "case {case}: no ORC rows");
            }
        }
    }
}

/// Every byte of `.discard.annotate_insn` and of its relocation section overwritten with a few values: the analysis
/// ends with a result or an error, never a panic (the analysis thread's panic is `AnalysisError::Internal`).
#[test]
fn garbage_in_the_section_never_panics() {
    let out = tempfile::tempdir().expect("temp dir");
    let both = Spelling::AnnotateInsn;
    for src in ["ignore-alts", "intra-call"] {
        let obj = build_spelled(src, both, both, out.path());
        let data = std::fs::read(&obj).expect("read object");
        let parsed = Object::parse(&data).expect("parses");
        let ranges: Vec<std::ops::Range<usize>> = parsed
            .sections
            .iter()
            .filter(|s| s.name == ANNOTATE_INSN || s.name == ".rela.discard.annotate_insn")
            .map(|s| {
                let start = s.data.as_ptr() as usize - data.as_ptr() as usize;
                start..start + s.data.len()
            })
            .collect();
        assert_eq!(ranges.len(), 2, "{src}: sections {ranges:?}");
        let mut runs = 0;
        for at in ranges.into_iter().flatten() {
            for value in [0x00u8, 0x01, 0x07, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[at] = value;
                if let Err(AnalysisError::Internal(e)) = analysis(&bad) {
                    panic!("{src}: byte 0x{at:x} = 0x{value:02x}: {e}");
                }
                runs += 1;
            }
        }
        assert!(runs >= 5 * (16 + 48), "{src}: {runs} runs");
    }
}
