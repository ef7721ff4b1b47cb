//! CFI stage, part two: the walk. Computes the state on entry to every reachable instruction, fills and checks the
//! shared per-offset arrays of alternative sites, and raises findings, exactly as objtool's `validate_branch` and
//! its callers do (roots: every function, then every unvisited hint, then — only if nothing warned — the first
//! unreachable instruction).
//!
//! A path ends at its first warning, and the whole walk from that root with it, as in objtool. With
//! [`Options::all_conflicts`] a second walk that does not stop at alternative conflicts collects every conflicting
//! offset; it only adds detail to the conflict findings of the first walk and never changes verdicts or ORC.

use crate::alternatives::next_insn_to_validate;
use crate::cfi::{apply_op, CfiId, CfiState, FxBuild, Interner, OpContext, OpError};
use crate::decode::{InsnKind, OpDest, OpSrc, Ops};
use crate::findings::{AltConflict, Finding, FindingKind, Location};
use crate::flow::{NodeId, Program};
use crate::object::SymKind;
use crate::options::{Era, Options};
use std::collections::HashMap;

/// Result of the walk.
#[derive(Debug)]
pub struct WalkResult {
    /// State on entry to each node (by [`NodeId`]), where known.
    pub cfi: Vec<Option<CfiId>>,
    /// Per original group id (see [`crate::alternatives::AltGroup::slots`]): the shared slot array.
    pub slots: Slots<CfiId>,
    /// Which node filled each slot.
    pub slot_owner: Slots<NodeId>,
    /// Every state seen.
    pub interner: Interner,
    /// Findings, in objtool's order.
    pub findings: Vec<Finding>,
    /// objtool would stop before generating ORC (a negative return from validation).
    pub fatal: bool,
    /// Nodes visited.
    pub visited: Vec<bool>,
    /// Every alternative conflict observed, with the nodes involved: (group slots id, offset, recorded node, node).
    pub conflicts: Vec<ConflictSeen>,
}

/// One alternative conflict observed by a walk: the shared array (by original group id), the offset, the node that
/// filled the slot and its state, and the node that disagreed and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictSeen {
    /// Slot array id.
    pub slots: usize,
    /// Offset in the site.
    pub offset: usize,
    /// Node that filled the slot.
    pub owner: NodeId,
    /// Its state.
    pub owner_state: CfiState,
    /// Node that disagreed.
    pub node: NodeId,
    /// Its state.
    pub node_state: CfiState,
}

/// How deep branch recursion may go before the walk gives up (a path this deep is not real code).
const MAX_DEPTH: u32 = 200_000;

/// Stack the walk keeps free below it before it recurses; with less, it continues on a new segment of
/// [`STACK_SEGMENT`] bytes (one branch level takes well under a kilobyte).
const STACK_RED_ZONE: usize = 256 << 10;

/// Size of each stack segment the walk adds when it nests deeper than its thread's stack allows.
const STACK_SEGMENT: usize = 8 << 20;

/// The parts of objtool's `insn_state` beside the CFI, carried along a branch: the UACCESS state (`--uaccess`:
/// STAC/CLAC, saved by PUSHF/POPF inside alternatives) and the direction flag (STD/CLD).
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    uaccess: bool,
    uaccess_stack: u32,
    df: bool,
}

struct Walker<'a, 'o, 'd> {
    p: &'a Program<'o, 'd>,
    opts: Options,
    exhaustive: bool,
    /// Functions to walk (all when `None`); see [`walk_once`].
    only: Option<Vec<bool>>,
    cfi: Vec<Option<CfiId>>,
    visited: Vec<bool>,
    /// With `--uaccess`, objtool visits an instruction once per UACCESS state: bit 0 visited with UACCESS off,
    /// bit 1 with it on (empty without `--uaccess`, where every visit is with it off).
    visited_uaccess: Vec<u8>,
    slots: Slots<CfiId>,
    slot_owner: Slots<NodeId>,
    warned: Vec<bool>,
    interner: Interner,
    findings: Vec<Finding>,
    conflicts: Vec<ConflictSeen>,
    depth: u32,
    /// Memo of the stack operations: (state before, operations, context) → state after. Most instructions with
    /// stack operations repeat a few transitions (push/pop of callee-saved registers, frame set-up), so the walk
    /// applies and interns each transition once.
    transitions: HashMap<(CfiId, Ops, u8), CfiId, FxBuild>,
}

/// Runs the walk over a built program.
pub fn walk(p: &Program, opts: Options) -> WalkResult {
    let first = walk_once(p, opts, false, None);
    if !opts.all_conflicts || first.conflicts.is_empty() {
        return first;
    }
    // Only the functions that had a conflict can have more: the others' walks ran to completion and found none.
    // (A conflict outside any function, from a hint, needs the whole walk.)
    let mut only = vec![false; p.obj.symbols.len()];
    let mut whole = false;
    for c in &first.conflicts {
        for node in [c.node, c.owner] {
            match p.insn_func(node) {
                Some(f) => only[p.syms[f].pfunc] = true,
                None => whole = true,
            }
        }
    }
    let extra = walk_once(p, opts, true, (!whole).then_some(only));
    let mut r = first;
    for c in extra.conflicts {
        if !r
            .conflicts
            .iter()
            .any(|k| k.slots == c.slots && k.offset == c.offset && k.node == c.node)
        {
            r.conflicts.push(c);
        }
    }
    r
}

/// One slot array per original group (replacement groups share their original's; theirs is empty), indexed by
/// group id: `slots[g]` is group `g`'s array. Stored as one flat vector (a walk creates it once per state kind).
#[derive(Debug, Clone)]
pub struct Slots<T> {
    /// Per group id, where its array starts in `cells`; one more entry for the end.
    start: Vec<u32>,
    cells: Vec<Option<T>>,
}

