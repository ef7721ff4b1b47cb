//! Corrupt objects: every fixture object (and DWARF objects built from `tests/fixtures/lines`) is truncated at many
//! points, bit-flipped at seeded positions, and has targeted fields overwritten (ELF and section headers, relocation
//! offsets and symbol indices, `.altinstructions` entries, `.discard.unwind_hints` entries, `.debug_info` and
//! `.debug_line` unit headers). Each mutated object goes through the whole analysis, the special-section readers
//! and the source-line queries; each must end with `Ok` or an `Err`, never a panic, and within [`PER_RUN`].
//!
//! Also checks `altcfi check` on a mix of good and unreadable inputs: the good file's findings print, every bad one
//! gets exactly one `altcfi: error: PATH: ...` line, and the exit status is 2.
//!
//! Everything is deterministic: the mutations come from a fixed-seed generator, so a failure names a mutation that
//! reproduces. See `docs/robustness.md`.

mod support;

use altcfi_analysis::features::FeatureNames;
use altcfi_analysis::lines::LineMap;
use altcfi_analysis::object::Object;
use altcfi_analysis::{analyze, report, special, AnalysisError, Era, Options};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{build_fixture, fixtures, repo_root};

/// The longest one mutated object may take through every stage (debug build, loaded CI machine).
const PER_RUN: Duration = Duration::from_secs(20);
/// The longest all mutations of one object may take together.
const PER_OBJECT: Duration = Duration::from_secs(60);
/// Truncation points per object (plus every section-header and section boundary, capped below).
const TRUNCATIONS: usize = 24;
/// Seeded single-bit flips per object, anywhere in the file.
const BIT_FLIPS: usize = 16;
/// Seeded field overwrites per object, spread over the targeted structures.
const OVERWRITES: usize = 48;

/// splitmix64: a tiny deterministic generator, so the test needs no `rand` and the seeds never change meaning.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A field of the file: where it is, how wide, and what it is (for naming a failing mutation).
#[derive(Debug, Clone)]
struct Field {
    what: String,
    at: usize,
    width: usize,
    /// Structure class, so overwrites can be spread over every class.
    class: &'static str,
}

