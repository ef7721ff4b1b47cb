//! Decode stage: the one place that knows x86 encodings.
//!
//! Turns the bytes of an executable section into [`Decoded`] instructions: length, [`InsnKind`], the relative branch
//! target, and the stack operations ([`StackOp`]) exactly as objtool's x86 decoder models them (most forms need
//! REX.W; VEX-encoded and 32-bit forms have no stack effect). Instruction boundaries come from a table-driven length
//! decoder (`decode/length.rs`) for the common legacy encodings and from `iced-x86` for everything else (it also
//! rejects undecodable bytes; the tests hold the two equal); the operand fields objtool looks at (legacy prefix, REX
//! bits, ModRM, SIB, displacement, immediate) are read from the raw bytes here so that the model matches objtool's
//! bit for bit. This module never looks at relocations, symbols (beyond the one question [`decode_section`] asks)
//! or CFI.

use iced_x86::{Decoder, DecoderOptions, EncodingKind};

mod att;
mod length;

/// Register numbers in objtool's ≥5.13 numbering (equal to the x86 encoding), plus the return address.
pub mod reg {
    /// `%rax`.
    pub const AX: u8 = 0;
    /// `%rcx`.
    pub const CX: u8 = 1;
    /// `%rdx`.
    pub const DX: u8 = 2;
    /// `%rbx`.
    pub const BX: u8 = 3;
    /// `%rsp`.
    pub const SP: u8 = 4;
    /// `%rbp`.
    pub const BP: u8 = 5;
    /// `%rsi`.
    pub const SI: u8 = 6;
    /// `%rdi`.
    pub const DI: u8 = 7;
    /// `%r10`.
    pub const R10: u8 = 10;
    /// `%r12`.
    pub const R12: u8 = 12;
    /// `%r13`.
    pub const R13: u8 = 13;
    /// `%r14`.
    pub const R14: u8 = 14;
    /// `%r15`.
    pub const R15: u8 = 15;
    /// The return address slot.
    pub const RA: u8 = 16;
    /// Number of tracked registers.
    pub const NUM: usize = 17;

    /// AT&T name of a register number (`rax` … `r15`, `ra`).
    pub fn name(r: u8) -> &'static str {
        const NAMES: [&str; 17] = [
            "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15", "ra",
        ];
        NAMES.get(r as usize).copied().unwrap_or("?")
    }
}

/// Instruction type, as objtool classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum InsnKind {
    /// Anything without control-flow meaning.
    Other,
    /// `jcc`, `jrcxz`, `loop*`.
    JumpConditional,
    /// `jmp rel8/rel32`.
    JumpUnconditional,
    /// `jmp *x`.
    JumpDynamic,
    /// A conditional jump to a retpoline thunk (set by the flow stage).
    JumpDynamicConditional,
    /// `call rel32`.
    Call,
    /// `call *x`.
    CallDynamic,
    /// `ret`.
    Return,
    /// `syscall`, `sysret`, `iret`, `lret`, `ljmp`, `eret*`.
    ContextSwitch,
    /// `ud2`, `ud1`.
    Bug,
    /// `nop`, `nopl`, `nopw`.
    Nop,
    /// `stac`.
    Stac,
    /// `clac`.
    Clac,
    /// `std`.
    Std,
    /// `cld`.
    Cld,
    /// `int3`.
    Trap,
    /// `endbr64` / `endbr32`.
    Endbr,
}

/// Destination of a stack operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OpDest {
    /// A register.
    Reg(u8),
    /// Memory at `disp(reg)`.
    RegIndirect(u8, i32),
    /// Memory through another addressing form.
    Mem,
    /// A push.
    Push,
    /// `pushf`.
    PushF,
}

/// Source of a stack operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OpSrc {
    /// A register.
    Reg(u8),
    /// Memory at `disp(reg)`.
    RegIndirect(u8, i32),
    /// A constant (immediate, memory, segment register, return address).
    Const,
    /// A pop.
    Pop,
    /// `popf`.
    PopF,
    /// `reg + imm` (add/sub/lea).
    Add(u8, i32),
    /// `reg & imm`.
    And(u8, i32),
}

/// One stack operation: `dest ← src`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StackOp {
    /// Where the value goes.
    pub dest: OpDest,
    /// Where it comes from.
    pub src: OpSrc,
}

/// A stack operation packed in 8 bytes: in every form objtool models at most one side carries a 32-bit value
/// (`disp(reg)` is written from a register; `reg + imm`, `reg & imm` and `disp(reg)` are read into a register).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct PackedOp {
    dest: u8,
    dest_reg: u8,
    src: u8,
    src_reg: u8,
    value: i32,
}

impl PackedOp {
    fn pack(op: StackOp) -> Self {
        let mut value = 0;
        let (dest, dest_reg) = match op.dest {
            OpDest::Reg(r) => (0, r),
            OpDest::RegIndirect(r, d) => {
                value = d;
                (1, r)
            }
            OpDest::Mem => (2, 0),
            OpDest::Push => (3, 0),
            OpDest::PushF => (4, 0),
        };
        let (src, src_reg) = match op.src {
            OpSrc::Reg(r) => (0, r),
            OpSrc::RegIndirect(r, d) => {
                debug_assert_eq!(value, 0, "two 32-bit values in one stack op");
                value = d;
                (1, r)
            }
            OpSrc::Const => (2, 0),
            OpSrc::Pop => (3, 0),
            OpSrc::PopF => (4, 0),
            OpSrc::Add(r, v) => {
                debug_assert_eq!(value, 0, "two 32-bit values in one stack op");
                value = v;
                (5, r)
            }
            OpSrc::And(r, v) => {
                debug_assert_eq!(value, 0, "two 32-bit values in one stack op");
                value = v;
                (6, r)
            }
        };
        PackedOp {
            dest,
            dest_reg,
            src,
            src_reg,
            value,
        }
    }

