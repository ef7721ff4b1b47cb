//! altcfi's instruction boundaries against the decoder objtool really uses: the kernel's own x86 decoder
//! (`tools/arch/x86/lib/insn.c`, `inat.c` and the tables `gen-insn-attr-x86.awk` makes from `x86-opcode-map.txt`),
//! compiled here from a cached Linux tree exactly as objtool's build compiles it (`tests/decoder/kinsn.c`). The
//! kernel's code is only run, as an oracle, like objtool itself; none of it is part of altcfi.
//!
//! Two checks:
//! - a linear sweep of every executable section of the cached kernel objects, as objtool's `decode_instructions()`
//!   does, gives the kernel decoder's instructions (the code compilers and assemblers emit for the kernel);
//! - the kernel's emulate prefixes (`XEN_EMULATE_PREFIX`, `KVM_EMULATE_PREFIX`) before the instructions kernel code
//!   puts after them are one instruction, as for the kernel's decoder.
//!
//! Where the two decoders part on encodings no compiler or assembler emits for kernel code (reserved opcodes,
//! prefixes a CPU ignores, REX before a legacy prefix, …) is listed in docs/objtool-differences.md.
//!
//! The Linux 6.12 source tree comes from `.cache/kernel/src-6.12`, made by `scripts/kernel-tree.sh 6.12 noibt` (run
//! here when absent, as tests/kernel_tree.rs does; it needs network access and a few minutes once). Linux 6.1's
//! decoder is also swept over 6.1 objects when that tree is cached.

mod support;

use altcfi_analysis::decode::{decode_range_into, decode_section};
use altcfi_analysis::object::Object;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use support::repo_root;

fn cache() -> PathBuf {
    std::env::var_os("ALTCFI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache"))
        .join("kernel")
}

/// The files of the kernel's decoder in a source tree (all present, or the tree is not usable).
const DECODER_FILES: [&str; 6] = [
    "tools/arch/x86/lib/insn.c",
    "tools/arch/x86/lib/inat.c",
    "tools/arch/x86/lib/x86-opcode-map.txt",
    "tools/arch/x86/tools/gen-insn-attr-x86.awk",
    "tools/arch/x86/include/asm/insn.h",
    "tools/arch/x86/include/asm/inat.h",
];

fn source_tree(gen: &str) -> Option<PathBuf> {
    let src = cache().join(format!("src-{gen}"));
    DECODER_FILES
        .iter()
        .all(|f| src.join(f).is_file())
        .then_some(src)
}

/// The Linux 6.12 tree, unpacked (and its noibt objects built) by scripts/kernel-tree.sh when absent.
fn source_612() -> PathBuf {
    if let Some(src) = source_tree("6.12") {
        return src;
    }
    eprintln!(
        "decoder_kernel: no Linux 6.12 tree in {}: running scripts/kernel-tree.sh 6.12 noibt",
        cache().display()
    );
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/kernel-tree.sh"))
        .args(["6.12", "noibt"])
        .output()
        .expect("run scripts/kernel-tree.sh");
    assert!(
        out.status.success(),
        "kernel-tree.sh 6.12 noibt failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    source_tree("6.12").expect("scripts/kernel-tree.sh made no usable Linux 6.12 tree")
}

/// The kernel's decoder of one generation, built into the harness `kinsn`.
struct Decoder {
    kinsn: PathBuf,
}

fn run(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn build(gen: &str, src: &Path) -> Decoder {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("decoder-kernel-{gen}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    // As tools/objtool/arch/x86/Build generates it.
    let tables = run(
        Command::new("awk")
            .arg("-f")
            .arg(src.join("tools/arch/x86/tools/gen-insn-attr-x86.awk"))
            .arg(src.join("tools/arch/x86/lib/x86-opcode-map.txt")),
        "awk -f gen-insn-attr-x86.awk",
    );
    // Another test process may build in the same directory: every file is written aside, then renamed over.
    let pid = std::process::id();
    let aside = |name: &str| dir.join(format!("{name}.{pid}"));
    std::fs::write(aside("inat-tables.c"), tables).expect("write inat-tables.c");
    std::fs::rename(aside("inat-tables.c"), dir.join("inat-tables.c"))
        .expect("rename inat-tables.c");
    let include = |cmd: &mut Command| {
        cmd.arg("-I")
            .arg(&dir)
            .arg("-I")
            .arg(src.join("tools/include"))
            .arg("-I")
            .arg(src.join("tools/arch/x86/include/uapi"))
            .arg("-I")
            .arg(src.join("tools/arch/x86/include"))
            .arg("-I")
            .arg(src.join("tools/arch/x86/lib"));
    };
    let kinsn = dir.join("kinsn");
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()));
    cmd.args(["-O2", "-w", "-o"]).arg(aside("kinsn"));
    include(&mut cmd);
    cmd.arg(repo_root().join("tests/decoder/kinsn.c"));
    run(&mut cmd, &format!("gcc kinsn.c (Linux {gen})"));
    std::fs::rename(aside("kinsn"), &kinsn).expect("rename the built program");
    Decoder { kinsn }
}

fn decoder_612() -> &'static Decoder {
    static D: OnceLock<Decoder> = OnceLock::new();
    D.get_or_init(|| build("6.12", &source_612()))
}