fn u16_at(d: &[u8], at: usize) -> usize {
    d.get(at..at + 2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as usize)
}
fn u32_at(d: &[u8], at: usize) -> u32 {
    d.get(at..at + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
fn u64_at(d: &[u8], at: usize) -> u64 {
    d.get(at..at + 8).map_or(0, |b| {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    })
}

/// One ELF64 section header of a well-formed object: header offset, name, type, file offset, size, `sh_info`.
struct Shdr {
    at: usize,
    name: String,
    sh_type: u32,
    offset: usize,
    size: usize,
    info: usize,
}

fn section_headers(d: &[u8]) -> Vec<Shdr> {
    let shoff = u64_at(d, 0x28) as usize;
    let shentsize = u16_at(d, 0x3a);
    let shnum = u16_at(d, 0x3c);
    let shstrndx = u16_at(d, 0x3e);
    let raw: Vec<(usize, u32, u32, usize, usize, usize)> = (0..shnum)
        .map(|i| {
            let at = shoff + i * shentsize;
            (
                at,
                u32_at(d, at),
                u32_at(d, at + 4),
                u64_at(d, at + 0x18) as usize,
                u64_at(d, at + 0x20) as usize,
                u32_at(d, at + 0x2c) as usize,
            )
        })
        .collect();
    let strtab = raw.get(shstrndx).map_or(0, |r| r.3);
    raw.iter()
        .map(|&(at, name_off, sh_type, offset, size, info)| {
            let start = strtab + name_off as usize;
            let name = d
                .get(start..)
                .and_then(|s| s.split(|&b| b == 0).next())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .unwrap_or_default();
            Shdr {
                at,
                name,
                sh_type,
                offset,
                size,
                info,
            }
        })
        .collect()
}

/// Every field the overwrites aim at, by class.
fn fields(d: &[u8]) -> Vec<Field> {
    let mut out = Vec::new();
    let mut f = |class: &'static str, what: String, at: usize, width: usize| {
        if at + width <= d.len() {
            out.push(Field {
                what,
                at,
                width,
                class,
            });
        }
    };
    for (name, at, w) in [
        ("e_type", 0x10, 2),
        ("e_machine", 0x12, 2),
        ("e_shoff", 0x28, 8),
        ("e_ehsize", 0x34, 2),
        ("e_shentsize", 0x3a, 2),
        ("e_shnum", 0x3c, 2),
        ("e_shstrndx", 0x3e, 2),
    ] {
        f("elf header", name.into(), at, w);
    }
    let shdrs = section_headers(d);
    for s in &shdrs {
        for (name, off, w) in [
            ("sh_name", 0, 4),
            ("sh_type", 4, 4),
            ("sh_flags", 8, 8),
            ("sh_offset", 0x18, 8),
            ("sh_size", 0x20, 8),
            ("sh_link", 0x28, 4),
            ("sh_info", 0x2c, 4),
            ("sh_entsize", 0x38, 8),
        ] {
            f(
                "section header",
                format!("{} {name}", s.name),
                s.at + off,
                w,
            );
        }
        let body = |k: usize| s.offset + k;
        match s.name.as_str() {
            ".altinstructions" => {
                // Stride: 14 (6.3+) or 12 (5.13–6.2), from the section's relocations as altcfi does.
                let stride = if s.size % 14 == 0 { 14 } else { 12 };
                for e in 0..(s.size / stride).min(8) {
                    for (name, off, w) in [
                        ("orig", 0, 4),
                        ("repl", 4, 4),
                        ("feature", 8, 2),
                        ("flags", 10, 2),
                        ("orig_len", stride - 2, 1),
                        ("repl_len", stride - 1, 1),
                    ] {
                        f(
                            "altinstructions",
                            format!(".altinstructions[{e}].{name}"),
                            body(e * stride + off),
                            w,
                        );
                    }
                }
            }
            ".discard.unwind_hints" => {
                for e in 0..(s.size / 12).min(8) {
                    for (name, off, w) in [
                        ("ip", 0, 4),
                        ("sp_offset", 4, 2),
                        ("sp_reg", 6, 1),
                        ("type", 7, 1),
                        ("signal", 8, 1),
                    ] {
                        f(
                            "unwind hints",
                            format!(".discard.unwind_hints[{e}].{name}"),
                            body(e * 12 + off),
                            w,
                        );
                    }
                }
            }
            ".debug_info" => {
                // DWARF 4: length, version, abbrev offset, address size; DWARF 5: length, version, unit type,
                // address size, abbrev offset. Cover both byte layouts.
                for (name, off, w) in [
                    ("unit_length", 0, 4),
                    ("version", 4, 2),
                    ("bytes 6..10", 6, 4),
                    ("byte 10", 10, 1),
                    ("bytes 8..12", 8, 4),
                    ("first DIE abbrev", 12, 1),
                ] {
                    f("dwarf header", format!(".debug_info {name}"), body(off), w);
                }
            }
            ".debug_line" => {
                let v = u16_at(d, body(4));
                let hl = if v >= 5 { 12 } else { 10 };
                for (name, off, w) in [
                    ("unit_length", 0, 4),
                    ("version", 4, 2),
                    ("address_size", 6, 1),
                    ("header_length", if v >= 5 { 8 } else { 6 }, 4),
                    ("minimum_instruction_length", hl, 1),
                    ("maximum_ops_per_insn", hl + 1, 1),
                    ("line_base", hl + 3, 1),
                    ("line_range", hl + 4, 1),
                    ("opcode_base", hl + 5, 1),
                    ("format counts", hl + 18, 2),
                ] {
                    f("dwarf header", format!(".debug_line {name}"), body(off), w);
                }
            }
            ".debug_abbrev" | ".debug_str" | ".debug_line_str" | ".debug_rnglists"
            | ".debug_aranges" => {
                f("dwarf header", format!("{} +0", s.name), body(0), 4);
            }
            _ => {}
        }
        if s.sh_type == 4 {
            // SHT_RELA: r_offset, symbol index (high half of r_info), type, addend.
            let target = shdrs.get(s.info).map_or("?", |t| t.name.as_str());
            let class = if target.starts_with(".debug") {
                "dwarf relocation"
            } else {
                "relocation"
            };
            for e in 0..(s.size / 24).min(12) {
                let at = s.offset + e * 24;
                f(class, format!("{} [{e}] r_offset", s.name), at, 8);
                f(class, format!("{} [{e}] r_type", s.name), at + 8, 4);
                f(class, format!("{} [{e}] r_sym", s.name), at + 12, 4);
                f(class, format!("{} [{e}] r_addend", s.name), at + 16, 8);
            }
        }
        if s.sh_type == 2 {
            // SHT_SYMTAB: st_shndx and st_value of a few symbols.
            for e in 1..(s.size / 24).min(6) {
                let at = s.offset + e * 24;
                f("symbol", format!(".symtab[{e}] st_name"), at, 4);
                f("symbol", format!(".symtab[{e}] st_shndx"), at + 6, 2);
                f("symbol", format!(".symtab[{e}] st_value"), at + 8, 8);
            }
        }
    }
    out
}

/// Values worth writing into a field of `width` bytes of a file of `len` bytes.
fn value_for(rng: &mut Rng, width: usize, len: usize) -> u64 {
    let mask = if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let v = match rng.below(12) {
        0 => 0,
        1 => u64::MAX,
        2 => 1,
        3 => len as u64,
        4 => len as u64 + 1,
        5 => len as u64 - 1,
        6 => 0x7fff_ffff,
        7 => 0x8000_0000,
        8 => rng.below(64) as u64,
        9 => 0xffff_fff0,
        10 => rng.below(len) as u64,
        _ => rng.next(),
    };
    v & mask
}

/// One mutation of one object.
struct Mutation {
    what: String,
    data: Vec<u8>,
}

fn mutations(name: &str, d: &[u8]) -> Vec<Mutation> {
    let mut rng = Rng(fnv(name));
    let mut out = Vec::new();
    // Truncations: structure boundaries first (end of the ELF header, start and end of each section and of the
    // section header table), then evenly spread points.
    let mut cuts: Vec<usize> = vec![0, 1, 4, 16, 0x3f, 0x40];
    let shdrs = section_headers(d);
    for s in &shdrs {
        cuts.extend([s.offset, s.offset + s.size / 2, s.at + 0x20]);
    }
    cuts.extend((1..TRUNCATIONS).map(|i| d.len() * i / TRUNCATIONS));
    cuts.push(d.len() - 1);
    cuts.retain(|&c| c < d.len());
    cuts.sort_unstable();
    cuts.dedup();
    // Keep the structural points and the spread ones bounded: at most 2 * TRUNCATIONS.
    let keep = cuts.len().div_ceil(2 * TRUNCATIONS).max(1);
    for (i, &c) in cuts.iter().enumerate() {
        if i % keep == 0 || c == d.len() - 1 {
            out.push(Mutation {
                what: format!("truncated to {c} bytes"),
                data: d[..c].to_vec(),
            });
        }
    }
    for _ in 0..BIT_FLIPS {
        let at = rng.below(d.len());
        let bit = rng.below(8);
        let mut m = d.to_vec();
        m[at] ^= 1 << bit;
        out.push(Mutation {
            what: format!("bit {bit} of byte {at:#x} flipped"),
            data: m,
        });
    }
    let all = fields(d);
    let mut classes: Vec<&str> = all.iter().map(|f| f.class).collect();
    classes.sort_unstable();
    classes.dedup();
    for k in 0..OVERWRITES {
        // Round-robin over the classes present, a random field of the class.
        let class = classes[k % classes.len()];
        let of_class: Vec<&Field> = all.iter().filter(|f| f.class == class).collect();
        let field = of_class[rng.below(of_class.len())];
        let v = value_for(&mut rng, field.width, d.len());
        let mut m = d.to_vec();
        m[field.at..field.at + field.width].copy_from_slice(&v.to_le_bytes()[..field.width]);
        out.push(Mutation {
            what: format!("{} ({class}) := {v:#x}", field.what),
            data: m,
        });
    }
    out
}

/// Runs every stage a client can reach on `data`; `Ok(true)` when the analysis gave a result, `Ok(false)` when it
/// gave an error. `Err` names a stage that panicked or failed internally.
fn exercise(data: &[u8], variant: usize) -> Result<bool, String> {
    let stage = |name: &str, f: &mut dyn FnMut()| {
        catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("{name} panicked: {msg}")
        })
    };
    let opts = Options {
        era: [None, Some(Era::V6_12), Some(Era::V6_1)][variant % 3],
        frame_pointer: variant % 2 == 1,
        all_conflicts: true,
        // Every fifth run with kbuild's objtool arguments (prefix symbols, SMAP via the replacement, jump-label
        // NOPs, the retpoline/rethunk/SLS passes).
        objtool: if variant % 5 == 4 {
            altcfi_analysis::ObjtoolArgs::parse([
                "--hacks=jump_label",
                "--hacks=noinstr",
                "--orc",
                "--retpoline",
                "--rethunk",
                "--sls",
                "--uaccess",
                "--prefix=16",
                "--ibt",
            ])
            .expect("known args")
        } else {
            altcfi_analysis::ObjtoolArgs::default()
        },
        // Every fourth run splits decode and walk over two threads whatever the size (their merge and fallback
        // on broken input).
        parallel_min_code: if variant % 4 == 3 {
            0
        } else {
            Options::default().parallel_min_code
        },
    };
    let mut internal = None;
    let mut analyzed = false;
    stage("analyze", &mut || {
        match analyze(data, opts, &FeatureNames::default()) {
            Ok(a) => {
                analyzed = true;
                let _ = report::text("x.o", &a.findings, &[]);
                let _ = report::json_file("x.o", Some(&a), None, &[]);
            }
            // The library turns a panic of its analysis thread into this error: that is a panic all the same.
            Err(AnalysisError::Internal(e)) => internal = Some(e),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    })?;
    if let Some(e) = internal {
        return Err(format!("analyze failed internally: {e}"));
    }
    stage("special", &mut || {
        if let Ok(obj) = Object::parse(data) {
            for era in [Era::V6_12, Era::V6_1] {
                let _ = special::read_special_alts(&obj, era, None, false);
                let _ = special::read_special_alts(&obj, era, Some(era.alt_entry_size()), true);
            }
            let _ = special::read_unwind_hints(&obj);
        }
    })?;
    stage("lines", &mut || {
        if let Ok(map) = LineMap::new(data) {
            let files = map.source_files().unwrap_or_default();
            for sec in 0..12 {
                for off in [0, 1, 0x10, 0x40] {
                    let _ = map.locate(sec, off);
                }
            }
            for f in files.iter().take(4) {
                for line in [1, 5, 10, 20, 40] {
                    let _ = map.code_for_line(f, line);
                }
            }
        }
    })?;
    Ok(analyzed)
}