impl<T: Copy> Slots<T> {
    /// Empty arrays for the program's groups.
    fn new(p: &Program) -> Self {
        let mut start = Vec::with_capacity(p.groups.len() + 1);
        let mut at = 0usize;
        for g in &p.groups {
            start.push(at as u32);
            if g.orig_group.is_none() {
                at += g.len;
            }
        }
        start.push(at as u32);
        Slots {
            start,
            cells: vec![None; at],
        }
    }
}

impl<T> Slots<T> {
    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    fn range(&self, g: usize) -> std::ops::Range<usize> {
        self.start[g] as usize..self.start[g + 1] as usize
    }
}

impl<T> std::ops::Index<usize> for Slots<T> {
    type Output = [Option<T>];
    fn index(&self, g: usize) -> &[Option<T>] {
        &self.cells[self.range(g)]
    }
}

impl<T> std::ops::IndexMut<usize> for Slots<T> {
    fn index_mut(&mut self, g: usize) -> &mut [Option<T>] {
        let r = self.range(g);
        &mut self.cells[r]
    }
}

/// `only`: walk just these functions (by symbol) and skip the hint and reachability passes — for the exhaustive
/// walk, which only collects conflicts.
fn walk_once(p: &Program, opts: Options, exhaustive: bool, only: Option<Vec<bool>>) -> WalkResult {
    let restricted = only.is_some();
    let mut w = Walker::new(p, opts, exhaustive, only);
    let mut warnings: i64 = 0;
    // objtool's `--retpoline` pass runs before the walk; its warnings count, and (6.12) mark their symbols warned.
    if p.objtool.retpoline && !restricted {
        warnings += w.validate_retpoline();
    }
    // The two-thread walk starts from no warned symbol.
    let parallel =
        !exhaustive && !restricted && warnings == 0 && p.code_bytes >= opts.parallel_min_code;
    let mut fatal = false;
    let roots = function_roots(p);
    let v = if parallel {
        w.validate_functions_in_parallel(&roots)
    } else {
        w.validate_functions(&roots)
    };
    if v < 0 {
        fatal = true;
    } else if restricted {
        // The exhaustive walk only collects conflicts.
    } else {
        warnings += v;
        let h = w.validate_unwind_hints();
        if h < 0 {
            fatal = true;
        } else {
            warnings += h;
            if warnings == 0 && !p.objtool.no_unreachable {
                w.validate_reachable();
            }
        }
    }
    if !fatal && !restricted && p.objtool.sls {
        w.validate_sls();
    }
    if !fatal && p.objtool.prefix > 0 {
        w.add_prefix_cfi(u64::from(p.objtool.prefix));
    }
    w.propagate_prefix_cfi();
    WalkResult {
        cfi: w.cfi,
        slots: w.slots,
        slot_owner: w.slot_owner,
        interner: w.interner,
        findings: w.findings,
        fatal,
        visited: w.visited,
        conflicts: w.conflicts,
    }
}

/// The symbols objtool's `validate_functions` considers, in its order: the `STT_FUNC` symbols of each executable
/// section, by section, then value.
fn function_roots(p: &Program) -> Vec<usize> {
    p.obj
        .sections
        .iter()
        .filter(|sec| sec.is_exec())
        .flat_map(|sec| p.obj.symbols_in(sec.index).iter().copied())
        .filter(|&si| p.obj.symbols[si].kind == SymKind::Func)
        .collect()
}

impl<'a, 'o, 'd> Walker<'a, 'o, 'd> {
    fn new(
        p: &'a Program<'o, 'd>,
        opts: Options,
        exhaustive: bool,
        only: Option<Vec<bool>>,
    ) -> Self {
        Walker {
            p,
            opts,
            exhaustive,
            only,
            cfi: {
                let mut cfi = vec![None; p.nodes.len()];
                for (n, c) in p.hint_states() {
                    cfi[n as usize] = Some(c);
                }
                cfi
            },
            visited: vec![false; p.nodes.len()],
            visited_uaccess: if p.objtool.uaccess {
                vec![0; p.nodes.len()]
            } else {
                Vec::new()
            },
            slots: Slots::new(p),
            slot_owner: Slots::new(p),
            warned: vec![false; p.obj.symbols.len()],
            interner: p.interner.clone(),
            findings: p.warnings.clone(),
            conflicts: Vec::new(),
            depth: 0,
            transitions: HashMap::default(),
        }
    }

    /// [`Walker::validate_functions`] with the roots split in two halves (by code size) walked on two threads,
    /// each with its own state, then merged — the first half's findings first, as in the sequential walk. The
    /// result is the sequential one whenever the halves do not meet: neither walked an instruction, filled a slot
    /// of an alternative site or warned a symbol the other did (in objtool's order the first half would have got
    /// there first). If they met, the walk is redone sequentially.
    fn validate_functions_in_parallel(&mut self, roots: &[usize]) -> i64 {
        let p = self.p;
        // Symbol sizes come from the file: add without overflowing.
        let total = roots
            .iter()
            .fold(0u64, |acc, &s| acc.saturating_add(p.syms[s].len));
        let mut acc = 0u64;
        let split = roots
            .iter()
            .position(|&s| {
                acc = acc.saturating_add(p.syms[s].len);
                acc.saturating_mul(2) >= total
            })
            .map_or(roots.len(), |i| i + 1);
        let (first, second) = roots.split_at(split);
        let mut other = Walker::new(p, self.opts, false, None);
        other.findings.clear();
        let (v1, joined) = std::thread::scope(|s| {
            let handle = std::thread::Builder::new()
                .name("altcfi-walk".into())
                .spawn_scoped(s, move || {
                    let v = other.validate_functions(second);
                    (v, other)
                });
            let v1 = self.validate_functions(first);
            (v1, handle.ok().map(|h| h.join()))
        });
        if let Some(Ok((v2, other))) = joined {
            if self.merge(other) {
                return v1 + v2;
            }
        }
        *self = Walker::new(p, self.opts, false, None);
        self.validate_functions(roots)
    }

