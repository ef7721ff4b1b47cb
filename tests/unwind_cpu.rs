//! altcfi's unwind verdicts (`alt-stack-conflict` findings, `Finding::unwind`) against the CPU: every variant of a
//! fixture's alternative site is patched in the way the kernel's `apply_alternatives` does (the replacement's bytes,
//! padded with one-byte NOPs to the original's length), linked into a small user-space program
//! (`tests/unwind_cpu/driver.c`) and single-stepped under ptrace (`tests/unwind_cpu/step.c`). At every instruction
//! executed inside the site, the ORC row altcfi emits for that address is applied to the real registers and stack:
//! where does it say the return address (and the caller's `%rbp`) is, and is it there?
//!
//! The test asserts that the CPU agrees with altcfi's verdict: a (variant, offset) whose state altcfi knows and that
//! it does not list among the verdict's mismatches gets a right prediction, a listed one a wrong one (wrong in what
//! the mismatch names: return address, caller's rbp). Offsets altcfi makes no claim about (never reached by the
//! walk, padding bytes after the first, non-call rows) are reported, not asserted; see `tests/unwind_cpu/README.md`.
//! It needs gcc, binutils (objcopy, objdump, nm) and a working ptrace; it fails, not skips, without them.

mod support;

use altcfi_analysis::orc::{orc_reg, OrcEntry, OrcRow, OrcType};
use altcfi_analysis::{analyze, features::FeatureNames, Analysis, Era, FindingKind, Options};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{build_fixture, fixtures, repo_root};

const FIXTURES: &[&str] = &[
    "conflict-design-example-612",
    "rbp-depth-only-612",
    "conflict-nop-vs-push-612",
    "alt2-nested-conflict-612",
    "frame-setup-conflict-612",
];

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "gcc".into())
}

fn run(cmd: &mut Command, what: &str) -> String {
    let o = cmd.output().unwrap_or_else(|e| {
        panic!("unwind_cpu: cannot run {what} ({e}): this test needs gcc and binutils")
    });
    assert!(
        o.status.success(),
        "unwind_cpu: {what} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The bytes of one section of an object (objcopy).
fn section_bytes(obj: &Path, sec: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!(
        "{}.{}.bin",
        obj.file_stem().unwrap().to_string_lossy(),
        sec.trim_start_matches('.')
    ));
    run(
        Command::new("objcopy")
            .args(["-O", "binary", "--only-section", sec])
            .arg(obj)
            .arg(&out),
        "objcopy",
    );
    std::fs::read(&out).unwrap_or_default()
}

/// Relocations of one section: (offset, type, symbol).
fn relocs(obj: &Path, sec: &str) -> Vec<(u64, String, String)> {
    let text = run(
        Command::new("objdump").args(["-r", "-j", sec]).arg(obj),
        "objdump -r",
    );
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let off = u64::from_str_radix(w.next()?, 16).ok()?;
            let ty = w.next()?.to_string();
            let val = w.next()?;
            let sym = val.split(['-', '+']).next().unwrap_or(val).to_string();
            Some((off, ty, sym))
        })
        .collect()
}

/// One observed instruction: rip offset in the function, rsp, rbp, and the stack words from rsp up to the entry rsp.
#[derive(Debug)]
struct Step {
    off: u64,
    rsp: u64,
    rbp: u64,
    words: Vec<u64>,
}

struct Trace {
    /// The child got a signal before the function returned (the steps before it are kept).
    fault: Option<String>,
    entry_rsp: u64,
    entry_rbp: u64,
    steps: Vec<Step>,
}

impl Trace {
    fn word_at(&self, s: &Step, addr: u64) -> Option<u64> {
        if addr < s.rsp || !(addr - s.rsp).is_multiple_of(8) {
            return None;
        }
        s.words.get(((addr - s.rsp) / 8) as usize).copied()
    }
}

/// Builds the stepper once.
fn build_stepper(dir: &Path) -> PathBuf {
    let out = dir.join("step");
    run(
        Command::new(cc())
            .args(["-O1", "-Wall", "-o"])
            .arg(&out)
            .arg(repo_root().join("tests/unwind_cpu/step.c")),
        "gcc step.c",
    );
    out
}

