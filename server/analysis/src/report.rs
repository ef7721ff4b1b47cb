//! Report stage: findings → text (objtool-compatible first line, then detail lines), JSON and SARIF 2.1.0.
//!
//! Pure formatting of plain data; the caller decides where it goes.

use crate::analysis::Analysis;
use crate::findings::{Finding, FindingKind};
use serde_json::{json, Value};

/// Base URL of the per-finding docs pages (`<base>/<code>.md`).
pub const DOCS_BASE: &str = "https://github.com/altcfi/altcfi/blob/main/docs/findings";

/// The docs page of a finding kind.
pub fn docs_url(kind: FindingKind) -> String {
    format!("{DOCS_BASE}/{}.md", kind.code())
}

pub use crate::sources::{FindingSources, SourcePos};

/// `path:line:col` of a source position, the column 1 when DWARF does not know it (gcc's shape).
fn gcc_pos(p: &SourcePos) -> String {
    format!("{}:{}:{}", p.path.display(), p.line, p.column.max(1))
}

fn source_json(p: &SourcePos) -> Value {
    json!({"path": p.path, "line": p.line, "column": p.column})
}

/// Text report of one file: per finding, `FILE: warning: altcfi: LOC: MESSAGE`, then indented details and related
/// locations. `sources` (parallel to `findings`, may be empty) adds a gcc-style `path:line:col: ` prefix with the
/// primary source position, the source line of each related location, and the remaining related source positions
/// (replacement sides, inline call sites).
pub fn text(file: &str, findings: &[Finding], sources: &[FindingSources]) -> String {
    let mut out = String::new();
    for (i, f) in findings.iter().enumerate() {
        let src = sources.get(i);
        if let Some(p) = src.and_then(|s| s.primary.as_ref()) {
            out.push_str(&format!("{}: ", gcc_pos(p)));
        }
        out.push_str(&format!("{file}: warning: altcfi: {}\n", f.headline()));
        for d in &f.details {
            out.push_str(&format!("    {d}\n"));
        }
        let related_src = src.map(|s| s.related.as_slice()).unwrap_or(&[]);
        for (what, loc) in &f.related {
            let at = related_src
                .iter()
                .find(|(w, _)| w == what)
                .map(|(_, p)| format!(" at {}", gcc_pos(p)))
                .unwrap_or_default();
            out.push_str(&format!(
                "    {what}: {} ({}+0x{:x}){at}\n",
                loc.display, loc.section_name, loc.offset
            ));
        }
        // The rest (replacement sides, inline call sites), unless that line was already named.
        let mut shown: Vec<&SourcePos> = src.and_then(|s| s.primary.as_ref()).into_iter().collect();
        shown.extend(
            related_src
                .iter()
                .filter(|(w, _)| f.related.iter().any(|(what, _)| what == w))
                .map(|(_, p)| p),
        );
        for (what, p) in related_src {
            if !f.related.iter().any(|(w, _)| w == what) && !shown.contains(&p) {
                out.push_str(&format!("    {what}: {}\n", gcc_pos(p)));
                shown.push(p);
            }
        }
    }
    out
}

/// JSON value of one file's result (schema in `docs/json-schema.md`).
pub fn json_file(
    file: &str,
    analysis: Option<&Analysis>,
    error: Option<&str>,
    sources: &[FindingSources],
) -> Value {
    let findings: Vec<Value> = analysis
        .map(|a| {
            a.findings
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let src = sources.get(i);
                    json!({
                        "code": f.kind.code(),
                        "message": f.message,
                        "headline": f.headline(),
                        "location": f.location,
                        "source": src.and_then(|s| s.primary.as_ref()).map(source_json),
                        "related_sources": src.map(|s| s.related.iter().map(|(w, p)| {
                            let mut v = source_json(p);
                            v["what"] = json!(w);
                            v
                        }).collect::<Vec<_>>()).unwrap_or_default(),
                        "inline_frames": src.map(|s| s.inline_frames.iter().map(source_json).collect::<Vec<_>>()).unwrap_or_default(),
                        "details": f.details,
                        "related": f.related.iter().map(|(w, l)| json!({"what": w, "location": l})).collect::<Vec<_>>(),
                        "conflicts": f.conflicts,
                        "fatal": f.fatal,
                        "docs": docs_url(f.kind),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "path": file,
        "era": analysis.map(|a| a.era.name()),
        "error": error,
        "findings": findings,
    })
}

/// A whole JSON report.
pub fn json_report(files: Vec<Value>) -> Value {
    json!({ "tool": "altcfi", "version": env!("CARGO_PKG_VERSION"), "files": files })
}

/// One file's input to [`sarif`]: object path, findings, and the source positions of each finding (parallel to the
/// findings, may be empty).
pub type SarifFile = (String, Vec<Finding>, Vec<FindingSources>);

/// SARIF 2.1.0 log for many files: `(object path, findings, source positions)`.
pub fn sarif(files: &[SarifFile]) -> Value {
    let rules: Vec<Value> = FindingKind::ALL
        .iter()
        .map(|k| {
            json!({
                "id": k.code(),
                "helpUri": docs_url(*k),
                "shortDescription": {"text": k.code().replace('-', " ")},
            })
        })
        .collect();
    let mut results = Vec::new();
    for (path, findings, sources) in files {
        for (i, f) in findings.iter().enumerate() {
            let mut locations = Vec::new();
            let src = sources.get(i);
            if let Some(p) = src.and_then(|s| s.primary.as_ref()) {
                locations.push(json!({
                    "physicalLocation": {
                        "artifactLocation": {"uri": p.path},
                        "region": {"startLine": p.line, "startColumn": p.column.max(1)},
                    },
                    "logicalLocations": [{"name": f.location.as_ref().map(|l| l.display.clone()), "kind": "function"}],
                }));
            }
            let related: Vec<Value> = src
                .map(|s| s.related.as_slice())
                .unwrap_or(&[])
                .iter()
                .enumerate()
                .map(|(k, (what, p))| {
                    json!({
                        "id": k,
                        "message": {"text": what},
                        "physicalLocation": {
                            "artifactLocation": {"uri": p.path},
                            "region": {"startLine": p.line, "startColumn": p.column.max(1)},
                        },
                    })
                })
                .collect();
            locations.push(json!({
                "physicalLocation": {"artifactLocation": {"uri": path}},
                "logicalLocations": [{"name": f.location.as_ref().map(|l| l.display.clone()), "kind": "function"}],
            }));
            let mut text = f.headline();
            for d in &f.details {
                text.push('\n');
                text.push_str(d);
            }
            results.push(json!({
                "ruleId": f.kind.code(),
                "level": if f.fatal { "error" } else { "warning" },
                "message": {"text": text},
                "locations": locations,
                "relatedLocations": related,
            }));
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "altcfi", "version": env!("CARGO_PKG_VERSION"), "informationUri": DOCS_BASE, "rules": rules}},
            "results": results,
        }],
    })
}
