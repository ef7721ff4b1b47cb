//! Flow stage: instructions + symbols + relocations + special entries → a [`Program`] ready to walk.
//!
//! In objtool's order (it matters: later steps read what earlier ones set): classify symbols (cold parts, aliases,
//! thunks), decode every executable section and give each instruction its symbol, honour
//! `STACK_FRAME_NON_STANDARD` and `ANNOTATE_IGNORE_ALTERNATIVE` (instruction annotations are read in both spellings:
//! the per-annotation `.discard.*` sections of kernels before 6.14 and 6.14's `.discard.annotate_insn`, see
//! `InsnAnnotation`), attach alternative groups, jump labels and exception
//! fixups ([`crate::alternatives`]), resolve jump and call destinations (sibling calls, thunks, noreturn callees),
//! mark dead ends, find switch jump tables through `.rela.rodata`, and read unwind hints. Structural problems that
//! stop objtool stop this stage too, as a fatal [`Finding`]. No CFI is computed here.

use crate::alternatives::{self, AltGroup};
use crate::cfi::{CfiId, CfiState, FxBuild, HintType, Interner, CFA, SP_INDIRECT, UNDEFINED};
use crate::decode::{self, reg, Decoded, Insn, InsnKind, Ops};
use crate::findings::{Finding, FindingKind, Location};
use crate::object::{reloc_types, Object, Reloc, SymBind, SymKind};
use crate::options::{Era, ObjtoolArgs};
use crate::special::{self, SpecialAlt};
use std::collections::HashMap;
use std::ops::Range;

/// Index of an instruction node in [`Program::nodes`].
pub type NodeId = u32;

/// Why a node is an alternative successor of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum AltKind {
    /// A replacement of an alternative group (index into [`Program::specials`]).
    Replacement(usize),
    /// The other side of a jump label.
    JumpLabel,
    /// An exception fixup.
    ExceptionFixup,
    /// A switch jump table target.
    SwitchTable,
}

/// An extra successor of an instruction, explored with the state before the instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alt {
    /// The first instruction of the successor.
    pub node: NodeId,
    /// Do not follow the original path afterwards.
    pub skip_orig: bool,
    /// Why.
    pub kind: AltKind,
}

/// An optional index in 32 bits (`u32::MAX` is none), which keeps [`Node`] small.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Opt32(u32);

impl Opt32 {
    /// No index.
    pub const NONE: Opt32 = Opt32(u32::MAX);

    /// The index, if any.
    pub fn get(self) -> Option<usize> {
        (self.0 != u32::MAX).then_some(self.0 as usize)
    }

    /// The node id, if any.
    pub fn node(self) -> Option<NodeId> {
        (self.0 != u32::MAX).then_some(self.0)
    }

    /// An index is set.
    pub fn is_some(self) -> bool {
        self.0 != u32::MAX
    }

    /// No index is set.
    pub fn is_none(self) -> bool {
        self.0 == u32::MAX
    }
}

impl From<Option<usize>> for Opt32 {
    /// An index that does not fit in 32 bits (not possible for an ELF object's symbols or groups) becomes none.
    fn from(o: Option<usize>) -> Self {
        Opt32(o.and_then(|i| u32::try_from(i).ok()).unwrap_or(u32::MAX))
    }
}

impl From<Option<NodeId>> for Opt32 {
    /// `u32::MAX` itself is not a node id: node tables are far smaller.
    fn from(o: Option<NodeId>) -> Self {
        Opt32(o.unwrap_or(u32::MAX))
    }
}

impl std::fmt::Debug for Opt32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// One link of the extra-successor lists kept in [`Program::alt_links`].
#[derive(Debug, Clone, Copy)]
struct AltLink {
    alt: Alt,
    /// The next link of the same instruction ([`NO_ALT`] at the end).
    next: u32,
}

/// End of an extra-successor list.
const NO_ALT: u32 = u32::MAX;

/// An instruction with everything the walk needs to know about it (kept small: one per instruction).
#[derive(Debug, Clone)]
pub struct Node {
    /// The decoded instruction (`kind` may be adjusted by this stage).
    pub insn: Insn,
    /// Section index.
    sec: u32,
    /// The symbol the instruction belongs to (objtool's `insn->sym`).
    pub sym: Opt32,
    /// Resolved destination of a direct jump.
    pub jump_dest: Opt32,
    /// Called (or sibling-called) symbol.
    pub call_dest: Opt32,
    /// First link of the extra successors (see [`Program::alts`]).
    alts: u32,
    /// The alternative group the instruction is part of.
    pub alt_group: Opt32,
    /// Its stack operations in [`Program::ops`] (none for most instructions).
    stack_ops: Opt32,
    /// The path ends after this instruction.
    pub dead_end: bool,
    /// Not validated and not reported (`STACK_FRAME_NON_STANDARD`, ignored replacements).
    pub ignore: bool,
    /// Do not explore the extra successors.
    pub ignore_alts: bool,
    /// Carries an unwind hint that sets the state.
    pub hint: bool,
    /// `UNWIND_HINT_SAVE`.
    pub save: bool,
    /// `UNWIND_HINT_RESTORE`.
    pub restore: bool,
    /// A padding NOP made up for a short replacement; not in its section's instruction list.
    pub synthetic: bool,
}

impl Node {
    /// A synthetic node (a replacement's padding NOP).
    pub fn new_synthetic(sec: usize, insn: Insn) -> Self {
        let mut n = Self::new(sec, insn);
        n.synthetic = true;
        n
    }

    fn new(sec: usize, insn: Insn) -> Self {
        Node {
            insn,
            // Section indices come from the ELF header's 32-bit section count.
            sec: sec as u32,
            sym: Opt32::NONE,
            jump_dest: Opt32::NONE,
            call_dest: Opt32::NONE,
            alts: NO_ALT,
            alt_group: Opt32::NONE,
            stack_ops: Opt32::NONE,
            dead_end: false,
            ignore: false,
            ignore_alts: false,
            hint: false,
            save: false,
            restore: false,
            synthetic: false,
        }
    }

    /// Section index.
    pub fn sec(&self) -> usize {
        self.sec as usize
    }
}

/// What objtool derives about a symbol.
#[derive(Debug, Clone)]
pub struct SymInfo {
    /// Parent of a `.cold` part (itself otherwise).
    pub pfunc: usize,
    /// `.cold` child (itself otherwise).
    pub cfunc: usize,
    /// The canonical symbol at the same place (itself when it is canonical).
    pub alias: usize,
    /// Length, minus an overlapping `.cold` child.
    pub len: u64,
    /// `__x86_indirect_*` thunk.
    pub retpoline_thunk: bool,
    /// `__x86_return_thunk`.
    pub return_thunk: bool,
    /// A thunk whose first instruction is inside another instruction.
    pub embedded_insn: bool,
    /// `__fentry__`.
    pub fentry: bool,
    /// A `.L` label.
    pub local_label: bool,
    /// A static call trampoline.
    pub static_call_tramp: bool,
}

/// The decoded, resolved object.
#[derive(Debug)]
pub struct Program<'o, 'data> {
    /// The object.
    pub obj: &'o Object<'data>,
    /// Era whose rules apply.
    pub era: Era,
    /// objtool's switches (`--prefix`, `--uaccess`, `--hacks=jump_label`, …).
    pub objtool: ObjtoolArgs,
    /// All instructions, grouped by section in section order, then the synthetic NOPs.
    pub nodes: Vec<Node>,
    /// Per section index, the range of its (real) nodes.
    pub sec_ranges: Vec<Range<u32>>,
    /// Per symbol index.
    pub syms: Vec<SymInfo>,
    /// Sections objtool treats as text (executable, not replacements or `.discard.*`).
    pub text: Vec<bool>,
    /// Alternative groups.
    pub groups: Vec<AltGroup>,
    /// The special entries, in objtool's order.
    pub specials: Vec<SpecialAlt>,
    /// Interned CFI states (hint states are added here).
    pub interner: Interner,
    /// objtool's `ignore_unreachables` (set by RIP-relative switch tables).
    pub ignore_unreachables: bool,
    /// The instructions `ANNOTATE_IGNORE_ALTERNATIVE` marks (objtool explores none of their alternatives).
    pub annotated_ignore_alts: Vec<NodeId>,
    /// The instructions of the functions `STACK_FRAME_NON_STANDARD` names (objtool never walks them).
    pub non_standard: Vec<NodeId>,
    /// Non-fatal warnings raised while building.
    pub warnings: Vec<Finding>,
    /// The extra-successor lists of all nodes (see [`Program::alts`]).
    alt_links: Vec<AltLink>,
    /// The stack operations of the nodes that have any (see [`Program::ops`]).
    stack_ops: Vec<Ops>,
    /// Dynamic jumps through a switch table → the table's `.rodata` relocation (section, index in its relocations).
    jump_tables: HashMap<NodeId, (u32, u32), FxBuild>,
    /// Per symbol: an `STT_FUNC` (a compact copy of the kinds for the per-instruction `insn_func`).
    is_func: Vec<bool>,
    /// See [`crate::Options::parallel_min_code`].
    parallel_min_code: u64,
    /// Bytes of code (executable sections) in the object.
    pub code_bytes: u64,
    /// The states unwind hints give, by instruction.
    hint_cfi: HashMap<NodeId, CfiId, FxBuild>,
    /// For jump-table detection, per node: the first unconditional forward jump to it (only while the tables are
    /// looked for; empty otherwise).
    first_jump_src: Vec<Opt32>,
    /// objtool's `retpoline_safe` instructions (annotated, or calls and jumps to the retpoline and return thunks),
    /// sorted.
    retpoline_safe: Vec<NodeId>,
}

