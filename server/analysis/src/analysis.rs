//! Runs the pipeline for one object and keeps what later consumers (report, explain, LSP) need, as plain data.

use crate::cfi::{CfiId, CfiState, Interner};
use crate::features::FeatureNames;
use crate::findings::{Finding, FindingKind, VariantAt};
use crate::flow::{NodeId, Program};
use crate::object::{Object, ObjectError};
use crate::options::{Era, Options};
use crate::orc::{self, OrcRow};
use crate::special::{self, SpecialKind};
use crate::unwind::SiteUnwind;
use crate::validate::{self, WalkResult};
use serde::Serialize;

/// Why an object could not be analysed at all.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The ELF container is unreadable or not x86-64.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The analysis panicked (a bug: reported instead of ending the process).
    #[error("analysis failed: {0}")]
    Internal(String),
}

/// One instruction with its CFI, for explain, hover and tables.
#[derive(Debug, Clone, Serialize)]
pub struct InsnInfo {
    /// Section index.
    pub section: usize,
    /// Offset in the section.
    pub offset: u64,
    /// Length.
    pub len: u8,
    /// objtool's location text (`func+0x1a`).
    pub location: String,
    /// AT&T disassembly.
    pub text: String,
    /// State on entry, if the walk reached it (or a hint set it).
    pub cfi: Option<CfiId>,
    /// The alternative site (index into [`Analysis::sites`]) and side (`None` = original, `Some(n)` = replacement
    /// #n, 1-based) the instruction belongs to.
    pub site: Option<(usize, Option<usize>)>,
}

/// One replacement of an alternative site.
#[derive(Debug, Clone, Serialize)]
pub struct Replacement {
    /// 1-based number within its site.
    pub number: usize,
    /// `.altinstructions` entry index.
    pub entry: usize,
    /// Feature name, `!` prefixed for `ALT_NOT`.
    pub feature: String,
    /// Where the replacement bytes are (section, offset); `None` when empty.
    pub at: Option<(usize, u64)>,
    /// Length of the replacement.
    pub len: u8,
    /// The replacement's own slot array, when it is not the site's [`AltSite::slots`]: before 6.3 each entry gets
    /// a fresh array shared only with its own copy of the original group, and the original's instructions share
    /// the last entry's, so only that replacement is compared with the original (and the others with nothing).
    /// `None` when the replacement's states went into [`AltSite::slots`].
    pub slots: Option<Vec<Option<CfiId>>>,
}

/// An alternative site: the original range and its replacements.
#[derive(Debug, Clone, Serialize)]
pub struct AltSite {
    /// Original: (section, offset).
    pub orig: (usize, u64),
    /// Original length (the slot array size).
    pub len: usize,
    /// objtool's location of the site start.
    pub location: String,
    /// Replacements, in `.altinstructions` order.
    pub replacements: Vec<Replacement>,
    /// The state recorded in each slot of the shared array (per byte offset).
    pub slots: Vec<Option<CfiId>>,
    /// Per variant and offset (and the first instruction after the site): is an unwind from there right?
    /// ([`crate::unwind`]; for a site objtool never checks, from the walk that went there anyway.)
    pub unwind: SiteUnwind,
}

/// How an analysis chose its era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EraSource {
    /// [`Options::era`] named it (the command line, or the caller's knowledge of the object's tree).
    Given,
    /// The object's own sections told (the text names which: `the .altinstructions entry size`, …).
    Object(&'static str),
    /// Nothing told: 6.12's rules.
    Default,
}

/// The result of analysing one object.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The era whose rules were applied.
    pub era: Era,
    /// How [`Analysis::era`] was chosen.
    pub era_source: EraSource,
    /// Findings in objtool's order.
    pub findings: Vec<Finding>,
    /// ORC rows, or `None` when objtool would write none (fatal errors).
    pub orc: Option<Vec<OrcRow>>,
    /// ORC rows already in the object (`.orc_unwind`), if any.
    pub existing_orc: Option<Vec<OrcRow>>,
    /// Every real instruction, in section order.
    pub insns: Vec<InsnInfo>,
    /// Interned states referenced by [`InsnInfo::cfi`] and [`AltSite::slots`].
    pub states: Interner,
    /// Alternative sites (left empty by [`analyze_lean`] when there are no findings).
    pub sites: Vec<AltSite>,
    /// Section names by index.
    pub section_names: Vec<String>,
}

