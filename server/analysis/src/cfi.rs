//! CFI stage, part one: the state model and how one stack operation changes it.
//!
//! [`CfiState`] mirrors objtool's `struct cfi_state` field by field (CFA rule, where each callee-saved register and the
//! return address are saved, SP-derived values held in registers, stack depth, DRAP, hint type and flags), because
//! objtool compares whole states when it checks alternatives. [`Interner`] gives equal states one [`CfiId`], so
//! comparing states is comparing ids. [`apply_op`] is objtool's `update_cfi_state`. This module does no traversal and
//! reports problems as [`OpError`] values for the walk to turn into findings.

use crate::decode::{reg, OpDest, OpSrc, StackOp};
use std::collections::HashMap;
use std::fmt;

/// Pseudo-base: nothing known.
pub const UNDEFINED: i32 = -1;
/// Pseudo-base: relative to the CFA.
pub const CFA: i32 = -2;
/// Pseudo-base: the CFA is stored at `(%rsp)`.
pub const SP_INDIRECT: i32 = -3;
/// Pseudo-base: the CFA is stored at `disp(%rbp)`.
pub const BP_INDIRECT: i32 = -4;

/// A location rule: `base + offset`, base being a register number or a pseudo-base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CfiReg {
    /// Register number ([`crate::decode::reg`]) or [`UNDEFINED`], [`CFA`], [`SP_INDIRECT`], [`BP_INDIRECT`].
    pub base: i32,
    /// Offset from the base.
    pub offset: i32,
}

impl CfiReg {
    /// The undefined rule.
    pub const UNDEF: CfiReg = CfiReg {
        base: UNDEFINED,
        offset: 0,
    };
}

/// Unwind hint type, independent of the kernel era's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum HintType {
    /// A normal call frame.
    Call,
    /// Full `pt_regs` at the CFA.
    Regs,
    /// Partial `pt_regs` (iret frame).
    RegsPartial,
    /// No unwind information (6.4+ `UNWIND_HINT_UNDEFINED`).
    Undefined,
    /// Last frame (6.4+ `UNWIND_HINT_END_OF_STACK`).
    EndOfStack,
}

/// The stack state on entry to an instruction, as objtool's `struct cfi_state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CfiState {
    /// The CFA rule.
    pub cfa: CfiReg,
    /// Where the caller's value of each register is saved (CFA-relative, or BP-relative under DRAP).
    pub regs: [CfiReg; reg::NUM],
    /// Registers currently holding SP-derived values.
    pub vals: [CfiReg; reg::NUM],
    /// CFA − SP.
    pub stack_size: i32,
    /// The DRAP register, or [`UNDEFINED`].
    pub drap_reg: i32,
    /// Where the DRAP register was saved, or −1.
    pub drap_offset: i32,
    /// Hint type.
    pub ty: HintType,
    /// `%rbp` was pushed while the CFA is not BP-based (frame-pointer rules only).
    pub bp_scratch: bool,
    /// The stack was realigned through a DRAP register.
    pub drap: bool,
    /// The frame is a signal/exception frame.
    pub signal: bool,
    /// ≤6.3 `end` flag of hints.
    pub end: bool,
    /// Inside an `UNWIND_HINT_UNDEFINED` region (6.5+): stack ops are ignored.
    pub force_undefined: bool,
}

impl CfiState {
    /// objtool's `init_cfi`: everything undefined, with the era's zero hint type.
    pub fn init(zero_type: HintType) -> Self {
        CfiState {
            cfa: CfiReg::UNDEF,
            regs: [CfiReg::UNDEF; reg::NUM],
            vals: [CfiReg::UNDEF; reg::NUM],
            stack_size: 0,
            drap_reg: UNDEFINED,
            drap_offset: -1,
            ty: zero_type,
            bp_scratch: false,
            drap: false,
            signal: false,
            end: false,
            force_undefined: false,
        }
    }

