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
        let skip = dwarf_ranges(&file, size).unwrap_or_default();
        let len = usize::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is too large"))?;
        let mut data = vec![0u8; len];
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

/// The file ranges of the DWARF sections to leave out, sorted and disjoint; `None` when the headers say
/// something unexpected (then everything is read).
fn dwarf_ranges(file: &File, size: u64) -> Option<Vec<Range<u64>>> {
    let mut eh = [0u8; 64];
    file.read_exact_at(&mut eh, 0).ok()?;
    // ELF64, little-endian.
    if eh[..4] != *b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |b: &[u8], o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let shoff = u64_at(&eh, 0x28)?;
    let shentsize = u64::from(u16_at(&eh, 0x3a)?);
    let shnum = u64::from(u16_at(&eh, 0x3c)?);
    let shstrndx = u64::from(u16_at(&eh, 0x3e)?);
    if shentsize != 64 || shnum == 0 || shstrndx >= shnum {
        return None;
    }
    let table_len = shnum.checked_mul(64)?;
    if shoff.checked_add(table_len)? > size {
        return None;
    }
    let mut table = vec![0u8; usize::try_from(table_len).ok()?];
    file.read_exact_at(&mut table, shoff).ok()?;
    let header = |i: u64| -> Option<&[u8]> {
        let o = usize::try_from(i.checked_mul(64)?).ok()?;
        table.get(o..o + 64)
    };
    let str_header = header(shstrndx)?;
    let (str_off, str_size) = (u64_at(str_header, 0x18)?, u64_at(str_header, 0x20)?);
    if str_off.checked_add(str_size)? > size || str_size > 1 << 24 {
        return None;
    }
    let mut names = vec![0u8; usize::try_from(str_size).ok()?];
    file.read_exact_at(&mut names, str_off).ok()?;
    let name_of = |h: &[u8]| -> Option<&[u8]> {
        let start = usize::try_from(u32_at(h, 0)?).ok()?;
        let rest = names.get(start..)?;
        Some(&rest[..rest.iter().position(|&b| b == 0)?])
    };
    const SHT_NOBITS: u32 = 8;
    let mut out = Vec::new();
    for i in 0..shnum {
        let h = header(i)?;
        let name = name_of(h)?;
        let dwarf = name.strip_prefix(b".rela").unwrap_or(name);
        if !dwarf.starts_with(b".debug_") || dwarf == b".debug_frame" || u32_at(h, 4)? == SHT_NOBITS
        {
            continue;
        }
        let (off, len) = (u64_at(h, 0x18)?, u64_at(h, 0x20)?);
        let end = off.checked_add(len)?;
        if end > size {
            return None;
        }
        // Never the ELF header or the section table, whatever a section claims.
        if off < 64 || (off < shoff + table_len && end > shoff) {
            return None;
        }
        out.push(off..end);
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
