//! Unwind facts for alternative sites: after the kernel patches a variant in, is the ORC row in effect at each of
//! its instructions (and at the first instruction after the site) right for that variant's own stack state?
//!
//! The kernel keeps ONE ORC table for a site's address range, made from the site's shared per-offset slots (the
//! state of whichever variant filled each slot first, objtool's `orc_create`); the unwinder reads only that row and
//! the registers. So an unwind from inside a patched-in variant is right exactly when that row, applied as
//! `unwind_orc.c` does, finds what the variant's own state says: the CFA (so the return address at CFA-8), the
//! caller's `%rbp`, the frame type. Rows are compared by what they read, not bit for bit (a row that leaves the
//! caller's `%rbp` in `%rbp` is right while the variant has not changed `%rbp`). [`site_unwind`] gives the facts
//! per (variant, offset) of any site; a stack layout conflict whose variants are all right is *strict-only*
//! (objtool compares whole states: stack size below an rbp-based CFA, a callee-saved register other than rbp, …),
//! one where some variant is not *breaks* stack traces taken there.
//!
//! *Invariant:* a pure stage after [`crate::orc`]: it reads the walk's states and slots and objtool's ORC encoding
//! ([`crate::orc::entry_for`]); it never re-walks or changes a verdict of objtool's.

use crate::cfi::{apply_op, CfiState, OpContext};
use crate::decode::{InsnKind, Ops};
use crate::flow::{NodeId, Program};
use crate::orc::{entry_for, orc_reg, OrcEntry, OrcType};
use crate::validate::WalkResult;
use serde::Serialize;

/// Whether unwinding from inside a site's variants is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Some variant, at some offset, gets an ORC row its own state does not call for: stack traces taken there are
    /// wrong or fail.
    Breaks,
    /// Every variant gets, at every one of its instructions in the site, the ORC row its own state calls for; only
    /// objtool's whole-state comparison objects.
    StrictOnly,
}

/// One variant at one offset whose ORC row in effect is not its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// `None` for the original, `Some(n)` for replacement #n (1-based, `.altinstructions` order).
    pub replacement: Option<usize>,
    /// Offset inside the site.
    pub offset: u64,
    /// The row in effect there (from the shared slots), in `objtool --dump=orc` words.
    pub in_effect: String,
    /// The row the variant's own state calls for.
    pub own: String,
    /// What the unwinder gets wrong, in words: `ORC says the return address is at rsp+0, it is at rsp+16`.
    pub what: String,
    /// The same, compactly: `ra read at rsp+0, is at rsp+16`.
    pub compact: String,
}

/// The unwind verdict on one alternative site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnwindVerdict {
    /// The verdict.
    pub verdict: Verdict,
    /// Variant instructions checked (offsets inside the site where a variant has an instruction its walk reached;
    /// the instruction after the site is checked too but not counted).
    pub checked: usize,
    /// Every variant and offset whose row in effect is not its own (empty when strict-only).
    pub mismatches: Vec<Mismatch>,
}

/// The ORC CFA rule of an entry as a register expression (`rsp+16`, `rbp+16`), or `undefined`.
fn cfa_rule(e: &OrcEntry) -> String {
    let base = match e.sp_reg {
        orc_reg::SP => "rsp",
        orc_reg::BP => "rbp",
        orc_reg::SP_INDIRECT => "[rsp]",
        orc_reg::BP_INDIRECT => "[rbp]",
        orc_reg::R10 => "r10",
        orc_reg::R13 => "r13",
        orc_reg::DI => "rdi",
        orc_reg::DX => "rdx",
        _ => return "undefined".into(),
    };
    format!("{base}{:+}", e.sp_offset)
}

/// Where the return address is under an entry's CFA rule (`rsp+0`).
fn ra_rule(e: &OrcEntry) -> String {
    match e.sp_reg {
        orc_reg::SP | orc_reg::BP if e.ty == OrcType::Call => {
            let base = if e.sp_reg == orc_reg::SP {
                "rsp"
            } else {
                "rbp"
            };
            format!("{base}{:+}", i32::from(e.sp_offset) - 8)
        }
        _ => format!("CFA-8 with CFA={}", cfa_rule(e)),
    }
}