    /// objtool's state at a function's entry: CFA = rsp+8, return address at CFA−8.
    pub fn func_entry(zero_type: HintType) -> Self {
        let mut s = Self::init(zero_type);
        s.cfa = CfiReg {
            base: i32::from(reg::SP),
            offset: 8,
        };
        s.regs[reg::RA as usize] = CfiReg {
            base: CFA,
            offset: -8,
        };
        s.stack_size = 8;
        s.ty = HintType::Call;
        s
    }

    /// The register rules of the initial function state (for `restore_reg`).
    fn initial_reg(r: usize) -> CfiReg {
        if r == reg::RA as usize {
            CfiReg {
                base: CFA,
                offset: -8,
            }
        } else {
            CfiReg::UNDEF
        }
    }

    /// objtool's `has_modified_stack_frame`.
    pub fn has_modified_stack_frame(&self) -> bool {
        if self.cfa
            != (CfiReg {
                base: i32::from(reg::SP),
                offset: 8,
            })
            || self.drap
            || self.stack_size != 8
        {
            return true;
        }
        (0..reg::NUM).any(|i| self.regs[i] != Self::initial_reg(i))
    }

    /// objtool's `has_valid_stack_frame`.
    pub fn has_valid_stack_frame(&self) -> bool {
        let bp = self.regs[reg::BP as usize];
        let ra = self.regs[reg::RA as usize];
        if self.cfa.base == i32::from(reg::BP)
            && bp
                == (CfiReg {
                    base: CFA,
                    offset: self.cfa.offset.wrapping_neg(),
                })
            && ra
                == (CfiReg {
                    base: CFA,
                    offset: self.cfa.offset.wrapping_neg().wrapping_add(8),
                })
        {
            return true;
        }
        self.drap && bp.base == i32::from(reg::BP)
    }
}

/// Name of a base in words: `rsp`, `rbp`, `(rsp)`, `cfa`, `undef`.
pub fn base_name(base: i32) -> String {
    match base {
        UNDEFINED => "undef".into(),
        CFA => "cfa".into(),
        SP_INDIRECT => "(rsp)".into(),
        BP_INDIRECT => "(rbp)".into(),
        b if (0..reg::NUM as i32).contains(&b) => reg::name(b as u8).into(),
        b => format!("?{b}"),
    }
}

fn fmt_rule(base: i32, offset: i32) -> String {
    match base {
        UNDEFINED => "undefined".into(),
        SP_INDIRECT => format!("[rsp]{offset:+}"),
        BP_INDIRECT => format!("[rbp{offset:+}]"),
        _ => format!("{}{offset:+}", base_name(base)),
    }
}

impl fmt::Display for CfiState {
    /// In words, in the notation of `readelf -wF` where it applies: `CFA=rsp+16, rbx at CFA-16, ra at CFA-8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CFA={}", fmt_rule(self.cfa.base, self.cfa.offset))?;
        for (i, r) in self.regs.iter().enumerate() {
            if r.base == UNDEFINED {
                continue;
            }
            let name = reg::name(i as u8);
            match r.base {
                CFA => write!(f, ", {name} at CFA{:+}", r.offset)?,
                b => write!(f, ", {name} at {}", fmt_rule(b, r.offset))?,
            }
        }
        write!(f, ", stack size {}", self.stack_size)?;
        if self.ty != HintType::Call {
            write!(f, ", type {:?}", self.ty)?;
        }
        if self.drap {
            write!(
                f,
                ", DRAP in {} (saved at {})",
                base_name(self.drap_reg),
                self.drap_offset
            )?;
        }
        if self.signal {
            write!(f, ", signal frame")?;
        }
        if self.force_undefined {
            write!(f, ", undefined region")?;
        }
        if self.bp_scratch {
            write!(f, ", rbp used as scratch")?;
        }
        Ok(())
    }
}