/// The objects under test: every fixture, plus DWARF objects from `tests/fixtures/lines`.
fn objects(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for f in fixtures() {
        let obj = build_fixture(&f, dir);
        out.push((
            f.name.clone(),
            std::fs::read(&obj).expect("read fixture object"),
        ));
    }
    let lines = repo_root().join("tests/fixtures/lines");
    for (src, flags) in [
        ("inline.c", &["-O2", "-g", "-gdwarf-5"][..]),
        (
            "inline.c",
            &["-O2", "-g", "-gdwarf-4", "-ffunction-sections"],
        ),
        (
            "split.c",
            &["-O2", "-g", "-gdwarf-5", "-ffunction-sections"],
        ),
        ("split.c", &["-O2", "-g", "-gdwarf-4"]),
        ("macros.S", &["-g"]),
    ] {
        let out_path = dir.join(format!("lines-{src}-{}.o", flags.join("")));
        let o = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
            .args(flags)
            .arg("-c")
            .arg(lines.join(src))
            .arg("-o")
            .arg(&out_path)
            .output()
            .expect("run gcc");
        assert!(
            o.status.success(),
            "gcc {src}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out.push((
            format!("lines/{src} {}", flags.join(" ")),
            std::fs::read(&out_path).expect("read"),
        ));
    }
    out
}