impl Analysis {
    /// The state of an id.
    pub fn state(&self, id: CfiId) -> &CfiState {
        self.states.get(id)
    }

    /// A copy without the per-instruction table ([`Analysis::insns`] empty): what [`analyze_lean`] returns for the
    /// same object, for a holder that lets the table go and keeps the findings.
    pub fn without_table(&self) -> Analysis {
        Analysis {
            era: self.era,
            era_source: self.era_source,
            findings: self.findings.clone(),
            orc: self.orc.clone(),
            existing_orc: self.existing_orc.clone(),
            insns: Vec::new(),
            states: self.states.clone(),
            sites: self.sites.clone(),
            section_names: self.section_names.clone(),
        }
    }

    /// Whether any finding stopped the analysis.
    pub fn is_fatal(&self) -> bool {
        self.findings.iter().any(|f| f.fatal)
    }
}

/// Analyses one object. Never panics on input; an unreadable container is an error, everything else is findings.
pub fn analyze(
    data: &[u8],
    opts: Options,
    features: &FeatureNames,
) -> Result<Analysis, AnalysisError> {
    analyze_guarded(data, opts, features, Extent::Full, &mut |_| {})
}

/// [`analyze`] without the per-instruction table: [`Analysis::insns`] is left empty; findings, ORC, sites and
/// states are the same. For the language server's diagnostics and code lenses: disassembling and locating every
/// instruction is most of the cost of analysing an object.
pub fn analyze_lean(
    data: &[u8],
    opts: Options,
    features: &FeatureNames,
) -> Result<Analysis, AnalysisError> {
    analyze_guarded(data, opts, features, Extent::Lean, &mut |_| {})
}

/// [`analyze_lean`] that also leaves [`Analysis::sites`] empty when there are no findings (the sites only serve
/// to explain findings). For callers that report findings and ORC only (`altcfi check`, `altcfi orc`).
pub fn analyze_findings(
    data: &[u8],
    opts: Options,
    features: &FeatureNames,
) -> Result<Analysis, AnalysisError> {
    analyze_guarded(data, opts, features, Extent::Findings, &mut |_| {})
}

/// [`analyze`] in two stages from one walk: `on_lean` receives what [`analyze_lean`] returns as soon as it is
/// known, then the per-instruction table is built and the full analysis returned. For a caller that publishes
/// findings before it needs the table (the language server); `on_lean` runs on the calling thread before the table
/// is built, so it should hand the value over and return. It is not called when the analysis stops before the walk
/// (an unreadable object, or a fatal finding while building): the returned value is then the whole answer.
pub fn analyze_staged(
    data: &[u8],
    opts: Options,
    features: &FeatureNames,
    mut on_lean: impl FnMut(Analysis) + Send,
) -> Result<Analysis, AnalysisError> {
    analyze_guarded(data, opts, features, Extent::Staged, &mut on_lean)
}

/// How much of [`Analysis`] to compute besides findings, ORC and states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extent {
    /// Sites only when there are findings; no per-instruction table.
    Findings,
    /// Sites; no per-instruction table.
    Lean,
    /// Sites and the per-instruction table.
    Full,
    /// [`Extent::Lean`] handed out first, then [`Extent::Full`].
    Staged,
}

/// [`analyze_here`] with a panic turned into [`AnalysisError::Internal`]: the last line of defence for the CLI and
/// the language server, which go on with their other objects. It runs on the caller's thread: the walk recurses on
/// branches like objtool and grows its stack as it goes ([`validate`]), so it needs no thread of its own (a process
/// that checks one object would pay for every thread it starts).
fn analyze_guarded(
    data: &[u8],
    opts: Options,
    features: &FeatureNames,
    extent: Extent,
    on_lean: &mut (dyn FnMut(Analysis) + Send),
) -> Result<Analysis, AnalysisError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        analyze_here(data, opts, features, extent, on_lean)
    }))
    .unwrap_or_else(|_| Err(AnalysisError::Internal("the analysis panicked".into())))
}

