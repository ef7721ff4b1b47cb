//! Report stage: findings → text (objtool-compatible first line, then detail lines), JSON and SARIF 2.1.0.
//!
//! Pure formatting of plain data; the caller decides where it goes. Nothing here looks at the filesystem: where the
//! finding pages are ([`docs_url`]'s base) and the SARIF source root ([`SarifOptions`]) are handed in by the binary.

use crate::analysis::Analysis;
use crate::findings::{Finding, FindingKind};
use serde_json::{json, Value};
use std::path::{Component, Path, PathBuf};

/// The docs page of a finding kind, `<base>/<code>.md`, under the base URL of the finding pages (the binary finds
/// it: `docs/findings` shipped beside the executable as a `file://` URL, `--docs-base`, `ALTCFI_DOCS_BASE`).
/// `None` without a base: no link rather than a dead one.
pub fn docs_url(kind: FindingKind, base: Option<&str>) -> Option<String> {
    base.map(|b| format!("{}/{}.md", b.trim_end_matches('/'), kind.code()))
}

/// The index of the finding pages, `<base>/README.md`; `None` without a base.
pub fn docs_index_url(base: Option<&str>) -> Option<String> {
    base.map(|b| format!("{}/README.md", b.trim_end_matches('/')))
}

pub use crate::sources::{FindingSources, SourcePos};

/// `path:line:col` of a source position, the column 1 when DWARF does not know it (gcc's shape).
fn gcc_pos(p: &SourcePos) -> String {
    format!("{}:{}:{}", p.path.display(), p.line, p.column.max(1))
}

fn source_json(p: &SourcePos) -> Value {
    json!({"path": p.path, "line": p.line, "column": p.column})
}

/// The level of a finding (JSON `level`, SARIF `level`): `error` for fatal ones, `note` for note-level kinds, else
/// `warning`.
pub fn level(f: &Finding) -> &'static str {
    if f.fatal {
        "error"
    } else if f.kind.is_note() {
        "note"
    } else {
        "warning"
    }
}

/// Text report of one file: per finding, `FILE: warning: altcfi: LOC: MESSAGE` (`note:` for altcfi's own notes), then
/// indented details and related
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
        let level = if f.kind.is_note() { "note" } else { "warning" };
        out.push_str(&format!("{file}: {level}: altcfi: {}\n", f.headline()));
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

/// JSON value of one file's result (schema in `docs/json-schema.md`), without docs links (`"docs": null`); see
/// [`json_file_with`].
pub fn json_file(
    file: &str,
    analysis: Option<&Analysis>,
    error: Option<&str>,
    sources: &[FindingSources],
) -> Value {
    json_file_with(file, analysis, error, sources, None)
}