    /// Takes over what `other` walked, if the two walks did not meet (see
    /// [`Walker::validate_functions_in_parallel`]); `false`, leaving `self` untouched, if they did.
    fn merge(&mut self, other: Walker) -> bool {
        let met = self
            .visited
            .iter()
            .zip(&other.visited)
            .any(|(a, b)| *a && *b)
            || self.warned.iter().zip(&other.warned).any(|(a, b)| *a && *b)
            || (0..self.slots.groups()).any(|g| {
                self.slots[g].iter().any(Option::is_some)
                    && other.slots[g].iter().any(Option::is_some)
            });
        if met {
            return false;
        }
        // States: both started from the program's interner; re-intern the other's newer states here.
        let map: Vec<CfiId> = (0..other.interner.len())
            .map(|i| {
                self.interner
                    .intern(other.interner.get(CfiId::new(i as u32)))
            })
            .collect();
        let remap = |c: Option<CfiId>| c.map(|c| map[c.index()]);
        for (i, v) in other.visited.iter().enumerate() {
            if *v {
                self.visited[i] = true;
                self.cfi[i] = remap(other.cfi[i]);
            }
        }
        for (a, b) in self.visited_uaccess.iter_mut().zip(&other.visited_uaccess) {
            *a |= *b;
        }
        for g in 0..other.slots.groups() {
            if other.slots[g].iter().any(Option::is_some) {
                for i in other.slots.range(g) {
                    self.slots.cells[i] = remap(other.slots.cells[i]);
                    self.slot_owner.cells[i] = other.slot_owner.cells[i];
                }
            }
        }
        for (a, b) in self.warned.iter_mut().zip(&other.warned) {
            *a |= *b;
        }
        self.findings.extend(other.findings);
        self.conflicts.extend(other.conflicts);
        true
    }

    fn era(&self) -> Era {
        self.p.era
    }

    /// objtool's `WARN_INSN`: in 6.12 one warning per symbol.
    fn warn_insn(&mut self, node: NodeId, kind: FindingKind, msg: String) -> Option<usize> {
        let sym = self.p.nodes[node as usize].sym.get();
        let print = self.era() == Era::V6_1 || sym.is_none_or(|s| !self.warned[s]);
        if let Some(s) = sym {
            self.warned[s] = true;
        }
        if !print || self.exhaustive {
            return None;
        }
        self.findings
            .push(Finding::new(kind, Some(self.p.node_location(node)), msg));
        Some(self.findings.len() - 1)
    }

    /// objtool 6.1 reports some warnings at the offset of the instruction but in the section where the current
    /// branch walk *started* (`WARN_FUNC(msg, sec, insn->offset)`): a walk that entered from a replacement prints
    /// `.altinstr_replacement+<offset in .text>`. 6.12 reports at the instruction.
    fn warn_at_walk_section(
        &mut self,
        sec: usize,
        node: NodeId,
        kind: FindingKind,
        msg: &str,
    ) -> Option<usize> {
        let i = self.warn_insn(node, kind, msg.into())?;
        if self.era() == Era::V6_1 && self.p.nodes[node as usize].sec() != sec {
            let off = self.p.nodes[node as usize].insn.offset();
            self.findings[i].location = Some(self.p.location(sec, off));
        }
        Some(i)
    }

    fn warn(&mut self, kind: FindingKind, msg: String) {
        if !self.exhaustive {
            self.findings.push(Finding::new(kind, None, msg));
        }
    }

    fn state(&self, id: CfiId) -> &CfiState {
        self.interner.get(id)
    }

    /// objtool's `validate_functions` over `roots` (see [`function_roots`]).
    fn validate_functions(&mut self, roots: &[usize]) -> i64 {
        let p = self.p;
        let mut warnings = 0i64;
        for &si in roots {
            let s = &p.obj.symbols[si];
            let Some(sec) = s.section else { continue };
            if p.syms[si].len == 0 {
                self.warn(
                    FindingKind::MissingSize,
                    format!("{}() is missing an ELF size annotation", s.name),
                );
                warnings += 1;
                continue;
            }
            if p.syms[si].pfunc != si || p.syms[si].alias != si {
                continue;
            }
            if self.only.as_ref().is_some_and(|only| !only[si]) {
                continue;
            }
            // objtool creates `__pfx_` symbols itself, after validation (see `propagate_prefix_cfi`).
            if s.name.starts_with("__pfx_") {
                continue;
            }
            let Some(insn) = p.find_insn(sec, s.value) else {
                continue;
            };
            if p.nodes[insn as usize].ignore || self.visited[insn as usize] {
                continue;
            }
            let state = CfiState::func_entry(self.era().zero_hint_type());
            let func = p.insn_func(insn);
            // objtool's `validate_symbol`: a UACCESS-safe function starts with UACCESS enabled.
            let flags = Flags {
                uaccess: self.uaccess_safe(si),
                ..Flags::default()
            };
            warnings += i64::from(self.validate_branch(func, insn, state, None, flags));
        }
        warnings
    }

    /// objtool's `validate_retpoline` (`--retpoline`, and `--rethunk` for returns): every indirect call or jump,
    /// and with `--rethunk` every return, that is not retpoline-safe, outside `.init.text` (unless `--module`).
    /// Returns the number of warnings.
    fn validate_retpoline(&mut self) -> i64 {
        let p = self.p;
        let mut warnings = 0;
        let (rethunk, retpoline) = match self.era() {
            Era::V6_12 => ("MITIGATION_RETHUNK", "MITIGATION_RETPOLINE"),
            Era::V6_1 => ("RETHUNK", "RETPOLINE"),
        };
        for id in 0..p.nodes.len() as NodeId {
            let n = &p.nodes[id as usize];
            if n.synthetic {
                continue;
            }
            let what = match n.insn.kind {
                InsnKind::JumpDynamic => "jump",
                InsnKind::CallDynamic => "call",
                InsnKind::Return => "return",
                _ => continue,
            };
            if p.is_retpoline_safe(id)
                || (!p.objtool.module && p.obj.sections[n.sec()].name == ".init.text")
            {
                continue;
            }
            let (kind, msg) = if what == "return" {
                if !p.objtool.rethunk {
                    continue;
                }
                (
                    FindingKind::NakedReturn,
                    format!("'naked' return found in {rethunk} build"),
                )
            } else {
                (
                    FindingKind::RetpolineIndirectBranch,
                    format!("indirect {what} found in {retpoline} build"),
                )
            };
            self.warn_insn(id, kind, msg);
            warnings += 1;
        }
        warnings
    }