    fn unpack(self) -> StackOp {
        let dest = match self.dest {
            0 => OpDest::Reg(self.dest_reg),
            1 => OpDest::RegIndirect(self.dest_reg, self.value),
            2 => OpDest::Mem,
            3 => OpDest::Push,
            _ => OpDest::PushF,
        };
        let src = match self.src {
            0 => OpSrc::Reg(self.src_reg),
            1 => OpSrc::RegIndirect(self.src_reg, self.value),
            2 => OpSrc::Const,
            3 => OpSrc::Pop,
            4 => OpSrc::PopF,
            5 => OpSrc::Add(self.src_reg, self.value),
            _ => OpSrc::And(self.src_reg, self.value),
        };
        StackOp { dest, src }
    }
}

/// The stack operations of one instruction (at most two), stored inline: no allocation per instruction.
/// Equality and hashing look at the operations only.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ops {
    len: u8,
    ops: [PackedOp; 2],
}

impl PartialEq for Ops {
    fn eq(&self, other: &Self) -> bool {
        self.active() == other.active()
    }
}

impl Eq for Ops {}

impl std::hash::Hash for Ops {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.active().hash(h);
    }
}

impl Ops {
    /// Appends an operation (a third one is a decoder bug and is dropped in release builds).
    pub fn push(&mut self, op: StackOp) {
        debug_assert!(self.len < 2, "more than two stack ops");
        if let Some(slot) = self.ops.get_mut(usize::from(self.len)) {
            *slot = PackedOp::pack(op);
            self.len += 1;
        }
    }

    /// Removes every operation.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// No operation.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    fn active(&self) -> &[PackedOp] {
        &self.ops[..usize::from(self.len).min(2)]
    }

    /// The operations, in order.
    pub fn iter(&self) -> impl Iterator<Item = StackOp> + '_ {
        self.active().iter().map(|o| o.unpack())
    }

    /// The operations as a vector (for tests and reports).
    pub fn to_vec(&self) -> Vec<StackOp> {
        self.iter().collect()
    }
}

/// One decoded instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insn {
    /// Offset in its section (sections are limited to 4 GiB: see [`Insn::new`]).
    offset: u32,
    /// Length in bytes.
    pub len: u8,
    /// Type.
    pub kind: InsnKind,
    /// objtool's `immediate` (a C `int`): the immediate, else the displacement, as encoded (0 where a relocation will
    /// fill it).
    pub immediate: i32,
    /// An indirect call or jump with a `notrack` (0x3e) prefix, which objtool warns about.
    pub notrack: bool,
}

/// The largest section this model decodes (instruction offsets are kept in 32 bits).
pub const MAX_SECTION_SIZE: u64 = u32::MAX as u64;

impl Insn {
    /// An instruction without stack operations. `offset` must not exceed [`MAX_SECTION_SIZE`] (it is clamped).
    pub fn new(offset: u64, len: u8, kind: InsnKind) -> Self {
        Insn {
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
            len,
            kind,
            immediate: 0,
            notrack: false,
        }
    }

    /// Offset in its section.
    pub fn offset(&self) -> u64 {
        u64::from(self.offset)
    }

    /// The offset just past this instruction.
    pub fn end(&self) -> u64 {
        self.offset() + u64::from(self.len)
    }

    /// objtool's `arch_jump_destination`: offset + length + immediate.
    pub fn jump_destination(&self) -> i64 {
        (self.end() as i64).wrapping_add(i64::from(self.immediate))
    }

    /// A direct jump (conditional or not).
    pub fn is_static_jump(&self) -> bool {
        matches!(
            self.kind,
            InsnKind::JumpConditional | InsnKind::JumpUnconditional
        )
    }
}

/// What the decoder makes of one instruction: the instruction and its stack operations (kept apart because few
/// instructions have any, so that the flow stage stores them aside and its per-instruction node stays small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The instruction.
    pub insn: Insn,
    /// Stack operations, in order (at most two; `leave` has two).
    pub ops: Ops,
}

/// Bytes that cannot be decoded as an instruction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("can't decode instruction at offset 0x{offset:x}")]
pub struct DecodeError {
    /// Offset in the section.
    pub offset: u64,
}

/// Decodes a whole executable section from offset 0. `in_func(offset)` tells whether the first symbol containing
/// `offset` is an `STT_FUNC` (objtool treats `iret` there as sync_core's `add $40,%rsp`).
pub fn decode_section(
    bytes: &[u8],
    in_func: impl Fn(u64) -> bool,
) -> Result<Vec<Decoded>, DecodeError> {
    decode_range(bytes, 0, bytes.len(), &in_func).map(|(insns, _)| insns)
}

/// Decodes from section offset `start` (which must be an instruction boundary) until an instruction would start
/// at or after `stop`, or the section ends; an instruction that starts before `stop` is decoded whole. Returns the
/// instructions and the offset after the last one (`stop` exactly when `stop` is a boundary of this sweep).
pub fn decode_range(
    bytes: &[u8],
    start: usize,
    stop: usize,
    in_func: &impl Fn(u64) -> bool,
) -> Result<(Vec<Decoded>, usize), DecodeError> {
    // Kernel code averages 3–4 bytes an instruction: one allocation in the common case.
    let mut out = Vec::with_capacity(stop.saturating_sub(start) / 3 + 1);
    let end = decode_range_into(bytes, start, stop, in_func, |i| out.push(i))?;
    Ok((out, end))
}

