//! Special sections: reads `.altinstructions`, `__jump_table`, `__ex_table` and `.discard.unwind_hints` entries into
//! plain data located by (section, offset).
//!
//! Only parsing lives here: every field's position per kernel era, the `.altinstructions` stride detected from its
//! relocations, and objtool's feature special cases. Attaching entries to instructions is the flow stage's job.

use crate::object::{Object, Reloc, SymKind};
use crate::options::Era;

/// `X86_FEATURE_POPCNT` (4*32+23).
pub const FEATURE_POPCNT: u16 = 4 * 32 + 23;
/// `X86_FEATURE_SMAP` (9*32+20).
pub const FEATURE_SMAP: u16 = 9 * 32 + 20;
/// `ALT_FLAG_NOT` in 6.3+ `ft_flags`.
pub const ALT_FLAG_NOT: u32 = 1 << 16;
/// `ALTINSTR_FLAG_INV` in the 5.13–6.2 u16 feature.
pub const ALT_NOT_LEGACY: u16 = 1 << 15;

/// A special section that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecialError {
    /// The section size does not fit the entry size (objtool's wording).
    #[error("{section} size not a multiple of {size}")]
    BadSize {
        /// Section name.
        section: String,
        /// Expected entry size.
        size: usize,
    },
    /// The `.altinstructions` layout matches none of 12, 13 or 14 bytes.
    #[error(".altinstructions: can't recognise the entry layout (size {size}, relocation offsets fit no 12/13/14-byte stride)")]
    UnknownLayout {
        /// Section size.
        size: u64,
    },
    /// An entry lacks a relocation objtool requires.
    #[error("{what}")]
    MissingReloc {
        /// objtool's message (`can't find orig reloc`, …).
        what: String,
        /// Section index of the entry.
        section: usize,
        /// Offset of the field.
        offset: u64,
    },
}

/// What kind of special entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SpecialKind {
    /// An `.altinstructions` entry (an alternative group).
    Alternative,
    /// A `__jump_table` entry (static branch).
    JumpLabel,
    /// An `__ex_table` entry (exception fixup).
    ExceptionFixup,
}

/// One entry of a special section, as objtool's `struct special_alt`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpecialAlt {
    /// Kind.
    pub kind: SpecialKind,
    /// Index of the entry in its section.
    pub entry: usize,
    /// Original code: (section, offset).
    pub orig: (usize, u64),
    /// Replacement / target / fixup: (section, offset); `None` for an empty replacement.
    pub new: Option<(usize, u64)>,
    /// Length of the original (alternatives).
    pub orig_len: u8,
    /// Length of the replacement (alternatives).
    pub new_len: u8,
    /// Full feature word (`ft_flags` in 6.3+, the u16 otherwise).
    pub ft_flags: u32,
    /// The u16 objtool reads at +8.
    pub feature: u16,
    /// objtool does not follow the original path (POPCNT; SMAP with `--uaccess`).
    pub skip_orig: bool,
    /// objtool ignores the replacements of this site (SMAP without `--uaccess`).
    pub skip_alt: bool,
    /// Jump label key addend (bit 0: default branch, bit 1: NOP-able).
    pub key_addend: i64,
}

impl SpecialAlt {
    /// The feature number without flags.
    pub fn cpuid(&self) -> u16 {
        (self.ft_flags & 0x7fff) as u16
    }
    /// `ALT_NOT`: the replacement applies when the feature is absent.
    pub fn is_not(&self, era: Era) -> bool {
        match era {
            Era::V6_12 => self.ft_flags & ALT_FLAG_NOT != 0,
            Era::V6_1 => self.feature & ALT_NOT_LEGACY != 0,
        }
    }
}

fn reloc_to_sec_off(obj: &Object, r: &Reloc) -> Option<(usize, u64)> {
    let (sec, off) = obj.reloc_target(r)?;
    Some((sec, off as u64))
}