    /// objtool's `validate_sls` (`--sls`): a return or indirect jump must be followed by `int3`, unless
    /// retpoline-safe.
    fn validate_sls(&mut self) {
        let p = self.p;
        for id in 0..p.nodes.len() as NodeId {
            let n = &p.nodes[id as usize];
            if n.synthetic || p.is_retpoline_safe(id) {
                continue;
            }
            let msg = match n.insn.kind {
                InsnKind::Return => "missing int3 after ret",
                InsnKind::JumpDynamic => "missing int3 after indirect jump",
                _ => continue,
            };
            let trapped = p
                .next_insn_same_sec(id)
                .is_some_and(|next| p.nodes[next as usize].insn.kind == InsnKind::Trap);
            if !trapped {
                self.warn_insn(id, FindingKind::MissingInt3, msg.into());
            }
        }
    }

    /// objtool's `add_prefix_symbols` (`--prefix=N`, after validation): a function preceded in its section by NOPs
    /// that start exactly `prefix` bytes before it gets a `__pfx_` symbol there, and those NOPs get the state of
    /// the function's first instruction (none for a function the walk never reached, e.g. `STACK_FRAME_NON_STANDARD`).
    fn add_prefix_cfi(&mut self, prefix: u64) {
        let p = self.p;
        for (sec, _) in p.obj.sections.iter().enumerate() {
            if !p.text[sec] {
                continue;
            }
            for &si in p.obj.symbols_in(sec) {
                let s = &p.obj.symbols[si];
                if s.kind != SymKind::Func {
                    continue;
                }
                let Some(insn) = p.find_insn(sec, s.value) else {
                    continue;
                };
                let mut prev = p.prev_insn_same_sec(insn);
                let mut start = None;
                while let Some(n) = prev {
                    let node = &p.nodes[n as usize];
                    if node.insn.kind != InsnKind::Nop {
                        break;
                    }
                    let offset = s.value.wrapping_sub(node.insn.offset());
                    if offset > prefix {
                        break;
                    }
                    if offset == prefix {
                        start = Some(n);
                        break;
                    }
                    prev = p.prev_insn_same_sec(n);
                }
                let (Some(start), Some(cfi)) = (start, self.cfi[insn as usize]) else {
                    continue;
                };
                for n in start..insn {
                    self.cfi[n as usize] = Some(cfi);
                }
            }
        }
    }

    /// In an object objtool already processed with `--prefix`, the `__pfx_foo` NOP padding has the state of `foo`'s
    /// entry: objtool adds the symbols after validation and copies the function's entry CFI to them (none for a
    /// `STACK_FRAME_NON_STANDARD` function). Reproducing that keeps re-analysis of a built object, and
    /// `orc --verify`, faithful to what objtool wrote.
    fn propagate_prefix_cfi(&mut self) {
        let p = self.p;
        for s in &p.obj.symbols {
            let Some(name) = s.name.strip_prefix("__pfx_") else {
                continue;
            };
            let Some(sec) = s.section else { continue };
            if s.kind != SymKind::Func {
                continue;
            }
            let func_at = s.value.wrapping_add(s.size);
            let is_func = p.obj.symbols_in(sec).iter().any(|&i| {
                let f = &p.obj.symbols[i];
                f.name == name && f.value == func_at
            });
            if !is_func {
                continue;
            }
            let Some(entry) = p.find_insn(sec, func_at) else {
                continue;
            };
            let cfi = self.cfi[entry as usize];
            for n in p.sym_insns(s.index) {
                if !self.visited[n as usize] {
                    self.cfi[n as usize] = cfi;
                }
            }
        }
    }

    fn validate_unwind_hints(&mut self) -> i64 {
        let p = self.p;
        let mut warnings = 0i64;
        let init = CfiState::init(self.era().zero_hint_type());
        for id in 0..p.nodes.len() as NodeId {
            let n = &p.nodes[id as usize];
            if n.synthetic || !n.hint || self.visited[id as usize] || n.ignore {
                continue;
            }
            warnings += i64::from(self.validate_branch(
                p.insn_func(id),
                id,
                init.clone(),
                None,
                Flags::default(),
            ));
        }
        warnings
    }

    fn ignore_unreachable(&self, id: NodeId) -> bool {
        let p = self.p;
        let n = &p.nodes[id as usize];
        if n.ignore || matches!(n.insn.kind, InsnKind::Nop | InsnKind::Trap) {
            return true;
        }
        let sname = &p.obj.sections[n.sec()].name;
        if sname == ".altinstr_replacement" || sname == ".altinstr_aux" {
            return true;
        }
        let Some(func) = p.insn_func(id) else {
            return false;
        };
        if p.syms[func].static_call_tramp {
            return true;
        }
        if let Some(prev) = p.prev_insn_same_sec(id) {
            if p.nodes[prev as usize].dead_end
                && (n.insn.kind == InsnKind::Bug
                    || (n.insn.kind == InsnKind::JumpUnconditional
                        && n.jump_dest
                            .node()
                            .is_some_and(|d| p.nodes[d as usize].insn.kind == InsnKind::Bug)))
            {
                return true;
            }
        }
        let fsym = &p.obj.symbols[func];
        let fend = fsym.value.wrapping_add(p.syms[func].len);
        let mut cur = id;
        for _ in 0..5 {
            let c = &p.nodes[cur as usize];
            if let Some(d) = c.call_dest.get() {
                let name = &p.obj.symbols[d].name;
                if matches!(c.insn.kind, InsnKind::Call)
                    && (name == "__asan_handle_no_return"
                        || name == "__ubsan_handle_builtin_unreachable")
                {
                    return true;
                }
            }
            if c.insn.kind == InsnKind::JumpUnconditional {
                match c.jump_dest.node() {
                    Some(d) if p.insn_func(d) == p.insn_func(cur) => {
                        cur = d;
                        continue;
                    }
                    _ => break,
                }
            }
            if c.insn.end() >= fend {
                break;
            }
            match p.next_insn_same_sec(cur) {
                Some(nx) => cur = nx,
                None => break,
            }
        }
        false
    }

