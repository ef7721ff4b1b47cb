//! Source lines through DWARF: machine locations `(ELF section index, offset)` ↔ source locations
//! `(file, line, column)`, with the chain of inlined functions.
//!
//! This module owns everything altcfi knows about DWARF line tables and inlining: relocating the debug
//! sections of a relocatable object, asking [`addr2line`] for the frames at an instruction, and the reverse
//! index from a source line to the code it produced (line-table rows plus the call sites of inlined
//! subroutines). It also owns the fallback from DWARF to the ELF symbol table for naming the function of
//! assembler code that has no `DW_TAG_subprogram`.
//!
//! Relocatable objects (`ET_REL`) put every allocatable section at address 0, so a plain DWARF reader sees all
//! `.text.*` sections on top of each other and string offsets of 0. [`LineMap`] gives each allocatable section
//! (`SHF_ALLOC`) its own synthetic base address, applies the `.rela.debug_*` relocations through a
//! [`gimli::Relocate`] implementation using those bases, and translates `(section, offset)` to and from the
//! synthetic addresses. Linked objects (`ET_EXEC`, `ET_DYN`) use their real section addresses and are read
//! without relocations.
//!
//! Architecture invariant: this module takes bytes and returns plain data. It never does I/O (paths in its
//! results are names read from DWARF, never opened), never panics on malformed input (bad input gives a
//! [`LinesError`] or an empty answer), and knows nothing about LSP, editors or the command line.

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use gimli::{EndianSlice, Reader as _, RelocateReader, RunTimeEndian};
use object::elf;
use object::read::elf::{FileHeader, Rel, Rela, SectionHeader, SectionTable, Sym, SymbolTable};
use object::{Endianness, SectionIndex, SymbolIndex};
use serde::Serialize;

/// Errors from reading an object's ELF structure or its DWARF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinesError {
    /// The bytes are not a readable ELF file (bad header, section table, symbol table, …).
    #[error("not a readable ELF object: {0}")]
    Elf(#[source] object::read::Error),
    /// The ELF file is valid but of a kind this module does not handle.
    #[error("unsupported object: {0}")]
    Unsupported(&'static str),
    /// A query named a section index that the object does not have.
    #[error("no section with index {section}")]
    NoSuchSection {
        /// The ELF section index that was asked for.
        section: usize,
    },
    /// A query named a section that is not loaded (no `SHF_ALLOC`), so it holds no code.
    #[error("section {name} (index {section}) is not allocatable, so it has no code addresses")]
    NotAllocated {
        /// The ELF section index.
        section: usize,
        /// The section's name.
        name: String,
    },
    /// A query offset lies outside its section.
    #[error("offset {offset:#x} is outside section {name} (index {section}, size {size:#x})")]
    OffsetOutOfRange {
        /// The ELF section index.
        section: usize,
        /// The section's name.
        name: String,
        /// The offset that was asked for.
        offset: u64,
        /// The section's size.
        size: u64,
    },
    /// A section's bytes lie outside the file.
    #[error("cannot read section {section}: {source}")]
    SectionData {
        /// The section's name.
        section: String,
        /// The underlying ELF error.
        #[source]
        source: object::read::Error,
    },
    /// A debug section is compressed (`SHF_COMPRESSED`), which this build cannot read.
    #[error("debug section {section} is compressed; compressed DWARF is not supported")]
    Compressed {
        /// The section's name.
        section: String,
    },
    /// A relocation for a debug section could not be read or resolved.
    #[error("bad relocation for {section} at offset {offset:#x}: {reason}")]
    Relocation {
        /// The name of the section the relocation applies to.
        section: String,
        /// The offset in that section the relocation applies to (0 if the relocation table itself is bad).
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The DWARF could not be parsed.
    #[error("malformed DWARF ({context}): {source}")]
    Dwarf {
        /// Where in the DWARF the error occurred.
        context: String,
        /// The underlying gimli error.
        #[source]
        source: gimli::Error,
    },
}

/// One frame of the source location of an instruction.
///
/// [`LineMap::locate`] returns frames innermost first: the first frame is the code the instruction came
/// from (possibly inside an inlined function), each next frame is the function that one was inlined into,
/// located at the call site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceFrame {
    /// Source file, joined as addr2line does (`comp_dir` + include directory + file name); `None` if DWARF
    /// names no file.
    pub file: Option<PathBuf>,
    /// 1-based line; `None` if unknown (DWARF line 0).
    pub line: Option<u32>,
    /// 1-based column; `None` if unknown or the left edge (DWARF column 0).
    pub column: Option<u32>,
    /// Name of the function this frame is in: from DWARF, or for the outermost frame of code without a
    /// `DW_TAG_subprogram` (assembler) the ELF symbol at or before the instruction, as binutils does.
    pub function: Option<String>,
    /// For an inlined frame, the file of the call site in the next outer frame (equal to that frame's
    /// `file`); `None` for the outermost frame.
    pub call_file: Option<PathBuf>,
    /// For an inlined frame, the line of the call site in the next outer frame; `None` for the outermost.
    pub call_line: Option<u32>,
    /// For an inlined frame, the column of the call site in the next outer frame; `None` if unknown.
    pub call_column: Option<u32>,
}

/// A range of machine code, `[start, end)` in ELF section `section`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CodeRange {
    /// ELF section index.
    pub section: usize,
    /// First byte offset in the section.
    pub start: u64,
    /// One past the last byte offset in the section.
    pub end: u64,
    /// `true` if the range is the body of an inlined function called from the line (from
    /// `DW_AT_call_file`/`DW_AT_call_line`), `false` if line-table rows name the line directly.
    pub inlined: bool,
}

