//! Emitted unwind tables: `.eh_frame` and `.debug_frame` read as data, evaluated into per-address rules, and
//! compared with the CFI altcfi computes from the instructions.
//!
//! Assemblers build these tables from `.cfi_*` directives; compilers emit the directives themselves. Each FDE (frame
//! description entry) covers one code range and, evaluated, gives a row per address range: the CFA rule and where
//! each register of the caller is saved. This module
//!
//! - reads both tables with [`gimli`], applying the relocations of a relocatable object first (an FDE's
//!   `initial_location` is an `R_X86_64_PC32` relocation in `.eh_frame` and an `R_X86_64_64` one in
//!   `.debug_frame`, both to a text section), so that every FDE resolves to an ELF section and an offset range;
//! - evaluates every FDE's rows ([`UnwindTables::read`], [`Fde::rows`]) into [`CfaRule`] and [`SavedRule`] values,
//!   with the simple DWARF expressions compilers use for realigned stacks decoded into rules;
//! - compares them with altcfi's state on entry to every instruction the walk reached ([`check_unwind_tables`]):
//!   a DWARF row applies from its address until the next row, which is the state on entry to the instruction at
//!   that address, i.e. [`crate::analysis::InsnInfo::cfi`];
//! - answers "what does the table say here" for hovers ([`emitted_rule_at`]).
//!
//! What is compared: the CFA rule (register + offset, or the `*(reg + off)` forms), and the save rules of the
//! registers objtool tracks (`rbx`, `rbp`, `r12`–`r15`) and of the return address, all as CFA-relative (or, under a
//! DRAP realignment, `rbp`-relative) locations. Everything else a table can say (saved argument registers, `r8`
//! and friends, `DW_CFA_GNU_args_size`, arbitrary expressions) is read but not compared: altcfi does not track it.
//!
//! Architecture invariant: this module takes bytes and plain analysis data and returns plain data; it does no I/O,
//! never panics on malformed input (bad tables are an [`EhFrameError`]), and knows nothing about LSP or the CLI.

use crate::analysis::{Analysis, InsnInfo};
use crate::cfi::{CfiState, HintType, BP_INDIRECT, CFA, SP_INDIRECT, UNDEFINED};
use crate::decode::{self, reg};
use crate::findings::{Finding, FindingKind, Location};
use crate::object::{ElfKind, Object, ObjectError, SymKind};
use gimli::{
    BaseAddresses, CieOrFde, DebugFrame, EhFrame, EndianSlice, LittleEndian, UnwindContext,
    UnwindSection,
};
use serde::Serialize;
use std::fmt;

/// Why the unwind tables of an object could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EhFrameError {
    /// The ELF container is unreadable.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// A relocation in a table section could not be applied.
    #[error("{table}: bad relocation at offset {offset:#x}: {reason}")]
    Relocation {
        /// The table section.
        table: TableKind,
        /// Offset of the relocated field in the section.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The table is malformed (a CIE or FDE does not parse, or its instructions do not evaluate).
    #[error("{table}: malformed entry at offset {offset:#x}: {source}")]
    Dwarf {
        /// The table section.
        table: TableKind,
        /// Offset of the entry in the section (0 when the entry itself could not be located).
        offset: u64,
        /// The underlying gimli error.
        #[source]
        source: gimli::Error,
    },
}

/// Which table an FDE came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum TableKind {
    /// `.eh_frame` (what unwinders at run time use).
    EhFrame,
    /// `.debug_frame` (what debuggers use when there is no `.eh_frame`).
    DebugFrame,
}

impl TableKind {
    /// The section name.
    pub fn section_name(self) -> &'static str {
        match self {
            TableKind::EhFrame => ".eh_frame",
            TableKind::DebugFrame => ".debug_frame",
        }
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.section_name())
    }
}

/// DWARF register numbers of x86-64 (System V psABI), the numbering every rule here uses.
pub mod dwarf_reg {
    /// `%rax`.
    pub const RAX: u16 = 0;
    /// `%rdx`.
    pub const RDX: u16 = 1;
    /// `%rcx`.
    pub const RCX: u16 = 2;
    /// `%rbx`.
    pub const RBX: u16 = 3;
    /// `%rsi`.
    pub const RSI: u16 = 4;
    /// `%rdi`.
    pub const RDI: u16 = 5;
    /// `%rbp`.
    pub const RBP: u16 = 6;
    /// `%rsp`.
    pub const RSP: u16 = 7;
    /// The return address column.
    pub const RA: u16 = 16;

    /// The name of a DWARF register number as `readelf -wF` prints it (`rax` … `r15`, `ra`, `xmm0`, `r42`).
    pub fn name(r: u16) -> String {
        const NAMES: [&str; 17] = [
            "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15", "ra",
        ];
        match r {
            0..=16 => NAMES[r as usize].to_string(),
            17..=32 => format!("xmm{}", r - 17),
            _ => format!("r{r}"),
        }
    }
}

/// The DWARF number of an altcfi register number ([`crate::decode::reg`]).
pub fn dwarf_of(r: u8) -> Option<u16> {
    Some(match r {
        reg::AX => 0,
        reg::DX => 1,
        reg::CX => 2,
        reg::BX => 3,
        reg::SI => 4,
        reg::DI => 5,
        reg::BP => 6,
        reg::SP => 7,
        8..=15 => u16::from(r),
        reg::RA => 16,
        _ => return None,
    })
}

/// The registers whose save rules are compared, as (altcfi number, DWARF number): the callee-saved registers
/// objtool tracks and the return address.
pub const COMPARED_REGS: [(u8, u16); 7] = [
    (reg::BX, 3),
    (reg::BP, 6),
    (reg::R12, 12),
    (reg::R13, 13),
    (reg::R14, 14),
    (reg::R15, 15),
    (reg::RA, 16),
];

/// How the CFA is computed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum CfaRule {
    /// `CFA = reg + offset` (`DW_CFA_def_cfa`).
    Register {
        /// DWARF register number.
        reg: u16,
        /// Offset.
        offset: i64,
    },
    /// `CFA = *(reg + offset) + add`: the CFA is stored in memory (a `DW_CFA_def_cfa_expression` of the form
    /// `DW_OP_breg<reg> offset; DW_OP_deref [; DW_OP_plus_uconst add]`), as in gcc's DRAP frames and ORC's
    /// indirect rules.
    Deref {
        /// DWARF register number.
        reg: u16,
        /// Offset added before the load.
        offset: i64,
        /// Offset added after the load.
        add: i64,
    },
    /// Any other DWARF expression, as its bytes.
    Expression(Vec<u8>),
}

