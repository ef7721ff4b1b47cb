//! Names for the addresses in instruction text, as objdump shows them: `call _raw_spin_unlock`,
//! `call *pv_ops+0xfc(%rip)`, `jmp swapgs_restore_regs_and_return_to_usermode`, `mov $sys_call_table,%rdi`.
//!
//! One resolver over the object's symbols and relocations serves every place that prints an instruction (hover,
//! `explain`, `altcfi/cfiTable`, finding details): the disassembly (`decode::disassemble`, which knows nothing of
//! symbols) is rewritten here. In a relocatable object the bytes of a call or a RIP-relative operand hold 0 and the
//! relocation says where it goes; without a relocation, a relative branch or RIP-relative operand lands in its own
//! section and the symbol containing the target names it.
//!
//! *Invariant:* text only. Never changes what an instruction is or does, only how its operands are written; an
//! operand it cannot name is left as the disassembler wrote it.

use crate::decode;
use crate::object::{reloc_types, Object, Reloc, SymKind};

/// Names addresses of one object.
pub struct Symbolizer<'a, 'data> {
    obj: &'a Object<'data>,
}

impl<'a, 'data> Symbolizer<'a, 'data> {
    /// A resolver over `obj`'s symbols and relocations.
    pub fn new(obj: &'a Object<'data>) -> Self {
        Symbolizer { obj }
    }

    /// `sym` or `sym+0x1a` for a place in a section: the function containing it, else any symbol containing it, else
    /// the nearest symbol before it in the section, else `.section+0x1a`.
    pub fn name_at(&self, section: usize, offset: i64) -> String {
        let Some(sec) = self.obj.sections.get(section) else {
            return format!("0x{offset:x}");
        };
        let Ok(off) = u64::try_from(offset) else {
            return format!("{}-0x{:x}", sec.name, offset.unsigned_abs());
        };
        let sym = self
            .obj
            .symbol_containing(section, off, true)
            .or_else(|| {
                let list = self.obj.symbols_in(section);
                let before = list.partition_point(|&i| self.obj.symbols[i].value <= off);
                list[..before]
                    .iter()
                    .rev()
                    .map(|&i| &self.obj.symbols[i])
                    .find(|s| s.kind != SymKind::Section && !s.name.is_empty())
            })
            // A `__pfx_`/`__cfi_` symbol only names the padding before its function.
            .filter(|s| !(s.name.starts_with("__pfx_") && off >= s.value + s.size));
        match sym {
            Some(s) => with_offset(&s.name, off.wrapping_sub(s.value) as i64),
            None => with_offset(&sec.name, off as i64),
        }
    }

    /// The place a relocation names, `adjust` added to its addend: `sym+0x8`, or for a section symbol the symbol
    /// at that place.
    fn reloc_name(&self, r: &Reloc, adjust: i64) -> Option<String> {
        let sym = self.obj.symbols.get(r.symbol)?;
        let addend = r.addend.wrapping_add(adjust);
        if sym.kind == SymKind::Section {
            let sec = sym.section?;
            return Some(self.name_at(sec, (sym.value as i64).wrapping_add(addend)));
        }
        if sym.name.is_empty() {
            return None;
        }
        Some(with_offset(&sym.name, addend))
    }

    /// The AT&T text of the instruction at `offset` of `section` (`len` bytes), with its branch target, RIP-relative
    /// operand or relocated immediate named.
    pub fn insn_text(&self, section: usize, offset: u64, len: u8) -> String {
        let Some(sec) = self.obj.sections.get(section) else {
            return "(bad)".into();
        };
        let start = offset as usize;
        let bytes = sec.data.get(start..start + usize::from(len)).unwrap_or(&[]);
        let text = normalize_mnemonic(decode::disassemble(bytes, offset));
        let end = offset + u64::from(len);
        let reloc = self.obj.relocs_in(section, offset..end).first();
        // The instruction proper (after an emulate prefix).
        let skip = if decode::emulate_prefix(bytes).is_some() {
            decode::EMULATE_PREFIX_LEN
        } else {
            0
        };
        let shape = decode::operand_shape(bytes.get(skip..).unwrap_or(&[]));
        match shape {
            decode::OperandShape::RelBranch { target } => {
                let dest = (end as i64).wrapping_add(target);
                let name = match reloc {
                    Some(r) if reloc_types::is_pc_relative(r.r_type) => {
                        self.reloc_name(r, end as i64 - r.offset as i64)
                    }
                    Some(_) => None,
                    None => Some(self.name_at(section, dest)),
                };
                match name {
                    Some(n) => replace_last_hex(&text, &n),
                    None => text,
                }
            }
            decode::OperandShape::RipRelative { disp } => {
                let name = match reloc {
                    Some(r) if reloc_types::is_pc_relative(r.r_type) => {
                        self.reloc_name(r, end as i64 - r.offset as i64)
                    }
                    Some(_) => None,
                    None => Some(self.name_at(section, (end as i64).wrapping_add(disp))),
                };
                match name {
                    // The disassembler wrote the absolute address (`*0x61f7`, `%gs:0x6207`).
                    Some(n) => replace_hex_address(&text, end as i64 + disp, &format!("{n}(%rip)")),
                    None => text,
                }
            }
            decode::OperandShape::Other => match reloc {
                Some(r) if !reloc_types::is_pc_relative(r.r_type) => match self.reloc_name(r, 0) {
                    Some(n) => name_absolute(&text, &n),
                    None => text,
                },
                _ => text,
            },
        }
    }
}