fn analyze_here(
    data: &[u8],
    opts: Options,
    features: &FeatureNames,
    extent: Extent,
    on_lean: &mut (dyn FnMut(Analysis) + Send),
) -> Result<Analysis, AnalysisError> {
    let obj = Object::parse(data)?;
    // The `.altinstructions` stride, detected once: it gives the era (unless one is asked for) and the layout.
    let layout = obj
        .section_by_name(".altinstructions")
        .map(|s| special::detect_alt_entry_size(&obj, s.index));
    let detected = match layout.as_ref().and_then(|l| l.as_ref().ok()) {
        Some(&size) => Some((
            special::era_of_entry_size(size),
            "the .altinstructions entry size",
        )),
        None => special::era_signal(&obj),
    };
    let (era, era_source) = match (opts.era, detected) {
        (Some(e), _) => (e, EraSource::Given),
        (None, Some((e, why))) => (e, EraSource::Object(why)),
        (None, None) => (Era::V6_12, EraSource::Default),
    };
    // With an era asked for, its fixed entry size (objtool's); else the detected one (none: the special-section
    // reader detects again and reports the unknown layout).
    let alt_entry_size = match opts.era {
        Some(e) => Some(e.alt_entry_size()),
        None => layout.and_then(Result::ok),
    };
    let section_names = obj.sections.iter().map(|s| s.name.clone()).collect();
    let existing_orc = orc::read_existing(&obj, era);
    let mut p = match Program::build(
        &obj,
        era,
        opts.objtool,
        alt_entry_size,
        opts.parallel_min_code,
    ) {
        Ok(p) => p,
        Err(f) => {
            return Ok(Analysis {
                era,
                era_source,
                findings: vec![*f],
                orc: None,
                existing_orc,
                insns: Vec::new(),
                states: Interner::default(),
                sites: Vec::new(),
                section_names,
            })
        }
    };
    let w = validate::walk(&p, opts);
    let mut findings = w.findings.clone();
    // Frame-pointer kernels run objtool without --orc: no ORC, so no ORC errors either.
    let orc = if w.fatal || opts.frame_pointer {
        None
    } else {
        match orc::generate(&p, &w) {
            Ok(rows) => Some(rows),
            Err(e) => {
                // objtool charges ORC errors to the instruction's symbol (WARN_INSN): suppressed if it warned.
                let sym = p.nodes[e.node as usize].sym.get();
                let warned = era == Era::V6_12 && sym.is_some_and(|s| sym_warned(&findings, &p, s));
                if !warned {
                    let mut f = Finding::new(
                        FindingKind::OrcError,
                        Some(p.node_location(e.node)),
                        e.message,
                    );
                    f.fatal = true;
                    findings.push(f);
                }
                None
            }
        }
    };
    // The sites serve the findings' related information, the per-line views and code lenses; a check of a clean
    // object has no use for them (and naming every site's location is a large part of a clean check).
    enrich_conflicts(&p, &w, features, opts.frame_pointer, &mut findings);
    // Sites objtool never checks: the unwind simulation from a walk that goes there anyway; notes where it breaks.
    let unchecked = if w.fatal {
        Vec::new()
    } else {
        unchecked_unwind(&mut p, &w, opts)
    };
    for u in &unchecked {
        if let Some(f) = unchecked_note(&p, features, u) {
            findings.push(f);
        }
    }
    let mut sites = if extent != Extent::Findings || !findings.is_empty() {
        build_sites(&p, &w, features, opts.frame_pointer)
    } else {
        Vec::new()
    };
    for u in unchecked {
        if let Some(site) = sites.get_mut(u.site) {
            site.unwind = u.facts;
        }
    }
    let mut a = Analysis {
        era,
        era_source,
        findings,
        orc,
        existing_orc,
        insns: Vec::new(),
        states: w.interner.clone(),
        sites,
        section_names,
    };
    match extent {
        Extent::Findings | Extent::Lean => return Ok(a),
        Extent::Staged => on_lean(a.clone()),
        Extent::Full => {}
    }
    a.insns = insn_infos(&p, &w);
    Ok(a)
}

/// Why objtool never checks an alternative site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unchecked {
    /// `ANNOTATE_IGNORE_ALTERNATIVE` on its first original instruction: the replacements are never walked.
    IgnoreAlternative,
    /// It lies in a `STACK_FRAME_NON_STANDARD` function: nothing of it is walked, and its ORC is undefined.
    NonStandard,
}