impl fmt::Display for CfaRule {
    /// `readelf -wF` notation where it has one: `rsp+8`, `[rbp-8]`, `[rsp]+16`, `exp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CfaRule::Register { reg, offset } => write!(f, "{}{offset:+}", dwarf_reg::name(*reg)),
            CfaRule::Deref { reg, offset, add } => {
                write!(f, "[{}{offset:+}]", dwarf_reg::name(*reg))?;
                if *add != 0 {
                    write!(f, "{add:+}")?;
                }
                Ok(())
            }
            CfaRule::Expression(_) => f.write_str("exp"),
        }
    }
}

/// Where the caller's value of one register is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum SavedRule {
    /// No rule in the table: by the x86-64 ABI's convention the register keeps its value (callee-saved registers)
    /// or is lost (others).
    NoRule,
    /// `DW_CFA_undefined`: the caller's value cannot be recovered.
    Undefined,
    /// `DW_CFA_same_value`: the register was not changed.
    SameValue,
    /// Saved at `CFA + offset` (`DW_CFA_offset`).
    AtCfa(i64),
    /// The value is `CFA + offset` (`DW_CFA_val_offset`).
    ValCfa(i64),
    /// The value is in another register (`DW_CFA_register`), DWARF-numbered.
    InRegister(u16),
    /// Saved at `reg + offset` (`DW_CFA_expression` of the form `DW_OP_breg<reg> offset`), as gcc describes
    /// registers saved in a DRAP frame.
    AtRegOffset {
        /// DWARF register number.
        reg: u16,
        /// Offset.
        offset: i64,
    },
    /// Saved at the address of another DWARF expression, as its bytes.
    Expression(Vec<u8>),
    /// The value is another DWARF expression, as its bytes.
    ValExpression(Vec<u8>),
    /// A rule altcfi does not model (`Architectural`, constants).
    Other,
}

impl SavedRule {
    /// The rule in `readelf -wF` notation: `u` (no rule or undefined), `s`, `c-16`, `v+8`, `r6`, `exp`, `vexp`.
    /// (`[rbp+0]` for a decoded `DW_CFA_expression`, which readelf prints as `exp`.)
    pub fn readelf(&self) -> String {
        match self {
            SavedRule::NoRule | SavedRule::Undefined => "u".into(),
            SavedRule::SameValue => "s".into(),
            SavedRule::AtCfa(o) => format!("c{o:+}"),
            SavedRule::ValCfa(o) => format!("v{o:+}"),
            SavedRule::InRegister(r) => format!("r{r}"),
            SavedRule::AtRegOffset { reg, offset } => {
                format!("[{}{offset:+}]", dwarf_reg::name(*reg))
            }
            SavedRule::Expression(_) => "exp".into(),
            SavedRule::ValExpression(_) => "vexp".into(),
            SavedRule::Other => "?".into(),
        }
    }

    /// Whether the rule says the register holds the caller's value (nothing saved).
    fn is_unsaved(&self) -> bool {
        matches!(
            self,
            SavedRule::NoRule | SavedRule::SameValue | SavedRule::Undefined
        )
    }
}

impl fmt::Display for SavedRule {
    /// In words: `not saved`, `saved at CFA-16`, `saved at [rbp-8]`, `in rax`, `undefined`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SavedRule::NoRule => f.write_str("not saved"),
            SavedRule::Undefined => f.write_str("undefined"),
            SavedRule::SameValue => f.write_str("not saved (same value)"),
            SavedRule::AtCfa(o) => write!(f, "saved at CFA{o:+}"),
            SavedRule::ValCfa(o) => write!(f, "= CFA{o:+}"),
            SavedRule::InRegister(r) => write!(f, "in {}", dwarf_reg::name(*r)),
            SavedRule::AtRegOffset { reg, offset } => {
                write!(f, "saved at [{}{offset:+}]", dwarf_reg::name(*reg))
            }
            SavedRule::Expression(_) => f.write_str("saved at a DWARF expression"),
            SavedRule::ValExpression(_) => f.write_str("= a DWARF expression"),
            SavedRule::Other => f.write_str("an architectural rule"),
        }
    }
}

/// One evaluated row of an FDE: the rules that apply to `[start, end)` of the FDE's section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmittedRow {
    /// First offset in the section the row applies to.
    pub start: u64,
    /// One past the last offset.
    pub end: u64,
    /// The CFA rule.
    pub cfa: CfaRule,
    /// Every register with a rule, by DWARF number, in ascending order. Registers not listed have
    /// [`SavedRule::NoRule`].
    pub regs: Vec<(u16, SavedRule)>,
}

impl EmittedRow {
    /// The rule of a DWARF register.
    pub fn reg(&self, dwarf: u16) -> SavedRule {
        self.regs
            .iter()
            .find(|(r, _)| *r == dwarf)
            .map(|(_, s)| s.clone())
            .unwrap_or(SavedRule::NoRule)
    }
}

impl fmt::Display for EmittedRow {
    /// `CFA=rsp+16, rbx saved at CFA-16, ra saved at CFA-8`, in the style of [`CfiState`]'s display.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CFA={}", self.cfa)?;
        for (r, rule) in &self.regs {
            if !rule.is_unsaved() {
                write!(f, ", {} {rule}", dwarf_reg::name(*r))?;
            }
        }
        Ok(())
    }
}

/// One FDE, resolved to an ELF section and evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fde {
    /// The table it came from.
    pub table: TableKind,
    /// Offset of the FDE in its table section.
    pub offset: u64,
    /// The ELF section index of the code it covers.
    pub section: usize,
    /// First covered offset in that section.
    pub start: u64,
    /// One past the last covered offset.
    pub end: u64,
    /// Evaluated rows, in address order, covering `[start, end)` without gaps.
    pub rows: Vec<EmittedRow>,
}

impl Fde {
    /// The row in effect at `offset` (the last row starting at or before it), if the FDE covers it.
    pub fn row_at(&self, offset: u64) -> Option<&EmittedRow> {
        if !(self.start..self.end).contains(&offset) {
            return None;
        }
        let i = self.rows.partition_point(|r| r.start <= offset);
        self.rows.get(i.checked_sub(1)?)
    }
}

/// Every FDE of `.eh_frame` and `.debug_frame` in an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnwindTables {
    /// FDEs, `.eh_frame` first, each table in section order.
    pub fdes: Vec<Fde>,
    /// FDEs whose initial location resolved to no executable section (table and FDE offset), e.g. FDEs of
    /// discarded sections.
    pub unresolved: Vec<(TableKind, u64)>,
}