/// Where the caller's `%rbp` is under an entry.
fn bp_rule(e: &OrcEntry) -> String {
    match e.bp_reg {
        orc_reg::PREV_SP => format!("at CFA{:+}", e.bp_offset),
        orc_reg::BP => format!("at rbp{:+}", e.bp_offset),
        _ => "still in %rbp".into(),
    }
}

fn type_name(t: OrcType) -> &'static str {
    match t {
        OrcType::Call => "call",
        OrcType::Regs => "regs",
        OrcType::RegsPartial => "partial regs",
        OrcType::Undefined => "undefined",
        OrcType::EndOfStack => "end of stack",
    }
}

/// The row in effect, in words.
fn words(e: &OrcEntry) -> String {
    match e.ty {
        OrcType::Undefined => "undefined".into(),
        OrcType::EndOfStack => "end of stack".into(),
        t => format!("{} CFA={} rbp {}", type_name(t), cfa_rule(e), bp_rule(e)),
    }
}

/// What an unwind reading `in_effect` where `own` is due gets wrong, in words.
fn what_differs(in_effect: &OrcEntry, own: &OrcEntry) -> String {
    let mut parts = Vec::new();
    if in_effect.ty != own.ty {
        parts.push(format!(
            "ORC says the frame is {}, it is {}",
            type_name(in_effect.ty),
            type_name(own.ty)
        ));
    }
    if (in_effect.sp_reg, in_effect.sp_offset) != (own.sp_reg, own.sp_offset) {
        if in_effect.ty == OrcType::Call && own.ty == OrcType::Call {
            parts.push(format!(
                "ORC says the return address is at {}, it is at {}",
                ra_rule(in_effect),
                ra_rule(own)
            ));
        } else {
            parts.push(format!(
                "ORC says CFA={}, it is {}",
                cfa_rule(in_effect),
                cfa_rule(own)
            ));
        }
    }
    if (in_effect.bp_reg, in_effect.bp_offset) != (own.bp_reg, own.bp_offset) {
        parts.push(format!(
            "ORC says the caller's rbp is {}, it is {}",
            bp_rule(in_effect),
            bp_rule(own)
        ));
    }
    if in_effect.signal != own.signal || in_effect.end != own.end {
        parts.push("the signal/end flags differ".into());
    }
    parts.join("; ")
}

/// Where the return address is under an entry, compactly (`rsp+8`), for hover cells.
fn ra_short(e: &OrcEntry) -> String {
    match e.sp_reg {
        orc_reg::SP | orc_reg::BP => {
            let base = if e.sp_reg == orc_reg::SP {
                "rsp"
            } else {
                "rbp"
            };
            format!("{base}{:+}", i32::from(e.sp_offset) - 8)
        }
        _ => format!("CFA-8, CFA {}", cfa_rule(e)),
    }
}

/// What goes wrong, compactly (`ra read at rsp+8, is at rsp+24`), for hover cells and tables.
fn compact_what(in_effect: &OrcEntry, own: &OrcEntry) -> String {
    let mut parts = Vec::new();
    if in_effect.ty != own.ty {
        parts.push(format!(
            "frame read as {}, is {}",
            type_name(in_effect.ty),
            type_name(own.ty)
        ));
    }
    if (in_effect.sp_reg, in_effect.sp_offset) != (own.sp_reg, own.sp_offset) {
        parts.push(format!(
            "ra read at {}, is at {}",
            ra_short(in_effect),
            ra_short(own)
        ));
    }
    if (in_effect.bp_reg, in_effect.bp_offset) != (own.bp_reg, own.bp_offset) {
        parts.push(format!(
            "caller's rbp read {}, is {}",
            bp_rule(in_effect),
            bp_rule(own)
        ));
    }
    if in_effect.signal != own.signal || in_effect.end != own.end {
        parts.push("signal/end flags differ".into());
    }
    parts.join("; ")
}

