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

/// The fixtures whose every variant must run and agree, in both `.altinstructions` layouts (`-612`: 6.3+,
/// `-61`: 5.13–6.2): push/pop imbalance, frame-pointer functions (CFA on rbp), stack size only, a saved register
/// only, different `%rbp` handling, calls in the original and in a replacement (fixed up when patched), shorter
/// replacements (padding NOPs), `ALTERNATIVE_2`/`_3`, ignored alternatives that would and would not break.
const FIXTURES: &[&str] = &[
    "conflict-design-example-612",
    "conflict-design-example-61",
    "conflict-nop-vs-push-612",
    "conflict-nop-vs-push-61",
    "rbp-depth-only-612",
    "rbp-depth-only-61",
    "frame-setup-conflict-612",
    "frame-setup-conflict-61",
    "saved-reg-only-612",
    "saved-reg-only-61",
    "rbp-handling-612",
    "rbp-handling-61",
    "rbp-frame-call-612",
    "rbp-frame-call-61",
    "clean-call-612",
    "clean-call-61",
    "repl-call-mid-612",
    "conflict-padding-nop-612",
    "conflict-padding-nop-61",
    "shorter-clean-612",
    "shorter-clean-61",
    "alt2-nested-conflict-612",
    "alt2-second-conflicts-612",
    "alt2-second-conflicts-61",
    "alt3-third-conflicts-612",
    "alt3-third-conflicts-61",
    "ignore-alternative-612",
    "ignore-alternative-61",
    "ignore-alternative-ok-612",
    "ignore-alternative-ok-61",
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

/// Relocations of one section: (offset, type, symbol, addend).
fn relocs(obj: &Path, sec: &str) -> Vec<(u64, String, String, i64)> {
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
            // `sym-0x4`, `.text+0x12`, `sym`: the sign after the name's first character starts the addend.
            let cut = val[1..].find(['-', '+']).map(|i| i + 1);
            let (sym, addend) = match cut {
                Some(i) => {
                    let n = i64::from_str_radix(val[i + 1..].trim_start_matches("0x"), 16).ok()?;
                    (&val[..i], if &val[i..=i] == "-" { -n } else { n })
                }
                None => (val, 0),
            };
            Some((off, ty, sym.to_string(), addend))
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
    /// Fixtures with at least one site, per layout (6.12, 6.1).
    fixtures: [usize; 2],
    variants: usize,
    skipped: Vec<String>,
    steps: usize,
    agree: usize,
    disagree: Vec<String>,
    listed_checked: usize,
    after_checked: usize,
    listed_unexecuted: Vec<String>,
    bp_rows: usize,
    bp_rows_right: usize,
    unclaimed: Vec<String>,
    faults: Vec<String>,
}

/// The era a fixture's macros are written for: `-61` fixtures use the 5.13–6.2 `.altinstructions` layout.
fn era_of(name: &str) -> Era {
    if name.ends_with("-61") {
        Era::V6_1
    } else {
        Era::V6_12
    }
}

/// The value a PC-relative relocation (S + A - P) gets at `place` (a `.text` offset), `sym` resolved against the
/// function symbols of `.text` and the stubs (added for undefined symbols). `repl_shift` maps an
/// `.altinstr_replacement` offset to where it is patched in.
fn pc_rel(
    sym: &str,
    addend: i64,
    place: u64,
    text_syms: &BTreeMap<String, u64>,
    repl_shift: i64,
    code: &mut Vec<u8>,
    stubs: &mut BTreeMap<String, u64>,
) -> i32 {
    let s = match sym {
        ".text" => 0,
        ".altinstr_replacement" => repl_shift,
        _ => match text_syms.get(sym) {
            Some(&a) => a as i64,
            None => *stubs.entry(sym.to_string()).or_insert_with(|| {
                code.push(0xc3);
                code.len() as u64 - 1
            }) as i64,
        },
    };
    (s + addend - place as i64) as i32
}

/// One variant of a site: its number (`None` for the original), its bytes padded to the site's length, and the
/// `.altinstr_replacement` range they come from.
type Variant = (Option<usize>, Vec<u8>, Option<(u64, u64)>);

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
    let era = era_of(name);
    let opts = Options {
        era: Some(era),
        all_conflicts: true,
        ..Options::default()
    };
    let a: Analysis = analyze(&data, opts, &FeatureNames::default()).expect("analysis runs");
    let Some(rows) = a.orc.clone() else {
        assert!(!strict, "{name}: altcfi writes no ORC");
        tally
            .skipped
            .push(format!("{name}: no ORC (a fatal finding)"));
        return;
    };
    let text_sec = a
        .section_names
        .iter()
        .position(|n| n == ".text")
        .expect(".text");
    let text = section_bytes(&obj, ".text", dir);
    let repl = section_bytes(&obj, ".altinstr_replacement", dir);
    let text_relocs = relocs(&obj, ".text");
    let repl_relocs = relocs(&obj, ".altinstr_replacement");
    // Symbols defined in .text, by offset.
    let nm = run(
        Command::new("nm").args(["--defined-only", "-n"]).arg(&obj),
        "nm",
    );
    let mut funcs: Vec<u64> = Vec::new();
    let mut text_syms: BTreeMap<String, u64> = BTreeMap::new();
    for l in nm.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() == 3 && (w[1] == "T" || w[1] == "t") {
            if let Ok(a) = u64::from_str_radix(w[0], 16) {
                funcs.push(a);
                text_syms.insert(w[2].to_string(), a);
            }
        }
    }
    funcs.sort();
    funcs.dedup();
    if a.sites.is_empty() {
        assert!(!strict, "{name}: altcfi sees no alternative site");
        return;
    }
    tally.fixtures[usize::from(era == Era::V6_1)] += 1;
    writeln!(
        log,
        "== {name} ({}): {} site(s), findings {:?}",
        era.name(),
        a.sites.len(),
        a.findings.iter().map(|f| f.kind.code()).collect::<Vec<_>>()
    )
    .unwrap();
    for site in &a.sites {
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
        let claims = &site.unwind;
        if claims.rows_if_checked {
            // A STACK_FRAME_NON_STANDARD function: altcfi's facts are about the rows objtool would make if it
            // checked it, not the undefined ones in the object.
            writeln!(
                log,
                "  site {}: rows if checked, no claim about the object's",
                site.location
            )
            .unwrap();
            continue;
        }
        writeln!(
            log,
            "  site {} [{start:#x}, {end:#x}): verdict {:?}, {} points ({} unknown), mismatches {:?}",
            site.location,
            claims.verdict().map(|v| v.verdict),
            claims.points.len(),
            claims.unknown,
            claims
                .points
                .iter()
                .filter_map(|p| p.mismatch.as_ref())
                .map(|m| (m.replacement, m.offset, m.compact.clone()))
                .collect::<Vec<_>>()
        )
        .unwrap();
        // Every finding that carries a verdict on this site says what the site's facts say.
        for finding in a.findings.iter().filter(|x| {
            x.kind == FindingKind::AltStackConflict
                && x.location
                    .as_ref()
                    .is_some_and(|l| l.section == text_sec && l.offset >= start && l.offset < end)
        }) {
            if let Some(v) = &finding.unwind {
                assert_eq!(
                    Some(v),
                    claims.verdict().as_ref(),
                    "{name}: the finding's verdict is not the site's"
                );
            }
        }
        let mut executed: BTreeSet<(Option<usize>, u64)> = BTreeSet::new();
        // Variants: the original, then each replacement.
        let mut variants: Vec<Variant> =
            vec![(None, text[start as usize..end as usize].to_vec(), None)];
        for r in &site.replacements {
            let mut b = Vec::new();
            let mut range = None;
            if let Some((_, at)) = r.at {
                let re = at + r.len as u64;
                b.extend_from_slice(&repl[at as usize..re as usize]);
                range = Some((at, re));
            }
            assert!(
                b.len() <= site.len,
                "{name}: replacement longer than the site"
            );
            b.resize(site.len, 0x90);
            variants.push((Some(r.number), b, range));
        }
        'variant: for (variant, bytes, range) in variants {
            tally.variants += 1;
            let vname = match variant {
                None => "original".to_string(),
                Some(n) => format!("replacement #{n}"),
            };
            // The patched function, with external calls pointed at `ret` stubs appended after it and the
            // replacement's relative branches and calls fixed up for where it now runs (apply_alternatives).
            let mut code = text.clone();
            code[start as usize..end as usize].copy_from_slice(&bytes);
            let mut stubs: BTreeMap<String, u64> = BTreeMap::new();
            for (off, ty, sym, addend) in &text_relocs {
                if variant.is_some() && *off >= start && *off < end {
                    continue; // overwritten by the replacement
                }
                assert!(
                    ty == "R_X86_64_PLT32" || ty == "R_X86_64_PC32",
                    "{name}: unsupported .text relocation {ty} {sym}"
                );
                let v = pc_rel(sym, *addend, *off, &text_syms, 0, &mut code, &mut stubs);
                code[*off as usize..*off as usize + 4].copy_from_slice(&v.to_le_bytes());
            }
            if let Some((rs, re)) = range {
                for (off, ty, sym, addend) in repl_relocs.iter().filter(|x| x.0 >= rs && x.0 < re) {
                    if ty != "R_X86_64_PLT32" && ty != "R_X86_64_PC32" {
                        tally
                            .skipped
                            .push(format!("{name} {vname}: relocation {ty} {sym}"));
                        continue 'variant;
                    }
                    let place = start + (off - rs);
                    let shift = start as i64 - rs as i64;
                    let v = pc_rel(
                        sym, *addend, place, &text_syms, shift, &mut code, &mut stubs,
                    );
                    code[place as usize..place as usize + 4].copy_from_slice(&v.to_le_bytes());
                }
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
            let mut was_inside = false;
            for s in &t.steps {
                let inside = s.off >= start && s.off < end;
                // The first instruction after the site, entered from inside it.
                let after = !inside && was_inside && s.off == end;
                was_inside = inside;
                if !inside && !after {
                    continue;
                }
                in_site += usize::from(inside);
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
                let at = if after { "after the site" } else { "site" };
                let claim = claims.at(variant, off).filter(|p| p.after == after);
                let Some(claim) = claim.filter(|_| row.entry.ty == OrcType::Call) else {
                    // altcfi makes no claim here (the walk never reached the instruction, or it is not an
                    // instruction in objtool's model: a one-byte padding NOP after the first), or the row is not
                    // a call frame: the return address is in pt_regs, which a plain call does not build.
                    tally.unclaimed.push(format!(
                        "{name} {vname} at {at} +{off:#x} ({}): CPU says ORC is {}",
                        if claim.is_some() {
                            "the row is not a call frame"
                        } else {
                            "altcfi makes no claim"
                        },
                        if right { "right" } else { "WRONG" }
                    ));
                    writeln!(log, "    {vname} {at} +{off:#x}: {words}; no claim").unwrap();
                    continue;
                };
                if !after {
                    executed.insert((variant, off));
                } else {
                    tally.after_checked += 1;
                }
                tally.steps += 1;
                let agrees = match &claim.mismatch {
                    Some(m) => {
                        tally.listed_checked += 1;
                        // The CPU must show what altcfi says goes wrong: the return address, the caller's rbp.
                        let ra_claim = m.what.contains("return address") || m.what.contains("CFA=");
                        let bp_claim = m.what.contains("caller's rbp");
                        !right && (!ra_claim || !ra_ok) && (!bp_claim || !bp_ok)
                    }
                    None => right,
                };
                writeln!(
                    log,
                    "    {vname} {at} +{off:#x}: {words}; altcfi {}; {}",
                    match &claim.mismatch {
                        Some(m) => format!("says wrong ({})", m.compact),
                        None => "says right".into(),
                    },
                    if agrees { "agree" } else { "DISAGREE" }
                )
                .unwrap();
                if agrees {
                    tally.agree += 1;
                } else {
                    tally.disagree.push(format!(
                        "{name} {vname} at {at} +{off:#x}: {words}; altcfi {}",
                        match &claim.mismatch {
                            Some(m) => format!("says wrong: {}", m.what),
                            None => "says the row is right".into(),
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
        // Every (variant, offset) inside the site altcfi makes a claim about ran on the CPU (the strict fixtures
        // are straight-line code).
        let claimed: BTreeSet<(Option<usize>, u64)> = claims
            .points
            .iter()
            .filter(|p| !p.after)
            .map(|p| (p.replacement, p.offset))
            .collect();
        for m in claimed.difference(&executed) {
            let msg = format!(
                "{name} site {}: {:?} +{:#x} never ran",
                site.location, m.0, m.1
            );
            if claims.at(m.0, m.1).is_some_and(|p| p.mismatch.is_some()) {
                tally.listed_unexecuted.push(msg.clone());
            }
            assert!(!strict, "unwind_cpu: {msg}");
            tally.skipped.push(msg);
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
        "unwind_cpu: {} fixtures with sites in the 6.12 layout, {} in the 6.1 layout; {} variants run; {} steps where \
         altcfi makes a claim ({} at the first instruction after a site): {} agree with the CPU, {} disagree; \
         {} of them at a listed mismatch (listed but never executed: {:?}); {} steps under a row with the caller's rbp \
         at CFA-16, {} of them right; {:.1?}",
        tally.fixtures[0],
        tally.fixtures[1],
        tally.variants,
        tally.steps,
        tally.after_checked,
        tally.agree,
        tally.disagree.len(),
        tally.listed_checked,
        tally.listed_unexecuted,
        tally.bp_rows,
        tally.bp_rows_right,
        started.elapsed()
    );
    if strict {
        assert!(
            tally.fixtures[0] >= 10 && tally.fixtures[1] >= 10,
            "unwind_cpu: too few fixtures per layout: {:?}",
            tally.fixtures
        );
    }
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

/// Every `.S` fixture under `tests/fixtures/alt` with an alternative site, in both layouts, tolerating variants
/// that cannot run in user space (their steps before they fail are kept).
#[test]
fn unwind_verdicts_match_the_cpu_all_alt_fixtures() {
    let names: Vec<String> = fixtures()
        .into_iter()
        .filter(|f| {
            (f.name.ends_with("-612") || f.name.ends_with("-61"))
                && f.src.extension().is_some_and(|x| x == "S")
                && f.src.parent().is_some_and(|d| d.ends_with("alt"))
        })
        .map(|f| f.name)
        .collect();
    run_fixtures(&names, false);
}