    fn validate_reachable(&mut self) {
        let p = self.p;
        if p.ignore_unreachables {
            return;
        }
        for id in 0..p.nodes.len() as NodeId {
            if p.nodes[id as usize].synthetic
                || self.visited[id as usize]
                || self.ignore_unreachable(id)
            {
                continue;
            }
            if self.era() == Era::V6_1 {
                self.warn_insn(
                    id,
                    FindingKind::UnreachableInstruction,
                    "unreachable instruction".into(),
                );
                return;
            }
            if let Some(prev) = p.prev_insn_same_sec(id) {
                let pn = &p.nodes[prev as usize];
                if pn.dead_end {
                    if let Some(d) = pn.call_dest.get() {
                        let name = p.obj.symbols[d].name.clone();
                        if name == "exc_double_fault" {
                            if let Some(s) = pn.sym.get() {
                                self.warned[s] = true;
                            }
                        } else {
                            self.warn_insn(
                                id,
                                FindingKind::MissingNoreturn,
                                format!("{name}() is missing a __noreturn annotation"),
                            );
                            continue;
                        }
                    }
                }
            }
            self.warn_insn(
                id,
                FindingKind::UnreachableInstruction,
                "unreachable instruction".into(),
            );
        }
    }

    fn cfi_match(&mut self, id: NodeId, s2: &CfiState) -> bool {
        let Some(c1) = self.cfi[id as usize] else {
            self.warn(FindingKind::StackStateMismatch, "CFI missing".into());
            return false;
        };
        let s1 = self.state(c1).clone();
        if s1.cfa != s2.cfa {
            let msg = format!(
                "stack state mismatch: cfa1={}{:+} cfa2={}{:+}",
                s1.cfa.base, s1.cfa.offset, s2.cfa.base, s2.cfa.offset
            );
            let f = self.warn_insn(id, FindingKind::StackStateMismatch, msg);
            self.add_states(f, &s1, s2);
            return false;
        }
        if s1.regs != s2.regs {
            for i in 0..s1.regs.len() {
                if s1.regs[i] == s2.regs[i] {
                    continue;
                }
                let msg = format!(
                    "stack state mismatch: reg1[{i}]={}{:+} reg2[{i}]={}{:+}",
                    s1.regs[i].base, s1.regs[i].offset, s2.regs[i].base, s2.regs[i].offset
                );
                let f = self.warn_insn(id, FindingKind::StackStateMismatch, msg);
                self.add_states(f, &s1, s2);
                break;
            }
            return false;
        }
        if s1.ty != s2.ty {
            let era = self.era();
            let msg = format!(
                "stack state mismatch: type1={} type2={}",
                era.hint_type_number(s1.ty),
                era.hint_type_number(s2.ty)
            );
            let f = self.warn_insn(id, FindingKind::StackStateMismatch, msg);
            self.add_states(f, &s1, s2);
            return false;
        }
        if s1.drap != s2.drap
            || (s1.drap && (s1.drap_reg != s2.drap_reg || s1.drap_offset != s2.drap_offset))
        {
            let msg = format!(
                "stack state mismatch: drap1={}({},{}) drap2={}({},{})",
                i32::from(s1.drap),
                s1.drap_reg,
                s1.drap_offset,
                i32::from(s2.drap),
                s2.drap_reg,
                s2.drap_offset
            );
            let f = self.warn_insn(id, FindingKind::StackStateMismatch, msg);
            self.add_states(f, &s1, s2);
            return false;
        }
        true
    }

    fn add_states(&mut self, f: Option<usize>, first: &CfiState, second: &CfiState) {
        if let Some(i) = f {
            self.findings[i]
                .details
                .push(format!("state from the first path: {first}"));
            self.findings[i]
                .details
                .push(format!("state from this path:      {second}"));
        }
    }

    /// objtool's `propagate_alt_cfi`. Non-zero ends the path.
    fn propagate_alt_cfi(&mut self, id: NodeId) -> i32 {
        let p = self.p;
        let Some(g) = p.nodes[id as usize].alt_group.get() else {
            return 0;
        };
        let Some(c) = self.cfi[id as usize] else {
            self.warn(FindingKind::StackStateMismatch, "CFI missing".into());
            return -1;
        };
        let grp = &p.groups[g];
        let off = p.nodes[id as usize]
            .insn
            .offset()
            .wrapping_sub(p.nodes[grp.first as usize].insn.offset()) as usize;
        let slots = grp.slots;
        if off >= self.slots[slots].len() {
            return 0;
        }
        match self.slots[slots][off] {
            None => {
                self.slots[slots][off] = Some(c);
                self.slot_owner[slots][off] = Some(id);
                0
            }
            Some(have) if have == c => 0,
            Some(_) => {
                let owner = self.slot_owner[slots][off].unwrap_or(id);
                let owner_state = self.slots[slots][off]
                    .map(|c| self.state(c).clone())
                    .unwrap_or_else(|| self.state(c).clone());
                let node_state = self.state(c).clone();
                self.conflicts.push(ConflictSeen {
                    slots,
                    offset: off,
                    owner,
                    owner_state,
                    node: id,
                    node_state,
                });
                if self.exhaustive {
                    return 0;
                }
                let where_ = p.node_location(id);
                let og = grp.orig_group.unwrap_or(g);
                let orig_first = p.groups[og].first;
                let f = match self.era() {
                    Era::V6_12 => self.warn_insn(
                        orig_first,
                        FindingKind::AltStackConflict,
                        format!("stack layout conflict in alternatives: {}", where_.display),
                    ),
                    Era::V6_1 => self.warn_insn(
                        id,
                        FindingKind::AltStackConflict,
                        "stack layout conflict in alternatives".into(),
                    ),
                };
                if let Some(i) = f {
                    let owner_loc: Location = p.node_location(owner);
                    self.findings[i]
                        .related
                        .push(("state recorded by".into(), owner_loc));
                    self.findings[i]
                        .related
                        .push(("conflicting instruction".into(), where_));
                }
                -1
            }
        }
    }

