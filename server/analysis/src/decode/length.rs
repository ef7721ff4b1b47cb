//! Instruction lengths of the common legacy-encoded x86-64 instructions, without iced-x86.
//!
//! Compiled kernel code is nearly all plain integer instructions (moves, ALU, push/pop, branches, calls, NOPs). Their
//! lengths follow from the prefixes, the opcode and the ModRM/SIB bytes, which a few tables answer several times more
//! cheaply than a full decode; and a process that meets no other instruction never builds iced-x86's decoder tables
//! (400–480 µs on the 2-core machine the benchmarks run on, more than the rest of the run for a small object).
//! [`fast_len`] answers only where the answer is certainly iced-x86's — a valid legacy-encoded instruction of exactly
//! that length — and returns `None` for everything else: VEX/EVEX/XOP, x87, `lock` where it is invalid, moffs and far
//! forms, the 16-bit branch forms, most system and SIMD instructions, reserved and invalid encodings, truncated bytes.
//! Those go to iced-x86, which stays the authority; the unit tests hold the two equal on random byte sequences and on
//! every opcode.

/// What follows the opcode byte(s) of an instruction [`fast_len`] knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// Not known here: iced-x86 decides.
    Ask,
    /// Nothing.
    Bare,
    /// ModRM (+ SIB + displacement).
    M,
    /// ModRM alone, its mode field ignored (`mov` to and from control registers).
    R,
    /// ModRM, then an 8-bit immediate.
    MI8,
    /// ModRM, then a 16-bit (0x66 without REX.W) or 32-bit immediate.
    MIz,
    /// An 8-bit immediate or displacement.
    I8,
    /// A 16-bit immediate.
    I16,
    /// A 16-bit (0x66 without REX.W) or 32-bit immediate.
    Iz,
    /// A 32-bit displacement (near `call`/`jmp`/`jcc`); 0x66 is left to iced-x86.
    Rel32,
    /// `mov $imm, %reg` (0xb8+r): 64-bit immediate with REX.W, else as [`Shape::Iz`].
    Iv,
    /// A group opcode whose form depends on ModRM's reg field: see [`group`].
    Group,
}

/// Which legacy prefixes an opcode accepts here (segment overrides and 0x67 are always accepted; `lock` never).
#[derive(Clone, Copy)]
struct Entry {
    shape: Shape,
    /// 0x66 (operand size).
    opsize: bool,
    /// 0xf2/0xf3 (`rep`, `bnd`, `pause`).
    rep: bool,
}

const ASK: Entry = Entry {
    shape: Shape::Ask,
    opsize: false,
    rep: false,
};

const fn e(shape: Shape, opsize: bool, rep: bool) -> Entry {
    Entry { shape, opsize, rep }
}