impl CfiState {
    /// The fields in which `self` and `other` differ, in words, `self`'s value first: `CFA rsp+8 vs rsp+24`,
    /// `stack size 8 vs 24`, `rbx saved at CFA-16 vs not saved`, `rax holds SP-8 vs nothing`, `type regs vs call`,
    /// `DRAP …`. objtool compares whole states on alternative sites, so a conflict can lie in a field that no CFA
    /// rule shows; this names it. Empty when the states are equal.
    pub fn differences(&self, other: &CfiState) -> Vec<String> {
        let mut out = Vec::new();
        let rule = |r: &CfiReg| match r.base {
            UNDEFINED => "not saved".to_string(),
            CFA => format!("saved at CFA{:+}", r.offset),
            b => format!("saved at {}", fmt_rule(b, r.offset)),
        };
        if self.cfa != other.cfa {
            out.push(format!(
                "CFA {} vs {}",
                fmt_rule(self.cfa.base, self.cfa.offset),
                fmt_rule(other.cfa.base, other.cfa.offset)
            ));
        }
        if self.stack_size != other.stack_size {
            out.push(format!(
                "stack size {} vs {}",
                self.stack_size, other.stack_size
            ));
        }
        for (i, (a, b)) in self.regs.iter().zip(&other.regs).enumerate() {
            if a != b {
                out.push(format!("{} {} vs {}", reg::name(i as u8), rule(a), rule(b)));
            }
        }
        let val = |r: &CfiReg| match r.base {
            UNDEFINED => "nothing".to_string(),
            b => format!("{}{:+}", base_name(b), r.offset),
        };
        for (i, (a, b)) in self.vals.iter().zip(&other.vals).enumerate() {
            if a != b {
                out.push(format!(
                    "{} holds {} vs {}",
                    reg::name(i as u8),
                    val(a),
                    val(b)
                ));
            }
        }
        if self.ty != other.ty {
            out.push(format!("type {:?} vs {:?}", self.ty, other.ty).to_lowercase());
        }
        if (self.drap, self.drap_reg, self.drap_offset)
            != (other.drap, other.drap_reg, other.drap_offset)
        {
            let d = |s: &CfiState| {
                if s.drap {
                    format!(
                        "DRAP in {} saved at {}",
                        base_name(s.drap_reg),
                        s.drap_offset
                    )
                } else {
                    "no DRAP".to_string()
                }
            };
            out.push(format!("{} vs {}", d(self), d(other)));
        }
        for (name, a, b) in [
            ("signal frame", self.signal, other.signal),
            ("end of stack", self.end, other.end),
            (
                "undefined region",
                self.force_undefined,
                other.force_undefined,
            ),
            ("rbp used as scratch", self.bp_scratch, other.bp_scratch),
        ] {
            if a != b {
                out.push(format!(
                    "{name} {} vs {}",
                    if a { "yes" } else { "no" },
                    if b { "yes" } else { "no" }
                ));
            }
        }
        out
    }

    /// The state in the notation of `readelf -wF` (`--debug-dump=frames-interp`): the CFA rule, then every saved
    /// register in DWARF register order, CFA-relative ones as `c-16`: `CFA=rsp+16 rbx=c-16 ra=c-8`. objtool's
    /// pseudo-bases read `CFA=[rsp]+8` (the CFA is loaded from `(%rsp)`, then the offset added) and
    /// `CFA=[rbp-8]` (loaded from `-8(%rbp)`); an unknown CFA is `CFA=undefined`.
    pub fn to_readelf(&self) -> String {
        // DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8..r15, then the return address column.
        const DWARF_ORDER: [u8; 17] = [0, 2, 1, 3, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        let mut out = format!("CFA={}", fmt_rule(self.cfa.base, self.cfa.offset));
        for r in DWARF_ORDER {
            let Some(rule) = self.regs.get(r as usize) else {
                continue;
            };
            let name = reg::name(r);
            match rule.base {
                UNDEFINED => {}
                CFA => out.push_str(&format!(" {name}=c{:+}", rule.offset)),
                b => out.push_str(&format!(" {name}={}", fmt_rule(b, rule.offset))),
            }
        }
        out
    }

    /// Only the CFA part of [`CfiState::to_readelf`]: `CFA=rsp+16`.
    pub fn cfa_readelf(&self) -> String {
        format!("CFA={}", fmt_rule(self.cfa.base, self.cfa.offset))
    }
}

/// Index of an interned [`CfiState`]. Stored plus one in a `NonZeroU32`, so that an `Option<CfiId>` — the walk
/// keeps one per instruction — takes four bytes; it serialises as the index.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CfiId(std::num::NonZeroU32);

impl CfiId {
    /// The id of the state at `index` (saturating at `u32::MAX - 1`, more states than memory can hold).
    pub fn new(index: u32) -> Self {
        CfiId(std::num::NonZeroU32::MIN.saturating_add(index.min(u32::MAX - 1)))
    }

