//! DWARF source lines on arbitrary bytes: `LineMap::new`, then `source_files`, `locate` at offsets spread over every
//! section (and outside them), and `code_for_line` for the files DWARF names (and some it does not).

#![no_main]

use altcfi_analysis::lines::LineMap;
use altcfi_analysis::object::Object;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(map) = LineMap::new(data) else {
        return;
    };
    let _ = map.has_debug_info();
    let files = map.source_files().unwrap_or_default();
    for sec in 0..8 {
        for off in [0u64, 1, 0x23, u64::MAX] {
            let _ = map.locate(sec, off);
        }
    }
    if let Ok(obj) = Object::parse(data) {
        for s in obj.sections.iter().filter(|s| s.is_alloc()).take(16) {
            let step = (s.size / 16).max(1);
            for i in 0..16u64 {
                let _ = map.locate(s.index, i.saturating_mul(step));
            }
        }
    }
    let mut queries: Vec<&Path> = files.iter().take(8).map(|p| p.as_path()).collect();
    queries.extend([Path::new("a.c"), Path::new("../x/./y.h"), Path::new("/")]);
    for file in queries {
        for line in [0, 1, 2, 3, 7, 12, 40, u32::MAX] {
            let _ = map.code_for_line(file, line);
        }
    }
});
