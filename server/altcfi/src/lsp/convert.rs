//! Conversion from the analysis (findings, per-instruction CFI, alternative sites, source mapping through
//! [`altcfi_analysis::sources`]) to protocol values: diagnostics with related information and back-references,
//! hover text, inlay hints, code lenses, and the plain-text CFI table of `altcfi/cfiTable`.
//!
//! Architecture invariant: converts only. Every fact comes from the analysis library; this module decides how it
//! looks in an editor, and it never does I/O beyond what the library does on the bytes it is handed.

use super::check::DocView;
use super::workspace::same_file;
use altcfi_analysis::findings::{Finding, FindingKind, VariantAt};
use altcfi_analysis::lines::LinesError;
use altcfi_analysis::orc::{self, DumpFormat};
use altcfi_analysis::report::docs_url;
use altcfi_analysis::sources::{ExplainRow, Explanation, SourcePos, Sources};
use altcfi_analysis::{Analysis, Era};
use lsp_types::{
    CodeDescription, CodeLens, Command, Diagnostic, DiagnosticRelatedInformation,
    DiagnosticSeverity, InlayHint, InlayHintLabel, Location, NumberOrString, Position, Range, Url,
};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// Line lengths of a document in UTF-16 code units (the protocol's default position encoding).
#[derive(Debug, Clone)]
pub struct LineTable {
    /// Per line: (first non-blank column, length).
    lines: Vec<(u32, u32)>,
}

impl LineTable {
    /// Measures `text`.
    pub fn new(text: &str) -> Self {
        let lines = text
            .split('\n')
            .map(|l| {
                let l = l.strip_suffix('\r').unwrap_or(l);
                // ASCII (nearly every line of kernel code) is one UTF-16 unit per byte.
                let len = if l.is_ascii() {
                    l.len()
                } else {
                    l.encode_utf16().count()
                } as u32;
                let trimmed = l.trim_start();
                let indent = (l.len() - trimmed.len()) as u32;
                (indent.min(len), len)
            })
            .collect();
        LineTable { lines }
    }

    /// The range of a (0-based) line's text, from its first non-blank character to its end.
    pub fn range(&self, line: u32) -> Range {
        let (start, end) = self.lines.get(line as usize).copied().unwrap_or((0, 0));
        Range::new(Position::new(line, start), Position::new(line, end))
    }

    /// The end of a (0-based) line.
    pub fn end(&self, line: u32) -> Position {
        Position::new(line, self.lines.get(line as usize).map_or(0, |l| l.1))
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }
}

/// An open document's text and its [`LineTable`], measured once per version of the text (a check after an object
/// changed, inlay hints and code lenses all need it).
#[derive(Debug)]
pub struct DocText {
    text: String,
    lines: std::sync::OnceLock<LineTable>,
}

