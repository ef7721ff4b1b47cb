//! Object stage: ELF bytes → sections, symbols and RELA relocations.
//!
//! Owns the reading of the ELF container and nothing else: it does not decode instructions and knows nothing of CFI.
//! Every offset and index read from the file is checked; a bad one is an [`ObjectError`] naming what was wrong.
//! Relocations are indexed by the section they apply to and sorted by offset, so look-ups by (section, offset) are
//! binary searches.

use object::elf;
use object::read::elf::{FileHeader, Rela, SectionHeader, Sym};
use object::LittleEndian as LE;
use std::ops::Range;

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The bytes are not a 64-bit little-endian ELF file.
    #[error("not a 64-bit little-endian ELF object: {0}")]
    NotElf(String),
    /// The ELF file is for another machine.
    #[error("not an x86-64 object (ELF machine {0})")]
    WrongMachine(u16),
    /// A header, table or section lies outside the file or is malformed.
    #[error("malformed ELF: {0}")]
    Malformed(String),
}

impl From<object::read::Error> for ObjectError {
    fn from(e: object::read::Error) -> Self {
        ObjectError::Malformed(e.to_string())
    }
}

/// Kind of ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ElfKind {
    /// `ET_REL`: a `.o` file, every section at address 0.
    Relocatable,
    /// `ET_EXEC` or `ET_DYN`: linked, sections at their addresses.
    Linked,
}

