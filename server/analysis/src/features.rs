//! CPU feature names: `X86_FEATURE_*` numbers to names, from a built-in 6.12 table or a workspace's own
//! `arch/x86/include/asm/cpufeatures.h`. Parsing only; the caller reads the header file.

#[path = "features_612.rs"]
mod table;

use std::collections::HashMap;

/// A feature-number → name table.
#[derive(Debug, Clone, Default)]
pub struct FeatureNames {
    /// A header's names; `None` for the built-in table, which is searched in place (names are only looked up for
    /// findings, so a clean object never pays for building a map).
    names: Option<HashMap<u16, String>>,
}

impl FeatureNames {
    /// Parses the text of a `cpufeatures.h`: `#define X86_FEATURE_X (W*32+B)` and `X86_BUG(n)` lines. Lines it
    /// does not understand are skipped; a header without any feature yields `None`.
    pub fn from_header(text: &str) -> Option<Self> {
        let mut ncapints = None;
        let mut raw: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            if it.next() != Some("#define") {
                continue;
            }
            let (Some(name), rest) = (it.next(), it.collect::<Vec<_>>().join(" ")) else {
                continue;
            };
            let value = rest.split("/*").next().unwrap_or("").trim().to_string();
            if name == "NCAPINTS" {
                ncapints = value.parse::<u16>().ok();
            } else if name.starts_with("X86_FEATURE_") || name.starts_with("X86_BUG_") {
                raw.push((name.to_string(), value));
            }
        }
        let ncap = ncapints.unwrap_or(22);
        let mut names = HashMap::new();
        for (name, value) in raw {
            let v: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            let num =
                if let Some(inner) = v.strip_prefix("X86_BUG(").and_then(|s| s.strip_suffix(')')) {
                    eval_word_bit(inner).map(|b| ncap * 32 + b)
                } else {
                    eval_word_bit(v.trim_start_matches('(').trim_end_matches(')'))
                };
            if let Some(n) = num {
                names.entry(n).or_insert(name);
            }
        }
        (!names.is_empty()).then_some(FeatureNames { names: Some(names) })
    }

    /// The name of a feature number, `X86_FEATURE_…`, or the number in the kernel's `word*32+bit` form. The
    /// built-in table is the Linux 6.12 one; where it lists a number twice, the first name wins.
    pub fn name(&self, n: u16) -> String {
        let found = match &self.names {
            Some(names) => names.get(&n).map(String::as_str),
            None => table::FEATURES_612
                .iter()
                .find(|&&(m, _)| m == n)
                .map(|&(_, name)| name),
        };
        found.map_or_else(
            || format!("feature {}*32+{}", n / 32, n % 32),
            str::to_owned,
        )
    }
}

/// Evaluates `W*32+B` or a plain number.
fn eval_word_bit(s: &str) -> Option<u16> {
    if let Some((w, b)) = s.split_once('+') {
        let w = w.strip_suffix("*32")?.parse::<u16>().ok()?;
        return Some(w * 32 + b.parse::<u16>().ok()?);
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_and_header() {
        let t = FeatureNames::default();
        assert_eq!(t.name(8 * 32 + 16), "X86_FEATURE_XENPV");
        assert_eq!(t.name(4 * 32 + 23), "X86_FEATURE_POPCNT");
        let h = "#define NCAPINTS 22\n#define X86_FEATURE_FOO ( 3*32+ 5) /* foo */\n#define X86_BUG_BAR X86_BUG(2)\n";
        let t = FeatureNames::from_header(h).expect("parses");
        assert_eq!(t.name(101), "X86_FEATURE_FOO");
        assert_eq!(t.name(22 * 32 + 2), "X86_BUG_BAR");
        assert_eq!(t.name(7), "feature 0*32+7");
        assert!(FeatureNames::from_header("int x;").is_none());
    }
}
