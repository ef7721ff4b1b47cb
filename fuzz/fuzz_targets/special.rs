//! ELF reading and special-section parsing on arbitrary bytes: `Object::parse`, `.altinstructions` (detected and
//! forced strides, both eras), `__jump_table`, `__ex_table`, `.discard.unwind_hints`, and the existing ORC table.

#![no_main]

use altcfi_analysis::object::Object;
use altcfi_analysis::{orc, special, Era};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(obj) = Object::parse(data) else {
        return;
    };
    let _ = special::era_from_layout(&obj);
    for era in [Era::V6_12, Era::V6_1] {
        for size in [None, Some(era.alt_entry_size())] {
            for uaccess in [false, true] {
                let _ = special::read_special_alts(&obj, era, size, uaccess);
            }
        }
        let _ = orc::read_existing(&obj, era);
    }
    let _ = special::read_unwind_hints(&obj);
    // Every per-section query the later stages make.
    for sec in 0..obj.sections.len().min(64) + 1 {
        let _ = obj.relocs(sec);
        let _ = obj.relocs_in(sec, 0..u64::MAX);
        let _ = obj.reloc_at(sec, 0);
        let _ = obj.reloc_index_at(sec, 4);
        let _ = obj.symbol_containing(sec, 0, true);
        for r in obj.relocs(sec).iter().take(256) {
            let _ = obj.reloc_target(r);
        }
    }
});
