//! Subcommands: `lsp`, `check`, `orc`. Exit status of `check`: 0 clean, 1 findings, 2 an input could not be analysed
//! (altcfi's own notes, `unchecked-alt-unwind`, are printed but do not count as findings).

use crate::kbuild::Kbuild;
use altcfi_analysis::features::FeatureNames;
use altcfi_analysis::orc::{self, DumpFormat};
use altcfi_analysis::report;
use altcfi_analysis::sources::{FindingSources, Sources};
use altcfi_analysis::{analyze, analyze_findings, Analysis, Era, EraSource, ObjtoolArgs, Options};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "altcfi",
    version,
    about = "Checks x86-64 kernel objects' stack metadata (CFI/ORC) across ALTERNATIVE sites, like objtool, and explains it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kernel {
    /// Detect from the object (12-byte .altinstructions → 6.1, else 6.12).
    Auto,
    /// 5.13–6.2 formats, as objtool 6.1.
    #[value(name = "6.1")]
    V6_1,
    /// 6.4+ formats, as objtool 6.12.
    #[value(name = "6.12")]
    V6_12,
}

impl Kernel {
    fn era(self) -> Option<Era> {
        match self {
            Kernel::Auto => None,
            Kernel::V6_1 => Some(Era::V6_1),
            Kernel::V6_12 => Some(Era::V6_12),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Sarif,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExplainFormat {
    /// A table per instruction and each alternative site side by side.
    Text,
    /// The explanation as JSON (see docs/json-schema.md).
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DumpFmt {
    /// The format of the object's era.
    Auto,
    /// 6.4+: `.text+1a:type:call sp:bp+16 bp:prevsp-16 signal:0`.
    Modern,
    /// ≤6.2: `.text+1a: sp:bp+16 bp:prevsp-16 type:call end:0`.
    Legacy,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Kernel generation whose formats and objtool behaviour to follow.
    #[arg(long, value_enum, default_value = "auto")]
    kernel: Kernel,
    /// A `cpufeatures.h` for feature names (default: built-in 6.12 table).
    #[arg(long, value_name = "PATH")]
    cpufeatures: Option<PathBuf>,
    /// objtool's own options, as kbuild passes them (paste kbuild's command line). Given any, they replace the
    /// arguments altcfi finds in the object's tree.
    #[command(flatten)]
    objtool: ObjtoolFlags,
    /// Do not look at the object's kernel tree (`.NAME.o.cmd`, `include/config/auto.conf`, `kernel.release`): only
    /// the options given here and the object's own signals decide the rules.
    #[arg(long)]
    no_kbuild: bool,
    /// Say on stderr, per object, which tree, kernel generation and objtool arguments were used and where they came
    /// from.
    #[arg(short, long)]
    verbose: bool,
    /// Check objects that kbuild never gives to objtool (the vdso, `OBJECT_FILES_NON_STANDARD`) instead of noting
    /// that they are not validated.
    #[arg(long)]
    force: bool,
    /// Threads to use (default: one per core). Several objects are analysed side by side; a single large one
    /// is split over two threads. `-j 1` keeps everything on one thread, for builds that already run one
    /// altcfi per core.
    #[arg(short = 'j', long, value_name = "N")]
    jobs: Option<std::num::NonZeroUsize>,
}

/// objtool's options that change its results, in objtool's spelling.
#[derive(clap::Args, Clone, Default)]
struct ObjtoolFlags {
    /// objtool --prefix=N: N bytes of NOP padding before a function become its `__pfx_` symbol, with its CFI.
    #[arg(
        long,
        value_name = "N",
        help_heading = "objtool options (as kbuild passes them)"
    )]
    prefix: Option<u8>,
    /// objtool --hacks[=jump_label|noinstr|skylake] (repeatable; without a value: all).
    #[arg(long, value_name = "HACK", num_args = 0..=1, require_equals = true, default_missing_value = "all",
          action = clap::ArgAction::Append, help_heading = "objtool options (as kbuild passes them)")]
    hacks: Vec<String>,
    /// objtool --uaccess: SMAP alternatives are followed through the replacement only.
    #[arg(long, help_heading = "objtool options (as kbuild passes them)")]
    uaccess: bool,
    /// objtool --stackval: the frame-pointer rules (same as --frame-pointer).
    #[arg(long, help_heading = "objtool options (as kbuild passes them)")]
    stackval: bool,
    /// objtool --orc, --retpoline, --rethunk, --static-call, --ibt, --sls, --noinstr, --unret, --link, --module,
    /// --mcount, --mnop, --cfi, --no-unreachable: accepted in objtool's spelling (see docs/objtool-differences.md
    /// for what each changes here).
    #[arg(long, help_heading = "objtool options (as kbuild passes them)")]
    orc: bool,
    #[arg(long, hide = true)]
    retpoline: bool,
    #[arg(long, hide = true)]
    rethunk: bool,
    #[arg(long, hide = true)]
    static_call: bool,
    #[arg(long, hide = true)]
    ibt: bool,
    #[arg(long, hide = true)]
    sls: bool,
    #[arg(long, hide = true)]
    noinstr: bool,
    #[arg(long, hide = true)]
    unret: bool,
    #[arg(long, hide = true)]
    link: bool,
    #[arg(long, hide = true)]
    module: bool,
    #[arg(long, hide = true)]
    mcount: bool,
    #[arg(long, hide = true)]
    mnop: bool,
    #[arg(long, hide = true)]
    cfi: bool,
    #[arg(long, hide = true)]
    no_unreachable: bool,
}

