//! Alternative groups: attaches `.altinstructions`, `__jump_table` and `__ex_table` entries to the instructions they
//! describe, as objtool's `add_special_section_alts` does.
//!
//! An alternative site is one original [`AltGroup`] plus one group per replacement, all sharing one slot array (held
//! by the walk, indexed by byte offset from the site start, sized by the original length). A replacement shorter than
//! the original gets a synthetic padding NOP so that the state after its last instruction lands in a slot; flow leaves
//! a replacement at the instruction after the original. Nothing here computes CFI.

use crate::decode::{Insn, InsnKind};
use crate::findings::Finding;
use crate::flow::{Alt, AltKind, Node, NodeId, Program};
use crate::object::reloc_types;
use crate::options::Era;
use crate::special::SpecialKind;

/// One side of an alternative site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AltGroup {
    /// The original group of a replacement; `None` for the original itself.
    pub orig_group: Option<usize>,
    /// First instruction (the padding NOP for an empty replacement).
    pub first: NodeId,
    /// Last real instruction; `None` for an empty replacement.
    pub last: Option<NodeId>,
    /// Padding NOP of a short replacement.
    pub nop: Option<NodeId>,
    /// The slot array this group shares (index into the walk's arrays; the original group's id).
    pub slots: usize,
    /// Length of the slot array (the original's length).
    pub len: usize,
    /// Index of the `.altinstructions` entry (replacements), for naming.
    pub entry: Option<usize>,
}

/// Attaches every special entry of `p.specials`, in order. Fatal problems come back as findings.
pub fn attach_all(p: &mut Program) -> Result<(), Box<Finding>> {
    for k in 0..p.specials.len() {
        let sa = p.specials[k].clone();
        let Some(orig) = p.find_insn(sa.orig.0, sa.orig.1) else {
            let mut f = Finding::new(
                crate::findings::FindingKind::BadObject,
                Some(p.location(sa.orig.0, sa.orig.1)),
                "special: can't find orig instruction",
            );
            f.fatal = true;
            return Err(Box::new(f));
        };
        let is_group = sa.kind == SpecialKind::Alternative;
        let mut new_insn = None;
        if !is_group || sa.new_len > 0 {
            let Some((s, o)) = sa.new else { continue };
            match p.find_insn(s, o) {
                Some(n) => new_insn = Some(n),
                None => {
                    let mut f = Finding::new(
                        crate::findings::FindingKind::BadObject,
                        Some(p.location(s, o)),
                        "special: can't find new instruction",
                    );
                    f.fatal = true;
                    return Err(Box::new(f));
                }
            }
        }
        let kind = match sa.kind {
            SpecialKind::Alternative => {
                if sa.orig_len == 0 {
                    p.warnings.push(Finding::new(
                        crate::findings::FindingKind::BadObject,
                        Some(p.node_location(orig)),
                        "empty alternative entry",
                    ));
                    continue;
                }
                new_insn = Some(handle_group_alt(p, k, orig, new_insn)?);
                AltKind::Replacement(k)
            }
            SpecialKind::JumpLabel => {
                // `--hacks=jump_label`: objtool writes a NOP over the `jmp` of a likely key (`key_addend & 2`)
                // before any jump destination is resolved.
                if p.objtool.hack_jump_label
                    && sa.key_addend & 2 != 0
                    && p.nodes[orig as usize].insn.kind == InsnKind::JumpUnconditional
                {
                    p.nodes[orig as usize].insn.kind = InsnKind::Nop;
                }
                let n = &p.nodes[orig as usize];
                if n.insn.kind != InsnKind::JumpUnconditional && n.insn.kind != InsnKind::Nop {
                    return Err(p.fatal_at(orig, "unsupported instruction at jump label"));
                }
                if n.insn.kind == InsnKind::JumpUnconditional {
                    new_insn = p.next_insn_same_sec(orig);
                }
                AltKind::JumpLabel
            }
            SpecialKind::ExceptionFixup => AltKind::ExceptionFixup,
        };
        let Some(node) = new_insn else { continue };
        p.nodes[orig as usize].ignore_alts |= sa.skip_alt;
        p.add_alt(
            orig,
            Alt {
                node,
                skip_orig: sa.skip_orig,
                kind,
            },
        );
    }
    Ok(())
}