/// One ELF section.
#[derive(Debug, Clone)]
pub struct Section<'data> {
    /// ELF section index.
    pub index: usize,
    /// Section name (`.text`, `.altinstr_replacement`, …).
    pub name: String,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`.
    pub addr: u64,
    /// `sh_size` (for `SHT_NOBITS` the data is empty but the size is kept).
    pub size: u64,
    /// `sh_info` (the target section of a relocation section).
    pub info: u32,
    /// Contents; empty for `SHT_NOBITS`.
    pub data: &'data [u8],
}

impl Section<'_> {
    /// `SHF_EXECINSTR` is set.
    pub fn is_exec(&self) -> bool {
        self.flags & u64::from(elf::SHF_EXECINSTR) != 0
    }
    /// `SHF_ALLOC` is set.
    pub fn is_alloc(&self) -> bool {
        self.flags & u64::from(elf::SHF_ALLOC) != 0
    }
}

/// Symbol type, as far as the analysis cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SymKind {
    /// `STT_NOTYPE` (asm labels, `SYM_CODE_START`).
    NoType,
    /// `STT_FUNC`.
    Func,
    /// `STT_OBJECT`.
    Object,
    /// `STT_SECTION`.
    Section,
    /// `STT_FILE`.
    File,
    /// Anything else.
    Other,
}

/// Symbol binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SymBind {
    /// `STB_LOCAL`.
    Local,
    /// `STB_GLOBAL`.
    Global,
    /// `STB_WEAK`.
    Weak,
}

/// One ELF symbol.
#[derive(Debug, Clone)]
pub struct Symbol {
    /// Index in `.symtab`.
    pub index: usize,
    /// Name; section symbols get their section's name.
    pub name: String,
    /// Type.
    pub kind: SymKind,
    /// Binding.
    pub bind: SymBind,
    /// Defining section, `None` for undefined, absolute and common symbols.
    pub section: Option<usize>,
    /// `st_value` (offset in the section for `.o` files).
    pub value: u64,
    /// `st_size`.
    pub size: u64,
}

/// One RELA relocation, stored with the section it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloc {
    /// Offset in the target section.
    pub offset: u64,
    /// `R_X86_64_*` type.
    pub r_type: u32,
    /// Index of the referenced symbol.
    pub symbol: usize,
    /// Addend.
    pub addend: i64,
}

/// A parsed ELF object: the input of every later stage.
#[derive(Debug)]
pub struct Object<'data> {
    /// The whole file.
    pub data: &'data [u8],
    /// Relocatable or linked.
    pub kind: ElfKind,
    /// Sections, indexed by ELF section index (index 0 is the null section).
    pub sections: Vec<Section<'data>>,
    /// Symbols, indexed by `.symtab` index (index 0 is the null symbol).
    pub symbols: Vec<Symbol>,
    /// Relocations per target section index, sorted by offset (stable: file order among equal offsets).
    relocs: Vec<Vec<Reloc>>,
    /// Symbols per section, sorted by value then symbol index.
    section_symbols: Vec<Vec<usize>>,
    /// Per section, parallel to `section_symbols`: the running maximum of `value+size` over the non-section
    /// symbols up to each position (0 before the first), so containment queries are binary searches.
    end_max: Vec<Vec<u64>>,
    /// The same running maximum over `STT_FUNC` symbols only.
    func_end_max: Vec<Vec<u64>>,
}

impl<'data> Object<'data> {
    /// Parses an x86-64 ELF object.
    pub fn parse(data: &'data [u8]) -> Result<Self, ObjectError> {
        let header =
            elf::FileHeader64::<LE>::parse(data).map_err(|e| ObjectError::NotElf(e.to_string()))?;
        let endian = header
            .endian()
            .map_err(|e| ObjectError::NotElf(e.to_string()))?;
        let machine = header.e_machine(endian);
        if machine != elf::EM_X86_64 {
            return Err(ObjectError::WrongMachine(machine));
        }
        let kind = match header.e_type(endian) {
            elf::ET_REL => ElfKind::Relocatable,
            elf::ET_EXEC | elf::ET_DYN => ElfKind::Linked,
            t => return Err(ObjectError::Malformed(format!("unsupported ELF type {t}"))),
        };
        let table = header.sections(endian, data)?;
        let mut sections = Vec::with_capacity(table.len());
        for (index, sh) in table.iter().enumerate() {
            let name = table
                .section_name(endian, sh)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .map_err(|e| ObjectError::Malformed(format!("section {index}: name: {e}")))?;
            let sh_type = sh.sh_type(endian);
            let section_data = if sh_type == elf::SHT_NOBITS {
                &[][..]
            } else {
                sh.data(endian, data).map_err(|_| {
                    ObjectError::Malformed(format!(
                        "section {name} (index {index}) lies outside the file"
                    ))
                })?
            };
            sections.push(Section {
                index,
                name,
                sh_type,
                flags: sh.sh_flags(endian),
                addr: sh.sh_addr(endian),
                size: sh.sh_size(endian),
                info: sh.sh_info(endian),
                data: section_data,
            });
        }

        let symtab = table.symbols(endian, data, elf::SHT_SYMTAB)?;
        let mut symbols = Vec::with_capacity(symtab.len());
        for (index, sym) in symtab.iter().enumerate() {
            let kind = match sym.st_type() {
                elf::STT_NOTYPE => SymKind::NoType,
                elf::STT_FUNC => SymKind::Func,
                elf::STT_OBJECT => SymKind::Object,
                elf::STT_SECTION => SymKind::Section,
                elf::STT_FILE => SymKind::File,
                _ => SymKind::Other,
            };
            let bind = match sym.st_bind() {
                elf::STB_GLOBAL => SymBind::Global,
                elf::STB_WEAK => SymBind::Weak,
                _ => SymBind::Local,
            };
            let section = symtab
                .symbol_section(endian, sym, object::SymbolIndex(index))
                .map_err(|e| ObjectError::Malformed(format!("symbol {index}: {e}")))?
                .map(|s| s.0)
                .filter(|&s| s < sections.len());
            let mut name = symtab
                .symbol_name(endian, sym)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .map_err(|e| ObjectError::Malformed(format!("symbol {index}: name: {e}")))?;
            if kind == SymKind::Section && name.is_empty() {
                if let Some(s) = section {
                    name = sections[s].name.clone();
                }
            }
            symbols.push(Symbol {
                index,
                name,
                kind,
                bind,
                section,
                value: sym.st_value(endian),
                size: sym.st_size(endian),
            });
        }

        let mut relocs: Vec<Vec<Reloc>> = vec![Vec::new(); sections.len()];
        for (index, sh) in table.iter().enumerate() {
            if sh.sh_type(endian) != elf::SHT_RELA {
                continue;
            }
            let target = sh.sh_info(endian) as usize;
            if target == 0 || target >= sections.len() {
                continue;
            }
            // DWARF's relocations (most of a `-g` object's) are not the analysis's business: the lines stage
            // relocates DWARF itself. `.debug_frame`'s are kept for the unwind-table comparison.
            let name = &sections[target].name;
            if name.starts_with(".debug_") && name != ".debug_frame" {
                continue;
            }
            let Some((rela, _link)) = sh.rela(endian, data).map_err(|_| {
                ObjectError::Malformed(format!(
                    "relocation section {} is malformed",
                    sections[index].name
                ))
            })?
            else {
                continue;
            };
            relocs[target].reserve_exact(rela.len());
            for r in rela {
                let symbol = r.r_sym(endian, false) as usize;
                if symbol >= symbols.len() {
                    return Err(ObjectError::Malformed(format!(
                        "relocation in {} names symbol {symbol}, but .symtab has {}",
                        sections[index].name,
                        symbols.len()
                    )));
                }
                relocs[target].push(Reloc {
                    offset: r.r_offset(endian),
                    r_type: r.r_type(endian, false),
                    symbol,
                    addend: r.r_addend(endian),
                });
            }
        }
        for list in &mut relocs {
            list.sort_by_key(|r| r.offset);
        }

        let mut section_symbols: Vec<Vec<usize>> = vec![Vec::new(); sections.len()];
        for s in &symbols {
            if let Some(sec) = s.section {
                section_symbols[sec].push(s.index);
            }
        }
        for list in &mut section_symbols {
            list.sort_by_key(|&i| (symbols[i].value, i));
        }
        let running_end = |keep: &dyn Fn(&Symbol) -> bool| -> Vec<Vec<u64>> {
            section_symbols
                .iter()
                .map(|list| {
                    let mut max = 0u64;
                    list.iter()
                        .map(|&i| {
                            let s = &symbols[i];
                            if keep(s) {
                                max = max.max(s.value.saturating_add(s.size));
                            }
                            max
                        })
                        .collect()
                })
                .collect()
        };
        let end_max = running_end(&|s| s.kind != SymKind::Section);
        let func_end_max = running_end(&|s| s.kind == SymKind::Func);

        Ok(Object {
            data,
            kind,
            sections,
            symbols,
            relocs,
            section_symbols,
            end_max,
            func_end_max,
        })
    }

    /// The section with this name, first match.
    pub fn section_by_name(&self, name: &str) -> Option<&Section<'data>> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// All relocations applying to `section`, sorted by offset.
    pub fn relocs(&self, section: usize) -> &[Reloc] {
        self.relocs.get(section).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The relocations applying to `section` whose offset lies in `range`, in offset order.
    pub fn relocs_in(&self, section: usize, range: Range<u64>) -> &[Reloc] {
        let all = self.relocs(section);
        let lo = all.partition_point(|r| r.offset < range.start);
        let hi = all.partition_point(|r| r.offset < range.end);
        &all[lo..hi.max(lo)]
    }

    /// The first relocation at exactly (`section`, `offset`).
    pub fn reloc_at(&self, section: usize, offset: u64) -> Option<&Reloc> {
        self.relocs_in(section, offset..offset + 1).first()
    }

    /// Index in [`Self::relocs`] of the first relocation at (`section`, `offset`).
    pub fn reloc_index_at(&self, section: usize, offset: u64) -> Option<usize> {
        let all = self.relocs(section);
        let i = all.partition_point(|r| r.offset < offset);
        (all.get(i)?.offset == offset).then_some(i)
    }

    /// Symbols defined in `section`, sorted by value then `.symtab` index.
    pub fn symbols_in(&self, section: usize) -> &[usize] {
        self.section_symbols
            .get(section)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The target of a relocation as (section, offset): the symbol's section and value plus the addend.
    pub fn reloc_target(&self, r: &Reloc) -> Option<(usize, i64)> {
        let sym = self.symbols.get(r.symbol)?;
        let sec = sym.section?;
        Some((sec, (sym.value as i64).wrapping_add(r.addend)))
    }

    /// The first non-section symbol whose `[value, value+size)` contains `offset`; functions win when `prefer_func`.
    ///
    /// "First" is in [`Self::symbols_in`] order. Two binary searches: the symbols starting at or before `offset`
    /// form a prefix of that order, and within it the first symbol containing `offset` is where the running maximum
    /// of symbol ends first exceeds `offset`.
    pub fn symbol_containing(
        &self,
        section: usize,
        offset: u64,
        prefer_func: bool,
    ) -> Option<&Symbol> {
        let list = self.symbols_in(section);
        let starts = list.partition_point(|&i| self.symbols[i].value <= offset);
        let first_reaching = |ends: Option<&Vec<u64>>| -> Option<&Symbol> {
            let ends = &ends?[..starts];
            let k = ends.partition_point(|&e| e <= offset);
            (k < starts).then(|| &self.symbols[list[k]])
        };
        if prefer_func {
            if let Some(f) = first_reaching(self.func_end_max.get(section)) {
                return Some(f);
            }
        }
        first_reaching(self.end_max.get(section))
    }
}

/// Relocation types the analysis names.
pub mod reloc_types {
    /// `R_X86_64_64`.
    pub const R_64: u32 = object::elf::R_X86_64_64;
    /// `R_X86_64_PC32`.
    pub const PC32: u32 = object::elf::R_X86_64_PC32;
    /// `R_X86_64_PLT32`.
    pub const PLT32: u32 = object::elf::R_X86_64_PLT32;

    /// Relocation types whose computation involves the place (P), as objtool's `arch_pc_relative_reloc`.
    pub fn is_pc_relative(r_type: u32) -> bool {
        use object::elf::*;
        matches!(
            r_type,
            R_X86_64_PC8
                | R_X86_64_PC16
                | R_X86_64_PC32
                | R_X86_64_PC64
                | R_X86_64_PLT32
                | R_X86_64_GOTPC32
                | R_X86_64_GOTPCREL
        )
    }
}