/// The one-byte opcode map in 64-bit mode. Prefix bytes, REX and 0x0f are handled before the table is read.
static ONE_BYTE: [Entry; 256] = {
    use Shape::*;
    let mut t = [ASK; 256];
    // The eight ALU rows: add, or, adc, sbb, and, sub, xor, cmp.
    let mut row = 0;
    while row < 0x40 {
        t[row] = e(M, true, false);
        t[row + 1] = e(M, true, false);
        t[row + 2] = e(M, true, false);
        t[row + 3] = e(M, true, false);
        t[row + 4] = e(I8, true, false);
        t[row + 5] = e(Iz, true, false);
        row += 8;
    }
    let mut op = 0x50;
    while op < 0x60 {
        t[op] = e(Bare, true, false); // push/pop %reg
        op += 1;
    }
    t[0x63] = e(M, true, false); // movsxd
    t[0x68] = e(Iz, true, false); // push $imm
    t[0x69] = e(MIz, true, false); // imul $imm
    t[0x6a] = e(I8, true, false); // push $imm8
    t[0x6b] = e(MI8, true, false); // imul $imm8
    let mut op = 0x6c;
    while op < 0x70 {
        t[op] = e(Bare, true, true); // ins, outs (rep)
        op += 1;
    }
    let mut op = 0x70;
    while op < 0x80 {
        t[op] = e(I8, true, true); // jcc rel8 (bnd)
        op += 1;
    }
    t[0x80] = e(MI8, true, false);
    t[0x81] = e(MIz, true, false);
    t[0x83] = e(MI8, true, false);
    let mut op = 0x84;
    while op < 0x8c {
        t[op] = e(M, true, false); // test, xchg, mov
        op += 1;
    }
    t[0x8c] = e(Group, true, false); // mov %sreg, r/m: /0../5
    t[0x8d] = e(Group, true, false); // lea: memory forms only
    t[0x8e] = e(Group, true, false); // mov r/m, %sreg: /0, /2../5
    t[0x8f] = e(Group, true, false); // pop r/m: /0 only (else XOP)
    let mut op = 0x90;
    while op < 0xa0 {
        t[op] = e(Bare, true, true); // xchg, nop, pause, cbw/cwd, wait, pushf/popf, sahf/lahf
        op += 1;
    }
    t[0x9a] = ASK;
    let mut op = 0xa4;
    while op < 0xb0 {
        t[op] = e(Bare, true, true); // movs, cmps, stos, lods, scas (rep)
        op += 1;
    }
    t[0xa8] = e(I8, true, false); // test $imm8, %al
    t[0xa9] = e(Iz, true, false); // test $imm, %eax
    let mut op = 0xb0;
    while op < 0xb8 {
        t[op] = e(I8, true, false); // mov $imm8, %reg8
        op += 1;
    }
    while op < 0xc0 {
        t[op] = e(Iv, true, false); // mov $imm, %reg
        op += 1;
    }
    t[0xc0] = e(Group, true, false); // shifts by imm8
    t[0xc1] = e(Group, true, false);
    t[0xc2] = e(I16, true, true); // ret $imm16
    t[0xc3] = e(Bare, true, true); // ret, rep ret, bnd ret
    t[0xc6] = e(Group, true, false); // mov $imm8, r/m: /0 only
    t[0xc7] = e(Group, true, false); // mov $imm, r/m: /0 only
    t[0xc9] = e(Bare, true, false); // leave
    t[0xca] = e(I16, true, false); // lret $imm16
    t[0xcb] = e(Bare, true, false); // lret
    t[0xcc] = e(Bare, true, false); // int3
    t[0xcd] = e(I8, true, false); // int $imm8
    t[0xcf] = e(Bare, true, false); // iret
    let mut op = 0xd0;
    while op < 0xd4 {
        t[op] = e(Group, true, false); // shifts by 1 / %cl
        op += 1;
    }
    t[0xd7] = e(Bare, true, false); // xlat
    let mut op = 0xe4;
    while op < 0xe8 {
        t[op] = e(I8, true, false); // in/out $imm8
        op += 1;
    }
    t[0xe8] = e(Rel32, false, true); // call rel32 (bnd)
    t[0xe9] = e(Rel32, false, true); // jmp rel32 (bnd)
    t[0xeb] = e(I8, true, true); // jmp rel8 (bnd)
    let mut op = 0xec;
    while op < 0xf0 {
        t[op] = e(Bare, true, false); // in/out %dx
        op += 1;
    }
    t[0xf1] = e(Bare, true, false); // int1
    t[0xf4] = e(Bare, true, false); // hlt
    t[0xf5] = e(Bare, true, false); // cmc
    let mut op = 0xf8;
    while op < 0xfe {
        t[op] = e(Bare, true, false); // clc, stc, cli, sti, cld, std
        op += 1;
    }
    t[0xf6] = e(Group, true, false); // test/not/neg/mul/div
    t[0xf7] = e(Group, true, false);
    t[0xfe] = e(Group, true, false); // inc/dec r/m8
    t[0xff] = e(Group, true, true); // inc, dec, call, jmp (bnd), push
    t
};

