//! Sources stage: puts an [`Analysis`] on the developer's source lines, and explains what the unwinder sees there.
//!
//! This module owns the join of the analysis (instructions, CFI, alternative sites, ORC rows, findings) with the
//! object's DWARF ([`crate::lines`]): the source frames of an instruction, with replacement code that has no line
//! rows of its own (C inline asm) mapped through its `.altinstructions` entry to the site's line; the source
//! positions of a finding (primary, related, inline call sites); the per-line view behind `altcfi explain`, hover and
//! inlay hints ([`Explanation`], [`LineSummary`]).
//!
//! Architecture invariant: plain data in, plain data out. It does no I/O (paths are names read from DWARF, never
//! opened), never panics on malformed input (a bad or missing DWARF gives empty answers), knows nothing about LSP or
//! the command line, and never parses DWARF until a source question is asked ([`Sources::dwarf_used`]).

use crate::analysis::{AltSite, Analysis, InsnInfo};
use crate::cfi::{CfiState, HintType};
use crate::findings::{Finding, FindingKind, Location};
use crate::lines::{self, normalize, path_matches, LineMap, SourceFrame};
use crate::object::{Object, SymKind};
use crate::options::Era;
use crate::orc::{self, DumpFormat, OrcEntry};
use crate::special::{self, SpecialKind};
use serde::Serialize;
use std::cell::{Cell, OnceCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A place in a source file. `column` is 1-based, 0 when DWARF does not know it (assembler code).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SourcePos {
    /// The file as DWARF names it (joined with the compilation directory, like addr2line).
    pub path: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, 0 if unknown.
    pub column: u32,
}

impl SourcePos {
    /// gcc's rendering: `path:line:column`, or `path:line` when the column is unknown.
    pub fn gcc(&self) -> String {
        if self.column == 0 {
            format!("{}:{}", self.path.display(), self.line)
        } else {
            format!("{}:{}:{}", self.path.display(), self.line, self.column)
        }
    }

    /// The position of a frame, if it has a file and a line.
    pub fn of_frame(frame: &SourceFrame) -> Option<SourcePos> {
        Some(SourcePos {
            path: frame.file.clone()?,
            line: frame.line?,
            column: frame.column.unwrap_or(0),
        })
    }
}

/// The source positions of one finding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FindingSources {
    /// Where the finding is: its instruction's innermost line; for an alternative conflict, the site's original
    /// line (the `ALTERNATIVE` invocation, or the inline `asm` statement).
    pub primary: Option<SourcePos>,
    /// Every other place involved, labelled: each related location of the finding, each replacement of a
    /// conflicting site, and each outer inline frame (the call sites the primary line was inlined through).
    pub related: Vec<(String, SourcePos)>,
    /// The call sites the primary line was inlined through, innermost first (empty when not inlined).
    pub inline_frames: Vec<SourcePos>,
}

/// One instruction in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainRow {
    /// Section name.
    pub section: String,
    /// Offset in the section.
    pub offset: u64,
    /// objtool's location text (`func+0x1a`).
    pub location: String,
    /// The instruction bytes in hex (`e8 00 00 00 00`).
    pub bytes: String,
    /// AT&T disassembly.
    pub text: String,
    /// The CFI on entry, in `readelf -wF` notation (`CFA=rsp+16 rbx=c-16 ra=c-8`); `None` if no path reaches it.
    pub cfi: Option<String>,
    /// The `objtool --dump=orc` line of the ORC row in effect here; `None` outside the ORC table (replacement
    /// code, or no ORC because of a fatal finding).
    pub orc: Option<String>,
    /// The alternative site and side the instruction belongs to: `site save_fl+0x4, original` or
    /// `site save_fl+0x4, replacement #1 [X86_FEATURE_XENPV]`.
    pub site: Option<String>,
    /// The instruction's innermost source line.
    pub source: Option<SourcePos>,
}

/// One side of an alternative site at one offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteCell {
    /// The instruction at that offset (AT&T), or the padding NOP objtool adds after a short replacement.
    pub instruction: String,
    /// Its CFI on entry in `readelf -wF` notation; `None` if no path reaches it.
    pub cfi: Option<String>,
    /// Whether an unwind from here, with this variant patched in, is right: `unwind ✓` or
    /// `unwind ✗ ra read at rsp+8, is at rsp+24` ([`crate::unwind::SiteUnwind::cell`]); `None` when not known.
    pub unwind: Option<String>,
}

/// One byte offset of an alternative site where at least one side has an instruction boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteOffset {
    /// Offset from the site start.
    pub offset: u64,
    /// One cell per [`SiteView::columns`] entry; `None` where that side has no instruction starting here.
    pub cells: Vec<Option<SiteCell>>,
    /// The sides disagree here: a stack layout conflict.
    pub conflict: bool,
    /// What differs between the two states of the reported conflict here (`stack size 8 vs 24`), when one was
    /// reported at this offset.
    pub differs: Vec<String>,
}

