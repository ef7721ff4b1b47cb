//! Checked fixes for stack layout conflicts in alternatives: candidate edits of an `ALTERNATIVE` line that change no
//! variant's behaviour (a NOP of some size inserted at the front, between two instructions or at the end of one
//! variant), each compiled with the live machinery ([`crate::live`]) and analysed; only a candidate after which the
//! site has no finding, every variant unwinds right ([`altcfi_analysis::unwind`]) and every other finding of the
//! file is unchanged is offered.
//!
//! *Invariant:* never offers an unchecked edit, and never an edit that moves or changes a real instruction: a
//! candidate only inserts a NOP inside one quoted variant of the line. Knows nothing of LSP (the language server's
//! code actions and `altcfi fix` both call [`checked_fixes`]).

use crate::live::{self, CompileCommand, LiveError, Policy};
use altcfi_analysis::features::FeatureNames;
use altcfi_analysis::findings::FindingKind;
use altcfi_analysis::sources::Sources;
use altcfi_analysis::{analyze, Analysis, Options};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One NOP to insert: its assembler text and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pad {
    text: &'static str,
    bytes: usize,
    /// How many instructions (`nop; nop` is two).
    count: usize,
}

/// The pads tried, cheapest first: one to three one-byte NOPs, then the kernel's long NOPs of 2 to 8 bytes (as
/// bytes, so that the assembler cannot shorten them).
const PADS: [Pad; 10] = [
    Pad {
        text: "nop",
        bytes: 1,
        count: 1,
    },
    Pad {
        text: ".byte 0x66,0x90",
        bytes: 2,
        count: 1,
    },
    Pad {
        text: "nop; nop",
        bytes: 2,
        count: 2,
    },
    Pad {
        text: ".byte 0x0f,0x1f,0x00",
        bytes: 3,
        count: 1,
    },
    Pad {
        text: ".byte 0x0f,0x1f,0x40,0x00",
        bytes: 4,
        count: 1,
    },
    Pad {
        text: ".byte 0x0f,0x1f,0x44,0x00,0x00",
        bytes: 5,
        count: 1,
    },
    Pad {
        text: ".byte 0x66,0x0f,0x1f,0x44,0x00,0x00",
        bytes: 6,
        count: 1,
    },
    Pad {
        text: ".byte 0x0f,0x1f,0x80,0x00,0x00,0x00,0x00",
        bytes: 7,
        count: 1,
    },
    Pad {
        text: ".byte 0x0f,0x1f,0x84,0x00,0x00,0x00,0x00,0x00",
        bytes: 8,
        count: 1,
    },
    Pad {
        text: "nop; nop; nop",
        bytes: 3,
        count: 3,
    },
];

impl Pad {
    fn describe(&self) -> String {
        match (self.count, self.bytes) {
            (1, 1) => "a NOP".into(),
            (n, 1..) if n > 1 => format!("{n} NOPs"),
            (_, b) => format!("a {b}-byte NOP"),
        }
    }
}

/// A candidate edit of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// What it does (`pad the original with a 4-byte NOP at the front`).
    pub what: String,
    /// 0-based line.
    pub line: u32,
    /// The line's new text.
    pub new_line: String,
}

