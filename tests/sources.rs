//! Source lines of instructions and findings, and `altcfi explain`, checked against binutils.
//!
//! Oracle: `objdump -d` lists every instruction of every executable section, `addr2line -f -i -a -j SECTION` gives
//! its source frames (inline chain innermost first). [`Sources::frames`] must agree with it for every instruction
//! outside `.altinstr_replacement`. Replacement code has no line rows of its own (gas emits none inside the
//! `ALTERNATIVE` macro, gcc none for inline asm), so its frames must be those of the site's original instruction,
//! whose source line is the `ALTERNATIVE` invocation (`.S`) or the `asm` statement (C). Objects: every fixture of
//! `tests/fixtures/{core,alt}` with DWARF 5, DWARF 4 and (for C) `-ffunction-sections` variants, and the objects of
//! the real-macro kernel module in `tests/kmod` (Debian 6.12 headers, kbuild's own `-g` flags).

mod support;

use altcfi_analysis::findings::FindingKind;
use altcfi_analysis::sources::{Explanation, Sources};
use altcfi_analysis::{analyze, features::FeatureNames, Analysis, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::binutils::{addr2line, instructions, reduce, run, BinFrame};
use support::{
    build_fixture, build_kmod, fixtures, generated_object, oracle_env, repo_root, Fixture,
};

fn analyse(data: &[u8]) -> Analysis {
    let opts = Options {
        era: None,
        frame_pointer: false,
        all_conflicts: true,
        ..Options::default()
    };
    analyze(data, opts, &FeatureNames::default()).expect("analysis runs")
}

/// The text of line `line` of `path` (empty if unreadable).
fn source_line(path: &Path, line: u32) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().nth(line as usize - 1).map(str::to_owned))
        .unwrap_or_default()
}

/// Totals of comparing one or more objects with the oracle.
#[derive(Debug, Default)]
struct Tally {
    objects: usize,
    /// Instructions outside `.altinstr_replacement` compared with addr2line.
    compared: usize,
    /// … of which addr2line had a line for.
    with_lines: usize,
    /// … of which the chain has inlined frames.
    inlined: usize,
    matched: usize,
    /// Replacement instructions checked against their site's line.
    replacement: usize,
    replacement_matched: usize,
    /// Differences explained by binutils' own limits, with the reason (see [`binutils_divergence`]).
    divergences: BTreeMap<&'static str, usize>,
    mismatches: Vec<String>,
}

impl Tally {
    fn report(&self, label: &str) {
        eprintln!(
            "{label}: {} objects; {} instructions compared with addr2line ({} with a line, {} with inline chains), {} \
             match; {} replacement instructions mapped to their site's line, {} correct; {} mismatches; binutils \
             divergences: {:?}",
            self.objects,
            self.compared,
            self.with_lines,
            self.inlined,
            self.matched,
            self.replacement,
            self.replacement_matched,
            self.mismatches.len(),
            self.divergences
        );
    }
}

/// Whether a source line is where an alternative site is written: the `ALTERNATIVE` macro invocation in assembler,
/// the `asm` statement (or the kernel's `alternative*()` macro around it) in C.
fn is_site_line(text: &str, assembler: bool) -> bool {
    if assembler {
        text.contains("ALTERNATIVE")
    } else {
        let t = text.to_ascii_lowercase();
        t.contains("asm") || t.contains("alternative")
    }
}

/// Why a difference from addr2line is binutils' limit rather than ours, if it is:
/// - only the function name of assembler code differs (binutils names the outer of two nested `NOTYPE` symbols
///   that start at different places; the file and line agree);
/// - only the file differs, and binutils names a `.c` that `#include`s ours (DWARF 5 rows in file entry 1, which
///   binutils 2.40 reads as the primary file; see `included_c_file_dwarf5_matches_dwarf4` in the lines tests);
/// - a DWARF 4 build with `-ffunction-sections`, where binutils cannot place `.debug_ranges` entries (every section
///   starts at 0) and loses inline frames, while our chain is what binutils gives for the DWARF 5 build.
fn binutils_divergence(
    want: &[BinFrame],
    got: &[BinFrame],
    dwarf5: Option<&Vec<BinFrame>>,
) -> Option<&'static str> {
    let same_len = want.len() == got.len();
    if same_len
        && want
            .iter()
            .zip(got)
            .all(|(w, g)| w.file == g.file && w.line == g.line)
    {
        return Some("function name of nested asm symbols");
    }
    let includes = |w: &BinFrame, g: &BinFrame| {
        let (Some(wf), Some(gf)) = (&w.file, &g.file) else {
            return false;
        };
        let name = gf.file_name().map(|n| n.to_string_lossy().into_owned());
        name.is_some_and(|n| {
            std::fs::read_to_string(wf).is_ok_and(|t| t.contains(&format!("#include \"{n}\"")))
        })
    };
    if same_len
        && want.iter().zip(got).all(|(w, g)| {
            w.function == g.function && w.line == g.line && (w.file == g.file || includes(w, g))
        })
    {
        return Some("DWARF 5 included .c file named as the primary file");
    }
    if dwarf5.is_some_and(|d5| d5.as_slice() == got) && want.len() < got.len() {
        return Some("DWARF 4 -ffunction-sections inline ranges");
    }
    None
}

/// addr2line's answers per (section, offset), to check a DWARF 4 build against the DWARF 5 build of the same code.
type OracleMap = BTreeMap<(String, u64), Vec<BinFrame>>;