/// The reader every DWARF section is read through: the section bytes plus its relocations.
type Reader<'data> = RelocateReader<EndianSlice<'data, RunTimeEndian>, SectionRelocs>;

/// Source-line queries over one ELF object.
///
/// Construction only parses the ELF headers and lays out the sections; the DWARF is relocated and parsed on
/// the first query and cached, and the line → code index is built on the first [`LineMap::code_for_line`].
/// The map is `Send` but not `Sync` (the caches fill in behind `&self`).
pub struct LineMap<'data> {
    data: &'data [u8],
    endian: Endianness,
    sections: SectionTable<'data, elf::FileHeader64<Endianness>>,
    symbols: SymbolTable<'data, elf::FileHeader64<Endianness>>,
    relocatable: bool,
    /// Address of each section, by ELF section index; `None` for non-allocatable sections.
    placed: Vec<Option<Placed>>,
    /// Placed sections that can hold code, sorted by start address, for address → section.
    by_address: Vec<(u64, u64, usize)>,
    has_debug_info: bool,
    loaded: OnceCell<Result<Loaded<'data>, LinesError>>,
    file_index: OnceCell<Result<FileIndex, LinesError>>,
    source_files: OnceCell<Result<Vec<PathBuf>, LinesError>>,
    function_symbols: OnceCell<HashMap<usize, Vec<FunctionSymbol<'data>>>>,
}

impl std::fmt::Debug for LineMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineMap")
            .field("len", &self.data.len())
            .field("relocatable", &self.relocatable)
            .field("has_debug_info", &self.has_debug_info)
            .finish_non_exhaustive()
    }
}

/// Where an allocatable section lives in the (real or synthetic) address space.
#[derive(Debug, Clone, Copy)]
struct Placed {
    base: u64,
    size: u64,
}

/// The relocated DWARF and the addr2line context over it.
struct Loaded<'data> {
    dwarf: Arc<gimli::Dwarf<Reader<'data>>>,
    context: addr2line::Context<Reader<'data>>,
}

/// An ELF symbol that may name a function, for the symbol-table fallback.
#[derive(Debug, Clone, Copy)]
struct FunctionSymbol<'data> {
    offset: u64,
    size: u64,
    name: &'data str,
}

/// Gap left between synthetic section addresses, so no two sections touch.
const SECTION_GAP: u64 = 0x10;
/// Synthetic address of the first allocatable section in a relocatable object (non-zero, so no range starts
/// at 0, which DWARF 4 range lists treat as an end marker).
const FIRST_BASE: u64 = 0x1_0000;

