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

/// objtool's switches that change what it reports or writes (kbuild's `objtool-args`), in objtool's own spellings
/// ([`ObjtoolArgs::parse`]). The default is none of them, which is objtool run by hand with no option but the
/// stack checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ObjtoolArgs {
    /// `--prefix=N`: functions preceded by exactly N bytes of NOPs get a `__pfx_` symbol whose padding carries
    /// the function's entry CFI (so ORC rows start N bytes earlier).
    pub prefix: u8,
    /// `--hacks=jump_label`: a jump label's `jmp` whose key is "likely" (`key_addend & 2`) becomes a NOP.
    pub hack_jump_label: bool,
    /// `--hacks=noinstr`: calls to `__sanitizer_cov_*` in `.noinstr.text` become NOPs.
    pub hack_noinstr: bool,
    /// `--hacks=skylake`: call-depth-tracking sites (sections only).
    pub hack_skylake: bool,
    /// `--uaccess`: SMAP alternatives are followed through the replacement only (and UACCESS rules apply).
    pub uaccess: bool,
    /// `--ibt`: ENDBR checks and `.ibt_endbr_seal`.
    pub ibt: bool,
    /// `--cfi`: kCFI sections.
    pub cfi: bool,
    /// `--link`: the object is (part of) a link (`vmlinux.o`), weak-symbol holes are not unreachable.
    pub link: bool,
    /// `--module`: the object is a module.
    pub module: bool,
    /// `--noinstr`: noinstr validation.
    pub noinstr: bool,
    /// `--unret`: return-thunk (untrain) validation.
    pub unret: bool,
    /// `--retpoline`: indirect branches are warned about and `.retpoline_sites` written.
    pub retpoline: bool,
    /// `--rethunk`: bare returns are warned about and `.return_sites` written.
    pub rethunk: bool,
    /// `--static-call`: `.static_call_sites`.
    pub static_call: bool,
    /// `--sls`: straight-line-speculation checks.
    pub sls: bool,
    /// `--stackval`: the frame-pointer stack checks ([`Options::frame_pointer`]).
    pub stackval: bool,
    /// `--orc`: ORC generation (implies the stack checks).
    pub orc: bool,
    /// `--mcount`: `__mcount_loc`.
    pub mcount: bool,
    /// `--mnop`: mcount calls become NOPs.
    pub mnop: bool,
    /// `--no-unreachable`: no "unreachable instruction" warnings.
    pub no_unreachable: bool,
}

/// An objtool argument altcfi does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown objtool option '{0}'")]
pub struct UnknownObjtoolArg(pub String);

impl ObjtoolArgs {
    /// Parses objtool's own spellings (`--prefix=16`, `--hacks=jump_label,noinstr`, `--uaccess`, …), as kbuild writes
    /// them into `.NAME.o.cmd`. Options that change nothing objtool reports (`--verbose`, `--backtrace`, `--Werror`,
    /// `--backup`, `--dry-run`, `--stats`, `--sec-address`) are accepted and ignored; `--dump` is not an analysis
    /// option and is refused like anything unknown.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownObjtoolArg> {
        let mut a = ObjtoolArgs::default();
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let bad = || UnknownObjtoolArg(arg.to_string());
            match (name, value) {
                ("--prefix", Some(v)) => a.prefix = v.parse().map_err(|_| bad())?,
                ("--hacks", Some(v)) => {
                    for h in v.split(',') {
                        match h {
                            "jump_label" => a.hack_jump_label = true,
                            "noinstr" => a.hack_noinstr = true,
                            "skylake" => a.hack_skylake = true,
                            _ => return Err(bad()),
                        }
                    }
                }
                ("--hacks", None) => {
                    a.hack_jump_label = true;
                    a.hack_noinstr = true;
                    a.hack_skylake = true;
                }
                (_, Some(_)) => return Err(bad()),
                ("--uaccess", _) => a.uaccess = true,
                ("--ibt", _) => a.ibt = true,
                ("--cfi", _) => a.cfi = true,
                ("--link", _) => a.link = true,
                ("--module", _) => a.module = true,
                ("--noinstr", _) => a.noinstr = true,
                ("--unret", _) => a.unret = true,
                ("--retpoline", _) => a.retpoline = true,
                ("--rethunk", _) => a.rethunk = true,
                ("--static-call", _) => a.static_call = true,
                ("--sls", _) => a.sls = true,
                ("--stackval", _) => a.stackval = true,
                ("--orc", _) => a.orc = true,
                ("--mcount", _) => a.mcount = true,
                ("--mnop", _) => a.mnop = true,
                ("--no-unreachable", _) => a.no_unreachable = true,
                (
                    "--verbose" | "--backtrace" | "--Werror" | "--backup" | "--dry-run" | "--stats"
                    | "--sec-address" | "--no-fp" | "-v" | "-b",
                    _,
                ) => {}
                _ => return Err(bad()),
            }
        }
        Ok(a)
    }

    /// The arguments in objtool's spelling, in kbuild's order (`--hacks=jump_label --hacks=noinstr … --prefix=16`).
    pub fn to_args(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let flags = [
            (self.hack_jump_label, "--hacks=jump_label"),
            (self.hack_noinstr, "--hacks=noinstr"),
            (self.hack_skylake, "--hacks=skylake"),
            (self.ibt, "--ibt"),
            (self.cfi, "--cfi"),
            (self.mcount, "--mcount"),
            (self.mnop, "--mnop"),
            (self.orc, "--orc"),
            (self.retpoline, "--retpoline"),
            (self.rethunk, "--rethunk"),
            (self.sls, "--sls"),
            (self.stackval, "--stackval"),
            (self.static_call, "--static-call"),
            (self.uaccess, "--uaccess"),
            (self.no_unreachable, "--no-unreachable"),
            (self.noinstr, "--noinstr"),
            (self.unret, "--unret"),
        ];
        out.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_string()));
        if self.prefix > 0 {
            out.push(format!("--prefix={}", self.prefix));
        }
        if self.link {
            out.push("--link".into());
        }
        if self.module {
            out.push("--module".into());
        }
        out
    }
}

/// Analysis options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Kernel era; `None` detects it from the object's own signals ([`crate::analysis::EraSource`]), 6.12 rules
    /// when nothing tells.
    pub era: Option<Era>,
    /// objtool's switches, as kbuild passes them (none by default).
    pub objtool: ObjtoolArgs,
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
            objtool: ObjtoolArgs::default(),
            frame_pointer: false,
            all_conflicts: true,
            parallel_min_code: PARALLEL_MIN_CODE,
        }
    }
}