/// Compares [`Sources::frames`] with addr2line for every instruction of `obj`; returns addr2line's answers.
fn compare_object(
    label: &str,
    obj: &Path,
    tally: &mut Tally,
    dwarf5: Option<&OracleMap>,
) -> OracleMap {
    let mut answers = OracleMap::new();
    let data = std::fs::read(obj).expect("read object");
    let a = analyse(&data);
    let sources = Sources::new(&a, &data).expect("Sources::new");
    assert!(sources.has_debug_info(), "{label}: built without DWARF");
    tally.objects += 1;
    let index = |name: &str| {
        a.section_names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{label}: no section {name}"))
    };
    for (section, offsets) in instructions(obj) {
        let sec = index(&section);
        let oracle = addr2line(obj, &section, &offsets);
        let replacement_section = section == ".altinstr_replacement";
        for &offset in &offsets {
            let got = sources.frames(sec, offset);
            let want = oracle.get(&offset).cloned().unwrap_or_default();
            answers.insert((section.clone(), offset), want.clone());
            let no_line = want.iter().all(|f| f.line.is_none());
            if replacement_section && no_line {
                tally.replacement += 1;
                let Some(inner) = got.iter().find(|f| f.line.is_some()) else {
                    tally.mismatches.push(format!(
                        "{label} {section}+{offset:#x}: replacement code without a source line"
                    ));
                    continue;
                };
                let path = inner.file.clone().unwrap_or_default();
                let line = inner.line.unwrap_or(0);
                let assembler = path.extension().is_some_and(|e| e == "S");
                let text = source_line(&path, line);
                // The site's line is the ALTERNATIVE (.S) or the asm statement of the C alternative fixtures; other
                // C code wraps the asm in helper macros (`__uaccess_begin_nospec()`), checked by the chain alone.
                let c_alt = label.starts_with("c-") || label.starts_with("kmod/c_alt");
                let mut ok = !(assembler || c_alt) || is_site_line(&text, assembler);
                // The same chain as binutils gives for the site's original instruction.
                let site = a.sites.iter().find(|s| {
                    s.replacements.iter().any(|r| {
                        r.at.is_some_and(|(rs, ro)| {
                            rs == sec && ro <= offset && offset < ro + u64::from(r.len)
                        })
                    })
                });
                if let Some(site) = site {
                    let orig_name = &a.section_names[site.orig.0];
                    let at_orig = addr2line(obj, orig_name, &[site.orig.1]);
                    ok &= at_orig.get(&site.orig.1) == Some(&reduce(&got));
                }
                if ok {
                    tally.replacement_matched += 1;
                } else {
                    tally.mismatches.push(format!(
                        "{label} {section}+{offset:#x}: replacement maps to {}:{line} `{}` (site {:?}), chain {:?}",
                        path.display(),
                        text.trim(),
                        site.map(|s| &s.location),
                        reduce(&got)
                    ));
                }
                continue;
            }
            tally.compared += 1;
            if !no_line {
                tally.with_lines += 1;
            }
            if want.len() > 1 {
                tally.inlined += 1;
            }
            let ok = if no_line {
                got.iter().all(|f| f.line.is_none())
            } else {
                reduce(&got) == want
            };
            let d5 = dwarf5.and_then(|m| m.get(&(section.clone(), offset)));
            if ok {
                tally.matched += 1;
            } else if let Some(why) = binutils_divergence(&want, &reduce(&got), d5) {
                *tally.divergences.entry(why).or_default() += 1;
            } else {
                tally.mismatches.push(format!(
                    "{label} {section}+{offset:#x}:\n  addr2line: {want:?}\n  altcfi:    {:?}",
                    reduce(&got)
                ));
            }
        }
    }
    answers
}

/// The fixture built with extra flags, as `<name>-<tag>.o`.
fn build_variant(f: &Fixture, extra: &[&str], tag: &str, dir: &Path) -> PathBuf {
    let mut v = f.clone();
    v.name = format!("{}-{tag}", f.name);
    v.flags.extend(extra.iter().map(|s| (*s).to_owned()));
    build_fixture(&v, dir)
}

/// The DWARF variants every fixture is built in.
fn variants(f: &Fixture) -> Vec<(&'static [&'static str], &'static str)> {
    let c = f.src.extension().is_some_and(|e| e == "c");
    let mut v: Vec<(&'static [&'static str], &'static str)> =
        vec![(&["-g"], "g"), (&["-g", "-gdwarf-4"], "dwarf4")];
    if c {
        v.push((&["-g", "-gdwarf-5", "-ffunction-sections"], "fsections"));
    }
    v
}

#[test]
fn fixture_frames_match_addr2line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = fixtures();
    assert!(all.len() >= 100, "expected the fixture corpus");
    let mut tally = Tally::default();
    for f in &all {
        let mut dwarf5 = None;
        for (extra, tag) in variants(f) {
            let obj = build_variant(f, extra, tag, dir.path());
            let reference = if tag == "dwarf4" {
                dwarf5.as_ref()
            } else {
                None
            };
            let answers =
                compare_object(&format!("{} [{tag}]", f.name), &obj, &mut tally, reference);
            if tag == "g" {
                dwarf5 = Some(answers);
            }
        }
    }
    tally.report("fixtures");
    assert!(
        tally.mismatches.is_empty(),
        "{} mismatches:\n{}",
        tally.mismatches.len(),
        tally.mismatches.join("\n")
    );
    assert!(
        tally.compared > 5000 && tally.with_lines > 5000,
        "{tally:?}"
    );
    let diverged: usize = tally.divergences.values().sum();
    assert!(
        diverged * 100 < tally.compared,
        "binutils divergences stay rare: {tally:?}"
    );
    assert!(
        tally.inlined > 50,
        "inline chains were exercised: {tally:?}"
    );
    assert!(
        tally.replacement > 200,
        "replacement code was exercised: {tally:?}"
    );
}