/// The unwind facts of one site objtool never checks.
struct UncheckedSite {
    /// Index in [`site_map`]'s sites (and so in [`build_sites`]).
    site: usize,
    why: Unchecked,
    facts: SiteUnwind,
}

/// Walks what objtool does not (the replacements of `ANNOTATE_IGNORE_ALTERNATIVE` sites, `STACK_FRAME_NON_STANDARD`
/// functions) in a second walk with those annotations lifted and every conflict followed, and simulates the unwind
/// of their sites' variants: against the real ORC rows (`w`'s) for an ignored alternative, against the rows objtool
/// would have made (the second walk's) in a non-standard function, whose real rows are undefined. The annotations
/// are put back afterwards; `w` and everything objtool reports are untouched. Empty (and no second walk) when no
/// site is unchecked.
fn unchecked_unwind(p: &mut Program, w: &WalkResult, opts: Options) -> Vec<UncheckedSite> {
    if p.annotated_ignore_alts.is_empty() && p.non_standard.is_empty() {
        return Vec::new();
    }
    let map = site_map(p);
    let mut out: Vec<(usize, Unchecked)> = Vec::new();
    for (i, (og, _)) in map.sites.iter().enumerate() {
        let first = p.groups[*og].first;
        if p.annotated_ignore_alts.contains(&first) {
            out.push((i, Unchecked::IgnoreAlternative));
        } else if p.nodes[first as usize].ignore && p.non_standard.contains(&first) {
            out.push((i, Unchecked::NonStandard));
        }
    }
    if out.is_empty() {
        return Vec::new();
    }
    // Lift the annotations: every flag changed is remembered and restored.
    let mut ignore: Vec<NodeId> = p.non_standard.clone();
    let ignore_alts: Vec<NodeId> = p.annotated_ignore_alts.clone();
    for &(i, _) in &out {
        for &g in &map.sites[i].1 {
            let grp = &p.groups[g];
            ignore.extend(grp.last.map_or(0..0, |l| grp.first..l + 1));
            ignore.extend(grp.nop);
        }
    }
    ignore.retain(|&n| p.nodes[n as usize].ignore);
    let ignore_alts: Vec<NodeId> = ignore_alts
        .into_iter()
        .filter(|&n| p.nodes[n as usize].ignore_alts)
        .collect();
    for &n in &ignore {
        p.nodes[n as usize].ignore = false;
    }
    for &n in &ignore_alts {
        p.nodes[n as usize].ignore_alts = false;
    }
    let w2 = validate::walk(
        p,
        Options {
            all_conflicts: true,
            ..opts
        },
    );
    for &n in &ignore {
        p.nodes[n as usize].ignore = true;
    }
    for &n in &ignore_alts {
        p.nodes[n as usize].ignore_alts = true;
    }
    out.into_iter()
        .map(|(i, why)| {
            let (og, repls) = &map.sites[i];
            let numbered: Vec<(usize, usize)> =
                repls.iter().enumerate().map(|(k, &g)| (g, k + 1)).collect();
            let rows = match why {
                Unchecked::IgnoreAlternative => w,
                Unchecked::NonStandard => &w2,
            };
            let mut facts = crate::unwind::site_unwind(
                p,
                &w2,
                rows,
                crate::unwind::SiteGroups {
                    original: *og,
                    replacements: &numbered,
                },
                opts.frame_pointer,
            );
            facts.rows_if_checked = why == Unchecked::NonStandard;
            UncheckedSite {
                site: i,
                why,
                facts,
            }
        })
        .collect()
}