/// Links `code` (the patched .text) as `altcfi_fn` into the driver and single-steps it.
/// The function is `code[fn_start..fn_start + fn_len]`; step offsets are `.text` offsets. `Err` when the program
/// does not run through the function (a fault, an instruction user space may not execute).
fn run_patched(
    code: &[u8],
    fn_start: u64,
    fn_len: u64,
    name: &str,
    dir: &Path,
    stepper: &Path,
) -> Result<Trace, String> {
    let mut s = String::from("\t.text\n\t.globl altcfi_fn\n\t.type altcfi_fn, @function\n");
    s.push_str("\t.byte ");
    let (head, tail) = code.split_at(fn_start as usize);
    let head: Vec<String> = head.iter().map(|b| format!("0x{b:02x}")).collect();
    if head.is_empty() {
        s.clear();
        s.push_str("\t.text\n\t.globl altcfi_fn\n\t.type altcfi_fn, @function\n");
    } else {
        s.push_str(&head.join(", "));
        s.push('\n');
    }
    s.push_str("altcfi_fn:\n");
    for chunk in tail.chunks(16) {
        let b: Vec<String> = chunk.iter().map(|b| format!("0x{b:02x}")).collect();
        writeln!(s, "\t.byte {}", b.join(", ")).unwrap();
    }
    s.push_str("\t.section .note.GNU-stack,\"\",@progbits\n");
    let src = dir.join(format!("{name}.S"));
    std::fs::write(&src, s).unwrap();
    let prog = dir.join(name);
    run(
        Command::new(cc())
            .args(["-O0", "-no-pie", "-fno-pie", "-o"])
            .arg(&prog)
            .arg(repo_root().join("tests/unwind_cpu/driver.c"))
            .arg(&src),
        "gcc driver.c",
    );
    let nm = run(Command::new("nm").arg(&prog), "nm");
    let addr = nm
        .lines()
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 3 && w[2] == "altcfi_fn").then(|| w[0].to_string())
        })
        .expect("altcfi_fn in the driver");
    let fn_addr = u64::from_str_radix(&addr, 16).unwrap();
    let out = Command::new(stepper)
        .arg(&addr)
        .arg(format!("{fn_len:x}"))
        .arg(&prog)
        .output()
        .expect("run the stepper");
    let faulted = out.status.code() == Some(3);
    if !out.status.success() && !faulted {
        return Err(format!(
            "the ptrace single-stepper failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
    let mut t = Trace {
        fault: None,
        entry_rsp: 0,
        entry_rbp: 0,
        steps: Vec::new(),
    };
    let mut done = false;
    for l in text.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.first().copied() {
            Some("entry") => {
                t.entry_rsp = hex(w[1]);
                t.entry_rbp = hex(w[2]);
            }
            Some("step") => t.steps.push(Step {
                off: hex(w[1]) - fn_addr + fn_start,
                rsp: hex(w[2]),
                rbp: hex(w[3]),
                words: w[4..].iter().map(|x| hex(x)).collect(),
            }),
            Some("done") => done = true,
            Some("signal") => {
                t.fault = Some(format!(
                    "signal {} after rip {:#x}",
                    w[1],
                    hex(w[2]).wrapping_sub(fn_addr) + fn_start
                ));
                done = true;
            }
            _ => {}
        }
    }
    if !done || t.steps.is_empty() {
        return Err(format!("no trace from the stepper:\n{text}"));
    }
    Ok(t)
}

/// What ORC's row predicts at one step, checked against the CPU: (return address right, caller's rbp right, words).
fn check_row(t: &Trace, s: &Step, e: &OrcEntry) -> (bool, bool, String) {
    let cfa = match e.sp_reg {
        orc_reg::SP => Some(s.rsp.wrapping_add(e.sp_offset as i64 as u64)),
        orc_reg::BP => Some(s.rbp.wrapping_add(e.sp_offset as i64 as u64)),
        _ => None,
    };
    let Some(cfa) = cfa else {
        return (
            false,
            false,
            format!("CFA rule sp_reg {} not computable", e.sp_reg),
        );
    };
    let ra_at = cfa.wrapping_sub(8);
    let ra_ok = ra_at == t.entry_rsp;
    let (bp_ok, bp_desc) = match e.bp_reg {
        orc_reg::PREV_SP => {
            let a = cfa.wrapping_add(e.bp_offset as i64 as u64);
            (
                t.word_at(s, a) == Some(t.entry_rbp),
                format!("rbp at CFA{:+}", e.bp_offset),
            )
        }
        orc_reg::BP => {
            let a = s.rbp.wrapping_add(e.bp_offset as i64 as u64);
            (
                t.word_at(s, a) == Some(t.entry_rbp),
                format!("rbp at rbp{:+}", e.bp_offset),
            )
        }
        _ => (s.rbp == t.entry_rbp, "rbp still in %rbp".into()),
    };
    (
        ra_ok,
        bp_ok,
        format!(
            "ORC: ra at {:#x} (real {:#x}) {}; {}",
            ra_at,
            t.entry_rsp,
            if ra_ok { "right" } else { "WRONG" },
            if bp_ok {
                format!("{bp_desc} right")
            } else {
                format!("{bp_desc} WRONG")
            }
        ),
    )
}

fn row_at(rows: &[OrcRow], sec: usize, off: u64) -> Option<&OrcRow> {
    rows.iter()
        .filter(|r| r.section == sec && r.offset <= off)
        .max_by_key(|r| r.offset)
}

#[derive(Default)]
struct Tally {
    variants: usize,
    skipped: Vec<String>,
    steps: usize,
    agree: usize,
    disagree: Vec<String>,
    listed_checked: usize,
    listed_unexecuted: Vec<String>,
    bp_rows: usize,
    bp_rows_right: usize,
    unclaimed: Vec<String>,
    faults: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Known {
    /// altcfi has the variant's state at the offset (its verdict checked it).
    Yes,
    /// The instruction is in altcfi's model but its walk never reached it.
    Unreached,
    /// Not an instruction boundary in altcfi's (objtool's) model of the variant.
    NotModelled,
    /// altcfi checked it, but the row in effect is not a call frame (the harness cannot judge it).
    NotACallFrame,
}

/// Whether altcfi checked `variant` at site offset `off`: a real instruction there with a state, or the one
/// padding NOP objtool models right after a short replacement (reached when the replacement's last instruction is).
fn altcfi_knows(
    a: &Analysis,
    site_idx: usize,
    site: &altcfi_analysis::analysis::AltSite,
    variant: Option<usize>,
    off: u64,
) -> Known {
    let base = match variant {
        None => site.orig,
        Some(n) => match site
            .replacements
            .iter()
            .find(|r| r.number == n)
            .and_then(|r| r.at)
        {
            Some(at) => at,
            None => {
                return if off == 0 {
                    Known::Yes
                } else {
                    Known::NotModelled
                }
            }
        },
    };
    let mine: Vec<_> = a
        .insns
        .iter()
        .filter(|i| i.site == Some((site_idx, variant)) && i.section == base.0)
        .collect();
    if let Some(i) = mine.iter().find(|i| i.offset == base.1 + off) {
        return if i.cfi.is_some() {
            Known::Yes
        } else {
            Known::Unreached
        };
    }
    if let Some(last) = mine.iter().max_by_key(|i| i.offset) {
        if variant.is_some() && last.offset + last.len as u64 == base.1 + off {
            return if last.cfi.is_some() {
                Known::Yes
            } else {
                Known::Unreached
            };
        }
    }
    Known::NotModelled
}

fn check_fixture(
    name: &str,
    strict: bool,
    dir: &Path,
    stepper: &Path,
    tally: &mut Tally,
    log: &mut String,
) {
    let f = fixtures()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("fixture {name} missing"));
    let obj = build_fixture(&f, dir);
    let data = std::fs::read(&obj).unwrap();
    let opts = Options {
        era: Some(Era::V6_12),
        all_conflicts: true,
        ..Options::default()
    };
    let a: Analysis = analyze(&data, opts, &FeatureNames::default()).expect("analysis runs");
    let rows = a.orc.clone().expect("altcfi writes ORC");
    let text_sec = a
        .section_names
        .iter()
        .position(|n| n == ".text")
        .expect(".text");
    let text = section_bytes(&obj, ".text", dir);
    let repl = section_bytes(&obj, ".altinstr_replacement", dir);
    let text_relocs = relocs(&obj, ".text");
    let repl_relocs = relocs(&obj, ".altinstr_replacement");
    // Function symbols in .text, by offset.
    let nm = run(
        Command::new("nm").args(["--defined-only", "-n"]).arg(&obj),
        "nm",
    );
    let mut funcs: Vec<u64> = nm
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 3 && (w[1] == "T" || w[1] == "t"))
                .then(|| u64::from_str_radix(w[0], 16).ok())?
        })
        .collect();
    funcs.sort();
    funcs.dedup();
    let conflicts: Vec<_> = a
        .findings
        .iter()
        .filter(|x| x.kind == FindingKind::AltStackConflict)
        .collect();
    if conflicts.is_empty() {
        assert!(!strict, "{name}: altcfi reports no alt-stack-conflict");
        return;
    }
    writeln!(
        log,
        "== {name}: {} site(s), {} conflict finding(s)",
        a.sites.len(),
        conflicts.len()
    )
    .unwrap();
    for (site_idx, site) in a.sites.iter().enumerate() {
        if site.orig.0 != text_sec {
            assert!(!strict, "{name}: site outside .text");
            tally
                .skipped
                .push(format!("{name} site {}: outside .text", site.location));
            continue;
        }
        let start = site.orig.1;
        let end = start + site.len as u64;
        let fn_start = funcs
            .iter()
            .copied()
            .filter(|&f| f <= start)
            .max()
            .unwrap_or(0);
        let fn_end = funcs
            .iter()
            .copied()
            .find(|&f| f > start)
            .unwrap_or(text.len() as u64);
        // The finding whose verdict covers this site.
        let finding = conflicts
            .iter()
            .find(|c| {
                c.location.as_ref().is_some_and(|l| {
                    (l.section == text_sec && l.offset >= start && l.offset < end)
                        || site.replacements.iter().any(|r| {
                            r.at.is_some_and(|(sec, at)| {
                                l.section == sec && l.offset >= at && l.offset < at + r.len as u64
                            })
                        })
                })
            })
            .or(if conflicts.len() == 1 && a.sites.len() == 1 {
                conflicts.first()
            } else {
                None
            });
        let Some(finding) = finding else {
            writeln!(log, "  site {}: no conflict finding", site.location).unwrap();
            continue;
        };
        let Some(verdict) = finding.unwind.as_ref() else {
            assert!(
                !strict,
                "{name}: site {} has no unwind verdict",
                site.location
            );
            tally.skipped.push(format!(
                "{name} site {}: altcfi gives no unwind verdict",
                site.location
            ));
            continue;
        };
        writeln!(
            log,
            "  site {} [{start:#x}, {end:#x}): verdict {:?}, checked {}, mismatches {:?}",
            site.location,
            verdict.verdict,
            verdict.checked,
            verdict
                .mismatches
                .iter()
                .map(|m| (m.replacement, m.offset, m.what.clone()))
                .collect::<Vec<_>>()
        )
        .unwrap();
        let listed: BTreeSet<(Option<usize>, u64)> = verdict
            .mismatches
            .iter()
            .map(|m| (m.replacement, m.offset))
            .collect();
        let mut seen_listed: BTreeSet<(Option<usize>, u64)> = BTreeSet::new();
        let mut known_executed: BTreeSet<(Option<usize>, u64)> = BTreeSet::new();
        // Variants: the original, then each replacement.
        let mut variants: Vec<(Option<usize>, Vec<u8>)> =
            vec![(None, text[start as usize..end as usize].to_vec())];
        for r in &site.replacements {
            let mut b = Vec::new();
            if let Some((_, at)) = r.at {
                let rs = at;
                let re = at + r.len as u64;
                if let Some(x) = repl_relocs.iter().find(|(o, _, _)| *o >= rs && *o < re) {
                    tally.skipped.push(format!(
                        "{name} replacement #{}: relocation {} {}",
                        r.number, x.1, x.2
                    ));
                    continue;
                }
                b.extend_from_slice(&repl[rs as usize..re as usize]);
            }
            assert!(
                b.len() <= site.len,
                "{name}: replacement longer than the site"
            );
            b.resize(site.len, 0x90);
            variants.push((Some(r.number), b));
        }
        for (variant, bytes) in variants {
            tally.variants += 1;
            let vname = match variant {
                None => "original".to_string(),
                Some(n) => format!("replacement #{n}"),
            };
            // The patched function, with external calls pointed at `ret` stubs appended after it.
            let mut code = text.clone();
            code[start as usize..end as usize].copy_from_slice(&bytes);
            let mut stubs: BTreeMap<String, u64> = BTreeMap::new();
            for (off, ty, sym) in &text_relocs {
                assert!(
                    ty == "R_X86_64_PLT32" || ty == "R_X86_64_PC32",
                    "{name}: unsupported .text relocation {ty} {sym}"
                );
                assert!(
                    *off < start || *off >= end,
                    "{name}: relocation inside the site"
                );
                let stub = *stubs.entry(sym.clone()).or_insert_with(|| {
                    code.push(0xc3);
                    code.len() as u64 - 1
                });
                let rel = (stub as i64 - (*off as i64 + 4)) as i32;
                code[*off as usize..*off as usize + 4].copy_from_slice(&rel.to_le_bytes());
            }
            let tag = format!("{name}-{}", variant.map_or(0, |n| n));
            let t = match run_patched(&code, fn_start, fn_end - fn_start, &tag, dir, stepper) {
                Ok(t) => t,
                Err(e) if strict => {
                    panic!("unwind_cpu: {name} {vname}: {e}(this test needs a working ptrace)")
                }
                Err(e) => {
                    tally.skipped.push(format!(
                        "{name} {vname}: {}",
                        e.lines().nth(1).unwrap_or(&e)
                    ));
                    continue;
                }
            };
            if let Some(f) = &t.fault {
                tally.faults.push(format!("{name} {vname}: {f}"));
            }
            let mut in_site = 0;
            for s in &t.steps {
                if s.off < start || s.off >= end {
                    continue;
                }
                in_site += 1;
                let off = s.off - start;
                let row = row_at(&rows, text_sec, s.off)
                    .unwrap_or_else(|| panic!("{name}: no ORC row at {:#x}", s.off));
                let (ra_ok, bp_ok, words) = check_row(&t, s, &row.entry);
                if row.entry.bp_reg == orc_reg::PREV_SP {
                    tally.bp_rows += 1;
                    if bp_ok {
                        tally.bp_rows_right += 1;
                    }
                }
                let right = ra_ok && bp_ok;
                let is_listed = listed.contains(&(variant, off));
                let mut known = altcfi_knows(&a, site_idx, site, variant, off);
                if known == Known::Yes {
                    known_executed.insert((variant, off));
                }
                if known == Known::Yes && row.entry.ty != OrcType::Call {
                    // A regs/hinted frame: the return address is in pt_regs, which a plain call from the driver
                    // does not build; the CPU cannot tell whether the row is right.
                    known = Known::NotACallFrame;
                }
                if is_listed {
                    seen_listed.insert((variant, off));
                }
                if known != Known::Yes {
                    // altcfi makes no claim here: the walk never reached the instruction, or it is not an
                    // instruction in objtool's model (a one-byte padding NOP after the first).
                    tally.unclaimed.push(format!(
                        "{name} {vname} at site +{off:#x} ({}): CPU says ORC is {}",
                        match (is_listed, &known) {
                            (true, _) => "listed as a mismatch, but the row is not a call frame",
                            (_, Known::Unreached) => "altcfi's walk never reached it",
                            (_, Known::NotACallFrame) => "the row is not a call frame",
                            _ => "not an instruction in objtool's model of the padding",
                        },
                        if right { "right" } else { "WRONG" }
                    ));
                    writeln!(
                        log,
                        "    {vname} +{off:#x}: {words}; altcfi makes no claim ({known:?})"
                    )
                    .unwrap();
                    continue;
                }
                tally.steps += 1;
                let agrees = if is_listed {
                    tally.listed_checked += 1;
                    // The CPU must show what altcfi says goes wrong: the return address, the caller's rbp.
                    let m = verdict
                        .mismatches
                        .iter()
                        .find(|m| (m.replacement, m.offset) == (variant, off))
                        .unwrap();
                    let ra_claim = m.what.contains("return address") || m.what.contains("CFA=");
                    let bp_claim = m.what.contains("caller's rbp");
                    !right && (!ra_claim || !ra_ok) && (!bp_claim || !bp_ok)
                } else {
                    right
                };
                writeln!(
                    log,
                    "    {vname} +{off:#x}: {words}; altcfi {}; {}",
                    if is_listed {
                        "lists a mismatch"
                    } else {
                        "says right"
                    },
                    if agrees { "agree" } else { "DISAGREE" }
                )
                .unwrap();
                if agrees {
                    tally.agree += 1;
                } else {
                    tally.disagree.push(format!(
                        "{name} {vname} at site +{off:#x}: {words}; altcfi {}",
                        if is_listed {
                            "lists a mismatch"
                        } else {
                            "says the row is right"
                        }
                    ));
                }
            }
            if in_site == 0 {
                tally.skipped.push(format!(
                    "{name} {vname}: no instruction executed inside the site"
                ));
            }
        }
        // Every (variant, offset) altcfi checked ran on the CPU (these fixtures are straight-line code).
        if known_executed.len() != verdict.checked {
            let msg = format!(
                "{name} site {}: altcfi checked {} variant instructions, {} of the ones it knows ran on the CPU",
                site.location,
                verdict.checked,
                known_executed.len()
            );
            assert!(!strict, "unwind_cpu: {msg}");
            tally.skipped.push(msg);
        }
        for m in listed.difference(&seen_listed) {
            tally
                .listed_unexecuted
                .push(format!("{name} {:?} +{:#x}", m.0, m.1));
        }
    }
}