    /// The index of the state.
    pub fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }
}

impl std::fmt::Debug for CfiId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CfiId({})", self.index())
    }
}

impl serde::Serialize for CfiId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.index() as u32)
    }
}

/// Interns states so that equal states share one id.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    states: Vec<CfiState>,
    ids: HashMap<CfiState, CfiId, FxBuild>,
}

/// The Fx hash (rustc's): a multiply-rotate per word. States are hashed on every new instruction of the walk;
/// SipHash over the ~300 bytes of a state was the walk's largest cost, and no key here comes from an adversary
/// that could exploit a weak hash beyond slowing one analysis down.
/// A `HashMap` hasher for the walk's small keys (states, state transitions).
pub(crate) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

impl Interner {
    /// The id of `state`, adding it if new.
    pub fn intern(&mut self, state: &CfiState) -> CfiId {
        if let Some(&id) = self.ids.get(state) {
            return id;
        }
        let id = CfiId::new(self.states.len() as u32);
        self.states.push(state.clone());
        self.ids.insert(state.clone(), id);
        id
    }

    /// The state of an id.
    pub fn get(&self, id: CfiId) -> &CfiState {
        &self.states[id.index()]
    }

    /// Number of distinct states.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// No states yet.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// A stack operation objtool cannot follow; each carries objtool's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpError {
    /// A stack op while the CFA is undefined, inside a function.
    UndefinedStackState,
    /// A write to the CFA base register objtool does not model.
    UnsupportedStackRegisterModification,
    /// `and` on `%rsp` outside the DRAP and frame-pointer patterns.
    UnsupportedStackPointerRealignment,
    /// An op combination objtool does not model.
    UnknownStackRelatedInstruction,
    /// A memory destination other than pop-to-memory.
    UnknownStackRelatedMemoryOperation,
}

impl OpError {
    /// objtool's wording.
    pub fn message(self) -> &'static str {
        match self {
            OpError::UndefinedStackState => "undefined stack state",
            OpError::UnsupportedStackRegisterModification => {
                "unsupported stack register modification"
            }
            OpError::UnsupportedStackPointerRealignment => "unsupported stack pointer realignment",
            OpError::UnknownStackRelatedInstruction => "unknown stack-related instruction",
            OpError::UnknownStackRelatedMemoryOperation => "unknown stack-related memory operation",
        }
    }
}

/// Context of one op application.
#[derive(Debug, Clone, Copy)]
pub struct OpContext {
    /// The instruction is inside an `STT_FUNC`.
    pub in_func: bool,
    /// The next instruction carries an unwind hint.
    pub next_has_hint: bool,
    /// Frame-pointer rules (`--stackval`).
    pub stackval: bool,
}

impl OpContext {
    /// The context as three bits (a memo key).
    pub fn bits(self) -> u8 {
        u8::from(self.in_func) | u8::from(self.next_has_hint) << 1 | u8::from(self.stackval) << 2
    }
}

fn callee_saved(r: u8) -> bool {
    matches!(
        r,
        reg::BP | reg::BX | reg::R12 | reg::R13 | reg::R14 | reg::R15
    )
}

fn save_reg(s: &mut CfiState, r: u8, base: i32, offset: i32) {
    let slot = &mut s.regs[r as usize];
    if callee_saved(r) && slot.base == UNDEFINED {
        *slot = CfiReg { base, offset };
    }
}

fn restore_reg(s: &mut CfiState, r: u8) {
    s.regs[r as usize] = CfiState::initial_reg(r as usize);
}

const SP: i32 = reg::SP as i32;
const BP: i32 = reg::BP as i32;