    fn restore_state(
        &mut self,
        func: Option<usize>,
        id: NodeId,
        prev: Option<NodeId>,
    ) -> Result<(), i32> {
        let p = self.p;
        let lower = func
            .or(p.nodes[id as usize].sym.get())
            .map_or(0, |f| p.obj.symbols[f].value);
        let mut cur = p.prev_insn_same_sec(id);
        let mut save = None;
        while let Some(c) = cur {
            if p.nodes[c as usize].insn.offset() < lower {
                break;
            }
            if p.nodes[c as usize].save {
                save = Some(c);
                break;
            }
            cur = p.prev_insn_same_sec(c);
        }
        let Some(save) = save else {
            self.warn_insn(
                id,
                FindingKind::HintError,
                "no corresponding CFI save for CFI restore".into(),
            );
            return Err(1);
        };
        if !self.visited[save as usize] {
            if prev.is_none() {
                return Err(0);
            }
            self.warn_insn(
                id,
                FindingKind::HintError,
                "objtool isn't smart enough to handle this CFI save/restore combo".into(),
            );
            return Err(1);
        }
        self.cfi[id as usize] = self.cfi[save as usize];
        Ok(())
    }

    fn op_context(&self, id: NodeId, next: Option<NodeId>) -> OpContext {
        let p = self.p;
        OpContext {
            in_func: p.insn_func(id).is_some(),
            next_has_hint: next.is_some_and(|x| p.nodes[x as usize].hint),
            stackval: self.opts.frame_pointer,
        }
    }

    fn handle_insn_ops(&mut self, id: NodeId, next: Option<NodeId>, state: &mut CfiState) -> i32 {
        let cx = self.op_context(id, next);
        for op in self.p.ops(id).into_iter().flat_map(Ops::iter) {
            if let Err(e) = apply_op(state, &op, cx) {
                let kind = match e {
                    OpError::UndefinedStackState => FindingKind::UndefinedStackState,
                    OpError::UnsupportedStackRegisterModification => {
                        FindingKind::UnsupportedStackRegisterModification
                    }
                    OpError::UnsupportedStackPointerRealignment => {
                        FindingKind::UnsupportedStackPointerRealignment
                    }
                    OpError::UnknownStackRelatedInstruction
                    | OpError::UnknownStackRelatedMemoryOperation => {
                        FindingKind::UnknownStackOperation
                    }
                };
                let f = self.warn_insn(id, kind, e.message().into());
                if let Some(i) = f {
                    self.findings[i]
                        .details
                        .push(format!("state before the instruction: {state}"));
                }
                return 1;
            }
        }
        0
    }

    /// objtool's `validate_call`: no call with UACCESS enabled (unless to a UACCESS-safe function) or with DF set.
    fn validate_call(&mut self, id: NodeId, flags: Flags) -> i32 {
        let p = self.p;
        let dest = p.nodes[id as usize].call_dest.get();
        let msg = if flags.uaccess && !dest.is_some_and(|d| self.uaccess_safe(d)) {
            format!("call to {}() with UACCESS enabled", p.call_dest_name(id))
        } else if flags.df {
            format!("call to {}() with DF set", p.call_dest_name(id))
        } else {
            return 0;
        };
        let kind = if flags.uaccess {
            FindingKind::Uaccess
        } else {
            FindingKind::DirectionFlag
        };
        self.warn_insn(id, kind, msg);
        1
    }

    /// objtool's `validate_return` checks of the flags: UACCESS must be off at a return (on, in a UACCESS-safe
    /// function), DF clear.
    fn return_flags_problem(
        &self,
        func: Option<usize>,
        flags: Flags,
    ) -> Option<(FindingKind, &'static str)> {
        let safe = func.is_some_and(|f| self.uaccess_safe(f));
        if flags.uaccess && !safe {
            Some((FindingKind::Uaccess, "return with UACCESS enabled"))
        } else if !flags.uaccess && safe {
            Some((
                FindingKind::Uaccess,
                "return with UACCESS disabled from a UACCESS-safe function",
            ))
        } else if flags.df {
            Some((FindingKind::DirectionFlag, "return with DF set"))
        } else {
            None
        }
    }

    /// STAC, CLAC (with `--uaccess`), STD and CLD: objtool's checks and the new flags.
    fn flag_insn(
        &self,
        id: NodeId,
        func: Option<usize>,
        flags: &mut Flags,
    ) -> Option<(FindingKind, &'static str)> {
        let p = self.p;
        match p.nodes[id as usize].insn.kind {
            InsnKind::Stac if p.objtool.uaccess => {
                if flags.uaccess {
                    return Some((FindingKind::Uaccess, "recursive UACCESS enable"));
                }
                flags.uaccess = true;
            }
            InsnKind::Clac if p.objtool.uaccess => {
                if !flags.uaccess && func.is_some() {
                    return Some((FindingKind::Uaccess, "redundant UACCESS disable"));
                }
                if func.is_some_and(|f| self.uaccess_safe(f)) && flags.uaccess_stack == 0 {
                    return Some((FindingKind::Uaccess, "UACCESS-safe disables UACCESS"));
                }
                flags.uaccess = false;
            }
            InsnKind::Std => {
                if flags.df {
                    return Some((FindingKind::DirectionFlag, "recursive STD"));
                }
                flags.df = true;
            }
            InsnKind::Cld => {
                if !flags.df && func.is_some() {
                    return Some((FindingKind::DirectionFlag, "redundant CLD"));
                }
                flags.df = false;
            }
            _ => {}
        }
        None
    }

