//! What the caller chooses: which kernel era's formats and rules to follow, and which rule sets to run.

use crate::cfi::HintType;

/// The kernel (and objtool) generation whose binary formats and behaviour are mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Era {
    /// 5.13–6.2 formats as objtool 6.1 reads them: 12-byte `.altinstructions`, hint types CALL=0 … RESTORE=6,
    /// ORC with `end`, warnings at the conflicting instruction.
    V6_1,
    /// 6.4+ formats as objtool 6.12 reads them: 14-byte `.altinstructions`, hint types UNDEFINED=0 … RESTORE=7, one
    /// warning per symbol, conflicts reported at the original site.
    V6_12,
}

impl Era {
    /// Size of one `.altinstructions` entry.
    pub fn alt_entry_size(self) -> usize {
        match self {
            Era::V6_1 => 12,
            Era::V6_12 => 14,
        }
    }

    /// The hint type of an all-zero state (`init_cfi`).
    pub fn zero_hint_type(self) -> HintType {
        match self {
            Era::V6_1 => HintType::Call,
            Era::V6_12 => HintType::Undefined,
        }
    }

    /// The raw number objtool prints for a hint type in this era.
    pub fn hint_type_number(self, t: HintType) -> i32 {
        match (self, t) {
            (Era::V6_12, HintType::Undefined) => 0,
            (Era::V6_12, HintType::EndOfStack) => 1,
            (Era::V6_12, HintType::Call) => 2,
            (Era::V6_12, HintType::Regs) => 3,
            (Era::V6_12, HintType::RegsPartial) => 4,
            (Era::V6_1, HintType::Call) => 0,
            (Era::V6_1, HintType::Regs) => 1,
            (Era::V6_1, HintType::RegsPartial) => 2,
            (Era::V6_1, _) => -1,
        }
    }

    /// Human name (`6.1`, `6.12`).
    pub fn name(self) -> &'static str {
        match self {
            Era::V6_1 => "6.1",
            Era::V6_12 => "6.12",
        }
    }
}

/// Analysis options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Kernel era; `None` detects it from the object (12- or 13-byte `.altinstructions` → 6.1, else 6.12).
    pub era: Option<Era>,
    /// Frame-pointer rules (objtool `--stackval`): "call without frame pointer save/setup", "BP used as a scratch
    /// register".
    pub frame_pointer: bool,
    /// Keep walking past alternative conflicts to list every conflicting offset (extra findings detail; the
    /// objtool-compatible verdict and ORC are unaffected).
    pub all_conflicts: bool,
    /// Code size (bytes of executable sections) from which an object's analysis uses a second thread: a section
    /// this large is decoded in two halves, an object with this much code walks its functions in two halves. The
    /// result never depends on it (see `docs/performance.md`); `u64::MAX` keeps an analysis on one thread (for
    /// callers that already run one analysis per core), `0` splits everything (tests).
    pub parallel_min_code: u64,
}

/// Default of [`Options::parallel_min_code`]: below it a second thread costs more than it saves.
pub const PARALLEL_MIN_CODE: u64 = 64 << 10;

impl Default for Options {
    fn default() -> Self {
        Options {
            era: None,
            frame_pointer: false,
            all_conflicts: true,
            parallel_min_code: PARALLEL_MIN_CODE,
        }
    }
}