/// One variant at one offset of a site (or the first instruction after it) whose state the walk knows: is the ORC
/// row in effect there the one the variant's own state calls for?
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnwindPoint {
    /// `None` for the original, `Some(n)` for replacement #n.
    pub replacement: Option<usize>,
    /// Offset inside the site; the site's length for the first instruction after it.
    pub offset: u64,
    /// The instruction after the site, entered from this variant.
    pub after: bool,
    /// `None` when an unwind from here is right; else what it gets wrong.
    pub mismatch: Option<Mismatch>,
}

/// The unwind facts of one site: every (variant, offset) checked, and how many were not (unknown state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SiteUnwind {
    /// Every variant instruction with a known state, in variant then offset order.
    pub points: Vec<UnwindPoint>,
    /// Variant instructions inside the site whose state the walk never knew (objtool stops a path at its first
    /// warning).
    pub unknown: usize,
    /// The rows compared are the ones objtool would make if it checked the site's function
    /// (`STACK_FRAME_NON_STANDARD`: the real rows there are undefined), not the object's.
    pub rows_if_checked: bool,
}

impl SiteUnwind {
    /// The fact for one variant at one offset, if it was checked.
    pub fn at(&self, replacement: Option<usize>, offset: u64) -> Option<&UnwindPoint> {
        self.points
            .iter()
            .find(|p| p.replacement == replacement && p.offset == offset)
    }

    /// One variant at one offset inside the site, compactly, for tables and hovers: `unwind ✓` or
    /// `unwind ✗ ra read at rsp+8, is at rsp+24`; `None` when it was not checked.
    pub fn cell(&self, replacement: Option<usize>, offset: u64) -> Option<String> {
        self.points
            .iter()
            .find(|p| p.replacement == replacement && p.offset == offset && !p.after)
            .map(point_text)
    }

    /// [`SiteUnwind::cell`] for the first instruction after the site, entered from that variant.
    pub fn after_cell(&self, replacement: Option<usize>) -> Option<String> {
        self.points
            .iter()
            .find(|p| p.replacement == replacement && p.after)
            .map(point_text)
    }

    /// The site in two words: `unwind breaks` when some point is wrong, `unwind ✓` when every variant instruction
    /// was checked and is right, `None` when it cannot be told.
    pub fn summary(&self) -> Option<&'static str> {
        Some(match self.verdict()?.verdict {
            Verdict::Breaks => "unwind breaks",
            Verdict::StrictOnly => "unwind ✓",
        })
    }

    /// The verdict on the site: `breaks` as soon as one point is wrong; `strict-only` (every row right) only when
    /// every variant instruction inside the site was checked; `None` otherwise (or when nothing was checked).
    pub fn verdict(&self) -> Option<UnwindVerdict> {
        let mismatches: Vec<Mismatch> = self
            .points
            .iter()
            .filter_map(|p| p.mismatch.clone())
            .collect();
        let checked = self.points.iter().filter(|p| !p.after).count();
        let verdict = match (mismatches.is_empty(), self.unknown) {
            (false, _) => Verdict::Breaks,
            (true, 0) if checked > 0 => Verdict::StrictOnly,
            _ => return None,
        };
        Some(UnwindVerdict {
            verdict,
            checked,
            mismatches,
        })
    }
}

fn point_text(p: &UnwindPoint) -> String {
    match &p.mismatch {
        None => "unwind ✓".into(),
        Some(m) => format!("unwind ✗ {}", m.compact),
    }
}

/// Where a site's variants come from: the original group whose slots give the ORC rows, and each replacement
/// group with its number (1-based, `.altinstructions` order).
#[derive(Debug, Clone, Copy)]
pub struct SiteGroups<'a> {
    /// The original group (the one the original's instructions belong to).
    pub original: usize,
    /// (group, number) of every replacement.
    pub replacements: &'a [(usize, usize)],
}

/// The state a node leaves behind when it falls through: its entry state with its stack operations applied.
/// `None` when its state is unknown, an operation fails, or it does not fall through.
fn state_after(p: &Program, w: &WalkResult, id: NodeId, stackval: bool) -> Option<CfiState> {
    let n = &p.nodes[id as usize];
    if matches!(
        n.insn.kind,
        InsnKind::JumpUnconditional
            | InsnKind::JumpDynamic
            | InsnKind::Return
            | InsnKind::ContextSwitch
            | InsnKind::Bug
    ) {
        return None;
    }
    let mut s = w.interner.get(w.cfi[id as usize]?).clone();
    let cx = OpContext {
        in_func: p.insn_func(id).is_some(),
        next_has_hint: false,
        stackval,
    };
    for op in p.ops(id).into_iter().flat_map(Ops::iter) {
        apply_op(&mut s, &op, cx).ok()?;
    }
    Some(s)
}