fn u8_at(data: &[u8], off: usize) -> u8 {
    data.get(off).copied().unwrap_or(0)
}
fn u16_at(data: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([u8_at(data, off), u8_at(data, off + 1)])
}
fn u32_at(data: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([
        u8_at(data, off),
        u8_at(data, off + 1),
        u8_at(data, off + 2),
        u8_at(data, off + 3),
    ])
}

/// Detects the `.altinstructions` entry size from the section size and its relocation offsets.
pub fn detect_alt_entry_size(obj: &Object, section: usize) -> Result<usize, SpecialError> {
    let sec = &obj.sections[section];
    let relocs = obj.relocs(section);
    // One pass over the (offset-sorted) relocations per stride: every one at +0 or +4 of an entry, and every
    // entry's +0 covered.
    let fits = |stride: u64| {
        if !sec.size.is_multiple_of(stride) {
            return false;
        }
        let mut next_entry = 0u64;
        for r in relocs {
            match r.offset % stride {
                0 => {
                    if r.offset < sec.size && r.offset == next_entry.wrapping_mul(stride) {
                        next_entry += 1;
                    }
                }
                4 => {}
                _ => return false,
            }
        }
        next_entry == sec.size / stride
    };
    [14u64, 12, 13]
        .into_iter()
        .find(|&s| fits(s))
        .map(|s| s as usize)
        .ok_or(SpecialError::UnknownLayout { size: sec.size })
}

/// The era an object's `.altinstructions` layout implies, if it has one.
pub fn era_from_layout(obj: &Object) -> Option<Era> {
    let sec = obj.section_by_name(".altinstructions")?;
    Some(era_of_entry_size(
        detect_alt_entry_size(obj, sec.index).ok()?,
    ))
}

/// The era an object's own sections imply, and which section told: the `.altinstructions` layout, the encoding
/// of an embedded `.orc_unwind` (objtool already ran), the unwind-hint encodings, a 6.14+ `.discard.annotate_insn`.
/// Only unambiguous evidence counts; `None` when nothing tells.
pub fn era_signal(obj: &Object) -> Option<(Era, &'static str)> {
    if let Some(era) = era_from_layout(obj) {
        return Some((era, "the .altinstructions entry size"));
    }
    if obj.section_by_name(".discard.annotate_insn").is_some() {
        return Some((Era::V6_12, ".discard.annotate_insn (6.14+)"));
    }
    if let Some(era) = era_from_orc(obj) {
        return Some((era, "the encoding of .orc_unwind"));
    }
    era_from_hints(obj).map(|e| (e, "the unwind-hint encodings"))
}

/// ORC rows: the CALL type (by far the most common) is 0 before 6.4 and 2 from 6.4 on. A row with a defined CFA
/// base and type 0 is a 6.1 CALL row (6.4+'s UNDEFINED rows have no base); type 2 is 6.4+'s CALL or 6.1's rarer
/// REGS_PARTIAL, so the majority decides.
fn era_from_orc(obj: &Object) -> Option<Era> {
    let sec = obj.section_by_name(".orc_unwind")?;
    let (mut old, mut new) = (0usize, 0usize);
    for row in sec.data.chunks_exact(6) {
        let sp_reg = row[4] & 0xf;
        if sp_reg == 0 {
            continue;
        }
        match row[5] & 7 {
            0 => old += 1,
            2 => new += 1,
            _ => {}
        }
    }
    match old.cmp(&new) {
        std::cmp::Ordering::Greater => Some(Era::V6_1),
        std::cmp::Ordering::Less => Some(Era::V6_12),
        std::cmp::Ordering::Equal => None,
    }
}