#[test]
fn corrupt_objects_never_panic_or_hang() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let objs = objects(dir.path());
    let built = started.elapsed();
    // The runs happen on a worker thread so that a hang is reported (with its mutation) instead of stalling.
    let (tx, rx) = mpsc::channel::<Result<bool, String>>();
    let (work_tx, work_rx) = mpsc::channel::<(String, Vec<u8>, usize)>();
    let worker = std::thread::spawn(move || {
        for (label, data, variant) in work_rx {
            let r = exercise(&data, variant);
            if tx.send(r.map_err(|e| format!("{label}: {e}"))).is_err() {
                break;
            }
        }
    });
    let mut failures = Vec::new();
    let mut runs = 0usize;
    let mut analyzed = 0usize;
    let mut slowest = (Duration::ZERO, String::new());
    for (name, data) in &objs {
        let object_started = Instant::now();
        for (i, m) in mutations(name, data).into_iter().enumerate() {
            let label = format!("{name}: {}", m.what);
            let t = Instant::now();
            work_tx
                .send((label.clone(), m.data, i))
                .expect("worker alive");
            match rx.recv_timeout(PER_RUN) {
                Ok(Ok(ok)) => analyzed += usize::from(ok),
                Ok(Err(e)) => failures.push(e),
                Err(_) => panic!("{label}: no result within {PER_RUN:?} (hang?)"),
            }
            let took = t.elapsed();
            if took > slowest.0 {
                slowest = (took, label);
            }
            runs += 1;
        }
        let took = object_started.elapsed();
        assert!(
            took < PER_OBJECT,
            "{name}: its mutations took {took:.1?} together (bound {PER_OBJECT:?})"
        );
    }
    drop(work_tx);
    worker.join().expect("worker");
    eprintln!(
        "corrupt: {} objects, {runs} mutated runs ({analyzed} analysed, {} rejected with an error), {} failures; \
         built in {:.1?}, total {:.1?}; slowest run {:.1?} ({})",
        objs.len(),
        runs - analyzed - failures.len(),
        failures.len(),
        built,
        started.elapsed(),
        slowest.0,
        slowest.1
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} mutated objects panicked:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The mutations are a pure function of the object: the same seed gives the same runs.
#[test]
fn mutations_are_deterministic() {
    let d: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let a: Vec<String> = mutations("x", &d).into_iter().map(|m| m.what).collect();
    let b: Vec<String> = mutations("x", &d).into_iter().map(|m| m.what).collect();
    assert_eq!(a, b);
    assert!(a.len() >= BIT_FLIPS + OVERWRITES);
}