#[test]
fn kernel_module_frames_match_addr2line() {
    let env = oracle_env();
    let out = tempfile::tempdir().expect("temp dir");
    let objs = build_kmod(&env, out.path());
    let mut tally = Tally::default();
    for obj in &objs {
        let label = format!("kmod/{}", obj.file_name().expect("name").to_string_lossy());
        compare_object(&label, obj, &mut tally, None);
    }
    tally.report("kernel module");
    assert!(
        tally.mismatches.is_empty(),
        "{} mismatches:\n{}",
        tally.mismatches.len(),
        tally.mismatches.join("\n")
    );
    assert!(tally.with_lines > 500, "{tally:?}");
    let diverged: usize = tally.divergences.values().sum();
    assert!(
        diverged * 10 < tally.compared,
        "binutils divergences stay rare: {tally:?}"
    );
    assert!(tally.replacement > 20, "{tally:?}");
}

/// Every stack layout conflict of the alternative fixtures (built with `-g`) gets the site's source line as its
/// primary position: the `ALTERNATIVE` line (`.S`) or the `asm` statement (C), the line binutils gives for the
/// site's first original instruction.
#[test]
fn conflicts_are_on_the_alternative_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conflicts = 0;
    for f in fixtures()
        .iter()
        .filter(|f| f.src.parent().is_some_and(|d| d.ends_with("alt")))
    {
        let obj = build_variant(f, &["-g"], "g", dir.path());
        let data = std::fs::read(&obj).expect("read");
        let a = analyse(&data);
        let sources = Sources::new(&a, &data).expect("Sources::new");
        let assembler = f.src.extension().is_some_and(|e| e == "S");
        for finding in a
            .findings
            .iter()
            .filter(|x| x.kind == FindingKind::AltStackConflict)
        {
            conflicts += 1;
            let what = format!("{}: {}", f.name, finding.headline());
            let src = sources.for_finding(finding);
            let primary = src
                .primary
                .clone()
                .unwrap_or_else(|| panic!("{what}: no source line"));
            let text = source_line(&primary.path, primary.line);
            assert!(
                is_site_line(&text, assembler),
                "{what}: primary {}:{} is `{text}`",
                primary.path.display(),
                primary.line
            );
            let loc = finding.location.as_ref().expect("location");
            let site = a
                .sites
                .iter()
                .find(|s| {
                    (s.orig.0 == loc.section
                        && s.orig.1 <= loc.offset
                        && loc.offset < s.orig.1 + s.len as u64)
                        || s.replacements.iter().any(|r| {
                            r.at.is_some_and(|(rs, ro)| {
                                rs == loc.section
                                    && ro <= loc.offset
                                    && loc.offset < ro + u64::from(r.len)
                            })
                        })
                })
                .unwrap_or_else(|| panic!("{what}: no site"));
            // binutils' line for the site's first original instruction, or (gas gives an empty original no rows)
            // for the first replacement that has one.
            let BinFrame { file, line, .. } = std::iter::once(site.orig)
                .chain(site.replacements.iter().filter_map(|r| r.at))
                .filter_map(|(s, o)| {
                    let oracle = addr2line(&obj, &a.section_names[s], &[o]);
                    oracle.get(&o)?.first().cloned()
                })
                .find(|f| f.line.is_some())
                .unwrap_or_else(|| panic!("{what}: binutils has no line for the site"));
            assert_eq!(
                (file.as_ref(), line),
                (Some(&primary.path), Some(primary.line)),
                "{what}"
            );
            if assembler {
                assert_eq!(primary.path, f.src, "{what}: in the fixture itself");
            }
            // Each replacement side is a related position, and so is the other side of the first conflict.
            for r in &site.replacements {
                let label = format!("replacement #{} [{}]", r.number, r.feature);
                assert!(
                    r.at.is_none() || src.related.iter().any(|(w, _)| w == &label),
                    "{what}: {label} missing from {:?}",
                    src.related
                );
            }
            assert!(src.related.len() >= finding.related.len(), "{what}");
        }
    }
    assert!(
        conflicts >= 20,
        "only {conflicts} conflicts in the alt fixtures"
    );
}

/// C inline-asm conflicts inlined from a header: primary on the header's asm line, the `.c` call site as an inline
/// frame and a related position.
#[test]
fn inlined_c_conflict_has_call_site() {
    let dir = tempfile::tempdir().expect("temp dir");
    let f = fixtures()
        .into_iter()
        .find(|f| f.name == "c-conflict-612")
        .expect("fixture");
    let obj = build_fixture(&f, dir.path());
    let data = std::fs::read(&obj).expect("read");
    let a = analyse(&data);
    let sources = Sources::new(&a, &data).expect("Sources::new");
    let finding = a
        .findings
        .iter()
        .find(|x| x.kind == FindingKind::AltStackConflict)
        .expect("a conflict");
    let src = sources.for_finding(finding);
    let primary = src.primary.expect("primary");
    assert!(primary.path.ends_with("paravirt-inline.h"), "{primary:?}");
    assert!(source_line(&primary.path, primary.line).contains("asm volatile(ALTERNATIVE"));
    let call = src.inline_frames.first().expect("an inline frame");
    assert_eq!(call.path, f.src);
    assert!(src
        .related
        .iter()
        .any(|(w, p)| p == call && w.contains("inlined")));
}