/// JSON value of one file's result (schema in `docs/json-schema.md`); each finding's `"docs"` is its page under
/// `docs_base` ([`docs_url`]), `null` without a base.
pub fn json_file_with(
    file: &str,
    analysis: Option<&Analysis>,
    error: Option<&str>,
    sources: &[FindingSources],
    docs_base: Option<&str>,
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
                        "severity": f.kind.severity(),
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
                        "unwind": f.unwind,
                        "fatal": f.fatal,
                        "docs": docs_url(f.kind, docs_base),
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

/// A byte range of an object file: a SARIF region in a binary artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRegion {
    /// File offset.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

/// One object's input to [`sarif_with`].
#[derive(Debug, Clone, Default)]
pub struct SarifObject {
    /// The object's path (absolute; a relative one is taken as relative to the root).
    pub path: String,
    /// Its findings.
    pub findings: Vec<Finding>,
    /// The source positions of each finding (parallel to `findings`, may be empty).
    pub sources: Vec<FindingSources>,
    /// Where each finding is in the object file (parallel to `findings`, may be empty; see [`object_regions`]): the
    /// location of a result without a source line.
    pub regions: Vec<ByteRegion>,
}

/// Where each finding is in the object file `data`, for SARIF results without a source line: the bytes of the
/// instruction at the finding's location (file offset of its section + offset; one byte when no instruction can be
/// decoded there), or the whole file for a finding without a location.
pub fn object_regions(data: &[u8], findings: &[Finding]) -> Vec<ByteRegion> {
    let whole = ByteRegion {
        offset: 0,
        length: data.len() as u64,
    };
    let Ok(obj) = crate::object::Object::parse(data) else {
        return vec![whole; findings.len()];
    };
    let at = |f: &Finding| -> Option<ByteRegion> {
        let l = f.location.as_ref()?;
        let sec = obj.sections.get(l.section)?;
        // A section's contents are a slice of the file: its file offset is where that slice starts.
        let start = (sec.data.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
        let off = usize::try_from(l.offset).ok()?;
        if off >= sec.data.len() || start.checked_add(sec.data.len())? > data.len() {
            return None;
        }
        let length = if sec.is_exec() {
            crate::decode::decode_range(sec.data, off, off + 1, &|_| false)
                .ok()
                .and_then(|(insns, _)| insns.first().map(|d| u64::from(d.insn.len)))
        } else {
            None
        };
        Some(ByteRegion {
            offset: (start + off) as u64,
            length: length.unwrap_or(1),
        })
    };
    findings.iter().map(|f| at(f).unwrap_or(whole)).collect()
}

/// The `uriBaseId` of artifact URIs relative to the source root.
pub const SARIF_SRCROOT: &str = "%SRCROOT%";

/// How [`sarif_with`] writes paths and links.
#[derive(Debug, Clone, Default)]
pub struct SarifOptions {
    /// The source root (absolute): paths under it become URIs relative to `%SRCROOT%`, which the run's
    /// `originalUriBaseIds` gives as a `file:///…/` URI. The first entry is the root written there; further entries
    /// are other spellings of the same directory (e.g. with symbolic links resolved) that paths may use. Empty:
    /// every path is an absolute `file://` URI.
    pub roots: Vec<PathBuf>,
    /// Base URL of the finding pages (see [`docs_url`]); `None`: no `helpUri`/`informationUri`.
    pub docs_base: Option<String>,
}

/// `path` with `.` dropped and `..` applied to the components before it, without looking at the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}

/// Percent-encodes a path for a URI: unreserved characters, `/` and the sub-delimiters `!$&'()*+,;=` and `@` stay;
/// everything else (`%`, `#`, `?`, `:`, spaces, non-ASCII bytes, …) becomes `%XX`.
fn encode_path(path: &Path) -> String {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().replace('\\', "/").into_bytes();
    let mut out = String::with_capacity(bytes.len());
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `file://` URI of an absolute path (`file:///abs/path`), percent-encoded.
pub fn file_uri(path: &Path) -> String {
    let enc = encode_path(&normalize(path));
    if enc.starts_with('/') {
        format!("file://{enc}")
    } else {
        format!("file:///{enc}")
    }
}

/// The `file://` URI of a directory, ending in `/` (as SARIF's `originalUriBaseIds` and URL joining want).
pub fn dir_uri(path: &Path) -> String {
    let mut u = file_uri(path);
    if !u.ends_with('/') {
        u.push('/');
    }
    u
}

/// A SARIF `artifactLocation` for `path`: relative to `%SRCROOT%` when under one of `roots` (or relative, taken as
/// relative to the root), else an absolute `file://` URI.
fn artifact_location(path: &Path, roots: &[PathBuf]) -> Value {
    let p = normalize(path);
    if !roots.is_empty() {
        let rel = if p.is_relative() {
            Some(p.clone())
        } else {
            roots
                .iter()
                .find_map(|r| p.strip_prefix(normalize(r)).ok().map(Path::to_path_buf))
        };
        if let Some(rel) = rel.filter(|r| r.components().next().is_some() && !r.starts_with("..")) {
            return json!({"uri": encode_path(&rel), "uriBaseId": SARIF_SRCROOT});
        }
    }
    if p.is_relative() {
        json!({"uri": encode_path(&p)})
    } else {
        json!({"uri": file_uri(&p)})
    }
}

/// A SARIF `region` for a source position: the line, and the column when DWARF knows it.
fn region(p: &SourcePos) -> Value {
    if p.column > 0 {
        json!({"startLine": p.line, "startColumn": p.column})
    } else {
        json!({"startLine": p.line})
    }
}

/// The logical location of a finding: `func+0x1a` (kind `function`) or `.section+0x3`.
fn logical_location(f: &Finding) -> Option<Value> {
    let l = f.location.as_ref()?;
    let mut v = json!({"name": l.display});
    if !l.display.starts_with(&l.section_name) {
        v["kind"] = json!("function");
    }
    Some(v)
}

/// SARIF 2.1.0 log for many files with absolute `file://` URIs, no docs links and no object regions (a result
/// without a source line has only its logical location); see [`sarif_with`].
pub fn sarif(files: &[SarifFile]) -> Value {
    let objects: Vec<SarifObject> = files
        .iter()
        .map(|(path, findings, sources)| SarifObject {
            path: path.clone(),
            findings: findings.clone(),
            sources: sources.clone(),
            regions: Vec::new(),
        })
        .collect();
    sarif_with(&objects, &SarifOptions::default())
}

/// SARIF 2.1.0 log for many objects, one run. Per finding a result whose location is its source line when DWARF
/// gave one (with the object as the result's `analysisTarget`), else the finding's bytes in the object file (a binary
/// artifact: a byte-offset region, [`object_regions`]); its logical location (`func+0x1a`) either way, related
/// locations for every other source place, and the section and offset as properties. Paths under the root are
/// relative to `%SRCROOT%`, others absolute `file://` URIs.
pub fn sarif_with(objects: &[SarifObject], opts: &SarifOptions) -> Value {
    let docs = opts.docs_base.as_deref();
    let rules: Vec<Value> = FindingKind::ALL
        .iter()
        .map(|k| {
            let mut r = json!({
                "id": k.code(),
                "shortDescription": {"text": k.code().replace('-', " ")},
            });
            if let Some(u) = docs_url(*k, docs) {
                r["helpUri"] = json!(u);
            }
            r
        })
        .collect();
    let rule_index = |k: FindingKind| FindingKind::ALL.iter().position(|x| *x == k);
    let mut results = Vec::new();
    for obj in objects {
        let target = artifact_location(Path::new(&obj.path), &opts.roots);
        for (i, f) in obj.findings.iter().enumerate() {
            let src = obj.sources.get(i);
            let primary = src.and_then(|s| s.primary.as_ref());
            let mut location = json!({});
            if let Some(p) = primary {
                location["physicalLocation"] = json!({
                    "artifactLocation": artifact_location(&p.path, &opts.roots),
                    "region": region(p),
                });
            } else if let Some(r) = obj.regions.get(i) {
                location["physicalLocation"] = json!({
                    "artifactLocation": target,
                    "region": {"byteOffset": r.offset, "byteLength": r.length},
                });
            }
            if let Some(l) = logical_location(f) {
                location["logicalLocations"] = json!([l]);
            }
            let on_object = primary.is_none() && location.get("physicalLocation").is_some();
            let locations: Vec<Value> = location
                .as_object()
                .is_some_and(|o| !o.is_empty())
                .then_some(location)
                .into_iter()
                .collect();
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
                            "artifactLocation": artifact_location(&p.path, &opts.roots),
                            "region": region(p),
                        },
                    })
                })
                .collect();
            let mut text = f.headline();
            for d in &f.details {
                text.push('\n');
                text.push_str(d);
            }
            let mut result = json!({
                "ruleId": f.kind.code(),
                "level": level(f),
                "message": {"text": text},
                "locations": locations,
            });
            if let Some(ix) = rule_index(f.kind) {
                result["ruleIndex"] = json!(ix);
            }
            // The object, unless it already is the result's location.
            if !on_object {
                result["analysisTarget"] = target.clone();
            }
            if !related.is_empty() {
                result["relatedLocations"] = json!(related);
            }
            if let Some(l) = &f.location {
                result["properties"] = json!({"section": l.section_name, "offset": l.offset});
            }
            results.push(result);
        }
    }
    let mut driver =
        json!({"name": "altcfi", "version": env!("CARGO_PKG_VERSION"), "rules": rules});
    if let Some(u) = docs_index_url(docs) {
        driver["informationUri"] = json!(u);
    }
    let mut run = json!({"tool": {"driver": driver}, "results": results});
    if let Some(root) = opts.roots.first() {
        run["originalUriBaseIds"] = json!({SARIF_SRCROOT: {"uri": dir_uri(root)}});
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Location;

    #[test]
    fn docs_links_only_with_a_base() {
        let k = FindingKind::AltStackConflict;
        assert_eq!(docs_url(k, None), None);
        assert_eq!(
            docs_url(k, Some("file:///opt/altcfi/findings/")).as_deref(),
            Some("file:///opt/altcfi/findings/alt-stack-conflict.md")
        );
        assert_eq!(
            docs_index_url(Some("https://x.test/f")).as_deref(),
            Some("https://x.test/f/README.md")
        );
        let f = Finding::new(k, None, "m");
        let a = json_file("x.o", None, None, &[]);
        assert!(a["findings"].as_array().is_some_and(Vec::is_empty));
        let log = sarif(&[("x.o".into(), vec![f], Vec::new())]);
        let driver = &log["runs"][0]["tool"]["driver"];
        assert!(driver.get("informationUri").is_none());
        assert!(driver["rules"][0].get("helpUri").is_none());
    }

    #[test]
    fn uris() {
        assert_eq!(
            file_uri(Path::new("/a b/c#1/../d%/é.S")),
            "file:///a%20b/d%25/%C3%A9.S"
        );
        assert_eq!(dir_uri(Path::new("/src/linux")), "file:///src/linux/");
        assert_eq!(dir_uri(Path::new("/")), "file:///");
        let roots = [PathBuf::from("/src/linux/"), PathBuf::from("/real/linux")];
        assert_eq!(
            artifact_location(Path::new("/src/linux/./arch/x86/entry.S"), &roots),
            json!({"uri": "arch/x86/entry.S", "uriBaseId": "%SRCROOT%"})
        );
        assert_eq!(
            artifact_location(Path::new("/real/linux/a:b.h"), &roots),
            json!({"uri": "a%3Ab.h", "uriBaseId": "%SRCROOT%"})
        );
        assert_eq!(
            artifact_location(Path::new("/src/linux-other/x.S"), &roots),
            json!({"uri": "file:///src/linux-other/x.S"})
        );
        assert_eq!(
            artifact_location(Path::new("/src/linux/../x.S"), &roots),
            json!({"uri": "file:///src/x.S"})
        );
        assert_eq!(
            artifact_location(Path::new("/src/linux/x.S"), &[]),
            json!({"uri": "file:///src/linux/x.S"})
        );
    }

    #[test]
    fn sarif_places_results_without_source_on_the_object_bytes() {
        let loc = Location {
            section: 1,
            section_name: ".text".into(),
            offset: 4,
            display: "f+0x4".into(),
        };
        let with_loc = Finding::new(FindingKind::StackStateMismatch, Some(loc), "m");
        let without = Finding::new(FindingKind::FallsThrough, None, "f() falls through");
        let src = FindingSources {
            primary: Some(SourcePos {
                path: "/src/a.S".into(),
                line: 7,
                column: 0,
            }),
            related: Vec::new(),
            inline_frames: Vec::new(),
        };
        let opts = SarifOptions {
            roots: vec!["/src".into()],
            docs_base: Some("file:///d".into()),
        };
        let obj = |sources: Vec<FindingSources>| SarifObject {
            path: "/build/a.o".into(),
            findings: vec![with_loc.clone(), without.clone()],
            sources,
            regions: vec![
                ByteRegion {
                    offset: 68,
                    length: 2,
                },
                ByteRegion {
                    offset: 0,
                    length: 900,
                },
            ],
        };
        let log = sarif_with(&[obj(vec![src.clone()]), obj(Vec::new())], &opts);
        assert_eq!(log["runs"].as_array().map(Vec::len), Some(1));
        let run = &log["runs"][0];
        assert_eq!(
            run["originalUriBaseIds"]["%SRCROOT%"]["uri"],
            "file:///src/"
        );
        assert_eq!(
            run["tool"]["driver"]["rules"][1]["helpUri"],
            "file:///d/stack-state-mismatch.md"
        );
        let r = &run["results"];
        // On its source line, the object as the analysis target.
        assert_eq!(
            r[0]["locations"][0]["physicalLocation"],
            json!({"artifactLocation": {"uri": "a.S", "uriBaseId": "%SRCROOT%"}, "region": {"startLine": 7}})
        );
        assert_eq!(r[0]["analysisTarget"]["uri"], "file:///build/a.o");
        assert_eq!(r[0]["locations"][0]["logicalLocations"][0]["name"], "f+0x4");
        // No source line: the object's bytes, no separate analysis target.
        assert_eq!(
            r[1]["locations"][0]["physicalLocation"],
            json!({"artifactLocation": {"uri": "file:///build/a.o"}, "region": {"byteOffset": 0, "byteLength": 900}})
        );
        assert!(r[1].get("analysisTarget").is_none());
        assert_eq!(
            r[2]["locations"][0]["physicalLocation"]["region"],
            json!({"byteOffset": 68, "byteLength": 2})
        );
        assert_eq!(r[2]["properties"], json!({"section": ".text", "offset": 4}));
    }
}