/// The unwind facts of one site. The ORC rows in effect come from `rows` (the walk the table was generated from:
/// the site original's slots, the instruction before the site, the one after it); each variant's own states from
/// `states` (the same walk, or one that also went where objtool does not, for sites objtool never checks).
/// `stackval` is [`crate::Options::frame_pointer`].
pub fn site_unwind(
    p: &Program,
    states: &WalkResult,
    rows: &WalkResult,
    site: SiteGroups<'_>,
    stackval: bool,
) -> SiteUnwind {
    let state = |w: &'_ WalkResult, id: NodeId| -> Option<CfiState> {
        w.cfi[id as usize].map(|c| w.interner.get(c).clone())
    };
    let entry = |s: Option<&CfiState>| s.and_then(|s| entry_for(Some(s), p.era).ok());
    let Some(orig) = p.groups.get(site.original) else {
        return SiteUnwind::default();
    };
    let slots = &rows.slots[orig.slots];
    // The row in effect at each offset: the last filled slot at or before it, else the row of the instruction
    // before the site.
    let before = p
        .prev_insn_same_sec(orig.first)
        .and_then(|id| entry(state(rows, id).as_ref()))
        .unwrap_or_else(|| OrcEntry::zero(p.era));
    let mut in_effect = Vec::with_capacity(slots.len());
    let mut current = before;
    for s in slots {
        if let Some(e) = s.and_then(|id| entry(Some(rows.interner.get(id)))) {
            current = e;
        }
        in_effect.push(current);
    }
    // The first instruction after the site has its own row.
    let next = orig.last.and_then(|l| p.next_insn_same_sec(l));
    let after_row = next.and_then(|n| entry(state(rows, n).as_ref()));
    let mut out = SiteUnwind::default();
    let variants = std::iter::once((site.original, None))
        .chain(site.replacements.iter().map(|&(g, n)| (g, Some(n))));
    for (g, replacement) in variants {
        let Some(group) = p.groups.get(g) else {
            continue;
        };
        // The variant's instructions by offset: its real ones, and the padding NOP a short replacement is patched
        // in with (it runs, at the offset right after the replacement's bytes).
        let mut at: Vec<(u64, NodeId)> = Vec::new();
        let base = p.nodes[group.first as usize].insn.offset();
        let mut end = 0;
        if let Some(last) = group.last {
            for id in group.first..=last {
                let n = &p.nodes[id as usize];
                if !n.synthetic {
                    at.push((n.insn.offset().wrapping_sub(base), id));
                    end = n.insn.end().wrapping_sub(base);
                }
            }
        }
        if let Some(nop) = group.nop {
            at.push((end, nop));
        }
        for &(offset, id) in &at {
            let Some(row) = in_effect.get(offset as usize) else {
                continue;
            };
            let Some(own) = state(states, id) else {
                out.unknown += 1;
                continue;
            };
            let Some(e) = entry(Some(&own)) else {
                continue;
            };
            out.points
                .push(point(replacement, offset, false, row, &own, &e));
        }
        // The first instruction after the site, entered with what the variant's last instruction leaves.
        let Some(row) = after_row else { continue };
        let Some(&(_, last)) = at.last() else {
            continue;
        };
        let leaves = if p.nodes[last as usize].synthetic {
            state(states, last)
        } else {
            state_after(p, states, last, stackval)
        };
        if let Some((own, e)) = leaves
            .and_then(|s| Some((entry(Some(&s))?, s)))
            .map(|(e, s)| (s, e))
        {
            out.points
                .push(point(replacement, slots.len() as u64, true, &row, &own, &e));
        }
    }
    out
}