/// The 0x0f opcode map, for the instructions compiled kernel code is made of.
static TWO_BYTE: [Entry; 256] = {
    use Shape::*;
    let mut t = [ASK; 256];
    t[0x00] = e(Group, false, false); // verr, verw
    t[0x01] = e(Group, false, false); // clac, stac, swapgs, rdtscp, xgetbv, xsetbv, serialize, monitorx, mwaitx
    t[0x05] = e(Bare, false, false); // syscall
    t[0x06] = e(Bare, false, false); // clts
    t[0x07] = e(Bare, false, false); // sysret
    t[0x08] = e(Bare, false, false); // invd
    t[0x09] = e(Bare, false, false); // wbinvd
    t[0x0b] = e(Bare, false, false); // ud2
    t[0x18] = e(Group, false, false); // prefetch
    t[0x1e] = e(Group, false, true); // endbr64/endbr32 (f3 only)
    t[0x1f] = e(Group, true, false); // nopl r/m: /0 only
    t[0x20] = e(Group, false, false); // mov %crN, %reg
    t[0x22] = e(Group, false, false); // mov %reg, %crN
    t[0x30] = e(Bare, false, false); // wrmsr
    t[0x31] = e(Bare, false, false); // rdtsc
    t[0x32] = e(Bare, false, false); // rdmsr
    let mut op = 0x40;
    while op < 0x50 {
        t[op] = e(M, true, false); // cmovcc
        op += 1;
    }
    let mut op = 0x80;
    while op < 0x90 {
        t[op] = e(Rel32, false, true); // jcc rel32 (bnd)
        op += 1;
    }
    while op < 0xa0 {
        t[op] = e(Group, false, false); // setcc: /0 only
        op += 1;
    }
    t[0xa2] = e(Bare, false, false); // cpuid
    t[0xa3] = e(M, true, false); // bt
    t[0xa4] = e(MI8, true, false); // shld $imm8
    t[0xa5] = e(M, true, false); // shld %cl
    t[0xab] = e(M, true, false); // bts
    t[0xac] = e(MI8, true, false); // shrd $imm8
    t[0xad] = e(M, true, false); // shrd %cl
    t[0xae] = e(Group, true, true); // lfence, mfence, sfence, clflush(opt), clwb, rd/wr{fs,gs}base
    t[0xaf] = e(M, true, false); // imul
    t[0xb0] = e(M, true, false); // cmpxchg
    t[0xb1] = e(M, true, false);
    t[0xb3] = e(M, true, false); // btr
    t[0xb6] = e(M, true, false); // movzb
    t[0xb7] = e(M, true, false); // movzw
    t[0xba] = e(Group, true, false); // bt/bts/btr/btc $imm8: /4../7
    t[0xbb] = e(M, true, false); // btc
    t[0xb8] = e(Group, true, true); // popcnt (f3 only)
    t[0xb9] = e(M, true, false); // ud1 (the kernel's BUG/WARN traps)
    t[0xbc] = e(Group, true, true); // bsf, tzcnt (f3)
    t[0xbd] = e(Group, true, true); // bsr, lzcnt (f3)
    t[0xbe] = e(M, true, false); // movsb
    t[0xbf] = e(M, true, false); // movsw
    t[0xc0] = e(M, true, false); // xadd
    t[0xc1] = e(M, true, false);
    t[0xc3] = e(Group, false, false); // movnti: memory forms only
    let mut op = 0xc8;
    while op < 0xd0 {
        t[op] = e(Bare, false, false); // bswap
        op += 1;
    }
    t
};

/// The form of a [`Shape::Group`] opcode given its ModRM byte and the prefixes seen; [`Shape::Ask`] where the
/// encoding is reserved, invalid, or a different instruction family (XOP for `8f /1..7`, say).
fn group(two_byte: bool, op: u8, modrm: u8, rep: Option<u8>, opsize: bool) -> Shape {
    use Shape::*;
    let reg = (modrm >> 3) & 7;
    let reg_form = modrm >> 6 == 3;
    if !two_byte {
        return match op {
            0x8c if reg <= 5 => M,
            0x8e if reg <= 5 && reg != 1 => M,
            0x8d if !reg_form => M,
            0x8f if reg == 0 => M,
            0xc0 | 0xc1 if reg != 6 => MI8,
            0xd0..=0xd3 if reg != 6 => M,
            0xc6 if reg == 0 => MI8,
            0xc7 if reg == 0 => MIz,
            0xf6 if reg == 0 => MI8,
            0xf7 if reg == 0 => MIz,
            0xf6 | 0xf7 if reg >= 2 => M,
            0xfe if reg <= 1 => M,
            // inc, dec, call, jmp, push; `bnd` only on call and jmp.
            0xff if matches!(reg, 0 | 1 | 6) && rep.is_none() => M,
            0xff if matches!(reg, 2 | 4) && !opsize => M,
            _ => Ask,
        };
    }
    match op {
        0x00 if matches!(reg, 4 | 5) => M,
        0x01 if rep.is_none()
            && !opsize
            && matches!(
                modrm,
                0xca | 0xcb | 0xd0 | 0xd1 | 0xe8 | 0xf8 | 0xf9 | 0xfa | 0xfb
            ) =>
        {
            M
        }
        // CR0, CR2, CR3, CR4 (REX.R, for CR8, is left to iced-x86 by the caller).
        0x20 | 0x22 if matches!(reg, 0 | 2 | 3 | 4) => R,
        0x1e if rep == Some(0xf3) && !opsize && matches!(modrm, 0xfa | 0xfb) => M,
        0x1e => Ask,
        0x18 if !reg_form && reg <= 3 => M, // prefetchnta, prefetcht0..2
        0x1f if reg == 0 => M,
        0x90..=0x9f if reg == 0 => M,
        0xae if rep.is_none() && !opsize && matches!(modrm, 0xe8 | 0xf0 | 0xf8) => M,
        // clflush; clwb, clflushopt (0x66).
        0xae if rep.is_none() && !reg_form && (reg == 7 || (opsize && reg == 6)) => M,
        // rdfsbase, rdgsbase, wrfsbase, wrgsbase.
        0xae if rep == Some(0xf3) && !opsize && reg_form && reg <= 3 => M,
        0xba if reg >= 4 => MI8,
        0xb8 if rep == Some(0xf3) => M,
        0xbc | 0xbd if rep != Some(0xf2) => M,
        0xc3 if !reg_form => M,
        _ => Ask,
    }
}