impl UnwindTables {
    /// Reads and evaluates both tables of an object. An object without either table gives empty tables.
    pub fn read(data: &[u8]) -> Result<Self, EhFrameError> {
        let obj = Object::parse(data)?;
        Self::from_object(&obj)
    }

    /// As [`UnwindTables::read`], from an already parsed object.
    pub fn from_object(obj: &Object<'_>) -> Result<Self, EhFrameError> {
        let layout = Layout::new(obj);
        let mut out = UnwindTables::default();
        for table in [TableKind::EhFrame, TableKind::DebugFrame] {
            let Some(sec) = obj.section_by_name(table.section_name()) else {
                continue;
            };
            let bytes = relocated(obj, &layout, sec.index, table)?;
            let base = layout.base(sec.index);
            read_table(table, &bytes, base, &layout, &mut out)?;
        }
        Ok(out)
    }

    /// Whether the object has any FDE at all.
    pub fn is_empty(&self) -> bool {
        self.fdes.is_empty()
    }

    /// The FDEs covering (`section`, `offset`), `.eh_frame` first.
    pub fn fdes_at(&self, section: usize, offset: u64) -> impl Iterator<Item = &Fde> {
        self.fdes
            .iter()
            .filter(move |f| f.section == section && (f.start..f.end).contains(&offset))
    }
}

/// What the emitted tables say at one instruction, for hovers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmittedAt {
    /// The table.
    pub table: TableKind,
    /// Offset of the FDE in its table section.
    pub fde_offset: u64,
    /// The row in effect.
    pub row: EmittedRow,
}

/// The rule the emitted tables give at (`section`, `offset`): the row in effect there, from `.eh_frame` when it
/// covers the address, else from `.debug_frame`; `None` when no FDE covers it.
pub fn emitted_rule_at(tables: &UnwindTables, section: usize, offset: u64) -> Option<EmittedAt> {
    tables.fdes_at(section, offset).find_map(|f| {
        Some(EmittedAt {
            table: f.table,
            fde_offset: f.offset,
            row: f.row_at(offset)?.clone(),
        })
    })
}

/// altcfi's state in the vocabulary of the tables: the CFA rule, or `None` when the CFA is undefined.
pub fn computed_cfa(state: &CfiState) -> Option<CfaRule> {
    let base = state.cfa.base;
    let offset = i64::from(state.cfa.offset);
    Some(match base {
        UNDEFINED | CFA => return None,
        BP_INDIRECT => CfaRule::Deref {
            reg: dwarf_reg::RBP,
            offset,
            add: 0,
        },
        SP_INDIRECT => CfaRule::Deref {
            reg: dwarf_reg::RSP,
            offset: 0,
            add: offset,
        },
        b => CfaRule::Register {
            reg: u8::try_from(b).ok().and_then(dwarf_of)?,
            offset,
        },
    })
}

/// altcfi's save rule of one register (altcfi numbering) in the vocabulary of the tables.
pub fn computed_saved(state: &CfiState, r: u8) -> SavedRule {
    let Some(rule) = state.regs.get(r as usize) else {
        return SavedRule::Other;
    };
    match rule.base {
        UNDEFINED => SavedRule::NoRule,
        CFA => SavedRule::AtCfa(i64::from(rule.offset)),
        b => match u8::try_from(b).ok().and_then(dwarf_of) {
            Some(reg) => SavedRule::AtRegOffset {
                reg,
                offset: i64::from(rule.offset),
            },
            None => SavedRule::Other,
        },
    }
}

/// One way an emitted row disagrees with altcfi's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Difference {
    /// The CFA rules differ.
    Cfa {
        /// What the table says.
        emitted: CfaRule,
        /// What altcfi computed.
        computed: CfaRule,
    },
    /// A register's save rules differ.
    Reg {
        /// DWARF register number.
        reg: u16,
        /// What the table says.
        emitted: SavedRule,
        /// What altcfi computed.
        computed: SavedRule,
    },
}

impl Difference {
    /// What stays the same while one mistake propagates: for a CFA rule, the two base registers and the offset
    /// delta (a missing `.cfi_adjust_cfa_offset 8` keeps the table 8 short through later correct directives); for
    /// a register, the emitted rule (a wrong `.cfi_offset` stays wrong after the register is restored).
    fn shape(&self) -> (u8, u16, String) {
        match self {
            Difference::Cfa {
                emitted: CfaRule::Register { reg: a, offset: x },
                computed: CfaRule::Register { reg: b, offset: y },
            } => (0, *a * 256 + *b, format!("{}", y - x)),
            Difference::Cfa { emitted, computed } => (1, 0, format!("{emitted} {computed}")),
            Difference::Reg {
                reg,
                emitted,
                computed,
            } => {
                let _ = computed;
                (2, *reg, format!("{emitted:?}"))
            }
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Cfa { emitted, computed } => {
                write!(f, "CFA: the table says {emitted}, the code has {computed}")
            }
            Difference::Reg {
                reg,
                emitted,
                computed,
            } => write!(
                f,
                "{}: the table says {emitted}, the code has {computed}",
                dwarf_reg::name(*reg)
            ),
        }
    }
}

/// Compares one emitted row with altcfi's state on entry to the instruction at the row's address, rule by rule;
/// empty when they agree or when the state has no defined CFA (nothing to compare). "Not saved", "same value" and
/// "undefined" are one rule for callee-saved registers.
///
/// This is the strict, per-instruction comparison (what a hover shows). [`compare`] additionally accepts the
/// differences that are equivalent descriptions of the same machine state, which need the neighbouring
/// instructions to establish (see `docs/eh-frame.md`): a save described late (gcc delays `.cfi_offset` once the CFA
/// is `rbp`-based), a stale save rule after the register was restored from its slot (gcc writes no `.cfi_restore`
/// after `pop`), and a CFA expressed through a register that holds a known stack address (gcc's DRAP
/// `lea 8(%rsp),%r10; .cfi_def_cfa r10, 0`).
pub fn compare_row(row: &EmittedRow, state: &CfiState) -> Vec<Difference> {
    let mut out = Vec::new();
    let Some(cfa) = computed_cfa(state) else {
        return out;
    };
    if row.cfa != cfa {
        out.push(Difference::Cfa {
            emitted: row.cfa.clone(),
            computed: cfa,
        });
    }
    for (r, d) in COMPARED_REGS {
        let emitted = row.reg(d);
        let computed = computed_saved(state, r);
        if same_saved(&emitted, &computed, state, r == reg::RA) {
            continue;
        }
        out.push(Difference::Reg {
            reg: d,
            emitted,
            computed,
        });
    }
    out
}