/// The fact for one variant at one point: the row in effect `row` against the variant's own state `own`.
///
/// Rows are compared by what an unwind reads, not bit for bit: a row that leaves the caller's `%rbp` in `%rbp`
/// (`bp_reg` undefined) is right for a variant that has saved `%rbp` but not changed it (the CFA is not
/// rbp-based, no SP-derived value was moved into it, no DRAP): the value there is still the caller's.
fn point(
    replacement: Option<usize>,
    offset: u64,
    after: bool,
    row: &OrcEntry,
    state: &CfiState,
    own: &OrcEntry,
) -> UnwindPoint {
    let bp = i32::from(crate::decode::reg::BP);
    let rbp_untouched = state.cfa.base != bp
        && state.vals[bp as usize].base == crate::cfi::UNDEFINED
        && !state.drap;
    let mut read = *row;
    if row.bp_reg == orc_reg::UNDEFINED && own.bp_reg == orc_reg::PREV_SP && rbp_untouched {
        read.bp_reg = own.bp_reg;
        read.bp_offset = own.bp_offset;
    }
    UnwindPoint {
        replacement,
        offset,
        after,
        mismatch: (read != *own).then(|| Mismatch {
            replacement,
            offset,
            in_effect: words(row),
            own: words(own),
            what: what_differs(&read, own),
            compact: compact_what(&read, own),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(sp: u8, off: i16) -> OrcEntry {
        OrcEntry {
            sp_offset: off,
            bp_offset: 0,
            sp_reg: sp,
            bp_reg: orc_reg::UNDEFINED,
            ty: OrcType::Call,
            signal: false,
            end: false,
        }
    }

    #[test]
    fn what_an_unwind_gets_wrong_in_words() {
        assert_eq!(
            what_differs(&call(orc_reg::SP, 8), &call(orc_reg::SP, 24)),
            "ORC says the return address is at rsp+0, it is at rsp+16"
        );
        let mut fp = call(orc_reg::BP, 16);
        fp.bp_reg = orc_reg::PREV_SP;
        fp.bp_offset = -16;
        assert_eq!(
            what_differs(&call(orc_reg::BP, 16), &fp),
            "ORC says the caller's rbp is still in %rbp, it is at CFA-16"
        );
        assert_eq!(words(&fp), "call CFA=rbp+16 rbp at CFA-16");
        assert_eq!(
            compact_what(&call(orc_reg::SP, 8), &call(orc_reg::SP, 24)),
            "ra read at rsp+0, is at rsp+16"
        );
    }

    /// A variant at rsp+16 that saved `%rbp` (a push) but did not change it.
    fn pushed_rbp() -> CfiState {
        let mut s = CfiState::func_entry(crate::cfi::HintType::Call);
        s.cfa.offset = 16;
        s.stack_size = 16;
        s.regs[crate::decode::reg::BP as usize] = crate::cfi::CfiReg {
            base: crate::cfi::CFA,
            offset: -16,
        };
        s
    }

    #[test]
    fn a_row_that_leaves_rbp_in_place_is_right_while_rbp_is_unchanged() {
        let state = pushed_rbp();
        let mut own = call(orc_reg::SP, 16);
        own.bp_reg = orc_reg::PREV_SP;
        own.bp_offset = -16;
        // The row in effect says "rbp still in %rbp": right, %rbp has only been pushed.
        let p = point(None, 1, false, &call(orc_reg::SP, 16), &state, &own);
        assert_eq!(p.mismatch, None);
        // Once %rbp is the CFA base (mov %rsp, %rbp), it no longer holds the caller's value.
        let mut framed = state.clone();
        framed.cfa.base = i32::from(crate::decode::reg::BP);
        let p = point(None, 1, false, &call(orc_reg::SP, 16), &framed, &own);
        assert!(p
            .mismatch
            .is_some_and(|m| m.compact == "caller's rbp read still in %rbp, is at CFA-16"));
        // The other way round (the row reads CFA-16 where nothing of rbp was saved) is always wrong.
        let plain = CfiState::func_entry(crate::cfi::HintType::Call);
        let p = point(Some(1), 0, false, &own, &plain, &call(orc_reg::SP, 16));
        assert!(p.mismatch.is_some());
    }
}