/// Whether `lock` is valid on this instruction (else iced-x86 rejects it): the read-modify-write forms with a memory
/// destination.
fn lockable(two_byte: bool, op: u8, modrm: u8) -> bool {
    let reg = (modrm >> 3) & 7;
    if modrm >> 6 == 3 {
        return false;
    }
    if two_byte {
        return match op {
            // bts, cmpxchg, btr, btc, xadd; bts/btr/btc $imm8.
            0xab | 0xb0 | 0xb1 | 0xb3 | 0xbb | 0xc0 | 0xc1 => true,
            0xba => reg >= 5,
            _ => false,
        };
    }
    match op {
        // add, or, adc, sbb, and, sub, xor (to memory); xchg.
        0x00 | 0x01 | 0x08 | 0x09 | 0x10 | 0x11 | 0x18 | 0x19 | 0x20 | 0x21 | 0x28 | 0x29
        | 0x30 | 0x31 | 0x86 | 0x87 => true,
        // Group 1 but cmp; not, neg; inc, dec.
        0x80 | 0x81 | 0x83 => reg != 7,
        0xf6 | 0xf7 => matches!(reg, 2 | 3),
        0xfe | 0xff => reg <= 1,
        _ => false,
    }
}

/// The length of the instruction at the start of `bytes` if it is one of the common legacy-encoded forms this module
/// knows and is valid and whole; `None` to let iced-x86 decide.
#[inline]
pub(super) fn fast_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut opsize = false;
    let mut rep = None;
    let mut lock = false;
    loop {
        match *bytes.get(i)? {
            0x66 => opsize = true,
            0xf0 => lock = true,
            0xf2 | 0xf3 => rep = Some(bytes[i]),
            0x2e | 0x3e | 0x26 | 0x36 | 0x64 | 0x65 | 0x67 => {}
            _ => break,
        }
        i += 1;
    }
    let mut rex_w = false;
    let mut rex_r = false;
    let mut b = *bytes.get(i)?;
    if b & 0xf0 == 0x40 {
        rex_w = b & 8 != 0;
        rex_r = b & 4 != 0;
        i += 1;
        b = *bytes.get(i)?;
    }
    i += 1;
    let two_byte = b == 0x0f;
    let (entry, op) = if two_byte {
        let op = *bytes.get(i)?;
        i += 1;
        (TWO_BYTE[usize::from(op)], op)
    } else {
        (ONE_BYTE[usize::from(b)], b)
    };
    if (opsize && !entry.opsize) || (rep.is_some() && !entry.rep) {
        return None;
    }
    let mut shape = entry.shape;
    if matches!(shape, Shape::Ask) {
        return None;
    }
    let has_modrm = matches!(shape, Shape::M | Shape::MI8 | Shape::MIz | Shape::Group);
    if has_modrm {
        let modrm = *bytes.get(i)?;
        i += 1;
        if shape == Shape::Group {
            shape = group(two_byte, op, modrm, rep, opsize);
            if shape == Shape::Ask || (shape == Shape::R && rex_r) {
                return None;
            }
        }
        if lock && !lockable(two_byte, op, modrm) {
            return None;
        }
        let mode = modrm >> 6;
        let rm = modrm & 7;
        if mode != 3 && shape != Shape::R {
            if rm == 4 {
                let sib = *bytes.get(i)?;
                i += 1;
                if mode == 0 && sib & 7 == 5 {
                    i += 4;
                }
            } else if mode == 0 && rm == 5 {
                i += 4; // %rip-relative
            }
            i += match mode {
                1 => 1,
                2 => 4,
                _ => 0,
            };
        }
    }
    if lock && !has_modrm {
        return None;
    }
    let iz = if opsize && !rex_w { 2 } else { 4 };
    i += match shape {
        Shape::MI8 | Shape::I8 => 1,
        Shape::I16 => 2,
        Shape::MIz | Shape::Iz => iz,
        Shape::Rel32 => 4,
        Shape::Iv if rex_w => 8,
        Shape::Iv => iz,
        _ => 0,
    };
    (i <= 15 && i <= bytes.len()).then_some(i)
}