/// The `unchecked-alt-unwind` note of an unchecked site whose unwind breaks; `None` when it does not (or cannot be
/// told).
fn unchecked_note(p: &Program, features: &FeatureNames, u: &UncheckedSite) -> Option<Finding> {
    let verdict = u.facts.verdict()?;
    if verdict.verdict != crate::unwind::Verdict::Breaks {
        return None;
    }
    let map = site_map(p);
    let (og, repls) = map.sites.get(u.site)?;
    let side = |r: Option<usize>| -> String {
        match r {
            None => "the original".into(),
            Some(n) => match repls.get(n - 1).and_then(|&g| p.groups[g].entry) {
                Some(k) => format!("replacement #{n} [{}]", feature_text(p, k, features)),
                None => format!("replacement #{n}"),
            },
        }
    };
    let why = match u.why {
        Unchecked::IgnoreAlternative => "ANNOTATE_IGNORE_ALTERNATIVE",
        Unchecked::NonStandard => "in a STACK_FRAME_NON_STANDARD function",
    };
    let first = p.groups[*og].first;
    let m = verdict.mismatches.first()?;
    let mut f = Finding::new(
        FindingKind::UncheckedAltUnwind,
        Some(p.node_location(first)),
        format!(
            "unwinding breaks in an alternative objtool does not check ({why}): {} at +0x{:x}",
            side(m.replacement),
            m.offset
        ),
    );
    for m in &verdict.mismatches {
        f.details.push(format!(
            "unwind: breaks: {} at +0x{:x}{}: {}",
            side(m.replacement),
            m.offset,
            if m.offset as usize == p.groups[*og].len {
                " (the instruction after the site)"
            } else {
                ""
            },
            m.what
        ));
    }
    if u.why == Unchecked::NonStandard {
        f.details.push(
            "the function's ORC is undefined (objtool skips it): the rows above are the ones objtool would make if it checked it"
                .into(),
        );
    }
    f.unwind = Some(verdict);
    Some(f)
}

/// Whether a finding was already charged to symbol `s` (objtool's `sym->warned`).
fn sym_warned(findings: &[Finding], p: &Program, s: usize) -> bool {
    let sym = &p.obj.symbols[s];
    findings.iter().any(|f| match &f.location {
        Some(l) => {
            sym.section == Some(l.section)
                && (sym.value..sym.value.saturating_add(sym.size.max(1))).contains(&l.offset)
        }
        None => f.message.starts_with(&format!("{}()", sym.name)),
    })
}

fn feature_text(p: &Program, k: usize, features: &FeatureNames) -> String {
    let sa = &p.specials[k];
    let name = features.name(sa.cpuid());
    if sa.is_not(p.era) {
        format!("!{name}")
    } else {
        name
    }
}

/// The alternative sites of a program: one per original address range, with every replacement of every
/// `.altinstructions` entry for it. objtool 6.3+ makes one original group per range; before 6.3 it makes a fresh
/// original group per entry, so the entries of an `ALTERNATIVE_2`/`_3` give several original groups over the same
/// bytes (each sharing its slot array with its one replacement) and the site must gather them.
struct SiteMap {
    /// Per group: its site and side (`None` = original, `Some(n)` = replacement #n, 1-based, `.altinstructions`
    /// order).
    side: Vec<Option<(usize, Option<usize>)>>,
    /// Per site: the original group whose slot array the original's instructions use (the one objtool checked the
    /// original against), and the replacement groups in `.altinstructions` order.
    sites: Vec<(usize, Vec<usize>)>,
}

fn site_map(p: &Program) -> SiteMap {
    let mut side: Vec<Option<(usize, Option<usize>)>> = vec![None; p.groups.len()];
    let mut sites: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut by_range: std::collections::HashMap<(usize, u64, usize), usize> =
        std::collections::HashMap::new();
    // Groups are made in `.altinstructions` order, so a site's replacements are numbered in that order.
    for (gi, g) in p.groups.iter().enumerate() {
        let Some(og) = g.orig_group else { continue };
        let orig = &p.groups[og];
        let first = &p.nodes[orig.first as usize];
        let key = (first.sec(), first.insn.offset(), orig.len);
        let site = *by_range.entry(key).or_insert_with(|| {
            sites.push((og, Vec::new()));
            sites.len() - 1
        });
        sites[site].1.push(gi);
        side[gi] = Some((site, Some(sites[site].1.len())));
        side[og] = Some((site, None));
    }
    // Before 6.3 the original's instructions belong to the last original group made over them: its slots are the
    // ones the original's states went into and were compared in.
    for (s, (og, _)) in sites.iter_mut().enumerate() {
        if let Some(g) = p.nodes[p.groups[*og].first as usize].alt_group.get() {
            if p.groups[g].orig_group.is_none() && side[g] == Some((s, None)) {
                *og = g;
            }
        }
    }
    SiteMap { side, sites }
}