impl ObjtoolFlags {
    /// The options given, in objtool's spelling; `None` when none was.
    fn args(&self) -> anyhow::Result<Option<ObjtoolArgs>> {
        let mut words: Vec<String> = Vec::new();
        if let Some(p) = self.prefix {
            words.push(format!("--prefix={p}"));
        }
        for h in &self.hacks {
            if h == "all" {
                words.push("--hacks".into());
            } else {
                words.extend(h.split(',').map(|h| format!("--hacks={h}")));
            }
        }
        let flags = [
            (self.uaccess, "--uaccess"),
            (self.stackval, "--stackval"),
            (self.orc, "--orc"),
            (self.retpoline, "--retpoline"),
            (self.rethunk, "--rethunk"),
            (self.static_call, "--static-call"),
            (self.ibt, "--ibt"),
            (self.sls, "--sls"),
            (self.noinstr, "--noinstr"),
            (self.unret, "--unret"),
            (self.link, "--link"),
            (self.module, "--module"),
            (self.mcount, "--mcount"),
            (self.mnop, "--mnop"),
            (self.cfi, "--cfi"),
            (self.no_unreachable, "--no-unreachable"),
        ];
        words.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_string()));
        if words.is_empty() {
            return Ok(None);
        }
        Ok(Some(ObjtoolArgs::parse(words.iter().map(String::as_str))?))
    }
}

/// The rules for one object: options, and whether kbuild validates it.
struct Rules {
    opts: Options,
    /// kbuild never gives the object to objtool: why (the object is noted, not checked, unless `--force`).
    not_validated: Option<String>,
    /// How the rules were chosen, in words (`--verbose`).
    how: String,
}

impl Common {
    /// The rules for the object at `path`: options given on the command line first, then what its tree says.
    fn rules(&self, path: &Path, base: Options, kb: &Kbuild) -> anyhow::Result<Rules> {
        let given = self.objtool.args()?;
        let ctx = (!self.no_kbuild).then(|| kb.object(path));
        let mut opts = base;
        let mut not_validated = None;
        let args_from = match (given, &ctx) {
            (Some(a), _) => {
                opts.objtool = a;
                "the command line"
            }
            (None, Some(ctx)) => {
                if let Some(a) = ctx.objtool_args() {
                    opts.objtool = a;
                }
                if !self.force {
                    not_validated = ctx.not_validated().map(str::to_string);
                }
                ctx.args_source()
            }
            (None, None) => "none: --no-kbuild",
        };
        opts.frame_pointer |= opts.objtool.stackval;
        let tree_era = ctx
            .as_ref()
            .and_then(|c| c.tree.as_ref())
            .and_then(|t| t.era());
        let era_from = match (opts.era, tree_era) {
            (Some(e), _) => format!("{} (--kernel)", e.name()),
            (None, Some((e, from))) => {
                opts.era = Some(e);
                format!("{} (the tree: {from})", e.name())
            }
            (None, None) => "from the object".to_string(),
        };
        let args = opts.objtool.to_args();
        let args = if args.is_empty() {
            "none".to_string()
        } else {
            args.join(" ")
        };
        let tree = ctx
            .as_ref()
            .and_then(|c| c.tree.as_ref())
            .map_or("none".to_string(), |t| t.build.display().to_string());
        let how =
            format!("tree: {tree}; rules: {era_from}; objtool args: {args} (from {args_from})");
        Ok(Rules {
            opts,
            not_validated,
            how,
        })
    }

    /// Threads to use: `--jobs`, else one per core (asked once: the standard library reads the cgroup quota).
    fn threads(&self) -> usize {
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        self.jobs.map_or_else(
            || *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            |j| j.get(),
        )
    }

    /// Worker threads for `items` objects.
    fn workers(&self, items: usize) -> usize {
        if items <= 1 {
            return 1;
        }
        self.threads().min(items)
    }

    /// [`Options::parallel_min_code`] for `items` objects: split an object over two threads only when there
    /// are spare threads (fewer objects than workers). For one object, the CPUs this process may run on decide
    /// (one system call; the cgroup quota behind [`Common::threads`] takes a dozen file reads, which a build that
    /// runs `altcfi check` once per object would pay for every object).
    fn parallel_min_code(&self, items: usize) -> u64 {
        let threads = match (items, self.jobs) {
            (1, None) => affinity_cpus(),
            _ => self.threads(),
        };
        if threads >= 2 && items < threads {
            Options::default().parallel_min_code
        } else {
            u64::MAX
        }
    }
}

/// How many CPUs this process may run on (`sched_getaffinity`); 1 if that cannot be known.
fn affinity_cpus() -> usize {
    // SAFETY: `set` is a plain bit array the kernel fills in; its size is passed along.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            usize::try_from(libc::CPU_COUNT(&set)).map_or(1, |n| n.max(1))
        } else {
            1
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the language server on stdin/stdout (diagnostics, hover, inlay hints, code lens; see docs/lsp.md).
    Lsp(Deferred<LspArgs>),
    /// Check objects: every stack-validation finding objtool would report, with explanations.
    Check(Deferred<CheckArgs>),
    /// Explain what the unwinder sees for one source line (SRC:LINE, needs DWARF) or one location (func+0xOFF,
    /// .text+0xOFF): every instruction with its CFI and ORC row, and alternative sites side by side.
    Explain(Deferred<ExplainArgs>),
    /// Find checked fixes for the stack layout conflicts in alternatives of a source file: NOP paddings that
    /// change no variant's behaviour, each compiled with the file's compile command and analysed; printed as unified
    /// diffs only if the site becomes clean, every variant unwinds right and nothing else changes.
    Fix(Deferred<FixArgs>),
    /// Print the ORC table altcfi computes, in objtool's --dump=orc format.
    Orc(Deferred<OrcArgs>),
}

