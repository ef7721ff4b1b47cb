//! ORC stage: per-instruction CFI (and each alternative site's filled slots) → ORC rows, as objtool's `orc_create`,
//! and the text of `objtool --dump=orc` in both eras' formats; also reads `.orc_unwind` already in an object.
//!
//! Rows are generated per text section in instruction order, deduplicated against the previous row, with a
//! terminator at the section end; inside an alternative site only the filled slots of the shared array count.

use crate::cfi::{CfiId, CfiState, HintType, BP_INDIRECT, CFA, SP_INDIRECT, UNDEFINED};
use crate::decode::reg;
use crate::flow::{NodeId, Program};
use crate::object::{Object, SymKind};
use crate::options::Era;
use crate::validate::WalkResult;
use serde::Serialize;

/// ORC register numbers.
pub mod orc_reg {
    /// Undefined.
    pub const UNDEFINED: u8 = 0;
    /// The previous frame's SP (the CFA).
    pub const PREV_SP: u8 = 1;
    /// `%rdx`.
    pub const DX: u8 = 2;
    /// `%rdi`.
    pub const DI: u8 = 3;
    /// `%rbp`.
    pub const BP: u8 = 4;
    /// `%rsp`.
    pub const SP: u8 = 5;
    /// `%r10`.
    pub const R10: u8 = 6;
    /// `%r13`.
    pub const R13: u8 = 7;
    /// `[%rbp+off]`.
    pub const BP_INDIRECT: u8 = 8;
    /// `[%rsp]`.
    pub const SP_INDIRECT: u8 = 9;
}

/// ORC entry type, era-independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum OrcType {
    /// No information.
    Undefined,
    /// Last frame.
    EndOfStack,
    /// Call frame.
    Call,
    /// `pt_regs`.
    Regs,
    /// Partial `pt_regs`.
    RegsPartial,
}

/// One ORC entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct OrcEntry {
    /// CFA offset.
    pub sp_offset: i16,
    /// Offset of the saved `%rbp`.
    pub bp_offset: i16,
    /// CFA base register.
    pub sp_reg: u8,
    /// Saved `%rbp` base.
    pub bp_reg: u8,
    /// Type.
    pub ty: OrcType,
    /// Signal frame.
    pub signal: bool,
    /// ≤6.3 `end`.
    pub end: bool,
}

impl OrcEntry {
    /// The all-zero entry of the era (what objtool's `prev_orc` starts as).
    pub fn zero(era: Era) -> Self {
        OrcEntry {
            sp_offset: 0,
            bp_offset: 0,
            sp_reg: 0,
            bp_reg: 0,
            ty: match era {
                Era::V6_12 => OrcType::Undefined,
                Era::V6_1 => OrcType::Call,
            },
            signal: false,
            end: false,
        }
    }
}

/// One ORC row: an entry that applies from (section, offset) on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrcRow {
    /// Section index.
    pub section: usize,
    /// Offset in the section.
    pub offset: u64,
    /// The entry.
    pub entry: OrcEntry,
}

/// A state ORC cannot express (objtool's ORC errors; no ORC is written then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrcError {
    /// The instruction it is charged to.
    pub node: NodeId,
    /// objtool's message.
    pub message: String,
}

/// objtool's `init_orc_entry`.
pub fn entry_for(cfi: Option<&CfiState>, era: Era) -> Result<OrcEntry, String> {
    let mut e = OrcEntry::zero(era);
    let Some(cfi) = cfi else {
        return Ok(e);
    };
    if era == Era::V6_1 {
        e.end = cfi.end;
        if cfi.cfa.base == UNDEFINED {
            return Ok(e);
        }
    }
    if era == Era::V6_12 {
        match cfi.ty {
            HintType::Undefined => return Ok(e),
            HintType::EndOfStack => {
                e.ty = OrcType::EndOfStack;
                return Ok(e);
            }
            HintType::Call => e.ty = OrcType::Call,
            HintType::Regs => e.ty = OrcType::Regs,
            HintType::RegsPartial => e.ty = OrcType::RegsPartial,
        }
        e.signal = cfi.signal;
    }
    e.sp_reg = match cfi.cfa.base {
        b if b == i32::from(reg::SP) => orc_reg::SP,
        SP_INDIRECT => orc_reg::SP_INDIRECT,
        b if b == i32::from(reg::BP) => orc_reg::BP,
        BP_INDIRECT => orc_reg::BP_INDIRECT,
        b if b == i32::from(reg::R10) => orc_reg::R10,
        b if b == i32::from(reg::R13) => orc_reg::R13,
        b if b == i32::from(reg::DI) => orc_reg::DI,
        b if b == i32::from(reg::DX) => orc_reg::DX,
        b => return Err(format!("unknown CFA base reg {b}")),
    };
    let bp = cfi.regs[reg::BP as usize];
    e.bp_reg = match bp.base {
        UNDEFINED => orc_reg::UNDEFINED,
        CFA => orc_reg::PREV_SP,
        b if b == i32::from(reg::BP) => orc_reg::BP,
        b => return Err(format!("unknown BP base reg {b}")),
    };
    e.sp_offset = cfi.cfa.offset as i16;
    e.bp_offset = bp.offset as i16;
    if era == Era::V6_1 {
        e.ty = match cfi.ty {
            HintType::Regs => OrcType::Regs,
            HintType::RegsPartial => OrcType::RegsPartial,
            _ => OrcType::Call,
        };
    }
    Ok(e)
}