    /// PUSHF/POPF inside an alternative save and restore the UACCESS state (objtool's `handle_insn_ops` with
    /// `--uaccess`).
    fn uaccess_ops(&mut self, id: NodeId, flags: &mut Flags) -> i32 {
        for op in self.p.ops(id).into_iter().flat_map(Ops::iter) {
            if op.dest == OpDest::PushF {
                if flags.uaccess_stack == 0 {
                    flags.uaccess_stack = 1;
                } else if flags.uaccess_stack >> 31 != 0 {
                    self.warn_insn(id, FindingKind::Uaccess, "PUSHF stack exhausted".into());
                    return 1;
                }
                flags.uaccess_stack = (flags.uaccess_stack << 1) | u32::from(flags.uaccess);
            }
            if op.src == OpSrc::PopF && flags.uaccess_stack != 0 {
                flags.uaccess = flags.uaccess_stack & 1 != 0;
                flags.uaccess_stack >>= 1;
                if flags.uaccess_stack == 1 {
                    flags.uaccess_stack = 0;
                }
            }
        }
        0
    }

    /// objtool's `uaccess_safe` mark: with `--uaccess`, the functions of its built-in list, by name.
    fn uaccess_safe(&self, sym: usize) -> bool {
        self.p.objtool.uaccess && self.p.is_uaccess_safe(sym)
    }

    fn validate_sibling_call(&mut self, id: NodeId, state: &CfiState, flags: Flags) -> i32 {
        if self.p.insn_func(id).is_some() && state.has_modified_stack_frame() {
            let f = self.warn_insn(
                id,
                FindingKind::SiblingCallWithModifiedFrame,
                "sibling call from callable instruction with modified stack frame".into(),
            );
            if let Some(i) = f {
                self.findings[i]
                    .details
                    .push(format!("state at the jump: {state}"));
            }
            return 1;
        }
        self.validate_call(id, flags)
    }