/// An alternative site, its original and every replacement side by side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteView {
    /// objtool's location of the site start.
    pub location: String,
    /// Length of the original (the size of the shared slot array).
    pub len: usize,
    /// Column names: `original`, then `#1 X86_FEATURE_XENPV`, ….
    pub columns: Vec<String>,
    /// Per offset with an instruction boundary on any side, in order.
    pub offsets: Vec<SiteOffset>,
    /// The source line of the site.
    pub source: Option<SourcePos>,
    /// The unwind verdict in two words (`unwind breaks`, `unwind ✓`; with a note when the rows are the ones objtool
    /// would make in a `STACK_FRAME_NON_STANDARD` function), `None` when it cannot be told.
    pub unwind: Option<String>,
    /// Per column: whether an unwind from the first instruction after the site, entered from that variant, is
    /// right (as [`SiteCell::unwind`]).
    pub after: Vec<Option<String>>,
}

/// What the unwinder sees for one source line or one location: every instruction, and each alternative site
/// involved side by side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// What was asked (`demo.S:21`, `save_fl+0x4`).
    pub query: String,
    /// The instructions, original code first in address order, then replacement code.
    pub rows: Vec<ExplainRow>,
    /// The alternative sites the instructions belong to.
    pub sites: Vec<SiteView>,
}

/// What one source line produced, for inlay hints and code lenses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineSummary {
    /// 1-based line.
    pub line: u32,
    /// The CFA rule at the line's first instruction (`CFA=rsp+16`); `None` if no path reaches it.
    pub cfa: Option<String>,
    /// An alternative site starts on this line.
    pub site: bool,
    /// A stack layout conflict in alternatives is reported on this line.
    pub conflict: bool,
    /// Indices into [`Analysis::findings`] of the findings whose location is on this line (any inline frame).
    pub findings: Vec<usize>,
    /// What the unwinder sees at the line's first instruction when a CFA rule alone says little: `pt_regs`,
    /// `iret frame`, `undefined`, `end of stack` (`None` for an ordinary call frame).
    pub orc_kind: Option<&'static str>,
    /// The line's instructions change the stack state (it differs among them or after the last one).
    pub changes_stack: bool,
    /// The line makes a call.
    pub call: bool,
}

/// The source lines of every instruction ([`Sources::insn_lines`]): instruction `i`'s (file id, line) pairs are
/// `entries[ends[i-1]..ends[i]]`, file ids index `files`.
#[derive(Debug, Default)]
struct InsnLines {
    files: Vec<PathBuf>,
    entries: Vec<(u32, u32)>,
    ends: Vec<usize>,
}

impl InsnLines {
    /// The lines of instruction `i` in the files `wanted` marks (by file id).
    fn lines_in(&self, i: usize, wanted: &[bool]) -> Vec<u32> {
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0)
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.entries
            .get(start..end)
            .unwrap_or(&[])
            .iter()
            .filter(|(id, _)| wanted.get(*id as usize).copied().unwrap_or(false))
            .map(|&(_, line)| line)
            .collect()
    }
}

/// Whether the `len` bytes at `at` (section, offset) hold (`section`, `offset`); an empty range holds its start (an
/// empty original or replacement still names its site).
fn covers(at: (usize, u64), len: u64, section: usize, offset: u64) -> bool {
    at.0 == section && at.1 <= offset && offset < at.1.saturating_add(len.max(1))
}

/// An `.altinstructions` entry's original and replacement positions.
#[derive(Debug, Clone, Copy)]
struct AltEntryPos {
    orig: (usize, u64),
    new: Option<(usize, u64)>,
    new_len: u64,
}

/// One side at one offset while building a [`SiteView`]: the cell and the state id (to compare sides).
type GridCell = (SiteCell, Option<crate::cfi::CfiId>);

/// Instructions per section, sorted by offset: (offset, end, index into [`Analysis::insns`]).
type InsnIndex = HashMap<usize, Vec<(u64, u64, usize)>>;

/// Source-line questions about one analysed object. Cheap to create: the DWARF is parsed on the first question
/// that needs it, and the indexes are built on first use.
pub struct Sources<'a> {
    analysis: &'a Analysis,
    data: &'a [u8],
    lines: LineMap<'a>,
    dwarf_used: Cell<bool>,
    object: OnceCell<Option<Object<'a>>>,
    alt_entries: OnceCell<Vec<AltEntryPos>>,
    insn_index: OnceCell<InsnIndex>,
    orc_index: OnceCell<HashMap<usize, Vec<(u64, OrcEntry)>>>,
    insn_lines: OnceCell<InsnLines>,
}

impl std::fmt::Debug for Sources<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("lines", &self.lines)
            .field("dwarf_used", &self.dwarf_used.get())
            .finish_non_exhaustive()
    }
}

impl<'a> Sources<'a> {
    /// Source questions about `analysis`, the result of analysing `data`. Reads only the ELF headers.
    pub fn new(analysis: &'a Analysis, data: &'a [u8]) -> Result<Self, lines::LinesError> {
        Ok(Sources {
            analysis,
            data,
            lines: LineMap::new(data)?,
            dwarf_used: Cell::new(false),
            object: OnceCell::new(),
            alt_entries: OnceCell::new(),
            insn_index: OnceCell::new(),
            orc_index: OnceCell::new(),
            insn_lines: OnceCell::new(),
        })
    }

