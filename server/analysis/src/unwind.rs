//! Unwind verdicts for alternative sites: after the kernel patches a variant in, is the ORC row in effect at each of
//! its instructions the one that variant's own stack state calls for?
//!
//! The kernel keeps ONE ORC table for a site's address range, made from the site's shared per-offset slots (the
//! state of whichever variant filled each slot first, objtool's `orc_create`); the unwinder reads only that row and
//! the registers. So an unwind from inside a patched-in variant is right exactly when the row in effect at that
//! offset equals the row the variant's own state produces: same CFA rule (so the return address is read where it
//! is), same rule for the caller's `%rbp`, same frame type. A stack layout conflict whose variants all meet that is
//! *strict-only* (objtool compares whole states: stack size below an rbp-based CFA, a callee-saved register other
//! than rbp, …); one where some variant does not *breaks* stack traces taken there.
//!
//! *Invariant:* a pure stage after [`crate::orc`]: it reads the walk's states and slots and objtool's ORC encoding
//! ([`crate::orc::entry_for`]); it never re-walks or changes a verdict of objtool's.

use crate::cfi::CfiState;
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
}

/// The unwind verdict on one alternative site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnwindVerdict {
    /// The verdict.
    pub verdict: Verdict,
    /// Variant instructions checked (offsets inside the site where a variant has an instruction its walk reached).
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

/// The verdict on the site whose shared slot array is `slots_id`; `number(g)` names a replacement group's number
/// (`None` for the original). `None` when it cannot be told: no mismatch found, but some variant instruction was
/// never reached by the walk (objtool stops a path at its first warning), so its state is unknown.
pub fn site_verdict(
    p: &Program,
    w: &WalkResult,
    slots_id: usize,
    number: impl Fn(usize) -> Option<usize>,
) -> Option<UnwindVerdict> {
    let state = |id: NodeId| -> Option<&CfiState> { w.cfi[id as usize].map(|c| w.interner.get(c)) };
    let slots = &w.slots[slots_id];
    let orig = p.groups.get(slots_id)?;
    // The row in effect at each offset: the last filled slot at or before it, else the row of the instruction
    // before the site.
    let before = p
        .prev_insn_same_sec(orig.first)
        .and_then(&state)
        .and_then(|s| entry_for(Some(s), p.era).ok())
        .unwrap_or_else(|| OrcEntry::zero(p.era));
    let mut in_effect = Vec::with_capacity(slots.len());
    let mut current = before;
    for s in slots {
        if let Some(id) = s {
            if let Ok(e) = entry_for(Some(w.interner.get(*id)), p.era) {
                current = e;
            }
        }
        in_effect.push(current);
    }
    let mut checked = 0;
    let mut unknown = 0;
    let mut mismatches = Vec::new();
    for (g, group) in p.groups.iter().enumerate() {
        if group.slots != slots_id {
            continue;
        }
        let replacement = group.orig_group.and(number(g));
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
        for (offset, id) in at {
            let Some(row) = in_effect.get(offset as usize) else {
                continue;
            };
            // objtool's walk stops a path at its first warning: what it never reached has no known state.
            let Some(s) = state(id) else {
                unknown += 1;
                continue;
            };
            let Ok(own) = entry_for(Some(s), p.era) else {
                continue;
            };
            checked += 1;
            if own != *row {
                mismatches.push(Mismatch {
                    replacement,
                    offset,
                    in_effect: words(row),
                    own: words(&own),
                    what: what_differs(row, &own),
                });
            }
        }
    }
    // A mismatch is a certain break; "strict-only" needs every variant instruction's state.
    let verdict = match (mismatches.is_empty(), unknown) {
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
    }
}