impl<'data> LineMap<'data> {
    /// Parses the ELF headers of `data` (a 64-bit little-endian x86-64 object, usually `ET_REL`) and lays out
    /// its sections. Cheap: DWARF is not read until the first query.
    pub fn new(data: &'data [u8]) -> Result<Self, LinesError> {
        let header = elf::FileHeader64::<Endianness>::parse(data).map_err(LinesError::Elf)?;
        let endian = header.endian().map_err(LinesError::Elf)?;
        if endian != Endianness::Little {
            return Err(LinesError::Unsupported("big-endian ELF"));
        }
        let e_type = header.e_type(endian);
        let relocatable = match e_type {
            elf::ET_REL => true,
            elf::ET_EXEC | elf::ET_DYN => false,
            _ => {
                return Err(LinesError::Unsupported(
                    "ELF type is not ET_REL, ET_EXEC or ET_DYN",
                ))
            }
        };
        if relocatable && header.e_machine(endian) != elf::EM_X86_64 {
            return Err(LinesError::Unsupported(
                "relocatable object for a machine other than x86-64",
            ));
        }
        let sections = header.sections(endian, data).map_err(LinesError::Elf)?;
        let symbols = sections
            .symbols(endian, data, elf::SHT_SYMTAB)
            .map_err(LinesError::Elf)?;

        let mut placed = Vec::with_capacity(sections.len());
        let mut by_address = Vec::new();
        let mut cursor = FIRST_BASE;
        for (index, section) in sections.enumerate() {
            let flags = section.sh_flags(endian);
            if index.0 == 0 || flags & u64::from(elf::SHF_ALLOC) == 0 {
                placed.push(None);
                continue;
            }
            let size = section.sh_size(endian);
            let base = if relocatable {
                let base = align_up(cursor, 16).ok_or(LinesError::Unsupported(
                    "section sizes overflow the address space",
                ))?;
                cursor = base
                    .checked_add(size)
                    .and_then(|end| end.checked_add(SECTION_GAP))
                    .ok_or(LinesError::Unsupported(
                        "section sizes overflow the address space",
                    ))?;
                base
            } else {
                section.sh_addr(endian)
            };
            placed.push(Some(Placed { base, size }));
            let holds_code = section.sh_type(endian) != elf::SHT_NOBITS
                && flags & u64::from(elf::SHF_TLS) == 0
                && size != 0;
            if holds_code {
                if let Some(end) = base.checked_add(size) {
                    by_address.push((base, end, index.0));
                }
            }
        }
        by_address.sort_unstable();

        let has_debug_info = [".debug_info", ".debug_line"].iter().any(|name| {
            sections
                .section_by_name(endian, name.as_bytes())
                .is_some_and(|(_, s)| s.sh_type(endian) != elf::SHT_NOBITS && s.sh_size(endian) > 0)
        });

        Ok(LineMap {
            data,
            endian,
            sections,
            symbols,
            relocatable,
            placed,
            by_address,
            has_debug_info,
            loaded: OnceCell::new(),
            file_index: OnceCell::new(),
            source_files: OnceCell::new(),
            function_symbols: OnceCell::new(),
        })
    }

    /// Whether the object has DWARF line or debug information (a non-empty `.debug_info` or `.debug_line`).
    pub fn has_debug_info(&self) -> bool {
        self.has_debug_info
    }

    /// Source frames for the instruction at `offset` in ELF section `section`: innermost (inlined) first,
    /// each inlined frame with the call site in the next outer frame. Empty if DWARF has no line for it.
    pub fn locate(&self, section: usize, offset: u64) -> Result<Vec<SourceFrame>, LinesError> {
        let address = self.address_of(section, offset)?;
        if !self.has_debug_info {
            return Ok(Vec::new());
        }
        let loaded = self.loaded()?;
        let dwarf_error = |source| LinesError::Dwarf {
            context: format!("looking up {}+{offset:#x}", self.section_name(section)),
            source,
        };
        let mut iter = loaded
            .context
            .find_frames(address)
            .skip_all_loads()
            .map_err(dwarf_error)?;
        let mut frames: Vec<SourceFrame> = Vec::new();
        while let Some(frame) = iter.next().map_err(dwarf_error)? {
            let function = match frame.function {
                Some(name) => Some(name.raw_name().map_err(dwarf_error)?.into_owned()),
                None => None,
            };
            let (file, line, column) = match frame.location {
                Some(location) => (
                    location.file.map(PathBuf::from),
                    location.line.filter(|&l| l != 0),
                    location.column.filter(|&c| c != 0),
                ),
                None => (None, None, None),
            };
            frames.push(SourceFrame {
                file,
                line,
                column,
                function,
                call_file: None,
                call_line: None,
                call_column: None,
            });
        }
        // Each inlined frame's call site is where the next outer frame is.
        let call_sites: Vec<_> = frames
            .iter()
            .skip(1)
            .map(|outer| (outer.file.clone(), outer.line, outer.column))
            .collect();
        for (inner, (file, line, column)) in frames.iter_mut().zip(call_sites) {
            inner.call_file = file;
            inner.call_line = line;
            inner.call_column = column;
        }
        if let Some(outermost) = frames.last_mut() {
            if outermost.function.is_none() {
                outermost.function = self.symbol_function(section, offset).map(str::to_owned);
            }
        }
        Ok(frames)
    }

    /// Whether a line-table row starts inside `[start, end)` of section `section`, i.e. the assembler or compiler
    /// gave code there a line of its own; otherwise a lookup there only finds the row of earlier code in the
    /// section (gas emits no rows for `.skip` padding or `.byte` data). `false` without DWARF.
    pub fn has_row_in(&self, section: usize, start: u64, end: u64) -> Result<bool, LinesError> {
        if !self.has_debug_info || end <= start {
            return Ok(false);
        }
        let low = self.address_of(section, start)?;
        let high = low.saturating_add(end - start);
        let loaded = self.loaded()?;
        let rows =
            loaded
                .context
                .find_location_range(low, high)
                .map_err(|e| LinesError::Dwarf {
                    context: format!("line rows of {}+{start:#x}", self.section_name(section)),
                    source: e,
                })?;
        Ok(rows.into_iter().any(|(address, _, loc)| {
            (low..high).contains(&address) && loc.line.is_some_and(|l| l != 0)
        }))
    }

