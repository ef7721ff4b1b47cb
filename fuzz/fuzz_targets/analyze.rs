//! The whole pipeline on arbitrary bytes: `analyze` (object, decode, flow, alternatives, walk, ORC) and the reports
//! built from its result, as `altcfi check` and `altcfi orc` do. Must never panic, hang or run out of memory.

#![no_main]

use altcfi_analysis::features::FeatureNames;
use altcfi_analysis::object::Object;
use altcfi_analysis::orc::{self, DumpFormat};
use altcfi_analysis::{analyze, report, Era, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Options come from the length so that seeds stay valid ELF files byte for byte.
    let era = match data.len() % 3 {
        0 => None,
        1 => Some(Era::V6_1),
        _ => Some(Era::V6_12),
    };
    let opts = Options {
        era,
        frame_pointer: (data.len() / 3) % 2 == 1,
        all_conflicts: true,
        // Half of the inputs take the two-thread decode and walk (and their merge or fallback).
        parallel_min_code: if data.len() % 2 == 0 { 0 } else { u64::MAX },
        // A third with kbuild's objtool arguments (prefix CFI, SMAP via the replacement, the UACCESS walk, the
        // retpoline/rethunk/SLS passes, jump-label NOPs).
        objtool: if data.len() % 3 == 0 {
            altcfi_analysis::ObjtoolArgs::parse([
                "--hacks=jump_label",
                "--hacks=noinstr",
                "--orc",
                "--retpoline",
                "--rethunk",
                "--sls",
                "--uaccess",
                "--prefix=16",
                "--ibt",
            ])
            .unwrap_or_default()
        } else {
            altcfi_analysis::ObjtoolArgs::default()
        },
    };
    let names = FeatureNames::default();
    let Ok(a) = analyze(data, opts, &names) else {
        return;
    };
    let _ = report::text("fuzz.o", &a.findings, &[]);
    let _ = report::json_file("fuzz.o", Some(&a), None, &[]);
    let _ = report::sarif(&[("fuzz.o".into(), a.findings.clone(), Vec::new())]);
    if let Ok(obj) = Object::parse(data) {
        for rows in [a.orc.as_deref(), a.existing_orc.as_deref()]
            .into_iter()
            .flatten()
        {
            for r in rows.iter().take(4096) {
                let _ = orc::dump_line(&obj, r, DumpFormat::Modern);
                let _ = orc::dump_line(&obj, r, DumpFormat::Legacy);
            }
        }
    }
    for id in a.insns.iter().filter_map(|i| i.cfi).take(4096) {
        let _ = a.state(id).to_string();
    }
});