/// The quoted strings of a line: (start, end) byte ranges of their contents.
fn quoted(line: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (c, start) {
            _ if escaped => escaped = false,
            ('\\', Some(_)) => escaped = true,
            ('"', None) => start = Some(i + 1),
            ('"', Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// Whether an item of a variant switches sections or sets the location (a NOP beside it could go into another
/// section, e.g. an exception table, or shift code whose place is fixed).
fn moves_code(item: &str) -> bool {
    const DIRECTIVES: [&str; 14] = [
        ".pushsection",
        ".popsection",
        ".section",
        ".previous",
        ".subsection",
        ".text",
        ".data",
        ".bss",
        ".org",
        ".skip",
        ".space",
        ".fill",
        ".rept",
        ".align",
    ];
    let word = item.split_whitespace().next().unwrap_or_default();
    DIRECTIVES.contains(&word) || word.starts_with(".p2align") || word.starts_with(".balign")
}

/// Candidate edits for the alternative site on 0-based `line` of `text`: for the original (the first quoted string
/// of the line) and each replacement (the other quoted strings), each NOP of [`PADS`] at the front, after each
/// instruction but the last, and at the end. Cheapest first. None if the line quotes no variant.
pub fn candidates(text: &str, line: u32) -> Vec<Candidate> {
    let Some(src) = text.lines().nth(line as usize) else {
        return Vec::new();
    };
    if !src.contains("ALTERNATIVE") {
        return Vec::new();
    }
    let strings = quoted(src);
    let mut out = Vec::new();
    for pad in PADS {
        for (v, &(s, e)) in strings.iter().enumerate() {
            let variant = if v == 0 {
                "the original".to_string()
            } else {
                format!("replacement #{v}")
            };
            let insns: Vec<&str> = src[s..e]
                .split(';')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .collect();
            if insns.iter().any(|i| moves_code(i)) {
                // A NOP next to a section switch or a location directive could land in another section or move
                // code: no candidate for this variant.
                continue;
            }
            for at in 0..=insns.len() {
                let mut new: Vec<&str> = insns.clone();
                new.insert(at, pad.text);
                let place = if at == 0 {
                    "at the front".to_string()
                } else if at == insns.len() {
                    "at the end".to_string()
                } else {
                    format!("after `{}`", insns[at - 1])
                };
                out.push(Candidate {
                    what: format!("pad {variant} with {} {place}", pad.describe()),
                    line,
                    new_line: format!("{}{}{}", &src[..s], new.join("; "), &src[e..]),
                });
            }
        }
    }
    out
}

/// A fix that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// The title to show: what it does and what it achieves.
    pub title: String,
    /// The edit.
    pub candidate: Candidate,
}

/// What the checks analyse with.
#[derive(Debug, Clone)]
pub struct CheckWith<'a> {
    /// The source file's compile command.
    pub command: &'a CompileCommand,
    /// What a live compile may do.
    pub policy: &'a Policy,
    /// Analysis options (era, objtool's options for the object).
    pub options: Options,
    /// Feature names.
    pub features: &'a FeatureNames,
}

/// Why fixes could not be looked for.
#[derive(Debug, thiserror::Error)]
pub enum FixError {
    /// The text as it is could not be compiled.
    #[error("{0}")]
    Compile(#[from] LiveError),
    /// The object could not be analysed.
    #[error("cannot analyse the compiled text: {0}")]
    Analysis(String),
    /// There is no stack layout conflict on the line.
    #[error("no stack layout conflict on line {0}")]
    NoConflict(u32),
}

/// The verdicts a fix is judged by: the findings of the file off the site's line (code and 1-based line), and
/// whether the site's line is clean and every variant of its sites unwinds right.
#[derive(Debug, PartialEq, Eq)]
struct Verdicts {
    elsewhere: Vec<(&'static str, u32)>,
    site_clean: bool,
    unwinds_right: bool,
    conflict_on_line: bool,
}

fn verdicts(a: &Analysis, data: &[u8], file: &Path, line1: u32) -> Result<Verdicts, FixError> {
    let sources = Sources::new(a, data).map_err(|e| FixError::Analysis(e.to_string()))?;
    let same = |p: &Path| crate::paths::same_file(p, file);
    let mut elsewhere = Vec::new();
    let mut site_clean = true;
    let mut conflict_on_line = false;
    for f in &a.findings {
        let pos = sources.for_finding(f).primary;
        match pos {
            Some(p) if same(&p.path) && p.line == line1 => {
                site_clean = false;
                conflict_on_line |= f.kind == FindingKind::AltStackConflict;
            }
            Some(p) => elsewhere.push((f.kind.code(), if same(&p.path) { p.line } else { 0 })),
            None => elsewhere.push((f.kind.code(), 0)),
        }
    }
    elsewhere.sort_unstable();
    let mut sites = 0;
    let mut unwinds_right = true;
    for site in &a.sites {
        let Some(p) = sources.position(site.orig.0, site.orig.1) else {
            continue;
        };
        if !(same(&p.path) && p.line == line1) {
            continue;
        }
        sites += 1;
        unwinds_right &= site
            .unwind
            .verdict()
            .is_some_and(|u| u.mismatches.is_empty());
    }
    Ok(Verdicts {
        elsewhere,
        site_clean,
        unwinds_right: unwinds_right && sites > 0,
        conflict_on_line,
    })
}

fn compile_and_judge(
    text: &str,
    with: &CheckWith<'_>,
    line1: u32,
    cancelled: &dyn Fn() -> bool,
) -> Result<Verdicts, FixError> {
    let compiled = live::compile(with.command, text, with.policy, cancelled)?;
    let a = analyze(&compiled.object, with.options, with.features)
        .map_err(|e| FixError::Analysis(e.to_string()))?;
    verdicts(&a, &compiled.object, &with.command.file, line1)
}

/// The checked fixes for the stack layout conflict on 0-based `line` of `text` (at most `max`, cheapest first):
/// each candidate is compiled and analysed (two at a time), and kept only if the site's line has no finding left,
/// every variant of its sites unwinds right, and the file's other findings are the same as before. Blocking;
/// `cancelled()` stops it.
pub fn checked_fixes(
    text: &str,
    line: u32,
    with: &CheckWith<'_>,
    max: usize,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<Fix>, FixError> {
    let line1 = line + 1;
    let before = compile_and_judge(text, with, line1, cancelled)?;
    if !before.conflict_on_line {
        return Err(FixError::NoConflict(line1));
    }
    let candidates = candidates(text, line);
    let next = AtomicUsize::new(0);
    let found: Mutex<Vec<(usize, Fix)>> = Mutex::new(Vec::new());
    let enough = || found.lock().map(|f| f.len() >= max).unwrap_or(true) || cancelled();
    let worker = || loop {
        if enough() {
            return;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(c) = candidates.get(i) else { return };
        let new_text = replace_line(text, c.line, &c.new_line);
        let Ok(v) = compile_and_judge(&new_text, with, line1, cancelled) else {
            continue;
        };
        if v.site_clean && v.unwinds_right && v.elsewhere == before.elsewhere {
            if let Ok(mut f) = found.lock() {
                f.push((
                    i,
                    Fix {
                        title: format!("{}: the site becomes clean", c.what),
                        candidate: c.clone(),
                    },
                ));
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(worker);
        worker();
    });
    let mut found = found.into_inner().unwrap_or_default();
    found.sort_by_key(|(i, _)| *i);
    found.truncate(max);
    Ok(found.into_iter().map(|(_, f)| f).collect())
}

/// `text` with 0-based line `line` replaced by `new_line` (line endings kept).
pub fn replace_line(text: &str, line: u32, new_line: &str) -> String {
    let mut out = String::with_capacity(text.len() + new_line.len());
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i == line as usize {
            out.push_str(new_line);
            let ending = &l[l.trim_end_matches(['\n', '\r']).len()..];
            out.push_str(ending);
        } else {
            out.push_str(l);
        }
    }
    out
}

/// A unified diff of a one-line change with three lines of context (`--- a/PATH`, `+++ b/PATH`).
pub fn unified_diff(path: &str, text: &str, line: u32, new_line: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let l = line as usize;
    let from = l.saturating_sub(3);
    let to = (l + 4).min(lines.len());
    let count = to - from;
    let mut out = format!(
        "--- a/{path}\n+++ b/{path}\n@@ -{},{count} +{},{count} @@\n",
        from + 1,
        from + 1
    );
    for (i, t) in lines.iter().enumerate().take(to).skip(from) {
        if i == l {
            out.push_str(&format!("-{t}\n+{new_line}\n"));
        } else {
            out.push_str(&format!(" {t}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "\tALTERNATIVE \"pushf; pop %rax\", \"push %rcx; push %rcx; pop %rax; pop %rcx\", X86_FEATURE_XENPV";

    #[test]
    fn candidates_only_insert_nops_inside_the_quoted_variants() {
        let text = format!("a\n{LINE}\nb\n");
        let c = candidates(&text, 1);
        // 2 variants, 3 + 5 places, 10 pads.
        assert_eq!(c.len(), 80);
        assert!(c.iter().all(|c| c.line == 1));
        assert_eq!(c[0].what, "pad the original with a NOP at the front");
        assert_eq!(
            c[0].new_line,
            "\tALTERNATIVE \"nop; pushf; pop %rax\", \"push %rcx; push %rcx; pop %rax; pop %rcx\", X86_FEATURE_XENPV"
        );
        let strip = |s: &str| -> String {
            let mut s = s.to_owned();
            for p in PADS {
                s = s
                    .replace(&format!("{}; ", p.text), "")
                    .replace(&format!("; {}", p.text), "");
            }
            s
        };
        for cand in &c {
            assert_eq!(strip(&cand.new_line), LINE, "{cand:?}");
        }
        assert!(c
            .iter()
            .any(|c| c.what == "pad replacement #1 with a 4-byte NOP after `push %rcx`"));
        assert!(candidates("nop\n", 0).is_empty());
        // A variant that switches sections gets no candidate (a NOP could land in the other section).
        let sect = "\tALTERNATIVE \"1: mov (%rdi), %rax; .pushsection __ex_table, \\\"a\\\"; .long 1b; .popsection\", \"push %rcx; pop %rcx\", X86_FEATURE_XENPV\n";
        let c = candidates(sect, 0);
        assert!(!c.is_empty());
        assert!(
            c.iter().all(|c| c.what.contains("replacement #1")),
            "{c:#?}"
        );
    }

    #[test]
    fn line_replacement_and_diff() {
        let text = "1\n2\n3\n4\n5\n6\n7\n8\n";
        assert_eq!(replace_line(text, 3, "four"), "1\n2\n3\nfour\n5\n6\n7\n8\n");
        assert_eq!(
            unified_diff("x.S", text, 3, "four"),
            "--- a/x.S\n+++ b/x.S\n@@ -1,7 +1,7 @@\n 1\n 2\n 3\n-4\n+four\n 5\n 6\n 7\n"
        );
    }

    #[test]
    fn the_demo_conflict_gets_a_checked_fix_that_makes_it_clean() {
        let (_dir, cmd, text) = crate::live::tests::demo();
        let line = text
            .lines()
            .position(|l| l.contains("push %rcx; push %rcx"))
            .expect("site") as u32;
        let policy = Policy::default();
        let features = FeatureNames::default();
        let with = CheckWith {
            command: &cmd,
            policy: &policy,
            options: Options::default(),
            features: &features,
        };
        let started = std::time::Instant::now();
        let fixes = checked_fixes(&text, line, &with, 3, &|| false).expect("fixes");
        eprintln!(
            "{} fixes in {} ms",
            fixes.len(),
            started.elapsed().as_millis()
        );
        assert!(!fixes.is_empty());
        for f in &fixes {
            eprintln!("{}", f.title);
            assert!(f.title.ends_with(": the site becomes clean"), "{}", f.title);
            let fixed = replace_line(&text, line, &f.candidate.new_line);
            let v = compile_and_judge(&fixed, &with, line + 1, &|| false).expect("judge");
            assert!(v.site_clean && v.unwinds_right, "{v:?}");
        }
        // The clean site of the demo has no conflict to fix.
        let ok = text
            .lines()
            .position(|l| l.contains("call xen_save_fl"))
            .expect("ok") as u32;
        assert!(matches!(
            checked_fixes(&text, ok, &with, 3, &|| false),
            Err(FixError::NoConflict(_))
        ));
    }
}