/// The arguments of `altcfi lsp`.
#[derive(clap::Args)]
struct LspArgs {
    /// Accepted for clients that always pass it (vscode-languageclient, some Neovim configs); stdio is the only
    /// transport.
    #[arg(long)]
    stdio: bool,
}

/// The arguments of `altcfi check`.
#[derive(clap::Args)]
struct CheckArgs {
    /// Add the frame-pointer rules (objtool --stackval).
    #[arg(long)]
    frame_pointer: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Do not read DWARF: report machine locations only, without source lines.
    #[arg(long)]
    no_source: bool,
    /// Also compare the emitted .eh_frame/.debug_frame (the .cfi_* directives) with the computed CFI.
    #[arg(long)]
    eh_frame: bool,
    /// Also compare the .orc_unwind already in the object (objtool ran on it) with the computed ORC.
    #[arg(long)]
    verify_orc: bool,
    #[command(flatten)]
    output: ReportArgs,
    #[command(flatten)]
    common: Common,
    /// Object files, or directories to walk for them (a kernel build directory, `arch/x86/`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// The arguments of `altcfi explain`.
#[derive(clap::Args)]
struct ExplainArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: ExplainFormat,
    #[command(flatten)]
    common: Common,
    /// Object file.
    file: PathBuf,
    /// `path/to/file.S:LINE`, `func+0xOFF` or `.section+0xOFF`.
    what: String,
}

/// The arguments of `altcfi fix`.
#[derive(clap::Args)]
struct FixArgs {
    /// The compilation database with the file's compile command.
    #[arg(long, value_name = "PATH")]
    compile_commands: PathBuf,
    /// Write the first checked fix of each site into the file.
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    common: Common,
    /// The source file (`.S` or `.c`).
    file: PathBuf,
}

/// The arguments of `altcfi orc`.
#[derive(clap::Args)]
struct OrcArgs {
    /// Line format.
    #[arg(long, value_enum, default_value = "auto")]
    dump_format: DumpFmt,
    /// Compare with the .orc_unwind already in the object and list every difference.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    common: Common,
    /// Object file.
    file: PathBuf,
}

/// A subcommand's arguments, built only when that subcommand is the one given ([`clap::Command::defer`]): the
/// others' are never built. `check`, `orc` and `explain` each carry objtool's two dozen options, and a build that
/// runs `altcfi check` once per object would build all of them for every object.
struct Deferred<T>(T);

impl<T: clap::FromArgMatches> clap::FromArgMatches for Deferred<T> {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(m).map(Deferred)
    }

    fn from_arg_matches_mut(m: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(m).map(Deferred)
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }

    fn update_from_arg_matches_mut(&mut self, m: &mut clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(m)
    }
}

impl<T: clap::Args> clap::Args for Deferred<T> {
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }

    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.defer(|c| keeping_about(c, T::augment_args))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(|c| keeping_about(c, T::augment_args_for_update))
    }
}

/// `augment(cmd)` with `cmd`'s help text kept: the subcommand's own (its doc comment in [`Command`]) was set before
/// the deferred arguments are added, and a flattened group's doc comment would replace it.
fn keeping_about(cmd: clap::Command, augment: fn(clap::Command) -> clap::Command) -> clap::Command {
    let about = cmd.get_about().cloned();
    let long_about = cmd.get_long_about().cloned();
    let mut cmd = augment(cmd);
    if let Some(a) = about {
        cmd = cmd.about(a);
    }
    if let Some(a) = long_about {
        cmd = cmd.long_about(a);
    }
    cmd
}

/// Runs the command line; returns the exit status.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lsp(Deferred(LspArgs { stdio: _ })) => crate::lsp::run().map(|()| 0),
        Command::Check(Deferred(CheckArgs {
            frame_pointer,
            format,
            no_source,
            eh_frame,
            verify_orc,
            output,
            common,
            files,
        })) => check(
            &files,
            frame_pointer,
            format,
            no_source,
            UnwindChecks {
                eh_frame,
                verify_orc,
            },
            &output,
            &common,
        ),
        Command::Explain(Deferred(ExplainArgs {
            format,
            common,
            file,
            what,
        })) => explain(&file, &what, format, &common),
        Command::Orc(Deferred(OrcArgs {
            dump_format,
            verify,
            common,
            file,
        })) => orc_cmd(&file, dump_format, verify, &common),
        Command::Fix(Deferred(FixArgs {
            compile_commands,
            apply,
            common,
            file,
        })) => fix_cmd(&file, &compile_commands, apply, &common),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("altcfi: error: {e:#}");
            2
        }
    }
}