/// objtool's `orc_create`: the rows for every text section.
pub fn generate(p: &Program, w: &WalkResult) -> Result<Vec<OrcRow>, OrcError> {
    let era = p.era;
    let mut rows = Vec::new();
    // Entries per interned state: a few hundred states serve hundreds of thousands of instructions.
    let mut entries: Vec<Option<OrcEntry>> = vec![None; w.interner.len()];
    let zero = OrcEntry::zero(era);
    let mut entry = |c: Option<CfiId>, node: NodeId| -> Result<OrcEntry, OrcError> {
        let Some(c) = c else { return Ok(zero) };
        if let Some(Some(e)) = entries.get(c.index()) {
            return Ok(*e);
        }
        let e = entry_for(Some(w.interner.get(c)), era)
            .map_err(|message| OrcError { node, message })?;
        if let Some(slot) = entries.get_mut(c.index()) {
            *slot = Some(e);
        }
        Ok(e)
    };
    for sec in &p.obj.sections {
        if !p.text[sec.index] {
            continue;
        }
        let mut prev = OrcEntry::zero(era);
        let mut empty = true;
        let range = p.sec_ranges[sec.index].clone();
        let mut id = range.start;
        while id < range.end {
            let n = &p.nodes[id as usize];
            let Some(g) = n.alt_group.get() else {
                let e = entry(w.cfi[id as usize], id)?;
                if e != prev {
                    rows.push(OrcRow {
                        section: sec.index,
                        offset: n.insn.offset(),
                        entry: e,
                    });
                    prev = e;
                    empty = false;
                }
                id += 1;
                continue;
            };
            let grp = &p.groups[g];
            let last = grp.last.unwrap_or(grp.first);
            let span = (p.nodes[last as usize].insn.end()
                - p.nodes[grp.first as usize].insn.offset()) as usize;
            let slots = &w.slots[grp.slots];
            for (i, slot) in slots.iter().enumerate().take(span) {
                let Some(c) = slot else { continue };
                let e = entry(Some(*c), id)?;
                if e == prev {
                    continue;
                }
                rows.push(OrcRow {
                    section: sec.index,
                    offset: n.insn.offset() + i as u64,
                    entry: e,
                });
                prev = e;
                empty = false;
            }
            id = last + 1;
        }
        if !empty {
            rows.push(OrcRow {
                section: sec.index,
                offset: sec.size,
                entry: OrcEntry::zero(era),
            });
        }
    }
    Ok(rows)
}

fn reg_text(r: u8, off: i16, era: Era) -> String {
    let name = match r {
        orc_reg::PREV_SP => "prevsp",
        orc_reg::DX => "dx",
        orc_reg::DI => "di",
        orc_reg::BP => "bp",
        orc_reg::SP => "sp",
        orc_reg::R10 => "r10",
        orc_reg::R13 => "r13",
        orc_reg::BP_INDIRECT => return format!("(bp{off:+})"),
        orc_reg::SP_INDIRECT => {
            return match era {
                Era::V6_12 | Era::V6_1 => format!("(sp){off:+}"),
            }
        }
        orc_reg::UNDEFINED => return "(und)".into(),
        _ => "?",
    };
    format!("{name}{off:+}")
}

fn type_text(t: OrcType, era: Era) -> &'static str {
    match (era, t) {
        (Era::V6_12, OrcType::Undefined) => "(und)",
        (Era::V6_12, OrcType::EndOfStack) => "end",
        (_, OrcType::Call) => "call",
        (_, OrcType::Regs) => "regs",
        (_, OrcType::RegsPartial) => "regs (partial)",
        (Era::V6_1, _) => "?",
    }
}

