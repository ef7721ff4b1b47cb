//! AT&T text of the instructions findings show most, without iced-x86's formatter.
//!
//! A finding names the instructions on both sides of a conflict (`push %rbp`, `sub $0x10,%rsp`, `call ...`).
//! iced-x86's GNU-syntax formatter builds tables for every instruction it knows on first use — about 2.5 ms, most of
//! a `check` of a small object with findings. [`format`] writes the text itself for the common stack and control
//! instructions (no legacy prefixes; REX allowed) exactly as iced-x86's `GasFormatter` does with the options
//! [`super::disassemble`] sets, and returns `None` for everything else, which then goes to iced-x86. The unit tests
//! compare the two over every ModRM byte of every opcode handled here.

use std::fmt::Write;

const REG64: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];
const REG32: [&str; 16] = [
    "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d",
    "r13d", "r14d", "r15d",
];
/// `jcc` mnemonics by condition code, as iced-x86 names them.
const JCC: [&str; 16] = [
    "jo", "jno", "jb", "jae", "je", "jne", "jbe", "ja", "js", "jns", "jp", "jnp", "jl", "jge",
    "jle", "jg",
];
/// The ALU operation of the 0x00–0x3f rows and of group 1 (0x81/0x83) by its 3-bit number.
const ALU: [&str; 8] = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];

/// A number as iced-x86 writes it: 0–9 in decimal, larger values in lower-case hex.
fn num(out: &mut String, v: u64) {
    if v <= 9 {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "0x{v:x}");
    }
}

fn reg(out: &mut String, r: u8, wide: bool) {
    out.push('%');
    out.push_str(if wide {
        REG64[usize::from(r)]
    } else {
        REG32[usize::from(r)]
    });
}

/// The ModRM operand: a register, or a memory operand in AT&T form. `None` for forms left to iced-x86
/// (`%rip`-relative, absolute addresses that do not fit in 31 bits).
struct Operand<'a> {
    bytes: &'a [u8],
    rex: u8,
    modrm: u8,
    /// Index of the byte after ModRM.
    at: usize,
}

impl Operand<'_> {
    fn is_reg(&self) -> bool {
        self.modrm >> 6 == 3
    }

    fn rm_reg(&self) -> u8 {
        (self.modrm & 7) | ((self.rex & 1) << 3)
    }

    /// ModRM's reg field with REX.R.
    fn reg_field(&self) -> u8 {
        ((self.modrm >> 3) & 7) | ((self.rex & 4) << 1)
    }

    /// Writes the operand; returns the index just past it (SIB and displacement), or `None`.
    fn write(&self, out: &mut String, wide: bool) -> Option<usize> {
        if self.is_reg() {
            reg(out, self.rm_reg(), wide);
            return Some(self.at);
        }
        let mode = self.modrm >> 6;
        let mut i = self.at;
        let mut base = Some(self.rm_reg());
        let mut index = None;
        let mut scale = 1;
        if self.modrm & 7 == 4 {
            let sib = *self.bytes.get(i)?;
            i += 1;
            let ix = ((sib >> 3) & 7) | ((self.rex & 2) << 2);
            if ix != 4 {
                index = Some(ix);
                scale = 1u8 << (sib >> 6);
            } else if sib >> 6 != 0 {
                return None; // no index but a scale: iced-x86 writes `(%rdi,)`
            }
            base = Some((sib & 7) | ((self.rex & 1) << 3));
            if mode == 0 && sib & 7 == 5 {
                base = None;
            }
        } else if mode == 0 && self.modrm & 7 == 5 {
            return None; // %rip-relative: iced-x86 shows the target
        }
        let disp_len = match mode {
            1 => 1,
            2 => 4,
            _ if base.is_none() => 4,
            _ => 0,
        };
        let disp: i64 = match disp_len {
            1 => i64::from(*self.bytes.get(i)? as i8),
            4 => i64::from(i32::from_le_bytes(
                self.bytes.get(i..i + 4)?.try_into().ok()?,
            )),
            _ => 0,
        };
        i += disp_len;
        if base.is_none() && index.is_none() {
            if disp < 0 {
                return None;
            }
            num(out, disp as u64);
            return Some(i);
        }
        if disp < 0 {
            out.push('-');
            num(out, disp.unsigned_abs());
        } else if disp > 0 {
            num(out, disp as u64);
        }
        out.push('(');
        if let Some(b) = base {
            reg(out, b, true);
        }
        if let Some(x) = index {
            out.push(',');
            reg(out, x, true);
            if scale != 1 {
                let _ = write!(out, ",{scale}");
            }
        }
        out.push(')');
        Some(i)
    }
}