/// `altcfi fix`: exit status 0 when every conflicting site has a checked fix (or there is none), 1 when some has
/// none.
fn fix_cmd(file: &Path, db: &Path, apply: bool, common: &Common) -> anyhow::Result<i32> {
    use crate::live::{CompileCommand, Policy};
    let names = features(common)?;
    let bytes = std::fs::read(db).with_context(|| format!("reading {}", db.display()))?;
    let entries: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a compilation database", db.display()))?;
    let wanted = crate::paths::canonical(file);
    let command = entries
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(CompileCommand::from_json)
        .find(|c| crate::paths::same_file(&c.file, &wanted))
        .with_context(|| format!("{} has no entry for {}", db.display(), file.display()))?;
    let argv = command.argv()?;
    let object = argv
        .iter()
        .position(|a| a == "-o")
        .and_then(|i| argv.get(i + 1))
        .map(|o| command.directory.join(o))
        .unwrap_or_else(|| wanted.with_extension("o"));
    let base = Options {
        era: common.kernel.era(),
        all_conflicts: true,
        ..Options::default()
    };
    let opts = common.rules(&object, base, &Kbuild::default())?.opts;
    let policy = Policy {
        root: db.parent().map(crate::paths::canonical),
        ..Policy::default()
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let compiled = crate::live::compile(&command, &text, &policy, &|| false)?;
    let a = analyze(&compiled.object, opts, &names).context("analysing the compiled file")?;
    let sources = Sources::new(&a, &compiled.object).context("reading its DWARF")?;
    let mut lines: Vec<u32> = a
        .findings
        .iter()
        .filter(|f| f.kind == altcfi_analysis::findings::FindingKind::AltStackConflict)
        .filter_map(|f| sources.for_finding(f).primary)
        .filter(|p| crate::paths::same_file(&p.path, &wanted) && p.line > 0)
        .map(|p| p.line - 1)
        .collect();
    lines.sort_unstable();
    lines.dedup();
    let with = crate::fix::CheckWith {
        command: &command,
        policy: &policy,
        options: opts,
        features: &names,
    };
    let shown = file.display().to_string();
    let mut applied = text.clone();
    let mut unfixed = 0;
    for &line in &lines {
        let fixes = crate::fix::checked_fixes(&text, line, &with, 3, &|| false)?;
        if fixes.is_empty() {
            unfixed += 1;
            println!(
                "{shown}:{}: no checked fix for this stack layout conflict",
                line + 1
            );
            continue;
        }
        for f in &fixes {
            println!("# {shown}:{}: {}", line + 1, f.title);
            print!(
                "{}",
                crate::fix::unified_diff(&shown, &text, line, &f.candidate.new_line)
            );
        }
        applied = crate::fix::replace_line(&applied, line, &fixes[0].candidate.new_line);
    }
    if lines.is_empty() {
        println!("{shown}: no stack layout conflict in alternatives");
    }
    if apply && applied != text {
        std::fs::write(file, &applied).with_context(|| format!("writing {}", file.display()))?;
        println!("applied to {shown}");
    }
    Ok(i32::from(unfixed > 0))
}

fn features(common: &Common) -> anyhow::Result<FeatureNames> {
    let Some(path) = &common.cpufeatures else {
        return Ok(FeatureNames::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    FeatureNames::from_header(&text)
        .with_context(|| format!("{}: no X86_FEATURE definitions found", path.display()))
}

fn load(path: &Path, opts: Options, names: &FeatureNames) -> anyhow::Result<(Vec<u8>, Analysis)> {
    let data = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let a = analyze(&data, opts, names).with_context(|| path.display().to_string())?;
    Ok((data, a))
}

/// [`load`] for `check`: the per-instruction table (disassembly, locations; most of the cost of a clean object) is
/// built only when the unwind-data comparisons need it. Source positions of findings do not need it
/// ([`Sources::for_finding`] reads the DWARF line table, the sites and the `.altinstructions` entries).
fn load_for_check(
    path: &Path,
    opts: Options,
    names: &FeatureNames,
    unwind: UnwindChecks,
) -> anyhow::Result<(Vec<u8>, Analysis)> {
    if unwind.eh_frame || unwind.verify_orc {
        return load(path, opts, names);
    }
    // Without the DWARF first: most objects have no finding, and only a finding's source line needs it.
    let mut file = crate::objfile::ObjectFile::read(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let a =
        analyze_findings(&file.data, opts, names).with_context(|| path.display().to_string())?;
    if !a.findings.is_empty() {
        file.complete()
            .with_context(|| format!("{}: cannot read its debug information", path.display()))?;
    }
    Ok((file.data, a))
}

/// Source positions of every finding; DWARF is read only when there are findings and it is wanted.
fn finding_sources(a: &Analysis, data: &[u8], no_source: bool) -> Vec<FindingSources> {
    if no_source || a.findings.is_empty() {
        return Vec::new();
    }
    match Sources::new(a, data) {
        Ok(s) if s.has_debug_info() => a.findings.iter().map(|f| s.for_finding(f)).collect(),
        _ => Vec::new(),
    }
}

/// What `check` produced for one file, ready to print in its format.
enum Outcome {
    /// Analysed: how many findings and notes, the report piece, and whether nothing told its generation.
    Done {
        findings: usize,
        notes: usize,
        piece: Piece,
        default_rules: bool,
    },
    /// kbuild never validates the object: not checked, and why.
    NotValidated { why: String },
    /// Could not be analysed: the message (and its JSON entry).
    Failed {
        message: String,
        json: Option<serde_json::Value>,
    },
}

/// One file's share of the report.
enum Piece {
    Text(String),
    Json(serde_json::Value),
    Sarif(report::SarifObject),
}

/// Checks one file (analysis, opt-in unwind comparisons, source positions) into its report piece.
fn check_one(
    path: &Path,
    opts: Options,
    names: &FeatureNames,
    format: Format,
    no_source: bool,
    unwind: UnwindChecks,
    docs: Option<&str>,
) -> Outcome {
    let shown = path.display().to_string();
    match load_for_check(path, opts, names, unwind) {
        Ok((data, mut a)) => {
            let default_rules = a.era_source == EraSource::Default;
            let extra = unwind_findings(&data, &a, unwind, &shown);
            a.findings.extend(extra);
            let notes = a.findings.iter().filter(|f| f.kind.is_note()).count();
            let findings = a.findings.len() - notes;
            let sources = finding_sources(&a, &data, no_source);
            let piece = match format {
                Format::Text => Piece::Text(report::text(&shown, &a.findings, &sources)),
                Format::Json => Piece::Json(report::json_file_with(
                    &shown,
                    Some(&a),
                    None,
                    &sources,
                    docs,
                )),
                // SARIF names the object by URI: absolute (relative to %SRCROOT% when under it); a finding without
                // a source line is placed on its bytes in the object.
                Format::Sarif => {
                    let without_source = (0..a.findings.len())
                        .any(|i| sources.get(i).and_then(|s| s.primary.as_ref()).is_none());
                    Piece::Sarif(report::SarifObject {
                        path: std::path::absolute(path).map_or(shown, |p| p.display().to_string()),
                        regions: if without_source {
                            report::object_regions(&data, &a.findings)
                        } else {
                            Vec::new()
                        },
                        findings: a.findings,
                        sources,
                    })
                }
            };
            Outcome::Done {
                findings,
                notes,
                piece,
                default_rules,
            }
        }
        Err(e) => {
            let message = format!("{e:#}");
            let json = (format == Format::Json)
                .then(|| report::json_file(&shown, None, Some(&message), &[]));
            Outcome::Failed { message, json }
        }
    }
}

/// The objects named by `inputs`: files as given (a missing or unreadable one too: its check reports it),
/// directories walked (sorted, symbolic links not followed) for `*.o` files other than `*.mod.o` and `vmlinux.o`.
/// `true` when a directory was walked. A directory that cannot be listed or holds no object is an `Err` entry.
fn expand_inputs(inputs: &[PathBuf]) -> (Vec<(PathBuf, Option<String>)>, bool) {
    let mut out = Vec::new();
    let mut walked = false;
    for input in inputs {
        if !std::fs::metadata(input).is_ok_and(|m| m.is_dir()) {
            out.push((input.clone(), None));
            continue;
        }
        walked = true;
        let (found, problem) = crate::kbuild::objects_under(input);
        if found.is_empty() {
            let why = problem.unwrap_or_else(|| {
                format!(
                    "{}: a directory with no object files (*.o) under it",
                    input.display()
                )
            });
            out.push((input.clone(), Some(why)));
        }
        out.extend(found.into_iter().map(|p| (p, None)));
    }
    (out, walked)
}

/// What a `check` over many objects came to (printed on stderr at the end).
#[derive(Default)]
struct Summary {
    checked: usize,
    with_findings: usize,
    findings: usize,
    notes: usize,
    not_validated: usize,
    failed: usize,
}

impl Summary {
    fn line(&self, took: std::time::Duration) -> String {
        format!(
            "{} objects checked, {} with findings ({} findings{}), {} not validated by kbuild (skipped), {} could \
             not be analysed; {:.1} s",
            self.checked,
            self.with_findings,
            self.findings,
            match self.notes {
                0 => String::new(),
                n => format!(", {n} notes"),
            },
            self.not_validated,
            self.failed,
            took.as_secs_f64()
        )
    }
}

/// A progress line on stderr while many objects are checked, only when stderr is a terminal.
struct Progress {
    total: usize,
    done: std::sync::atomic::AtomicUsize,
    shown: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        use std::io::IsTerminal;
        Progress {
            total,
            done: std::sync::atomic::AtomicUsize::new(0),
            shown: total > 1 && std::io::stderr().is_terminal(),
        }
    }

    /// Counts one object as done when the returned guard is dropped.
    fn tick(&self) -> ProgressTick<'_> {
        ProgressTick(self)
    }

    fn advance(&self) {
        let n = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if self.shown && (n == self.total || n.is_multiple_of(8)) {
            eprint!("\raltcfi: checked {n}/{} objects", self.total);
        }
    }

    /// Clears the progress line.
    fn done(&self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

struct ProgressTick<'a>(&'a Progress);

impl Drop for ProgressTick<'_> {
    fn drop(&mut self) {
        self.0.advance();
    }
}

/// Says so on stderr when nothing told the object's kernel generation (no tree, no generation-specific section).
fn note_default_rules(path: &Path, a: &Analysis) {
    if a.era_source == EraSource::Default {
        eprintln!(
            "altcfi: note: {}: nothing tells its kernel generation (not in a kernel tree, no generation-specific \
             section); {} rules used (--kernel 6.1 for 5.13–6.3 objects)",
            path.display(),
            a.era.name()
        );
    }
}

/// `f` over `items` on all cores, results in input order.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    if workers <= 1 {
        return items.iter().map(|i| Some(f(i))).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().ok().flatten())
        .collect()
}