/// [`decode_range`] handing each instruction to `emit` instead of collecting them.
pub fn decode_range_into(
    bytes: &[u8],
    start: usize,
    stop: usize,
    in_func: &impl Fn(u64) -> bool,
    mut emit: impl FnMut(Decoded),
) -> Result<usize, DecodeError> {
    if bytes.len() as u64 > MAX_SECTION_SIZE {
        return Err(DecodeError {
            offset: MAX_SECTION_SIZE,
        });
    }
    let tail = bytes.get(start..).unwrap_or(&[]);
    // iced-x86 only for what `length::fast_len` leaves to it; created at the first such instruction, so that code
    // made only of common instructions never builds its tables.
    let mut decoder: Option<Decoder> = None;
    let mut instr = iced_x86::Instruction::default();
    let end = bytes.len().min(stop);
    let mut at = start;
    while at < end {
        let offset = at as u64;
        let all = bytes.get(at..).unwrap_or(&[]);
        // The kernel's decoder reads an emulate prefix and the instruction after it as one instruction.
        let prefix = emulate_prefix(all).map_or(0, |_| EMULATE_PREFIX_LEN);
        let rest = all.get(prefix..).unwrap_or(&[]);
        let inner = at + prefix;
        let (len, legacy) = match length::fast_len(rest) {
            Some(len) => (len, true),
            None => {
                let d = decoder.get_or_insert_with(|| {
                    Decoder::with_ip(64, tail, offset, DecoderOptions::NONE)
                });
                d.set_position(inner - start)
                    .map_err(|_| DecodeError { offset })?;
                d.set_ip(inner as u64);
                d.decode_out(&mut instr);
                if instr.is_invalid() || instr.len() == 0 {
                    return Err(DecodeError { offset });
                }
                (instr.len(), instr.encoding() == EncodingKind::Legacy)
            }
        };
        let raw = bytes
            .get(inner..inner + len)
            .ok_or(DecodeError { offset })?;
        let mut decoded = decode_one(raw, offset, legacy, in_func);
        // `len + prefix` is at most 15 + 5: it fits the u8.
        decoded.insn.len = (len + prefix) as u8;
        emit(decoded);
        at = inner + len;
    }
    Ok(at)
}

/// Length of the kernel's emulate prefixes (`XEN_EMULATE_PREFIX`, `KVM_EMULATE_PREFIX`).
pub const EMULATE_PREFIX_LEN: usize = 5;

/// The kernel's emulate prefixes: `ud2` and a three-letter tag, followed by the instruction the hypervisor emulates
/// (`XEN_EMULATE_PREFIX "cpuid"`). The kernel's decoder (`insn_get_emulate_prefix()`, which objtool uses) reads the
/// prefix and that instruction as ONE instruction, where a plain disassembler sees `ud2; js; outsb`.
const EMULATE_PREFIXES: [(&str, [u8; EMULATE_PREFIX_LEN]); 2] = [
    ("XEN_EMULATE_PREFIX", [0x0f, 0x0b, b'x', b'e', b'n']),
    ("KVM_EMULATE_PREFIX", [0x0f, 0x0b, b'k', b'v', b'm']),
];

/// The name of the emulate prefix `bytes` start with, if any (only when an instruction byte follows it: the
/// kernel's decoder peeks the prefix bytes only inside the buffer, and a prefix alone is a plain `ud2`).
pub fn emulate_prefix(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() <= EMULATE_PREFIX_LEN {
        return None;
    }
    EMULATE_PREFIXES
        .iter()
        .find(|(_, p)| bytes.starts_with(p))
        .map(|&(name, _)| name)
}

/// The operand of an instruction that names an address, for symbol names in its text ([`crate::symbols`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperandShape {
    /// A relative branch or call: the target is the end of the instruction plus `target`.
    RelBranch {
        /// The encoded displacement.
        target: i64,
    },
    /// A RIP-relative memory operand: the address is the end of the instruction plus `disp`.
    RipRelative {
        /// The encoded displacement.
        disp: i64,
    },
    /// Nothing of the above.
    Other,
}

/// What [`OperandShape`] the instruction at the start of `bytes` has.
pub fn operand_shape(bytes: &[u8]) -> OperandShape {
    if length::fast_len(bytes).is_none() {
        // VEX/EVEX and the rarer legacy forms: ask iced-x86.
        let mut d = Decoder::new(64, bytes, DecoderOptions::NONE);
        let i = d.decode();
        if i.is_invalid() {
            return OperandShape::Other;
        }
        if i.is_ip_rel_memory_operand() {
            return OperandShape::RipRelative {
                disp: i.memory_displacement64() as i64 - i.next_ip() as i64,
            };
        }
        return OperandShape::Other;
    }
    let f = parse_fields(bytes);
    let rel = matches!(f.op1, 0xe8 | 0xe9 | 0xeb | 0x70..=0x7f | 0xe0..=0xe3)
        || (f.op1 == 0x0f && (0x80..=0x8f).contains(&f.op2));
    if rel {
        return OperandShape::RelBranch {
            target: i64::from(f.imm.unwrap_or(0)),
        };
    }
    match f.modrm {
        Some(m) if f.modrm_mod == 0 && m & 7 == 5 => OperandShape::RipRelative {
            disp: i64::from(f.disp.unwrap_or(0)),
        },
        _ => OperandShape::Other,
    }
}

/// Fields of a legacy-encoded instruction, named as in objtool's decoder.
struct Fields {
    prefix: u8,
    nprefixes: usize,
    last_prefix: u8,
    has_notrack: bool,
    rex_w: bool,
    rex_b: bool,
    op1: u8,
    op2: u8,
    op3: u8,
    modrm: Option<u8>,
    modrm_mod: u8,
    modrm_reg: u8,
    modrm_rm: u8,
    sib_index: u8,
    sib_base: u8,
    has_sib: bool,
    disp: Option<i32>,
    imm: Option<i32>,
}

fn is_legacy_prefix(b: u8) -> bool {
    matches!(
        b,
        0x66 | 0x67 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0xf0 | 0xf2 | 0xf3
    )
}

fn has_modrm(op1: u8, op2: Option<u8>) -> bool {
    match op2 {
        None => {
            matches!(op1, 0x00..=0x03 | 0x08..=0x0b | 0x10..=0x13 | 0x18..=0x1b | 0x20..=0x23 | 0x28..=0x2b | 0x30..=0x33 | 0x38..=0x3b | 0x62 | 0x63 | 0x69 | 0x6b | 0x80..=0x8f | 0xc0 | 0xc1 | 0xc4..=0xc7 | 0xd0..=0xd3 | 0xd8..=0xdf | 0xf6 | 0xf7 | 0xfe | 0xff)
        }
        Some(op2) => {
            !matches!(op2, 0x05..=0x09 | 0x0b | 0x0e | 0x30..=0x37 | 0x77 | 0x80..=0x8f | 0xa0..=0xa2 | 0xa8..=0xaa | 0xc8..=0xcf | 0xff)
        }
    }
}