/// The unwind facts of site `(og, repls)` of a [`SiteMap`], states and rows from one walk.
fn unwind_of(
    p: &Program,
    w: &WalkResult,
    og: usize,
    repls: &[usize],
    stackval: bool,
) -> SiteUnwind {
    let numbered: Vec<(usize, usize)> =
        repls.iter().enumerate().map(|(i, &g)| (g, i + 1)).collect();
    crate::unwind::site_unwind(
        p,
        w,
        w,
        crate::unwind::SiteGroups {
            original: og,
            replacements: &numbered,
        },
        stackval,
    )
}

fn build_sites(
    p: &Program,
    w: &WalkResult,
    features: &FeatureNames,
    stackval: bool,
) -> Vec<AltSite> {
    let map = site_map(p);
    map.sites
        .iter()
        .map(|&(og, ref repls)| {
            let orig = &p.groups[og];
            let slots = orig.slots;
            let first = &p.nodes[orig.first as usize];
            let replacements = repls
                .iter()
                .enumerate()
                .filter_map(|(i, &g)| Some((i + 1, g, p.groups[g].entry?)))
                .map(|(number, g, k)| {
                    let sa = &p.specials[k];
                    let own = p.groups[g].slots;
                    debug_assert_eq!(sa.kind, SpecialKind::Alternative);
                    Replacement {
                        number,
                        entry: sa.entry,
                        feature: feature_text(p, k, features),
                        at: sa.new,
                        len: sa.new_len,
                        slots: (own != slots).then(|| w.slots[own].to_vec()),
                    }
                })
                .collect();
            AltSite {
                orig: (first.sec(), first.insn.offset()),
                len: orig.len,
                location: p.node_location(orig.first).display,
                replacements,
                slots: w.slots[slots].to_vec(),
                unwind: unwind_of(p, w, og, repls, stackval),
            }
        })
        .collect()
}

fn node_text(p: &Program, id: NodeId) -> String {
    let n = &p.nodes[id as usize];
    if n.synthetic {
        return format!("(padding nop, {} bytes)", n.insn.len);
    }
    crate::symbols::Symbolizer::new(p.obj).insn_text(n.sec(), n.insn.offset(), n.insn.len)
}

fn insn_infos(p: &Program, w: &WalkResult) -> Vec<InsnInfo> {
    // Site and side of each group, as in [`build_sites`].
    let side = site_map(p).side;
    p.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.synthetic)
        .map(|(i, n)| InsnInfo {
            section: n.sec(),
            offset: n.insn.offset(),
            len: n.insn.len,
            location: p.node_location(i as NodeId).display,
            text: node_text(p, i as NodeId),
            cfi: w.cfi[i],
            site: n.alt_group.get().and_then(|g| side[g]),
        })
        .collect()
}

fn group_text(p: &Program, g: usize) -> String {
    let grp = &p.groups[g];
    let mut parts = Vec::new();
    let mut cur = Some(grp.first);
    while let Some(id) = cur {
        if p.nodes[id as usize].alt_group.get() != Some(g) || parts.len() > 64 {
            break;
        }
        parts.push(node_text(p, id));
        if Some(id) == grp.last || p.nodes[id as usize].synthetic {
            break;
        }
        cur = p.next_insn_same_sec(id);
    }
    parts.join("; ")
}