/// `check`'s options for the JSON and SARIF output.
#[derive(clap::Args, Clone)]
struct ReportArgs {
    /// SARIF: the source root. Paths under it are written relative to `%SRCROOT%` (GitHub code scanning wants them
    /// relative to the repository root), others as absolute `file://` URIs. Default: the current directory.
    #[arg(long, value_name = "DIR")]
    sarif_root: Option<PathBuf>,
    /// Base URL of the finding pages (`<URL>/<code>.md`) in JSON `docs` and SARIF `helpUri`. Default:
    /// `ALTCFI_DOCS_BASE`, else the pages installed with altcfi (a `file://` URL); an empty value: no links.
    #[arg(long, value_name = "URL")]
    docs_base: Option<String>,
}

/// Base URL of the finding pages (`<base>/<code>.md`) for JSON `docs`, SARIF `helpUri` and the language server's
/// `codeDescription`: `given` (`--docs-base`), else the `ALTCFI_DOCS_BASE` environment variable (a URL, or a
/// directory taken as its `file://` URL), else the `docs/findings` pages shipped with altcfi ([`shipped_docs`]).
/// `None` (no links rather than dead ones) for an empty value or when no pages are found.
pub(crate) fn docs_base(given: Option<&str>) -> Option<String> {
    let configured = given
        .map(str::to_owned)
        .or_else(|| std::env::var("ALTCFI_DOCS_BASE").ok());
    if let Some(v) = configured {
        let v = v.trim();
        let is_url = v.split_once(':').is_some_and(|(scheme, _)| {
            scheme.len() > 1
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        return match v {
            "" => None,
            _ if is_url => Some(v.trim_end_matches('/').to_owned()),
            _ => std::path::absolute(v).ok().map(|p| report::file_uri(&p)),
        };
    }
    shipped_docs().map(|d| report::file_uri(&d))
}

/// [`docs_base`] without `--docs-base`, looked up once per process (the language server's links).
pub(crate) fn default_docs_base() -> Option<&'static str> {
    static BASE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| docs_base(None)).as_deref()
}