fn same_saved(emitted: &SavedRule, computed: &SavedRule, state: &CfiState, ra: bool) -> bool {
    if emitted == computed {
        return true;
    }
    if ra {
        return false;
    }
    let _ = state;
    matches!((emitted, computed), (e, SavedRule::NoRule) if e.is_unsaved())
}

/// Reads the object's `.eh_frame` and `.debug_frame` and compares them with `analysis` (the analysis of the same
/// bytes) at every instruction the walk reached with a defined CFA: [`FindingKind::CfiDirectiveMismatch`] for each
/// run of consecutive disagreeing instructions, [`FindingKind::MissingCfi`] for functions (or parts) with reached
/// code but no FDE, when the object has FDEs at all. Objects without tables give no findings.
pub fn check_unwind_tables(data: &[u8], analysis: &Analysis) -> Result<Vec<Finding>, EhFrameError> {
    let obj = Object::parse(data)?;
    let tables = UnwindTables::from_object(&obj)?;
    Ok(compare(&obj, &tables, analysis))
}

/// [`check_unwind_tables`] with the object and tables already read.
pub fn compare(obj: &Object<'_>, tables: &UnwindTables, analysis: &Analysis) -> Vec<Finding> {
    compare_counted(obj, tables, analysis).findings
}

/// The result of a comparison, with counts for summaries and tests.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// The findings, in address order.
    pub findings: Vec<Finding>,
    /// (instruction, FDE) pairs compared: reached, defined CFA, covered by the FDE.
    pub compared: usize,
    /// Of those, how many disagreed.
    pub disagreeing: usize,
    /// Of those, how many differed rule by rule ([`compare_row`]) but only in an equivalent description of the
    /// same machine state (a late save rule, a stale rule after a restore, a CFA through a stack-derived register).
    pub equivalent: usize,
}

/// [`compare`], also counting what was compared.
pub fn compare_counted(obj: &Object<'_>, tables: &UnwindTables, analysis: &Analysis) -> Comparison {
    let mut findings = Vec::new();
    let mut compared = 0;
    let mut disagreeing = 0;
    let mut equivalent = 0;
    if tables.is_empty() {
        return Comparison::default();
    }
    let ignored = ignored_ranges(obj);
    let is_ignored = |i: &InsnInfo| {
        ignored
            .iter()
            .any(|&(s, a, b)| s == i.section && (a..b).contains(&i.offset))
    };
    // Instructions of each section in offset order (original code only, not replacements).
    let checked = |i: &InsnInfo| -> Option<&CfiState> {
        if matches!(i.site, Some((_, Some(_)))) || is_ignored(i) {
            return None;
        }
        let s = analysis.state(i.cfi?);
        (s.cfa.base != UNDEFINED && s.ty == HintType::Call && !s.force_undefined && !s.signal)
            .then_some(s)
    };
    for fde in &tables.fdes {
        let mut run: Option<Run> = None;
        let list: Vec<&InsnInfo> = analysis
            .insns
            .iter()
            .filter(|i| i.section == fde.section && (fde.start..fde.end).contains(&i.offset))
            .collect();
        let window = Window {
            states: list.iter().map(|i| checked(i)).collect(),
            rows: list.iter().map(|i| fde.row_at(i.offset)).collect(),
            code: obj.sections.get(fde.section).map(|s| s.data).unwrap_or(&[]),
            list: &list,
        };
        for (k, insn) in list.iter().copied().enumerate() {
            let diffs: Vec<Difference> = match (window.states[k], window.rows[k]) {
                (Some(state), Some(row)) => {
                    compared += 1;
                    let strict = compare_row(row, state);
                    let n = strict.len();
                    let left: Vec<Difference> = strict
                        .into_iter()
                        .filter(|d| !window.equivalent(k, d))
                        .collect();
                    if left.is_empty() && n > 0 {
                        equivalent += 1;
                    }
                    left
                }
                _ => Vec::new(),
            };
            if !diffs.is_empty() {
                disagreeing += 1;
            }
            if diffs.is_empty() {
                if let Some(r) = run.take() {
                    findings.push(r.finish(fde, analysis));
                }
                continue;
            }
            let shape: Vec<_> = diffs.iter().map(Difference::shape).collect();
            match &mut run {
                Some(r) if r.last_index + 1 == k && r.shape == shape => {
                    r.count += 1;
                    r.last_index = k;
                    r.last = insn.location.clone();
                }
                _ => {
                    if let Some(r) = run.take() {
                        findings.push(r.finish(fde, analysis));
                    }
                    let row = fde.row_at(insn.offset).cloned();
                    let state = checked(insn).cloned();
                    let prev = analysis
                        .insns
                        .iter()
                        .rfind(|p| p.section == insn.section && insn_end(p) <= insn.offset)
                        .filter(|p| insn_end(p) == insn.offset);
                    run = Some(Run {
                        first: insn.clone(),
                        last_index: k,
                        last: insn.location.clone(),
                        count: 1,
                        shape,
                        diffs,
                        row,
                        state,
                        prev: prev.cloned(),
                    });
                }
            }
        }
        if let Some(r) = run.take() {
            findings.push(r.finish(fde, analysis));
        }
    }
    findings.extend(missing_cfi(obj, tables, analysis, &ignored));
    if compiler_written(obj) {
        findings = asm_gaps(obj, findings);
    }
    findings.sort_by(|a, b| {
        let key = |f: &Finding| f.location.as_ref().map(|l| (l.section, l.offset));
        key(a).cmp(&key(b))
    });
    Comparison {
        findings,
        compared,
        disagreeing,
        equivalent,
    }
}

/// The instructions of one FDE in address order, with altcfi's state and the emitted row at each, for deciding
/// whether a difference is an equivalent description of the same machine state.
struct Window<'a> {
    list: &'a [&'a InsnInfo],
    states: Vec<Option<&'a CfiState>>,
    rows: Vec<Option<&'a EmittedRow>>,
    code: &'a [u8],
}

/// How many instructions back an equivalence window may reach.
const MAX_WINDOW: usize = 64;