impl DocText {
    /// A version of a document's text.
    pub fn new(text: String) -> Self {
        DocText {
            text,
            lines: std::sync::OnceLock::new(),
        }
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its line table, measured on first use.
    pub fn lines(&self) -> &LineTable {
        self.lines.get_or_init(|| LineTable::new(&self.text))
    }
}

/// The 0-based line of a source position, if it is in `doc`.
fn line_in(pos: &SourcePos, doc: &Path) -> Option<u32> {
    (pos.line > 0 && same_file(&pos.path, doc)).then(|| pos.line - 1)
}

fn location_of(pos: &SourcePos) -> Option<Location> {
    let uri = Url::from_file_path(&pos.path).ok()?;
    let line = pos.line.saturating_sub(1);
    let col = pos.column.saturating_sub(1);
    Some(Location::new(
        uri,
        Range::new(Position::new(line, col), Position::new(line, col)),
    ))
}

fn side(v: &VariantAt) -> String {
    match (v.replacement, &v.feature) {
        (None, _) => format!("the original ({})", v.variant_text),
        (Some(n), Some(f)) => format!("replacement #{n} ({f}: {})", v.variant_text),
        (Some(n), None) => format!("replacement #{n} ({})", v.variant_text),
    }
}

/// A message that stands on its own: objtool's words, the function and offset, and for alternative conflicts
/// the feature, the site offset and both sides' CFA rules.
pub fn message(f: &Finding) -> String {
    let mut out = String::new();
    if f.kind == FindingKind::AltStackConflict && !f.conflicts.is_empty() {
        let site = f
            .location
            .as_ref()
            .map(|l| format!(" ({})", l.display))
            .unwrap_or_default();
        let verdict = match f.unwind.as_ref().map(|u| u.verdict) {
            Some(altcfi_analysis::unwind::Verdict::Breaks) => " — breaks the unwinder",
            Some(altcfi_analysis::unwind::Verdict::StrictOnly) => {
                " — strict-only (every ORC row is right)"
            }
            None => "",
        };
        out.push_str(&format!(
            "stack layout conflict in alternatives{site}{verdict}"
        ));
        for (i, c) in f.conflicts.iter().enumerate() {
            let same_cfa = c.recorded.cfa == c.conflicting.cfa;
            // The CFA rule, plus what else differs when the CFA rules agree (objtool compares whole states).
            let rule = |v: &VariantAt, other: &VariantAt| {
                if !same_cfa {
                    return format!("CFA={}", v.cfa);
                }
                let theirs: Vec<&str> = other.state.split(", ").collect();
                let mut parts = vec![format!("CFA={}", v.cfa)];
                parts.extend(
                    v.state
                        .split(", ")
                        .filter(|p| !p.starts_with("CFA=") && !theirs.contains(p))
                        .map(str::to_owned),
                );
                parts.join(", ")
            };
            if i == 0 {
                out.push_str(&format!(
                    ": at +0x{:x} {} has {}, {} has {}",
                    c.site_offset,
                    side(&c.recorded),
                    rule(&c.recorded, &c.conflicting),
                    side(&c.conflicting),
                    rule(&c.conflicting, &c.recorded)
                ));
                if !c.differs.is_empty() {
                    out.push_str(&format!(" (they differ in: {})", c.differs.join("; ")));
                }
            } else {
                out.push_str(&format!(
                    "; at +0x{:x} {} vs {}",
                    c.site_offset,
                    rule(&c.recorded, &c.conflicting),
                    rule(&c.conflicting, &c.recorded)
                ));
            }
        }
        return out;
    }
    out.push_str(&f.headline());
    for d in &f.details {
        out.push('\n');
        out.push_str(d);
    }
    out
}

/// Error for fatal findings and for alternative conflicts that break unwinding (or whose verdict is unknown);
/// Information for altcfi's own notes; Warning for the rest, strict-only conflicts included (objtool objects, the
/// unwinder does not).
fn severity(f: &Finding) -> DiagnosticSeverity {
    if f.kind.severity() == altcfi_analysis::findings::Severity::Note {
        return DiagnosticSeverity::INFORMATION;
    }
    let strict_only = f
        .unwind
        .as_ref()
        .is_some_and(|u| u.verdict == altcfi_analysis::unwind::Verdict::StrictOnly);
    if f.fatal || (f.kind == FindingKind::AltStackConflict && !strict_only) {
        DiagnosticSeverity::ERROR
    } else if f.kind.is_note() {
        DiagnosticSeverity::INFORMATION
    } else {
        DiagnosticSeverity::WARNING
    }
}

fn finding_code(f: &Finding) -> (Option<NumberOrString>, Option<CodeDescription>) {
    let code = Some(NumberOrString::String(f.kind.code().to_owned()));
    // The finding's page (see `cli::docs_base`: `ALTCFI_DOCS_BASE`, else the pages shipped with altcfi); no
    // `codeDescription` when there is none, rather than a dead link.
    let desc = docs_url(f.kind, crate::cli::default_docs_base())
        .and_then(|u| Url::parse(&u).ok())
        .map(|href| CodeDescription { href });
    (code, desc)
}

/// The diagnostics of one object's findings that belong in document `doc`: each finding at its source line, or,
/// for code inlined from a header, at the line of `doc` it was inlined into (the header line in related
/// information); Hint-level back-references at the related lines of `doc`. A finding without any source line
/// is shown on the first line when `main_file` (the object was built from `doc`).
pub fn diagnostics(
    analysis: &Analysis,
    data: &[u8],
    doc: &Path,
    lines: &LineTable,
    main_file: bool,
    related_information: bool,
) -> Result<Vec<Diagnostic>, LinesError> {
    let sources = Sources::new(analysis, data)?;
    let mut out = Vec::new();
    let mut hints = Vec::new();
    let mut hinted: BTreeSet<(u32, String)> = BTreeSet::new();
    for f in &analysis.findings {
        let fs = sources.for_finding(f);
        let mut related: Vec<(String, SourcePos)> = Vec::new();
        let anchor = match &fs.primary {
            Some(p) => match line_in(p, doc) {
                Some(l) => Some(l),
                None => {
                    // Inlined from a header: the first outer frame in this document.
                    let outer = fs.inline_frames.iter().find_map(|fr| line_in(fr, doc));
                    if outer.is_some() {
                        related.push(("the code is here (inlined)".into(), p.clone()));
                    }
                    outer
                }
            },
            None => main_file.then_some(0),
        };
        let Some(anchor) = anchor else { continue };
        // `related` already holds the outer inline frames, labelled; drop the one the diagnostic sits on.
        related.extend(
            fs.related
                .iter()
                .filter(|(_, p)| !(fs.inline_frames.contains(p) && line_in(p, doc) == Some(anchor)))
                .cloned(),
        );
        let msg = message(f);
        let (code, code_description) = finding_code(f);
        let first_line = msg.lines().next().unwrap_or("").to_owned();
        for (what, pos) in &related {
            if let Some(l) = line_in(pos, doc) {
                if l != anchor && hinted.insert((l, first_line.clone())) {
                    hints.push(Diagnostic {
                        range: lines.range(l),
                        severity: Some(DiagnosticSeverity::HINT),
                        code: code.clone(),
                        code_description: code_description.clone(),
                        source: Some("altcfi".into()),
                        message: format!(
                            "{what}: see the original diagnostic on line {}: {first_line}",
                            anchor + 1
                        ),
                        related_information: location_of(&SourcePos {
                            path: doc.to_path_buf(),
                            line: anchor + 1,
                            column: 1,
                        })
                        .map(|location| {
                            vec![DiagnosticRelatedInformation {
                                location,
                                message: "original diagnostic".into(),
                            }]
                        }),
                        ..Default::default()
                    });
                }
            }
        }
        let mut message = msg;
        let related_info: Vec<DiagnosticRelatedInformation> = related
            .iter()
            .filter_map(|(what, pos)| {
                location_of(pos).map(|location| DiagnosticRelatedInformation {
                    location,
                    message: what.clone(),
                })
            })
            .collect();
        if !related_information {
            for (what, pos) in &related {
                let _ = write!(message, "\n{what}: {}:{}", pos.path.display(), pos.line);
            }
        }
        out.push(Diagnostic {
            range: lines.range(anchor),
            severity: Some(severity(f)),
            code,
            code_description,
            source: Some("altcfi".into()),
            message,
            related_information: (related_information && !related_info.is_empty())
                .then_some(related_info),
            data: Some(serde_json::json!({ "rendered": render(f) })),
            ..Default::default()
        });
    }
    out.extend(hints);
    Ok(out)
}

/// The full text of a finding, as `altcfi check` prints it.
fn render(f: &Finding) -> String {
    let mut s = f.headline();
    for d in &f.details {
        s.push_str("\n    ");
        s.push_str(d);
    }
    s
}

/// Hover text for a source line: per object, the instructions the line produced (instruction, CFI in
/// `readelf -wF` notation, ORC row in effect), and for each alternative site on the line a fenced block per offset
/// with the original's and each replacement's instruction and CFI. `None` when the line produced no code.
pub fn hover_text(view: &DocView, doc: &Path, line: u32) -> Option<String> {
    let mut parts = Vec::new();
    for c in &view.objects {
        let name = c
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let doc = doc.to_path_buf();
        let text = c.with_table_sources(move |analysis, data, sources| {
            let e = sources.explain_line(&doc, line);
            if e.rows.is_empty() && e.sites.is_empty() {
                return None;
            }
            let mut text = hover_markdown(&e, &name);
            text.push_str(&emitted_rules(analysis, data, &e));
            Some(text)
        });
        parts.extend(text.flatten());
    }
    (!parts.is_empty()).then(|| parts.join("\n\n---\n\n"))
}

/// The rules the object's own `.eh_frame`/`.debug_frame` give for the line's instructions, next to the computed
/// ones (empty when the object has no such tables, e.g. kernel objects).
fn emitted_rules(analysis: &Analysis, data: &[u8], e: &Explanation) -> String {
    use altcfi_analysis::ehframe;
    let Ok(tables) = ehframe::UnwindTables::read(data) else {
        return String::new();
    };
    if tables.is_empty() {
        return String::new();
    }
    let mut lines = Vec::new();
    for r in e.rows.iter().filter(|r| r.site.is_none()) {
        let Some(section) = analysis.section_names.iter().position(|n| *n == r.section) else {
            continue;
        };
        let emitted = match ehframe::emitted_rule_at(&tables, section, r.offset) {
            Some(at) => format!("{} ({})", at.row, at.table.section_name()),
            None => "no FDE covers it".into(),
        };
        lines.push(format!("{}  emitted: {emitted}", r.location));
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\nEmitted unwind rules (`.cfi_*` directives):\n```text\n{}\n```\n",
        lines.join("\n")
    )
}

/// Most lines of text a hover shows; past it the rest is summed up and the CFI table is one command away.
const HOVER_LINES: usize = 60;

/// Whether an instruction text is a NOP (padding), which the hover folds into runs.
fn is_nop(text: &str) -> bool {
    text.starts_with("nop") || text.starts_with("(padding nop") || text.starts_with("xchg %ax,%ax")
}

/// Lines of a hover's text blocks, with a budget: rows past [`HOVER_LINES`] are counted, not shown.
struct Budget {
    used: usize,
    dropped: usize,
}

impl Budget {
    fn take(&mut self) -> bool {
        if self.used < HOVER_LINES {
            self.used += 1;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

/// The hover of a line: its instructions (one row each: location, instruction, CFI, and the ORC row where it
/// changes), then each alternative site as one table (a row per offset where a variant has an instruction, a
/// column per variant), runs of NOPs with the same CFI folded into one row, within [`HOVER_LINES`].
fn hover_markdown(e: &Explanation, object: &str) -> String {
    let mut out = format!("**altcfi** · `{object}`\n");
    let mut budget = Budget {
        used: 0,
        dropped: 0,
    };
    // Code outside alternative sites: one block.
    let plain: Vec<&ExplainRow> = e.rows.iter().filter(|r| r.site.is_none()).collect();
    if !plain.is_empty() {
        // Fold runs of NOPs with one CFI: (first row, count).
        let mut runs: Vec<(&ExplainRow, usize)> = Vec::new();
        for r in &plain {
            match runs.last_mut() {
                Some((first, n))
                    if is_nop(&r.text) && is_nop(&first.text) && first.cfi == r.cfi =>
                {
                    *n += 1
                }
                _ => runs.push((r, 1)),
            }
        }
        let text = |r: &ExplainRow, n: usize| {
            if n > 1 {
                format!("{} ×{n}", r.text)
            } else {
                r.text.clone()
            }
        };
        let w = runs
            .iter()
            .map(|(r, n)| text(r, *n).chars().count())
            .max()
            .unwrap_or(0);
        let lw = runs
            .iter()
            .map(|(r, _)| r.location.chars().count())
            .max()
            .unwrap_or(0);
        let cw = runs
            .iter()
            .map(|(r, _)| r.cfi.as_deref().unwrap_or("(not reached)").chars().count())
            .max()
            .unwrap_or(0);
        out.push_str("\n```text\n");
        let mut last_orc: Option<&str> = None;
        for (r, n) in &runs {
            if !budget.take() {
                continue;
            }
            let cfi = r.cfi.as_deref().unwrap_or("(not reached)");
            let orc = match r.orc.as_deref() {
                Some(o) if last_orc != Some(o) => format!("  ORC {o}"),
                _ => String::new(),
            };
            last_orc = r.orc.as_deref().or(last_orc);
            let _ = writeln!(
                out,
                "{:<lw$}  {:<w$}  {:<cw$}{orc}",
                r.location,
                text(r, *n),
                cfi
            );
        }
        out.push_str("```\n");
    }
    for site in &e.sites {
        let conflicts: Vec<String> = site
            .offsets
            .iter()
            .filter(|o| o.conflict)
            .map(|o| format!("+0x{:x}", o.offset))
            .collect();
        let breaks = site
            .unwind
            .as_deref()
            .is_some_and(|u| u.starts_with("unwind breaks"));
        let verdict = match (conflicts.is_empty(), &site.unwind) {
            (true, Some(u)) if breaks => format!("consistent · {u}"),
            (true, _) => "consistent".to_owned(),
            (false, u) => format!(
                "stack layout conflict at {}{}",
                conflicts.join(", "),
                match u {
                    Some(_) if breaks => " · breaks: an unwind from a ✗ place is wrong",
                    Some(_) => " · strict-only: unwind ✓ in every variant",
                    None => "",
                }
            ),
        };
        let _ = writeln!(
            out,
            "\nalternative site `{}` ({} bytes, {} replacement{}): **{verdict}**",
            site.location,
            site.len,
            site.columns.len().saturating_sub(1),
            if site.columns.len() == 2 { "" } else { "s" }
        );
        // The original's rows, by offset from the site start, for the ORC column.
        let original = format!("site {}, original", site.location);
        let orig_rows: Vec<&ExplainRow> = e
            .rows
            .iter()
            .filter(|r| r.site.as_deref() == Some(original.as_str()))
            .collect();
        let base = orig_rows.iter().map(|r| r.offset).min();
        let orc_at = |off: u64| {
            base.and_then(|b| {
                orig_rows
                    .iter()
                    .find(|r| r.offset == b + off)
                    .and_then(|r| r.orc.clone())
            })
        };
        // Rows: (first offset, last offset, cells as text, conflict, ORC), NOP runs with equal CFI folded.
        struct Row {
            first: u64,
            last: u64,
            cells: Vec<(String, String)>,
            nops: bool,
            count: usize,
            conflict: bool,
            differs: Vec<String>,
            orc: Option<String>,
        }
        let mut rows: Vec<Row> = Vec::new();
        for o in &site.offsets {
            let cells: Vec<(String, String)> = o
                .cells
                .iter()
                .map(|c| match c {
                    Some(c) => {
                        let cfi = c.cfi.clone().unwrap_or_else(|| "(not reached)".into());
                        (
                            c.instruction.clone(),
                            match &c.unwind {
                                Some(u) => format!("{cfi}  {u}"),
                                None => cfi,
                            },
                        )
                    }
                    None => (String::new(), String::new()),
                })
                .collect();
            let nops = cells.iter().all(|(i, _)| i.is_empty() || is_nop(i));
            let orc = orc_at(o.offset);
            if let Some(prev) = rows.last_mut() {
                let same_cfi = prev
                    .cells
                    .iter()
                    .zip(&cells)
                    .all(|(a, b)| b.0.is_empty() || a.1 == b.1);
                // The same ORC row in effect (entry code shows one at every offset) folds too.
                if nops && prev.nops && !o.conflict && !prev.conflict && same_cfi && orc == prev.orc
                {
                    prev.last = o.offset;
                    prev.count += 1;
                    continue;
                }
            }
            rows.push(Row {
                first: o.offset,
                last: o.offset,
                cells,
                nops,
                count: 1,
                conflict: o.conflict,
                differs: o.differs.clone(),
                orc,
            });
        }
        // The first instruction after the site, when an unwind from there goes wrong for some variant.
        if site.after.iter().flatten().any(|u| u.contains('✗')) {
            rows.push(Row {
                first: site.len as u64,
                last: site.len as u64,
                cells: site
                    .after
                    .iter()
                    .map(|u| ("(next)".to_owned(), u.clone().unwrap_or_default()))
                    .collect(),
                nops: false,
                count: 1,
                conflict: false,
                differs: Vec::new(),
                orc: None,
            });
        }
        let label = |r: &Row| {
            if r.last > r.first {
                format!("+0x{:x}..+0x{:x}", r.first, r.last)
            } else {
                format!("+0x{:x}", r.first)
            }
        };
        let cell_text = |r: &Row, k: usize| {
            let (i, c) = &r.cells[k];
            if r.count > 1 && !i.is_empty() {
                (format!("{i} ×{}", r.count), c.clone())
            } else {
                (i.clone(), c.clone())
            }
        };
        let ow = rows
            .iter()
            .map(|r| label(r).len())
            .max()
            .unwrap_or(0)
            .max(3);
        let widths: Vec<(usize, usize)> = (0..site.columns.len())
            .map(|k| {
                let iw = rows
                    .iter()
                    .map(|r| cell_text(r, k).0.chars().count())
                    .chain([site.columns[k].chars().count()])
                    .max()
                    .unwrap_or(0);
                let cw = rows
                    .iter()
                    .map(|r| cell_text(r, k).1.chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(3);
                (iw, cw)
            })
            .collect();
        out.push_str("```text\n");
        if budget.take() {
            let mut head = format!("{:<ow$}", "off");
            for (k, col) in site.columns.iter().enumerate() {
                let (iw, cw) = widths[k];
                let _ = write!(head, "  {col:<iw$}  {:<cw$}", "CFI");
            }
            let _ = writeln!(out, "{}", head.trim_end());
        }
        for r in &rows {
            if !budget.take() {
                continue;
            }
            let mut line = format!("{:<ow$}", label(r));
            for (k, &(iw, cw)) in widths.iter().enumerate() {
                let (i, c) = cell_text(r, k);
                let _ = write!(line, "  {i:<iw$}  {c:<cw$}");
            }
            if r.conflict {
                line.push_str("  << conflict");
                if !r.differs.is_empty() {
                    let _ = write!(line, ": {}", r.differs.join("; "));
                }
            }
            if let Some(orc) = &r.orc {
                let _ = write!(line, "  ORC {orc}");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out.push_str("```\n");
    }
    if budget.dropped > 0 {
        let _ = writeln!(
            out,
            "\n… {} more row{} — the whole table: **altcfi: Show CFI table** (`:AltcfiTable` in Neovim)",
            budget.dropped,
            if budget.dropped == 1 { "" } else { "s" }
        );
    }
    out
}

/// Inlay hints at the end of the lines in `range` that produced code: the CFA rule, or what the unwinder sees where
/// the CFA rule alone says little (`pt_regs at rsp+0`, `iret frame`, `ORC undefined`, `end of stack`). Only on lines
/// that change the stack, call, hold an alternative or a finding, or are entry code, unless `all`.
pub fn inlay_hints(
    view: &DocView,
    doc: &Path,
    text: &DocText,
    range: Range,
    all: bool,
) -> Vec<InlayHint> {
    let lines = text.lines();
    // Summaries cost a source lookup per instruction: computed once per view.
    let summaries = view.summaries.get_or_init(|| {
        for c in &view.objects {
            let doc = doc.to_path_buf();
            let summaries = c
                .with_table_sources(move |_, _, sources| sources.line_summaries(&doc))
                .unwrap_or_default();
            if !summaries.is_empty() {
                return summaries;
            }
        }
        Vec::new()
    });
    {
        summaries
            .iter()
            .filter_map(|s| {
                let line = s.line.checked_sub(1)?;
                if line < range.start.line || line > range.end.line || line as usize >= lines.len()
                {
                    return None;
                }
                let wanted = all
                    || s.changes_stack
                    || s.call
                    || s.site
                    || s.conflict
                    || s.orc_kind.is_some()
                    || !s.findings.is_empty();
                if !wanted {
                    return None;
                }
                let cfa = s.cfa.clone()?;
                let rule = cfa.strip_prefix("CFA=").unwrap_or(&cfa).to_string();
                let mut label = match s.orc_kind {
                    Some("pt_regs") => format!("pt_regs at {rule}"),
                    Some("iret frame") => format!("iret frame at {rule}"),
                    Some("undefined") => "ORC undefined".to_string(),
                    Some(other) => other.to_string(),
                    None => format!("CFA={rule}"),
                };
                if s.conflict {
                    label.push_str(" ⚠ alt conflict");
                } else if s.site {
                    label.push_str(" (alt)");
                }
                Some(InlayHint {
                    position: lines.end(line),
                    label: InlayHintLabel::String(label),
                    kind: None,
                    text_edits: None,
                    tooltip: None,
                    padding_left: Some(true),
                    padding_right: None,
                    data: None,
                })
            })
            .collect()
    }
}

/// Code lenses on the lines of alternative sites: the replacements and their features, and "consistent" or the
/// conflicting offsets. Each lens's command opens the site's function's CFI table (`altcfi.showCfiTable`, with
/// the `altcfi/cfiTable` parameters as its argument). Where one line holds several sites (a macro such as
/// `UNTRAIN_RET` expands to two), the editor puts their lenses on one row: each is then written short, the features
/// without `X86_FEATURE_` and no replacement count, so that the row fits.
pub fn code_lenses(view: &DocView, doc: &Path, text: &DocText, uri: &Url) -> Vec<CodeLens> {
    view.lenses
        .get_or_init(|| compute_code_lenses(view, doc, text, uri))
        .clone()
}

fn compute_code_lenses(view: &DocView, doc: &Path, text: &DocText, uri: &Url) -> Vec<CodeLens> {
    let lines = text.lines();
    let mut out = Vec::new();
    for c in &view.objects {
        let analysis = c.analysis();
        let Ok(analysis) = analysis.as_ref() else {
            continue;
        };
        let Ok(sources) = Sources::new(analysis, &c.data) else {
            continue;
        };
        let site_lines: Vec<Option<u32>> = (0..analysis.sites.len())
            .map(|s| {
                sources.site_frames(s).iter().find_map(|fr| {
                    let file = fr.file.as_ref()?;
                    let l = fr.line?;
                    (l > 0 && same_file(file, doc)).then(|| l - 1)
                })
            })
            .collect();
        let mut per_line: HashMap<u32, usize> = HashMap::new();
        for l in site_lines.iter().flatten() {
            *per_line.entry(*l).or_default() += 1;
        }
        for (s, site) in analysis.sites.iter().enumerate() {
            let Some(line) = site_lines[s] else {
                continue;
            };
            let shared = per_line.get(&line).is_some_and(|&n| n > 1);
            let end = site.orig.1 + site.len as u64;
            let in_site = |sec: usize, off: u64| {
                sec == site.orig.0 && (site.orig.1..end.max(site.orig.1 + 1)).contains(&off)
            };
            let mut conflicts: BTreeSet<u64> = BTreeSet::new();
            for f in analysis
                .findings
                .iter()
                .filter(|f| f.kind == FindingKind::AltStackConflict)
            {
                for k in &f.conflicts {
                    let hit = [&k.recorded, &k.conflicting].iter().any(|v| {
                        v.replacement.is_none() && in_site(v.location.section, v.location.offset)
                    }) || f
                        .location
                        .as_ref()
                        .is_some_and(|l| l.section == site.orig.0 && l.offset == site.orig.1);
                    if hit {
                        conflicts.insert(k.site_offset);
                    }
                }
            }
            let n = site.replacements.len();
            let features: Vec<String> = site
                .replacements
                .iter()
                .map(|r| match shared {
                    true => short_feature(&r.feature),
                    false => r.feature.clone(),
                })
                .collect();
            let unwind = site.unwind.summary();
            let verdict = if conflicts.is_empty() {
                match unwind {
                    Some("unwind breaks") => "consistent — unwind breaks".to_owned(),
                    _ => "consistent".to_owned(),
                }
            } else {
                let offs: Vec<String> = conflicts.iter().map(|o| format!("+0x{o:x}")).collect();
                format!(
                    "conflict at {}{}",
                    offs.join(", "),
                    match unwind {
                        Some("unwind breaks") => " — breaks the unwinder",
                        Some(_) => " — strict-only, unwind ✓",
                        None => "",
                    }
                )
            };
            let title = if shared {
                format!("{} — {verdict}", features.join(", "))
            } else {
                format!(
                    "{n} replacement{}: {} — {verdict}",
                    if n == 1 { "" } else { "s" },
                    features.join(", ")
                )
            };
            let function = site.location.split('+').next().unwrap_or("").to_owned();
            out.push(CodeLens {
                range: lines.range(line),
                command: Some(Command {
                    title,
                    command: "altcfi.showCfiTable".into(),
                    arguments: Some(vec![serde_json::json!({
                        "textDocument": {"uri": uri},
                        "position": {"line": line, "character": 0},
                        "function": function,
                    })]),
                }),
                data: None,
            });
        }
    }
    out
}

/// A feature name without `X86_FEATURE_`/`X86_BUG_` (`!X86_FEATURE_SMAP` → `!SMAP`), for short lens titles.
fn short_feature(feature: &str) -> String {
    let (not, name) = match feature.strip_prefix('!') {
        Some(rest) => ("!", rest),
        None => ("", feature),
    };
    let short = name
        .strip_prefix("X86_FEATURE_")
        .or_else(|| name.strip_prefix("X86_BUG_"))
        .unwrap_or(name);
    format!("{not}{short}")
}

/// The function name of an objtool location (`save_fl_bad+0x2` → `save_fl_bad`).
fn function_of(location: &str) -> &str {
    location.rsplit_once('+').map_or(location, |(f, _)| f)
}

/// The function a source line's code belongs to, in one object.
fn function_at_line(
    analysis: &Analysis,
    sources: &Sources,
    doc: &Path,
    line: u32,
) -> Option<String> {
    let ranges = sources.code_for_line(doc, line);
    let insn = ranges.iter().find_map(|r| {
        analysis
            .insns
            .iter()
            .find(|i| i.section == r.section && i.offset >= r.start && i.offset < r.end)
    })?;
    let loc = match insn.site {
        Some((s, Some(_))) => analysis.sites.get(s).map(|s| s.location.as_str()),
        _ => Some(insn.location.as_str()),
    }?;
    Some(function_of(loc).to_owned())
}

/// `altcfi/cfiTable`: a plain-text table of a function's instructions with their CFI and ORC rows, then each of
/// its alternative sites' replacements. The function is `function`, else the one holding `line`'s code. Returns
/// (title, content).
pub fn cfi_table(
    view: &DocView,
    doc: &Path,
    line: Option<u32>,
    function: Option<&str>,
) -> Option<(String, String)> {
    for c in &view.objects {
        let analysis = c.table();
        let Ok(analysis) = analysis.as_ref() else {
            continue;
        };
        let name = match function {
            Some(f) if !f.is_empty() => f.to_owned(),
            _ => {
                let Some(l) = line else { continue };
                let doc = doc.to_path_buf();
                let found = c.with_table_sources(move |analysis, _, sources| {
                    function_at_line(analysis, sources, &doc, l)
                });
                match found.flatten() {
                    Some(f) => f,
                    None => continue,
                }
            }
        };
        let object = c
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(content) = function_table(analysis, &name, &object) {
            return Some((format!("{name} — {object}"), content));
        }
    }
    None
}

fn orc_text(analysis: &Analysis, section: usize, offset: u64, format: DumpFormat) -> String {
    let Some(rows) = &analysis.orc else {
        return "(no ORC: fatal finding)".into();
    };
    rows.iter()
        .filter(|r| r.section == section && r.offset <= offset)
        .max_by_key(|r| r.offset)
        .map(|r| {
            let at = if r.offset == offset { "" } else { "↑ " };
            format!("{at}{}", orc::entry_text(&r.entry, format).trim())
        })
        .unwrap_or_else(|| "-".into())
}

fn function_table(analysis: &Analysis, name: &str, object: &str) -> Option<String> {
    let format = match analysis.era {
        Era::V6_12 => DumpFormat::Modern,
        Era::V6_1 => DumpFormat::Legacy,
    };
    let rows: Vec<_> = analysis
        .insns
        .iter()
        .filter(|i| {
            function_of(&i.location) == name && i.site.is_none_or(|(_, side)| side.is_none())
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let cfi = |i: &altcfi_analysis::analysis::InsnInfo| {
        i.cfi
            .map(|id| analysis.state(id).to_readelf())
            .unwrap_or_else(|| "(not reached)".into())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{name} in {object} (objtool {} rules)\n",
        analysis.era.name()
    );
    let width = rows
        .iter()
        .map(|i| i.text.len())
        .max()
        .unwrap_or(0)
        .clamp(12, 48);
    let _ = writeln!(
        out,
        "{:<22} {:<width$}  {:<44}  ORC",
        "LOCATION", "INSTRUCTION", "CFI"
    );
    let mut sites: BTreeSet<usize> = BTreeSet::new();
    for i in &rows {
        let mark = match i.site {
            Some((s, None)) => {
                sites.insert(s);
                format!("  [alt site {}]", s + 1)
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<22} {:<width$}  {:<44}  {}{mark}",
            i.location,
            i.text,
            cfi(i),
            orc_text(analysis, i.section, i.offset, format)
        );
    }
    for s in sites {
        let Some(site) = analysis.sites.get(s) else {
            continue;
        };
        let _ = writeln!(
            out,
            "\nalt site {} at {} ({} bytes){}:",
            s + 1,
            site.location,
            site.len,
            site.unwind
                .summary()
                .map_or_else(String::new, |u| format!(", {u}"))
        );
        let _ = writeln!(out, "  original:");
        for i in analysis.insns.iter().filter(|i| i.site == Some((s, None))) {
            let off = i.offset.saturating_sub(site.orig.1);
            let _ = writeln!(
                out,
                "    +0x{off:<3x} {:<width$}  {:<44}  {}",
                i.text,
                cfi(i),
                site.unwind.cell(None, off).unwrap_or_default()
            );
        }
        for r in &site.replacements {
            let _ = writeln!(out, "  replacement #{} [{}]:", r.number, r.feature);
            let mut any = false;
            for i in analysis
                .insns
                .iter()
                .filter(|i| i.site == Some((s, Some(r.number))))
            {
                any = true;
                let off = r.at.map_or(0, |(_, o)| i.offset.saturating_sub(o));
                let _ = writeln!(
                    out,
                    "    +0x{off:<3x} {:<width$}  {:<44}  {}",
                    i.text,
                    cfi(i),
                    site.unwind.cell(Some(r.number), off).unwrap_or_default()
                );
            }
            if !any {
                let _ = writeln!(out, "    (empty)");
            }
        }
        for (off, slot) in site.slots.iter().enumerate() {
            if let Some(id) = slot {
                let _ = writeln!(out, "  slot +0x{off:x}: {}", analysis.state(*id));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_feature_names_drop_the_prefix_and_keep_the_negation() {
        assert_eq!(short_feature("X86_FEATURE_UNRET"), "UNRET");
        assert_eq!(short_feature("!X86_FEATURE_SMAP"), "!SMAP");
        assert_eq!(short_feature("X86_BUG_SPECTRE_V2"), "SPECTRE_V2");
        assert_eq!(short_feature("feature 300"), "feature 300");
    }

    #[test]
    fn line_table_counts_utf16() {
        let t = LineTable::new("\tab\r\n  é😀\nx");
        assert_eq!(
            t.range(0),
            Range::new(Position::new(0, 1), Position::new(0, 3))
        );
        assert_eq!(t.end(1), Position::new(1, 5));
        assert_eq!(t.len(), 3);
        assert_eq!(t.end(9), Position::new(9, 0));
    }

    #[test]
    fn function_names() {
        assert_eq!(function_of("save_fl_bad+0x2"), "save_fl_bad");
        assert_eq!(function_of("foo"), "foo");
    }
}