fn enrich_conflicts(
    p: &Program,
    w: &WalkResult,
    features: &FeatureNames,
    stackval: bool,
    findings: &mut [Finding],
) {
    if w.conflicts.is_empty() {
        return;
    }
    let map = site_map(p);
    // Replacement numbers: a group's number among its site's replacements, as in [`build_sites`].
    let numbers: Vec<Option<usize>> = map.side.iter().map(|s| s.and_then(|(_, n)| n)).collect();
    let describe = |id: NodeId, state: &CfiState| -> VariantAt {
        let n = &p.nodes[id as usize];
        let g = n.alt_group.get();
        let (replacement, feature) = match g.and_then(|g| p.groups[g].entry.map(|k| (g, k))) {
            Some((g, k)) => {
                // A group with an entry but no original group is not among the site's replacements.
                let number = numbers[g];
                (number, Some(feature_text(p, k, features)))
            }
            None => (None, None),
        };
        VariantAt {
            replacement,
            feature,
            location: p.node_location(id),
            instruction: node_text(p, id),
            variant_text: g.map(|g| group_text(p, g)).unwrap_or_default(),
            state: state.to_string(),
            cfa: format!("{}", CfaOnly(state)),
            cfi_state: Some(state.clone()),
        }
    };
    for f in findings
        .iter_mut()
        .filter(|f| f.kind == FindingKind::AltStackConflict)
    {
        let Some(loc) = f.location.clone() else {
            continue;
        };
        // The site whose first original instruction (6.12) or a conflicting instruction (6.1) is the location.
        let at = |id: NodeId| {
            let n = &p.nodes[id as usize];
            n.sec() == loc.section && n.insn.offset() == loc.offset
        };
        let Some(slots_id) = w
            .conflicts
            .iter()
            .find(|c| at(p.groups[c.slots].first) || at(c.node))
            .map(|c| c.slots)
        else {
            continue;
        };
        f.conflicts = validate::conflict_records(w, slots_id, describe);
        for c in &mut f.conflicts {
            // Show the original first when it is one of the two sides.
            if c.conflicting.replacement.is_none() && c.recorded.replacement.is_some() {
                std::mem::swap(&mut c.recorded, &mut c.conflicting);
                if let (Some(a), Some(b)) = (&c.recorded.cfi_state, &c.conflicting.cfi_state) {
                    c.differs = a.differences(b);
                }
            }
        }
        for c in &f.conflicts {
            let pad = format!("at +0x{:x}: ", c.site_offset);
            f.details.push(format!(
                "{pad}{} ({}) has {}",
                side_name(&c.recorded),
                c.recorded.variant_text,
                c.recorded.state
            ));
            f.details.push(format!(
                "{}{} ({}) has {}",
                " ".repeat(pad.len()),
                side_name(&c.conflicting),
                c.conflicting.variant_text,
                c.conflicting.state
            ));
            if !c.differs.is_empty() {
                f.details.push(format!(
                    "{}they differ in: {}",
                    " ".repeat(pad.len()),
                    c.differs.join("; ")
                ));
            }
        }
        // The site whose original or one of whose replacements uses that slot array (before 6.3 each entry has
        // its own).
        f.unwind = map
            .sites
            .iter()
            .find(|(og, repls)| {
                p.groups[*og].slots == slots_id
                    || repls.iter().any(|&g| p.groups[g].slots == slots_id)
            })
            .and_then(|(og, repls)| unwind_of(p, w, *og, repls, stackval).verdict());
        if let Some(u) = &f.unwind {
            let line = match u.mismatches.first() {
                Some(m) => {
                    let side = match m.replacement {
                        None => "the original".to_string(),
                        Some(n) => f
                            .conflicts
                            .iter()
                            .flat_map(|c| [&c.recorded, &c.conflicting])
                            .find(|v| v.replacement == Some(n))
                            .map_or_else(|| format!("replacement #{n}"), side_name),
                    };
                    let more = u.mismatches.len() - 1;
                    format!(
                        "unwind: breaks: {side} at +0x{:x}: {}{}",
                        m.offset,
                        m.what,
                        if more > 0 {
                            format!(" (and {more} more place{})", if more == 1 { "" } else { "s" })
                        } else {
                            String::new()
                        }
                    )
                }
                None => format!(
                    "unwind: strict-only: at each of the variants' {} instructions the ORC row in effect is the one \
                     its own state calls for{}",
                    u.checked,
                    f.conflicts
                        .first()
                        .filter(|c| !c.differs.is_empty())
                        .map(|c| format!("; the states differ only in {}", c.differs.join("; ")))
                        .unwrap_or_default()
                ),
            };
            f.details.push(line);
        }
        f.related.clear();
        if let Some(c) = f.conflicts.first() {
            for v in [&c.recorded, &c.conflicting] {
                f.related.push((
                    format!(
                        "{} at +0x{:x} ({})",
                        side_name(v),
                        c.site_offset,
                        v.instruction
                    ),
                    v.location.clone(),
                ));
            }
            // Why: on each side, the instruction that last changed a field the two states differ in, inside the
            // site or before it.
            let mut why = Vec::new();
            for (v, o) in [(&c.recorded, &c.conflicting), (&c.conflicting, &c.recorded)] {
                if let Some((text, loc)) = cause(p, w, v, o.cfi_state.as_ref()) {
                    why.push(format!("{}: {text}", side_name(v)));
                    f.related.push((format!("{}: {text}", side_name(v)), loc));
                }
            }
            if !why.is_empty() {
                f.details.push(format!("why: {}", why.join("; ")));
            }
        }
    }
}