fn run_fixtures(names: &[String], strict: bool) {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let stepper = build_stepper(dir.path());
    let mut tally = Tally::default();
    let mut log = String::new();
    for name in names {
        check_fixture(name, strict, dir.path(), &stepper, &mut tally, &mut log);
    }
    eprintln!("{log}");
    eprintln!(
        "unwind_cpu: {} variants run; {} in-site steps where altcfi makes a claim: {} agree with the CPU, {} disagree; \
         {} of them at a listed mismatch (listed but never executed: {:?}); {} steps under a row with the caller's rbp \
         at CFA-16, {} of them right; {:.1?}",
        tally.variants,
        tally.steps,
        tally.agree,
        tally.disagree.len(),
        tally.listed_checked,
        tally.listed_unexecuted,
        tally.bp_rows,
        tally.bp_rows_right,
        started.elapsed()
    );
    eprintln!(
        "unwind_cpu: variants that faulted in user space after the steps shown ({}):\n  {}",
        tally.faults.len(),
        tally.faults.join("\n  ")
    );
    eprintln!(
        "unwind_cpu: skipped ({}):\n  {}",
        tally.skipped.len(),
        tally.skipped.join("\n  ")
    );
    eprintln!(
        "unwind_cpu: {} executed (variant, offset)s where altcfi makes no claim:\n  {}",
        tally.unclaimed.len(),
        tally.unclaimed.join("\n  ")
    );
    assert!(tally.steps > 0, "no steps checked");
    if strict {
        assert!(
            tally.skipped.is_empty(),
            "unwind_cpu: variants skipped: {:?}",
            tally.skipped
        );
    }
    assert!(
        tally.disagree.is_empty(),
        "altcfi's unwind verdict disagrees with the CPU:\n{}",
        tally.disagree.join("\n")
    );
}

#[test]
fn unwind_verdicts_match_the_cpu() {
    let names: Vec<String> = FIXTURES.iter().map(|s| s.to_string()).collect();
    run_fixtures(&names, true);
}

/// Every 6.12 `.S` fixture under `tests/fixtures/alt` with a stack layout conflict, tolerating variants that cannot
/// run in user space (their steps before they fail are kept). About 4 s.
#[test]
fn unwind_verdicts_match_the_cpu_all_alt_fixtures() {
    let names: Vec<String> = fixtures()
        .into_iter()
        .filter(|f| {
            f.name.ends_with("-612")
                && f.src.extension().is_some_and(|x| x == "S")
                && f.src.parent().is_some_and(|d| d.ends_with("alt"))
        })
        .map(|f| f.name)
        .collect();
    run_fixtures(&names, false);
}