fn altcfi_check(args: &[&Path]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_altcfi"))
        .arg("check")
        .args(args)
        .output()
        .expect("run altcfi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A 32-bit ELF object: from `gcc -m32` when multilib works, else a hand-made ELFCLASS32 header.
fn elf32(dir: &Path) -> PathBuf {
    let src = dir.join("m32.c");
    let out = dir.join("m32.o");
    std::fs::write(&src, "int f(int x) { return x + 1; }\n").expect("write");
    let built = Command::new("gcc")
        .args(["-m32", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .is_ok_and(|o| o.status.success());
    if !built {
        let mut h = vec![0u8; 52];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 1; // ELFCLASS32
        h[5] = 1; // little-endian
        h[6] = 1; // EV_CURRENT
        h[0x10] = 1; // ET_REL
        h[0x12] = 3; // EM_386
        h[0x14] = 1;
        h[0x28] = 52; // e_ehsize
        h[0x2e] = 40; // e_shentsize
        std::fs::write(&out, h).expect("write");
    }
    out
}

#[test]
fn check_reports_each_bad_input_once_and_keeps_going() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let fx = fixtures()
        .into_iter()
        .find(|f| f.name == "conflict-design-example-612")
        .expect("fixture conflict-design-example-612");
    let good = build_fixture(&fx, d);
    let bytes = std::fs::read(&good).expect("read");
    let truncated = d.join("truncated.o");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).expect("write");
    let text = d.join("notes.o");
    std::fs::write(&text, "this is not an object file\n").expect("write");
    let m32 = elf32(d);
    // An aarch64 relocatable object: the good x86-64 object with e_machine = EM_AARCH64.
    let arm = d.join("arm64.o");
    let mut a = bytes.clone();
    a[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(&arm, a).expect("write");
    let subdir = d.join("a-directory.o");
    std::fs::create_dir(&subdir).expect("mkdir");
    let missing = d.join("missing.o");

    let alone = altcfi_check(&[&good]);
    assert_eq!(alone.0, 1, "the good object has findings: {alone:?}");
    assert!(alone.1.contains("stack layout conflict in alternatives"));

    let bad: Vec<&Path> = vec![&truncated, &text, &m32, &arm, &subdir, &missing];
    let mut args: Vec<&Path> = vec![&truncated, &good, &text];
    args.extend([&m32, &arm, &subdir, &missing].map(PathBuf::as_path));
    let (code, stdout, stderr) = altcfi_check(&args);
    assert_eq!(code, 2, "exit status with unreadable inputs\n{stderr}");
    assert_eq!(
        stdout, alone.1,
        "the good object's findings print unchanged"
    );
    // A directory among the inputs is walked for objects, so the run ends with a summary line.
    let (summary, lines): (Vec<&str>, Vec<&str>) = stderr
        .lines()
        .partition(|l| l.contains(" objects checked, "));
    assert!(
        summary.len() == 1
            && summary[0].starts_with(
                "altcfi: 1 objects checked, 1 with findings (1 findings), 0 not validated by kbuild (skipped), \
                 6 could not be analysed; "
            ),
        "{stderr}"
    );
    assert_eq!(lines.len(), bad.len(), "one line per bad input:\n{stderr}");
    for p in &bad {
        let prefix = format!("altcfi: error: {}: ", p.display());
        let n = lines.iter().filter(|l| l.starts_with(&prefix)).count();
        assert_eq!(n, 1, "{prefix}… once:\n{stderr}");
    }
    for l in &lines {
        assert!(!l.contains("panicked"), "{l}");
    }
    let line = |p: &Path| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("altcfi: error: {}: ", p.display())))
            .copied()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line(&text).contains("not a 64-bit little-endian ELF"),
        "{}",
        line(&text)
    );
    assert!(
        line(&arm).contains("not an x86-64 object"),
        "{}",
        line(&arm)
    );
    assert!(line(&missing).contains("cannot read"), "{}", line(&missing));
    assert!(
        line(&subdir).contains("a directory with no object files"),
        "{}",
        line(&subdir)
    );
}

// Regressions: inputs that once panicked, hung or exhausted memory, rebuilt here from source text and byte patches
// (no binary files in the repository). Each names the crash it reproduces.

/// Assembles `src` with gcc and returns the object's bytes.
fn assemble(dir: &Path, name: &str, src: &str) -> Vec<u8> {
    let s = dir.join(format!("{name}.S"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&s, src).expect("write source");
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
        .arg("-c")
        .arg(&s)
        .arg("-o")
        .arg(&o)
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&o).expect("read object")
}