fn demo() -> (tempfile::TempDir, PathBuf, u32, u32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = repo_root().join("examples/demo.S");
    let obj = dir.path().join("demo.o");
    run(Command::new("gcc")
        .args(["-c", "-g"])
        .arg(&src)
        .arg("-o")
        .arg(&obj));
    let text = std::fs::read_to_string(&src).expect("read demo.S");
    let line_of = |needle: &str| {
        let start = text
            .lines()
            .position(|l| l.contains(needle))
            .expect("function");
        text.lines()
            .enumerate()
            .skip(start)
            .find(|(_, l)| l.contains("ALTERNATIVE"))
            .map(|(i, _)| i as u32 + 1)
            .expect("ALTERNATIVE line")
    };
    let ok = line_of("SYM_FUNC_START(save_fl_ok)");
    let bad = line_of("SYM_FUNC_START(save_fl_bad)");
    (dir, obj, ok, bad)
}

fn row<'e>(
    e: &'e Explanation,
    section: &str,
    text: &str,
) -> Vec<&'e altcfi_analysis::sources::ExplainRow> {
    e.rows
        .iter()
        .filter(|r| r.section == section && r.text == text)
        .collect()
}

#[test]
fn explain_demo_conflict_line() {
    let (_dir, obj, ok_line, bad_line) = demo();
    let data = std::fs::read(&obj).expect("read");
    let a = analyse(&data);
    let sources = Sources::new(&a, &data).expect("Sources::new");
    assert!(!sources.dwarf_used(), "DWARF is parsed lazily");

    let e = sources.explain_line(Path::new("examples/demo.S"), bad_line);
    assert!(sources.dwarf_used());
    // Original: pushf; pop %rax; nop; nop in .text. Replacement: push %rcx; push %rcx; pop %rax; pop %rcx.
    let pushf = row(&e, ".text", "pushf");
    assert_eq!(pushf.len(), 1, "{e:#?}");
    assert_eq!(pushf[0].location, "save_fl_bad+0x0");
    assert_eq!(pushf[0].bytes, "9c");
    assert_eq!(pushf[0].cfi.as_deref(), Some("CFA=rsp+8 ra=c-8"));
    assert!(pushf[0]
        .orc
        .as_deref()
        .is_some_and(|o| o.contains("type:call sp:sp+8")));
    assert_eq!(
        pushf[0].site.as_deref(),
        Some("site save_fl_bad+0x0, original")
    );
    let pop = row(&e, ".text", "pop %rax");
    assert_eq!(pop[0].cfi.as_deref(), Some("CFA=rsp+16 ra=c-8"));
    let pushes = row(&e, ".altinstr_replacement", "push %rcx");
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[1].cfi.as_deref(), Some("CFA=rsp+16 ra=c-8"));
    let rpop = row(&e, ".altinstr_replacement", "pop %rax");
    assert_eq!(rpop[0].cfi.as_deref(), Some("CFA=rsp+24 ra=c-8"));
    assert_eq!(rpop[0].orc, None, "replacement code has no ORC rows");
    assert_eq!(
        rpop[0].site.as_deref(),
        Some("site save_fl_bad+0x0, replacement #1 [X86_FEATURE_XENPV]")
    );
    assert_eq!(rpop[0].source.as_ref().map(|p| p.line), Some(bad_line));
    assert_eq!(e.rows.len(), 8, "4 original + 4 replacement: {e:#?}");
    assert!(e
        .rows
        .iter()
        .all(|r| r.source.as_ref().map(|p| p.line) == Some(bad_line)));

    assert_eq!(e.sites.len(), 1);
    let site = &e.sites[0];
    assert_eq!(site.location, "save_fl_bad+0x0");
    assert_eq!(site.len, 4);
    assert_eq!(site.columns, ["original", "#1 X86_FEATURE_XENPV"]);
    assert_eq!(site.source.as_ref().map(|p| p.line), Some(bad_line));
    let at = |off: u64| {
        site.offsets
            .iter()
            .find(|o| o.offset == off)
            .unwrap_or_else(|| panic!("offset {off}: {site:#?}"))
    };
    let cell = |off: u64, side: usize| {
        at(off).cells[side]
            .as_ref()
            .map(|c| (c.instruction.as_str(), c.cfi.as_deref().unwrap_or("-")))
    };
    assert!(!at(0).conflict && !at(1).conflict);
    assert!(at(2).conflict && at(3).conflict);
    assert_eq!(cell(0, 0), Some(("pushf", "CFA=rsp+8 ra=c-8")));
    assert_eq!(cell(0, 1), Some(("push %rcx", "CFA=rsp+8 ra=c-8")));
    assert_eq!(cell(2, 0), Some(("nop", "CFA=rsp+8 ra=c-8")));
    assert_eq!(cell(2, 1), Some(("pop %rax", "CFA=rsp+24 ra=c-8")));
    assert_eq!(cell(3, 1), Some(("pop %rcx", "CFA=rsp+16 ra=c-8")));

    let text = e.to_text();
    assert!(
        text.contains("alternative site save_fl_bad+0x0 (4 bytes"),
        "{text}"
    );
    assert!(
        text.contains("stack layout conflict at 2 offsets"),
        "{text}"
    );
    assert_eq!(text.matches("<< conflict").count(), 2, "{text}");

    // The clean site: both sides only meet at +0, no conflict.
    let clean = sources.explain_line(Path::new("demo.S"), ok_line);
    assert_eq!(clean.sites.len(), 1);
    assert!(clean.sites[0].offsets.iter().all(|o| !o.conflict));
    assert!(row(&clean, ".altinstr_replacement", "call 0x5").len() <= 1);

    // By location: the same site.
    let by_loc = sources
        .explain_location("save_fl_bad+0x2")
        .expect("location");
    assert_eq!(by_loc.sites, e.sites);
    assert_eq!(by_loc.rows.len(), 8);
    assert!(sources.explain_location("save_fl_bad+0x99").is_none());
    assert!(sources.explain_location("no_such_symbol").is_none());
    assert!(sources.explain_location(".text+0x6").is_some());

    // Per-line summaries for inlay hints.
    let lines = sources.line_summaries(Path::new("examples/demo.S"));
    let by_line: BTreeMap<u32, _> = lines.iter().map(|l| (l.line, l)).collect();
    assert_eq!(by_line.len(), 4, "{lines:#?}");
    assert!(by_line[&bad_line].site && by_line[&bad_line].conflict);
    assert_eq!(by_line[&bad_line].findings, [0]);
    assert!(by_line[&ok_line].site && !by_line[&ok_line].conflict);
    assert_eq!(by_line[&ok_line].cfa.as_deref(), Some("CFA=rsp+8"));
    assert_eq!(by_line[&(bad_line + 1)].cfa.as_deref(), Some("CFA=rsp+8"));
    assert!(!by_line[&(bad_line + 1)].site);
}