/// The AT&T text of the instruction at the start of `bytes` (whose first byte is at `ip`), exactly as
/// [`super::disassemble`]'s iced-x86 formatter writes it, for the forms handled here; `None` for the others.
pub(super) fn format(bytes: &[u8], ip: u64) -> Option<String> {
    let mut i = 0;
    let mut rex = 0u8;
    if bytes.first()? & 0xf0 == 0x40 {
        rex = bytes[0];
        i = 1;
    }
    let wide = rex & 8 != 0;
    let op = *bytes.get(i)?;
    i += 1;
    let mut out = String::with_capacity(24);
    // Relative branches: the target in 16 hex digits.
    let branch = |out: &mut String, name: &str, rel: i64, len: usize| {
        let target = ip.wrapping_add(len as u64).wrapping_add(rel as u64);
        let _ = write!(out, "{name} 0x{target:016x}");
    };
    match op {
        0x50..=0x5f => {
            out.push_str(if op < 0x58 { "push " } else { "pop " });
            reg(&mut out, (op & 7) | ((rex & 1) << 3), true);
            return (i == bytes.len()).then_some(out);
        }
        0x90 | 0x9c | 0x9d | 0xc3 | 0xc9 | 0xcc | 0xf4 | 0xfa | 0xfb if rex == 0 => {
            out.push_str(match op {
                0x90 => "nop",
                0x9c => "pushf",
                0x9d => "popf",
                0xc3 => "ret",
                0xc9 => "leave",
                0xcc => "int3",
                0xf4 => "hlt",
                0xfa => "cli",
                _ => "sti",
            });
            return (bytes.len() == 1).then_some(out);
        }
        0xe8 | 0xe9 if rex == 0 && bytes.len() == 5 => {
            let rel = i32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?);
            branch(
                &mut out,
                if op == 0xe8 { "call" } else { "jmp" },
                i64::from(rel),
                5,
            );
            return Some(out);
        }
        0xeb | 0x70..=0x7f if rex == 0 && bytes.len() == 2 => {
            let name = if op == 0xeb {
                "jmp"
            } else {
                JCC[usize::from(op & 15)]
            };
            branch(&mut out, name, i64::from(bytes[1] as i8), 2);
            return Some(out);
        }
        0x0f if rex == 0 => {
            let op2 = *bytes.get(1)?;
            match op2 {
                0x80..=0x8f if bytes.len() == 6 => {
                    let rel = i32::from_le_bytes(bytes.get(2..6)?.try_into().ok()?);
                    branch(&mut out, JCC[usize::from(op2 & 15)], i64::from(rel), 6);
                    return Some(out);
                }
                0x0b if bytes.len() == 2 => return Some("ud2".into()),
                _ => return None,
            }
        }
        _ => {}
    }
    // ModRM forms.
    let modrm = *bytes.get(i)?;
    let opd = Operand {
        bytes,
        rex,
        modrm,
        at: i + 1,
    };
    let end = match op {
        // op %reg, r/m and op r/m, %reg: the ALU rows, test, mov.
        0x01 | 0x09 | 0x21 | 0x29 | 0x31 | 0x39 | 0x85 | 0x89 | 0x03 | 0x0b | 0x23 | 0x2b
        | 0x33 | 0x3b | 0x8b => {
            let name = match op {
                0x85 => "test",
                0x89 | 0x8b => "mov",
                _ => ALU[usize::from(op >> 3)],
            };
            // A register source and a memory destination, or the reverse: AT&T puts the source first.
            out.push_str(name);
            out.push(' ');
            if op & 2 == 0 {
                reg(&mut out, opd.reg_field(), wide);
                out.push(',');
                opd.write(&mut out, wide)?
            } else {
                let end = opd.write(&mut out, wide)?;
                out.push(',');
                reg(&mut out, opd.reg_field(), wide);
                end
            }
        }
        // Group 1 with an immediate, register destination only (memory forms need a size suffix).
        0x81 | 0x83 if opd.is_reg() => {
            let (imm, end) = if op == 0x83 {
                (i64::from(*bytes.get(opd.at)? as i8), opd.at + 1)
            } else {
                let b = bytes.get(opd.at..opd.at + 4)?;
                (
                    i64::from(i32::from_le_bytes(b.try_into().ok()?)),
                    opd.at + 4,
                )
            };
            let shown = if wide {
                imm as u64
            } else {
                u64::from(imm as u32)
            };
            out.push_str(ALU[usize::from((modrm >> 3) & 7)]);
            out.push_str(" $");
            num(&mut out, shown);
            out.push(',');
            reg(&mut out, opd.rm_reg(), wide);
            end
        }
        0x8d if !opd.is_reg() && wide => {
            out.push_str("lea ");
            let end = opd.write(&mut out, true)?;
            out.push(',');
            reg(&mut out, opd.reg_field(), true);
            end
        }
        0xff if opd.is_reg() && matches!((modrm >> 3) & 7, 2 | 4) => {
            out.push_str(if (modrm >> 3) & 7 == 2 {
                "call *"
            } else {
                "jmp *"
            });
            reg(&mut out, opd.rm_reg(), true);
            opd.at
        }
        _ => return None,
    };
    (end == bytes.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};

    fn iced(bytes: &[u8], ip: u64) -> Option<String> {
        let mut f = GasFormatter::new();
        f.options_mut().set_space_after_operand_separator(false);
        f.options_mut().set_uppercase_hex(false);
        let mut d = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
        let i = d.decode();
        if i.is_invalid() || i.len() != bytes.len() {
            return None;
        }
        let mut s = String::new();
        f.format(&i, &mut s);
        Some(s)
    }

    /// Compares on `bytes` cut to iced-x86's length; returns whether [`format`] answered.
    fn check(f: &mut GasFormatter, bytes: &[u8], ip: u64) -> bool {
        let mut d = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
        let instr = d.decode();
        let whole = if instr.is_invalid() {
            bytes
        } else {
            &bytes[..instr.len()]
        };
        let ours = format(whole, ip);
        if let Some(text) = &ours {
            assert!(
                !instr.is_invalid(),
                "format gave {text:?} for invalid {whole:02x?}"
            );
            let mut want = String::new();
            f.format(&instr, &mut want);
            assert_eq!(text, &want, "{whole:02x?}");
        }
        ours.is_some()
    }

    #[test]
    fn known_texts() {
        for (bytes, text) in [
            (&[0x55][..], "push %rbp"),
            (&[0x41, 0x5c], "pop %r12"),
            (&[0x48, 0x89, 0xe5], "mov %rsp,%rbp"),
            (&[0x48, 0x83, 0xec, 0x10], "sub $0x10,%rsp"),
            (&[0x48, 0x83, 0xe4, 0xf0], "and $0xfffffffffffffff0,%rsp"),
            (&[0x48, 0x8d, 0x65, 0xf8], "lea -8(%rbp),%rsp"),
            (
                &[0x48, 0x8d, 0x04, 0x8d, 0, 1, 0, 0],
                "lea 0x100(,%rcx,4),%rax",
            ),
            (&[0xe8, 0, 0, 0, 0], "call 0x0000000000001005"),
            (&[0x74, 0x02], "je 0x0000000000001004"),
            (&[0x41, 0xff, 0xd3], "call *%r11"),
        ] {
            assert_eq!(format(bytes, 0x1000).as_deref(), Some(text));
            assert_eq!(iced(bytes, 0x1000).as_deref(), Some(text));
        }
        // Left to iced-x86: prefixes, %rip-relative, memory forms that need a suffix, trailing bytes.
        for bytes in [
            &[0x66, 0x90][..],
            &[0x48, 0x8d, 0x05, 1, 0, 0, 0],
            &[0x48, 0x83, 0x3c, 0x24, 0],
            &[0x55, 0x90],
            &[0xf3, 0x0f, 0x1e, 0xfa],
        ] {
            assert_eq!(format(bytes, 0x1000), None, "{bytes:02x?}");
        }
    }

    /// Real compiled code (`length::real_instructions`): wherever `format` answers, iced-x86 writes the same.
    #[test]
    fn real_code_agrees_with_iced() {
        let mut f = GasFormatter::new();
        f.options_mut().set_space_after_operand_separator(false);
        f.options_mut().set_uppercase_hex(false);
        let (mut hits, mut total) = (0usize, 0usize);
        super::super::length::real_instructions(|bytes, ip| {
            total += 1;
            hits += usize::from(check(&mut f, bytes, ip));
        });
        assert!(
            total > 100_000 && hits * 2 > total,
            "{hits} of {total} formatted here"
        );
    }

    #[test]
    fn every_handled_opcode_agrees_with_iced() {
        let mut f = GasFormatter::new();
        f.options_mut().set_space_after_operand_separator(false);
        f.options_mut().set_uppercase_hex(false);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        };
        let mut hits = 0usize;
        let rexes = [
            None,
            Some(0x40),
            Some(0x41),
            Some(0x44),
            Some(0x48),
            Some(0x49),
            Some(0x4a),
            Some(0x4c),
            Some(0x4f),
        ];
        for rex in rexes {
            for op in 0..=255u8 {
                for second in 0..=255u8 {
                    let mut bytes: Vec<u8> = rex.into_iter().collect();
                    bytes.push(op);
                    bytes.push(second);
                    // SIB, displacement, immediate: random, and a second time with small values.
                    let tail: Vec<u8> = (0..6).map(|_| rnd()).collect();
                    let mut small = tail.clone();
                    small[1..].iter_mut().for_each(|b| *b &= 0x0f);
                    for t in [tail, small] {
                        let mut b = bytes.clone();
                        b.extend_from_slice(&t);
                        let ip = if rnd() & 1 == 0 {
                            0x1000
                        } else {
                            0xffff_ffff_ffff_ff00
                        };
                        hits += usize::from(check(&mut f, &b, ip));
                    }
                }
            }
            // 0x0f-prefixed: jcc rel32, ud2.
            for op2 in 0..=255u8 {
                let mut b: Vec<u8> = rex.into_iter().collect();
                b.extend_from_slice(&[0x0f, op2, rnd(), rnd(), rnd(), rnd()]);
                hits += usize::from(check(&mut f, &b, 0x40));
            }
        }
        assert!(hits > 100_000, "format answered {hits} times");
    }
}