/// A position in a function's nodes: see [`Program::func_cursor`].
#[derive(Clone, Copy, Debug)]
pub struct FuncCursor {
    cur: Option<NodeId>,
    /// At most this many more nodes (a guard against `.cold` cycles).
    left: usize,
    /// The function of `cur` and the end of its section's nodes, once known (`None` after a jump to a `.cold`
    /// part): the common step is then one symbol comparison.
    run: Option<(usize, u32)>,
}

impl FuncCursor {
    /// The next node of the function.
    pub fn next(&mut self, p: &Program) -> Option<NodeId> {
        let id = self.cur.take()?;
        self.left -= 1;
        if self.left > 0 {
            self.cur = match self.run {
                // `next_insn_same_func` within a run of the same function symbol.
                Some((func, end))
                    if id + 1 < end
                        && !p.nodes[id as usize].synthetic
                        && p.nodes[id as usize + 1].sym.get() == Some(func) =>
                {
                    Some(id + 1)
                }
                _ => {
                    let next = p.next_insn_same_func(id);
                    self.run = next.and_then(|n| {
                        let func = p.insn_func(n)?;
                        let end = p.sec_ranges.get(p.nodes[n as usize].sec())?.end;
                        Some((func, end))
                    });
                    next
                }
            };
        }
        Some(id)
    }
}

/// Bytes of code in an object: the executable sections' bytes present in the file.
fn code_bytes(obj: &Object) -> u64 {
    obj.sections
        .iter()
        .filter(|s| s.is_exec())
        .map(|s| s.data.len() as u64)
        .sum()
}

/// Decodes executable section `idx` and appends its instructions to `nodes`, in the order of the sequential sweep
/// from offset 0. A section of at least `parallel_min` bytes is decoded by two threads, the second from a function symbol near the middle;
/// its part is kept only if the first thread's sweep arrives exactly at that offset (otherwise the first thread's
/// sweep simply continues), so the result never depends on the split.
fn decode_exec_section(
    obj: &Object,
    idx: usize,
    parallel_min: u64,
    nodes: &mut Vec<Node>,
    stack_ops: &mut Vec<Ops>,
) -> Result<(), decode::DecodeError> {
    let data = obj.sections[idx].data;
    let in_func = |off: u64| {
        obj.symbol_containing(idx, off, false)
            .is_some_and(|s| s.kind == SymKind::Func)
    };
    let mut push = |d: Decoded| {
        let mut n = Node::new(idx, d.insn);
        n.dead_end = n.insn.kind == InsnKind::Bug;
        if !d.ops.is_empty() {
            n.stack_ops = Opt32(stack_ops.len() as u32);
            stack_ops.push(d.ops);
        }
        nodes.push(n);
    };
    let len = data.len();
    let split = (len as u64 >= parallel_min.max(2))
        .then(|| {
            obj.symbols_in(idx)
                .iter()
                .map(|&s| &obj.symbols[s])
                .filter(|s| s.kind == SymKind::Func && s.value >= (len / 2) as u64)
                .map(|s| s.value as usize)
                .min()
        })
        .flatten()
        .filter(|&at| at < len);
    let Some(split) = split else {
        decode::decode_range_into(data, 0, len, &in_func, &mut push)?;
        return Ok(());
    };
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| decode::decode_range(data, split, len, &in_func));
        let first = decode::decode_range_into(data, 0, split, &in_func, &mut push);
        (first, second.join())
    });
    let end = first?;
    if end == split {
        if let Ok(second) = second {
            let (rest, _) = second?;
            rest.into_iter().for_each(&mut push);
            return Ok(());
        }
    }
    decode::decode_range_into(data, end, len, &in_func, &mut push)?;
    Ok(())
}

/// objtool's `is_profiling_func`: instrumentation calls that `--hacks=noinstr` removes from noinstr code.
fn is_profiling_func(name: &str) -> bool {
    name.starts_with("__sanitizer_cov_")
        || name.starts_with("__tsan_func_")
        || name == "__tsan_atomic_signal_fence"
}

/// objtool 6.1's global list of functions that never return (`__dead_end_function`, global symbols only).
const GLOBAL_NORETURNS_6_1: &[&str] = &[
    "__invalid_creds",
    "__module_put_and_kthread_exit",
    "__reiserfs_panic",
    "__stack_chk_fail",
    "__ubsan_handle_builtin_unreachable",
    "cpu_bringup_and_idle",
    "cpu_startup_entry",
    "do_exit",
    "do_group_exit",
    "do_task_dead",
    "ex_handler_msr_mce",
    "fortify_panic",
    "kthread_complete_and_exit",
    "kthread_exit",
    "kunit_try_catch_throw",
    "lbug_with_loc",
    "machine_real_restart",
    "make_task_dead",
    "panic",
    "rewind_stack_and_make_dead",
    "sev_es_terminate",
    "snp_abort",
    "stop_this_cpu",
    "usercopy_abort",
    "xen_start_kernel",
];

/// objtool 6.12's global list of functions that never return (`noreturns.h`; global and weak symbols).
const GLOBAL_NORETURNS: &[&str] = &[
    "__fortify_panic",
    "__ia32_sys_exit",
    "__ia32_sys_exit_group",
    "__kunit_abort",
    "__module_put_and_kthread_exit",
    "__reiserfs_panic",
    "__stack_chk_fail",
    "__tdx_hypercall_failed",
    "__ubsan_handle_builtin_unreachable",
    "__x64_sys_exit",
    "__x64_sys_exit_group",
    "arch_cpu_idle_dead",
    "bch2_trans_in_restart_error",
    "bch2_trans_restart_error",
    "bch2_trans_unlocked_error",
    "cpu_bringup_and_idle",
    "cpu_startup_entry",
    "do_exit",
    "do_group_exit",
    "do_task_dead",
    "ex_handler_msr_mce",
    "hlt_play_dead",
    "hv_ghcb_terminate",
    "kthread_complete_and_exit",
    "kthread_exit",
    "kunit_try_catch_throw",
    "machine_real_restart",
    "make_task_dead",
    "mpt_halt_firmware",
    "nmi_panic_self_stop",
    "panic",
    "panic_smp_self_stop",
    "rest_init",
    "rewind_stack_and_make_dead",
    "rust_begin_unwind",
    "rust_helper_BUG",
    "sev_es_terminate",
    "snp_abort",
    "start_kernel",
    "stop_this_cpu",
    "usercopy_abort",
    "x86_64_start_kernel",
    "x86_64_start_reservations",
    "xen_cpu_bringup_again",
    "xen_start_kernel",
];

/// Linux 6.14+'s one section of instruction annotations: 8-byte entries `{ .long insn - . ; .long type }`, the
/// first word relocated (`R_X86_64_PC32`) to the instruction, the second an `ANNOTYPE_*` number.
const ANNOTATE_INSN: &str = ".discard.annotate_insn";