    /// Whether the object has DWARF line or debug information.
    pub fn has_debug_info(&self) -> bool {
        self.lines.has_debug_info()
    }

    /// Whether a question has needed the DWARF yet (it is parsed then, once).
    pub fn dwarf_used(&self) -> bool {
        self.dwarf_used.get()
    }

    /// The source files the DWARF names (for messages about a file that produced no code).
    pub fn source_files(&self) -> Vec<PathBuf> {
        self.dwarf_used.set(true);
        self.lines.source_files().unwrap_or_default()
    }

    /// Source frames of an instruction, innermost first; replacement code (`.altinstr_replacement`) with no line
    /// rows maps through its `.altinstructions` entry to the site's original line. Empty if DWARF has no line.
    /// This is what DWARF says (addr2line's answer, `tests/sources.rs`); what a user is shown is
    /// [`Self::placed_frames`].
    pub fn frames(&self, section: usize, offset: u64) -> Vec<SourceFrame> {
        self.dwarf_used.set(true);
        let own = self.lines.locate(section, offset).unwrap_or_default();
        if own.iter().any(|f| f.line.is_some()) {
            return own;
        }
        if let Some((s, o)) = self.replacement_origin(section, offset) {
            let mapped = self.lines.locate(s, o).unwrap_or_default();
            if mapped.iter().any(|f| f.line.is_some()) {
                return mapped;
            }
        }
        own
    }

    /// The source frames an instruction is shown on: [`Self::frames`], except for code of an alternative site
    /// whose own bytes got no line row (a replacement gas assembled inside a macro, an empty original's
    /// padding). A lookup there only finds the row of whatever code precedes it in its section, often another
    /// site's statement lines away, so such code is placed on its site's line ([`Self::site_frames`]).
    pub fn placed_frames(&self, section: usize, offset: u64) -> Vec<SourceFrame> {
        if let Some((s, (vs, start, len))) = self.variant_at(section, offset) {
            if !self.has_row_in(vs, start, len) {
                let site = self.site_frames(s);
                if site.iter().any(|f| f.line.is_some()) {
                    return site;
                }
            }
        }
        self.frames(section, offset)
    }

    /// The innermost source line of an instruction.
    pub fn position(&self, section: usize, offset: u64) -> Option<SourcePos> {
        self.placed_frames(section, offset)
            .iter()
            .find_map(SourcePos::of_frame)
    }

    /// Source positions of a finding: primary = the finding's location (for alternative conflicts, the original
    /// site's line), related = every related location, each replacement side and each outer inline frame.
    pub fn for_finding(&self, f: &Finding) -> FindingSources {
        let mut out = FindingSources::default();
        let Some(loc) = &f.location else {
            return out;
        };
        let site = (f.kind == FindingKind::AltStackConflict)
            .then(|| self.site_of(loc.section, loc.offset))
            .flatten();
        // The site's line (see `site_frames`), else the finding's own.
        let frames = site
            .map(|s| self.site_frames(s))
            .filter(|f| f.iter().any(|x| x.line.is_some()))
            .unwrap_or_else(|| self.placed_frames(loc.section, loc.offset));
        let mut lined = frames.iter().enumerate().filter(|(_, f)| f.line.is_some());
        if let Some((first, frame)) = lined.next() {
            out.primary = SourcePos::of_frame(frame);
            for (i, outer) in frames.iter().enumerate().skip(first + 1) {
                let Some(pos) = SourcePos::of_frame(outer) else {
                    continue;
                };
                out.inline_frames.push(pos.clone());
                let inner = frames[i - 1].function.as_deref().unwrap_or("code");
                let what = match &outer.function {
                    Some(caller) => format!("{inner}() inlined into {caller}() here"),
                    None => format!("{inner}() inlined here"),
                };
                out.related.push((what, pos));
            }
        }
        let mut seen: BTreeSet<(String, SourcePos)> = out.related.iter().cloned().collect();
        let mut push = |out: &mut FindingSources, what: String, pos: Option<SourcePos>| {
            if let Some(pos) = pos {
                if seen.insert((what.clone(), pos.clone())) {
                    out.related.push((what, pos));
                }
            }
        };
        for (what, l) in &f.related {
            push(&mut out, what.clone(), self.position(l.section, l.offset));
        }
        if let Some(s) = site {
            for r in &self.analysis.sites[s].replacements {
                let Some((rs, ro)) = r.at else { continue };
                let what = format!("replacement #{} [{}]", r.number, r.feature);
                push(&mut out, what, self.position(rs, ro));
            }
        }
        out
    }

    /// The code ranges `file:line` produced ([`LineMap::code_for_line`], with its index kept in this `Sources`);
    /// empty where the DWARF has none or cannot be read.
    pub fn code_for_line(&self, file: &Path, line: u32) -> Vec<lines::CodeRange> {
        self.dwarf_used.set(true);
        self.lines.code_for_line(file, line).unwrap_or_default()
    }