/// Size of the immediate for the opcodes whose immediate the model reads.
fn imm_size(op1: u8, op2: Option<u8>, opsize16: bool) -> usize {
    match (op1, op2) {
        (0x80 | 0x82 | 0x83 | 0x6a | 0xeb | 0x70..=0x7f | 0xe0..=0xe3, None) => 1,
        (0x81 | 0x68 | 0xe8 | 0xe9, None) => {
            if opsize16 && !matches!(op1, 0xe8 | 0xe9) {
                2
            } else {
                4
            }
        }
        (0xc2, None) => 2,
        (0x0f, Some(0x80..=0x8f)) => 4,
        _ => 0,
    }
}

fn parse_fields(raw: &[u8]) -> Fields {
    let at = |i: usize| raw.get(i).copied().unwrap_or(0);
    let mut i = 0;
    let mut prefix = 0;
    let mut nprefixes = 0;
    let mut last_prefix = 0;
    let mut opsize16 = false;
    let mut has_notrack = false;
    while i < raw.len() && is_legacy_prefix(raw[i]) {
        if nprefixes == 0 {
            prefix = raw[i];
        }
        if raw[i] == 0x66 {
            opsize16 = true;
        }
        has_notrack |= raw[i] == 0x3e;
        last_prefix = raw[i];
        nprefixes += 1;
        i += 1;
    }
    let mut rex = 0u8;
    if (0x40..=0x4f).contains(&at(i)) {
        rex = at(i);
        i += 1;
    }
    let rex_w = rex & 8 != 0;
    let rex_r = (rex >> 2) & 1;
    let rex_x = (rex >> 1) & 1;
    let rex_b = rex & 1;
    let op1 = at(i);
    i += 1;
    let (mut op2, mut op3) = (0, 0);
    let two = if op1 == 0x0f {
        op2 = at(i);
        i += 1;
        if op2 == 0x38 || op2 == 0x3a {
            op3 = at(i);
            i += 1;
        }
        Some(op2)
    } else {
        None
    };
    let mut f = Fields {
        prefix,
        nprefixes,
        last_prefix,
        has_notrack,
        rex_w,
        rex_b: rex_b != 0,
        op1,
        op2,
        op3,
        modrm: None,
        modrm_mod: 0,
        modrm_reg: 0,
        modrm_rm: 0,
        sib_index: 0,
        sib_base: 0,
        has_sib: false,
        disp: None,
        imm: None,
    };
    if op2 == 0x38 || op2 == 0x3a || has_modrm(op1, two) {
        let m = at(i);
        i += 1;
        f.modrm = Some(m);
        f.modrm_mod = m >> 6;
        f.modrm_reg = ((m >> 3) & 7) | (rex_r << 3);
        f.modrm_rm = (m & 7) | (rex_b << 3);
        let mut base_is_bp_nodisp = false;
        if f.modrm_mod != 3 && m & 7 == 4 {
            let s = at(i);
            i += 1;
            f.has_sib = true;
            f.sib_index = ((s >> 3) & 7) | (rex_x << 3);
            f.sib_base = (s & 7) | (rex_b << 3);
            base_is_bp_nodisp = f.modrm_mod == 0 && s & 7 == 5;
        }
        let disp_size = match f.modrm_mod {
            1 => 1,
            2 => 4,
            0 if m & 7 == 5 || base_is_bp_nodisp => 4,
            _ => 0,
        };
        if disp_size == 1 {
            f.disp = Some(i32::from(at(i) as i8));
        } else if disp_size == 4 {
            f.disp = Some(read_i32(raw, i));
        }
        i += disp_size;
    }
    match imm_size(op1, two, opsize16) {
        1 => f.imm = Some(i32::from(at(i) as i8)),
        2 => f.imm = Some(i32::from(i16::from_le_bytes([at(i), at(i + 1)]))),
        4 => f.imm = Some(read_i32(raw, i)),
        _ => {}
    }
    f
}

fn read_i32(raw: &[u8], i: usize) -> i32 {
    let at = |k: usize| raw.get(k).copied().unwrap_or(0);
    i32::from_le_bytes([at(i), at(i + 1), at(i + 2), at(i + 3)])
}

/// The primary opcode byte objtool's model switches on (after the legacy prefixes and REX).
fn first_opcode(raw: &[u8]) -> u8 {
    let mut i = 0;
    while i < raw.len() && is_legacy_prefix(raw[i]) {
        i += 1;
    }
    if raw.get(i).is_some_and(|b| (0x40..=0x4f).contains(b)) {
        i += 1;
    }
    raw.get(i).copied().unwrap_or(0)
}

/// The primary opcodes [`decode_one`] gives a kind, stack operations or a `notrack` flag to; every other
/// instruction decodes to a plain [`InsnKind::Other`] without parsing its fields.
const MODELLED_OPCODE: [bool; 256] = {
    let mut t = [false; 256];
    let mut op = 0;
    while op < 256 {
        t[op] = matches!(
            op,
            0x01 | 0x29
                | 0x0f
                | 0x50..=0x5f
                | 0x68
                | 0x6a
                | 0x70..=0x7f
                | 0x80..=0x83
                | 0x88
                | 0x89
                | 0x8b
                | 0x8d
                | 0x8f
                | 0x90
                | 0x9c
                | 0x9d
                | 0xc2
                | 0xc3
                | 0xc9
                | 0xca
                | 0xcb
                | 0xcc
                | 0xcf
                | 0xe0..=0xe3
                | 0xe8
                | 0xe9
                | 0xeb
                | 0xfc
                | 0xfd
                | 0xff
        );
        op += 1;
    }
    t
};