/// The fields in which two states differ, as keys (`cfa`, `stack`, `reg3`, …), to follow one field back.
fn field_keys(a: &CfiState, b: &CfiState) -> Vec<String> {
    let mut out = Vec::new();
    if a.cfa != b.cfa {
        out.push("cfa".to_owned());
    }
    if a.stack_size != b.stack_size {
        out.push("stack".to_owned());
    }
    for (i, (x, y)) in a.regs.iter().zip(&b.regs).enumerate() {
        if x != y {
            out.push(format!("reg{i}"));
        }
    }
    for (i, (x, y)) in a.vals.iter().zip(&b.vals).enumerate() {
        if x != y {
            out.push(format!("val{i}"));
        }
    }
    if (a.drap, a.drap_reg, a.drap_offset) != (b.drap, b.drap_reg, b.drap_offset) {
        out.push("drap".to_owned());
    }
    if (a.ty, a.signal, a.end, a.bp_scratch, a.force_undefined)
        != (b.ty, b.signal, b.end, b.bp_scratch, b.force_undefined)
    {
        out.push("kind".to_owned());
    }
    out
}

/// The instruction that last changed, on the way to the offset `v` describes, a field in which `v`'s state
/// differs from `other`'s (the whole state when `other` is `None`), and what it did, in words (`push %rcx at
/// +0x1 left the stack 8 bytes deeper`). It looks inside the variant first, then before the site (a replacement is
/// entered from the instruction before the original), following the code's layout back to the function's start;
/// `None` when nothing there changed it.
fn cause(
    p: &Program,
    w: &WalkResult,
    v: &VariantAt,
    other: Option<&CfiState>,
) -> Option<(String, crate::findings::Location)> {
    let node = p.find_insn(v.location.section, v.location.offset)?;
    let g = p.nodes[node as usize].alt_group.get()?;
    let group = &p.groups[g];
    let orig_first = p.groups[group.orig_group.unwrap_or(g)].first;
    let base = p.nodes[group.first as usize].insn.offset();
    let sym = p.nodes[orig_first as usize].sym;
    let state = |id: NodeId| w.cfi[id as usize].map(|c| w.interner.get(c));
    let target = state(node)?;
    let wanted: Option<Vec<String>> = other.map(|o| field_keys(target, o));
    let mut cur = node;
    let mut inside = true;
    for _ in 0..100_000 {
        let prev = if cur == group.first {
            if !inside {
                return None;
            }
            inside = false;
            p.prev_insn_same_sec(orig_first)?
        } else if inside {
            cur - 1
        } else {
            p.prev_insn_same_sec(cur)?
        };
        if !inside && p.nodes[prev as usize].sym != sym {
            return None;
        }
        let (before, after) = (state(prev)?, state(cur)?);
        let changed = match &wanted {
            Some(keys) => field_keys(before, after).iter().any(|k| keys.contains(k)),
            None => before != after,
        };
        if changed {
            let n = &p.nodes[prev as usize];
            let what = if before.stack_size != after.stack_size {
                let d = after.stack_size - before.stack_size;
                format!(
                    "left the stack {} bytes {}",
                    d.abs(),
                    if d > 0 { "deeper" } else { "shallower" }
                )
            } else {
                format!("changed {}", before.differences(after).join("; "))
            };
            let at = if inside {
                format!("+0x{:x}", n.insn.offset().wrapping_sub(base))
            } else {
                format!("{} (before the site)", p.node_location(prev).display)
            };
            return Some((
                format!("{} at {at} {what}", node_text(p, prev)),
                p.node_location(prev),
            ));
        }
        cur = prev;
    }
    None
}

fn side_name(v: &VariantAt) -> String {
    match (v.replacement, &v.feature) {
        (None, _) => "the original".into(),
        (Some(n), Some(f)) => format!("replacement #{n} [{f}]"),
        (Some(n), None) => format!("replacement #{n}"),
    }
}

struct CfaOnly<'a>(&'a CfiState);

impl std::fmt::Display for CfaOnly<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = self.0.to_string();
        let cfa = full.split(',').next().unwrap_or("");
        write!(f, "{}", cfa.trim_start_matches("CFA="))
    }
}