impl Window<'_> {
    fn effects(&self, k: usize) -> Option<decode::Effects> {
        let i = self.list.get(k)?;
        let start = usize::try_from(i.offset).ok()?;
        let bytes = self
            .code
            .get(start..start.checked_add(usize::from(i.len))?)?;
        decode::effects(bytes, i.offset)
    }

    /// Whether instruction `k` may write altcfi register `r` (unknown instructions may).
    fn writes_reg(&self, k: usize, r: u8) -> bool {
        self.effects(k).is_none_or(|e| e.regs_written.contains(&r))
    }

    /// Whether instruction `k` may store into the 8 bytes at `CFA + slot` (pushes, calls, stores through `%rsp`, or
    /// through `%rbp` when the CFA is `rbp`-based; other stores are assumed not to hit the stack frame).
    fn writes_slot(&self, k: usize, slot: i64) -> bool {
        let (Some(e), Some(state)) = (self.effects(k), self.states[k]) else {
            return true;
        };
        e.mem_written.iter().any(|m| {
            let base_rel_cfa = match m.base {
                Some(reg::SP) => -i64::from(state.stack_size),
                Some(reg::BP) if state.cfa.base == i32::from(reg::BP) => {
                    -i64::from(state.cfa.offset)
                }
                _ => return false,
            };
            if m.indexed {
                return true;
            }
            let at = base_rel_cfa.wrapping_add(m.displacement);
            at < slot + 8 && slot < at + m.size as i64
        })
    }

    /// Whether execution passes from instruction `k` to `k + 1` (adjacent and falling through).
    fn falls_through(&self, k: usize) -> bool {
        let (Some(a), Some(b)) = (self.list.get(k), self.list.get(k + 1)) else {
            return false;
        };
        insn_end(a) == b.offset && self.effects(k).is_some_and(|e| e.falls_through)
    }

    /// Walks back from `k` over the instructions for which `inside(j)` holds (each must pass `ok(j)`), to the one
    /// that led into that window, which must satisfy `start(j)`.
    fn window(
        &self,
        k: usize,
        inside: impl Fn(usize) -> bool,
        ok: impl Fn(usize) -> bool,
        start: impl Fn(usize) -> bool,
    ) -> bool {
        let mut j = k;
        for _ in 0..MAX_WINDOW {
            let Some(p) = j.checked_sub(1) else {
                return false;
            };
            j = p;
            if !self.falls_through(j) {
                return false;
            }
            if inside(j) {
                if !ok(j) {
                    return false;
                }
                continue;
            }
            return start(j);
        }
        false
    }

    /// Whether difference `d` at instruction `k` describes the same machine state as altcfi (see [`compare_row`]).
    fn equivalent(&self, k: usize, d: &Difference) -> bool {
        let Some(state) = self.states[k] else {
            return false;
        };
        match d {
            // CFA = R + off, where the code set R from the stack pointer and has not changed it since: altcfi
            // knows R = CFA + v (objtool's `vals`), so the rule holds when v + off = 0.
            Difference::Cfa {
                emitted: CfaRule::Register { reg: dr, offset },
                ..
            } => {
                let Some(r) = altcfi_of(*dr) else {
                    return false;
                };
                let v = state.vals[r as usize];
                if v.base != CFA || i64::from(v.offset).wrapping_add(*offset) != 0 {
                    return false;
                }
                let same = |j: usize| self.states[j].is_some_and(|s| s.vals[r as usize] == v);
                // The window starts at the instruction that set R (it writes R, by definition).
                self.window(k, same, |j| !self.writes_reg(j, r), |_| true)
            }
            Difference::Cfa { .. } => false,
            Difference::Reg {
                reg: dr,
                emitted,
                computed,
            } => {
                let Some(r) = altcfi_of(*dr) else {
                    return false;
                };
                if r == reg::RA {
                    return false;
                }
                let rule_at =
                    |j: usize| Some((self.rows[j]?.reg(*dr), computed_saved(self.states[j]?, r)));
                if emitted.is_unsaved() && !computed.is_unsaved() {
                    // Saved, but the table says so only later: the register still holds the caller's value as long
                    // as nothing wrote it since the save.
                    let inside =
                        |j| rule_at(j).is_some_and(|(e, c)| e.is_unsaved() && &c == computed);
                    let start = |j| {
                        rule_at(j).is_some_and(|(e, c)| e.is_unsaved() && c == SavedRule::NoRule)
                            && !self.writes_reg(j, r)
                    };
                    self.window(k, inside, |j| !self.writes_reg(j, r), start)
                } else if let (SavedRule::AtCfa(slot), SavedRule::NoRule) = (emitted, computed) {
                    // Restored from its slot, and the table still points there: the slot and the register hold
                    // the same value as long as neither was written since the restore.
                    if state.drap {
                        return false;
                    }
                    let slot = *slot;
                    let inside = |j| {
                        rule_at(j).is_some_and(|(e, c)| &e == emitted && c == SavedRule::NoRule)
                    };
                    let ok = |j| !self.writes_reg(j, r) && !self.writes_slot(j, slot);
                    let start = |j| rule_at(j).is_some_and(|(e, c)| &e == emitted && c == *emitted);
                    self.window(k, inside, ok, start)
                } else {
                    false
                }
            }
        }
    }
}

/// The altcfi number of a DWARF register.
fn altcfi_of(d: u16) -> Option<u8> {
    (0..reg::NUM as u8).find(|&r| dwarf_of(r) == Some(d))
}

/// A run of consecutive disagreeing instructions in one FDE.
struct Run {
    first: InsnInfo,
    last_index: usize,
    last: String,
    count: usize,
    shape: Vec<(u8, u16, String)>,
    diffs: Vec<Difference>,
    row: Option<EmittedRow>,
    state: Option<CfiState>,
    prev: Option<InsnInfo>,
}

impl Run {
    fn finish(self, fde: &Fde, analysis: &Analysis) -> Finding {
        let mut f = Finding::new(
            FindingKind::CfiDirectiveMismatch,
            Some(location_in(analysis, self.first.section, self.first.offset)),
            "cfi directive disagrees with code",
        );
        for d in &self.diffs {
            f.details.push(d.to_string());
        }
        if let Some(row) = &self.row {
            f.details.push(format!(
                "{} (FDE at {:#x}) row from {:#x}: {row}",
                fde.table, fde.offset, row.start
            ));
        }
        if let Some(state) = &self.state {
            f.details.push(format!("computed on entry: {state}"));
        }
        if self.count > 1 {
            f.details.push(format!(
                "{} consecutive instructions disagree, through {}",
                self.count, self.last
            ));
        }
        if let Some(p) = &self.prev {
            f.related.push((
                format!("the instruction before it ({})", p.text),
                location_in(analysis, p.section, p.offset),
            ));
        }
        f
    }
}

/// Whether a compiler wrote the object's code, and so its unwind tables: a `.comment` section naming gcc or clang
/// (their `.ident`), which the assembler alone does not write.
pub fn compiler_written(obj: &Object<'_>) -> bool {
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    obj.section_by_name(".comment")
        .is_some_and(|s| has(s.data, b"GCC: (") || has(s.data, b"clang version"))
}