    /// Every code range whose instructions came from `file:line`: ranges of line-table rows for that line,
    /// and (with `inlined: true`) the bodies of inlined subroutines called from that line, so that a `.c` line
    /// calling an inlined header helper maps to the helper's instructions. Sorted by section and offset.
    ///
    /// `file` matches a DWARF path if the two are equal, if `file` is relative and the DWARF path ends with it
    /// component by component, or if the DWARF path is relative and `file` ends with it. `.` components are
    /// ignored and `..` is resolved lexically on both sides.
    pub fn code_for_line(&self, file: &Path, line: u32) -> Result<Vec<CodeRange>, LinesError> {
        if !self.has_debug_info || line == 0 {
            return Ok(Vec::new());
        }
        let query = normalize(file);
        if query.as_os_str().is_empty() {
            return Ok(Vec::new());
        }
        let index = self.file_index()?;
        let mut out = Vec::new();
        for indexed in &index.files {
            if !path_matches(&query, &indexed.normalized) {
                continue;
            }
            let first = indexed.spans.partition_point(|span| span.line < line);
            out.extend(
                indexed.spans[first..]
                    .iter()
                    .take_while(|span| span.line == line)
                    .map(|span| span.range),
            );
        }
        Ok(merge_ranges(out))
    }

    /// All source files named by the compile units (their primary file and every line-table file entry),
    /// joined with `comp_dir` and include directories like addr2line, sorted and without duplicates.
    pub fn source_files(&self) -> Result<Vec<PathBuf>, LinesError> {
        if !self.has_debug_info {
            return Ok(Vec::new());
        }
        self.source_files
            .get_or_init(|| self.collect_source_files())
            .clone()
    }

    /// Calls `f` on every compile unit; an error (unit header, unit, or from `f`) names the unit.
    fn for_each_unit(
        &self,
        mut f: impl FnMut(
            &gimli::Dwarf<Reader<'data>>,
            &gimli::Unit<Reader<'data>>,
        ) -> gimli::Result<()>,
    ) -> Result<(), LinesError> {
        let loaded = self.loaded()?;
        let dwarf = &*loaded.dwarf;
        let mut units = dwarf.units();
        loop {
            let header = match units.next() {
                Ok(Some(header)) => header,
                Ok(None) => return Ok(()),
                Err(source) => return Err(dwarf_error("reading .debug_info unit headers", source)),
            };
            let context = unit_context(&header);
            let unit = dwarf.unit(header).map_err(|e| dwarf_error(&context, e))?;
            f(dwarf, &unit).map_err(|e| dwarf_error(&context, e))?;
        }
    }

    fn collect_source_files(&self) -> Result<Vec<PathBuf>, LinesError> {
        let mut files = BTreeSet::new();
        self.for_each_unit(|dwarf, unit| {
            if let Some(name) = &unit.name {
                let name = name.to_string_lossy()?;
                let mut path = match &unit.comp_dir {
                    Some(dir) => dir.to_string_lossy()?.into_owned(),
                    None => String::new(),
                };
                path_push(&mut path, &name);
                files.insert(PathBuf::from(path));
            }
            if let Some(program) = &unit.line_program {
                for path in render_file_table(unit.unit_ref(dwarf), program.header())?
                    .into_iter()
                    .flatten()
                {
                    files.insert(PathBuf::from(path));
                }
            }
            Ok(())
        })?;
        Ok(files.into_iter().collect())
    }

    /// The address (real or synthetic) of `offset` in section `section`, after checking both.
    fn address_of(&self, section: usize, offset: u64) -> Result<u64, LinesError> {
        let slot = self
            .placed
            .get(section)
            .ok_or(LinesError::NoSuchSection { section })?;
        let placed = slot.ok_or_else(|| LinesError::NotAllocated {
            section,
            name: self.section_name(section),
        })?;
        match placed.base.checked_add(offset) {
            Some(address) if offset < placed.size => Ok(address),
            _ => Err(LinesError::OffsetOutOfRange {
                section,
                name: self.section_name(section),
                offset,
                size: placed.size,
            }),
        }
    }

    /// The section and offset of `address`, if it lies in a section that can hold code.
    fn section_of(&self, address: u64) -> Option<(usize, u64, u64)> {
        let after = self
            .by_address
            .partition_point(|&(start, _, _)| start <= address);
        let &(start, end, index) = self.by_address.get(after.checked_sub(1)?)?;
        (address < end).then_some((index, address - start, end - start))
    }

    /// The section's name, or `#index` if it has none that can be read.
    fn section_name(&self, section: usize) -> String {
        self.sections
            .section(SectionIndex(section))
            .ok()
            .and_then(|header| self.sections.section_name(self.endian, header).ok())
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .unwrap_or_else(|| format!("#{section}"))
    }