/// Output formats of `--dump=orc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    /// 6.4+: `.text+1a:type:call sp:bp+16 bp:prevsp-16 signal:0`.
    Modern,
    /// ≤6.2: `.text+1a: sp:bp+16 bp:prevsp-16 type:call end:0`.
    Legacy,
}

/// The entry part of a dump line (after `loc:`).
pub fn entry_text(e: &OrcEntry, format: DumpFormat) -> String {
    match format {
        DumpFormat::Modern => format!(
            "type:{} sp:{} bp:{} signal:{}",
            type_text(e.ty, Era::V6_12),
            reg_text(e.sp_reg, e.sp_offset, Era::V6_12),
            reg_text(e.bp_reg, e.bp_offset, Era::V6_12),
            u8::from(e.signal)
        ),
        DumpFormat::Legacy => format!(
            " sp:{} bp:{} type:{} end:{}",
            reg_text(e.sp_reg, e.sp_offset, Era::V6_1),
            reg_text(e.bp_reg, e.bp_offset, Era::V6_1),
            type_text(e.ty, Era::V6_1),
            u8::from(e.end)
        ),
    }
}

/// One `--dump=orc` line for a row of a relocatable object: `<section>+<hex>:<entry>`.
pub fn dump_line(obj: &Object, row: &OrcRow, format: DumpFormat) -> String {
    let mut out = String::new();
    push_line(
        &mut out,
        &obj.sections[row.section].name,
        row.offset,
        &entry_text(&row.entry, format),
    );
    out
}

fn push_line(out: &mut String, section: &str, offset: u64, entry: &str) {
    use std::fmt::Write;
    out.push_str(section);
    let _ = write!(out, "+{offset:x}:");
    out.push_str(entry);
}

/// Writes many [`dump_line`] lines: an object has hundreds of thousands of rows but a few dozen distinct entries,
/// whose text is made once.
pub struct Dumper<'n> {
    names: &'n [String],
    format: DumpFormat,
    texts: std::collections::HashMap<OrcEntry, String>,
}

impl<'n> Dumper<'n> {
    /// A dumper for rows of an object whose section names (by index) are `names`.
    pub fn new(names: &'n [String], format: DumpFormat) -> Self {
        Dumper {
            names,
            format,
            texts: std::collections::HashMap::new(),
        }
    }

    /// Appends `row`'s line and a newline to `out` (a row of an unknown section is named `?`).
    pub fn push(&mut self, out: &mut String, row: &OrcRow) {
        let format = self.format;
        let text = self
            .texts
            .entry(row.entry)
            .or_insert_with(|| entry_text(&row.entry, format));
        let name = self.names.get(row.section).map_or("?", String::as_str);
        push_line(out, name, row.offset, text);
        out.push('\n');
    }
}

/// Reads `.orc_unwind` / `.orc_unwind_ip` already in an object (objtool ran on it), in the given era's layout.
pub fn read_existing(obj: &Object, era: Era) -> Option<Vec<OrcRow>> {
    let orc = obj.section_by_name(".orc_unwind")?;
    let ip = obj.section_by_name(".orc_unwind_ip")?;
    // Rows that are really in the file: an SHT_NOBITS section has a size but no bytes.
    let n = orc.data.len() / 6;
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let b = orc.data.get(i * 6..i * 6 + 6)?;
        let r = obj.reloc_at(ip.index, (i * 4) as u64)?;
        let sym = &obj.symbols[r.symbol];
        let section = sym.section?;
        let offset = if sym.kind == SymKind::Section {
            r.addend
        } else {
            (sym.value as i64).wrapping_add(r.addend)
        };
        let flags = b[5];
        let (ty, signal, end) = match era {
            Era::V6_12 => (
                match flags & 7 {
                    0 => OrcType::Undefined,
                    1 => OrcType::EndOfStack,
                    2 => OrcType::Call,
                    3 => OrcType::Regs,
                    _ => OrcType::RegsPartial,
                },
                flags & 8 != 0,
                false,
            ),
            Era::V6_1 => (
                match flags & 3 {
                    0 => OrcType::Call,
                    1 => OrcType::Regs,
                    _ => OrcType::RegsPartial,
                },
                false,
                flags & 4 != 0,
            ),
        };
        rows.push(OrcRow {
            section,
            offset: offset as u64,
            entry: OrcEntry {
                sp_offset: i16::from_le_bytes([b[0], b[1]]),
                bp_offset: i16::from_le_bytes([b[2], b[3]]),
                sp_reg: b[4] & 0xf,
                bp_reg: b[4] >> 4,
                ty,
                signal,
                end,
            },
        });
    }
    Some(rows)
}