/// In an object a compiler wrote, the compiler's tables are right for the code it generated (`tests/ehframe.rs`
/// finds no disagreement in gcc's own code), so what disagrees is assembly it does not look into: stack changes
/// inside inline `asm` (`pushf; pop`, `push; iretq`), and functions written in top-level `asm` that get no FDE at
/// all. Those become one [`FindingKind::AsmCfiGap`] note per function, each place a related location; the rest
/// of `findings` (partly covered functions) stays as it is.
fn asm_gaps(obj: &Object<'_>, findings: Vec<Finding>) -> Vec<Finding> {
    let mut out = Vec::new();
    // Per function (section, start): its name and the disagreeing places in order.
    let mut groups: std::collections::BTreeMap<(usize, u64), (String, Vec<Finding>)> =
        Default::default();
    for f in findings {
        let whole_function =
            f.kind == FindingKind::MissingCfi && f.message.ends_with("() has no CFI");
        let func = f.location.as_ref().and_then(|l| {
            obj.symbol_containing(l.section, l.offset, true)
                .filter(|s| s.kind == SymKind::Func)
        });
        match func {
            Some(sym) if f.kind == FindingKind::CfiDirectiveMismatch || whole_function => {
                let key = (sym.section.unwrap_or(0), sym.value);
                groups
                    .entry(key)
                    .or_insert_with(|| (sym.name.clone(), Vec::new()))
                    .1
                    .push(f);
            }
            _ => out.push(f),
        }
    }
    for (name, places) in groups.into_values() {
        let Some(first) = places.first() else {
            continue;
        };
        if places[0].kind == FindingKind::MissingCfi {
            let mut g = Finding::new(
                FindingKind::AsmCfiGap,
                first.location.clone(),
                format!("{name}() is assembly in a compiled object and has no CFI"),
            );
            g.details.push(format!(
                "{name}() is written in top-level asm (or comes from an asm macro) in an object the compiler wrote: \
                 the compiler's tables describe only the functions it generated, so no FDE covers it"
            ));
            out.push(g);
            continue;
        }
        let mut g = Finding::new(
            FindingKind::AsmCfiGap,
            first.location.clone(),
            match places.len() {
                1 => format!("{name}(): the compiler's CFI does not describe the stack changes of inline asm"),
                n => format!(
                    "{name}(): the compiler's CFI does not describe the stack changes of inline asm ({n} places)"
                ),
            },
        );
        g.details.push(
            "the compiler does not look into asm statements: where one moves the stack (pushf/pop, push/iretq, a \
             call), its table keeps the rule from before the asm until the asm is done"
                .to_owned(),
        );
        for p in &places {
            let at = p
                .location
                .as_ref()
                .map(|l| l.display.as_str())
                .unwrap_or("?");
            let what = p.details.first().map(String::as_str).unwrap_or(&p.message);
            g.details.push(format!("at {at}: {what}"));
            for (w, loc) in &p.related {
                let w = w.replacen("the instruction before it", "inline asm moved the stack", 1);
                g.related.push((w, loc.clone()));
            }
        }
        out.push(g);
    }
    out
}

fn insn_end(i: &InsnInfo) -> u64 {
    i.offset.saturating_add(u64::from(i.len))
}

/// The ORC differences between the `.orc_unwind` objtool already wrote into the object and the ORC altcfi computes
/// (`orc-mismatch` findings); empty when the object has no `.orc_unwind` or no ORC could be computed.
pub fn verify_orc_findings(a: &Analysis) -> Vec<Finding> {
    let (Some(existing), Some(computed)) = (&a.existing_orc, &a.orc) else {
        return Vec::new();
    };
    let format = match a.era {
        crate::options::Era::V6_12 => crate::orc::DumpFormat::Modern,
        crate::options::Era::V6_1 => crate::orc::DumpFormat::Legacy,
    };
    let locate = |s: usize, o: u64| location_in(a, s, o);
    crate::orc::verify(existing, computed, format, &locate)
}

/// Objtool's location of (`section`, `offset`) from an analysis: the instruction's `func+0x1a` text when an
/// instruction starts there, else `section+0xoff`. Used to place findings about rows (ORC, eh_frame).
pub fn location_in(analysis: &Analysis, section: usize, offset: u64) -> Location {
    let section_name = analysis
        .section_names
        .get(section)
        .cloned()
        .unwrap_or_default();
    let i = analysis
        .insns
        .partition_point(|i| (i.section, i.offset) < (section, offset));
    let at = |i: &&InsnInfo| i.section == section && i.offset == offset;
    let display = match analysis
        .insns
        .get(i)
        .filter(at)
        .or_else(|| analysis.insns.iter().find(at))
    {
        Some(insn) => insn.location.clone(),
        None => format!("{section_name}+0x{offset:x}"),
    };
    Location {
        section,
        section_name,
        offset,
        display,
    }
}

fn missing_cfi(
    obj: &Object<'_>,
    tables: &UnwindTables,
    analysis: &Analysis,
    ignored: &[(usize, u64, u64)],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for sym in &obj.symbols {
        let Some(sec) = sym.section else { continue };
        if sym.kind != SymKind::Func || sym.size == 0 {
            continue;
        }
        // objtool's `__pfx_`/`__cfi_` symbols name the NOP padding before a function (`--prefix`, kCFI), which
        // gcc gives no FDE and needs none: not a function without CFI.
        if sym.name.starts_with("__pfx_") || sym.name.starts_with("__cfi_") {
            continue;
        }
        if !obj.sections.get(sec).is_some_and(|s| s.is_exec()) {
            continue;
        }
        let (a, b) = (sym.value, sym.value.saturating_add(sym.size));
        if ignored.iter().any(|&(s, x, _)| s == sec && x == a) {
            continue;
        }
        let reached: Vec<&InsnInfo> = analysis
            .insns
            .iter()
            .filter(|i| i.section == sec && (a..b).contains(&i.offset))
            .filter(|i| i.site.is_none_or(|(_, side)| side.is_none()))
            .filter(|i| {
                i.cfi
                    .is_some_and(|c| analysis.state(c).cfa.base != UNDEFINED)
            })
            .collect();
        let uncovered: Vec<&&InsnInfo> = reached
            .iter()
            .filter(|i| tables.fdes_at(sec, i.offset).next().is_none())
            .collect();
        let Some(first) = uncovered.first() else {
            continue;
        };
        let loc = location_in(analysis, sec, first.offset);
        let mut f = if uncovered.len() == reached.len() {
            let mut f = Finding::new(
                FindingKind::MissingCfi,
                Some(location_in(analysis, sec, a)),
                format!("{}() has no CFI", sym.name),
            );
            f.details.push(format!(
                "no FDE in .eh_frame or .debug_frame covers {}() ({} bytes), while other code in the object has one: \
                 is .cfi_startproc/.cfi_endproc missing?",
                sym.name, sym.size
            ));
            f
        } else {
            let mut f = Finding::new(
                FindingKind::MissingCfi,
                Some(loc),
                "instruction not covered by CFI",
            );
            f.details.push(format!(
                "{} of {}()'s reachable instructions are outside every FDE: does .cfi_endproc come too early?",
                uncovered.len(),
                sym.name
            ));
            f
        };
        f.fatal = false;
        out.push(f);
    }
    out
}