/// File offset of the section header of the section called `name`.
fn shdr_named(d: &[u8], name: &str) -> usize {
    section_headers(d)
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no section {name}"))
        .at
}

fn put(d: &mut [u8], at: usize, v: u64, width: usize) {
    d[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
}

/// Every era and frame-pointer variant of every stage must survive `data`.
fn assert_survives(label: &str, data: &[u8]) {
    for variant in 0..6 {
        if let Err(e) = exercise(data, variant) {
            panic!("{label} (variant {variant}): {e}");
        }
    }
}

const ORC_SRC: &str = "
.text
.globl f
.type f,@function
f:
	push %rbp
	pop %rbp
	ret
.size f, .-f
.section .orc_unwind_ip,\"a\"
	.long f - .
.section .orc_unwind,\"a\"
	.byte 0,0,0,0,0x10,0x02
";

/// orc::read_existing sized its row vector by `.orc_unwind`'s `sh_size`: an `SHT_NOBITS` section (no bytes in the
/// file) claiming 2^63 bytes made `Vec::with_capacity` panic ("capacity overflow"), and 2^40 bytes aborted the
/// process on the allocation.
#[test]
fn regression_orc_unwind_nobits_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = assemble(dir.path(), "orc", ORC_SRC);
    assert_survives("orc", &good);
    for size in [0x7fff_ffff_ffff_fff0u64, 1 << 40, u64::MAX] {
        let mut d = good.clone();
        let h = shdr_named(&d, ".orc_unwind");
        put(&mut d, h + 4, 8, 4); // SHT_NOBITS
        put(&mut d, h + 0x20, size, 8);
        assert_survives(&format!(".orc_unwind NOBITS size {size:#x}"), &d);
    }
}

/// orc::read_existing added a symbol's value and the relocation addend with `+`: a huge `st_value` overflowed
/// (a panic in debug builds).
#[test]
fn regression_orc_unwind_ip_symbol_value_overflow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = ORC_SRC.replace(".long f - .", ".long f + 4 - .");
    let good = assemble(dir.path(), "orc-sym", &src);
    // The relocation names `f` (a global symbol, not the section): give `f` the largest value.
    let symtab = section_headers(&good)
        .into_iter()
        .find(|s| s.sh_type == 2)
        .expect("symtab");
    let mut done = false;
    let mut d = good.clone();
    for e in 1..symtab.size / 24 {
        let at = symtab.offset + e * 24;
        if d[at + 4] & 0xf == 2 {
            put(&mut d, at + 8, i64::MAX as u64, 8);
            done = true;
        }
    }
    assert!(done, "f is a function symbol");
    assert_survives(".orc_unwind_ip symbol value i64::MAX", &d);
}

/// Sets `st_value` and `st_size` of every symbol called `name`; returns how many it changed.
fn patch_symbol(d: &mut [u8], name: &str, value: Option<u64>, size: Option<u64>) -> usize {
    let shdrs = section_headers(d);
    let symtab = shdrs.iter().find(|s| s.sh_type == 2).expect("symtab");
    let link = u32_at(d, symtab.at + 0x28) as usize;
    let strtab = shdrs.get(link).expect("strtab").offset;
    let mut n = 0;
    for e in 1..symtab.size / 24 {
        let at = symtab.offset + e * 24;
        let start = strtab + u32_at(d, at) as usize;
        let sym_name = d[start..].split(|&b| b == 0).next().unwrap_or_default();
        if sym_name == name.as_bytes() {
            if let Some(v) = value {
                put(d, at + 8, v, 8);
            }
            if let Some(s) = size {
                put(d, at + 16, s, 8);
            }
            n += 1;
        }
    }
    n
}

const COLD_PFX_SRC: &str = "
.text
.globl __pfx_f
.type __pfx_f,@function
__pfx_f:
	.skip 16, 0x90
.size __pfx_f, .-__pfx_f
.globl f
.type f,@function
f:
	call g
	ret
.size f, .-f
.type f.cold,@function
f.cold:
	ret
.size f.cold, .-f.cold
.type g,@function
g:
	ret
.size g, .-g
";

/// Symbol arithmetic with `+` on `st_value`/`st_size` from the file (`__pfx_` padding's function start, a `.cold`
/// part's end): huge values overflowed (a panic in debug builds).
#[test]
fn regression_symbol_value_size_overflow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = assemble(dir.path(), "coldpfx", COLD_PFX_SRC);
    assert_survives("cold/pfx", &good);
    for name in ["__pfx_f", "f", "f.cold", "g"] {
        for (value, size) in [
            (None, Some(u64::MAX)),
            (Some(u64::MAX), None),
            (Some(u64::MAX - 1), Some(2)),
            (Some(1 << 63), Some(1 << 63)),
        ] {
            let mut d = good.clone();
            assert_eq!(patch_symbol(&mut d, name, value, size), 1, "{name}");
            assert_survives(&format!("{name} value {value:x?} size {size:x?}"), &d);
        }
    }
}