    /// Every instruction from `file:line` (line rows, inlined code called from the line, and the replacement code
    /// of alternative sites on it), with the sites side by side.
    pub fn explain_line(&self, file: &Path, line: u32) -> Explanation {
        let ranges = self.code_for_line(file, line);
        let index = self.insn_index();
        let mut chosen: BTreeSet<usize> = BTreeSet::new();
        for r in &ranges {
            let Some(list) = index.get(&r.section) else {
                continue;
            };
            let first = list.partition_point(|&(o, _, _)| o < r.start);
            chosen.extend(
                list[first..]
                    .iter()
                    .take_while(|&&(o, _, _)| o < r.end)
                    .map(|&(_, _, i)| i),
            );
        }
        // Site code with no row of its own is found through the row of earlier code: it belongs to its site's
        // line, not to this one (unless that is this one).
        let query = normalize(file);
        chosen.retain(|&i| {
            let insn = &self.analysis.insns[i];
            insn.site.is_none()
                || self
                    .placed_frames(insn.section, insn.offset)
                    .iter()
                    .any(|f| {
                        f.line == Some(line)
                            && f.file
                                .as_deref()
                                .is_some_and(|p| path_matches(&query, &normalize(p)))
                    })
        });
        // Replacement code has no rows in C inline asm: add every side of the sites the line touches.
        let sites: BTreeSet<usize> = chosen
            .iter()
            .filter_map(|&i| self.analysis.insns[i].site.map(|(s, _)| s))
            .collect();
        for (i, insn) in self.analysis.insns.iter().enumerate() {
            if insn.site.is_some_and(|(s, _)| sites.contains(&s)) {
                chosen.insert(i);
            }
        }
        self.explanation(
            format!("{}:{line}", file.display()),
            chosen.into_iter().collect(),
            sites.into_iter().collect(),
        )
    }

    /// The instruction at a location (`func+0x1a`, `func+1a`, `func`, `.text+0x1a`) and, when it belongs to an
    /// alternative site, every side of that site. `None` if the location names no instruction.
    pub fn explain_location(&self, loc: &str) -> Option<Explanation> {
        let (section, offset) = self.resolve_location(loc)?;
        let i = self.insn_containing(section, offset)?;
        let mut chosen = vec![i];
        let mut sites = Vec::new();
        if let Some((s, _)) = self.analysis.insns[i].site {
            sites.push(s);
            chosen = (0..self.analysis.insns.len())
                .filter(|&k| self.analysis.insns[k].site.is_some_and(|(t, _)| t == s))
                .collect();
        }
        Some(self.explanation(loc.to_owned(), chosen, sites))
    }

    /// Per source line of `file` that produced code: the CFA rule at its first instruction, whether an alternative
    /// site starts there and whether a conflict is reported on it. Sorted by line.
    pub fn line_summaries(&self, file: &Path) -> Vec<LineSummary> {
        let query = normalize(file);
        if query.as_os_str().is_empty() {
            return Vec::new();
        }
        let index = self.insn_lines();
        let a = self.analysis;
        let wanted: Vec<bool> = index
            .files
            .iter()
            .map(|p| path_matches(&query, &normalize(p)))
            .collect();
        let lines_of = |i: usize| -> Vec<u32> { index.lines_in(i, &wanted) };
        let lines_of_frames = |frames: &[SourceFrame]| -> Vec<u32> {
            frames
                .iter()
                .filter(|f| {
                    f.file
                        .as_deref()
                        .is_some_and(|p| path_matches(&query, &normalize(p)))
                })
                .filter_map(|f| f.line)
                .collect()
        };
        let mut out: BTreeMap<u32, LineSummary> = BTreeMap::new();
        let mut first: HashMap<u32, (bool, usize)> = HashMap::new();
        for (i, insn) in a.insns.iter().enumerate() {
            let replacement = matches!(insn.site, Some((_, Some(_))));
            for line in lines_of(i) {
                let summary = out.entry(line).or_insert_with(|| LineSummary {
                    line,
                    cfa: None,
                    site: false,
                    conflict: false,
                    findings: Vec::new(),
                    orc_kind: None,
                    changes_stack: false,
                    call: false,
                });
                summary.call |= insn.text.starts_with("call");
                // The state here against the one after this instruction (the next in its section).
                if !replacement {
                    let after = a
                        .insns
                        .get(i + 1)
                        .filter(|n| n.section == insn.section)
                        .and_then(|n| n.cfi);
                    summary.changes_stack |=
                        insn.cfi.is_some() && after.is_some() && after != insn.cfi;
                }
                let better = match first.get(&line) {
                    None => true,
                    Some(&(was_replacement, _)) => was_replacement && !replacement,
                };
                if better {
                    first.insert(line, (replacement, i));
                }
            }
        }
        for (line, (_, i)) in &first {
            if let Some(s) = out.get_mut(line) {
                let state = a.insns[*i].cfi.map(|c| a.state(c));
                s.cfa = state.map(CfiState::cfa_readelf);
                s.orc_kind = state.and_then(|st| match st.ty {
                    _ if st.end => Some("end of stack"),
                    HintType::Regs => Some("pt_regs"),
                    HintType::RegsPartial => Some("iret frame"),
                    HintType::EndOfStack => Some("end of stack"),
                    HintType::Undefined => Some("undefined"),
                    HintType::Call if st.cfa.base == crate::cfi::UNDEFINED => Some("undefined"),
                    HintType::Call => None,
                });
            }
        }
        for site in &a.sites {
            if let Some(i) = self.insn_at(site.orig.0, site.orig.1) {
                for line in lines_of(i) {
                    if let Some(s) = out.get_mut(&line) {
                        s.site = true;
                    }
                }
            }
        }
        for (k, f) in a.findings.iter().enumerate() {
            let Some(loc) = &f.location else { continue };
            let at = (f.kind == FindingKind::AltStackConflict)
                .then(|| self.site_of(loc.section, loc.offset))
                .flatten()
                .map_or((loc.section, loc.offset), |s| a.sites[s].orig);
            let found = match self.insn_at(at.0, at.1) {
                Some(i) => lines_of(i),
                None => lines_of_frames(&self.placed_frames(at.0, at.1)),
            };
            for line in found {
                if let Some(s) = out.get_mut(&line) {
                    if !s.findings.contains(&k) {
                        s.findings.push(k);
                    }
                    s.conflict |= f.kind == FindingKind::AltStackConflict;
                }
            }
        }
        out.into_values().collect()
    }