/// Calls `f` with the bytes (up to 15) and the address of every instruction iced-x86 finds in a linear sweep of the
/// executable sections (at most 4 MiB each) of this test binary and of the C library: real compiler and hand-written
/// output with SSE, AVX, AVX-512, `lock` and string instructions. Bytes iced-x86 cannot decode (data, padding) are
/// stepped over one at a time.
#[cfg(test)]
pub(super) fn real_instructions(mut f: impl FnMut(&[u8], u64)) {
    use iced_x86::{Decoder, DecoderOptions};
    use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
    use object::LittleEndian as LE;
    for path in ["/proc/self/exe", "/lib/x86_64-linux-gnu/libc.so.6"] {
        let Ok(data) = std::fs::read(path) else {
            continue;
        };
        let Ok(elf) = ElfFile64::<LE>::parse(&*data) else {
            continue;
        };
        let Ok(sections) = elf.elf_header().sections(LE, &*data) else {
            continue;
        };
        for section in sections.iter() {
            if section.sh_flags(LE) & u64::from(object::elf::SHF_EXECINSTR) == 0 {
                continue;
            }
            let Ok(bytes) = section.data(LE, &*data) else {
                continue;
            };
            let bytes = &bytes[..bytes.len().min(4 << 20)];
            let base = section.sh_addr(LE);
            let mut at = 0;
            while at < bytes.len() {
                let window = &bytes[at..bytes.len().min(at + 15)];
                let ip = base.wrapping_add(at as u64);
                let i = Decoder::with_ip(64, window, ip, DecoderOptions::NONE).decode();
                if i.is_invalid() {
                    at += 1;
                    continue;
                }
                f(&window[..i.len()], ip);
                at += i.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, EncodingKind};

    /// iced-x86's answer: the length of a valid instruction and whether it is legacy-encoded.
    fn iced(bytes: &[u8]) -> Option<(usize, bool)> {
        let mut d = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE);
        let i = d.decode();
        (!i.is_invalid()).then(|| (i.len(), i.encoding() == EncodingKind::Legacy))
    }

    fn check(bytes: &[u8]) -> bool {
        let fast = fast_len(bytes);
        if let Some(n) = fast {
            assert_eq!(
                iced(bytes),
                Some((n, true)),
                "fast_len says {n} for {bytes:02x?}"
            );
        }
        fast.is_some()
    }

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn byte(&mut self) -> u8 {
            (self.next() >> 32) as u8
        }
    }

    #[test]
    fn known_instructions() {
        let cases: &[(&[u8], usize)] = &[
            (&[0x55], 1),                                         // push %rbp
            (&[0x48, 0x89, 0xe5], 3),                             // mov %rsp,%rbp
            (&[0x48, 0x83, 0xec, 0x10], 4),                       // sub $0x10,%rsp
            (&[0x48, 0x81, 0xec, 0, 1, 0, 0], 7),                 // sub $0x100,%rsp
            (&[0x48, 0x8d, 0x64, 0x24, 0x08], 5),                 // lea 0x8(%rsp),%rsp
            (&[0xe8, 0, 0, 0, 0], 5),                             // call
            (&[0x0f, 0x1f, 0x44, 0, 0], 5),                       // nopl 0x0(%rax,%rax,1)
            (&[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0], 10), // nopw %cs:0x0(%rax,%rax,1)
            (&[0xf3, 0x0f, 0x1e, 0xfa], 4),                       // endbr64
            (&[0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8], 10),          // movabs
            (&[0x66, 0xb8, 1, 2], 4),                             // mov $0x201,%ax
            (&[0xc7, 0x05, 0, 0, 0, 0, 1, 0, 0, 0], 10),          // movl $1,0x0(%rip)
            (&[0x0f, 0x01, 0xcb], 3),                             // stac
            (&[0x0f, 0xae, 0xe8], 3),                             // lfence
            (&[0xf3, 0xc3], 2),                                   // repz ret
            (&[0x3e, 0xff, 0xe0], 3),                             // notrack jmp *%rax
            (&[0x0f, 0x85, 0, 0, 0, 0], 6),                       // jne rel32
            (&[0x41, 0xf7, 0xc0, 1, 0, 0, 0], 7),                 // test $1,%r8d
            (&[0x8b, 0x04, 0x25, 0, 0, 0, 0], 7),                 // mov 0x0,%eax (SIB, no base)
            (&[0xf0, 0x48, 0x0f, 0xc1, 0x07], 5),                 // lock xadd %rax,(%rdi)
            (&[0xf0, 0xff, 0x47, 0x08], 4),                       // lock incl 0x8(%rdi)
            (&[0xf3, 0x6e], 2),                                   // rep outsb
            (&[0xf3, 0x48, 0x0f, 0xb8, 0xc7], 5),                 // popcnt %rdi,%rax
            (&[0x48, 0x0f, 0xbd, 0xc7], 4),                       // bsr %rdi,%rax
        ];
        for (bytes, len) in cases {
            assert_eq!(fast_len(bytes), Some(*len), "{bytes:02x?}");
            assert!(check(bytes));
        }
        // Left to iced-x86: lock where it is invalid, VEX, EVEX, x87, moffs, 0x66 on rel32, truncated.
        for bytes in [
            &[0xf0, 0x48, 0x01, 0xc0][..],
            &[0xf0, 0x39, 0x07],
            &[0xc5, 0xf8, 0x77],
            &[0x62, 0xf1, 0x7c, 0x48, 0x28, 0xc1],
            &[0xd9, 0xc0],
            &[0x48, 0xa1, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x66, 0xe8, 0, 0],
            &[0x48, 0x8b],
            &[0xe8, 0, 0],
            &[0x8d, 0xc0],
            &[0x8f, 0xe8, 0x78, 0xc2, 0xc0, 0x01],
        ] {
            assert_eq!(fast_len(bytes), None, "{bytes:02x?}");
        }
    }

    #[test]
    fn every_opcode_and_modrm_agrees_with_iced() {
        // Every one- and two-byte opcode with every ModRM byte, under a few prefix/REX combinations, with varied
        // bytes after (SIB, displacement, immediate).
        let prefixes: &[&[u8]] = &[
            &[],
            &[0x48],
            &[0x41],
            &[0x66],
            &[0x66, 0x48],
            &[0xf3],
            &[0xf2],
            &[0x3e],
            &[0x67],
            &[0xf0],
            &[0xf0, 0x48],
            &[0x66, 0xf0],
            &[0xf2, 0xf0],
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut hits = 0usize;
        for p in prefixes {
            for map in [&[][..], &[0x0f][..]] {
                for op in 0..=255u8 {
                    for modrm in 0..=255u8 {
                        let mut bytes = p.to_vec();
                        bytes.extend_from_slice(map);
                        bytes.push(op);
                        bytes.push(modrm);
                        bytes.extend((0..12).map(|_| rng.byte()));
                        hits += usize::from(check(&bytes));
                    }
                }
            }
        }
        // The fast path must actually be taken for a good part of the encoding space.
        assert!(hits > 150_000, "fast path taken {hits} times");
    }

    /// Real compiled code ([`real_instructions`]): at every instruction start iced-x86 finds, `fast_len` must say
    /// nothing or exactly what iced-x86 says.
    #[test]
    fn real_code_agrees_with_iced() {
        let (mut hits, mut total) = (0usize, 0usize);
        real_instructions(|bytes, _| {
            total += 1;
            hits += usize::from(check(bytes));
        });
        // The test binary alone has hundreds of thousands of instructions, most of them common ones.
        assert!(
            total > 100_000 && hits * 10 > total * 7,
            "{hits} of {total} on the fast path"
        );
    }

    #[test]
    fn random_prefixed_sequences_agree_with_iced() {
        let pool = [
            0x66, 0x67, 0xf2, 0xf3, 0x2e, 0x3e, 0x26, 0x36, 0x64, 0x65, 0xf0, 0x40, 0x48, 0x4c,
            0x41, 0x0f,
        ];
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut hits = 0usize;
        for _ in 0..200_000 {
            let mut bytes = Vec::with_capacity(20);
            let n = (rng.next() % 5) as usize;
            for _ in 0..n {
                bytes.push(pool[(rng.next() % pool.len() as u64) as usize]);
            }
            let len = 1 + (rng.next() % 18) as usize;
            bytes.extend((0..len).map(|_| rng.byte()));
            hits += usize::from(check(&bytes));
        }
        assert!(hits > 40_000, "fast path taken {hits} times");
    }
}