fn altcfi(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_altcfi"))
        .args(args)
        .output()
        .expect("run altcfi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `check` of an object big enough to be split over two threads must print the one-thread (`-j 1`) report, with
/// the findings on `.S` lines.
#[test]
fn cli_check_split_over_two_threads_matches_one_thread() {
    let dir = tempfile::tempdir().expect("temp dir");
    let obj = generated_object(dir.path(), "big-g", 96, 7, 15, true);
    assert!(std::fs::metadata(&obj).expect("object").len() >= 64 << 10);
    let o = obj.to_str().expect("utf-8 path");
    for format in ["text", "json"] {
        let (code, split, err) = altcfi(&["check", "-j", "2", "--format", format, o]);
        assert_eq!(code, 1, "{err}");
        let (_, one_thread, _) = altcfi(&["check", "-j", "1", "--format", format, o]);
        assert_eq!(split, one_thread, "--format {format}");
        assert!(split.contains("big-g.S"), "no source positions: {split}");
    }
}

#[test]
fn cli_check_and_explain_on_demo() {
    let (_dir, obj, _ok, bad) = demo();
    let o = obj.to_str().expect("utf-8 path");
    let src = repo_root().join("examples/demo.S");

    let (code, out, _) = altcfi(&["check", o]);
    assert_eq!(code, 1);
    let first = out.lines().next().expect("a finding");
    assert!(
        first.starts_with(&format!(
            "{}:{bad}:1: {o}: warning: altcfi: save_fl_bad+0x0: stack layout conflict",
            src.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "(.altinstr_replacement+0x7) at {}:{bad}:1",
            src.display()
        )),
        "{out}"
    );

    let (code, out, _) = altcfi(&["check", "--no-source", o]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with(&format!("{o}: warning: altcfi: save_fl_bad+0x0:")),
        "{out}"
    );

    let (_, out, _) = altcfi(&["check", "--format", "json", o]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let f = &v["files"][0]["findings"][0];
    assert_eq!(f["source"]["line"], bad);
    assert_eq!(f["source"]["path"], src.display().to_string());
    assert!(f["related_sources"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    let (_, out, _) = altcfi(&["check", "--format", "json", "--no-source", o]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["files"][0]["findings"][0]["source"].is_null());

    let (_, out, _) = altcfi(&["check", "--format", "sarif", o]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("sarif");
    let r = &v["runs"][0]["results"][0];
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"]["startLine"],
        bad
    );

    let query = format!("examples/demo.S:{bad}");
    let (code, out, err) = altcfi(&["explain", o, &query]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("<< conflict"), "{out}");
    assert!(out.contains("CFA=rsp+24 ra=c-8"), "{out}");
    let (code, out, _) = altcfi(&["explain", o, &query, "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["sites"][0]["columns"][1], "#1 X86_FEATURE_XENPV");
    assert_eq!(v["rows"].as_array().map(Vec::len), Some(8));

    let (code, out, err) = altcfi(&["explain", o, "save_fl_bad+0x1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("save_fl_bad+0x1"), "{out}");

    let (code, _, err) = altcfi(&["explain", o, "demo.S:2"]);
    assert_eq!(code, 2);
    assert!(err.contains("no instructions come from demo.S:2"), "{err}");
    assert!(
        err.contains(&format!("{bad}")),
        "lists the lines with code: {err}"
    );
    let (code, _, err) = altcfi(&["explain", o, "other.S:2"]);
    assert_eq!(code, 2);
    assert!(err.contains("no code comes from other.S"), "{err}");
    let (code, _, err) = altcfi(&["explain", o, "nosuch+0x4"]);
    assert_eq!(code, 2);
    assert!(err.contains("no instruction at `nosuch+0x4`"), "{err}");
}

/// Nothing but a source question parses DWARF: creating [`Sources`], asking whether there is debug info and
/// resolving a location do not (so `check` parses it only for objects with findings, `--no-source` never).
#[test]
fn dwarf_is_lazy() {
    let (_dir, obj, _, _) = demo();
    let data = std::fs::read(&obj).expect("read");
    let a = analyse(&data);
    let sources = Sources::new(&a, &data).expect("Sources::new");
    assert!(sources.has_debug_info());
    assert!(sources.resolve_location("save_fl_ok+0x1").is_some());
    assert!(!sources.dwarf_used());
    let src = sources.for_finding(&a.findings[0]);
    assert!(sources.dwarf_used());
    assert!(src.primary.is_some());
}

/// The analysis entry points differ only in what they leave out: every fixture gives the same findings, ORC and
/// states from all of them; `analyze_lean` and the first stage of `analyze_staged` have the sites but no table;
/// `analyze_findings` has the sites only with findings; the second stage of `analyze_staged` is `analyze`. And
/// an analysis split over two threads (decode and walk, whatever the size) is the one-thread analysis.
#[test]
fn analysis_entry_points_agree_on_every_fixture() {
    use altcfi_analysis::{analyze_findings, analyze_lean, analyze_staged};
    let out = tempfile::tempdir().expect("temp dir");
    let opts = Options {
        era: None,
        frame_pointer: false,
        all_conflicts: true,
        ..Options::default()
    };
    let names = FeatureNames::default();
    let same = |a: &Analysis, b: &Analysis, what: &str, obj: &Path| {
        assert_eq!(
            format!("{:?}", a.findings),
            format!("{:?}", b.findings),
            "{what}: findings of {}",
            obj.display()
        );
        assert_eq!(a.orc, b.orc, "{what}: ORC of {}", obj.display());
        assert_eq!(
            a.states.len(),
            b.states.len(),
            "{what}: states of {}",
            obj.display()
        );
    };
    let mut with_sites = 0;
    let mut with_findings = 0;
    let all = fixtures();
    for f in &all {
        let obj = build_fixture(f, out.path());
        let data = std::fs::read(&obj).expect("read object");
        let full = analyze(&data, opts, &names).expect("analysis runs");
        let lean = analyze_lean(&data, opts, &names).expect("analysis runs");
        let findings = analyze_findings(&data, opts, &names).expect("analysis runs");
        let mut first = Vec::new();
        let staged = analyze_staged(&data, opts, &names, |a| first.push(a)).expect("analysis runs");
        // Two threads for every section and walk (the halves' merge, or the fallback when they meet).
        let split = Options {
            parallel_min_code: 0,
            ..opts
        };
        let halves = analyze(&data, split, &names).expect("analysis runs");
        same(&full, &halves, "two threads", &obj);
        assert_eq!(format!("{:?}", halves.insns), format!("{:?}", full.insns));
        assert_eq!(format!("{:?}", halves.sites), format!("{:?}", full.sites));
        same(&full, &lean, "lean", &obj);
        same(&full, &findings, "findings", &obj);
        same(&full, &staged, "staged", &obj);
        assert!(lean.insns.is_empty() && findings.insns.is_empty());
        assert_eq!(
            format!("{:?}", lean.sites),
            format!("{:?}", full.sites),
            "lean sites of {}",
            obj.display()
        );
        if findings.findings.is_empty() {
            assert!(findings.sites.is_empty(), "{}", obj.display());
        } else {
            assert_eq!(
                format!("{:?}", findings.sites),
                format!("{:?}", full.sites),
                "{}",
                obj.display()
            );
            with_findings += 1;
        }
        assert_eq!(format!("{:?}", staged.insns), format!("{:?}", full.insns));
        assert_eq!(format!("{:?}", staged.sites), format!("{:?}", full.sites));
        // The first stage is handed out unless the analysis stopped before the walk.
        assert!(first.len() <= 1, "{}", obj.display());
        if let Some(early) = first.first() {
            same(&full, early, "first stage", &obj);
            assert!(early.insns.is_empty());
            assert_eq!(format!("{:?}", early.sites), format!("{:?}", full.sites));
        } else {
            assert!(full.is_fatal(), "no first stage for {}", obj.display());
        }
        with_sites += usize::from(!full.sites.is_empty());
    }
    eprintln!(
        "entry points: {} fixtures, {with_sites} with alternative sites, {with_findings} with findings",
        all.len()
    );
    assert!(with_sites > 50 && with_findings > 50);
}

/// An `ALTERNATIVE_2`/`_3` site is one site with every replacement in both layouts. Before 6.3 objtool (and altcfi)
/// make a fresh original group per `.altinstructions` entry, so the entries of one site are several original groups
/// over the same bytes; the analysis, `explain` (text and JSON) and the finding's details must still show one site
/// whose replacements are numbered in `.altinstructions` order, with the slots objtool checked the original in.
#[test]
fn multi_entry_sites_show_every_replacement_in_both_layouts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = fixtures();
    let build = |name: &str| {
        let f = all
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no fixture {name}"));
        build_variant(f, &["-g"], "g", dir.path())
    };
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "alt2-second-conflicts",
            "alt2_second",
            &["X86_FEATURE_ERMS", "X86_FEATURE_XENPV"],
        ),
        (
            "alt2-first-conflicts",
            "alt2_first",
            &["X86_FEATURE_XENPV", "X86_FEATURE_ERMS"],
        ),
        (
            "alt3-third-conflicts",
            "alt3_third",
            &["X86_FEATURE_ERMS", "X86_FEATURE_FSRM", "X86_FEATURE_XENPV"],
        ),
        (
            "alt2-repls-conflict",
            "alt2_repls",
            &["X86_FEATURE_XENPV", "X86_FEATURE_ERMS"],
        ),
    ];
    for (fixture, func, features) in cases {
        for era in ["61", "612"] {
            let what = format!("{fixture}-{era}");
            let obj = build(&what);
            let data = std::fs::read(&obj).expect("read");
            let a = analyse(&data);
            assert_eq!(a.sites.len(), 1, "{what}: {:#?}", a.sites);
            let site = &a.sites[0];
            assert_eq!(site.location, format!("{func}+0x0"), "{what}");
            let got: Vec<(usize, &str)> = site
                .replacements
                .iter()
                .map(|r| (r.number, r.feature.as_str()))
                .collect();
            let want: Vec<(usize, &str)> = features
                .iter()
                .copied()
                .enumerate()
                .map(|(i, f)| (i + 1, f))
                .collect();
            assert_eq!(got, want, "{what}");
            let entries: Vec<usize> = site.replacements.iter().map(|r| r.entry).collect();
            assert!(
                entries.windows(2).all(|w| w[0] < w[1]),
                "{what}: {entries:?}"
            );
            // Every replacement's instructions are on its side of the one site.
            for r in &site.replacements {
                let (rs, ro) = r.at.expect("non-empty replacement");
                let insns: Vec<_> = a
                    .insns
                    .iter()
                    .filter(|i| i.section == rs && (ro..ro + u64::from(r.len)).contains(&i.offset))
                    .collect();
                assert!(!insns.is_empty(), "{what}: #{}", r.number);
                for i in insns {
                    assert_eq!(i.site, Some((0, Some(r.number))), "{what}: {}", i.location);
                    // (6.12 stops at the first conflict, before reaching every replacement.)
                    assert!(
                        era == "612" || i.cfi.is_some(),
                        "{what}: {} has CFI",
                        i.location
                    );
                }
            }
            // The original's slots are the array its instructions' states went into; before 6.3 only the last
            // entry's replacement shares it, every other has its own.
            let orig_first = a
                .insns
                .iter()
                .find(|i| (i.section, i.offset) == site.orig)
                .expect("original instruction");
            assert_eq!(orig_first.site, Some((0, None)), "{what}");
            assert_eq!(site.slots[0], orig_first.cfi, "{what}");
            let n = site.replacements.len();
            for r in &site.replacements {
                let own = era == "61" && r.number < n;
                assert_eq!(r.slots.is_some(), own, "{what}: #{}", r.number);
            }

            // explain, by location and by line, text and JSON: one site, every replacement a column.
            let sources = Sources::new(&a, &data).expect("Sources::new");
            let columns: Vec<String> = std::iter::once("original".to_owned())
                .chain(want.iter().map(|(n, f)| format!("#{n} {f}")))
                .collect();
            let e = sources
                .explain_location(&format!("{func}+0x0"))
                .expect("location");
            assert_eq!(e.sites.len(), 1, "{what}");
            assert_eq!(e.sites[0].columns, columns, "{what}");
            for (n, f) in &want {
                let label = format!("replacement #{n} [{f}]");
                assert!(
                    e.rows
                        .iter()
                        .any(|r| r.site.as_deref().is_some_and(|s| s.ends_with(&label))),
                    "{what}: no row of {label}: {e:#?}"
                );
            }
            let o = obj.to_str().expect("utf-8 path");
            let src = format!("{}:6", f_src(fixture, era).display());
            for query in [format!("{func}+0x0"), src] {
                let (code, out, err) = altcfi(&["explain", o, &query]);
                assert_eq!(code, 0, "{what} {query}: {err}");
                assert_eq!(
                    out.matches("alternative site ").count(),
                    1,
                    "{what} {query}: {out}"
                );
                for (n, f) in &want {
                    assert!(
                        out.contains(&format!("#{n} {f}")),
                        "{what} {query}: #{n} {f} missing: {out}"
                    );
                    assert!(
                        out.contains(&format!("replacement #{n} [{f}]")),
                        "{what} {query}: rows of #{n} missing: {out}"
                    );
                }
                let (code, out, _) = altcfi(&["explain", o, &query, "--format", "json"]);
                assert_eq!(code, 0);
                let v: serde_json::Value = serde_json::from_str(&out).expect("json");
                assert_eq!(
                    v["sites"].as_array().map(Vec::len),
                    Some(1),
                    "{what}: {out}"
                );
                assert_eq!(
                    v["sites"][0]["columns"],
                    serde_json::json!(columns),
                    "{what}"
                );
            }
            // A conflict is marked only where a finding reports one (6.1 misses some of these).
            let conflicts = a
                .findings
                .iter()
                .filter(|f| f.kind == FindingKind::AltStackConflict)
                .count();
            let marked = e.sites[0].offsets.iter().any(|o| o.conflict);
            assert_eq!(marked, conflicts > 0, "{what}: {e:#?}");
            // The finding's sides carry the site's numbers.
            for f in a
                .findings
                .iter()
                .filter(|f| f.kind == FindingKind::AltStackConflict)
            {
                for c in &f.conflicts {
                    for side in [&c.recorded, &c.conflicting] {
                        if let Some(n) = side.replacement {
                            assert_eq!(
                                side.feature.as_deref(),
                                Some(features[n - 1]),
                                "{what}: replacement #{n}"
                            );
                        }
                    }
                }
            }
        }
    }
}

fn f_src(fixture: &str, era: &str) -> PathBuf {
    repo_root()
        .join("tests/fixtures/alt")
        .join(format!("{fixture}-{era}.S"))
}

/// The per-line summaries behind the editor's inlay hints in entry code: the ORC view where the CFA rule alone
/// says little (pt_regs, iret frame, end of stack), and which lines change the stack or call (the hints' density).
#[test]
fn line_summaries_show_the_orc_view_of_entry_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = repo_root().join("tests/fixtures/alt/realistic-kernel-612.S");
    let obj = dir.path().join("entry.o");
    run(Command::new("gcc")
        .args(["-c", "-g"])
        .arg(&src)
        .arg("-o")
        .arg(&obj));
    let data = std::fs::read(&obj).expect("read object");
    let a = analyse(&data);
    let sources = Sources::new(&a, &data).expect("Sources::new");
    let text = std::fs::read_to_string(&src).expect("read source");
    // Lines of the entry code and after it (the macro definitions above it produce no code of their own).
    let start = text
        .lines()
        .position(|l| l.starts_with("SYM_CODE_START(entry_SYSCALL_64_like)"))
        .expect("entry code");
    let line = |needle: &str| {
        text.lines()
            .enumerate()
            .skip(start)
            .find(|(_, l)| l.trim() == needle)
            .map(|(i, _)| i as u32 + 1)
            .unwrap_or_else(|| panic!("{needle} in the fixture"))
    };
    let summaries = sources.line_summaries(&src);
    let at = |l: u32| {
        summaries
            .iter()
            .find(|s| s.line == l)
            .unwrap_or_else(|| panic!("line {l} produced code: {summaries:#?}"))
    };
    assert_eq!(at(line("swapgs")).orc_kind, Some("end of stack"));
    assert_eq!(at(line("push $-1")).orc_kind, Some("iret frame"));
    assert_eq!(at(line("mov %rsp, %rdi")).orc_kind, Some("pt_regs"));
    assert!(at(line("call do_syscall_64")).call);
    assert!(at(line("push %rcx")).changes_stack);
    assert!(!at(line("mov %rsp, %rdi")).changes_stack);
    let copy = at(line("mov %rdx, %rcx"));
    assert!(
        copy.orc_kind.is_none() && !copy.changes_stack && !copy.call,
        "{copy:#?}"
    );
}

/// The unwind verdict of alternative conflicts: `breaks` names the variant, the offset and what the unwinder would
/// read wrongly; `strict-only` when every variant gets, at every one of its instructions, the ORC row its own state
/// calls for (the frame-pointer function whose variants differ only in stack depth below an rbp-based CFA).
#[test]
fn alternative_conflicts_carry_an_unwind_verdict() {
    use altcfi_analysis::unwind::Verdict;
    let dir = tempfile::tempdir().expect("temp dir");
    let verdicts = |name: &str| {
        let f = fixtures()
            .into_iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("fixture {name}"));
        let obj = build_fixture(&f, dir.path());
        let a = analyse(&std::fs::read(&obj).expect("read object"));
        let conflicts: Vec<_> = a
            .findings
            .into_iter()
            .filter(|f| f.kind == FindingKind::AltStackConflict)
            .collect();
        // Every conflict says why: the instruction on each side that changed the stack before the offset.
        for f in &conflicts {
            assert!(
                f.details
                    .iter()
                    .any(|d| d.starts_with("why: ") && d.contains(" at +0x")),
                "{name}: {:#?}",
                f.details
            );
        }
        conflicts.into_iter().map(|f| f.unwind).collect::<Vec<_>>()
    };
    let demo = verdicts("conflict-design-example-612");
    let u = demo[0].as_ref().expect("a verdict");
    assert_eq!(u.verdict, Verdict::Breaks);
    let m = &u.mismatches[0];
    assert_eq!((m.replacement, m.offset), (None, 2), "{u:#?}");
    assert_eq!(
        m.what,
        "ORC says the return address is at rsp+16, it is at rsp+0"
    );
    let strict = verdicts("rbp-depth-only-612");
    let u = strict[0].as_ref().expect("a verdict");
    assert_eq!(u.verdict, Verdict::StrictOnly, "{u:#?}");
    assert!(u.mismatches.is_empty() && u.checked >= 2);
    // A short replacement's padding NOP runs too: replacement #1's, at +0x2, under the row #2 filled.
    let nested = verdicts("alt2-nested-conflict-612");
    let u = nested[0].as_ref().expect("a verdict");
    assert_eq!(u.verdict, Verdict::Breaks);
    assert!(
        u.mismatches
            .iter()
            .any(|m| m.replacement == Some(1) && m.offset == 2),
        "{u:#?}"
    );
}

/// The kernel's `.macro ALTERNATIVE` leaves some replacement code without a line row of its own: addr2line then
/// answers with the row of earlier code in `.altinstr_replacement`, another site's statement lines away. Such
/// code is shown on its own site's line (findings' related places, hover, hints), and the earlier statement's line
/// lists only its own code.
#[test]
fn replacements_without_rows_are_placed_on_their_site_line() {
    use altcfi_analysis::sources::SourcePos;
    let env = oracle_env();
    let out = tempfile::tempdir().expect("temp dir");
    let objs = build_kmod(&env, out.path());
    let (mut checked, mut elsewhere) = (0, 0);
    for obj in &objs {
        let data = std::fs::read(obj).expect("read object");
        let a = analyse(&data);
        let sources = Sources::new(&a, &data).expect("DWARF");
        for (s, site) in a.sites.iter().enumerate() {
            let Some(site_pos) = sources.site_frames(s).iter().find_map(SourcePos::of_frame) else {
                continue;
            };
            for r in &site.replacements {
                let Some((rs, ro)) = r.at else { continue };
                checked += 1;
                assert_eq!(
                    sources.position(rs, ro).map(|p| (p.path, p.line)),
                    Some((site_pos.path.clone(), site_pos.line)),
                    "{}: {} replacement #{}",
                    obj.display(),
                    site.location,
                    r.number
                );
                let Some(raw) = sources.frames(rs, ro).iter().find_map(SourcePos::of_frame) else {
                    continue;
                };
                if raw.line == site_pos.line {
                    continue;
                }
                elsewhere += 1;
                let there = sources.explain_line(&raw.path, raw.line);
                let section = &a.section_names[rs];
                assert!(
                    !there
                        .rows
                        .iter()
                        .any(|row| &row.section == section && row.offset == ro),
                    "{}: {} replacement #{} is listed on line {} (its DWARF row's), not only on its site's {}",
                    obj.display(),
                    site.location,
                    r.number,
                    raw.line,
                    site_pos.line
                );
            }
        }
    }
    assert!(checked > 20, "replacements checked: {checked}");
    assert!(
        elsewhere > 0,
        "the kernel macros give some replacement code an earlier statement's row ({checked} checked)"
    );
}