/// Functions marked `STACK_FRAME_NON_STANDARD`, as (section, start, end).
fn ignored_ranges(obj: &Object<'_>) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    for sec in &obj.sections {
        if sec.name != ".discard.func_stack_frame_non_standard" {
            continue;
        }
        for r in obj.relocs(sec.index) {
            let Some(sym) = obj.symbols.get(r.symbol) else {
                continue;
            };
            let Some(s) = sym.section else { continue };
            let func = match sym.kind {
                SymKind::Func => Some(sym),
                SymKind::Section => obj
                    .symbols_in(s)
                    .iter()
                    .filter_map(|&i| obj.symbols.get(i))
                    .find(|x| x.kind == SymKind::Func && x.value == r.addend as u64),
                _ => None,
            };
            if let Some(f) = func {
                out.push((s, f.value, f.value.saturating_add(f.size)));
            }
        }
    }
    out
}

/// Addresses the tables are evaluated in: real ones for linked objects, a synthetic non-overlapping layout of the
/// allocatable sections for relocatable ones (non-allocatable sections at 0, as the linker would leave them).
struct Layout {
    bases: Vec<u64>,
    sizes: Vec<u64>,
    exec: Vec<bool>,
}

impl Layout {
    fn new(obj: &Object<'_>) -> Self {
        let mut bases = vec![0u64; obj.sections.len()];
        let mut next = 0x1000u64;
        for s in &obj.sections {
            match obj.kind {
                ElfKind::Linked => bases[s.index] = s.addr,
                ElfKind::Relocatable if s.is_alloc() && s.index != 0 => {
                    bases[s.index] = next;
                    let size = s.size.min(1 << 30);
                    next = next.saturating_add(size).saturating_add(0x1fff) & !0xfff;
                }
                ElfKind::Relocatable => {}
            }
        }
        Layout {
            bases,
            sizes: obj.sections.iter().map(|s| s.size).collect(),
            exec: obj.sections.iter().map(|s| s.is_exec()).collect(),
        }
    }

    fn base(&self, section: usize) -> u64 {
        self.bases.get(section).copied().unwrap_or(0)
    }

    /// The executable section containing `addr`, and the offset in it.
    fn resolve(&self, addr: u64) -> Option<(usize, u64)> {
        (0..self.bases.len()).find_map(|i| {
            let b = self.bases[i];
            (self.exec[i] && self.sizes[i] > 0 && addr >= b && addr - b < self.sizes[i])
                .then(|| (i, addr - b))
        })
    }
}

/// The bytes of a table section with its relocations applied (relocatable objects only).
fn relocated(
    obj: &Object<'_>,
    layout: &Layout,
    section: usize,
    table: TableKind,
) -> Result<Vec<u8>, EhFrameError> {
    let mut bytes = obj
        .sections
        .get(section)
        .map(|s| s.data.to_vec())
        .unwrap_or_default();
    if obj.kind == ElfKind::Linked {
        return Ok(bytes);
    }
    let base = layout.base(section);
    for r in obj.relocs(section) {
        let bad = |reason: String| EhFrameError::Relocation {
            table,
            offset: r.offset,
            reason,
        };
        let Some(sym) = obj.symbols.get(r.symbol) else {
            return Err(bad(format!("no symbol {}", r.symbol)));
        };
        // Undefined symbols (personality routines, LSDA in other objects) stay 0: FDE ranges never use them.
        let Some(ssec) = sym.section else { continue };
        let s = layout.base(ssec).wrapping_add(sym.value);
        let sa = s.wrapping_add(r.addend as u64);
        let p = base.wrapping_add(r.offset);
        use object::elf::*;
        let (value, width): (u64, usize) = match r.r_type {
            R_X86_64_64 => (sa, 8),
            R_X86_64_PC64 => (sa.wrapping_sub(p), 8),
            R_X86_64_32 | R_X86_64_32S => (sa, 4),
            R_X86_64_PC32 | R_X86_64_PLT32 => {
                let v = sa.wrapping_sub(p) as i64;
                if i32::try_from(v).is_err() {
                    return Err(bad(format!("PC32 value {v:#x} does not fit")));
                }
                (v as u64, 4)
            }
            R_X86_64_NONE => continue,
            t => return Err(bad(format!("unsupported relocation type {t}"))),
        };
        let at = usize::try_from(r.offset).map_err(|_| bad("offset too large".into()))?;
        let slot = at
            .checked_add(width)
            .and_then(|end| bytes.get_mut(at..end))
            .ok_or_else(|| bad("outside the section".into()))?;
        slot.copy_from_slice(&value.to_le_bytes()[..width]);
    }
    Ok(bytes)
}

type Slice<'a> = EndianSlice<'a, LittleEndian>;

fn read_table(
    table: TableKind,
    bytes: &[u8],
    base: u64,
    layout: &Layout,
    out: &mut UnwindTables,
) -> Result<(), EhFrameError> {
    let bases = BaseAddresses::default().set_eh_frame(base);
    match table {
        TableKind::EhFrame => {
            let mut sec = EhFrame::new(bytes, LittleEndian);
            sec.set_address_size(8);
            read_entries(table, &sec, &bases, layout, out)
        }
        TableKind::DebugFrame => {
            let mut sec = DebugFrame::new(bytes, LittleEndian);
            sec.set_address_size(8);
            read_entries(table, &sec, &bases, layout, out)
        }
    }
}