/// Runs the harness on `input` (its stdin, written from a thread) and returns its output.
fn harness(d: &Decoder, mode: &str, input: Vec<u8>) -> Vec<u8> {
    let mut child = Command::new(&d.kinsn)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run kinsn");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("kinsn output");
    writer.join().expect("writer").expect("write to kinsn");
    assert!(out.status.success(), "kinsn {mode} failed");
    out.stdout
}

/// altcfi's length of the first instruction of a section made of `bytes`, or 0 where it can't decode it.
fn altcfi_first(bytes: &[u8]) -> u8 {
    let mut len = 0;
    match decode_range_into(bytes, 0, 1, &|_| false, |d| len = d.insn.len) {
        Ok(_) => len,
        Err(_) => 0,
    }
}

/// Records for `kinsn one`: `[u8 n][n bytes]` per byte sequence.
fn records(cases: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cases {
        out.push(u8::try_from(c.len()).expect("short case"));
        out.extend(c);
    }
    out
}

#[test]
fn emulate_prefixes_are_one_instruction_as_for_the_kernel_decoder() {
    let d = decoder_612();
    // What kernel code puts after the prefixes (`cpuid`, `rdmsr`, a call, moves, a NOP), and section ends right
    // after them.
    let after: [&[u8]; 8] = [
        &[0x0f, 0xa2],
        &[0x0f, 0x32],
        &[0xe8, 1, 2, 3, 4],
        &[0x48, 0x89, 0xe5],
        &[0x8b, 0x45, 0xf8],
        &[0x0f, 0x1f, 0x44, 0, 0],
        &[0x90],
        &[0xc3],
    ];
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for tag in [b"xen", b"kvm"] {
        for a in after {
            let mut b: Vec<u8> = [0x0f, 0x0b].iter().chain(tag).chain(a).copied().collect();
            cases.push(b.clone());
            b.extend([0x90, 0xc3]);
            cases.push(b);
        }
    }
    let answers = harness(d, "one", records(&cases));
    assert_eq!(answers.len(), 2 * cases.len(), "kinsn answered short");
    let mut failures = Vec::new();
    for (k, c) in cases.iter().enumerate() {
        let (kernel, ours) = (answers[2 * k], altcfi_first(c));
        if kernel != ours {
            failures.push(format!("{c:02x?}: kernel {kernel}, altcfi {ours}"));
        }
        assert!(
            kernel > 5,
            "the kernel's decoder read {c:02x?} as {kernel} bytes"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every `*.o` under `dir`.
fn objects(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            objects(&p, out);
        } else if p.extension().is_some_and(|x| x == "o") {
            out.push(p);
        }
    }
}

/// Sweeps every executable section of the objects in `dirs` with the kernel's decoder of generation `gen` and with
/// altcfi's; returns (objects, instructions) after asserting the two equal.
fn sweep(d: &Decoder, gen: &str, dirs: &[PathBuf]) -> (usize, usize) {
    let mut files = Vec::new();
    for dir in dirs {
        objects(dir, &mut files);
    }
    files.sort();
    let mut input = Vec::new();
    let mut sections: Vec<(String, Vec<u8>)> = Vec::new();
    for f in &files {
        let Ok(data) = std::fs::read(f) else {
            continue;
        };
        let Ok(obj) = Object::parse(&data) else {
            continue;
        };
        for s in obj
            .sections
            .iter()
            .filter(|s| s.is_exec() && !s.data.is_empty())
        {
            input.extend_from_slice(&(s.data.len() as u32).to_le_bytes());
            input.extend_from_slice(s.data);
            sections.push((format!("{}:{}", f.display(), s.name), s.data.to_vec()));
        }
    }
    let answers = harness(d, "sweep", input);
    let mut at = 0;
    let (mut insns, mut failures) = (0usize, Vec::new());
    for (name, bytes) in &sections {
        let mut kernel = Vec::new();
        let kernel_ok = loop {
            let v = answers[at];
            at += 1;
            match v {
                0xff => break true,
                0 => break false,
                n => kernel.push(n),
            }
        };
        insns += kernel.len();
        let (ours, ours_ok) = match decode_section(bytes, |_| false) {
            Ok(v) => (v.iter().map(|d| d.insn.len).collect::<Vec<u8>>(), true),
            Err(e) => {
                let mut v = Vec::new();
                let _ = decode_range_into(bytes, 0, e.offset as usize, &|_| false, |d| {
                    v.push(d.insn.len)
                });
                (v, false)
            }
        };
        if ours != kernel || ours_ok != kernel_ok {
            let i = ours.iter().zip(&kernel).take_while(|(a, b)| a == b).count();
            let offset: usize = kernel[..i].iter().map(|&n| usize::from(n)).sum();
            failures.push(format!(
                "{name}+{offset:#x}: kernel {} altcfi {} ({:02x?})",
                kernel
                    .get(i)
                    .map_or_else(|| "can't decode".into(), |n| format!("{n} bytes")),
                ours.get(i)
                    .map_or_else(|| "can't decode".into(), |n| format!("{n} bytes")),
                &bytes[offset..bytes.len().min(offset + 15)]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} sections sweep otherwise than with Linux {gen}'s decoder:\n{}",
        failures.len(),
        sections.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    (files.len(), insns)
}

#[test]
fn kernel_objects_sweep_as_with_the_kernel_decoder() {
    let d = decoder_612();
    // source_612() has built the noibt objects if it ran scripts/kernel-tree.sh; an unpacked tree without them
    // (another cache) gets them built here.
    let mut dirs: Vec<PathBuf> = ["6.12-noibt", "6.12-ibt"]
        .iter()
        .map(|d| cache().join(d))
        .filter(|d| d.is_dir())
        .collect();
    if dirs.is_empty() {
        run(
            Command::new("bash")
                .arg(repo_root().join("scripts/kernel-tree.sh"))
                .args(["6.12", "noibt"]),
            "scripts/kernel-tree.sh 6.12 noibt",
        );
        dirs.push(cache().join("6.12-noibt"));
    }
    let (objects, insns) = sweep(d, "6.12", &dirs);
    println!("Linux 6.12: {objects} objects, {insns} instructions as with the kernel's decoder");
    assert!(
        objects >= 60 && insns >= 100_000,
        "{objects} objects, {insns} instructions"
    );
    // Linux 6.1's decoder on 6.1 objects, where that tree is cached: altcfi follows 6.12's decoder, which reads
    // everything 6.1's compilers and assemblers emit as 6.1's does.
    let dirs: Vec<PathBuf> = ["6.1-noibt", "6.1-ibt"]
        .iter()
        .map(|d| cache().join(d))
        .filter(|d| d.is_dir())
        .collect();
    match source_tree("6.1") {
        Some(src) if !dirs.is_empty() => {
            let d61 = build("6.1", &src);
            let (objects, insns) = sweep(&d61, "6.1", &dirs);
            println!(
                "Linux 6.1: {objects} objects, {insns} instructions as with the kernel's decoder"
            );
        }
        _ => println!(
            "Linux 6.1: no cached tree with objects (scripts/kernel-tree.sh 6.1 noibt): not swept"
        ),
    }
}