    /// The relocated DWARF and addr2line context, built on first use.
    fn loaded(&self) -> Result<&Loaded<'data>, LinesError> {
        self.loaded
            .get_or_init(|| self.load())
            .as_ref()
            .map_err(Clone::clone)
    }

    fn load(&self) -> Result<Loaded<'data>, LinesError> {
        let dwarf = gimli::Dwarf::load(|id| self.dwarf_section(id))?;
        let dwarf = Arc::new(dwarf);
        let context = addr2line::Context::from_arc_dwarf(Arc::clone(&dwarf))
            .map_err(|e| dwarf_error("indexing compile units", e))?;
        Ok(Loaded { dwarf, context })
    }

    /// One DWARF section with its relocations; empty if the object lacks it.
    fn dwarf_section(&self, id: gimli::SectionId) -> Result<Reader<'data>, LinesError> {
        let endian = RunTimeEndian::Little;
        let Some((index, header)) = self
            .sections
            .section_by_name(self.endian, id.name().as_bytes())
        else {
            return Ok(RelocateReader::new(
                EndianSlice::new(&[], endian),
                SectionRelocs::default(),
            ));
        };
        if header.sh_flags(self.endian) & u64::from(elf::SHF_COMPRESSED) != 0 {
            return Err(LinesError::Compressed {
                section: id.name().to_owned(),
            });
        }
        let bytes =
            header
                .data(self.endian, self.data)
                .map_err(|source| LinesError::SectionData {
                    section: id.name().to_owned(),
                    source,
                })?;
        let relocs = if self.relocatable {
            self.section_relocations(index, id.name())?
        } else {
            SectionRelocs::default()
        };
        Ok(RelocateReader::new(EndianSlice::new(bytes, endian), relocs))
    }

    /// The relocations that apply to section `target`, resolved against the section layout.
    fn section_relocations(
        &self,
        target: SectionIndex,
        name: &str,
    ) -> Result<SectionRelocs, LinesError> {
        let endian = self.endian;
        let mut map = HashMap::new();
        let error = |offset: u64, reason: String| LinesError::Relocation {
            section: name.to_owned(),
            offset,
            reason,
        };
        for header in self.sections.iter() {
            let sh_type = header.sh_type(endian);
            if (sh_type != elf::SHT_RELA && sh_type != elf::SHT_REL)
                || header.sh_info(endian) as usize != target.0
            {
                continue;
            }
            if header.sh_link(endian) as usize != self.symbols.section().0 {
                return Err(error(
                    0,
                    "relocation section does not use the object's symbol table".to_owned(),
                ));
            }
            let mut entries: Vec<(u64, u32, u32, Option<i64>)> = Vec::new();
            if let Some((relas, _)) = header
                .rela(endian, self.data)
                .map_err(|e| error(0, e.to_string()))?
            {
                entries.extend(relas.iter().map(|r| {
                    (
                        r.r_offset(endian),
                        r.r_sym(endian, false),
                        r.r_type(endian, false),
                        Some(r.r_addend(endian)),
                    )
                }));
            } else if let Some((rels, _)) = header
                .rel(endian, self.data)
                .map_err(|e| error(0, e.to_string()))?
            {
                entries.extend(
                    rels.iter()
                        .map(|r| (r.r_offset(endian), r.r_sym(endian), r.r_type(endian), None)),
                );
            }
            for (offset, sym, r_type, addend) in entries {
                let width = match r_type {
                    elf::R_X86_64_64 => 8,
                    elf::R_X86_64_32 | elf::R_X86_64_32S => 4,
                    // PC-relative and TLS relocations do not occur in the parts of DWARF read here
                    // (unit headers, attributes, line programs, range lists).
                    _ => continue,
                };
                let symbol_value = self
                    .symbol_value(sym)
                    .map_err(|reason| error(offset, reason))?;
                let key = usize::try_from(offset)
                    .map_err(|_| error(offset, "offset does not fit in memory".to_owned()))?;
                let reloc = match addend {
                    Some(addend) => Reloc {
                        value: symbol_value.wrapping_add_signed(addend),
                        implicit: false,
                        width,
                    },
                    None => Reloc {
                        value: symbol_value,
                        implicit: true,
                        width,
                    },
                };
                map.insert(key, reloc);
            }
        }
        if map.is_empty() {
            Ok(SectionRelocs::default())
        } else {
            Ok(SectionRelocs(Some(Arc::new(map))))
        }
    }

    /// The value of symbol `index` for relocation: its value plus the base of its section if that section is
    /// allocatable (debug sections keep offsets), 0 for the null symbol and undefined symbols.
    fn symbol_value(&self, index: u32) -> Result<u64, String> {
        if index == 0 {
            return Ok(0);
        }
        let index = SymbolIndex(index as usize);
        let symbol = self.symbols.symbol(index).map_err(|e| e.to_string())?;
        let value = symbol.st_value(self.endian);
        if symbol.st_shndx(self.endian) == elf::SHN_ABS {
            return Ok(value);
        }
        let section = self
            .symbols
            .symbol_section(self.endian, symbol, index)
            .map_err(|e| e.to_string())?;
        let Some(section) = section else {
            return Ok(0);
        };
        match self.placed.get(section.0) {
            Some(Some(placed)) => Ok(placed.base.wrapping_add(value)),
            Some(None) => Ok(value),
            None => Err(format!(
                "symbol {} is in section {}, which does not exist",
                index.0, section.0
            )),
        }
    }

    /// The name of the ELF symbol that binutils would name for the code at `offset` in `section`: among
    /// `STT_FUNC`/`STT_NOTYPE`/`STT_GNU_IFUNC` symbols of that section, the one with the highest value not
    /// above `offset`, ties going to the larger size.
    fn symbol_function(&self, section: usize, offset: u64) -> Option<&'data str> {
        let symbols = self
            .function_symbols
            .get_or_init(|| self.collect_function_symbols());
        let list = symbols.get(&section)?;
        let after = list.partition_point(|s| s.offset <= offset);
        list.get(after.checked_sub(1)?).map(|s| s.name)
    }

    /// Function-like symbols per section, sorted by (offset, size).
    fn collect_function_symbols(&self) -> HashMap<usize, Vec<FunctionSymbol<'data>>> {
        let endian = self.endian;
        let mut out: HashMap<usize, Vec<FunctionSymbol<'data>>> = HashMap::new();
        for (index, symbol) in self.symbols.enumerate() {
            if !matches!(
                symbol.st_type(),
                elf::STT_FUNC | elf::STT_NOTYPE | elf::STT_GNU_IFUNC
            ) {
                continue;
            }
            let Ok(Some(section)) = self.symbols.symbol_section(endian, symbol, index) else {
                continue;
            };
            let Some(Some(placed)) = self.placed.get(section.0) else {
                continue;
            };
            let Ok(name) = self.symbols.symbol_name(endian, symbol) else {
                continue;
            };
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let value = symbol.st_value(endian);
            let offset = if self.relocatable {
                Some(value)
            } else {
                value.checked_sub(placed.base)
            };
            let Some(offset) = offset else {
                continue;
            };
            out.entry(section.0).or_default().push(FunctionSymbol {
                offset,
                size: symbol.st_size(endian),
                name,
            });
        }
        for list in out.values_mut() {
            list.sort_by_key(|s| (s.offset, s.size));
        }
        out
    }

    /// The line → code index, built on first use.
    fn file_index(&self) -> Result<&FileIndex, LinesError> {
        self.file_index
            .get_or_init(|| self.build_file_index())
            .as_ref()
            .map_err(Clone::clone)
    }

    fn build_file_index(&self) -> Result<FileIndex, LinesError> {
        let mut builder = FileIndexBuilder::default();
        self.for_each_unit(|dwarf, unit| self.index_unit(dwarf, unit, &mut builder))?;
        Ok(builder.finish())
    }

    /// Adds one unit's line rows and inlined call sites to the index.
    fn index_unit(
        &self,
        dwarf: &gimli::Dwarf<Reader<'data>>,
        unit: &gimli::Unit<Reader<'data>>,
        builder: &mut FileIndexBuilder,
    ) -> gimli::Result<()> {
        let Some(program) = &unit.line_program else {
            return Ok(());
        };
        let unit_ref = unit.unit_ref(dwarf);
        let files: Vec<Option<usize>> = render_file_table(unit_ref, program.header())?
            .into_iter()
            .map(|path| path.map(|p| builder.file(p)))
            .collect();
        let file_id = |index: u64| {
            usize::try_from(index)
                .ok()
                .and_then(|i| files.get(i).copied().flatten())
        };

        // Line-table rows. As addr2line does, when several rows share an address only the last one covers
        // the code there; each row covers up to the next row's address.
        let mut rows = program.clone().rows();
        let mut pending: Option<(u64, u64, u32)> = None; // (address, file index, line)
        while let Some((_, row)) = rows.next_row()? {
            let address = row.address();
            if let Some((start, file, line)) = pending.take() {
                if address > start && line != 0 {
                    if let Some(id) = file_id(file) {
                        self.add_span(builder, id, line, start, address, false);
                    }
                }
            }
            if !row.end_sequence() {
                let line = row
                    .line()
                    .map_or(0, |l| u32::try_from(l.get()).unwrap_or(0));
                pending = Some((address, row.file_index(), line));
            }
        }

        // Inlined subroutines: their whole body belongs to their call site.
        let mut entries = unit.entries();
        while let Some((_, entry)) = entries.next_dfs()? {
            if entry.tag() != gimli::DW_TAG_inlined_subroutine {
                continue;
            }
            let call_file = match entry.attr_value(gimli::DW_AT_call_file)? {
                Some(gimli::AttributeValue::FileIndex(index)) => Some(index),
                Some(other) => other.udata_value(),
                None => None,
            };
            let call_line = entry
                .attr_value(gimli::DW_AT_call_line)?
                .and_then(|v| v.udata_value())
                .and_then(|l| u32::try_from(l).ok())
                .unwrap_or(0);
            let (Some(id), true) = (call_file.and_then(file_id), call_line != 0) else {
                continue;
            };
            for range in die_ranges(dwarf, unit, entry)? {
                if range.begin < range.end {
                    self.add_span(builder, id, call_line, range.begin, range.end, true);
                }
            }
        }
        Ok(())
    }

    /// Records that addresses `[start, end)` came from `line` of file `file`, if they lie in a section.
    fn add_span(
        &self,
        builder: &mut FileIndexBuilder,
        file: usize,
        line: u32,
        start: u64,
        end: u64,
        inlined: bool,
    ) {
        let Some((section, offset, size)) = self.section_of(start) else {
            return;
        };
        let end_offset = (end - start).saturating_add(offset).min(size);
        builder.files[file].spans.push(LineSpan {
            line,
            range: CodeRange {
                section,
                start: offset,
                end: end_offset,
                inlined,
            },
        });
    }
}

