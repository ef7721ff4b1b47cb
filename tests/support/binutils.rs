//! binutils as a test oracle: run a tool, list instruction offsets with `objdump -d`, and read `addr2line -f -i`
//! frames. Shared by the lines tests (analysis crate) and the sources tests (altcfi crate).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a tool and returns its standard output; panics with its stderr when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Instruction offsets (from the section start) per executable section, from `objdump -d`. objdump prints
/// addresses; for linked objects the section's address is subtracted.
pub fn instructions(obj: &Path) -> BTreeMap<String, Vec<u64>> {
    let bytes = std::fs::read(obj).expect("read object");
    let parsed = altcfi_analysis::object::Object::parse(&bytes).expect("parse object");
    let text = run(Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(obj));
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Disassembly of section ") {
            current = Some(rest.trim_end_matches(':').to_owned());
            continue;
        }
        let Some(section) = &current else { continue };
        if !line.starts_with(char::is_whitespace) {
            continue;
        }
        let Some((addr, rest)) = line.trim_start().split_once(":\t") else {
            continue;
        };
        // objdump prints a continuation line (no mnemonic) for long instructions.
        if rest.trim().is_empty() {
            continue;
        }
        let base = parsed.section_by_name(section).map_or(0, |s| s.addr);
        if let Ok(address) = u64::from_str_radix(addr, 16) {
            out.entry(section.clone()).or_default().push(address - base);
        }
    }
    out
}

/// One frame as binutils prints it; `None` for `??` and line 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinFrame {
    /// Function name.
    pub function: Option<String>,
    /// Source file.
    pub file: Option<PathBuf>,
    /// Line.
    pub line: Option<u32>,
}

/// `addr2line -f -i -a -j SECTION` for each offset: the frames, innermost first.
pub fn addr2line(obj: &Path, section: &str, offsets: &[u64]) -> BTreeMap<u64, Vec<BinFrame>> {
    let mut out = BTreeMap::new();
    for chunk in offsets.chunks(200) {
        let text = run(Command::new("addr2line")
            .args(["-f", "-i", "-a", "-e"])
            .arg(obj)
            .args(["-j", section])
            .args(chunk.iter().map(|o| format!("{o:#x}"))));
        let mut lines = text.lines();
        let mut current: Option<(u64, Vec<BinFrame>)> = None;
        while let Some(line) = lines.next() {
            if let Some(hex) = line.strip_prefix("0x") {
                if let Some((offset, frames)) = current.take() {
                    out.insert(offset, frames);
                }
                current = Some((u64::from_str_radix(hex, 16).expect("address"), Vec::new()));
                continue;
            }
            let function = line.to_owned();
            let location = lines.next().expect("location line after the function line");
            let location = location
                .find(" (discriminator")
                .map_or(location, |i| &location[..i]);
            let (file, line_no) = location.rsplit_once(':').expect("file:line");
            current
                .as_mut()
                .expect("address line first")
                .1
                .push(BinFrame {
                    function: (function != "??").then_some(function),
                    file: (file != "??").then(|| PathBuf::from(file)),
                    line: line_no.parse().ok().filter(|&l| l != 0),
                });
        }
        if let Some((offset, frames)) = current.take() {
            out.insert(offset, frames);
        }
    }
    out
}

/// What the lines stage gives for one instruction, reduced to what binutils prints.
pub fn reduce(frames: &[altcfi_analysis::lines::SourceFrame]) -> Vec<BinFrame> {
    frames
        .iter()
        .map(|f| BinFrame {
            function: f.function.clone(),
            file: f.file.clone(),
            line: f.line,
        })
        .collect()
}