/// The finding pages shipped with the executable: `<exe dir>/../../docs/findings` in a build tree
/// (`target/{debug,release}`; one more `..` under `target/<triple>/`), `<prefix>/share/doc/altcfi/findings` for an
/// install in `<prefix>/bin`, `<exe dir>/../docs/findings` for a bundled binary (the VS Code extension's `bin/`).
/// A directory counts when it holds `alt-stack-conflict.md`.
fn shipped_docs() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let dir = exe.parent()?;
    [
        "../../docs/findings",
        "../../../docs/findings",
        "../share/doc/altcfi/findings",
        "../docs/findings",
    ]
    .iter()
    .map(|rel| dir.join(rel))
    .find(|d| d.join("alt-stack-conflict.md").is_file())
    .and_then(|d| d.canonicalize().ok())
}

/// The SARIF source root (`--sarif-root`, else the current directory), absolute, followed by the other spellings of
/// it that paths read from DWARF may use (symbolic links resolved; the shell's `$PWD`).
fn sarif_roots(given: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let cwd = std::env::current_dir().context("the current directory")?;
    let root = given.map_or_else(|| cwd.clone(), |g| cwd.join(g));
    anyhow::ensure!(
        root.is_dir(),
        "--sarif-root {}: not a directory",
        root.display()
    );
    let canonical = root.canonicalize().ok();
    let mut roots = vec![root];
    if given.is_none() {
        if let Some(pwd) = std::env::var_os("PWD").map(PathBuf::from) {
            if pwd.is_absolute() && pwd.canonicalize().ok() == canonical {
                roots.push(pwd);
            }
        }
    }
    roots.extend(canonical);
    let mut unique: Vec<PathBuf> = Vec::new();
    for r in roots {
        if !unique.contains(&r) {
            unique.push(r);
        }
    }
    Ok(unique)
}

fn check(
    inputs: &[PathBuf],
    frame_pointer: bool,
    format: Format,
    no_source: bool,
    unwind: UnwindChecks,
    output: &ReportArgs,
    common: &Common,
) -> anyhow::Result<i32> {
    let names = features(common)?;
    // Only JSON and SARIF name the docs pages (looking for the shipped ones reads the file system).
    let docs = match format {
        Format::Text => None,
        _ => docs_base(output.docs_base.as_deref()),
    };
    let sarif_opts = match format {
        Format::Sarif => report::SarifOptions {
            roots: sarif_roots(output.sarif_root.as_deref())?,
            docs_base: docs.clone(),
        },
        _ => report::SarifOptions::default(),
    };
    let base = Options {
        era: common.kernel.era(),
        frame_pointer,
        all_conflicts: true,
        ..Options::default()
    };
    common.objtool.args()?;
    let started = std::time::Instant::now();
    let (entries, walked) = expand_inputs(inputs);
    let files: Vec<PathBuf> = entries.iter().map(|(p, _)| p.clone()).collect();
    let files = &files[..];
    let base = Options {
        parallel_min_code: common.parallel_min_code(files.len()),
        ..base
    };
    let kb = Kbuild::default();
    let progress = Progress::new(files.len());
    // Objects are independent: analyse them side by side, report in the order given.
    let outcomes = parallel_map(&entries, common.workers(files.len()), |(p, problem)| {
        let _tick = progress.tick();
        if let Some(why) = problem {
            return Outcome::Failed {
                message: why.clone(),
                json: None,
            };
        }
        let rules = common.rules(p, base, &kb);
        if let (true, Ok(r)) = (common.verbose, &rules) {
            eprintln!("altcfi: {}: {}", p.display(), r.how);
        }
        match rules {
            Ok(Rules {
                not_validated: Some(why),
                ..
            }) => Outcome::NotValidated { why },
            Ok(rules) => check_one(
                p,
                rules.opts,
                &names,
                format,
                no_source,
                unwind,
                docs.as_deref(),
            ),
            Err(e) => Outcome::Failed {
                message: format!("{}: {e:#}", p.display()),
                json: None,
            },
        }
    });
    progress.done();
    let mut any_findings = false;
    let mut any_error = false;
    let mut json_files = Vec::new();
    let mut sarif_files = Vec::new();
    let mut summary = Summary::default();
    let mut defaulted: Vec<PathBuf> = Vec::new();
    for (path, outcome) in files.iter().zip(outcomes) {
        let outcome = outcome.unwrap_or_else(|| Outcome::Failed {
            message: format!("{}: the analysis thread failed", path.display()),
            json: None,
        });
        match outcome {
            Outcome::Done {
                findings,
                notes,
                piece,
                default_rules,
            } => {
                summary.notes += notes;
                if default_rules {
                    defaulted.push(path.clone());
                }
                any_findings |= findings > 0;
                summary.checked += 1;
                summary.findings += findings;
                summary.with_findings += usize::from(findings > 0);
                match piece {
                    Piece::Text(t) => print!("{t}"),
                    Piece::Json(j) => json_files.push(j),
                    Piece::Sarif(f) => sarif_files.push(f),
                }
            }
            Outcome::NotValidated { why } => {
                summary.not_validated += 1;
                // Named on the command line: say so; found in a directory walk: counted in the summary.
                if !walked || common.verbose {
                    eprintln!(
                        "altcfi: note: {}: not validated by kbuild ({why}); not checked (--force checks it)",
                        path.display()
                    );
                }
                if format == Format::Json {
                    json_files.push(serde_json::json!({
                        "file": path.display().to_string(),
                        "not_validated_by_kbuild": why,
                        "findings": [],
                    }));
                }
            }
            Outcome::Failed { message, json } => {
                any_error = true;
                summary.failed += 1;
                eprintln!("altcfi: error: {message}");
                json_files.extend(json);
            }
        }
    }
    // Once per run, not once per object.
    match defaulted.as_slice() {
        [] => {}
        [one] => eprintln!(
            "altcfi: note: {}: nothing tells its kernel generation (not in a kernel tree, no generation-specific \
             section); 6.12 rules used (--kernel 6.1 for 5.13–6.3 objects)",
            one.display()
        ),
        [first, rest @ ..] => eprintln!(
            "altcfi: note: nothing tells the kernel generation of {} objects ({} and {} more: not in a kernel tree, \
             no generation-specific section); 6.12 rules used (--kernel 6.1 for 5.13–6.3 objects)",
            rest.len() + 1,
            first.display(),
            rest.len()
        ),
    }
    if walked || common.verbose {
        eprintln!("altcfi: {}", summary.line(started.elapsed()));
    }
    match format {
        Format::Text => {}
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report::json_report(json_files))?
        ),
        Format::Sarif => println!(
            "{}",
            serde_json::to_string_pretty(&report::sarif_with(&sarif_files, &sarif_opts))?
        ),
    }
    Ok(if any_error {
        2
    } else if any_findings {
        1
    } else {
        0
    })
}