/// objtool's `update_cfi_state`: applies one stack operation to `s`.
pub fn apply_op(s: &mut CfiState, op: &StackOp, cx: OpContext) -> Result<(), OpError> {
    if s.force_undefined {
        return Ok(());
    }
    if s.cfa.base == UNDEFINED {
        return if cx.in_func {
            Err(OpError::UndefinedStackState)
        } else {
            Ok(())
        };
    }
    if matches!(s.ty, HintType::Regs | HintType::RegsPartial) {
        apply_op_regs(s, op);
        return Ok(());
    }
    match op.dest {
        OpDest::Reg(dreg) => {
            let d = i32::from(dreg);
            match op.src {
                OpSrc::Reg(sreg) => {
                    let sr = i32::from(sreg);
                    if sr == SP
                        && d == BP
                        && s.cfa.base == SP
                        && s.regs[reg::BP as usize]
                            == (CfiReg {
                                base: CFA,
                                offset: s.cfa.offset.wrapping_neg(),
                            })
                    {
                        // mov %rsp, %rbp
                        s.cfa.base = d;
                        s.bp_scratch = false;
                    } else if sr == SP && d == BP && s.drap {
                        // drap: mov %rsp, %rbp
                        s.regs[reg::BP as usize] = CfiReg {
                            base: BP,
                            offset: s.stack_size.wrapping_neg(),
                        };
                        s.bp_scratch = false;
                    } else if sr == SP && s.cfa.base == SP {
                        // mov %rsp, %reg
                        s.vals[dreg as usize] = CfiReg {
                            base: CFA,
                            offset: s.stack_size.wrapping_neg(),
                        };
                    } else if sr == BP && d == SP && (s.cfa.base == BP || s.cfa.base == s.drap_reg)
                    {
                        // mov %rbp, %rsp
                        s.stack_size = s.regs[reg::BP as usize].offset.wrapping_neg();
                    } else if d == s.cfa.base {
                        // mov %reg, %rsp
                        let v = s.vals[sreg as usize];
                        if s.cfa.base == SP && v.base == CFA {
                            s.cfa.offset = v.offset.wrapping_neg();
                            s.stack_size = s.cfa.offset;
                        } else if s.cfa.base == SP
                            && v.base == SP_INDIRECT
                            && v.offset == s.cfa.offset
                        {
                            // stack swizzle
                            s.cfa.base = SP_INDIRECT;
                        } else {
                            s.cfa = CfiReg {
                                base: UNDEFINED,
                                offset: 0,
                            };
                        }
                    } else if d == SP
                        && s.vals[sreg as usize].base == SP_INDIRECT
                        && s.vals[sreg as usize].offset == s.cfa.offset
                    {
                        // swizzle without a CFA change: pretend to be a push
                        s.stack_size = s.stack_size.wrapping_add(8);
                    }
                }
                OpSrc::Add(sreg, imm) => {
                    let sr = i32::from(sreg);

                    if d == SP && sr == SP {
                        // add imm, %rsp
                        s.stack_size = s.stack_size.wrapping_sub(imm);
                        if s.cfa.base == SP {
                            s.cfa.offset = s.cfa.offset.wrapping_sub(imm);
                        }
                        return Ok(());
                    }
                    if d == SP && sr == BP {
                        if !(s.cfa.base == BP && s.cfa.offset == 0) {
                            // lea disp(%rbp), %rsp
                            s.stack_size = imm
                                .wrapping_add(s.regs[reg::BP as usize].offset)
                                .wrapping_neg();
                        }
                        return Ok(());
                    }
                    if !s.drap
                        && sr == SP
                        && d == BP
                        && s.cfa.base == SP
                        && s.regs[reg::BP as usize]
                            == (CfiReg {
                                base: CFA,
                                offset: s.cfa.offset.wrapping_neg().wrapping_add(imm),
                            })
                    {
                        // lea disp(%rsp), %rbp
                        s.cfa.base = BP;
                        s.cfa.offset = s.cfa.offset.wrapping_sub(imm);
                        s.bp_scratch = false;
                        return Ok(());
                    }
                    if sr == SP && s.cfa.base == SP {
                        // drap: lea disp(%rsp), %drap
                        s.drap_reg = d;
                        s.vals[dreg as usize] = CfiReg {
                            base: CFA,
                            offset: s.stack_size.wrapping_neg().wrapping_add(imm),
                        };
                        return Ok(());
                    }
                    if s.drap && d == SP && sr == s.drap_reg {
                        // drap: lea disp(%drap), %rsp
                        s.cfa.base = SP;
                        s.stack_size = imm.wrapping_neg();
                        s.cfa.offset = imm.wrapping_neg();
                        s.drap_reg = UNDEFINED;
                        s.drap = false;
                        return Ok(());
                    }
                    if d == s.cfa.base && !cx.next_has_hint {
                        return Err(OpError::UnsupportedStackRegisterModification);
                    }
                }
                OpSrc::And(_, _) => {
                    if d != SP
                        || (s.drap_reg != UNDEFINED && s.cfa.base != SP)
                        || (s.drap_reg == UNDEFINED && s.cfa.base != BP)
                    {
                        return Err(OpError::UnsupportedStackPointerRealignment);
                    }
                    if s.drap_reg != UNDEFINED {
                        // drap: and imm, %rsp
                        s.cfa = CfiReg {
                            base: s.drap_reg,
                            offset: 0,
                        };
                        s.stack_size = 0;
                        s.drap = true;
                    }
                }
                OpSrc::Pop | OpSrc::PopF => {
                    if d == SP && s.cfa.base == SP_INDIRECT {
                        // pop %rsp: restore from a stack swizzle
                        s.cfa.base = SP;
                        return Ok(());
                    }
                    if !s.drap && d == s.cfa.base {
                        // pop %rbp
                        s.cfa.base = SP;
                    }
                    if s.drap
                        && s.cfa.base == BP_INDIRECT
                        && d == s.drap_reg
                        && s.drap_offset == s.stack_size.wrapping_neg()
                    {
                        // drap: pop %drap
                        s.cfa = CfiReg {
                            base: s.drap_reg,
                            offset: 0,
                        };
                        s.drap_offset = -1;
                    } else if s.stack_size == s.regs[dreg as usize].offset.wrapping_neg() {
                        // pop %reg
                        restore_reg(s, dreg);
                    }
                    s.stack_size = s.stack_size.wrapping_sub(8);
                    if s.cfa.base == SP {
                        s.cfa.offset = s.cfa.offset.wrapping_sub(8);
                    }
                }
                OpSrc::RegIndirect(sreg, disp) => {
                    let sr = i32::from(sreg);

                    if !s.drap && d == s.cfa.base && d == BP {
                        // mov disp(%rsp), %rbp
                        s.cfa = CfiReg {
                            base: SP,
                            offset: s.stack_size,
                        };
                    }
                    if s.drap && sr == BP && disp == s.drap_offset {
                        // drap: mov disp(%rbp), %drap
                        s.cfa = CfiReg {
                            base: s.drap_reg,
                            offset: 0,
                        };
                        s.drap_offset = -1;
                    }
                    let slot = s.regs[dreg as usize].offset;
                    // mov disp(%rbp), %reg under DRAP; mov disp(%rbp|%rsp), %reg from the save slot
                    let from_slot = (s.drap && sr == BP && disp == slot)
                        || (sr == s.cfa.base && disp == slot.wrapping_add(s.cfa.offset))
                        || (sr == SP && disp == slot.wrapping_add(s.stack_size));
                    if from_slot {
                        restore_reg(s, dreg);
                    }
                }
                OpSrc::Const => return Err(OpError::UnknownStackRelatedInstruction),
            }
        }
        OpDest::Push | OpDest::PushF => {
            s.stack_size = s.stack_size.wrapping_add(8);
            if s.cfa.base == SP {
                s.cfa.offset = s.cfa.offset.wrapping_add(8);
            }
            let OpSrc::Reg(sreg) = op.src else {
                return Ok(());
            };
            let sr = i32::from(sreg);
            if s.drap {
                if sr == s.cfa.base && sr == s.drap_reg {
                    // drap: push %drap
                    s.cfa = CfiReg {
                        base: BP_INDIRECT,
                        offset: s.stack_size.wrapping_neg(),
                    };
                    s.drap_offset = s.stack_size.wrapping_neg();
                } else if sr == BP && s.cfa.base == s.drap_reg {
                    // drap: push %rbp
                    s.stack_size = 0;
                } else {
                    // drap: push %reg
                    let o = s.stack_size.wrapping_neg();
                    save_reg(s, sreg, BP, o);
                }
            } else {
                let o = s.stack_size.wrapping_neg();
                save_reg(s, sreg, CFA, o);
            }
            if cx.stackval && cx.in_func && sr == BP && s.cfa.base != BP {
                s.bp_scratch = true;
            }
        }
        OpDest::RegIndirect(dreg, disp) => {
            let d = i32::from(dreg);

            let OpSrc::Reg(sreg) = op.src else {
                return Ok(());
            };
            let sr = i32::from(sreg);
            if s.drap {
                if sr == s.cfa.base && sr == s.drap_reg {
                    // drap: mov %drap, disp(%rbp)
                    s.cfa = CfiReg {
                        base: BP_INDIRECT,
                        offset: disp,
                    };
                    s.drap_offset = disp;
                } else {
                    save_reg(s, sreg, BP, disp);
                }
            } else if d == s.cfa.base {
                let o = disp.wrapping_sub(s.cfa.offset);
                save_reg(s, sreg, CFA, o);
            } else if d == SP {
                let o = disp.wrapping_sub(s.stack_size);
                save_reg(s, sreg, CFA, o);
            } else if sr == SP && disp == 0 {
                // mov %rsp, (%reg): arm a stack swizzle
                s.vals[dreg as usize] = CfiReg {
                    base: SP_INDIRECT,
                    offset: s.cfa.offset,
                };
            }
        }
        OpDest::Mem => {
            if !matches!(op.src, OpSrc::Pop | OpSrc::PopF) {
                return Err(OpError::UnknownStackRelatedMemoryOperation);
            }
            s.stack_size = s.stack_size.wrapping_sub(8);
            if s.cfa.base == SP {
                s.cfa.offset = s.cfa.offset.wrapping_sub(8);
            }
        }
    }
    Ok(())
}