    /// `known`: the interned id of `state` when the caller knows it (the interner never holds two equal
    /// states, so comparing ids is comparing states).
    fn validate_branch(
        &mut self,
        func: Option<usize>,
        start: NodeId,
        state: CfiState,
        known: Option<CfiId>,
        flags: Flags,
    ) -> i32 {
        self.depth += 1;
        let r = if self.depth > MAX_DEPTH {
            self.warn_insn(
                start,
                FindingKind::BadObject,
                "control flow nests too deeply to follow".into(),
            );
            1
        } else {
            // Real code nests branches a few thousand deep at most; the stack grows in segments as needed, on
            // whatever thread the walk runs.
            stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || {
                self.validate_branch_inner(func, start, state, known, flags)
            })
        };
        self.depth -= 1;
        r
    }

    fn validate_branch_inner(
        &mut self,
        func: Option<usize>,
        start: NodeId,
        mut state: CfiState,
        mut known: Option<CfiId>,
        mut flags: Flags,
    ) -> i32 {
        let p = self.p;
        let mut insn = start;
        let mut prev: Option<NodeId> = None;
        let sec = p.nodes[start as usize].sec();
        loop {
            let next = next_insn_to_validate(p, insn);
            let n = &p.nodes[insn as usize];

            if let (Some(f), Some(inf)) = (func, p.insn_func(insn)) {
                if f != p.syms[inf].pfunc {
                    let fname = &p.obj.symbols[f].name;
                    if fname.starts_with("__cfi_")
                        || fname.starts_with("__pfx_")
                        || p.ignore_unreachables
                    {
                        return 0;
                    }
                    let msg = format!(
                        "{fname}() falls through to next function {}()",
                        p.obj.symbols[inf].name
                    );
                    self.warn(FindingKind::FallsThrough, msg);
                    if !self.exhaustive {
                        if let Some(last) = self.findings.last_mut() {
                            last.related
                                .push(("falls into".into(), p.node_location(insn)));
                        }
                    }
                    self.warned[f] = true;
                    return 1;
                }
            }

            let visit_bit = 1u8 << u8::from(flags.uaccess);
            if self.visited[insn as usize] {
                let same = known.is_some() && known == self.cfi[insn as usize];
                if !n.hint && !same && !self.cfi_match(insn, &state) {
                    return 1;
                }
                // With `--uaccess` an instruction seen only in the other UACCESS state is walked again.
                if self
                    .visited_uaccess
                    .get(insn as usize)
                    .is_none_or(|v| v & visit_bit != 0)
                {
                    return 0;
                }
            }

            if n.hint {
                if n.restore {
                    if let Err(r) = self.restore_state(func, insn, prev) {
                        return r;
                    }
                }
                match self.cfi[insn as usize] {
                    Some(c) => {
                        state = self.state(c).clone();
                        known = Some(c);
                    }
                    None => {
                        self.warn(FindingKind::HintError, "CFI missing".into());
                        return 1;
                    }
                }
            } else {
                // With `known`, the previous instruction's state (if equal) has that id too, and interning would
                // return it: no comparison or hashing needed.
                let id = match known {
                    Some(k) => k,
                    None => {
                        let reuse = prev
                            .and_then(|pv| self.cfi[pv as usize])
                            .filter(|&c| *self.state(c) == state);
                        match reuse {
                            Some(c) => c,
                            None => self.interner.intern(&state),
                        }
                    }
                };
                self.cfi[insn as usize] = Some(id);
                known = Some(id);
            }
            self.visited[insn as usize] = true;
            if let Some(v) = self.visited_uaccess.get_mut(insn as usize) {
                *v |= visit_bit;
            }

            if self.propagate_alt_cfi(insn) != 0 {
                return 1;
            }

            if !n.ignore_alts && p.has_alts(insn) {
                let mut skip_orig = false;
                for alt in p.alts(insn) {
                    if alt.skip_orig {
                        skip_orig = true;
                    }
                    let ret = self.validate_branch(func, alt.node, state.clone(), known, flags);
                    if ret != 0 {
                        return ret;
                    }
                }
                if skip_orig {
                    return 0;
                }
            }

            let ops = self.p.ops(insn);
            if let (Some(&ops), Some(before)) = (ops, known) {
                let key = (before, ops, self.op_context(insn, next).bits());
                if let Some(&after) = self.transitions.get(&key) {
                    state.clone_from(self.state(after));
                    known = Some(after);
                } else {
                    let ret = self.handle_insn_ops(insn, next, &mut state);
                    if ret != 0 {
                        return ret;
                    }
                    let after = self.interner.intern(&state);
                    self.transitions.insert(key, after);
                    known = Some(after);
                }
            } else if ops.is_some() {
                known = None;
                let ret = self.handle_insn_ops(insn, next, &mut state);
                if ret != 0 {
                    return ret;
                }
            }
            if p.objtool.uaccess && n.alt_group.is_some() && ops.is_some() {
                let ret = self.uaccess_ops(insn, &mut flags);
                if ret != 0 {
                    return ret;
                }
            }

            match n.insn.kind {
                InsnKind::Return => {
                    if let Some((kind, msg)) = self.return_flags_problem(func, flags) {
                        self.warn_insn(insn, kind, msg.into());
                        return 1;
                    }
                    if func.is_some() && state.has_modified_stack_frame() {
                        let f = self.warn_insn(
                            insn,
                            FindingKind::ReturnWithModifiedFrame,
                            "return with modified stack frame".into(),
                        );
                        if let Some(i) = f {
                            self.findings[i]
                                .details
                                .push(format!("state at the return: {state}"));
                        }
                        return 1;
                    }
                    if state.bp_scratch {
                        self.warn_insn(
                            insn,
                            FindingKind::BpScratch,
                            "BP used as a scratch register".into(),
                        );
                        return 1;
                    }
                    return 0;
                }
                InsnKind::Call | InsnKind::CallDynamic => {
                    let r = self.validate_call(insn, flags);
                    if r != 0 {
                        return r;
                    }
                    let special = n.insn.kind == InsnKind::Call
                        && n.call_dest
                            .get()
                            .is_some_and(|d| p.syms[d].fentry || p.syms[d].embedded_insn);
                    if self.opts.frame_pointer
                        && func.is_some()
                        && !special
                        && !state.has_valid_stack_frame()
                    {
                        let f = self.warn_at_walk_section(
                            sec,
                            insn,
                            FindingKind::CallWithoutFrame,
                            "call without frame pointer save/setup",
                        );
                        if let Some(i) = f {
                            self.findings[i]
                                .details
                                .push(format!("state at the call: {state}"));
                        }
                        return 1;
                    }
                }
                InsnKind::JumpConditional | InsnKind::JumpUnconditional => {
                    if p.is_sibling_call(insn) {
                        let r = self.validate_sibling_call(insn, &state, flags);
                        if r != 0 {
                            return r;
                        }
                    } else if let Some(d) = n.jump_dest.node() {
                        let r = self.validate_branch(func, d, state.clone(), known, flags);
                        if r != 0 {
                            return r;
                        }
                    }
                    if n.insn.kind == InsnKind::JumpUnconditional {
                        return 0;
                    }
                }
                InsnKind::JumpDynamic | InsnKind::JumpDynamicConditional => {
                    if p.is_sibling_call(insn) {
                        let r = self.validate_sibling_call(insn, &state, flags);
                        if r != 0 {
                            return r;
                        }
                    }
                    if n.insn.kind == InsnKind::JumpDynamic {
                        return 0;
                    }
                }
                InsnKind::Stac | InsnKind::Clac | InsnKind::Std | InsnKind::Cld => {
                    if let Some((kind, msg)) = self.flag_insn(insn, func, &mut flags) {
                        self.warn_at_walk_section(sec, insn, kind, msg);
                        return 1;
                    }
                }
                InsnKind::ContextSwitch => {
                    if func.is_some() && next.is_none_or(|x| !p.nodes[x as usize].hint) {
                        self.warn_at_walk_section(
                            sec,
                            insn,
                            FindingKind::UnsupportedInstruction,
                            "unsupported instruction in callable function",
                        );
                        return 1;
                    }
                    return 0;
                }
                _ => {}
            }

            if n.dead_end {
                return 0;
            }
            match next {
                None => {
                    if state.cfa.base == crate::cfi::UNDEFINED || p.ignore_unreachables {
                        return 0;
                    }
                    let msg = format!("{}: unexpected end of section", p.obj.sections[sec].name);
                    self.warn(FindingKind::UnexpectedEndOfSection, msg);
                    return 1;
                }
                Some(nx) => {
                    prev = Some(insn);
                    insn = nx;
                }
            }
        }
    }
}

/// The conflicts of one site as [`AltConflict`] records, by offset; `describe` renders one side.
pub fn conflict_records(
    r: &WalkResult,
    slots_id: usize,
    mut describe: impl FnMut(NodeId, &CfiState) -> crate::findings::VariantAt,
) -> Vec<AltConflict> {
    let mut out: Vec<AltConflict> = Vec::new();
    for c in r.conflicts.iter().filter(|c| c.slots == slots_id) {
        let rec = describe(c.owner, &c.owner_state);
        let con = describe(c.node, &c.node_state);
        let c = AltConflict {
            site_offset: c.offset as u64,
            recorded: rec,
            conflicting: con,
            differs: c.owner_state.differences(&c.node_state),
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out.sort_by_key(|c| c.site_offset);
    out
}