/// Relocations of one DWARF section, keyed by the offset they apply to.
#[derive(Clone, Default)]
struct SectionRelocs(Option<Arc<HashMap<usize, Reloc>>>);

impl std::fmt::Debug for SectionRelocs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.0.as_ref().map_or(0, |map| map.len());
        write!(f, "SectionRelocs({count} relocations)")
    }
}

/// One resolved relocation: `value` is S + A (RELA) or S, to which the implicit addend is added (REL).
#[derive(Debug, Clone, Copy)]
struct Reloc {
    value: u64,
    implicit: bool,
    width: u8,
}

impl gimli::Relocate<usize> for SectionRelocs {
    fn relocate_address(&self, offset: usize, value: u64) -> gimli::Result<u64> {
        let Some(reloc) = self.0.as_ref().and_then(|map| map.get(&offset)) else {
            return Ok(value);
        };
        let relocated = if reloc.implicit {
            reloc.value.wrapping_add(value)
        } else {
            reloc.value
        };
        Ok(if reloc.width == 4 {
            relocated & 0xffff_ffff
        } else {
            relocated
        })
    }

    fn relocate_offset(&self, offset: usize, value: usize) -> gimli::Result<usize> {
        let relocated = self.relocate_address(offset, value as u64)?;
        usize::try_from(relocated).map_err(|_| gimli::Error::UnsupportedOffset)
    }
}