fn decode_one(raw: &[u8], offset: u64, legacy: bool, in_func: &impl Fn(u64) -> bool) -> Decoded {
    let len = raw.len() as u8;
    let insn = Insn::new(offset, len, InsnKind::Other);
    // VEX/EVEX/XOP: objtool's decoder stops before looking at the opcode. Unmodelled opcodes: no stack
    // operation, no control flow; the immediate only matters for jumps and calls.
    if !legacy || !MODELLED_OPCODE[usize::from(first_opcode(raw))] {
        return Decoded {
            insn,
            ops: Ops::default(),
        };
    }
    model(raw, insn, in_func)
}

/// objtool's decoder model of a legacy-encoded instruction: kind, immediate, stack operations.
fn model(raw: &[u8], mut insn: Insn, in_func: &impl Fn(u64) -> bool) -> Decoded {
    let offset = insn.offset();
    let f = parse_fields(raw);
    insn.immediate = f.imm.or(f.disp).unwrap_or(0);
    let mod_is_reg = f.modrm_mod == 3;
    let mod_is_mem = !mod_is_reg;
    let is_rip = f.modrm_rm & 7 == reg::BP && f.modrm_mod == 0;
    let have_sib = f.modrm_rm & 7 == reg::SP && mod_is_mem;
    let rm_is = |r: u8| {
        if have_sib {
            f.sib_base == r && f.sib_index == reg::SP
        } else {
            f.modrm_rm == r
        }
    };
    let rm_is_mem = |r: u8| mod_is_mem && !is_rip && rm_is(r);
    let rm_is_reg = |r: u8| mod_is_reg && f.modrm_rm == r;
    let disp = f.disp.unwrap_or(0);
    let op = |dest, src| StackOp { dest, src };
    let mut stack_ops = Ops::default();
    let ops = &mut stack_ops;
    let has_modrm = f.modrm.is_some();

    match f.op1 {
        0x01 | 0x29 if f.rex_w && has_modrm && rm_is_reg(reg::SP) => {
            // add/sub reg, %rsp
            ops.push(op(OpDest::Reg(reg::SP), OpSrc::Add(f.modrm_reg, 0)));
        }
        0x50..=0x57 => ops.push(op(
            OpDest::Push,
            OpSrc::Reg((f.op1 & 7) | (u8::from(f.rex_b) << 3)),
        )),
        0x58..=0x5f => ops.push(op(
            OpDest::Reg((f.op1 & 7) | (u8::from(f.rex_b) << 3)),
            OpSrc::Pop,
        )),
        0x68 | 0x6a => ops.push(op(OpDest::Push, OpSrc::Const)),
        0x70..=0x7f => insn.kind = InsnKind::JumpConditional,
        0x80..=0x83 if f.rex_w && has_modrm && rm_is_reg(reg::SP) => {
            let imm = f.imm.unwrap_or(0);
            match f.modrm_reg & 7 {
                0 => ops.push(op(OpDest::Reg(reg::SP), OpSrc::Add(reg::SP, imm))),
                5 => ops.push(op(
                    OpDest::Reg(reg::SP),
                    OpSrc::Add(reg::SP, imm.wrapping_neg()),
                )),
                4 => ops.push(op(OpDest::Reg(reg::SP), OpSrc::And(reg::SP, imm))),
                _ => {}
            }
        }
        0x89 | 0x88 if f.rex_w && has_modrm => decode_mov_store(
            &f, disp, mod_is_reg, is_rip, have_sib, &rm_is_mem, &rm_is_reg, ops,
        ),
        0x8b if f.rex_w && has_modrm => {
            if rm_is_mem(reg::BP) {
                ops.push(op(
                    OpDest::Reg(f.modrm_reg),
                    OpSrc::RegIndirect(reg::BP, disp),
                ));
            } else if rm_is_mem(reg::SP) {
                ops.push(op(
                    OpDest::Reg(f.modrm_reg),
                    OpSrc::RegIndirect(reg::SP, disp),
                ));
            }
        }
        0x8d if has_modrm && !mod_is_reg && f.rex_w && !is_rip => {
            let mut rm = f.modrm_rm;
            if have_sib {
                rm = f.sib_base;
                if f.sib_index != reg::SP {
                    return Decoded { insn, ops: *ops };
                }
            }
            let src = if disp == 0 {
                OpSrc::Reg(rm)
            } else {
                OpSrc::Add(rm, disp)
            };
            ops.push(op(OpDest::Reg(f.modrm_reg), src));
        }
        0x8f => ops.push(op(OpDest::Mem, OpSrc::Pop)),
        0x90 => insn.kind = InsnKind::Nop,
        0x9c => ops.push(op(OpDest::PushF, OpSrc::Const)),
        0x9d => ops.push(op(OpDest::Mem, OpSrc::PopF)),
        0x0f => decode_0f(&f, &mut insn, ops),
        0xc9 => {
            ops.push(op(OpDest::Reg(reg::SP), OpSrc::Reg(reg::BP)));
            ops.push(op(OpDest::Reg(reg::BP), OpSrc::Pop));
        }
        0xcc => insn.kind = InsnKind::Trap,
        0xe0..=0xe3 => insn.kind = InsnKind::JumpConditional,
        0xe9 | 0xeb => insn.kind = InsnKind::JumpUnconditional,
        0xc2 | 0xc3 => insn.kind = InsnKind::Return,
        0xcf if in_func(offset) => {
            // sync_core(): IRET to self inside a function acts as `add $40, %rsp`.
            ops.push(op(OpDest::Reg(reg::SP), OpSrc::Add(reg::SP, 40)));
        }
        0xcf | 0xca | 0xcb => insn.kind = InsnKind::ContextSwitch,
        0xe8 => {
            insn.kind = InsnKind::Call;
            ops.push(op(OpDest::Push, OpSrc::Const));
        }
        0xfc => insn.kind = InsnKind::Cld,
        0xfd => insn.kind = InsnKind::Std,
        0xff if has_modrm => match f.modrm_reg & 7 {
            2 | 3 => {
                insn.kind = InsnKind::CallDynamic;
                insn.notrack = f.has_notrack;
            }
            4 => {
                insn.kind = InsnKind::JumpDynamic;
                insn.notrack = f.has_notrack;
            }
            5 => insn.kind = InsnKind::ContextSwitch,
            6 => ops.push(op(OpDest::Push, OpSrc::Const)),
            _ => {}
        },
        _ => {}
    }
    Decoded {
        insn,
        ops: stack_ops,
    }
}