/// An instruction annotation altcfi acts on. Before 6.14 each had a section of its own whose 4-byte entries are only a
/// relocation to the instruction; since 6.14 all are entries of [`ANNOTATE_INSN`] told apart by their type word, and
/// [`Program::annotated_insns`] reads both spellings. The other 6.14 types (`NOENDBR` 1, `INSTR_BEGIN`/`INSTR_END`
/// 3/4, `UNRET_BEGIN` 5, `REACHABLE` 8, `NOCFI` 9) and unknown numbers are not acted on: types 1, 3 to 5 and 9
/// concern objtool passes altcfi does not run, and `REACHABLE` is not implemented (see
/// `docs/objtool-differences.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InsnAnnotation {
    /// `ANNOTATE_IGNORE_ALTERNATIVE`: the instruction's alternatives are not explored.
    IgnoreAlts,
    /// `ANNOTATE_INTRA_FUNCTION_CALL`: a call to a label of its own function, walked as a jump that pushes.
    IntraFunctionCall,
    /// `ANNOTATE_RETPOLINE_SAFE`: an indirect branch or return that the `--retpoline`/`--rethunk`/`--sls` checks
    /// accept.
    RetpolineSafe,
}

impl InsnAnnotation {
    /// The section of kernels before 6.14.
    fn legacy_section(self) -> &'static str {
        match self {
            InsnAnnotation::IgnoreAlts => ".discard.ignore_alts",
            InsnAnnotation::IntraFunctionCall => ".discard.intra_function_calls",
            InsnAnnotation::RetpolineSafe => ".discard.retpoline_safe",
        }
    }

    /// The type word of its [`ANNOTATE_INSN`] entries (`ANNOTYPE_*` in `include/linux/objtool_types.h`).
    fn annotype(self) -> u32 {
        match self {
            InsnAnnotation::IgnoreAlts => 6,
            InsnAnnotation::IntraFunctionCall => 7,
            InsnAnnotation::RetpolineSafe => 2,
        }
    }
}

impl<'o, 'data> Program<'o, 'data> {
    /// Builds the program: everything objtool's `decode_sections()` does. A fatal problem is returned as a finding.
    /// `alt_entry_size` is the `.altinstructions` stride (`None`: detect it); `parallel_min_code`: see
    /// [`crate::Options::parallel_min_code`].
    pub fn build(
        obj: &'o Object<'data>,
        era: Era,
        objtool: ObjtoolArgs,
        alt_entry_size: Option<usize>,
        parallel_min_code: u64,
    ) -> Result<Self, Box<Finding>> {
        let mut p = Program {
            obj,
            era,
            objtool,
            nodes: Vec::new(),
            sec_ranges: vec![0..0; obj.sections.len()],
            syms: Vec::new(),
            text: vec![false; obj.sections.len()],
            groups: Vec::new(),
            specials: Vec::new(),
            interner: Interner::default(),
            ignore_unreachables: false,
            annotated_ignore_alts: Vec::new(),
            non_standard: Vec::new(),
            warnings: Vec::new(),
            alt_links: Vec::new(),
            stack_ops: Vec::new(),
            jump_tables: HashMap::default(),
            is_func: obj
                .symbols
                .iter()
                .map(|s| s.kind == SymKind::Func)
                .collect(),
            parallel_min_code,
            code_bytes: code_bytes(obj),
            hint_cfi: HashMap::default(),
            first_jump_src: Vec::new(),
            retpoline_safe: Vec::new(),
        };
        p.classify_symbols()?;
        let read_specials =
            || special::read_special_alts(obj, era, alt_entry_size, objtool.uaccess);
        // The special sections depend on the object alone: with a second thread to spare they are read while the
        // code is decoded (any error is still reported here, after the decoding's).
        let early = if p.code_bytes >= parallel_min_code {
            let (decoded, specials) = std::thread::scope(|s| {
                let specials = s.spawn(read_specials);
                (p.decode_instructions(), specials.join().ok())
            });
            decoded?;
            specials
        } else {
            p.decode_instructions()?;
            None
        };
        p.add_ignores();
        p.add_ignore_alternatives()?;
        let specials = early
            .unwrap_or_else(read_specials)
            .map_err(|e| p.fatal_special(e))?;
        p.specials = specials;
        alternatives::attach_all(&mut p)?;
        p.add_jump_destinations()?;
        p.read_intra_function_calls()?;
        p.add_call_destinations()?;
        p.add_dead_ends()?;
        p.add_jump_table_alts()?;
        p.read_unwind_hints()?;
        p.read_retpoline_hints()?;
        Ok(p)
    }