/// The address ranges of a DIE, as gimli's `Dwarf::die_ranges` reads them (`DW_AT_ranges`, else `DW_AT_low_pc` with
/// `DW_AT_high_pc` as an address or a size), except that a size that overflows past 2^64 gives no range: gimli adds
/// it with `+`, which panics in debug builds on malformed DWARF.
fn die_ranges<'data>(
    dwarf: &gimli::Dwarf<Reader<'data>>,
    unit: &gimli::Unit<Reader<'data>>,
    entry: &gimli::DebuggingInformationEntry<'_, '_, Reader<'data>>,
) -> gimli::Result<Vec<gimli::Range>> {
    let (mut low, mut high, mut size) = (None, None, None);
    let mut attrs = entry.attrs();
    while let Some(attr) = attrs.next()? {
        match attr.name() {
            gimli::DW_AT_low_pc => low = dwarf.attr_address(unit, attr.value())?,
            gimli::DW_AT_high_pc => match attr.value() {
                gimli::AttributeValue::Udata(v) => size = Some(v),
                v => high = dwarf.attr_address(unit, v)?,
            },
            gimli::DW_AT_ranges => {
                if let Some(mut list) = dwarf.attr_ranges(unit, attr.value())? {
                    let mut out = Vec::new();
                    while let Some(range) = list.next()? {
                        out.push(range);
                    }
                    return Ok(out);
                }
            }
            _ => {}
        }
    }
    let end = match size {
        Some(size) => low.and_then(|begin: u64| begin.checked_add(size)),
        None => high,
    };
    Ok(low
        .zip(end)
        .map(|(begin, end)| gimli::Range { begin, end })
        .into_iter()
        .collect())
}

fn dwarf_error(context: &str, source: gimli::Error) -> LinesError {
    LinesError::Dwarf {
        context: context.to_owned(),
        source,
    }
}

/// Names a unit by its offset for error messages.
fn unit_context(header: &gimli::UnitHeader<Reader<'_>>) -> String {
    match header.offset().as_debug_info_offset() {
        Some(offset) => format!("unit at .debug_info+{:#x}", offset.0),
        None => "unit".to_owned(),
    }
}

