//! Findings: what the analysis reports, as plain data with machine locations.
//!
//! A [`Finding`] carries objtool's location text and message (so the first line of a report matches objtool's), a
//! stable [`FindingKind`] code for tools and docs, detail lines in words, and, for alternative conflicts, the full
//! [`AltConflict`] record. Source locations are added later by the lines stage; nothing here knows about DWARF or LSP.

use serde::Serialize;

/// A place in the object: section index and offset, plus objtool's `sym+0xoff` text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// ELF section index.
    pub section: usize,
    /// Section name.
    pub section_name: String,
    /// Offset in the section.
    pub offset: u64,
    /// objtool's rendering: `func+0x1a` or `.altinstr_replacement+0x3`.
    pub display: String,
}

/// Kinds of finding, each with a stable code and a docs page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// Two variants of an alternative site disagree at a shared offset.
    AltStackConflict,
    /// Two paths reach one instruction with different states.
    StackStateMismatch,
    /// A stack operation where the CFA is unknown.
    UndefinedStackState,
    /// An unmodelled write to the CFA base register.
    UnsupportedStackRegisterModification,
    /// An unmodelled `and` on `%rsp`.
    UnsupportedStackPointerRealignment,
    /// An unmodelled stack operation.
    UnknownStackOperation,
    /// `ret` with the stack not back at its entry state.
    ReturnWithModifiedFrame,
    /// `%rbp` used as a scratch register (frame-pointer rules).
    BpScratch,
    /// A call before the frame pointer is set up (frame-pointer rules).
    CallWithoutFrame,
    /// A tail call with the stack not at its entry state.
    SiblingCallWithModifiedFrame,
    /// `sysret`, `iret` and friends inside a callable function.
    UnsupportedInstruction,
    /// Code no path reaches.
    UnreachableInstruction,
    /// A call to a function that never returns, which is not marked `__noreturn`.
    MissingNoreturn,
    /// A path runs past the end of its function into the next.
    FallsThrough,
    /// A path runs off the end of its section.
    UnexpectedEndOfSection,
    /// A function symbol of size 0.
    MissingSize,
    /// Unwind hints or save/restore that cannot be followed.
    HintError,
    /// Bytes in an executable section that are no instruction (data in `.text`, a truncated instruction).
    UndecodableInstruction,
    /// The object's structure stops the analysis (can't find a jump destination, bad special section, …).
    BadObject,
    /// ORC cannot express a state.
    OrcError,
    /// An emitted `.eh_frame`/`.debug_frame` row (from `.cfi_*` directives) disagrees with the computed CFI.
    CfiDirectiveMismatch,
    /// A function with reachable code that no FDE covers, while the object has FDEs.
    MissingCfi,
    /// A `.orc_unwind` entry already in the object differs from the computed one.
    OrcMismatch,
    /// `--retpoline`: an indirect call or jump that is not annotated retpoline-safe.
    RetpolineIndirectBranch,
    /// `--rethunk`: a plain `ret` where the return thunk is wanted.
    NakedReturn,
    /// `--sls`: a `ret` or indirect jump not followed by `int3`.
    MissingInt3,
    /// `--uaccess`: a call, return or STAC/CLAC that breaks the rules of user-access regions (SMAP).
    Uaccess,
    /// A call or return with the direction flag set, or a redundant CLD/recursive STD.
    DirectionFlag,
    /// Compiler-written unwind tables that do not describe assembly inside compiled code (gcc's known gap: stack
    /// changes inside inline `asm`, functions written in top-level `asm`), one per function. A note.
    AsmCfiGap,
    /// altcfi's own note: an alternative objtool never checks (`ANNOTATE_IGNORE_ALTERNATIVE`, or in a
    /// `STACK_FRAME_NON_STANDARD` function) where unwinding from inside a variant goes wrong.
    UncheckedAltUnwind,
}

/// How a finding is reported: objtool's warnings, or altcfi's own notes (never among objtool's lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// A warning objtool reports too.
    Warning,
    /// altcfi's own observation, which objtool does not make.
    Note,
}