fn read_entries<'a, S: UnwindSection<Slice<'a>>>(
    table: TableKind,
    sec: &S,
    bases: &BaseAddresses,
    layout: &Layout,
    out: &mut UnwindTables,
) -> Result<(), EhFrameError>
where
    S::Offset: gimli::UnwindOffset<usize>,
{
    let mut entries = sec.entries(bases);
    let mut ctx = UnwindContext::new();
    let mut last_offset = 0u64;
    loop {
        let entry = entries.next().map_err(|source| EhFrameError::Dwarf {
            table,
            offset: last_offset,
            source,
        })?;
        let Some(entry) = entry else { break };
        let CieOrFde::Fde(partial) = entry else {
            continue;
        };
        let fde = partial
            .parse(|s, b, o| s.cie_from_offset(b, o))
            .map_err(|source| EhFrameError::Dwarf {
                table,
                offset: last_offset,
                source,
            })?;
        let offset = fde.offset() as u64;
        last_offset = offset;
        let dwarf = |source| EhFrameError::Dwarf {
            table,
            offset,
            source,
        };
        let Some((section, start)) = layout.resolve(fde.initial_address()) else {
            if fde.len() > 0 {
                out.unresolved.push((table, offset));
            }
            continue;
        };
        let sec_base = fde.initial_address() - start;
        let mut rows = Vec::new();
        let mut t = fde.rows(sec, bases, &mut ctx).map_err(dwarf)?;
        while let Some(row) = t.next_row().map_err(dwarf)? {
            let expr = |e: &gimli::UnwindExpression<usize>| -> Vec<u8> {
                e.get(sec)
                    .map(|x: gimli::Expression<Slice<'a>>| x.0.slice().to_vec())
                    .unwrap_or_default()
            };
            let cfa = match row.cfa() {
                gimli::CfaRule::RegisterAndOffset { register, offset } => CfaRule::Register {
                    reg: register.0,
                    offset: *offset,
                },
                gimli::CfaRule::Expression(e) => decode_cfa_expr(&expr(e)),
            };
            let mut regs: Vec<(u16, SavedRule)> = row
                .registers()
                .map(|(r, rule)| {
                    let s = match rule {
                        gimli::RegisterRule::Undefined => SavedRule::Undefined,
                        gimli::RegisterRule::SameValue => SavedRule::SameValue,
                        gimli::RegisterRule::Offset(o) => SavedRule::AtCfa(*o),
                        gimli::RegisterRule::ValOffset(o) => SavedRule::ValCfa(*o),
                        gimli::RegisterRule::Register(x) => SavedRule::InRegister(x.0),
                        gimli::RegisterRule::Expression(e) => {
                            let b = expr(e);
                            match decode_breg(&b) {
                                Some((reg, offset, [])) => SavedRule::AtRegOffset { reg, offset },
                                _ => SavedRule::Expression(b),
                            }
                        }
                        gimli::RegisterRule::ValExpression(e) => SavedRule::ValExpression(expr(e)),
                        _ => SavedRule::Other,
                    };
                    (r.0, s)
                })
                .collect();
            regs.sort_by_key(|(r, _)| *r);
            rows.push(EmittedRow {
                start: row.start_address().wrapping_sub(sec_base),
                end: row.end_address().wrapping_sub(sec_base),
                cfa,
                regs,
            });
        }
        out.fdes.push(Fde {
            table,
            offset,
            section,
            start,
            end: start.saturating_add(fde.len()),
            rows,
        });
    }
    Ok(())
}

/// Reads a LEB128; returns the value and the rest.
fn leb(b: &[u8], signed: bool) -> Option<(i64, &[u8])> {
    let mut v: i64 = 0;
    let mut shift = 0u32;
    for (i, &byte) in b.iter().enumerate() {
        if shift >= 64 {
            return None;
        }
        v |= i64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            if signed && shift < 64 && byte & 0x40 != 0 {
                v |= -1i64 << shift;
            }
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

/// `DW_OP_breg<n> off` at the start of an expression: (register, offset, rest).
fn decode_breg(b: &[u8]) -> Option<(u16, i64, &[u8])> {
    let (&op, rest) = b.split_first()?;
    match op {
        0x70..=0x8f => {
            let (off, rest) = leb(rest, true)?;
            Some((u16::from(op - 0x70), off, rest))
        }
        // DW_OP_bregx reg off
        0x92 => {
            let (r, rest) = leb(rest, false)?;
            let (off, rest) = leb(rest, true)?;
            Some((u16::try_from(r).ok()?, off, rest))
        }
        _ => None,
    }
}

/// Decodes `DW_OP_breg<r> off; DW_OP_deref [; DW_OP_plus_uconst n]` into [`CfaRule::Deref`]; anything else stays
/// an expression.
fn decode_cfa_expr(b: &[u8]) -> CfaRule {
    let parsed = (|| {
        let (reg, offset, rest) = decode_breg(b)?;
        let (&op, rest) = rest.split_first()?;
        if op != 0x06 {
            return None;
        }
        let add = match rest.split_first() {
            None => 0,
            Some((&0x23, r)) => {
                let (n, r) = leb(r, false)?;
                if !r.is_empty() {
                    return None;
                }
                n
            }
            Some(_) => return None,
        };
        Some(CfaRule::Deref { reg, offset, add })
    })();
    parsed.unwrap_or_else(|| CfaRule::Expression(b.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_gcc_drap_expressions() {
        // gcc: .cfi_escape 0xf,0x3,0x76,0x78,0x6 (def_cfa_expression breg6 -8; deref)
        assert_eq!(
            decode_cfa_expr(&[0x76, 0x78, 0x06]),
            CfaRule::Deref {
                reg: 6,
                offset: -8,
                add: 0
            }
        );
        // .cfi_escape 0x10,0x6,0x2,0x76,0 (expression rbp: breg6 0)
        assert_eq!(decode_breg(&[0x76, 0x00]), Some((6, 0, &[][..])));
        assert_eq!(
            decode_cfa_expr(&[0x77, 0x00, 0x06, 0x23, 0x10]),
            CfaRule::Deref {
                reg: 7,
                offset: 0,
                add: 16
            }
        );
        assert!(matches!(decode_cfa_expr(&[0x06]), CfaRule::Expression(_)));
        assert!(matches!(decode_cfa_expr(&[0x76]), CfaRule::Expression(_)));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(UnwindTables::read(b"not an elf").is_err());
    }

    #[test]
    fn rendering() {
        let row = EmittedRow {
            start: 0,
            end: 4,
            cfa: CfaRule::Register { reg: 7, offset: 16 },
            regs: vec![(3, SavedRule::AtCfa(-16)), (16, SavedRule::AtCfa(-8))],
        };
        assert_eq!(
            row.to_string(),
            "CFA=rsp+16, rbx saved at CFA-16, ra saved at CFA-8"
        );
        assert_eq!(row.reg(6), SavedRule::NoRule);
        assert_eq!(SavedRule::AtCfa(-16).readelf(), "c-16");
    }
}
