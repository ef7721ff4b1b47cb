//! What objtool and altcfi say about one object, in the same terms, for the differential comparisons.

use altcfi_analysis::features::FeatureNames;
use altcfi_analysis::object::Object;
use altcfi_analysis::orc::{self, DumpFormat};
use altcfi_analysis::{analyze, report, Finding, Options};
use std::path::Path;
use std::process::Command;

/// What one tool said about one object: warning lines (with `objtool` as the tool name, sorted) and `--dump=orc`
/// rows (none after a fatal finding).
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Warning lines, sorted.
    pub warnings: Vec<String>,
    /// ORC dump rows, in table order.
    pub orc: Vec<String>,
}

/// objtool's verdict: `--orc ARGS` on a private copy of `obj`, then `--dump=orc` on the rewritten copy. Panics when
/// either run fails.
pub fn objtool(bin: &Path, obj: &Path, args: &[String]) -> Verdict {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = obj.file_name().expect("object name");
    std::fs::copy(obj, dir.path().join(name)).expect("copy object");
    let run = |words: &[&str]| {
        let out = Command::new(bin)
            .args(words)
            .arg(name)
            .current_dir(dir.path())
            .output()
            .expect("run objtool");
        assert!(
            out.status.success(),
            "objtool {} failed on {}: {}",
            words.first().copied().unwrap_or_default(),
            obj.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let mut words = vec!["--orc"];
    words.extend(args.iter().map(String::as_str));
    let out = run(&words);
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let mut warnings: Vec<String> = text
        .lines()
        .filter(|l| l.contains(": warning: objtool: "))
        .map(str::to_string)
        .collect();
    warnings.sort();
    let orc = String::from_utf8_lossy(&run(&["--dump=orc"]).stdout)
        .lines()
        .map(str::to_string)
        .collect();
    Verdict { warnings, orc }
}

/// altcfi's warning lines for `findings` in object `name`, spelled as objtool's (`objtool` for `altcfi`), sorted.
pub fn altcfi_warnings(name: &str, findings: &[Finding]) -> Vec<String> {
    let mut warnings: Vec<String> = report::text(name, findings, &[])
        .lines()
        .filter(|l| l.contains(": warning: altcfi: "))
        .map(|l| l.replacen(": warning: altcfi: ", ": warning: objtool: ", 1))
        .collect();
    warnings.sort();
    warnings
}

/// altcfi's verdict on `obj` under `opts`, its ORC rows dumped in `format`. Panics when the analysis fails.
pub fn altcfi(obj: &Path, opts: Options, format: DumpFormat) -> Verdict {
    let data = std::fs::read(obj).expect("read object");
    let name = obj
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let a = analyze(&data, opts, &FeatureNames::default()).expect("analysis runs");
    let warnings = altcfi_warnings(&name, &a.findings);
    let parsed = Object::parse(&data).expect("parses");
    let orc = a
        .orc
        .unwrap_or_default()
        .iter()
        .map(|r| orc::dump_line(&parsed, r, format))
        .collect();
    Verdict { warnings, orc }
}