    /// Resolves `name+0xOFF`, `name+OFF` (hex) or `name` against section names, then symbols.
    pub fn resolve_location(&self, loc: &str) -> Option<(usize, u64)> {
        let loc = loc.trim();
        let (name, off) = match loc.rsplit_once('+') {
            Some((n, o)) => {
                let o = o.trim();
                let hex = o
                    .strip_prefix("0x")
                    .or_else(|| o.strip_prefix("0X"))
                    .unwrap_or(o);
                (n.trim(), u64::from_str_radix(hex, 16).ok()?)
            }
            None => (loc, 0),
        };
        if name.is_empty() {
            return None;
        }
        if let Some(s) = self.analysis.section_names.iter().position(|n| n == name) {
            return Some((s, off));
        }
        let obj = self.object()?;
        let rank = |k: SymKind| match k {
            SymKind::Func => 0,
            SymKind::NoType => 1,
            _ => 2,
        };
        obj.symbols
            .iter()
            .filter(|s| s.name == name && s.kind != SymKind::Section && s.kind != SymKind::File)
            .filter_map(|s| Some((rank(s.kind), s.section?, s.value)))
            .min()
            .map(|(_, sec, value)| (sec, value.saturating_add(off)))
    }

    // ---- internals ----

    fn object(&self) -> Option<&Object<'a>> {
        self.object
            .get_or_init(|| Object::parse(self.data).ok())
            .as_ref()
    }

    fn alt_entries(&self) -> &[AltEntryPos] {
        self.alt_entries.get_or_init(|| {
            let from_object = self.object().and_then(|obj| {
                special::read_special_alts(obj, self.analysis.era, None, false).ok()
            });
            match from_object {
                Some(list) => list
                    .into_iter()
                    .filter(|e| e.kind == SpecialKind::Alternative)
                    .map(|e| AltEntryPos {
                        orig: e.orig,
                        new: e.new,
                        new_len: u64::from(e.new_len),
                    })
                    .collect(),
                None => self
                    .analysis
                    .sites
                    .iter()
                    .flat_map(|s| {
                        s.replacements.iter().map(|r| AltEntryPos {
                            orig: s.orig,
                            new: r.at,
                            new_len: u64::from(r.len),
                        })
                    })
                    .collect(),
            }
        })
    }

    /// The site start of the `.altinstructions` entry whose replacement bytes contain (section, offset).
    fn replacement_origin(&self, section: usize, offset: u64) -> Option<(usize, u64)> {
        self.alt_entries()
            .iter()
            .find(|e| {
                e.new.is_some_and(|(s, o)| {
                    s == section && o <= offset && offset < o.saturating_add(e.new_len)
                })
            })
            .map(|e| e.orig)
    }

    fn insn_index(&self) -> &InsnIndex {
        self.insn_index.get_or_init(|| {
            let mut idx: InsnIndex = HashMap::new();
            for (i, insn) in self.analysis.insns.iter().enumerate() {
                idx.entry(insn.section).or_default().push((
                    insn.offset,
                    insn.offset + u64::from(insn.len),
                    i,
                ));
            }
            for list in idx.values_mut() {
                list.sort_unstable();
            }
            idx
        })
    }

    fn insn_at(&self, section: usize, offset: u64) -> Option<usize> {
        let list = self.insn_index().get(&section)?;
        let k = list.binary_search_by_key(&offset, |&(o, _, _)| o).ok()?;
        Some(list[k].2)
    }

    fn insn_containing(&self, section: usize, offset: u64) -> Option<usize> {
        let list = self.insn_index().get(&section)?;
        let k = list.partition_point(|&(o, _, _)| o <= offset);
        let &(_, end, i) = list.get(k.checked_sub(1)?)?;
        (offset < end).then_some(i)
    }

    /// The (file, line) of every placed frame of every instruction, built once: per-line questions about other
    /// files of the same object (a header and the `.c` including it) reuse it. Kept compact (interned files, one
    /// flat array): whole `SourceFrame`s per instruction took ~10 MiB for a large kernel object.
    fn insn_lines(&self) -> &InsnLines {
        self.insn_lines.get_or_init(|| {
            let mut index = InsnLines::default();
            let mut ids: HashMap<PathBuf, u32> = HashMap::new();
            for insn in &self.analysis.insns {
                for f in self.placed_frames(insn.section, insn.offset) {
                    let (Some(file), Some(line)) = (f.file, f.line) else {
                        continue;
                    };
                    let next = u32::try_from(index.files.len()).unwrap_or(u32::MAX);
                    let id = *ids.entry(file).or_insert_with_key(|file| {
                        index.files.push(file.clone());
                        next
                    });
                    index.entries.push((id, line));
                }
                index.ends.push(index.entries.len());
            }
            index
        })
    }

    /// The source frames of alternative site `s`, i.e. the line of its macro or `asm` statement: the
    /// original's, when the assembler gave the original's bytes a row of their own; else the first replacement's
    /// that has one (an empty original is only `.skip` padding, with no row); else whatever row covers the original.
    pub fn site_frames(&self, s: usize) -> Vec<SourceFrame> {
        self.dwarf_used.set(true);
        let Some(site) = self.analysis.sites.get(s) else {
            return Vec::new();
        };
        let mut candidates = Vec::new();
        if self.has_row_in(site.orig.0, site.orig.1, site.len as u64) {
            candidates.push(site.orig);
        }
        for r in &site.replacements {
            if let Some(at) =
                r.at.filter(|&(rs, ro)| self.has_row_in(rs, ro, u64::from(r.len)))
            {
                candidates.push(at);
            }
        }
        candidates.push(site.orig);
        candidates
            .into_iter()
            .map(|(sec, off)| self.lines.locate(sec, off).unwrap_or_default())
            .find(|f| f.iter().any(|x| x.line.is_some()))
            .unwrap_or_default()
    }

    /// Whether the assembler or compiler gave `[start, start+len)` of `section` a line row of its own.
    fn has_row_in(&self, section: usize, start: u64, len: u64) -> bool {
        self.lines
            .has_row_in(section, start, start.saturating_add(len))
            .unwrap_or(false)
    }

    /// The alternative site and variant (section, start, length) that the byte at (`section`, `offset`) belongs
    /// to: its original or one of its replacements.
    fn variant_at(&self, section: usize, offset: u64) -> Option<(usize, (usize, u64, u64))> {
        let s = self.site_of(section, offset)?;
        let site = &self.analysis.sites[s];
        let within = |at: (usize, u64), len: u64| covers(at, len, section, offset);
        if within(site.orig, site.len as u64) {
            return Some((s, (site.orig.0, site.orig.1, site.len as u64)));
        }
        site.replacements.iter().find_map(|r| {
            let at = r.at?;
            within(at, u64::from(r.len)).then_some((s, (at.0, at.1, u64::from(r.len))))
        })
    }

    /// The site whose original or one of whose replacements contains (section, offset).
    fn site_of(&self, section: usize, offset: u64) -> Option<usize> {
        // An instruction knows its site; only bytes that start no instruction need the search.
        if let Some(i) = self.insn_at(section, offset) {
            return self.analysis.insns[i].site.map(|(s, _)| s);
        }
        let within = |at: (usize, u64), len: u64| covers(at, len, section, offset);
        let sites = &self.analysis.sites;
        sites
            .iter()
            .position(|s| within(s.orig, s.len as u64))
            .or_else(|| {
                sites.iter().position(|s| {
                    s.replacements
                        .iter()
                        .any(|r| r.at.is_some_and(|at| within(at, u64::from(r.len))))
                })
            })
    }

    fn orc_index(&self) -> &HashMap<usize, Vec<(u64, OrcEntry)>> {
        self.orc_index.get_or_init(|| {
            let mut idx: HashMap<usize, Vec<(u64, OrcEntry)>> = HashMap::new();
            for r in self.analysis.orc.as_deref().unwrap_or(&[]) {
                idx.entry(r.section).or_default().push((r.offset, r.entry));
            }
            for list in idx.values_mut() {
                list.sort_by_key(|&(o, _)| o);
            }
            idx
        })
    }

    /// The dump line of the ORC row in effect at (section, offset).
    fn orc_text(&self, section: usize, offset: u64) -> Option<String> {
        let list = self.orc_index().get(&section)?;
        let k = list.partition_point(|&(o, _)| o <= offset);
        let (start, entry) = list.get(k.checked_sub(1)?)?;
        let format = match self.analysis.era {
            Era::V6_12 => DumpFormat::Modern,
            Era::V6_1 => DumpFormat::Legacy,
        };
        Some(format!(
            "{}+{start:x}:{}",
            self.section_name(section),
            orc::entry_text(entry, format)
        ))
    }

    fn section_name(&self, section: usize) -> String {
        self.analysis
            .section_names
            .get(section)
            .cloned()
            .unwrap_or_else(|| format!("#{section}"))
    }

    fn bytes(&self, insn: &InsnInfo) -> String {
        let Some(obj) = self.object() else {
            return String::new();
        };
        let start = insn.offset as usize;
        obj.sections
            .get(insn.section)
            .and_then(|s| {
                s.data
                    .get(start..start.saturating_add(usize::from(insn.len)))
            })
            .unwrap_or(&[])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn side_label(site: &AltSite, side: Option<usize>) -> String {
        match side {
            None => "original".to_owned(),
            Some(n) => match site.replacements.get(n.wrapping_sub(1)) {
                Some(r) => format!("replacement #{n} [{}]", r.feature),
                None => format!("replacement #{n}"),
            },
        }
    }

    fn cfi_text(&self, insn: &InsnInfo) -> Option<String> {
        insn.cfi.map(|c| self.analysis.state(c).to_readelf())
    }

    fn row(&self, i: usize) -> ExplainRow {
        let a = self.analysis;
        let insn = &a.insns[i];
        let replacement = matches!(insn.site, Some((_, Some(_))));
        ExplainRow {
            section: self.section_name(insn.section),
            offset: insn.offset,
            location: insn.location.clone(),
            bytes: self.bytes(insn),
            text: insn.text.clone(),
            cfi: self.cfi_text(insn),
            orc: if replacement {
                None
            } else {
                self.orc_text(insn.section, insn.offset)
            },
            site: insn.site.and_then(|(s, side)| {
                let site = a.sites.get(s)?;
                Some(format!(
                    "site {}, {}",
                    site.location,
                    Self::side_label(site, side)
                ))
            }),
            source: self.position(insn.section, insn.offset),
        }
    }

    fn explanation(&self, query: String, mut chosen: Vec<usize>, sites: Vec<usize>) -> Explanation {
        let a = self.analysis;
        chosen.sort_by_key(|&i| {
            let insn = &a.insns[i];
            (
                matches!(insn.site, Some((_, Some(_)))),
                insn.section,
                insn.offset,
            )
        });
        chosen.dedup();
        Explanation {
            query,
            rows: chosen.iter().map(|&i| self.row(i)).collect(),
            sites: sites.iter().filter_map(|&s| self.site_view(s)).collect(),
        }
    }

    /// The conflicting offsets the findings report for site `s`, with the sides' descriptions.
    fn site_conflicts(&self, s: usize) -> Vec<&crate::findings::AltConflict> {
        self.analysis
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::AltStackConflict)
            .filter(|f| {
                f.location
                    .as_ref()
                    .is_some_and(|l: &Location| self.site_of(l.section, l.offset) == Some(s))
            })
            .flat_map(|f| f.conflicts.iter())
            .collect()
    }

    fn site_view(&self, s: usize) -> Option<SiteView> {
        let a = self.analysis;
        let site = a.sites.get(s)?;
        let mut columns = vec!["original".to_owned()];
        columns.extend(
            site.replacements
                .iter()
                .map(|r| format!("#{} {}", r.number, r.feature)),
        );
        let width = columns.len();
        // offset -> per side (cell, state id)
        let mut grid: BTreeMap<u64, Vec<Option<GridCell>>> = BTreeMap::new();
        for insn in &a.insns {
            let Some((t, side)) = insn.site else { continue };
            if t != s {
                continue;
            }
            let (col, start) = match side {
                None => (0, site.orig),
                Some(n) => match site.replacements.get(n.wrapping_sub(1)).and_then(|r| r.at) {
                    Some(at) => (n, at),
                    None => continue,
                },
            };
            if col >= width || insn.section != start.0 || insn.offset < start.1 {
                continue;
            }
            let cells = grid
                .entry(insn.offset - start.1)
                .or_insert_with(|| vec![None; width]);
            let variant = (col > 0).then_some(col);
            cells[col] = Some((
                SiteCell {
                    instruction: insn.text.clone(),
                    cfi: self.cfi_text(insn),
                    unwind: site.unwind.cell(variant, insn.offset - start.1),
                },
                insn.cfi,
            ));
        }
        let compared = |col: usize| {
            col == 0
                || site
                    .replacements
                    .get(col - 1)
                    .is_some_and(|r| r.slots.is_none())
        };
        let conflicts = self.site_conflicts(s);
        let mut reported: BTreeSet<u64> = BTreeSet::new();
        for c in &conflicts {
            reported.insert(c.site_offset);
            let cells = grid
                .entry(c.site_offset)
                .or_insert_with(|| vec![None; width]);
            // Sides without an instruction there (the padding NOP after a short replacement) come from the record.
            for v in [&c.recorded, &c.conflicting] {
                let col = v.replacement.unwrap_or(0);
                if col < width && cells[col].is_none() {
                    cells[col] = Some((
                        SiteCell {
                            instruction: v.instruction.clone(),
                            cfi: Some(v.state.clone()),
                            unwind: site.unwind.cell(v.replacement, c.site_offset),
                        },
                        None,
                    ));
                }
            }
        }
        let offsets = grid
            .into_iter()
            .map(|(offset, cells)| {
                // Only sides that share the site's slot array were compared (before 6.3 not every replacement).
                let ids: BTreeSet<_> = cells
                    .iter()
                    .enumerate()
                    .filter(|&(col, _)| compared(col))
                    .filter_map(|(_, c)| c.as_ref()?.1)
                    .collect();
                SiteOffset {
                    offset,
                    conflict: reported.contains(&offset) || ids.len() > 1,
                    differs: conflicts
                        .iter()
                        .find(|c| c.site_offset == offset)
                        .map(|c| c.differs.clone())
                        .unwrap_or_default(),
                    cells: cells.into_iter().map(|c| c.map(|(cell, _)| cell)).collect(),
                }
            })
            .collect();
        Some(SiteView {
            location: site.location.clone(),
            len: site.len,
            columns,
            offsets,
            source: self.position(site.orig.0, site.orig.1),
            unwind: site.unwind.summary().map(|u| {
                if site.unwind.rows_if_checked {
                    format!("{u} (with the rows objtool would make if it checked the function)")
                } else {
                    u.to_owned()
                }
            }),
            after: (0..width)
                .map(|col| site.unwind.after_cell((col > 0).then_some(col)))
                .collect(),
        })
    }
}