/// An ORC entry in words: `call frame, CFA=rsp+16, rbp saved at CFA-16`.
pub fn entry_words(e: &OrcEntry) -> String {
    let ty = match e.ty {
        OrcType::Undefined => return "no unwind information (undefined)".into(),
        OrcType::EndOfStack => return "end of stack".into(),
        OrcType::Call => "call frame",
        OrcType::Regs => "pt_regs frame",
        OrcType::RegsPartial => "partial pt_regs (iret) frame",
    };
    let cfa = match e.sp_reg {
        orc_reg::UNDEFINED => "undefined".to_string(),
        orc_reg::SP_INDIRECT => format!("[rsp]{:+}", e.sp_offset),
        orc_reg::BP_INDIRECT => format!("[rbp{:+}]", e.sp_offset),
        r => {
            let name = match r {
                orc_reg::PREV_SP => "prevsp",
                orc_reg::DX => "rdx",
                orc_reg::DI => "rdi",
                orc_reg::BP => "rbp",
                orc_reg::SP => "rsp",
                orc_reg::R10 => "r10",
                orc_reg::R13 => "r13",
                _ => "?",
            };
            format!("{name}{:+}", e.sp_offset)
        }
    };
    let bp = match e.bp_reg {
        orc_reg::UNDEFINED => "rbp not saved".to_string(),
        orc_reg::PREV_SP => format!("rbp saved at CFA{:+}", e.bp_offset),
        orc_reg::BP => format!("rbp saved at [rbp{:+}]", e.bp_offset),
        _ => format!("rbp at {}", reg_text(e.bp_reg, e.bp_offset, Era::V6_12)),
    };
    let mut s = format!("{ty}, CFA={cfa}, {bp}");
    if e.signal {
        s.push_str(", signal frame");
    }
    if e.end {
        s.push_str(", end");
    }
    s
}

/// Compares the `.orc_unwind` rows already in an object (`existing`) with computed ones, by the entry in effect at
/// every address where either table starts a row (so a row split differently but meaning the same is not a
/// difference). One [`crate::findings::FindingKind::OrcMismatch`] per differing address, located by `locate` (e.g.
/// [`crate::ehframe::location_in`] over the analysis), with both entries in objtool's dump format and in words.
pub fn verify(
    existing: &[OrcRow],
    computed: &[OrcRow],
    format: DumpFormat,
    locate: &dyn Fn(usize, u64) -> crate::findings::Location,
) -> Vec<crate::findings::Finding> {
    use crate::findings::{Finding, FindingKind};
    use std::collections::BTreeSet;
    let sorted = |rows: &[OrcRow]| {
        let mut v: Vec<(usize, u64, OrcEntry)> = rows
            .iter()
            .map(|r| (r.section, r.offset, r.entry))
            .collect();
        v.sort_by_key(|&(s, o, _)| (s, o));
        v
    };
    let (a, b) = (sorted(existing), sorted(computed));
    let at = |v: &[(usize, u64, OrcEntry)], s: usize, o: u64| -> Option<OrcEntry> {
        let i = v.partition_point(|&(vs, vo, _)| (vs, vo) <= (s, o));
        let (vs, _, e) = *v.get(i.checked_sub(1)?)?;
        (vs == s).then_some(e)
    };
    let keys: BTreeSet<(usize, u64)> = a.iter().chain(&b).map(|&(s, o, _)| (s, o)).collect();
    let mut out = Vec::new();
    for (s, o) in keys {
        let (x, y) = (at(&a, s, o), at(&b, s, o));
        if x == y {
            continue;
        }
        let text = |e: Option<OrcEntry>| match e {
            Some(e) => format!("{} ({})", entry_text(&e, format).trim(), entry_words(&e)),
            None => "no entry".to_string(),
        };
        let mut f = Finding::new(
            FindingKind::OrcMismatch,
            Some(locate(s, o)),
            "orc entry in the object disagrees with the computed one",
        );
        f.details.push(format!("in the object: {}", text(x)));
        f.details.push(format!("computed:      {}", text(y)));
        out.push(f);
    }
    out
}