/// objtool's `handle_group_alt`: returns the first node of the replacement (its padding NOP when empty).
fn handle_group_alt(
    p: &mut Program,
    k: usize,
    orig: NodeId,
    new_insn: Option<NodeId>,
) -> Result<NodeId, Box<Finding>> {
    let sa = p.specials[k].clone();
    let orig_end = sa.orig.1 + u64::from(sa.orig_len);
    // Before 6.3 every entry made a fresh original group; 6.3+ reuses the site's group.
    let existing = match p.era {
        Era::V6_12 => p.nodes[orig as usize].alt_group.get(),
        Era::V6_1 => None,
    };
    let orig_group = match existing {
        Some(g) => {
            let grp = &p.groups[g];
            let last = grp.last.unwrap_or(grp.first);
            let have =
                p.nodes[last as usize].insn.end() - p.nodes[grp.first as usize].insn.offset();
            if have != u64::from(sa.orig_len) {
                return Err(p.fatal_at(
                    orig,
                    format!(
                        "weirdly overlapping alternative! {} != {}",
                        have, sa.orig_len
                    ),
                ));
            }
            g
        }
        None => {
            let g = p.groups.len();
            let mut last = orig;
            let mut cur = Some(orig);
            while let Some(n) = cur {
                if p.nodes[n as usize].insn.offset() >= orig_end {
                    break;
                }
                p.nodes[n as usize].alt_group = Some(g).into();
                last = n;
                cur = p.next_insn_same_sec(n);
            }
            p.groups.push(AltGroup {
                orig_group: None,
                first: orig,
                last: Some(last),
                nop: None,
                slots: g,
                len: sa.orig_len as usize,
                entry: None,
            });
            g
        }
    };
    let slots = p.groups[orig_group].slots;
    let new_group = p.groups.len();
    let orig_sym = p.nodes[orig as usize].sym;
    let orig_ignore_alts = p.nodes[orig as usize].ignore_alts;

    let mut nop = None;
    if sa.new_len < sa.orig_len {
        let (nsec, noff) = sa.new.unwrap_or((p.nodes[orig as usize].sec(), 0));
        let nsec = if sa.new.is_some() {
            nsec
        } else {
            p.obj
                .section_by_name(".altinstr_replacement")
                .map_or(nsec, |s| s.index)
        };
        let noff = if sa.new.is_some() { noff } else { 0 };
        let mut node = Node::new_synthetic(
            nsec,
            Insn::new(
                noff + u64::from(sa.new_len),
                sa.orig_len - sa.new_len,
                InsnKind::Nop,
            ),
        );
        node.sym = orig_sym;
        node.alt_group = Some(new_group).into();
        node.ignore = orig_ignore_alts;
        p.nodes.push(node);
        nop = Some((p.nodes.len() - 1) as NodeId);
    }

    let first;
    let mut last_new = None;
    if sa.new_len == 0 {
        first = nop.expect("an empty replacement is shorter than a non-empty original");
    } else {
        let Some(start) = new_insn else {
            return Err(p.fatal_at(orig, "special: can't find new instruction"));
        };
        first = start;
        let (_, new_off) = sa.new.unwrap_or((0, 0));
        let new_end = new_off + u64::from(sa.new_len);
        let mut cur = Some(start);
        while let Some(n) = cur {
            if p.nodes[n as usize].insn.offset() >= new_end {
                break;
            }
            last_new = Some(n);
            {
                let node = &mut p.nodes[n as usize];
                node.ignore = orig_ignore_alts;
                node.sym = orig_sym;
                node.alt_group = Some(new_group).into();
            }
            if let Some(r) = p.insn_reloc(n) {
                if reloc_types::is_pc_relative(r.r_type) && !support_alt_relocation(p, n, new_off) {
                    return Err(p.fatal_at(n, "unsupported relocation in alternatives section"));
                }
            }
            let node = &p.nodes[n as usize];
            if node.insn.is_static_jump()
                && node.insn.immediate != 0
                && node.insn.jump_destination() == new_end as i64
            {
                let orig_last = p.groups[orig_group]
                    .last
                    .unwrap_or(p.groups[orig_group].first);
                match p.next_insn_same_sec(orig_last) {
                    Some(d) => p.nodes[n as usize].jump_dest = Some(d).into(),
                    None => return Err(p.fatal_at(n, "can't find alternative jump destination")),
                }
            }
            cur = p.next_insn_same_sec(n);
        }
        if last_new.is_none() {
            return Err(p.fatal_at(start, "can't find last new alternative instruction"));
        }
    }
    p.groups.push(AltGroup {
        orig_group: Some(orig_group),
        first,
        last: last_new,
        nop,
        slots,
        len: p.groups[orig_group].len,
        entry: Some(k),
    });
    Ok(first)
}

fn support_alt_relocation(p: &Program, n: NodeId, new_off: u64) -> bool {
    match p.era {
        Era::V6_12 => true,
        Era::V6_1 => {
            let node = &p.nodes[n as usize];
            node.insn.offset() == new_off
                && (node.insn.kind == InsnKind::Call
                    || node.insn.is_static_jump()
                    || node.insn.kind == InsnKind::JumpDynamic)
        }
    }
}

/// objtool's `next_insn_to_validate`: the node flow reaches after `n`, leaving replacements at the end of the
/// original.
pub fn next_insn_to_validate(p: &Program, n: NodeId) -> Option<NodeId> {
    if let Some(g) = p.nodes[n as usize].alt_group.get() {
        let grp = &p.groups[g];
        let next_orig = |og: usize| {
            let o = &p.groups[og];
            p.next_insn_same_sec(o.last.unwrap_or(o.first))
        };
        if let Some(nop) = grp.nop {
            if Some(n) == grp.last {
                return Some(nop);
            }
            if n == nop {
                return grp.orig_group.and_then(next_orig);
            }
        }
        if Some(n) == grp.last {
            if let Some(og) = grp.orig_group {
                return next_orig(og);
            }
        }
    }
    p.next_insn_same_sec(n)
}