fn decode_0f(f: &Fields, insn: &mut Insn, ops: &mut Ops) {
    let modrm = f.modrm.unwrap_or(0);
    match f.op2 {
        0x01 => {
            if matches!(f.last_prefix, 0xf3 | 0xf2) {
                if modrm == 0xca {
                    insn.kind = InsnKind::ContextSwitch; // eretu / erets
                }
            } else if modrm == 0xca {
                insn.kind = InsnKind::Clac;
            } else if modrm == 0xcb {
                insn.kind = InsnKind::Stac;
            }
        }
        0x80..=0x8f => insn.kind = InsnKind::JumpConditional,
        0x05 | 0x07 | 0x34 | 0x35 => insn.kind = InsnKind::ContextSwitch,
        0x0b | 0xb9 => insn.kind = InsnKind::Bug,
        0x0d | 0x1f => insn.kind = InsnKind::Nop,
        0x1e if f.prefix == 0xf3 && (modrm == 0xfa || modrm == 0xfb) => insn.kind = InsnKind::Endbr,
        0xa0 | 0xa8 => ops.push(StackOp {
            dest: OpDest::Push,
            src: OpSrc::Const,
        }),
        0xa1 | 0xa9 => ops.push(StackOp {
            dest: OpDest::Mem,
            src: OpSrc::Pop,
        }),
        _ => {}
    }
    let _ = (f.op3, f.nprefixes);
}

/// `mov` with opcode 0x89 (and the 0x88 fall-through objtool shares with it).
#[allow(clippy::too_many_arguments)]
fn decode_mov_store(
    f: &Fields,
    disp: i32,
    mod_is_reg: bool,
    is_rip: bool,
    have_sib: bool,
    rm_is_mem: &impl Fn(u8) -> bool,
    rm_is_reg: &impl Fn(u8) -> bool,
    ops: &mut Ops,
) {
    let op = |dest, src| StackOp { dest, src };
    if f.op1 == 0x89 {
        if f.modrm_reg == reg::SP {
            if mod_is_reg {
                // mov %rsp, reg
                ops.push(op(OpDest::Reg(f.modrm_rm), OpSrc::Reg(reg::SP)));
                return;
            }
            if is_rip {
                return;
            }
            let mut rm = f.modrm_rm;
            if have_sib {
                rm = f.sib_base;
                if f.sib_index != reg::SP {
                    return;
                }
            }
            // mov %rsp, disp(%reg)
            ops.push(op(OpDest::RegIndirect(rm, disp), OpSrc::Reg(reg::SP)));
            return;
        }
        if rm_is_reg(reg::SP) {
            // mov reg, %rsp
            ops.push(op(OpDest::Reg(reg::SP), OpSrc::Reg(f.modrm_reg)));
            return;
        }
    }
    if rm_is_mem(reg::BP) {
        ops.push(op(
            OpDest::RegIndirect(reg::BP, disp),
            OpSrc::Reg(f.modrm_reg),
        ));
    } else if rm_is_mem(reg::SP) {
        ops.push(op(
            OpDest::RegIndirect(reg::SP, disp),
            OpSrc::Reg(f.modrm_reg),
        ));
    }
}

/// AT&T disassembly of the instruction at the start of `bytes`, as if at `ip` (relative branch targets are shown
/// as addresses from `ip`).
pub fn disassemble(bytes: &[u8], ip: u64) -> String {
    if let Some(name) = emulate_prefix(bytes) {
        let inner = bytes.get(EMULATE_PREFIX_LEN..).unwrap_or(&[]);
        return format!(
            "{name} {}",
            disassemble(inner, ip + EMULATE_PREFIX_LEN as u64)
        );
    }
    disassemble_plain(bytes, ip)
}

fn disassemble_plain(bytes: &[u8], ip: u64) -> String {
    use iced_x86::{Formatter, GasFormatter};
    thread_local! {
        // Building a formatter costs more than formatting one instruction: one per thread.
        static GAS: std::cell::RefCell<GasFormatter> = std::cell::RefCell::new({
            let mut f = GasFormatter::new();
            f.options_mut().set_space_after_operand_separator(false);
            f.options_mut().set_uppercase_hex(false);
            f
        });
    }
    // The common forms without iced-x86, whose decoder and formatter tables cost milliseconds to build.
    if let Some(text) = length::fast_len(bytes)
        .filter(|&n| n == bytes.len())
        .and_then(|_| att::format(bytes, ip))
    {
        return text;
    }
    let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let instr = decoder.decode();
    if instr.is_invalid() {
        return "(bad)".into();
    }
    let mut out = String::new();
    GAS.with(|f| f.borrow_mut().format(&instr, &mut out));
    out
}

/// A memory write of an instruction, for callers that ask which stack slots it may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemWrite {
    /// Base register ([`reg`] numbering), `None` for other bases (RIP, segment-only, none).
    pub base: Option<u8>,
    /// An index register is involved (the address is not base+displacement).
    pub indexed: bool,
    /// Displacement.
    pub displacement: i64,
    /// Bytes written (at least 1).
    pub size: u64,
}

/// What an instruction writes, beyond objtool's stack-op model: for consumers that check unwind tables
/// (e.g. whether a register or a stack slot may have changed between two instructions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects {
    /// Registers ([`reg`] numbering) written, conditionally or not.
    pub regs_written: Vec<u8>,
    /// Memory written.
    pub mem_written: Vec<MemWrite>,
    /// Execution may continue at the next instruction (not a jump, return or trap).
    pub falls_through: bool,
}

fn reg_number(r: iced_x86::Register) -> Option<u8> {
    use iced_x86::Register as R;
    const GPRS: [R; 16] = [
        R::RAX,
        R::RCX,
        R::RDX,
        R::RBX,
        R::RSP,
        R::RBP,
        R::RSI,
        R::RDI,
        R::R8,
        R::R9,
        R::R10,
        R::R11,
        R::R12,
        R::R13,
        R::R14,
        R::R15,
    ];
    let full = r.full_register();
    GPRS.iter().position(|&g| g == full).map(|i| i as u8)
}