/// Unwind hints: each hint whose (type, CFA base, byte 8) exists in one numbering only votes; disagreeing votes
/// tell nothing.
fn era_from_hints(obj: &Object) -> Option<Era> {
    let sec = obj.section_by_name(".discard.unwind_hints")?;
    let (mut old, mut new) = (false, false);
    for h in sec.data.chunks_exact(12) {
        let (sp_reg, ty, byte8) = (h[6], h[7], h[8]);
        match (ty, sp_reg != 0, byte8) {
            // 6.1: UNWIND_HINT_EMPTY (CALL, no base, end=1), CALL or REGS with a base, ENTRY (4, no base),
            // SAVE (5, no base).
            (0, false, 1) | (0 | 1, true, _) | (4 | 5, false, _) => old = true,
            // 6.4+: UNDEFINED (0, no base, signal 0), END_OF_STACK (1, no base), FUNC (5, with base), RESTORE (7).
            (0, false, 0) | (1, false, _) | (5, true, _) | (7, _, _) => new = true,
            _ => {}
        }
    }
    match (old, new) {
        (true, false) => Some(Era::V6_1),
        (false, true) => Some(Era::V6_12),
        _ => None,
    }
}

/// The era an `.altinstructions` entry size implies: 12 and 13 bytes are 6.1's (and older) layouts.
pub fn era_of_entry_size(size: usize) -> Era {
    match size {
        12 | 13 => Era::V6_1,
        _ => Era::V6_12,
    }
}

/// Reads every special entry, in objtool's order: `.altinstructions`, then `__jump_table`, then `__ex_table`.
/// `alt_entry_size` forces the `.altinstructions` stride (objtool's fixed size); `None` detects it.
pub fn read_special_alts(
    obj: &Object,
    era: Era,
    alt_entry_size: Option<usize>,
    uaccess: bool,
) -> Result<Vec<SpecialAlt>, SpecialError> {
    let mut out = Vec::new();
    if let Some(sec) = obj.section_by_name(".altinstructions") {
        let size = match alt_entry_size {
            Some(s) => s,
            None => detect_alt_entry_size(obj, sec.index)?,
        };
        if sec.size % size as u64 != 0 {
            return Err(SpecialError::BadSize {
                section: sec.name.clone(),
                size,
            });
        }
        let (ft_off, orig_len_off, new_len_off) = match size {
            14 => (8, 12, 13),
            _ => (8, 10, 11),
        };
        let mut group_start = out.len();
        for idx in 0..(sec.size as usize / size) {
            let base = idx * size;
            let orig_len = u8_at(sec.data, base + orig_len_off);
            let new_len = u8_at(sec.data, base + new_len_off);
            let feature = u16_at(sec.data, base + ft_off);
            let ft_flags = if size == 14 {
                u32_at(sec.data, base + ft_off)
            } else {
                u32::from(feature)
            };
            let orig = obj
                .reloc_at(sec.index, base as u64)
                .and_then(|r| reloc_to_sec_off(obj, r))
                .ok_or_else(|| missing("can't find orig reloc", sec.index, base as u64))?;
            let new = if new_len > 0 {
                Some(
                    obj.reloc_at(sec.index, base as u64 + 4)
                        .and_then(|r| reloc_to_sec_off(obj, r))
                        .ok_or_else(|| {
                            missing("can't find new reloc", sec.index, base as u64 + 4)
                        })?,
                )
            } else {
                None
            };
            let mut alt = SpecialAlt {
                kind: SpecialKind::Alternative,
                entry: idx,
                orig,
                new,
                orig_len,
                new_len,
                ft_flags,
                feature,
                skip_orig: false,
                skip_alt: false,
                key_addend: 0,
            };
            match feature {
                FEATURE_SMAP if uaccess => alt.skip_orig = true,
                FEATURE_SMAP => alt.skip_alt = true,
                FEATURE_POPCNT => alt.skip_orig = true,
                _ => {}
            }
            // Nested ALTERNATIVE_n(): consecutive entries for one site all take the largest orig_len.
            if era == Era::V6_12
                && out.len() > group_start
                && out[group_start..].first().map(|g: &SpecialAlt| g.orig) == Some(orig)
            {
                let len = out[group_start..]
                    .iter()
                    .map(|a| a.orig_len)
                    .max()
                    .unwrap_or(0)
                    .max(orig_len);
                for a in &mut out[group_start..] {
                    a.orig_len = len;
                }
                alt.orig_len = len;
            } else {
                group_start = out.len();
            }
            out.push(alt);
        }
    }
    for (name, kind, size) in [
        ("__jump_table", SpecialKind::JumpLabel, 16u64),
        ("__ex_table", SpecialKind::ExceptionFixup, 12),
    ] {
        let Some(sec) = obj.section_by_name(name) else {
            continue;
        };
        if sec.size % size != 0 {
            return Err(SpecialError::BadSize {
                section: sec.name.clone(),
                size: size as usize,
            });
        }
        let target = |off: u64, what: &str| {
            obj.reloc_at(sec.index, off)
                .and_then(|r| reloc_to_sec_off(obj, r))
                .ok_or_else(|| missing(what, sec.index, off))
        };
        for idx in 0..(sec.size / size) as usize {
            let base = idx as u64 * size;
            let orig = target(base, "can't find orig reloc")?;
            let (nsec, mut noff) = target(base + 4, "can't find new reloc")?;
            let mut key_addend = 0;
            if kind == SpecialKind::JumpLabel {
                key_addend = obj
                    .reloc_at(sec.index, base + 8)
                    .ok_or_else(|| missing("can't find key reloc", sec.index, base + 8))?
                    .addend;
            } else if noff >= 0x7fff_fff0 {
                // _ASM_EXTABLE_EX's legacy bias
                noff -= 0x7fff_fff0;
            }
            out.push(SpecialAlt {
                kind,
                entry: idx,
                orig,
                new: Some((nsec, noff)),
                orig_len: 0,
                new_len: 0,
                ft_flags: 0,
                feature: 0,
                skip_orig: false,
                skip_alt: false,
                key_addend,
            });
        }
    }
    Ok(out)
}

