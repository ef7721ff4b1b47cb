//! Reading an object file for `check`: everything but its DWARF first, the DWARF only when a finding needs a
//! source line.
//!
//! In a kernel object built with debug info, `.debug_*` and their relocations are most of the bytes (88 % of the
//! real-tree subset), and the analysis never looks at them. [`ObjectFile::read`] leaves them as zeros in a buffer
//! of the file's size (so every offset in the ELF headers still means what it says); [`ObjectFile::complete`] reads
//! them in when source lines are wanted. `.debug_frame` is read with the rest (the unwind-table comparison uses it).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// An object's bytes, possibly without its DWARF.
#[derive(Debug)]
pub struct ObjectFile {
    path: PathBuf,
    /// The file's bytes; the `missing` ranges are zeros until [`ObjectFile::complete`].
    pub data: Vec<u8>,
    missing: Vec<Range<u64>>,
    /// Size and modification time when read: the DWARF is read in later only from the same version.
    stamp: (u64, Option<SystemTime>),
}

impl ObjectFile {
    /// Reads `path` without its DWARF sections (`.debug_*` other than `.debug_frame`, and their `.rela`). A file
    /// that is not a 64-bit little-endian ELF, or whose section table cannot be read, is read whole: the analysis
    /// reports what is wrong with it.
    pub fn read(path: &Path) -> io::Result<ObjectFile> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let size = meta.len();
        let stamp = (size, meta.modified().ok());
        let len = usize::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is too large"))?;
        let mut data = vec![0u8; len];
        // The headers the section names need are read first; the rest but the DWARF after them.
        let skip = dwarf_ranges(&file, &mut data).unwrap_or_default();
        let mut at = 0u64;
        for r in skip.iter().chain(std::iter::once(&(size..size))) {
            if r.start > at {
                read_exact_at(&file, &mut data, at..r.start)?;
            }
            at = at.max(r.end);
        }
        let again = file.metadata()?;
        if (again.len(), again.modified().ok()) != stamp {
            return Err(io::Error::other(
                "the file changed while it was read (is the build rewriting it?)",
            ));
        }
        Ok(ObjectFile {
            path: path.to_path_buf(),
            data,
            missing: skip,
            stamp,
        })
    }

    /// Reads in the DWARF left out by [`ObjectFile::read`]. Fails if the file is no longer the version read.
    pub fn complete(&mut self) -> io::Result<()> {
        if self.missing.is_empty() {
            return Ok(());
        }
        let file = File::open(&self.path)?;
        let meta = file.metadata()?;
        if (meta.len(), meta.modified().ok()) != self.stamp {
            return Err(io::Error::other(
                "the file changed since it was analysed; no source lines",
            ));
        }
        for r in std::mem::take(&mut self.missing) {
            read_exact_at(&file, &mut self.data, r)?;
        }
        Ok(())
    }
}

fn read_exact_at(file: &File, data: &mut [u8], r: Range<u64>) -> io::Result<()> {
    let (start, end) = (
        usize::try_from(r.start).unwrap_or(usize::MAX),
        usize::try_from(r.end).unwrap_or(usize::MAX),
    );
    let buf = data.get_mut(start..end).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file is shorter than it was",
        )
    })?;
    file.read_exact_at(buf, r.start)
}