/// The [`Effects`] of the instruction at the start of `bytes` (at `ip`); `None` if it does not decode.
pub fn effects(bytes: &[u8], ip: u64) -> Option<Effects> {
    use iced_x86::{FlowControl, InstructionInfoFactory, OpAccess};
    let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let instr = decoder.decode();
    if instr.is_invalid() {
        return None;
    }
    let writes = |a: OpAccess| {
        matches!(
            a,
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        )
    };
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(&instr);
    let mut regs_written: Vec<u8> = info
        .used_registers()
        .iter()
        .filter(|u| writes(u.access()))
        .filter_map(|u| reg_number(u.register()))
        .collect();
    regs_written.sort_unstable();
    regs_written.dedup();
    let mem_written = info
        .used_memory()
        .iter()
        .filter(|m| writes(m.access()))
        .map(|m| MemWrite {
            base: reg_number(m.base()),
            indexed: m.index() != iced_x86::Register::None,
            displacement: m.displacement() as i64,
            size: (m.memory_size().size() as u64).max(1),
        })
        .collect();
    let falls_through = matches!(
        instr.flow_control(),
        FlowControl::Next
            | FlowControl::ConditionalBranch
            | FlowControl::Call
            | FlowControl::IndirectCall
    );
    Some(Effects {
        regs_written,
        mem_written,
        falls_through,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Decoded {
        let v = decode_section(bytes, |_| false).expect("decodes");
        assert_eq!(v.len(), 1, "{v:?}");
        v.into_iter().next().expect("one")
    }

    #[test]
    fn push_pop_and_rex_b() {
        assert_eq!(
            one(&[0x55]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Push,
                src: OpSrc::Reg(reg::BP)
            }]
        );
        assert_eq!(
            one(&[0x41, 0x54]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Push,
                src: OpSrc::Reg(reg::R12)
            }]
        );
        assert_eq!(
            one(&[0x41, 0x5d]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Reg(reg::R13),
                src: OpSrc::Pop
            }]
        );
    }

    #[test]
    fn sub_add_and_rsp() {
        // sub $0x10,%rsp ; add $0x18,%rsp ; and $-16,%rsp
        assert_eq!(
            one(&[0x48, 0x83, 0xec, 0x10]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Reg(reg::SP),
                src: OpSrc::Add(reg::SP, -16)
            }]
        );
        assert_eq!(
            one(&[0x48, 0x83, 0xc4, 0x18]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Reg(reg::SP),
                src: OpSrc::Add(reg::SP, 24)
            }]
        );
        assert_eq!(
            one(&[0x48, 0x83, 0xe4, 0xf0]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Reg(reg::SP),
                src: OpSrc::And(reg::SP, -16)
            }]
        );
        // sub $0x1000,%rsp (imm32)
        assert_eq!(
            one(&[0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00])
                .ops
                .to_vec(),
            vec![StackOp {
                dest: OpDest::Reg(reg::SP),
                src: OpSrc::Add(reg::SP, -4096)
            }]
        );
        // 32-bit sub $0x10,%esp has no op
        assert!(one(&[0x83, 0xec, 0x10]).ops.is_empty());
    }

    #[test]
    fn movs_and_leas() {
        // mov %rsp,%rbp
        assert_eq!(
            one(&[0x48, 0x89, 0xe5]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Reg(reg::BP),
                src: OpSrc::Reg(reg::SP)
            }]
        );
        // mov %rbp,%rsp
        assert_eq!(
            one(&[0x48, 0x89, 0xec]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Reg(reg::SP),
                src: OpSrc::Reg(reg::BP)
            }]
        );
        // mov %rbx,0x8(%rsp)
        assert_eq!(
            one(&[0x48, 0x89, 0x5c, 0x24, 0x08]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::RegIndirect(reg::SP, 8),
                src: OpSrc::Reg(reg::BX)
            }]
        );
        // mov -0x8(%rbp),%rbx
        assert_eq!(
            one(&[0x48, 0x8b, 0x5d, 0xf8]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Reg(reg::BX),
                src: OpSrc::RegIndirect(reg::BP, -8)
            }]
        );
        // lea 0x8(%rsp),%r10
        assert_eq!(
            one(&[0x4c, 0x8d, 0x54, 0x24, 0x08]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Reg(reg::R10),
                src: OpSrc::Add(reg::SP, 8)
            }]
        );
        // lea -0x8(%r10),%rsp
        assert_eq!(
            one(&[0x49, 0x8d, 0x62, 0xf8]).ops.to_vec(),
            vec![StackOp {
                dest: OpDest::Reg(reg::SP),
                src: OpSrc::Add(reg::R10, -8)
            }]
        );
        // lea 0x0(%rip),%rax has no op
        assert!(one(&[0x48, 0x8d, 0x05, 0, 0, 0, 0]).ops.is_empty());
    }

    #[test]
    fn emulate_prefixes_are_part_of_one_instruction() {
        // XEN_EMULATE_PREFIX "cpuid", as in xen_cpuid(): one 7-byte instruction, as the kernel's decoder reads it.
        let xen = one(&[0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2]);
        assert_eq!((xen.insn.len, xen.insn.kind), (7, InsnKind::Other));
        assert_eq!(
            disassemble(&[0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2], 0),
            "XEN_EMULATE_PREFIX cpuid"
        );
        // The instruction after the prefix keeps its model: a KVM-prefixed call pushes and targets past the whole.
        let kvm = one(&[0x0f, 0x0b, b'k', b'v', b'm', 0xe8, 1, 0, 0, 0]);
        assert_eq!((kvm.insn.len, kvm.insn.kind), (10, InsnKind::Call));
        assert_eq!(kvm.insn.jump_destination(), 11);
        assert_eq!(kvm.ops.len(), 1);
        // A prefix with nothing after it is a plain ud2 and what follows.
        let v = decode_section(&[0x0f, 0x0b, b'x', b'e', b'n'], |_| false);
        assert!(v.is_err() || v.is_ok_and(|v| v[0].insn.len == 2));
        let v = decode_section(&[0x0f, 0x0b, b'x', b'e', 0x90, 0xc3], |_| false).expect("decodes");
        assert_eq!(v[0].insn.kind, InsnKind::Bug);
        assert_eq!(v[0].insn.len, 2);
    }

    #[test]
    fn kinds() {
        assert_eq!(one(&[0xc3]).insn.kind, InsnKind::Return);
        assert_eq!(one(&[0x0f, 0x0b]).insn.kind, InsnKind::Bug);
        assert_eq!(one(&[0xf3, 0x0f, 0x1e, 0xfa]).insn.kind, InsnKind::Endbr);
        assert_eq!(one(&[0x0f, 0x1f, 0x44, 0, 0]).insn.kind, InsnKind::Nop);
        assert_eq!(one(&[0xff, 0xe0]).insn.kind, InsnKind::JumpDynamic);
        assert_eq!(one(&[0xff, 0xd0]).insn.kind, InsnKind::CallDynamic);
        assert_eq!(one(&[0x0f, 0x05]).insn.kind, InsnKind::ContextSwitch);
        assert_eq!(one(&[0x0f, 0x01, 0xcb]).insn.kind, InsnKind::Stac);
        let call = one(&[0xe8, 0x10, 0, 0, 0]);
        assert_eq!(
            (
                call.insn.kind,
                call.insn.immediate,
                call.insn.jump_destination()
            ),
            (InsnKind::Call, 16, 21)
        );
        let jcc = one(&[0x75, 0xfe]);
        assert_eq!(
            (jcc.insn.kind, jcc.insn.jump_destination()),
            (InsnKind::JumpConditional, 0)
        );
        let leave = one(&[0xc9]);
        assert_eq!(leave.ops.len(), 2);
        // VEX-encoded: no ops, plain type
        assert_eq!(one(&[0xc5, 0xf8, 0x77]).insn.kind, InsnKind::Other);
    }

    #[test]
    fn opcodes_outside_the_model_table_have_nothing_to_model() {
        // Whatever follows the opcode (ModRM naming %rsp/%rbp, SIB, displacement, immediate), with or without
        // REX.W and prefixes: the full model must give a plain instruction for every opcode the table skips.
        let tails: [&[u8]; 4] = [
            &[0xe4, 0x24, 0x08, 0x10, 0, 0, 0],
            &[0x65, 0xf8, 0x01, 0x02, 0x03, 0x04],
            &[0x24, 0x24, 0x10, 0x20, 0x30, 0x40],
            &[0xec, 0x10, 0, 0, 0, 0],
        ];
        for op1 in 0..=255u8 {
            if MODELLED_OPCODE[usize::from(op1)]
                || is_legacy_prefix(op1)
                || (0x40..=0x4f).contains(&op1)
            {
                continue;
            }
            for prefix in [&[][..], &[0x48][..], &[0x3e, 0x49][..]] {
                for tail in tails {
                    let raw: Vec<u8> = prefix
                        .iter()
                        .chain([op1].iter())
                        .chain(tail.iter())
                        .copied()
                        .collect();
                    let got = model(
                        &raw,
                        Insn::new(0, raw.len() as u8, InsnKind::Other),
                        &|_| true,
                    );
                    assert!(
                        got.insn.kind == InsnKind::Other && got.ops.is_empty() && !got.insn.notrack,
                        "opcode {op1:#04x} with {raw:02x?}: {got:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_range_sweep_continues_the_sequential_one() {
        // push %rbp; mov %rsp,%rbp; sub $0x10,%rsp; call rel32; lea 0x8(%rsp),%r10; leave; ret; nopl 0(%rax)
        let bytes: &[u8] = &[
            0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0xe8, 0, 0, 0, 0, 0x4c, 0x8d, 0x54,
            0x24, 0x08, 0xc9, 0xc3, 0x0f, 0x1f, 0x40, 0x00,
        ];
        let whole = decode_section(bytes, |_| false).expect("decodes");
        assert_eq!(whole.len(), 8);
        for split in 0..=bytes.len() {
            let (mut first, end) = decode_range(bytes, 0, split, &|_| false).expect("decodes");
            assert!(end >= split, "stopped before {split}");
            let on_boundary =
                whole.iter().any(|d| d.insn.offset() as usize == split) || split == bytes.len();
            assert_eq!(end == split, on_boundary, "split {split}");
            let (rest, last) = decode_range(bytes, end, bytes.len(), &|_| false).expect("decodes");
            assert_eq!(last, bytes.len());
            first.extend(rest);
            assert_eq!(first, whole, "split {split}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(
            decode_section(&[0x0f, 0xff, 0xff, 0xff], |_| false).is_err()
                || decode_section(&[0x06], |_| false).is_err()
        );
        assert_eq!(
            decode_section(&[0x06], |_| false),
            Err(DecodeError { offset: 0 })
        );
        // a truncated instruction at the end of the section
        assert!(decode_section(&[0x90, 0xe8, 0x00], |_| false).is_err());
    }

    #[test]
    fn effects_of_push_store_and_jump() {
        // push %rbx: writes rsp and the slot below it
        let e = effects(&[0x53], 0).expect("decodes");
        assert_eq!(e.regs_written, vec![reg::SP]);
        assert_eq!(e.mem_written.len(), 1);
        assert!(e.falls_through);
        // mov %rax,0x8(%rsp)
        let e = effects(&[0x48, 0x89, 0x44, 0x24, 0x08], 0).expect("decodes");
        assert!(e.regs_written.is_empty());
        assert_eq!(
            e.mem_written,
            vec![MemWrite {
                base: Some(reg::SP),
                indexed: false,
                displacement: 8,
                size: 8
            }]
        );
        // jmp: does not fall through
        assert!(!effects(&[0xeb, 0x00], 0).expect("decodes").falls_through);
        assert!(effects(&[0x06], 0).is_none());
    }
}