/// Calls and jumps across sections (relocations against section and function symbols), a jump table, and the
/// annotations that name instructions by relocation.
const CROSS_SECTION_SRC: &str = "
.section .text.x,\"ax\"
.type x,@function
x:
	call g
	jmp *table(,%rax,8)
.Lx1:
	ret
.Lx2:
	ret
.size x, .-x
y:
	jmp g
	jmp f
	call f.cold
.section .rodata
table:
	.quad .Lx1
	.quad .Lx2
.section .discard.ignore_alts
	.long f - .
.section .discard.intra_function_calls
	.long f - .
";

/// Relocation targets computed as `st_value + r_addend (+ 4)` with `+`: an extreme addend on a call or jump
/// overflowed (a panic in debug builds).
#[test]
fn regression_reloc_addend_overflow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = assemble(
        dir.path(),
        "addend",
        &format!("{COLD_PFX_SRC}{CROSS_SECTION_SRC}"),
    );
    assert_survives("addend", &good);
    let relas: Vec<_> = section_headers(&good)
        .into_iter()
        .filter(|s| s.sh_type == 4)
        .collect();
    assert!(!relas.is_empty());
    for s in &relas {
        for e in 0..s.size / 24 {
            for addend in [i64::MAX, i64::MIN, i64::MAX - 3] {
                let mut d = good.clone();
                put(&mut d, s.offset + e * 24 + 16, addend as u64, 8);
                assert_survives(&format!("{} [{e}] addend {addend:#x}", s.name), &d);
            }
        }
    }
}

/// A function whose `st_value + st_size` passes 2^64 around its jump table: the table walk's "end of the function"
/// `value + len` overflowed (a panic in debug builds). Table relocations at the top of the address space are
/// covered too (`prev + 8` wraps now, though a table cannot start that high).
#[test]
fn regression_jump_table_offset_overflow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = assemble(
        dir.path(),
        "jt",
        &format!("{COLD_PFX_SRC}{CROSS_SECTION_SRC}"),
    );
    let rela = section_headers(&good)
        .into_iter()
        .find(|s| s.name == ".rela.rodata")
        .expect(".rela.rodata");
    for e in 0..rela.size / 24 {
        for off in [u64::MAX, u64::MAX - 7, 1 << 63] {
            let mut d = good.clone();
            put(&mut d, rela.offset + e * 24, off, 8);
            assert_survives(&format!(".rela.rodata [{e}] r_offset {off:#x}"), &d);
        }
    }
    // The whole table moved to the top of the address space: the jump's R_X86_64_32S addend and both entries.
    let text_rela = section_headers(&good)
        .into_iter()
        .find(|s| s.name == ".rela.text.x")
        .expect(".rela.text.x");
    let jmp = (0..text_rela.size / 24)
        .map(|e| text_rela.offset + e * 24)
        .find(|&at| u32_at(&good, at + 8) == 11)
        .expect("R_X86_64_32S for the table");
    let mut d = good.clone();
    put(&mut d, jmp + 16, (-4i64) as u64, 8);
    put(&mut d, rela.offset, u64::MAX - 3, 8);
    put(&mut d, rela.offset + 24, u64::MAX, 8);
    assert_survives("jump table at offset 2^64-4", &d);
    // x starting at its `jmp *table` (after the 5-byte call) and reaching to the end of the address space.
    for (value, size) in [
        (Some(5), Some(u64::MAX)),
        (Some(8), Some(u64::MAX)),
        (Some(u64::MAX), Some(1)),
    ] {
        let mut d = good.clone();
        assert_eq!(patch_symbol(&mut d, "x", value, size), 1);
        assert_survives(&format!("x value {value:x?} size {size:x?}"), &d);
    }
}