/// objtool's `update_cfi_state_regs`: inside `pt_regs` frames only the SP-based CFA offset is tracked.
fn apply_op_regs(s: &mut CfiState, op: &StackOp) {
    if s.cfa.base != SP && s.cfa.base != SP_INDIRECT {
        return;
    }
    if matches!(op.dest, OpDest::Push | OpDest::PushF) {
        s.cfa.offset = s.cfa.offset.wrapping_add(8);
    }
    if matches!(op.src, OpSrc::Pop | OpSrc::PopF) {
        s.cfa.offset = s.cfa.offset.wrapping_sub(8);
    }
    if let (OpDest::Reg(reg::SP), OpSrc::Add(reg::SP, imm)) = (op.dest, op.src) {
        s.cfa.offset = s.cfa.offset.wrapping_sub(imm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_state_id_is_four_bytes_and_serialises_as_its_index() {
        assert_eq!(std::mem::size_of::<Option<CfiId>>(), 4);
        let mut interner = Interner::default();
        let a = interner.intern(&CfiState::init(HintType::Call));
        assert_eq!((a.index(), format!("{a:?}")), (0, "CfiId(0)".to_owned()));
        assert_eq!(serde_json::to_string(&a).ok().as_deref(), Some("0"));
        assert_eq!(CfiId::new(7).index(), 7);
        assert!(CfiId::new(1) < CfiId::new(2));
    }

    #[test]
    fn differences_name_the_fields_no_cfa_rule_shows() {
        let a = CfiState::func_entry(HintType::Call);
        assert!(a.differences(&a).is_empty());
        // A frame-pointer function: the CFA is rbp-based on both sides, only the stack depth differs.
        let mut fp = a.clone();
        fp.cfa = CfiReg {
            base: i32::from(reg::BP),
            offset: 16,
        };
        fp.regs[reg::BP as usize] = CfiReg {
            base: CFA,
            offset: -16,
        };
        fp.stack_size = 16;
        let mut deeper = fp.clone();
        deeper.stack_size = 24;
        deeper.regs[reg::BX as usize] = CfiReg {
            base: CFA,
            offset: -24,
        };
        assert_eq!(
            fp.differences(&deeper),
            vec!["stack size 16 vs 24", "rbx not saved vs saved at CFA-24"]
        );
        let mut regs = a.clone();
        regs.ty = HintType::Regs;
        assert_eq!(a.differences(&regs), vec!["type call vs regs"]);
    }

    const CX: OpContext = OpContext {
        in_func: true,
        next_has_hint: false,
        stackval: false,
    };

    fn run(ops: &[StackOp]) -> CfiState {
        let mut s = CfiState::func_entry(HintType::Undefined);
        for op in ops {
            apply_op(&mut s, op, CX).expect("op applies");
        }
        s
    }

    #[test]
    fn frame_setup_and_teardown() {
        let push_bp = StackOp {
            dest: OpDest::Push,
            src: OpSrc::Reg(reg::BP),
        };
        let mov = StackOp {
            dest: OpDest::Reg(reg::BP),
            src: OpSrc::Reg(reg::SP),
        };
        let s = run(&[push_bp, mov]);
        assert_eq!(
            s.cfa,
            CfiReg {
                base: BP,
                offset: 16
            }
        );
        assert_eq!(
            s.regs[reg::BP as usize],
            CfiReg {
                base: CFA,
                offset: -16
            }
        );
        assert!(s.has_valid_stack_frame());
        let pop_bp = StackOp {
            dest: OpDest::Reg(reg::BP),
            src: OpSrc::Pop,
        };
        let s = run(&[push_bp, mov, pop_bp]);
        assert_eq!(s, CfiState::func_entry(HintType::Undefined));
        assert_eq!(s.to_string(), "CFA=rsp+8, ra at CFA-8, stack size 8");
    }

    #[test]
    fn interner_shares_ids() {
        let mut i = Interner::default();
        let a = i.intern(&CfiState::func_entry(HintType::Undefined));
        let b = i.intern(&CfiState::func_entry(HintType::Undefined));
        let c = i.intern(&CfiState::init(HintType::Undefined));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn undefined_cfa_in_function_is_an_error() {
        let mut s = CfiState::init(HintType::Undefined);
        let push = StackOp {
            dest: OpDest::Push,
            src: OpSrc::Const,
        };
        assert_eq!(
            apply_op(&mut s, &push, CX),
            Err(OpError::UndefinedStackState)
        );
        assert_eq!(
            apply_op(
                &mut s,
                &push,
                OpContext {
                    in_func: false,
                    ..CX
                }
            ),
            Ok(())
        );
    }

    #[test]
    fn readelf_notation() {
        let mut s = CfiState::func_entry(HintType::Call);
        assert_eq!(s.to_readelf(), "CFA=rsp+8 ra=c-8");
        s.cfa.offset = 16;
        s.regs[reg::BX as usize] = CfiReg {
            base: CFA,
            offset: -16,
        };
        assert_eq!(s.to_readelf(), "CFA=rsp+16 rbx=c-16 ra=c-8");
        s.cfa = CfiReg {
            base: BP,
            offset: 16,
        };
        s.regs[reg::BP as usize] = CfiReg {
            base: CFA,
            offset: -16,
        };
        assert_eq!(s.to_readelf(), "CFA=rbp+16 rbx=c-16 rbp=c-16 ra=c-8");
        assert_eq!(s.cfa_readelf(), "CFA=rbp+16");
        s.cfa = CfiReg {
            base: SP_INDIRECT,
            offset: 8,
        };
        assert_eq!(s.cfa_readelf(), "CFA=[rsp]+8");
        s.cfa = CfiReg {
            base: BP_INDIRECT,
            offset: -8,
        };
        assert_eq!(s.cfa_readelf(), "CFA=[rbp-8]");
        assert_eq!(
            CfiState::init(HintType::Undefined).to_readelf(),
            "CFA=undefined"
        );
    }
}