/// `name`, `name+0x1a` or `name-0x8`.
fn with_offset(name: &str, off: i64) -> String {
    match off {
        0 => name.to_string(),
        o if o < 0 => format!("{name}-0x{:x}", o.unsigned_abs()),
        o => format!("{name}+0x{o:x}"),
    }
}

/// objdump's mnemonics in 64-bit code: `call`/`jmp`/`ret`, not iced-x86's `callq`/`jmpq`/`retq`.
fn normalize_mnemonic(text: String) -> String {
    for (from, to) in [("callq", "call"), ("jmpq", "jmp"), ("retq", "ret")] {
        if let Some(rest) = text.strip_prefix(from) {
            if rest.is_empty() || rest.starts_with(' ') {
                return format!("{to}{rest}");
            }
        }
        if let Some(i) = text.find(&format!(" {from}")) {
            let after = &text[i + 1 + from.len()..];
            if after.is_empty() || after.starts_with(' ') {
                return format!("{}{to}{after}", &text[..=i]);
            }
        }
    }
    text
}

/// Replaces the last `0x…` token (a branch target) with `name`.
fn replace_last_hex(text: &str, name: &str) -> String {
    match text.rfind("0x") {
        Some(i) => {
            let end = text[i + 2..]
                .find(|c: char| !c.is_ascii_hexdigit())
                .map_or(text.len(), |e| i + 2 + e);
            format!("{}{name}{}", &text[..i], &text[end..])
        }
        None => text.to_string(),
    }
}

/// Replaces the absolute address `addr` the disassembler wrote for a RIP-relative operand with `with`.
fn replace_hex_address(text: &str, addr: i64, with: &str) -> String {
    let mut i = 0;
    while let Some(p) = text[i..].find("0x") {
        let at = i + p;
        let digits_end = text[at + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .map_or(text.len(), |e| at + 2 + e);
        if u64::from_str_radix(&text[at + 2..digits_end], 16).ok() == Some(addr as u64) {
            return format!("{}{with}{}", &text[..at], &text[digits_end..]);
        }
        i = digits_end;
    }
    text.to_string()
}

/// Names an absolute relocation: the immediate `$0x0` becomes `$name`, else a `0x0(` displacement becomes `name(`.
fn name_absolute(text: &str, name: &str) -> String {
    if let Some(i) = text.find("$0x0") {
        let rest = &text[i + 4..];
        if !rest.starts_with(|c: char| c.is_ascii_hexdigit()) {
            return format!("{}${name}{rest}", &text[..i]);
        }
    }
    if let Some(i) = text.find("0x0(") {
        return format!("{}{name}{}", &text[..i], &text[i + 3..]);
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnemonics_as_objdump_writes_them() {
        assert_eq!(normalize_mnemonic("callq *0x61f7".into()), "call *0x61f7");
        assert_eq!(
            normalize_mnemonic("notrack jmpq *%rax".into()),
            "notrack jmp *%rax"
        );
        assert_eq!(normalize_mnemonic("retq".into()), "ret");
        assert_eq!(normalize_mnemonic("callqq".into()), "callqq");
    }

    #[test]
    fn operands_are_replaced_in_place() {
        assert_eq!(
            replace_last_hex("call 0x0000000000000016", "foo"),
            "call foo"
        );
        assert_eq!(replace_last_hex("jne 0x2d", "f+0x2d"), "jne f+0x2d");
        assert_eq!(
            replace_hex_address("call *0x61f7", 0x61f7, "pv_ops+0xec(%rip)"),
            "call *pv_ops+0xec(%rip)"
        );
        assert_eq!(
            replace_hex_address("incl %gs:0x6207", 0x6207, "__preempt_count(%rip)"),
            "incl %gs:__preempt_count(%rip)"
        );
        assert_eq!(name_absolute("mov $0x0,%rdi", "x"), "mov $x,%rdi");
        assert_eq!(
            name_absolute("mov 0x0(,%rax,8),%rax", "t"),
            "mov t(,%rax,8),%rax"
        );
        assert_eq!(with_offset("s", -8), "s-0x8");
    }
}