/// `SRC:LINE` → (SRC, LINE); anything else is a location.
fn parse_src_line(what: &str) -> Option<(&Path, u32)> {
    let (src, line) = what.rsplit_once(':')?;
    let line: u32 = line.trim().parse().ok()?;
    (!src.is_empty() && line > 0).then_some((Path::new(src), line))
}

fn explain(path: &Path, what: &str, format: ExplainFormat, common: &Common) -> anyhow::Result<i32> {
    let names = features(common)?;
    let base = Options {
        era: common.kernel.era(),
        frame_pointer: false,
        all_conflicts: true,
        parallel_min_code: common.parallel_min_code(1),
        ..Options::default()
    };
    let opts = common.rules(path, base, &Kbuild::default())?.opts;
    let (data, a) = load(path, opts, &names)?;
    let shown = path.display();
    let sources = Sources::new(&a, &data).with_context(|| shown.to_string())?;
    let explanation = match parse_src_line(what) {
        Some((src, line)) => {
            if !sources.has_debug_info() {
                anyhow::bail!(
                    "{shown}: has no DWARF line information, so {what} cannot be mapped to code; rebuild it with -g, \
                     or ask for a location such as func+0x1a"
                );
            }
            let e = sources.explain_line(src, line);
            if e.rows.is_empty() {
                let lines = sources.line_summaries(src);
                if lines.is_empty() {
                    let files = sources.source_files();
                    let listed: Vec<String> =
                        files.iter().take(20).map(|f| f.display().to_string()).collect();
                    anyhow::bail!(
                        "{shown}: no code comes from {} (the object's DWARF names: {}{})",
                        src.display(),
                        listed.join(", "),
                        if files.len() > listed.len() { ", …" } else { "" }
                    );
                }
                let listed: Vec<String> = lines.iter().take(40).map(|l| l.line.to_string()).collect();
                anyhow::bail!(
                    "{shown}: no instructions come from {what}; lines of {} that produced code: {}{}",
                    src.display(),
                    listed.join(", "),
                    if lines.len() > listed.len() { ", …" } else { "" }
                );
            }
            e
        }
        None => sources.explain_location(what).ok_or_else(|| {
            anyhow::anyhow!(
                "{shown}: no instruction at `{what}` (expected SRC:LINE, func+0xOFF or .section+0xOFF naming a \
                 symbol or section of the object)"
            )
        })?,
    };
    match format {
        ExplainFormat::Text => print!("{}", explanation.to_text()),
        ExplainFormat::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
    }
    Ok(0)
}