fn missing(what: &str, section: usize, offset: u64) -> SpecialError {
    SpecialError::MissingReloc {
        what: what.to_string(),
        section,
        offset,
    }
}

/// One `.discard.unwind_hints` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnwindHint {
    /// Index in the section.
    pub index: usize,
    /// The hinted instruction: (section, offset).
    pub at: (usize, u64),
    /// CFA offset.
    pub sp_offset: i16,
    /// CFA base as an ORC register number.
    pub sp_reg: u8,
    /// Raw type number (era-specific).
    pub ty: u8,
    /// Byte 8: `signal` (6.3+) or `end` (≤6.2).
    pub byte8: u8,
    /// Byte 9: `end` in 6.3.
    pub byte9: u8,
}

/// Reads `.discard.unwind_hints`; errors carry objtool's wording.
pub fn read_unwind_hints(obj: &Object) -> Result<Vec<UnwindHint>, String> {
    let Some(sec) = obj.section_by_name(".discard.unwind_hints") else {
        return Ok(Vec::new());
    };
    if obj.relocs(sec.index).is_empty() && sec.size > 0 {
        return Err("missing .rela.discard.unwind_hints section".into());
    }
    if sec.size % 12 != 0 {
        return Err("struct unwind_hint size mismatch".into());
    }
    let mut out = Vec::new();
    for i in 0..(sec.size / 12) as usize {
        let base = i * 12;
        let r = obj
            .reloc_at(sec.index, base as u64)
            .ok_or_else(|| format!("can't find reloc for unwind_hints[{i}]"))?;
        let sym = &obj.symbols[r.symbol];
        let offset = if sym.kind == SymKind::Section {
            r.addend
        } else if sym.kind == SymKind::NoType && sym.name.starts_with(".L") {
            sym.value as i64
        } else {
            return Err("unexpected relocation symbol type in .rela.discard.unwind_hints".into());
        };
        let Some(s) = sym.section else {
            return Err(format!("can't find insn for unwind_hints[{i}]"));
        };
        out.push(UnwindHint {
            index: i,
            at: (s, offset as u64),
            sp_offset: u16_at(sec.data, base + 4) as i16,
            sp_reg: u8_at(sec.data, base + 6),
            ty: u8_at(sec.data, base + 7),
            byte8: u8_at(sec.data, base + 8),
            byte9: u8_at(sec.data, base + 9),
        });
    }
    Ok(out)
}