impl Explanation {
    /// A plain-text rendering: one table row per instruction, then each alternative site side by side per offset,
    /// conflicting offsets marked `<< conflict`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} instruction{}{}",
            self.query,
            self.rows.len(),
            if self.rows.len() == 1 { "" } else { "s" },
            match self.sites.len() {
                0 => String::new(),
                1 => ", 1 alternative site".to_owned(),
                n => format!(", {n} alternative sites"),
            }
        );
        if !self.rows.is_empty() {
            let header = [
                "location",
                "section+offset",
                "bytes",
                "instruction",
                "CFI (readelf -wF)",
                "ORC row in effect",
                "source",
                "alternative",
            ];
            let table: Vec<Vec<String>> = self
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.location.clone(),
                        format!("{}+0x{:x}", r.section, r.offset),
                        r.bytes.clone(),
                        r.text.clone(),
                        r.cfi.clone().unwrap_or_else(|| "(not reached)".to_owned()),
                        r.orc.clone().unwrap_or_else(|| "-".to_owned()),
                        r.source
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), |p| p.gcc()),
                        r.site.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            out.push('\n');
            render_table(
                &mut out,
                &header.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                &table,
                "",
            );
        }
        for site in &self.sites {
            let conflicts = site.offsets.iter().filter(|o| o.conflict).count();
            let _ = writeln!(
                out,
                "\nalternative site {} ({} bytes{}){}{}",
                site.location,
                site.len,
                site.source
                    .as_ref()
                    .map_or_else(String::new, |p| format!(", {}", p.gcc())),
                if conflicts > 0 { ": " } else { "" },
                match conflicts {
                    0 => String::new(),
                    1 => "stack layout conflict at 1 offset".to_owned(),
                    n => format!("stack layout conflict at {n} offsets"),
                }
            );
            if let Some(u) = &site.unwind {
                let _ = writeln!(
                    out,
                    "  {}",
                    match (u.starts_with("unwind breaks"), conflicts) {
                        (true, _) => "unwind: breaks (an unwind from a ✗ place reads the wrong slot)",
                        (false, 0) => "unwind: ✓ in every variant",
                        _ => "unwind: strict-only (✓ in every variant; only objtool's whole-state comparison objects)",
                    }
                );
            }
            let mut header = vec!["offset".to_owned()];
            for c in &site.columns {
                header.push(c.clone());
                header.push("CFI".to_owned());
            }
            header.push(String::new());
            let table: Vec<Vec<String>> = site
                .offsets
                .iter()
                .map(|o| {
                    let mut row = vec![format!("+0x{:x}", o.offset)];
                    for c in &o.cells {
                        match c {
                            Some(c) => {
                                row.push(c.instruction.clone());
                                let cfi =
                                    c.cfi.clone().unwrap_or_else(|| "(not reached)".to_owned());
                                row.push(match &c.unwind {
                                    Some(u) => format!("{cfi}  {u}"),
                                    None => cfi,
                                });
                            }
                            None => row.extend([String::new(), String::new()]),
                        }
                    }
                    row.push(match (o.conflict, o.differs.is_empty()) {
                        (false, _) => String::new(),
                        (true, true) => "<< conflict".to_owned(),
                        (true, false) => format!("<< conflict: {}", o.differs.join("; ")),
                    });
                    row
                })
                .collect();
            let mut table = table;
            // The first instruction after the site, when an unwind from there goes wrong for some variant.
            if site.after.iter().flatten().any(|u| u.contains('✗')) {
                let mut row = vec![format!("+0x{:x}", site.len)];
                for u in &site.after {
                    row.push("(after the site)".to_owned());
                    row.push(u.clone().unwrap_or_default());
                }
                row.push(String::new());
                table.push(row);
            }
            render_table(&mut out, &header, &table, "  ");
        }
        out
    }
}

/// Writes a left-aligned table with two spaces between columns, trimming trailing blanks.
fn render_table(out: &mut String, header: &[String], rows: &[Vec<String>], indent: &str) {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: &[String]| {
        let mut l = String::from(indent);
        for (k, c) in cells.iter().enumerate().take(cols) {
            l.push_str(c);
            if k + 1 < cols {
                let pad = widths[k].saturating_sub(c.chars().count()) + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for r in rows {
        line(r);
    }
}