    /// The extra successors of a node (replacements, jump labels, fixups, table targets), in objtool's list order.
    pub fn alts(&self, node: NodeId) -> impl Iterator<Item = Alt> + '_ {
        let mut link = self.nodes[node as usize].alts;
        std::iter::from_fn(move || {
            let l = self.alt_links.get(link as usize)?;
            link = l.next;
            Some(l.alt)
        })
    }

    /// The node has extra successors.
    pub fn has_alts(&self, node: NodeId) -> bool {
        self.nodes[node as usize].alts != NO_ALT
    }

    /// Adds an extra successor where objtool's era puts it: 6.3+ prepends to a singly linked list, 6.1 appends to a
    /// `list_head`.
    pub fn add_alt(&mut self, node: NodeId, alt: Alt) {
        let new = self.alt_links.len() as u32;
        let head = self.nodes[node as usize].alts;
        match self.era {
            Era::V6_12 => {
                self.alt_links.push(AltLink { alt, next: head });
                self.nodes[node as usize].alts = new;
            }
            Era::V6_1 => {
                self.alt_links.push(AltLink { alt, next: NO_ALT });
                if head == NO_ALT {
                    self.nodes[node as usize].alts = new;
                } else {
                    let mut last = head as usize;
                    while self.alt_links[last].next != NO_ALT {
                        last = self.alt_links[last].next as usize;
                    }
                    self.alt_links[last].next = new;
                }
            }
        }
    }

    fn fatal_special(&self, e: special::SpecialError) -> Box<Finding> {
        let loc = match &e {
            special::SpecialError::MissingReloc {
                section, offset, ..
            } => Some(self.location(*section, *offset)),
            _ => None,
        };
        let mut f = Finding::new(FindingKind::BadObject, loc, e.to_string());
        f.fatal = true;
        Box::new(f)
    }

    /// A fatal finding at an instruction.
    pub fn fatal_at(&self, node: NodeId, msg: impl Into<String>) -> Box<Finding> {
        let n = &self.nodes[node as usize];
        let mut f = Finding::new(
            FindingKind::BadObject,
            Some(self.location(n.sec(), n.insn.offset())),
            msg,
        );
        f.fatal = true;
        Box::new(f)
    }

    fn fatal(&self, msg: impl Into<String>) -> Box<Finding> {
        let mut f = Finding::new(FindingKind::BadObject, None, msg);
        f.fatal = true;
        Box::new(f)
    }

    /// objtool's `offstr()`: `func+0x1a`, else `sym+0x1a`, else `.section+0x1a`.
    pub fn location(&self, section: usize, offset: u64) -> Location {
        let sec = &self.obj.sections[section];
        let sym = if sec.is_exec() {
            self.obj
                .symbol_containing(section, offset, true)
                .filter(|s| s.kind == SymKind::Func)
        } else {
            None
        }
        .or_else(|| self.obj.symbol_containing(section, offset, false));
        let display = match sym {
            Some(s) => format!("{}+0x{:x}", s.name, offset - s.value),
            None => format!("{}+0x{:x}", sec.name, offset),
        };
        Location {
            section,
            section_name: sec.name.clone(),
            offset,
            display,
        }
    }

    /// The location of a node.
    pub fn node_location(&self, node: NodeId) -> Location {
        let n = &self.nodes[node as usize];
        self.location(n.sec(), n.insn.offset())
    }

    /// objtool's `insn_func()`: the node's symbol if it is a function.
    pub fn insn_func(&self, node: NodeId) -> Option<usize> {
        self.nodes[node as usize]
            .sym
            .get()
            .filter(|&s| self.is_func.get(s).copied().unwrap_or(false))
    }

    /// The instruction at (section, offset).
    pub fn find_insn(&self, sec: usize, offset: u64) -> Option<NodeId> {
        let r = self.sec_ranges.get(sec)?.clone();
        let slice = &self.nodes[r.start as usize..r.end as usize];
        let i = slice
            .binary_search_by_key(&offset, |n| n.insn.offset())
            .ok()?;
        Some(r.start + i as u32)
    }

    /// The next instruction of the same section.
    pub fn next_insn_same_sec(&self, node: NodeId) -> Option<NodeId> {
        let n = &self.nodes[node as usize];
        if n.synthetic {
            return None;
        }
        let next = node + 1;
        (next < self.sec_ranges[n.sec()].end).then_some(next)
    }

    /// The previous instruction of the same section.
    pub fn prev_insn_same_sec(&self, node: NodeId) -> Option<NodeId> {
        let n = &self.nodes[node as usize];
        if n.synthetic || node == 0 {
            return None;
        }
        (node > self.sec_ranges[n.sec()].start).then(|| node - 1)
    }

    fn prev_insn_same_sym(&self, node: NodeId) -> Option<NodeId> {
        let prev = self.prev_insn_same_sec(node)?;
        (self.nodes[prev as usize].sym == self.nodes[node as usize].sym).then_some(prev)
    }

    /// objtool's `next_insn_same_func`: continues into the `.cold` part.
    pub fn next_insn_same_func(&self, node: NodeId) -> Option<NodeId> {
        let func = self.insn_func(node)?;
        if let Some(next) = self.next_insn_same_sec(node) {
            // `insn_func(next) == Some(func)`: `func` is a function, so comparing the symbols is enough.
            if self.nodes[next as usize].sym.get() == Some(func) {
                return Some(next);
            }
        }
        let cfunc = self.syms[func].cfunc;
        if cfunc == func {
            return None;
        }
        let c = &self.obj.symbols[cfunc];
        self.find_insn(c.section?, c.value)
    }

    /// Nodes of a function, its `.cold` part included (objtool's `func_for_each_insn`), without allocating.
    pub fn func_insns(&self, func: usize) -> impl Iterator<Item = NodeId> + '_ {
        let mut c = self.func_cursor(func);
        std::iter::from_fn(move || c.next(self))
    }

    /// A cursor over [`Program::func_insns`] that does not borrow the program between steps (for loops that
    /// modify nodes: what they modify never changes which function a node belongs to).
    pub fn func_cursor(&self, func: usize) -> FuncCursor {
        let s = &self.obj.symbols[func];
        FuncCursor {
            cur: s.section.and_then(|sec| self.find_insn(sec, s.value)),
            left: self.nodes.len() + 1,
            run: None,
        }
    }

    /// The stack operations of a node; `None` for most, which have none.
    #[inline]
    pub fn ops(&self, id: NodeId) -> Option<&Ops> {
        let i = self.nodes[id as usize].stack_ops.get()?;
        self.stack_ops.get(i)
    }

    /// Nodes in `[value, value+len)` of a symbol (objtool's `sym_for_each_insn`).
    pub fn sym_insns(&self, sym: usize) -> Vec<NodeId> {
        let s = &self.obj.symbols[sym];
        let Some(sec) = s.section else {
            return Vec::new();
        };
        let end = s
            .value
            .saturating_add(self.syms.get(sym).map_or(s.size, |i| i.len));
        // A section's nodes are sorted by offset: the symbol's nodes are one contiguous run.
        let r = self.sec_ranges[sec].clone();
        let slice = &self.nodes[r.start as usize..r.end as usize];
        let lo = slice.partition_point(|n| n.insn.offset() < s.value);
        let hi = slice.partition_point(|n| n.insn.offset() < end);
        (r.start + lo as u32..r.start + hi.max(lo) as u32).collect()
    }

    /// The first relocation inside an instruction (objtool's `insn_reloc`).
    pub fn insn_reloc(&self, node: NodeId) -> Option<&'o Reloc> {
        let n = &self.nodes[node as usize];
        if n.synthetic {
            return None;
        }
        self.obj
            .relocs_in(n.sec(), n.insn.offset()..n.insn.end())
            .first()
    }

    fn classify_symbols(&mut self) -> Result<(), Box<Finding>> {
        let obj = self.obj;
        self.syms = obj
            .symbols
            .iter()
            .map(|s| {
                let global = s.bind == SymBind::Global;
                SymInfo {
                    pfunc: s.index,
                    cfunc: s.index,
                    alias: s.index,
                    len: s.size,
                    retpoline_thunk: global
                        && (s.name.starts_with("__x86_indirect_")
                            || s.name.starts_with("__pi___x86_indirect_")),
                    return_thunk: global && s.name == "__x86_return_thunk",
                    embedded_insn: global
                        && matches!(
                            s.name.as_str(),
                            "retbleed_return_thunk" | "srso_alias_safe_ret" | "srso_safe_ret"
                        ),
                    fentry: global && s.name == "__fentry__",
                    local_label: s.kind == SymKind::NoType && s.name.starts_with(".L"),
                    static_call_tramp: global && s.name.starts_with("__SCT__"),
                }
            })
            .collect();
        // Aliases: a later symbol of the same type at the same offset becomes the canonical one.
        for sec in 0..obj.sections.len() {
            let list = obj.symbols_in(sec);
            for (k, &a) in list.iter().enumerate() {
                let sa = &obj.symbols[a];
                if sa.size == 0 {
                    continue;
                }
                for &b in &list[k + 1..] {
                    let sb = &obj.symbols[b];
                    if sb.value != sa.value {
                        break;
                    }
                    if sb.kind == sa.kind && b > a {
                        self.syms[a].alias = b;
                    }
                }
            }
        }
        // Cold subfunctions.
        for s in &obj.symbols {
            if s.kind != SymKind::Func {
                continue;
            }
            let Some(pos) = s.name.find(".cold") else {
                continue;
            };
            let pname = &s.name[..pos];
            let Some(parent) = obj.symbols.iter().find(|p| p.name == pname) else {
                return Err(self.fatal(format!("{}(): can't find parent function", s.name)));
            };
            self.syms[s.index].pfunc = parent.index;
            self.syms[parent.index].cfunc = s.index;
            if s.section == parent.section
                && s.value >= parent.value
                && s.value.wrapping_add(s.size)
                    == parent.value.wrapping_add(self.syms[parent.index].len)
            {
                self.syms[parent.index].len = self.syms[parent.index].len.wrapping_sub(s.size);
            }
        }
        Ok(())
    }

    fn decode_instructions(&mut self) -> Result<(), Box<Finding>> {
        let obj = self.obj;
        // One node per 3 bytes of code, plus the padding NOPs of short replacements (at most one per
        // `.altinstructions` entry): usually no regrowth, and capacity never touched costs no memory.
        let code = self.code_bytes;
        // (The bytes actually present, not the header's size: a broken header must not reserve memory.)
        let padding = obj
            .section_by_name(".altinstructions")
            .map_or(0, |s| s.data.len() as u64 / 12);
        self.nodes
            .reserve(usize::try_from(code / 3 + padding).unwrap_or(0));
        for sec in &obj.sections {
            if !sec.is_exec() {
                continue;
            }
            if sec.name != ".altinstr_replacement"
                && sec.name != ".altinstr_aux"
                && !sec.name.starts_with(".discard.")
            {
                self.text[sec.index] = true;
            }
            if sec.data.len() as u64 != sec.size {
                return Err(self.fatal(format!("{}: section has no data", sec.name)));
            }
            if sec.size > decode::MAX_SECTION_SIZE {
                return Err(self.fatal(format!(
                    "{}: section of {} bytes is larger than the 4 GiB this tool models",
                    sec.name, sec.size
                )));
            }
            let idx = sec.index;
            let (start, ops_start) = (self.nodes.len(), self.stack_ops.len());
            if let Err(e) = decode_exec_section(
                obj,
                idx,
                self.parallel_min_code,
                &mut self.nodes,
                &mut self.stack_ops,
            ) {
                self.nodes.truncate(start);
                self.stack_ops.truncate(ops_start);
                let mut f = Finding::new(
                    FindingKind::UndecodableInstruction,
                    Some(self.location(idx, e.offset)),
                    format!("can't decode instruction at {}:0x{:x}", sec.name, e.offset),
                );
                f.fatal = true;
                return Err(Box::new(f));
            }
            for n in self.nodes[start..].iter().filter(|n| n.insn.notrack) {
                self.warnings.push(Finding::new(
                    FindingKind::BadObject,
                    None,
                    format!(
                        "notrack prefix found at {}:0x{:x}",
                        sec.name,
                        n.insn.offset()
                    ),
                ));
            }
            self.sec_ranges[idx] = start as u32..self.nodes.len() as u32;

            for &si in obj.symbols_in(idx) {
                let s = &obj.symbols[si];
                if s.kind != SymKind::Func && s.kind != SymKind::NoType {
                    continue;
                }
                if s.value == sec.size {
                    if s.kind == SymKind::NoType {
                        continue;
                    }
                    return Err(self.fatal(format!("{}(): STT_FUNC at end of section", s.name)));
                }
                if self.syms[si].embedded_insn || self.syms[si].alias != si {
                    continue;
                }
                if self.find_insn(idx, s.value).is_none() {
                    return Err(
                        self.fatal(format!("{}(): can't find starting instruction", s.name))
                    );
                }
                for n in self.sym_insns(si) {
                    self.nodes[n as usize].sym = Some(si).into();
                }
            }
        }
        Ok(())
    }

    /// Relocations of a `.discard.*` annotation section, resolved to (section, offset).
    fn annotation_targets(&self, name: &str) -> Vec<(usize, &'o Reloc)> {
        let Some(sec) = self.obj.section_by_name(name) else {
            return Vec::new();
        };
        self.obj
            .relocs(sec.index)
            .iter()
            .filter_map(|r| Some((self.obj.symbols[r.symbol].section?, r)))
            .collect()
    }

    fn add_ignores(&mut self) {
        for (sec, r) in self.annotation_targets(".discard.func_stack_frame_non_standard") {
            let sym = &self.obj.symbols[r.symbol];
            let func = match sym.kind {
                SymKind::Func => Some(sym.index),
                SymKind::Section => self.obj.symbols_in(sec).iter().copied().find(|&s| {
                    let s = &self.obj.symbols[s];
                    s.kind == SymKind::Func && s.value == r.addend as u64
                }),
                _ => None,
            };
            if let Some(func) = func {
                let mut c = self.func_cursor(func);
                while let Some(n) = c.next(self) {
                    self.nodes[n as usize].ignore = true;
                    self.non_standard.push(n);
                }
            }
        }
    }

    /// The instructions an annotation marks, as (section, offset): the entries of its legacy section (every
    /// relocation whose symbol has a section), then the [`ANNOTATE_INSN`] entries of its type, in relocation order.
    ///
    /// As objtool's `read_annotate`, an [`ANNOTATE_INSN`] entry is its relocation: entries without one are never
    /// seen, and the type is read at `index * 8 + 4` (the relocation's position in offset order, which is objtool's
    /// index in the usual offset-ordered `.rela` section; objtool forces the stride to 8 whatever `sh_entsize` says).
    /// Every entry is checked, whatever its type: one whose symbol + addend is not an instruction is fatal (objtool:
    /// `bad .discard.annotate_insn entry: N of type T`, on its first pass, so before the special sections are read),
    /// and so is one whose type word lies outside the section's data, where objtool would read past its buffer.
    /// Unknown types are skipped.
    fn annotated_insns(&self, kind: InsnAnnotation) -> Result<Vec<(usize, u64)>, Box<Finding>> {
        let legacy = kind.legacy_section();
        let mut out: Vec<(usize, u64)> = Vec::new();
        for (sec, r) in self.annotation_targets(legacy) {
            // objtool reads these entries as section + addend and refuses any other symbol.
            if self.obj.symbols[r.symbol].kind != SymKind::Section {
                return Err(self.fatal(format!(
                    "unexpected relocation symbol type in .rela{legacy}"
                )));
            }
            out.push((sec, r.addend as u64));
        }
        let Some(sec) = self.obj.section_by_name(ANNOTATE_INSN) else {
            return Ok(out);
        };
        for (idx, r) in self.obj.relocs(sec.index).iter().enumerate() {
            let ty = idx
                .checked_mul(8)
                .and_then(|at| sec.data.get(at.checked_add(4)?..at.checked_add(8)?))
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes);
            let Some(ty) = ty else {
                return Err(self.fatal(format!(
                    "bad {ANNOTATE_INSN} entry: {idx}: its type lies outside the section's {} bytes",
                    sec.data.len()
                )));
            };
            let sym = &self.obj.symbols[r.symbol];
            let off = (sym.value as i64).wrapping_add(r.addend) as u64;
            let Some(target) = sym.section.filter(|&s| self.find_insn(s, off).is_some()) else {
                // objtool prints both with `%d`.
                return Err(self.fatal(format!(
                    "bad {ANNOTATE_INSN} entry: {idx} of type {}",
                    ty as i32
                )));
            };
            if ty == kind.annotype() {
                out.push((target, off));
            }
        }
        Ok(out)
    }

    /// `ANNOTATE_IGNORE_ALTERNATIVE`: the marked instructions' alternatives are not explored. Runs where objtool 6.14
    /// first reads [`ANNOTATE_INSN`], so a bad entry of any type stops the build here.
    fn add_ignore_alternatives(&mut self) -> Result<(), Box<Finding>> {
        for (sec, off) in self.annotated_insns(InsnAnnotation::IgnoreAlts)? {
            if let Some(n) = self.find_insn(sec, off) {
                self.nodes[n as usize].ignore_alts = true;
                self.annotated_ignore_alts.push(n);
            }
        }
        Ok(())
    }

    fn add_jump_destinations(&mut self) -> Result<(), Box<Finding>> {
        for id in 0..self.nodes.len() as NodeId {
            let n = &self.nodes[id as usize];
            if n.jump_dest.is_some() || !n.insn.is_static_jump() || n.synthetic {
                continue;
            }
            let (dest_sec, dest_off) = match self.insn_reloc(id) {
                None => (n.sec(), n.insn.jump_destination()),
                Some(r) => {
                    let sym = &self.obj.symbols[r.symbol];
                    let info = &self.syms[r.symbol];
                    if sym.kind == SymKind::Section {
                        match sym.section {
                            Some(s) => (s, r.addend.wrapping_add(4)),
                            None => continue,
                        }
                    } else if info.retpoline_thunk {
                        self.add_retpoline_call(id, Some(r.symbol));
                        continue;
                    } else if info.return_thunk {
                        self.add_return_call(id);
                        continue;
                    } else if self.insn_func(id).is_some() {
                        self.add_call_dest(id, Some(r.symbol), None);
                        continue;
                    } else if let Some(s) = sym.section {
                        (s, (sym.value as i64).wrapping_add(r.addend).wrapping_add(4))
                    } else {
                        continue;
                    }
                }
            };
            let Some(dest) = u64::try_from(dest_off)
                .ok()
                .and_then(|o| self.find_insn(dest_sec, o))
            else {
                let sym = self
                    .obj
                    .symbols_in(dest_sec)
                    .iter()
                    .copied()
                    .find(|&s| self.obj.symbols[s].value as i64 == dest_off);
                if sym.is_some_and(|s| self.syms[s].embedded_insn) {
                    self.add_return_call(id);
                    continue;
                }
                return Err(self.fatal_at(
                    id,
                    format!(
                        "can't find jump dest instruction at {}+0x{:x}",
                        self.obj.sections[dest_sec].name, dest_off
                    ),
                ));
            };
            if let Some(ds) = self.nodes[dest as usize].sym.get() {
                if self.obj.symbols[ds].value == self.nodes[dest as usize].insn.offset() {
                    if self.syms[ds].retpoline_thunk {
                        self.add_retpoline_call(id, Some(ds));
                        continue;
                    }
                    if self.syms[ds].return_thunk {
                        self.add_return_call(id);
                        continue;
                    }
                }
            }
            if let (Some(ff), Some(tf)) = (self.insn_func(id), self.insn_func(dest)) {
                if ff != tf
                    && !self.obj.symbols[ff].name.contains(".cold")
                    && self.obj.symbols[tf].name.contains(".cold")
                {
                    self.syms[ff].cfunc = tf;
                    self.syms[tf].pfunc = ff;
                }
            }
            if self.jump_is_sibling_call(id, dest) {
                let tf = self.insn_func(dest);
                self.add_call_dest(id, tf, None);
                continue;
            }
            self.nodes[id as usize].jump_dest = Some(dest).into();
        }
        Ok(())
    }

    fn jump_is_sibling_call(&self, from: NodeId, to: NodeId) -> bool {
        let (Some(ff), Some(tf)) = (self.insn_func(from), self.insn_func(to)) else {
            return false;
        };
        if !self.is_first_func_insn(to, tf) {
            return false;
        }
        self.syms[ff].pfunc != self.syms[tf].pfunc
    }

    /// objtool's `is_first_func_insn`: the symbol's first instruction, or with `--ibt` the one right after an
    /// `endbr64` there (a direct call or jump may skip the ENDBR).
    fn is_first_func_insn(&self, node: NodeId, sym: usize) -> bool {
        let start = self.obj.symbols[sym].value;
        let at = self.nodes[node as usize].insn.offset();
        if at == start {
            return true;
        }
        self.objtool.ibt
            && self.prev_insn_same_sym(node).is_some_and(|prev| {
                let p = &self.nodes[prev as usize].insn;
                p.kind == InsnKind::Endbr && at == start + u64::from(p.len)
            })
    }

    /// objtool's `uaccess_safe` mark (given with `--uaccess`): the symbol's name is on the era's built-in list.
    pub fn is_uaccess_safe(&self, sym: usize) -> bool {
        crate::uaccess::is_uaccess_safe_name(self.era, &self.obj.symbols[sym].name)
    }

    /// objtool's `call_dest_name`: the called symbol, `pv_ops[N]` for a paravirt slot, else `{dynamic}`.
    pub fn call_dest_name(&self, id: NodeId) -> String {
        if let Some(d) = self.nodes[id as usize].call_dest.get() {
            return self.obj.symbols[d].name.clone();
        }
        match self.insn_reloc(id) {
            Some(r) if self.obj.symbols[r.symbol].name == "pv_ops" => {
                format!("pv_ops[{}]", r.addend.wrapping_div(8))
            }
            _ => "{dynamic}".to_string(),
        }
    }

    /// Whether objtool's `--retpoline`, `--rethunk` and `--sls` checks accept this instruction.
    pub fn is_retpoline_safe(&self, id: NodeId) -> bool {
        self.retpoline_safe.binary_search(&id).is_ok()
    }

    /// objtool's `read_retpoline_hints`: `ANNOTATE_RETPOLINE_SAFE` on anything but an indirect branch, a return or a
    /// NOP stops the build.
    fn read_retpoline_hints(&mut self) -> Result<(), Box<Finding>> {
        for (sec, off) in self.annotated_insns(InsnAnnotation::RetpolineSafe)? {
            let Some(id) = self.find_insn(sec, off) else {
                return Err(self.fatal("bad .discard.retpoline_safe entry"));
            };
            if !matches!(
                self.nodes[id as usize].insn.kind,
                InsnKind::JumpDynamic | InsnKind::CallDynamic | InsnKind::Return | InsnKind::Nop
            ) {
                return Err(
                    self.fatal_at(id, "retpoline_safe hint not an indirect jump/call/ret/nop")
                );
            }
            self.retpoline_safe.push(id);
        }
        self.retpoline_safe.sort_unstable();
        self.retpoline_safe.dedup();
        Ok(())
    }

    fn add_retpoline_call(&mut self, id: NodeId, sym: Option<usize>) {
        self.retpoline_safe.push(id);
        let n = &mut self.nodes[id as usize];
        n.insn.kind = match n.insn.kind {
            InsnKind::JumpUnconditional => InsnKind::JumpDynamic,
            InsnKind::JumpConditional => InsnKind::JumpDynamicConditional,
            InsnKind::Call => InsnKind::CallDynamic,
            k => k,
        };
        n.call_dest = sym.into();
        n.stack_ops = Opt32::NONE;
    }

    /// objtool's `add_return_call`: a jump to the return thunk is a return.
    fn add_return_call(&mut self, id: NodeId) {
        self.nodes[id as usize].insn.kind = InsnKind::Return;
        self.retpoline_safe.push(id);
    }

    /// `dead_ends`: `None` for a sibling call; for a call, the memo of `dead_end_function(sym, 0)` per symbol
    /// (0 = not computed, 1 = no, 2 = yes). The memo is valid for all of `add_call_destinations`: what
    /// `dead_end_function` reads (jump destinations, `call_dest` of jumps, kinds of returns and jumps, jump
    /// tables) does not change while call destinations are added.
    fn add_call_dest(&mut self, id: NodeId, dest: Option<usize>, dead_ends: Option<&mut [u8]>) {
        self.nodes[id as usize].call_dest = dest.into();
        let Some(dest) = dest else { return };
        self.nodes[id as usize].stack_ops = Opt32::NONE;
        // objtool's `annotate_call_site`: replacement code, static-call trampolines and retpoline thunks are left
        // alone; `--hacks=noinstr` and `--mcount --mnop` turn some calls into NOPs; only what remains can be a dead
        // end.
        let sec = self.obj.sections[self.nodes[id as usize].sec()]
            .name
            .as_str();
        if sec == ".altinstr_replacement" {
            return;
        }
        let info = &self.syms[dest];
        if info.static_call_tramp || info.retpoline_thunk {
            return;
        }
        let sibling = dead_ends.is_none();
        if self.objtool.hack_noinstr
            && self.is_noinstr_section(sec)
            && self.obj.symbols[dest].bind == SymBind::Global
            && is_profiling_func(&self.obj.symbols[dest].name)
        {
            if sibling {
                self.add_return_call(id);
            } else {
                self.nodes[id as usize].insn.kind = InsnKind::Nop;
            }
            return;
        }
        if self.objtool.mcount && info.fentry {
            if self.objtool.mnop {
                self.nodes[id as usize].insn.kind = InsnKind::Nop;
            }
            return;
        }
        if let Some(memo) = dead_ends {
            if memo[dest] == 0 {
                memo[dest] = 1 + u8::from(self.dead_end_function(dest, 0));
            }
            if memo[dest] == 2 {
                self.nodes[id as usize].dead_end = true;
            }
        }
    }

    /// objtool's `sec->noinstr` (`.cpuidle.text` only from 6.2 on).
    fn is_noinstr_section(&self, name: &str) -> bool {
        matches!(name, ".noinstr.text" | ".entry.text")
            || (name == ".cpuidle.text" && self.era == Era::V6_12)
            || name.starts_with(".text..__x86.")
    }

    /// A sibling call: a direct jump with a call destination, or an indirect jump that is not a table jump.
    pub fn is_sibling_call(&self, id: NodeId) -> bool {
        let n = &self.nodes[id as usize];
        if self.insn_func(id).is_some() && n.insn.kind == InsnKind::JumpDynamic {
            return !self.is_jump_table_jump(id);
        }
        n.insn.is_static_jump() && n.call_dest.is_some()
    }

    /// The instructions with an unwind hint that sets the state, and that state.
    pub fn hint_states(&self) -> impl Iterator<Item = (NodeId, CfiId)> + '_ {
        self.hint_cfi.iter().map(|(&n, &c)| (n, c))
    }

    /// The switch-table relocation of a dynamic jump: (section, index in that section's relocations).
    pub fn jump_table(&self, id: NodeId) -> Option<(usize, usize)> {
        self.jump_tables
            .get(&id)
            .map(|&(s, i)| (s as usize, i as usize))
    }

    fn is_jump_table_jump(&self, id: NodeId) -> bool {
        let n = &self.nodes[id as usize];
        if self.jump_tables.contains_key(&id) {
            return true;
        }
        n.alt_group
            .get()
            .and_then(|g| self.groups[g].orig_group)
            .is_some_and(|og| self.jump_tables.contains_key(&self.groups[og].first))
    }

    /// objtool's `dead_end_function`.
    fn dead_end_function(&self, func: usize, depth: u32) -> bool {
        let s = &self.obj.symbols[func];
        let listed = match self.era {
            Era::V6_12 => {
                matches!(s.bind, SymBind::Global | SymBind::Weak)
                    && GLOBAL_NORETURNS.contains(&s.name.as_str())
            }
            Era::V6_1 => {
                s.bind == SymBind::Global && GLOBAL_NORETURNS_6_1.contains(&s.name.as_str())
            }
        };
        if listed {
            return true;
        }
        if s.bind == SymBind::Weak || self.syms[func].len == 0 {
            return false;
        }
        let Some(sec) = s.section else { return false };
        let Some(first) = self.find_insn(sec, s.value) else {
            return false;
        };
        if self.insn_func(first).is_none() {
            return false;
        }
        let mut insns = self.func_insns(func).peekable();
        if insns.peek().is_none()
            || insns.any(|i| self.nodes[i as usize].insn.kind == InsnKind::Return)
        {
            return false;
        }
        for i in self.func_insns(func) {
            if self.is_sibling_call(i) {
                let Some(dest) = self.nodes[i as usize].jump_dest.node() else {
                    return false;
                };
                if depth == 5 {
                    return false;
                }
                return match self.insn_func(dest) {
                    Some(f) => self.dead_end_function(f, depth + 1),
                    None => false,
                };
            }
        }
        true
    }

    fn read_intra_function_calls(&mut self) -> Result<(), Box<Finding>> {
        for (sec, off) in self.annotated_insns(InsnAnnotation::IntraFunctionCall)? {
            // Only a legacy entry can miss: `annotated_insns` checked the `.discard.annotate_insn` ones.
            let Some(id) = self.find_insn(sec, off) else {
                return Err(self.fatal(format!(
                    "bad .discard.intra_function_call entry: {}+0x{off:x}",
                    self.obj.sections[sec].name
                )));
            };
            if self.nodes[id as usize].insn.kind != InsnKind::Call {
                return Err(self.fatal_at(id, "intra_function_call not a direct call"));
            }
            self.nodes[id as usize].insn.kind = InsnKind::JumpUnconditional;
            let dest_off = self.nodes[id as usize].insn.jump_destination();
            let Some(dest) = self.find_insn(sec, dest_off as u64) else {
                return Err(self.fatal_at(
                    id,
                    format!(
                        "can't find call dest at {}+0x{dest_off:x}",
                        self.obj.sections[sec].name
                    ),
                ));
            };
            self.nodes[id as usize].jump_dest = Some(dest).into();
        }
        Ok(())
    }

    fn find_call_destination(&self, sec: usize, off: i64) -> Option<usize> {
        let all = self.obj.symbols_in(sec);
        // Sorted by value: only the run of symbols at `off` can match (`value as i64 == off`).
        let want = off as u64;
        let from = all.partition_point(|&s| self.obj.symbols[s].value < want);
        let to = from + all[from..].partition_point(|&s| self.obj.symbols[s].value == want);
        let syms = &all[from..to];
        let at = |kind: Option<SymKind>| {
            syms.iter().copied().find(|&s| {
                let sy = &self.obj.symbols[s];
                sy.value as i64 == off
                    && sy.kind != SymKind::Section
                    && kind.is_none_or(|k| sy.kind == k)
            })
        };
        at(Some(SymKind::Func)).or_else(|| at(None))
    }

    fn add_call_destinations(&mut self) -> Result<(), Box<Finding>> {
        let mut dead_ends = vec![0u8; self.obj.symbols.len()];
        for id in 0..self.nodes.len() as NodeId {
            if self.nodes[id as usize].insn.kind != InsnKind::Call
                || self.nodes[id as usize].synthetic
            {
                continue;
            }
            match self.insn_reloc(id) {
                None => {
                    let n = &self.nodes[id as usize];
                    let dest = self.find_call_destination(n.sec(), n.insn.jump_destination());
                    self.add_call_dest(id, dest, Some(&mut dead_ends));
                    if self.nodes[id as usize].ignore {
                        continue;
                    }
                    let Some(dest) = dest else {
                        return Err(self.fatal_at(id, "unannotated intra-function call"));
                    };
                    if self.insn_func(id).is_some() && self.obj.symbols[dest].kind != SymKind::Func
                    {
                        return Err(self.fatal_at(id, "unsupported call to non-function"));
                    }
                }
                Some(r) => {
                    let sym = &self.obj.symbols[r.symbol];
                    if sym.kind == SymKind::Section {
                        let off = r.addend.wrapping_add(4);
                        let dest = sym.section.and_then(|s| self.find_call_destination(s, off));
                        let Some(dest) = dest else {
                            return Err(self.fatal_at(
                                id,
                                format!("can't find call dest symbol at {}+0x{off:x}", sym.name),
                            ));
                        };
                        self.add_call_dest(id, Some(dest), Some(&mut dead_ends));
                    } else if self.syms[r.symbol].retpoline_thunk {
                        self.add_retpoline_call(id, Some(r.symbol));
                    } else {
                        self.add_call_dest(id, Some(r.symbol), Some(&mut dead_ends));
                    }
                }
            }
        }
        Ok(())
    }

    fn add_dead_ends(&mut self) -> Result<(), Box<Finding>> {
        // 6.12 no longer reads the old unreachable() annotation; WARN_ON()'s reachable one stays.
        // 6.14's `.discard.annotate_insn` REACHABLE entries (type 8) are not read: see docs/objtool-differences.md.
        for (name, value) in [
            (".discard.unreachable", true),
            (".discard.reachable", false),
        ] {
            if value && self.era == Era::V6_12 {
                continue;
            }
            for (sec, r) in self.annotation_targets(name) {
                let sym = &self.obj.symbols[r.symbol];
                let off = if sym.kind == SymKind::Section {
                    r.addend
                } else if self.syms[r.symbol].local_label {
                    sym.value as i64
                } else {
                    return Err(
                        self.fatal(format!("unexpected relocation symbol type in .rela{name}"))
                    );
                };
                let node = match self.find_insn(sec, off as u64) {
                    Some(n) => self.prev_insn_same_sec(n),
                    None if off as u64 == self.obj.sections[sec].size => {
                        let r = &self.sec_ranges[sec];
                        (r.end > r.start).then(|| r.end - 1)
                    }
                    None => None,
                };
                match node {
                    Some(n) => self.nodes[n as usize].dead_end = value,
                    None => {
                        let what = if value { "unreachable" } else { "reachable" };
                        return Err(self.fatal(format!(
                            "can't find {what} insn at {}+0x{off:x}",
                            self.obj.sections[sec].name
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn is_rodata(&self, sec: usize) -> bool {
        let name = &self.obj.sections[sec].name;
        (name.starts_with(".rodata") && !name.contains(".str1."))
            || name == self.c_jump_table_section()
    }

    fn add_jump_table_alts(&mut self) -> Result<(), Box<Finding>> {
        if !(0..self.obj.sections.len()).any(|s| self.is_rodata(s)) {
            return Ok(());
        }
        // Only a dynamic jump gets a table, and kinds no longer change here: without one (kernels built with
        // retpolines use -fno-jump-tables), the marking pass over every function has no reader.
        if !self
            .nodes
            .iter()
            .any(|n| n.insn.kind == InsnKind::JumpDynamic)
        {
            return Ok(());
        }
        self.first_jump_src = vec![Opt32::NONE; self.nodes.len()];
        let r = self.link_jump_tables();
        self.first_jump_src = Vec::new();
        r
    }

    fn link_jump_tables(&mut self) -> Result<(), Box<Finding>> {
        for func in 0..self.obj.symbols.len() {
            if self.obj.symbols[func].kind != SymKind::Func {
                continue;
            }
            // Only dynamic jumps get a table (and kinds no longer change here): without one, nothing to add.
            if !self.mark_func_jump_tables(func) {
                continue;
            }
            let mut t1: Option<NodeId> = None;
            let mut c = self.func_cursor(func);
            while let Some(id) = c.next(self) {
                if !self.jump_tables.contains_key(&id) {
                    continue;
                }
                if let Some(prev) = t1 {
                    let next = self.jump_table(id);
                    self.add_jump_table(prev, next)?;
                }
                t1 = Some(id);
            }
            if let Some(prev) = t1 {
                self.add_jump_table(prev, None)?;
            }
        }
        Ok(())
    }

    /// Returns whether the function has a dynamic jump.
    fn mark_func_jump_tables(&mut self, func: usize) -> bool {
        let mut any_dynamic = false;
        let mut last: Option<NodeId> = None;
        let mut c = self.func_cursor(func);
        while let Some(id) = c.next(self) {
            let last_off = last.map_or(u64::MAX, |l| self.nodes[l as usize].insn.offset());
            if last.is_none() {
                last = Some(id);
            }
            let n = &self.nodes[id as usize];
            if n.insn.kind == InsnKind::JumpUnconditional {
                if let Some(d) = n.jump_dest.node() {
                    let last_off = if last_off == u64::MAX {
                        n.insn.offset()
                    } else {
                        last_off
                    };
                    if n.insn.offset() > last_off
                        && self.nodes[d as usize].insn.offset() > n.insn.offset()
                        && self.first_jump_src[d as usize].is_none()
                    {
                        self.first_jump_src[d as usize] = Some(id).into();
                        last = Some(d);
                    }
                }
            }
            if self.nodes[id as usize].insn.kind != InsnKind::JumpDynamic {
                continue;
            }
            any_dynamic = true;
            if let Some(t) = self.find_jump_table(func, id) {
                self.jump_tables.insert(id, (t.0 as u32, t.1 as u32));
            }
        }
        any_dynamic
    }

    fn find_jump_table(&mut self, func: usize, orig: NodeId) -> Option<(usize, usize)> {
        let mut cur = Some(orig);
        let mut guard = 0;
        while let Some(id) = cur {
            guard += 1;
            if guard > self.nodes.len() {
                break;
            }
            let Some(f) = self.insn_func(id) else { break };
            if self.syms[f].pfunc != func {
                break;
            }
            let n = &self.nodes[id as usize];
            if id != orig && n.insn.kind == InsnKind::JumpDynamic {
                break;
            }
            if n.insn.kind == InsnKind::JumpUnconditional {
                if let Some(d) = n.jump_dest.node() {
                    let doff = self.nodes[d as usize].insn.offset();
                    if doff <= n.insn.offset() || doff > self.nodes[orig as usize].insn.offset() {
                        break;
                    }
                }
            }
            if let Some(t) = self.arch_find_switch_table(id) {
                let (tsec, ridx) = t;
                let r = &self.obj.relocs(tsec)[ridx];
                let target = self.obj.symbols[r.symbol]
                    .section
                    .and_then(|s| self.find_insn(s, r.addend as u64));
                if let Some(dest) = target {
                    if self
                        .insn_func(dest)
                        .is_some_and(|df| self.syms[df].pfunc == func)
                    {
                        return Some(t);
                    }
                }
            }
            cur = self.first_jump_src[id as usize]
                .node()
                .or_else(|| self.prev_insn_same_sym(id));
        }
        None
    }

    /// objtool's `C_JUMP_TABLE_SECTION`, where `__annotate_jump_table` puts C jump tables (the BPF interpreter's):
    /// `.rodata..c_jump_table` before 6.3, `.data.rel.ro.c_jump_table` since.
    fn c_jump_table_section(&self) -> &'static str {
        match self.era {
            Era::V6_1 => ".rodata..c_jump_table",
            Era::V6_12 => ".data.rel.ro.c_jump_table",
        }
    }

    fn arch_find_switch_table(&mut self, id: NodeId) -> Option<(usize, usize)> {
        let r = self.insn_reloc(id)?;
        let sym = &self.obj.symbols[r.symbol];
        let tsec = sym.section?;
        if sym.kind != SymKind::Section || !self.is_rodata(tsec) {
            return None;
        }
        let mut toff = r.addend;
        if r.r_type == reloc_types::PC32 {
            toff += 4;
        }
        let toff = u64::try_from(toff).ok()?;
        if self.obj.symbol_containing(tsec, toff, false).is_some()
            && self.obj.sections[tsec].name != self.c_jump_table_section()
        {
            return None;
        }
        let ridx = self.obj.reloc_index_at(tsec, toff)?;
        if r.r_type == reloc_types::PC32 {
            self.ignore_unreachables = true;
        }
        Some((tsec, ridx))
    }

    fn add_jump_table(
        &mut self,
        id: NodeId,
        next_table: Option<(usize, usize)>,
    ) -> Result<(), Box<Finding>> {
        let Some(func) = self.insn_func(id) else {
            return Ok(());
        };
        let pfunc = self.syms[func].pfunc;
        let (psec, poff, plen) = {
            let p = &self.obj.symbols[pfunc];
            (p.section, p.value, self.syms[pfunc].len)
        };
        let Some((tsec, start)) = self.jump_table(id) else {
            return Ok(());
        };
        let relocs = self.obj.relocs(tsec);
        let mut prev_offset = 0u64;
        let mut new_alts = Vec::new();
        for (k, r) in relocs.iter().enumerate().skip(start) {
            if k != start && Some((tsec, k)) == next_table {
                break;
            }
            if prev_offset != 0 && r.offset != prev_offset.wrapping_add(8) {
                break;
            }
            let rsec = self.obj.symbols[r.symbol].section;
            if rsec == psec && r.addend == poff as i64 {
                break;
            }
            if !(rsec == psec && r.addend == poff.wrapping_add(plen) as i64) {
                let Some(dest) = rsec.and_then(|s| self.find_insn(s, r.addend as u64)) else {
                    break;
                };
                if self
                    .insn_func(dest)
                    .is_none_or(|df| self.syms[df].pfunc != pfunc)
                {
                    break;
                }
                new_alts.push(dest);
            }
            prev_offset = r.offset;
        }
        if prev_offset == 0 {
            return Err(self.fatal_at(id, "can't find switch jump table"));
        }
        for dest in new_alts {
            let alt = Alt {
                node: dest,
                skip_orig: false,
                kind: AltKind::SwitchTable,
            };
            self.add_alt(id, alt);
        }
        Ok(())
    }

    fn read_unwind_hints(&mut self) -> Result<(), Box<Finding>> {
        let hints = special::read_unwind_hints(self.obj).map_err(|m| self.fatal(m))?;
        let zero = self.era.zero_hint_type();
        let mut cfi = CfiState::init(zero);
        for h in hints {
            let Some(id) = self.find_insn(h.at.0, h.at.1) else {
                return Err(self.fatal(format!("can't find insn for unwind_hints[{}]", h.index)));
            };
            self.nodes[id as usize].hint = true;
            let kind = match self.era {
                Era::V6_12 => match h.ty {
                    0 => HintKindRaw::Undefined,
                    1 => HintKindRaw::State(HintType::EndOfStack),
                    2 => HintKindRaw::State(HintType::Call),
                    3 => HintKindRaw::State(HintType::Regs),
                    4 => HintKindRaw::State(HintType::RegsPartial),
                    5 => HintKindRaw::Func,
                    6 => HintKindRaw::Save,
                    7 => HintKindRaw::Restore,
                    t => HintKindRaw::Unknown(t),
                },
                Era::V6_1 => match h.ty {
                    0 | 4 => HintKindRaw::State(HintType::Call),
                    1 => HintKindRaw::State(HintType::Regs),
                    2 => HintKindRaw::State(HintType::RegsPartial),
                    3 => HintKindRaw::Func,
                    5 => HintKindRaw::Save,
                    6 => HintKindRaw::Restore,
                    t => HintKindRaw::Unknown(t),
                },
            };
            match kind {
                HintKindRaw::Undefined => {
                    let mut s = CfiState::init(zero);
                    s.force_undefined = true;
                    let c = self.interner.intern(&s);
                    self.hint_cfi.insert(id, c);
                    continue;
                }
                HintKindRaw::Save => {
                    let n = &mut self.nodes[id as usize];
                    n.hint = false;
                    n.save = true;
                    continue;
                }
                HintKindRaw::Restore => {
                    self.nodes[id as usize].restore = true;
                    continue;
                }
                HintKindRaw::Func => {
                    let s = CfiState::func_entry(zero);
                    let c = self.interner.intern(&s);
                    self.hint_cfi.insert(id, c);
                    continue;
                }
                HintKindRaw::Unknown(_) | HintKindRaw::State(_) => {}
            }
            if let Some(&existing) = self.hint_cfi.get(&id) {
                cfi = self.interner.get(existing).clone();
            }
            cfi.cfa.base = match h.sp_reg {
                0 => UNDEFINED,
                5 => i32::from(reg::SP),
                4 => i32::from(reg::BP),
                9 => SP_INDIRECT,
                6 => i32::from(reg::R10),
                7 => i32::from(reg::R13),
                3 => i32::from(reg::DI),
                2 => i32::from(reg::DX),
                r => {
                    return Err(
                        self.fatal_at(id, format!("unsupported unwind_hint sp base reg {r}"))
                    )
                }
            };
            cfi.cfa.offset = i32::from(h.sp_offset);
            match kind {
                HintKindRaw::State(t) => cfi.ty = t,
                HintKindRaw::Unknown(t) => {
                    // objtool stores the number and fails later when generating ORC.
                    self.warnings.push(Finding::new(
                        FindingKind::HintError,
                        Some(self.node_location(id)),
                        format!("unknown unwind hint type {t}"),
                    ));
                }
                _ => {}
            }
            match self.era {
                Era::V6_12 => cfi.signal = h.byte8 != 0,
                Era::V6_1 => cfi.end = h.byte8 != 0,
            }
            let _ = CFA;
            let c = self.interner.intern(&cfi);
            self.hint_cfi.insert(id, c);
        }
        Ok(())
    }
}

enum HintKindRaw {
    Undefined,
    State(HintType),
    Func,
    Save,
    Restore,
    Unknown(u8),
}

#[cfg(test)]
mod tests {
    /// One node per instruction: its size is most of the analysis's memory (see docs/performance.md).
    #[test]
    fn a_node_stays_small() {
        let (node, insn) = (
            std::mem::size_of::<super::Node>(),
            std::mem::size_of::<crate::decode::Insn>(),
        );
        assert!(node <= 48 && insn <= 12, "node {node}, insn {insn}");
    }
}
