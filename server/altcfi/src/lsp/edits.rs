//! Moving diagnostics with the edits of a document while their new ones are being computed, so that a squiggle
//! never sits on a line it does not belong to.
//!
//! The server takes whole-document changes (`TextDocumentSyncKind::FULL`), so an edit is found by comparing the old
//! and new text: the lines before the first changed line stay, the lines after the last changed one move by the
//! difference in line count, and a diagnostic inside the changed lines stays on its line if the change kept the
//! line count, else goes to the first changed line.
//!
//! *Invariant:* pure functions of texts and protocol values; no state, no I/O.

use lsp_types::{Diagnostic, DiagnosticTag, Url};

/// How the lines of one text moved in another: the unchanged prefix and suffix (in lines) and the line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineShift {
    prefix: u32,
    old_end: u32,
    new_end: u32,
    delta: i64,
}

impl LineShift {
    /// Compares `old` and `new` line by line.
    pub fn between(old: &str, new: &str) -> LineShift {
        let a: Vec<&str> = old.split('\n').collect();
        let b: Vec<&str> = new.split('\n').collect();
        let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let max_suffix = a.len().min(b.len()) - prefix;
        let suffix = a
            .iter()
            .rev()
            .zip(b.iter().rev())
            .take(max_suffix)
            .take_while(|(x, y)| x == y)
            .count();
        LineShift {
            prefix: prefix as u32,
            old_end: (a.len() - suffix) as u32,
            new_end: (b.len() - suffix) as u32,
            delta: b.len() as i64 - a.len() as i64,
        }
    }

    /// Whether nothing moved (every line keeps its number).
    pub fn is_identity(&self) -> bool {
        self.delta == 0
    }

    /// Where 0-based line `line` of the old text is in the new one.
    pub fn line(&self, line: u32) -> u32 {
        if line < self.prefix {
            line
        } else if line >= self.old_end {
            (line as i64 + self.delta).max(0) as u32
        } else if self.delta == 0 {
            line
        } else {
            self.prefix
                .min(self.new_end.saturating_sub(1).max(self.prefix))
        }
    }

    /// A diagnostic of the old text moved to the new one (its related places in the same document too).
    pub fn diagnostic(&self, d: &Diagnostic, doc: &Url) -> Diagnostic {
        let mut d = d.clone();
        d.range.start.line = self.line(d.range.start.line);
        d.range.end.line = self.line(d.range.end.line).max(d.range.start.line);
        if let Some(related) = &mut d.related_information {
            for r in related.iter_mut().filter(|r| &r.location.uri == doc) {
                r.location.range.start.line = self.line(r.location.range.start.line);
                r.location.range.end.line = self
                    .line(r.location.range.end.line)
                    .max(r.location.range.start.line);
            }
        }
        d
    }
}

/// Prefix of the message of a diagnostic kept from before a compile that failed.
pub const STALE: &str = "(stale) ";

/// A diagnostic marked as out of date: message prefixed with [`STALE`], tagged unnecessary (editors grey it out).
pub fn mark_stale(d: &Diagnostic) -> Diagnostic {
    let mut d = d.clone();
    if !d.message.starts_with(STALE) {
        d.message = format!("{STALE}{}", d.message);
    }
    let tags = d.tags.get_or_insert_with(Vec::new);
    if !tags.contains(&DiagnosticTag::UNNECESSARY) {
        tags.push(DiagnosticTag::UNNECESSARY);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsp_types::{Position, Range};

    fn diag(line: u32) -> Diagnostic {
        Diagnostic {
            range: Range::new(Position::new(line, 1), Position::new(line, 5)),
            message: "m".into(),
            ..Default::default()
        }
    }

    #[test]
    fn lines_after_an_insertion_move_down_and_before_it_stay() {
        let old = "a\nb\nc\nd\n";
        let new = "a\nb\nX\nY\nc\nd\n";
        let s = LineShift::between(old, new);
        assert_eq!((s.line(0), s.line(1), s.line(2), s.line(3)), (0, 1, 4, 5));
        let uri = Url::parse("file:///x.S").expect("uri");
        let moved = s.diagnostic(&diag(3), &uri);
        assert_eq!((moved.range.start.line, moved.range.end.line), (5, 5));
    }

    #[test]
    fn deleted_lines_send_their_diagnostics_to_the_edit_and_later_ones_up() {
        let s = LineShift::between("a\nb\nc\nd\ne", "a\nd\ne");
        assert_eq!(
            (s.line(0), s.line(1), s.line(2), s.line(3), s.line(4)),
            (0, 1, 1, 1, 2)
        );
    }

    #[test]
    fn typing_inside_a_line_moves_nothing() {
        let s = LineShift::between("a\nbb\nc", "a\nbxb\nc");
        assert!(s.is_identity());
        assert_eq!((s.line(0), s.line(1), s.line(2)), (0, 1, 2));
    }

    #[test]
    fn stale_marking_is_idempotent() {
        let d = mark_stale(&mark_stale(&diag(0)));
        assert_eq!(d.message, "(stale) m");
        assert_eq!(d.tags, Some(vec![DiagnosticTag::UNNECESSARY]));
    }
}