/// The file ranges of the DWARF sections to leave out, sorted and disjoint, read with the `object` crate from the
/// ELF header, the section table and the section-name table, which it puts into `data` (the file's size, zeros
/// elsewhere); `None` when the headers cannot be read or say something unexpected (then everything is read).
fn dwarf_ranges(file: &File, data: &mut [u8]) -> Option<Vec<Range<u64>>> {
    use object::elf::FileHeader64;
    use object::read::elf::{FileHeader, SectionHeader};
    use object::Endianness;

    read_exact_at(file, data, 0..64).ok()?;
    let header = FileHeader64::<Endianness>::parse(&*data).ok()?;
    let endian = header.endian().ok()?;
    // Extended section numbering (e_shnum 0) needs section 0 first: read such a file whole.
    let (shoff, shnum) = (header.e_shoff(endian), u64::from(header.e_shnum(endian)));
    if endian != Endianness::Little || shnum == 0 {
        return None;
    }
    let table =
        shoff..shoff.checked_add(shnum.checked_mul(u64::from(header.e_shentsize(endian)))?)?;
    read_exact_at(file, data, table.clone()).ok()?;
    let header = FileHeader64::<Endianness>::parse(&*data).ok()?;
    let headers = header.section_headers(endian, &*data).ok()?;
    let names = headers.get(header.shstrndx(endian, &*data).ok()? as usize)?;
    let (off, len) = names.file_range(endian)?;
    let strings = off..off.checked_add(len)?;
    read_exact_at(file, data, strings.clone()).ok()?;

    let header = FileHeader64::<Endianness>::parse(&*data).ok()?;
    let sections = header.sections(endian, &*data).ok()?;
    let mut out = Vec::new();
    for section in sections.iter() {
        let name = sections.section_name(endian, section).ok()?;
        let dwarf = name.strip_prefix(b".rela").unwrap_or(name);
        if !dwarf.starts_with(b".debug_") || dwarf == b".debug_frame" {
            continue;
        }
        // `None`: SHT_NOBITS, nothing in the file.
        let Some((off, len)) = section.file_range(endian) else {
            continue;
        };
        let range = off..off.checked_add(len)?;
        // Never the ELF header or the tables just read, whatever a section claims.
        let overlaps = |r: &Range<u64>| range.start < r.end && r.start < range.end;
        if [0..64, table.clone(), strings.clone()].iter().any(overlaps) {
            return None;
        }
        out.push(range);
    }
    out.sort_by_key(|r| r.start);
    // Overlapping claims: read everything rather than guess.
    if out.windows(2).any(|w| w[0].end > w[1].start) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcc(dir: &Path, src: &str, flags: &[&str]) -> PathBuf {
        let s = dir.join("t.S");
        std::fs::write(&s, src).expect("write");
        let o = dir.join("t.o");
        let out = std::process::Command::new("gcc")
            .args(["-c"])
            .args(flags)
            .arg(&s)
            .arg("-o")
            .arg(&o)
            .output()
            .expect("gcc");
        assert!(out.status.success(), "{out:?}");
        o
    }

    const SRC: &str =
        ".text\n.globl f\n.type f,@function\nf:\n push %rbx\n pop %rbx\n ret\n.size f,.-f\n";

    #[test]
    fn dwarf_is_left_out_until_asked_for_and_the_rest_is_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = gcc(dir.path(), SRC, &["-g"]);
        let whole = std::fs::read(&o).expect("read");
        let mut f = ObjectFile::read(&o).expect("read lazily");
        assert_eq!(f.data.len(), whole.len());
        assert!(!f.missing.is_empty(), "a -g object has DWARF to leave out");
        assert_ne!(f.data, whole);
        for (i, (a, b)) in f.data.iter().zip(&whole).enumerate() {
            if !f.missing.iter().any(|r| r.contains(&(i as u64))) {
                assert_eq!(a, b, "byte {i} outside the DWARF differs");
            }
        }
        f.complete().expect("complete");
        assert_eq!(f.data, whole);
    }

    #[test]
    fn objects_without_dwarf_and_foreign_files_are_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = gcc(dir.path(), SRC, &[]);
        let f = ObjectFile::read(&o).expect("read");
        assert_eq!(f.data, std::fs::read(&o).expect("read"));
        let junk = dir.path().join("junk.o");
        std::fs::write(&junk, b"\x7fELF\x02\x01\x01junk").expect("write");
        let f = ObjectFile::read(&junk).expect("read");
        assert_eq!(f.data, std::fs::read(&junk).expect("read"));
        assert!(f.missing.is_empty());
    }

    #[test]
    fn a_file_rewritten_after_the_read_gives_no_dwarf() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = gcc(dir.path(), SRC, &["-g"]);
        let mut f = ObjectFile::read(&o).expect("read");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let bytes = std::fs::read(&o).expect("read");
        std::fs::write(&o, [bytes.as_slice(), b"x"].concat()).expect("rewrite");
        assert!(f.complete().is_err());
    }
}
