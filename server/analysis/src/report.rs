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

/// Source location of a finding, added by the caller from the lines stage: `(path, line, column)`.
pub type SourcePos = (String, u32, u32);

/// Text report of one file: per finding, `FILE: warning: altcfi: LOC: MESSAGE`, then indented details. With a
/// source position the line is prefixed gcc-style (`path:line:col: `).
pub fn text(file: &str, findings: &[Finding], sources: &[Option<SourcePos>]) -> String {
    let mut out = String::new();
    for (i, f) in findings.iter().enumerate() {
        if let Some(Some((path, line, col))) = sources.get(i) {
            out.push_str(&format!("{path}:{line}:{col}: "));
        }
        out.push_str(&format!("{file}: warning: altcfi: {}\n", f.headline()));
        for d in &f.details {
            out.push_str(&format!("    {d}\n"));
        }
        for (what, loc) in &f.related {
            out.push_str(&format!(
                "    {what}: {} ({}+0x{:x})\n",
                loc.display, loc.section_name, loc.offset
            ));
        }
    }
    out
}

/// JSON value of one file's result (schema in `docs/json-schema.md`).
pub fn json_file(
    file: &str,
    analysis: Option<&Analysis>,
    error: Option<&str>,
    sources: &[Option<SourcePos>],
) -> Value {
    let findings: Vec<Value> = analysis
        .map(|a| {
            a.findings
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let src = sources.get(i).cloned().flatten();
                    json!({
                        "code": f.kind.code(),
                        "message": f.message,
                        "headline": f.headline(),
                        "location": f.location,
                        "source": src.map(|(p, l, c)| json!({"path": p, "line": l, "column": c})),
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

/// One file's input to [`sarif`]: object path, findings, and the source position of each finding.
pub type SarifFile = (String, Vec<Finding>, Vec<Option<SourcePos>>);

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
            if let Some(Some((src, line, col))) = sources.get(i) {
                locations.push(json!({
                    "physicalLocation": {
                        "artifactLocation": {"uri": src},
                        "region": {"startLine": line, "startColumn": (*col).max(1)},
                    },
                    "logicalLocations": [{"name": f.location.as_ref().map(|l| l.display.clone()), "kind": "function"}],
                }));
            }
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