fn orc_cmd(
    path: &Path,
    dump_format: DumpFmt,
    verify: bool,
    common: &Common,
) -> anyhow::Result<i32> {
    let names = features(common)?;
    let base = Options {
        era: common.kernel.era(),
        frame_pointer: false,
        all_conflicts: false,
        parallel_min_code: common.parallel_min_code(1),
        ..Options::default()
    };
    let opts = common.rules(path, base, &Kbuild::default())?.opts;
    let data = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let a = analyze_findings(&data, opts, &names).with_context(|| path.display().to_string())?;
    note_default_rules(path, &a);
    let format = match dump_format {
        DumpFmt::Modern => DumpFormat::Modern,
        DumpFmt::Legacy => DumpFormat::Legacy,
        DumpFmt::Auto => match a.era {
            Era::V6_12 => DumpFormat::Modern,
            Era::V6_1 => DumpFormat::Legacy,
        },
    };
    eprint!(
        "{}",
        report::text(&path.display().to_string(), &a.findings, &[])
    );
    let rows = a.orc.clone().unwrap_or_default();
    if !verify {
        let mut out = String::new();
        let mut dumper = orc::Dumper::new(&a.section_names, format);
        for r in &rows {
            dumper.push(&mut out, r);
        }
        print!("{out}");
        return Ok(0);
    }
    let Some(existing) = &a.existing_orc else {
        if rows.is_empty() && a.orc.is_some() {
            // objtool writes no table when every row would be undefined (or there is no code): nothing to compare.
            println!(
                "{}: ORC verified: nothing to unwind (no ORC row computed, no .orc_unwind in the object)",
                path.display()
            );
            return Ok(0);
        }
        anyhow::bail!(
            "{}: has no .orc_unwind/.orc_unwind_ip to verify against (objtool has not run on it)",
            path.display()
        );
    };
    let obj = altcfi_analysis::object::Object::parse(&data)?;
    let diffs = orc_diff(&obj, existing, &rows, format);
    if diffs.is_empty() {
        println!(
            "{}: ORC verified: {} rows identical",
            path.display(),
            rows.len()
        );
        Ok(0)
    } else {
        for d in &diffs {
            println!("{d}");
        }
        println!("{}: {} ORC differences", path.display(), diffs.len());
        Ok(1)
    }
}

/// Row-by-row comparison keyed by (section, offset).
fn orc_diff(
    obj: &altcfi_analysis::object::Object,
    existing: &[orc::OrcRow],
    ours: &[orc::OrcRow],
    f: DumpFormat,
) -> Vec<String> {
    use std::collections::BTreeMap;
    let key = |r: &orc::OrcRow| (r.section, r.offset);
    let a: BTreeMap<_, _> = existing.iter().map(|r| (key(r), r)).collect();
    let b: BTreeMap<_, _> = ours.iter().map(|r| (key(r), r)).collect();
    let mut out = Vec::new();
    for (k, r) in &a {
        match b.get(k) {
            None => out.push(format!(
                "- {} (in object, not computed)",
                orc::dump_line(obj, r, f)
            )),
            Some(o) if o.entry != r.entry => {
                out.push(format!("- {} (in object)", orc::dump_line(obj, r, f)));
                out.push(format!("+ {} (computed)", orc::dump_line(obj, o, f)));
            }
            _ => {}
        }
    }
    for (k, r) in &b {
        if !a.contains_key(k) {
            out.push(format!(
                "+ {} (computed, not in object)",
                orc::dump_line(obj, r, f)
            ));
        }
    }
    out
}

/// The opt-in comparisons of `check` with unwind data already in the object.
#[derive(Clone, Copy)]
struct UnwindChecks {
    /// `--eh-frame`: `.eh_frame`/`.debug_frame` against the computed CFI.
    eh_frame: bool,
    /// `--verify-orc`: `.orc_unwind` against the computed ORC.
    verify_orc: bool,
}

/// Findings of the opt-in unwind-data comparisons; unreadable tables are reported on stderr, not fatal.
fn unwind_findings(
    data: &[u8],
    a: &Analysis,
    checks: UnwindChecks,
    shown: &str,
) -> Vec<altcfi_analysis::Finding> {
    let mut out = Vec::new();
    if checks.eh_frame {
        match altcfi_analysis::ehframe::check_unwind_tables(data, a) {
            Ok(f) => out.extend(f),
            Err(e) => eprintln!("altcfi: {shown}: cannot read the unwind tables: {e}"),
        }
    }
    if checks.verify_orc {
        if a.existing_orc.is_none() {
            eprintln!("altcfi: {shown}: no .orc_unwind to verify (objtool has not run on it)");
        }
        out.extend(altcfi_analysis::ehframe::verify_orc_findings(a));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// build.rs links GCC's unwinder statically: a panic must still unwind and be caught (the language server's
    /// worker threads and `check`'s parallel map rely on it), with its destructors run.
    #[test]
    fn panics_unwind_with_the_static_unwinder() {
        struct Flag<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Flag<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let dropped = std::sync::atomic::AtomicBool::new(false);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _f = Flag(&dropped);
            panic!("expected by the test");
        }));
        assert!(r.is_err());
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
        assert!(std::thread::spawn(|| panic!("expected by the test"))
            .join()
            .is_err());
    }

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The subcommands' arguments are built only when given ([`Deferred`]); their help text stays the
    /// subcommand's own, and their arguments parse.
    #[test]
    fn deferred_subcommands_keep_their_help_and_parse() {
        let mut cli = Cli::command();
        cli.build();
        let check = cli.find_subcommand("check").expect("check");
        assert_eq!(
            check.get_about().map(ToString::to_string).as_deref(),
            Some("Check objects: every stack-validation finding objtool would report, with explanations")
        );
        assert!(check.get_arguments().any(|a| a.get_id() == "jobs"));
        let parsed =
            Cli::try_parse_from(["altcfi", "check", "-j", "1", "--orc", "--prefix=16", "a.o"])
                .expect("parse");
        let Command::Check(Deferred(args)) = parsed.command else {
            panic!("not check");
        };
        assert_eq!(args.files, [PathBuf::from("a.o")]);
        assert_eq!(args.common.jobs.map(|j| j.get()), Some(1));
        assert!(args.common.objtool.orc);
        assert_eq!(args.common.objtool.prefix, Some(16));
        assert!(Cli::try_parse_from(["altcfi", "orc", "--no-such-option", "a.o"]).is_err());
    }
}