/// CFI offsets are `i32` like objtool's `int`: a few `sub $0x7fffff00, %rsp` (or `lea`, or a store far below the
/// stack pointer) overflowed `stack_size`/`cfa.offset` (a panic in debug builds). They wrap, as objtool's do.
#[test]
fn regression_cfi_offset_overflow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = assemble(
        dir.path(),
        "cfi-overflow",
        "
.text
.globl f
.type f,@function
f:
	sub $0x7fffff00, %rsp
	sub $0x7fffff00, %rsp
	sub $0x7fffff00, %rsp
	push %rbx
	mov %rbx, 0x7fffff00(%rsp)
	add $0x7fffff00, %rsp
	add $0x7fffff00, %rsp
	add $0x7fffff00, %rsp
	pop %rbx
	ret
.size f, .-f
.globl g
.type g,@function
g:
	push %rbp
	mov %rsp, %rbp
	lea -0x7fffff00(%rsp), %rsp
	lea -0x7fffff00(%rsp), %rsp
	lea -0x7fffff00(%rsp), %rsp
	mov %rax, -0x7fffff00(%rbp)
	lea 0x7fffff00(%rbp), %rsp
	lea -0x7fffff00(%rbp), %rsp
	pop %rbp
	ret
.size g, .-g
",
    );
    assert_survives("cfi offsets near i32::MAX", &d);
}

/// A compile unit with an inlined call whose `DW_AT_high_pc` is a size that runs past 2^64: gimli's
/// `Dwarf::die_ranges` added it to `DW_AT_low_pc` with `+` (a panic in debug builds, found by the `lines` fuzz
/// target); lines.rs now computes DIE ranges with a checked add.
#[test]
fn regression_inlined_high_pc_overflow() {
    let src = "
.text
f:
	nop
	nop
	ret
.section .debug_abbrev,\"\",@progbits
	.uleb128 1, 0x11
	.byte 1
	.uleb128 0x03, 0x08, 0x10, 0x17, 0x11, 0x01, 0x12, 0x07
	.byte 0, 0
	.uleb128 2, 0x1d
	.byte 0
	.uleb128 0x58, 0x0b, 0x59, 0x0b, 0x11, 0x01, 0x12, 0x07
	.byte 0, 0
	.byte 0
.section .debug_info,\"\",@progbits
	.long .Linfo_end - .Linfo_start
.Linfo_start:
	.short 4
	.long .debug_abbrev
	.byte 8
	.uleb128 1
	.string \"a.c\"
	.long .Lline
	.quad f
	.quad 3
	.uleb128 2
	.byte 1, 1
	.quad f + 1
	.quad HIGH_PC
	.byte 0
.Linfo_end:
.section .debug_line,\"\",@progbits
.Lline:
	.long .Lline_end - .Lline_start
.Lline_start:
	.short 4
	.long .Lhdr_end - .Lhdr_start
.Lhdr_start:
	.byte 1, 1, 1, -5, 14, 13
	.byte 0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1
	.byte 0
	.string \"a.c\"
	.uleb128 0, 0, 0
	.byte 0
.Lhdr_end:
	.byte 0, 9, 2
	.quad f
	.byte 0x13
	.byte 0, 1, 1
.Lline_end:
";
    let dir = tempfile::tempdir().expect("temp dir");
    for high_pc in ["1", "0xffffffffffffffff", "0xfffffffffffffff0"] {
        let d = assemble(dir.path(), "high-pc", &src.replace("HIGH_PC", high_pc));
        assert_survives(&format!("inlined DW_AT_high_pc size {high_pc}"), &d);
        if high_pc == "1" {
            // The well-formed variant really reaches the inlined-call index: line 1 of a.c maps to code.
            let map = LineMap::new(&d).expect("line map");
            let ranges = map.code_for_line(Path::new("a.c"), 1).expect("lines");
            assert!(ranges.iter().any(|r| r.inlined), "{ranges:?}");
        }
    }
}

/// The walk recurses once per branch level like objtool's. It used to run on a thread of its own with a 256 MiB
/// stack; now it grows the stack of whatever thread it runs on. 30,000 nested conditional jumps (each jumps to the
/// next instruction, so each level recurses), walked on a thread with a 256 KiB stack, must reach the bottom: the
/// `ret` with a pushed register there is reported.
#[test]
fn deep_branch_nesting_on_a_small_stack() {
    const LEVELS: usize = 30_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut src = String::from(".text\n.globl deep\n.type deep,@function\ndeep:\n");
    for _ in 0..LEVELS {
        src.push_str("\ttest %eax,%eax\n\tjz 1f\n1:\n");
    }
    src.push_str("\tpush %rbx\n\tret\n.size deep, .-deep\n");
    let data = assemble(dir.path(), "deep", &src);
    let findings = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            analyze(&data, Options::default(), &FeatureNames::default()).map(|a| {
                a.findings
                    .iter()
                    .map(|f| f.message.clone())
                    .collect::<Vec<_>>()
            })
        })
        .expect("spawn")
        .join()
        .expect("the walk overflowed its stack or panicked")
        .expect("analysis");
    assert!(
        findings
            .iter()
            .any(|m| m.contains("return with modified stack")),
        "{findings:?}"
    );
    assert!(
        !findings.iter().any(|m| m.contains("nests too deeply")),
        "{findings:?}"
    );
}