/// A line-table file entry per DWARF file index (entry 0 is `None` before DWARF 5), rendered like addr2line.
fn render_file_table<'data>(
    unit: gimli::UnitRef<'_, Reader<'data>>,
    header: &gimli::LineProgramHeader<Reader<'data>>,
) -> gimli::Result<Vec<Option<String>>> {
    let mut files = vec![match header.file(0) {
        Some(file) => Some(render_file(unit, file, header)?),
        None => None,
    }];
    let mut index = 1;
    while let Some(file) = header.file(index) {
        files.push(Some(render_file(unit, file, header)?));
        index += 1;
    }
    Ok(files)
}

/// `comp_dir` + directory (unless it is entry 0, the compilation directory) + file name, as addr2line joins
/// them.
fn render_file<'data>(
    unit: gimli::UnitRef<'_, Reader<'data>>,
    file: &gimli::FileEntry<Reader<'data>>,
    header: &gimli::LineProgramHeader<Reader<'data>>,
) -> gimli::Result<String> {
    let mut path = match &unit.comp_dir {
        Some(dir) => dir.to_string_lossy()?.into_owned(),
        None => String::new(),
    };
    if file.directory_index() != 0 {
        if let Some(directory) = file.directory(header) {
            path_push(&mut path, &unit.attr_string(directory)?.to_string_lossy()?);
        }
    }
    path_push(
        &mut path,
        &unit.attr_string(file.path_name())?.to_string_lossy()?,
    );
    Ok(path)
}

/// Appends `p` to `path` with a `/`, or replaces `path` if `p` is absolute (addr2line's rule).
fn path_push(path: &mut String, p: &str) {
    if p.starts_with('/') {
        *path = p.to_owned();
    } else {
        if !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(p);
    }
}

/// Lexically normalizes a path: drops `.`, resolves `..` against a preceding normal component.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(component),
            },
            other => out.push(other),
        }
    }
    out.iter().collect()
}

/// Whether a (normalized) query path names a (normalized) DWARF path: equal, or one is relative and the other
/// ends with it component by component. See [`LineMap::code_for_line`].
pub fn path_matches(query: &Path, dwarf: &Path) -> bool {
    if query == dwarf {
        return true;
    }
    (query.is_relative() && dwarf.ends_with(query))
        || (dwarf.is_relative() && query.ends_with(dwarf))
}

/// Sorts ranges and merges overlapping or touching ones of the same section and kind.
fn merge_ranges(mut ranges: Vec<CodeRange>) -> Vec<CodeRange> {
    ranges.sort_unstable_by_key(|r| (r.section, r.inlined, r.start, r.end));
    let mut out: Vec<CodeRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        if let Some(last) = out.last_mut() {
            if last.section == range.section
                && last.inlined == range.inlined
                && range.start <= last.end
            {
                last.end = last.end.max(range.end);
                continue;
            }
        }
        out.push(range);
    }
    out.sort_unstable_by_key(|r| (r.section, r.start, r.end, r.inlined));
    out
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

/// Line spans per source file, sorted by line.
struct FileIndex {
    files: Vec<IndexedFile>,
}

struct IndexedFile {
    normalized: PathBuf,
    spans: Vec<LineSpan>,
}

#[derive(Debug, Clone, Copy)]
struct LineSpan {
    line: u32,
    range: CodeRange,
}

#[derive(Default)]
struct FileIndexBuilder {
    by_path: HashMap<String, usize>,
    files: Vec<IndexedFile>,
}

impl FileIndexBuilder {
    /// The id of file `path`, adding it if new.
    fn file(&mut self, path: String) -> usize {
        if let Some(&id) = self.by_path.get(&path) {
            return id;
        }
        let id = self.files.len();
        self.files.push(IndexedFile {
            normalized: normalize(Path::new(&path)),
            spans: Vec::new(),
        });
        self.by_path.insert(path, id);
        id
    }

    fn finish(mut self) -> FileIndex {
        for file in &mut self.files {
            let spans = std::mem::take(&mut file.spans);
            let mut by_line: Vec<LineSpan> = Vec::with_capacity(spans.len());
            let mut sorted = spans;
            sorted.sort_unstable_by_key(|s| {
                (s.line, s.range.section, s.range.inlined, s.range.start)
            });
            for span in sorted {
                if let Some(last) = by_line.last_mut() {
                    if last.line == span.line
                        && last.range.section == span.range.section
                        && last.range.inlined == span.range.inlined
                        && span.range.start <= last.range.end
                    {
                        last.range.end = last.range.end.max(span.range.end);
                        continue;
                    }
                }
                by_line.push(span);
            }
            file.spans = by_line;
        }
        FileIndex { files: self.files }
    }
}