impl FindingKind {
    /// The stable code used in JSON, SARIF, LSP diagnostics and the docs file name.
    pub fn code(self) -> &'static str {
        match self {
            FindingKind::AltStackConflict => "alt-stack-conflict",
            FindingKind::StackStateMismatch => "stack-state-mismatch",
            FindingKind::UndefinedStackState => "undefined-stack-state",
            FindingKind::UnsupportedStackRegisterModification => {
                "unsupported-stack-register-modification"
            }
            FindingKind::UnsupportedStackPointerRealignment => {
                "unsupported-stack-pointer-realignment"
            }
            FindingKind::UnknownStackOperation => "unknown-stack-operation",
            FindingKind::ReturnWithModifiedFrame => "return-with-modified-frame",
            FindingKind::BpScratch => "bp-scratch",
            FindingKind::CallWithoutFrame => "call-without-frame",
            FindingKind::SiblingCallWithModifiedFrame => "sibling-call-with-modified-frame",
            FindingKind::UnsupportedInstruction => "unsupported-instruction",
            FindingKind::UnreachableInstruction => "unreachable-instruction",
            FindingKind::MissingNoreturn => "missing-noreturn",
            FindingKind::FallsThrough => "falls-through",
            FindingKind::UnexpectedEndOfSection => "unexpected-end-of-section",
            FindingKind::MissingSize => "missing-size",
            FindingKind::HintError => "hint-error",
            FindingKind::UndecodableInstruction => "undecodable-instruction",
            FindingKind::BadObject => "bad-object",
            FindingKind::OrcError => "orc-error",
            FindingKind::CfiDirectiveMismatch => "cfi-directive-mismatch",
            FindingKind::MissingCfi => "missing-cfi",
            FindingKind::OrcMismatch => "orc-mismatch",
            FindingKind::RetpolineIndirectBranch => "retpoline-indirect-branch",
            FindingKind::NakedReturn => "naked-return",
            FindingKind::MissingInt3 => "missing-int3",
            FindingKind::Uaccess => "uaccess",
            FindingKind::DirectionFlag => "direction-flag",
            FindingKind::AsmCfiGap => "asm-cfi-gap",
            FindingKind::UncheckedAltUnwind => "unchecked-alt-unwind",
        }
    }

    /// Whether objtool reports this kind too ([`Severity::Warning`]) or it is altcfi's own ([`Severity::Note`]).
    pub fn severity(self) -> Severity {
        match self {
            FindingKind::UncheckedAltUnwind | FindingKind::AsmCfiGap => Severity::Note,
            _ => Severity::Warning,
        }
    }

    /// Whether the kind is a [`Severity::Note`]: altcfi's own, never among objtool's lines; notes do not make
    /// `check` fail and show as `note:` / SARIF `note` / LSP Information.
    pub fn is_note(self) -> bool {
        self.severity() == Severity::Note
    }

    /// Every kind, for docs and tests.
    pub const ALL: [FindingKind; 30] = [
        FindingKind::AltStackConflict,
        FindingKind::StackStateMismatch,
        FindingKind::UndefinedStackState,
        FindingKind::UnsupportedStackRegisterModification,
        FindingKind::UnsupportedStackPointerRealignment,
        FindingKind::UnknownStackOperation,
        FindingKind::ReturnWithModifiedFrame,
        FindingKind::BpScratch,
        FindingKind::CallWithoutFrame,
        FindingKind::SiblingCallWithModifiedFrame,
        FindingKind::UnsupportedInstruction,
        FindingKind::UnreachableInstruction,
        FindingKind::MissingNoreturn,
        FindingKind::FallsThrough,
        FindingKind::UnexpectedEndOfSection,
        FindingKind::MissingSize,
        FindingKind::HintError,
        FindingKind::UndecodableInstruction,
        FindingKind::BadObject,
        FindingKind::OrcError,
        FindingKind::CfiDirectiveMismatch,
        FindingKind::MissingCfi,
        FindingKind::OrcMismatch,
        FindingKind::RetpolineIndirectBranch,
        FindingKind::NakedReturn,
        FindingKind::MissingInt3,
        FindingKind::Uaccess,
        FindingKind::DirectionFlag,
        FindingKind::AsmCfiGap,
        FindingKind::UncheckedAltUnwind,
    ];
}

/// One side of an alternative site at one offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantAt {
    /// `None` for the original, `Some(n)` for replacement #n (1-based, in `.altinstructions` order).
    pub replacement: Option<usize>,
    /// The feature that selects it (`X86_FEATURE_XENPV`, `!X86_FEATURE_SMAP`), if any.
    pub feature: Option<String>,
    /// Where the instruction at that offset is.
    pub location: Location,
    /// Its disassembly (AT&T).
    pub instruction: String,
    /// The full variant's instructions, `; `-separated, for messages.
    pub variant_text: String,
    /// The CFI state on entry to that instruction, in words.
    pub state: String,
    /// The CFA rule alone (`rsp+8`).
    pub cfa: String,
    /// The state itself, to name what differs.
    #[serde(skip)]
    pub cfi_state: Option<crate::cfi::CfiState>,
}

/// A stack layout conflict at one offset of an alternative site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AltConflict {
    /// Offset inside the site.
    pub site_offset: u64,
    /// The side whose state was recorded first.
    pub recorded: VariantAt,
    /// The side that disagreed.
    pub conflicting: VariantAt,
    /// The fields in which the two states differ, `recorded`'s value first (`stack size 8 vs 24`): objtool
    /// compares whole states, so this can name what no CFA rule shows.
    pub differs: Vec<String>,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Kind.
    pub kind: FindingKind,
    /// Where objtool would print it; `None` for messages without a location (`f() falls through …`).
    pub location: Option<Location>,
    /// objtool's message text.
    pub message: String,
    /// Further lines in words (states involved, how to read it).
    pub details: Vec<String>,
    /// Other places involved (the other side of a conflict, the instruction that found it, …).
    pub related: Vec<(String, Location)>,
    /// Every conflicting offset of the site, for alternative conflicts.
    pub conflicts: Vec<AltConflict>,
    /// For alternative conflicts: whether unwinding from inside the site's variants is right (`breaks` or
    /// `strict-only`, [`crate::unwind`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unwind: Option<crate::unwind::UnwindVerdict>,
    /// This finding stopped the analysis of the object (objtool's fatal errors; no ORC is produced).
    pub fatal: bool,
}

impl Finding {
    /// A finding with only a kind, location and message.
    pub fn new(kind: FindingKind, location: Option<Location>, message: impl Into<String>) -> Self {
        Finding {
            kind,
            location,
            message: message.into(),
            details: Vec::new(),
            related: Vec::new(),
            conflicts: Vec::new(),
            unwind: None,
            fatal: false,
        }
    }

    /// objtool's line without the `file: warning: tool: ` prefix: `func+0x1a: message`.
    pub fn headline(&self) -> String {
        match &self.location {
            Some(l) => format!("{}: {}", l.display, self.message),
            None => self.message.clone(),
        }
    }
}
